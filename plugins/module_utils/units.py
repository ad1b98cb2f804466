# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Units exactly as iproute2's tc understands them (tc/tc_util.c: get_rate64, get_size, get_time).

Every value is normalised to the integer the kernel stores, so that a desired value and the value
read back with ``tc -j`` compare exactly:
- rates to bytes per second (``100Mbit`` -> 12500000); a bare number is bits per second;
- sizes to bytes, with tc's 1024-based ``k``/``m``/``g`` (``kbit`` is 1024/8 bytes);
- times to microseconds (a bare number is microseconds).
Suffixes are case-insensitive, as in tc.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_NUMBER = re.compile(r'^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z%]*)\s*$')

# tc_util.c suffixes[]: scale to bits per second.
RATE_SUFFIXES = {
    '': 1, 'bit': 1,
    'kibit': 1024, 'kbit': 1000,
    'mibit': 1024 ** 2, 'mbit': 1000 ** 2,
    'gibit': 1024 ** 3, 'gbit': 1000 ** 3,
    'tibit': 1024 ** 4, 'tbit': 1000 ** 4,
    'bps': 8,
    'kibps': 8 * 1024, 'kbps': 8000,
    'mibps': 8 * 1024 ** 2, 'mbps': 8 * 1000 ** 2,
    'gibps': 8 * 1024 ** 3, 'gbps': 8 * 1000 ** 3,
    'tibps': 8 * 1024 ** 4, 'tbps': 8 * 1000 ** 4,
}

# get_size(): scale to bytes.
SIZE_SUFFIXES = {
    '': 1, 'b': 1,
    'k': 1024, 'kb': 1024, 'kbit': 1024 // 8,
    'm': 1024 ** 2, 'mb': 1024 ** 2, 'mbit': 1024 ** 2 // 8,
    'g': 1024 ** 3, 'gb': 1024 ** 3, 'gbit': 1024 ** 3 // 8,
}

# get_time()/get_time64(): scale to nanoseconds; a bare number is microseconds.
TIME_SUFFIXES = {
    '': 1000,
    's': 10 ** 9, 'sec': 10 ** 9, 'secs': 10 ** 9,
    'ms': 10 ** 6, 'msec': 10 ** 6, 'msecs': 10 ** 6,
    'us': 1000, 'usec': 1000, 'usecs': 1000,
    'ns': 1, 'nsec': 1, 'nsecs': 1,
}


class UnitError(ValueError):
    pass


def _split(value, kind, suffixes):
    if isinstance(value, bool):
        raise UnitError('%r is not a %s' % (value, kind))
    if isinstance(value, (int, float)):
        number, suffix = float(value), ''
    else:
        m = _NUMBER.match(str(value))
        if not m:
            raise UnitError("'%s' is not a %s" % (value, kind))
        number, suffix = float(m.group(1)), m.group(2).lower()
    if suffix not in suffixes:
        known = ', '.join(sorted(s for s in suffixes if s))
        raise UnitError("'%s' is not a %s: unknown unit '%s' (tc knows: %s)"
                        % (value, kind, suffix, known))
    return number * suffixes[suffix]


def parse_rate(value):
    """Bytes per second, as tc stores a rate: '100Mbit' -> 12500000, '1gbit' -> 125000000."""
    return int(_split(value, 'rate', RATE_SUFFIXES) / 8)


def parse_size(value):
    """Bytes: '15000' -> 15000, '32k' -> 32768, '1mb' -> 1048576."""
    return int(_split(value, 'size', SIZE_SUFFIXES))


def parse_time_ns(value):
    """Nanoseconds: '10us' -> 10000, '10ms' -> 10000000; a bare number is microseconds."""
    return int(round(_split(value, 'time', TIME_SUFFIXES)))


def parse_time(value):
    """Microseconds (tc's 32-bit time unit): '10ms' -> 10000, '1s' -> 1000000."""
    return parse_time_ns(value) // 1000


def parse_percent(value):
    """A percentage as a float: '1%' -> 1.0, 0.5 -> 0.5."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = re.match(r'^\s*([0-9]*\.?[0-9]+)\s*%?\s*$', str(value))
    if not m:
        raise UnitError("'%s' is not a percentage (use e.g. 0.5%%)" % (value,))
    return float(m.group(1))


def tc_rate_arg(bytes_per_second):
    """The tc argument that sets exactly this rate (tc divides 'bps' by 8 after scaling by 8)."""
    return '%dbps' % bytes_per_second


def tc_size_arg(nbytes):
    return '%db' % nbytes


def tc_time_arg(microseconds):
    return '%dus' % microseconds


def human_rate(bytes_per_second):
    """Readable rate for messages and diffs: 12500000 -> '100Mbit'."""
    bits = bytes_per_second * 8
    for suffix, scale in (('Gbit', 10 ** 9), ('Mbit', 10 ** 6), ('Kbit', 10 ** 3)):
        if bits >= scale and bits % scale == 0:
            return '%d%s' % (bits // scale, suffix)
    return '%dbit' % bits
