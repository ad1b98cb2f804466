# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a run can show zD's effect at all, and whether two kernels differ only in their name.

zD pushes back only for the qdisc layout its branch was written for (read from the branches'
net/core/dev.c):
- ``vm-pfifo``: the guest's egress root qdisc is a ``pfifo`` whose ``limit`` equals the device's
  txqueuelen (it stops the socket when ``q->q.qlen >= dev->tx_queue_len``);
- ``vm-tbf``: the guest's egress root is a ``tbf`` with its default bfifo child (no child of
  its own: the branch reads the default child's byte limit);
- ``physical-pfifo`` / ``physical-tbf``: the same kinds on the hypervisor's tap, where the
  pfifo's own ``limit`` is where it pushes back to vhost-net.
Any other tree behaves like vanilla, and a queue that never fills gives zD nothing to act on.

Everything here works on ``tc -s -j qdisc show`` objects as tc prints them (``dev`` missing when
the output was ``show dev X``) and on kernel ``.config`` text; nothing runs a command.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_config

BRANCHES = ('vm-pfifo', 'vm-tbf', 'physical-pfifo', 'physical-tbf')
# A queue sampled at 1 Hz that is ever full shows near its limit in some sample; one that never
# reaches half of it did not fill (a fifo that dropped was full, whatever the samples say).
FILLED_FRACTION = 0.5
LOCALVERSION = 'CONFIG_LOCALVERSION'
_NUMBER = re.compile(r'^([0-9]+)')


def branch_of(name):
    """The zD branch a preset, kernel name or release ends with (``4.14.67-vm-pfifo``,
    ``vm-pfifo``, ``4.14.67-vm-pfifo+``), or None (``vanilla``, a distro kernel, nothing)."""
    text = str(name or '').strip().rstrip('+')
    for branch in BRANCHES:
        if text == branch or text.endswith('-' + branch):
            return branch
    return None


def kernel_branch(kernel):
    """The zD branch of an ``experiment_kernels`` entry: its ``preset`` when it has one (a
    ``vanilla`` preset is no branch, whatever the name), else its ``name``, else its
    ``kernelrelease``."""
    kernel = kernel or {}
    if kernel.get('preset'):
        return branch_of(kernel['preset'])
    return branch_of(kernel.get('name')) or branch_of(kernel.get('kernelrelease'))


def _major(handle):
    return str(handle or '').split(':', 1)[0]


def device_qdiscs(qdiscs, device):
    """The qdiscs of ``device`` from a ``tc -j`` list (all of them when no entry names a
    device: the output of ``show dev X``)."""
    qdiscs = [q for q in qdiscs or [] if isinstance(q, dict)]
    if not any(q.get('dev') for q in qdiscs):
        return qdiscs
    return [q for q in qdiscs if q.get('dev') == device]


def egress_root(qdiscs):
    """The egress root qdisc of one device's list, or None."""
    for q in qdiscs:
        if q.get('root'):
            return q
    return None


def children(qdiscs, parent):
    """Qdiscs hanging below ``parent`` (by the major of their parent handle)."""
    major = _major(parent.get('handle'))
    return [q for q in qdiscs if not q.get('root') and q.get('parent')
            and _major(q['parent']) == major and q is not parent
            and q.get('kind') not in ('ingress', 'clsact')]


def describe(qdiscs):
    """A tree in a few words: ``root pfifo 1: limit 100``, ``root tbf 1: with child bfifo 10:
    limit 100000``."""
    root = egress_root(qdiscs)
    if root is None:
        return 'no root qdisc'

    def one(q):
        limit = (q.get('options') or {}).get('limit')
        return '%s %s%s' % (q.get('kind'), q.get('handle'),
                            '' if limit is None else ' limit %s' % limit)

    text = 'root ' + one(root)
    kids = children(qdiscs, root)
    if kids:
        text += ' with child ' + ', '.join(one(q) for q in kids)
    return text


def layout_check(branch, qdiscs, device, txqueuelen=None):
    """Whether ``device``'s tree (tc -j objects) is the layout ``branch`` pushes back for.

    Returns ``{'branch', 'device', 'ok', 'found', 'reason'}`` (reason None when ok), or None
    when ``branch`` is no zD branch."""
    if branch not in BRANCHES:
        return None
    tree = device_qdiscs(qdiscs, device)
    result = {'branch': branch, 'device': device, 'ok': False, 'found': describe(tree),
              'reason': None}
    where = "the hypervisor's tap" if branch.startswith('physical') else "the sender's egress"
    root = egress_root(tree)
    if root is None:
        result['reason'] = 'no qdisc of %s (%s) was recorded' % (device, where)
        return result
    kids = children(tree, root)
    if branch.endswith('pfifo'):
        wanted = 'a root pfifo'
        if branch == 'vm-pfifo':
            wanted += ' whose limit equals the txqueuelen of %s (%s)' % (
                device, 'unknown' if txqueuelen is None else txqueuelen)
        limit = (root.get('options') or {}).get('limit')
        if root.get('kind') != 'pfifo' or kids:
            result['reason'] = '%s pushes back only at %s: found %s' % (branch, wanted,
                                                                        result['found'])
        elif branch == 'vm-pfifo' and (txqueuelen is None or limit != txqueuelen):
            result['reason'] = '%s pushes back only at %s: found pfifo limit %s' % (
                branch, wanted, limit)
    elif root.get('kind') != 'tbf' or kids:
        result['reason'] = ('%s pushes back only at a root tbf with its default bfifo child (no '
                            'child of its own) on %s: found %s' % (branch, where, result['found']))
    result['ok'] = result['reason'] is None
    return result


