# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``tc -s -j qdisc show [dev X]`` statistics: counters, deltas and queue samples.

- A root qdisc's counters include its children's (a tbf root reports the drops of its bfifo
  child), so totals per device add up root qdiscs only; RED's ``marked``/``early``/``pdrop``/
  ``other`` exist only on the RED qdisc itself, wherever it sits in the tree.
- ``drops`` counts skbs (a GSO skb holds several segments); tbf ``overlimits`` counts throttling
  events, not drops.
- ``backlog`` is ~0 after a run, so the queue is read from samples taken during the run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError

COUNTERS = ('bytes', 'packets', 'drops', 'overlimits', 'requeues')
GAUGES = ('backlog', 'qlen')
RED_COUNTERS = ('marked', 'early', 'pdrop', 'other')
# parent handles that start a tree of their own next to the egress root
_OWN_TREE_PARENTS = ('ffff:fff1', 'ffff:fff2')


def load(data, what='tc qdisc'):
    if isinstance(data, (list, tuple)):
        return list(data)
    text = (data or '').strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ParseError('%s: invalid JSON (%s); record it with `tc -s -j qdisc show`' % (what, e))
    if not isinstance(value, list):
        raise ParseError('%s: expected the JSON array printed by `tc -s -j qdisc show`' % what)
    return value


def _int(entry, name):
    value = entry.get(name)
    if value is None and isinstance(entry.get('xstats'), dict):
        value = entry['xstats'].get(name)
    return int(value) if isinstance(value, (int, float)) else None


def normalise(entry, dev=None):
    """One qdisc object -> flat dict with dev, kind, handle, parent, root and the counters."""
    if not isinstance(entry, dict) or 'kind' not in entry:
        raise ParseError('tc qdisc: %r is not a qdisc object' % (entry,))
    parent = entry.get('parent')
    result = {
        'dev': entry.get('dev') or dev or '',
        'kind': entry['kind'],
        'handle': entry.get('handle', ''),
        'parent': parent or ('root' if entry.get('root') else ''),
        'root': bool(entry.get('root')) or parent in _OWN_TREE_PARENTS or parent is None,
    }
    for name in COUNTERS + GAUGES:
        result[name] = _int(entry, name) or 0
    for name in RED_COUNTERS:
        result[name] = _int(entry, name)
    return result


def parse(data, dev=None):
    """Text or list from ``tc -s -j qdisc show`` -> list of normalised qdiscs.

    ``dev`` names the device when the output came from ``show dev X`` (which omits ``dev``).
    """
    return [normalise(entry, dev) for entry in load(data)]


def key(qdisc):
    return (qdisc['dev'], qdisc['handle'], qdisc['parent'], qdisc['kind'])


def _numbered(qdiscs):
    """Keys made unique by occurrence: outputs of several ``show dev X`` joined carry no dev,
    so the same handle can appear once per device (in the same order before and after)."""
    seen = {}
    for q in qdiscs:
        k = key(q)
        seen[k] = seen.get(k, -1) + 1
        yield (k, seen[k]), q


def delta(before, after):
    """Counters ``after - before`` per qdisc; gauges and identity from ``after``.

    A qdisc missing before (or whose counters went down, i.e. it was re-created) counts from 0.
    """
    old = dict(_numbered(before))
    result = []
    for k, q in _numbered(after):
        prev = old.get(k)
        d = dict(q)
        reset = prev is not None and any(q[n] < prev[n] for n in COUNTERS)
        for name in COUNTERS + RED_COUNTERS:
            if q[name] is None:
                continue
            base = prev.get(name) if prev is not None and not reset else None
            d[name] = q[name] - (base or 0)
        d['reset'] = reset
        result.append(d)
    return result


def select(qdiscs, devices=None):
    if not devices:
        return list(qdiscs)
    return [q for q in qdiscs if q['dev'] in devices or (q['dev'] == '' and '' in devices)]


def totals(qdiscs, devices=None):
    """Counters summed over root qdiscs (their children are already inside) and RED counters
    over every qdisc that has them; ``red`` says whether any RED counters were seen."""
    chosen = select(qdiscs, devices)
    result = dict((name, 0) for name in COUNTERS + GAUGES)
    for q in chosen:
        if q['root']:
            for name in COUNTERS + GAUGES:
                result[name] += q[name]
    reds = [q for q in chosen if q['marked'] is not None]
    for name in RED_COUNTERS:
        result[name] = sum(q[name] or 0 for q in reds) if reds else None
    result['qdiscs'] = len(chosen)
    return result


def load_samples(text):
    """``tc_during.jsonl``: one ``{"t": seconds, "qdiscs": [...]}`` per line -> list of
    ``(t, [qdisc objects as tc printed them])``."""
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            qdiscs = entry['qdiscs']
            if not isinstance(qdiscs, list):
                raise TypeError('qdiscs is not a list')
            if entry.get('dev'):
                qdiscs = [dict(q, dev=q.get('dev') or entry['dev']) for q in qdiscs]
            samples.append((float(entry['t']), qdiscs))
        except (ValueError, KeyError, TypeError) as e:
            raise ParseError('tc samples: line %d is not {"t": ..., "qdiscs": [...]}: %s' % (number, e))
    return samples


def parse_samples(text):
    """``tc_during.jsonl`` -> list of ``(t, [normalised qdiscs])`` (see load_samples)."""
    return [(t, parse(qdiscs)) for t, qdiscs in load_samples(text)]


def backlog_max(samples, devices=None):
    """Largest root backlog in bytes (summed over the chosen devices) seen in any sample."""
    values = [totals(qdiscs, devices)['backlog'] for _t, qdiscs in samples]
    return max(values) if values else None
