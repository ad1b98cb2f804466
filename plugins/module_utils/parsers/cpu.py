# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""CPU time: the ``cpu`` lines of /proc/stat before and after a run, or ``mpstat`` text.

Percentages are of all CPUs together: user (with nice), system, irq, softirq, steal and idle
(with iowait). guest time is already inside user in /proc/stat and is not added again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError

PROC_FIELDS = ('user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal')
SHARES = ('user', 'system', 'irq', 'softirq', 'steal', 'idle')


def parse_proc_stat(text):
    """``{'cpu': {field: ticks}, 'cpu0': {...}, ...}`` from /proc/stat (other lines ignored)."""
    result = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or not fields[0].startswith('cpu'):
            continue
        try:
            values = [int(v) for v in fields[1:1 + len(PROC_FIELDS)]]
        except ValueError:
            raise ParseError('/proc/stat: line %d is not a cpu line: %r' % (number, line))
        if len(values) < 4:
            raise ParseError('/proc/stat: line %d has too few fields: %r' % (number, line))
        values += [0] * (len(PROC_FIELDS) - len(values))
        result[fields[0]] = dict(zip(PROC_FIELDS, values))
    if not result:
        raise ParseError('/proc/stat: no cpu lines; save `grep ^cpu /proc/stat`')
    return result


def shares(ticks):
    """Tick counts (or deltas) -> percentages per SHARES and ``busy`` = 100 - idle."""
    parts = {
        'user': ticks['user'] + ticks['nice'],
        'system': ticks['system'],
        'irq': ticks['irq'],
        'softirq': ticks['softirq'],
        'steal': ticks['steal'],
        'idle': ticks['idle'] + ticks['iowait'],
    }
    total = sum(parts.values())
    if total <= 0:
        return None
    result = dict((k, 100.0 * v / total) for k, v in parts.items())
    result['busy'] = 100.0 - result['idle']
    return result


def usage(before_text, after_text, cpu='cpu'):
    """CPU shares in % between two /proc/stat snapshots (``cpu`` = all CPUs together)."""
    before = parse_proc_stat(before_text)
    after = parse_proc_stat(after_text)
    if cpu not in before or cpu not in after:
        raise ParseError('/proc/stat: no %r line in both snapshots' % cpu)
    deltas = dict((f, after[cpu][f] - before[cpu][f]) for f in PROC_FIELDS)
    backwards = sorted(f for f, v in deltas.items() if v < 0)
    if backwards:
        raise ParseError('/proc/stat: %s went backwards between the snapshots (%s); the '
                         'snapshots are swapped or this kernel does not count them monotonically'
                         % (', '.join(backwards), ', '.join('%s %+d' % (f, deltas[f]) for f in backwards)))
    return shares(deltas)


def parse_mpstat(text, cpu='all'):
    """Rows of ``mpstat [-P ALL] 1`` for one CPU -> list of ``{column: percent}``.

    The ``Average:`` row, when present, is returned as the last row with ``average: True``.
    """
    header = None
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if 'CPU' in fields and any(f.startswith('%') for f in fields):
            header = fields
            continue
        if header is None or len(fields) < len(header) - 1:
            continue
        # the time column may be "03:35:38" or "03:35:38 AM" or "Average:"
        offset = len(fields) - len(header)
        values = fields[offset + header.index('CPU'):]
        if values[0] != cpu:
            continue
        try:
            row = dict((name.lstrip('%'), float(v))
                       for name, v in zip(header[header.index('CPU') + 1:], values[1:]))
        except ValueError:
            continue
        row['average'] = fields[0].startswith('Average')
        rows.append(row)
    if header is None:
        raise ParseError('mpstat: no header line with CPU and %usr columns')
    return rows


def mpstat_usage(text, cpu='all'):
    """Mean shares in % over the mpstat rows (its own Average row when printed)."""
    rows = parse_mpstat(text, cpu)
    averages = [r for r in rows if r['average']]
    rows = averages or rows
    if not rows:
        return None
    mean = dict((k, sum(r.get(k, 0.0) for r in rows) / len(rows)) for k in rows[0] if k != 'average')
    result = {
        'user': mean.get('usr', 0.0) + mean.get('nice', 0.0),
        'system': mean.get('sys', 0.0),
        'irq': mean.get('irq', 0.0),
        'softirq': mean.get('soft', 0.0),
        'steal': mean.get('steal', 0.0),
        'idle': mean.get('idle', 0.0) + mean.get('iowait', 0.0),
    }
    result['busy'] = 100.0 - result['idle']
    return result