def _tbf_limit(options):
    """A tbf's byte limit: its ``limit`` (``tc -d``), else from rate (bytes/s), latency
    (``lat``, microseconds) and burst, as tc derives the one from the other."""
    if options.get('limit') is not None:
        return int(options['limit'])
    rate, lat, burst = options.get('rate'), options.get('lat'), options.get('burst')
    if isinstance(burst, str):
        match = _NUMBER.match(burst)
        burst = int(match.group(1)) if match else None
    if not all(isinstance(v, (int, float)) for v in (rate, lat, burst)):
        return None
    return int(rate * lat / 1e6 + burst)


def queue_of(qdiscs, txqueuelen=None):
    """The queue that fills on a device: ``(qdisc, unit, limit)`` with unit ``packets`` (read
    from qlen) or ``bytes`` (backlog); None for a tree without a fifo of known size (noqueue,
    fq_codel, htb, ...)."""
    root = egress_root(qdiscs)
    if root is None:
        return None
    options = root.get('options') or {}
    kind = root.get('kind')
    if kind == 'pfifo':
        return root, 'packets', options.get('limit')
    if kind == 'bfifo':
        return root, 'bytes', options.get('limit')
    if kind == 'pfifo_fast' and txqueuelen:
        return root, 'packets', txqueuelen
    if kind == 'tbf':
        kids = children(qdiscs, root)
        if not kids:
            return root, 'bytes', _tbf_limit(options)
        child = kids[0]
        limit = (child.get('options') or {}).get('limit')
        if child.get('kind') == 'pfifo':
            return child, 'packets', limit
        if child.get('kind') == 'bfifo':
            return child, 'bytes', limit
    return None


def queue_check(samples, device, txqueuelen=None, dropped=None):
    """How full ``device``'s queue got in ``samples`` (``[(t, [tc -j objects])]``).

    Returns ``{'device', 'qdisc', 'unit', 'limit', 'max_backlog', 'dropped', 'filled',
    'reason'}``: filled when a sample saw it at FILLED_FRACTION of its limit or more, or the
    fifo dropped (``dropped``, its drops over the run); None when the device has no fifo of
    known size or no sample."""
    first = None
    for _t, qdiscs in samples:
        first = queue_of(device_qdiscs(qdiscs, device), txqueuelen)
        if first:
            break
    if first is None or not first[2]:
        return None
    queue, unit, limit = first
    field = 'qlen' if unit == 'packets' else 'backlog'
    seen = []
    for _t, qdiscs in samples:
        for q in device_qdiscs(qdiscs, device):
            if q.get('handle') == queue.get('handle') and q.get('kind') == queue.get('kind'):
                value = q.get(field)
                if isinstance(value, (int, float)):
                    seen.append(value)
    top = max(seen) if seen else 0
    filled = top >= FILLED_FRACTION * limit or bool(dropped)
    return {
        'device': device, 'qdisc': '%s %s' % (queue.get('kind'), queue.get('handle')),
        'unit': unit, 'limit': limit, 'max_backlog': top, 'dropped': dropped,
        'filled': filled,
        'reason': None if filled else (
            "not comparable: the sender's queue never filled (max backlog %s of limit %s %s)"
            % (top, limit, unit)),
    }


def parse_config(text):
    """A .config -> ``{CONFIG_X: value}`` (``n`` for ``# CONFIG_X is not set``)."""
    return kernel_config.parse_config(text)


def config_hash(config, without=(LOCALVERSION,)):
    """sha256 over ``SYMBOL=value`` lines in symbol order, ``n`` counted as absent, leaving
    out ``without`` (a kernel's name): equal for configs that differ only there."""
    h = hashlib.sha256()
    for symbol in sorted(config):
        if symbol in without or config[symbol] == 'n':
            continue
        h.update(('%s=%s\n' % (symbol, config[symbol])).encode('utf-8'))
    return h.hexdigest()


def compare_configs(a, b):
    """Two parsed .configs -> ``{'identical_apart_from_localversion', 'hash_a', 'hash_b',
    'differing': [{'symbol', 'a', 'b'}], 'localversion': [a, b]}`` (hashes without
    LOCALVERSION; ``n`` and absent are the same)."""
    symbols = sorted((set(a) | set(b)) - {LOCALVERSION})
    differing = []
    for symbol in symbols:
        va, vb = a.get(symbol, 'n'), b.get(symbol, 'n')
        if va != vb:
            differing.append({'symbol': symbol, 'a': None if va == 'n' else va,
                              'b': None if vb == 'n' else vb})
    hash_a, hash_b = config_hash(a), config_hash(b)
    return {'identical_apart_from_localversion': not differing, 'hash_a': hash_a,
            'hash_b': hash_b, 'differing': differing,
            'localversion': [a.get(LOCALVERSION), b.get(LOCALVERSION)]}
