# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nstat output: ``Name value rate`` lines under ``#kernel`` (or ``nstat -j`` JSON).

Read after ``nstat -n`` with a private NSTAT_HISTORY, the values are deltas over the run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError


def parse(text):
    """``{counter: int}`` from ``nstat -az`` text or ``nstat -j`` JSON."""
    stripped = text.strip()
    if stripped.startswith('{'):
        try:
            data = json.loads(stripped)
        except ValueError as e:
            raise ParseError('nstat: invalid JSON: %s' % e)
        counters = {}
        for table in data.values():
            if isinstance(table, dict):
                counters.update((k, int(v)) for k, v in table.items())
        return counters
    counters = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        try:
            counters[fields[0]] = int(fields[1])
        except (IndexError, ValueError):
            raise ParseError('nstat: line %d is not "Name value rate": %r' % (number, line))
    return counters


def delta(before, after):
    """``after - before`` per counter, for absolute snapshots (``nstat -az`` without a reset)."""
    return dict((name, value - before.get(name, 0)) for name, value in after.items())


def nonzero(counters):
    return dict((k, v) for k, v in counters.items() if v)
