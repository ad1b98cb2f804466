# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iperf 2 ``-e`` (enhanced) text of either side.

One thread per flow; each flow ends with a report line ``[ID] 0.0000-END sec TRANSFER BANDWIDTH
...``. The client's transfer is what it wrote, the server's what it received. The client's
``[SUM]`` line carries the total retries (Rtry) and its ``[ CT]`` line the connect
``(tot/err)``. Byte units are 1024-based, rates 1000-based (iperf's default adaptive format).
More flows than one process holds take several processes, whose outputs are concatenated (each
from its ``Client connecting to`` or ``Server listening on`` line); ``summary`` adds them up.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError

BYTE_UNITS = {'bytes': 1, 'kbytes': 1024, 'mbytes': 1024 ** 2, 'gbytes': 1024 ** 3,
              'tbytes': 1024 ** 4}
RATE_UNITS = {'bits/sec': 1, 'kbits/sec': 1e3, 'mbits/sec': 1e6, 'gbits/sec': 1e9,
              'tbits/sec': 1e12}
# The client sends a test header before any data (60 bytes measured with -e); a flow that
# received no more than this carried no payload.
HEADER_BYTES = 128

_REPORT = re.compile(
    r'^\[\s*(?P<id>\d+|SUM)\]\s+(?P<start>[0-9.]+)\s*-\s*(?P<end>[0-9.]+)\s+sec\s+'
    r'(?P<xfer>[0-9.]+)\s+(?P<xunit>[KMGT]?Bytes)\s+(?P<bw>[0-9.]+)\s+(?P<bunit>[KMGT]?bits/sec)'
    r'(?P<rest>.*)$')
_CONNECT = re.compile(r'^\[\s*CT\]\s+final connect times.*\(tot/err\)\s*=\s*(\d+)/(\d+)')
_CLIENT = re.compile(r'^Client connecting to ')
_SERVER = re.compile(r'^Server listening on ')


def _report(match):
    rest = match.group('rest').split()
    line = {
        'start': float(match.group('start')),
        'end': float(match.group('end')),
        'bytes': int(round(float(match.group('xfer')) * BYTE_UNITS[match.group('xunit').lower()])),
        'bps': float(match.group('bw')) * RATE_UNITS[match.group('bunit').lower()],
    }
    # client -e: Write/Err Rtry Cwnd/RTT(var) NetPwr
    if len(rest) >= 2 and '/' in rest[0] and rest[1].isdigit():
        line['retries'] = int(rest[1])
    return line


def parse(text):
    """One process's output: role, per-flow final reports ``{id: {start, end, bytes, bps[, retries]}}``, the ``[SUM]``
    report, connect totals and the other messages (errors such as ``tcp write failed``)."""
    role = None
    flows = {}
    total = None
    connect = None
    notes = []
    for line in text.splitlines():
        stripped = line.strip()
        if _CLIENT.match(stripped):
            role = 'client'
        elif _SERVER.match(stripped):
            role = 'server'
        match = _REPORT.match(stripped)
        if match:
            report = _report(match)
            if match.group('id') == 'SUM':
                if report['start'] == 0:
                    total = report
            elif report['start'] == 0:
                flow = int(match.group('id'))
                if flow not in flows or report['end'] >= flows[flow]['end']:
                    flows[flow] = report
            continue
        match = _CONNECT.match(stripped)
        if match:
            connect = {'total': int(match.group(1)), 'errors': int(match.group(2))}
            continue
        if stripped and not stripped.startswith(('[', '-')) and 'connected with' not in stripped:
            notes.append(stripped)
    if role is None:
        raise ParseError('iperf2: neither "Client connecting to" nor "Server listening on": '
                         'not iperf 2 output')
    return {'role': role, 'flows': flows, 'sum': total, 'connect': connect, 'messages': notes}


def documents(text):
    """The outputs of the processes in ``text``: a new one at each header line after the first
    (what comes before the first header belongs to the first)."""
    docs = [[]]
    seen_header = False
    for line in text.splitlines():
        header = bool(_CLIENT.match(line.strip()) or _SERVER.match(line.strip()))
        if header and seen_header:
            docs.append([])
        seen_header = seen_header or header
        docs[-1].append(line)
    return ['\n'.join(doc) + '\n' for doc in docs]


def _add(values):
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def summary(text):
    """Role, flows, bytes, seconds, retries, per-flow bytes, connects and messages; summed over
    the outputs of several processes (seconds: the longest)."""
    parts = [_summary(doc) for doc in documents(text)]
    first = parts[0]
    if len(parts) == 1:
        return dict(first, processes=1)
    return {
        'role': first['role'],
        'processes': len(parts),
        'flows': sum(p['flows'] for p in parts),
        'bytes': _add([p['bytes'] for p in parts]),
        'seconds': max([p['seconds'] for p in parts if p['seconds'] is not None] or [None]),
        'retries': _add([p['retries'] for p in parts]),
        'per_flow_bytes': [b for p in parts for b in p['per_flow_bytes']],
        'connect_total': _add([p['connect_total'] for p in parts]),
        'connect_errors': _add([p['connect_errors'] for p in parts]),
        'messages': [m for p in parts for m in p['messages']],
    }


def _summary(text):
    data = parse(text)
    total = data['sum']
    if total is None and data['flows']:
        total = {'start': 0.0, 'end': max(f['end'] for f in data['flows'].values()),
                 'bytes': sum(f['bytes'] for f in data['flows'].values()), 'bps': None}
    return {
        'role': data['role'],
        'flows': len(data['flows']),
        'bytes': total['bytes'] if total else None,
        'seconds': total['end'] - total['start'] if total else None,
        'retries': total.get('retries') if total else None,
        'per_flow_bytes': [f['bytes'] for f in data['flows'].values()],
        'connect_total': data['connect']['total'] if data['connect'] else None,
        'connect_errors': data['connect']['errors'] if data['connect'] else None,
        'messages': data['messages'],
    }
