# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RTT samples, one value in milliseconds per line (``#`` comments and blank lines skipped),
summarised as percentiles with linear interpolation between closest ranks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError


def parse(text):
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        try:
            value = float(stripped.split()[0])
        except ValueError:
            raise ParseError('rtt: line %d is not a number of milliseconds: %r' % (number, line))
        if value < 0:
            raise ParseError('rtt: line %d is negative: %r' % (number, line))
        samples.append(value)
    return samples


def percentile(ordered, p):
    """The p-th percentile (0..100) of an ascending list, interpolating between ranks."""
    if not ordered:
        return None
    if not 0 <= p <= 100:
        raise ValueError('percentile must be within 0..100, got %r' % p)
    pos = (len(ordered) - 1) * p / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(samples, percentiles=(50, 90, 99)):
    """``{p50, p90, p99, max, count}`` in ms; None for no samples."""
    ordered = sorted(samples)
    if not ordered:
        return None
    result = dict(('p%g' % p, percentile(ordered, p)) for p in percentiles)
    result['max'] = ordered[-1]
    result['count'] = len(ordered)
    return result
