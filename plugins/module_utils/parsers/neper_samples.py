# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""neper ``--all-samples`` CSV, written by the reading side.

One row per (thread, flow) snapshot each interval. ``flow_id`` is per thread, so flows are keyed
by ``(tid, flow_id)``; ``bytes_read`` is cumulative, so a flow's last row is its total. The
``bytes_read/s`` column is an aggregate across flows, not a per-flow rate, and is not used.
A flow that never received data keeps only its initial row with 0 bytes. Several server
processes (more flows than one holds) write one file each; ``merge`` joins them with their flow
ids made unique.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError

REQUIRED = ('tid', 'flow_id', 'time', 'bytes_read')


def flow_bytes(text):
    """``{(tid, flow_id): total bytes}``: each flow's ``bytes_read`` at its latest sample."""
    lines = text.splitlines()
    if not lines:
        raise ParseError('neper samples: empty file')
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader)]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ParseError('neper samples: header lacks %s (got %s); pass the --all-samples file of '
                         'the reading side of tcp_stream' % (', '.join(missing), ','.join(header)))
    col = dict((name, header.index(name)) for name in REQUIRED)
    latest = {}
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            key = (int(row[col['tid']]), int(row[col['flow_id']]))
            when = float(row[col['time']])
            nbytes = int(float(row[col['bytes_read']]))
        except (IndexError, ValueError):
            raise ParseError('neper samples: line %d is not a sample row: %r' % (number, ','.join(row)))
        if key not in latest or when >= latest[key][0]:
            latest[key] = (when, nbytes)
    return dict((key, value[1]) for key, value in latest.items())


def merge(parts, out):
    """Join the ``--all-samples`` files of several tcp_stream processes into one: ``parts`` is
    ``[(path, flow_id offset)]``, in order; every row's ``flow_id`` gets its file's offset (the
    flows of the processes before it), so that ``(tid, flow_id)`` stays unique across processes.
    One header is kept; missing files (a process that wrote none) are skipped. Rows are streamed,
    not held: a run of many thousand flows has millions. Returns how many rows were written."""
    rows = 0
    header = None
    with open(out, 'w') as target:
        for path, offset in parts:
            try:
                source = open(path)
            except (IOError, OSError):
                continue
            with source:
                first = source.readline()
                if not first.strip():
                    continue
                names = [h.strip() for h in first.strip().split(',')]
                if 'flow_id' not in names:
                    raise ParseError('neper samples: %s has no flow_id column (got %s)'
                                     % (path, first.strip()))
                column = names.index('flow_id')
                if header is None:
                    header = first
                    target.write(first)
                for line in source:
                    fields = line.rstrip('\n').split(',')
                    if len(fields) <= column:
                        continue
                    try:
                        fields[column] = str(int(fields[column]) + offset)
                    except ValueError:
                        raise ParseError('neper samples: %s has a row that is not a sample: %r'
                                         % (path, line.strip()))
                    target.write(','.join(fields) + '\n')
                    rows += 1
    return rows


def jain_index(values):
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1 when all equal, 1/n when one takes all.

    None for no values or when every value is 0 (fairness of nothing is undefined).
    """
    values = [float(v) for v in values]
    squares = sum(v * v for v in values)
    if not values or squares == 0:
        return None
    return sum(values) ** 2 / (len(values) * squares)


def summarize_flows(per_flow, zero_threshold=0):
    """Per-flow totals (a list of byte counts) -> count, zero-byte flows, Jain's index, spread.

    ``zero_threshold``: a flow with at most this many bytes counts as a zero-byte flow.
    """
    values = sorted(per_flow)
    count = len(values)
    return {
        'flows': count,
        'zero_bytes': sum(1 for v in values if v <= zero_threshold),
        'total_bytes': sum(values),
        'min_bytes': values[0] if values else None,
        'median_bytes': values[count // 2] if values else None,
        'max_bytes': values[-1] if values else None,
        'jain_index': jain_index(values),
    }


def summary(text):
    """The per-flow figures of one ``--all-samples`` file."""
    return summarize_flows(flow_bytes(text).values())
