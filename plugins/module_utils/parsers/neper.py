# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""neper stdout: ``key=value`` lines in no fixed order, mixed with free text.

Only the side that reads prints ``throughput=``; it also prints ``local_throughput`` in bit/s.
The writing side prints ``local_throughput=0`` and ``remote_throughput=<reader's bit/s>``.

More flows than one process holds take several processes, whose outputs are concatenated (each
starts with ``VERSION=``). ``parse`` combines them into one set of key/values: the counts and
rates of SUMMED are added, MAXIMUM and MINIMUM take the largest and smallest, every other key
(configuration such as ``port``) is the first process's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError

KEY_VALUE = re.compile(r'^([A-Za-z_][A-Za-z0-9_.]*)=(.*)$')
_INT = re.compile(r'^-?[0-9]+$')
_FLOAT = re.compile(r'^-?[0-9]*\.[0-9]+(?:[eE][-+]?[0-9]+)?$|^-?[0-9]+[eE][-+]?[0-9]+$')

# throughput_units as neper prints them (-U/--throughput-opt), in bit/s.
UNITS_BPS = {
    'bit/s': 1, 'kbit/s': 1e3, 'mbit/s': 1e6, 'gbit/s': 1e9,
    'kb/s': 1e3, 'mb/s': 1e6, 'gb/s': 1e9,
}


def _number(value):
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value


# Figures of each process that add up over processes: rates, flows, threads, samples,
# transactions and the resource usage (CPU seconds, faults, context switches).
SUMMED = ('throughput', 'local_throughput', 'remote_throughput', 'num_flows', 'num_threads',
          'num_samples', 'num_transactions', 'invalid_secret_count',
          'utime_start', 'utime_end', 'stime_start', 'stime_end', 'minflt_start', 'minflt_end',
          'majflt_start', 'majflt_end', 'nvcsw_start', 'nvcsw_end', 'nivcsw_start', 'nivcsw_end')
MAXIMUM = ('test_length', 'total_run_time', 'time_end', 'maxrss_start', 'maxrss_end')
MINIMUM = ('time_start', 'correlation_coefficient')


def documents(text):
    """The outputs of the processes in ``text``, each from its ``VERSION=`` line on (free text
    before the first one belongs to the first)."""
    docs = [[]]
    for line in text.splitlines():
        if line.strip().startswith('VERSION=') and any(KEY_VALUE.match(x.strip()) for x in docs[-1]):
            docs.append([])
        docs[-1].append(line)
    return ['\n'.join(doc) + '\n' for doc in docs]


def _parse_one(text, numbers=True):
    result = {}
    for line in text.splitlines():
        match = KEY_VALUE.match(line.strip())
        if match:
            key, value = match.group(1), match.group(2).strip()
            result[key] = _number(value) if numbers else value
    return result


def _combine(parts):
    """One set of key/values from several processes' (see the module's description)."""
    result = dict(parts[0])
    for key in set(k for part in parts for k in part):
        values = [part[key] for part in parts if isinstance(part.get(key), (int, float))]
        if key in MAXIMUM and values:
            result[key] = max(values)
        elif key in MINIMUM and values:
            result[key] = min(values)
        elif key in SUMMED and values and key != 'throughput':
            result[key] = sum(values)
    if any('throughput' in part for part in parts):
        units = set(str(part.get('throughput_units', 'Mbit/s')) for part in parts if 'throughput' in part)
        if len(units) == 1:
            result['throughput'] = sum(part['throughput'] for part in parts
                                       if isinstance(part.get('throughput'), (int, float)))
        else:
            result['throughput'] = sum(throughput_bps({'throughput': part['throughput'],
                                                       'throughput_units': part.get('throughput_units', 'Mbit/s')})
                                       for part in parts if 'throughput' in part)
            result['throughput_units'] = 'bit/s'
    return result


def parse(text, numbers=True):
    """``{key: value}`` of every ``key=value`` line (within one process, the last one wins);
    numbers converted (``numbers=False``: as strings). The outputs of several processes are
    combined (see the module's description)."""
    docs = documents(text)
    if len(docs) == 1:
        return _parse_one(docs[0], numbers)
    result = _combine([_parse_one(doc) for doc in docs])
    if numbers:
        return result
    first = _parse_one(docs[0], numbers=False)
    combined = SUMMED + MAXIMUM + MINIMUM + ('throughput_units',)
    return dict((key, str(value) if key in combined or key not in first else first[key])
                for key, value in result.items())


def messages(text):
    """The free-text lines (warnings and errors such as ``accept: Too many open files``)."""
    return [line.strip() for line in text.splitlines()
            if line.strip() and not KEY_VALUE.match(line.strip())]


def throughput_bps(kv):
    """The measured rate in bit/s from one side's key/values, or None if that side has none.

    The reading side's ``local_throughput`` first, then ``throughput`` scaled by its units, then
    the writing side's ``remote_throughput`` (the reader's figure, echoed over the control socket).
    """
    local = kv.get('local_throughput')
    if isinstance(local, (int, float)) and local > 0:
        return float(local)
    if 'throughput' in kv:
        units = str(kv.get('throughput_units', 'Mbit/s')).lower()
        if units not in UNITS_BPS:
            raise ParseError('neper: unknown throughput_units %r' % kv.get('throughput_units'))
        try:
            return float(kv['throughput']) * UNITS_BPS[units]
        except (TypeError, ValueError):
            raise ParseError('neper: throughput=%r is not a number' % kv['throughput'])
    remote = kv.get('remote_throughput')
    if isinstance(remote, (int, float)) and remote > 0:
        return float(remote)
    return None


def summary(text):
    """The figures a run record needs from one side's stdout."""
    kv = parse(text)
    if 'VERSION' not in kv and 'num_flows' not in kv:
        raise ParseError('neper: no VERSION= or num_flows= line: this is not neper output')
    return {
        'role': 'client' if kv.get('client') == 1 else 'server',
        'processes': len(documents(text)),
        'num_flows': kv.get('num_flows'),
        'num_threads': kv.get('num_threads'),
        'test_length': kv.get('test_length'),
        'throughput_bps': throughput_bps(kv),
        'num_samples': kv.get('num_samples'),
        'messages': messages(text),
    }
