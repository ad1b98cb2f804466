# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iperf 2 ``-e`` (enhanced) text of either side.

One thread per flow; each flow ends with a report line ``[ID] 0.0000-END sec TRANSFER BANDWIDTH
...``. The client's transfer is what it wrote, the server's what it received. The client's
``[SUM]`` line carries the total retries (Rtry) and its ``[ CT]`` line the connect
``(tot/err)``. Byte units are 1024-based, rates 1000-based (iperf's default adaptive format).
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
    """Role, per-flow final reports ``{id: {start, end, bytes, bps[, retries]}}``, the ``[SUM]``
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


def summary(text):
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
