# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iperf3 ``-J`` output of either side.

iperf3 allows at most ``-P 128`` streams, and one stream error aborts the whole test (the JSON
then carries ``error``). Received bytes per stream come from ``end.streams[].receiver``.
More flows take several iperf3 processes; their JSON documents may be concatenated in one file,
and the summary adds them up.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError


def parse(text):
    """Every JSON document in ``text`` (one per iperf3 process), as a list."""
    decoder = json.JSONDecoder()
    docs = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        try:
            data, end = decoder.raw_decode(text, pos)
        except ValueError as e:
            raise ParseError('iperf3: invalid JSON (%s); run iperf3 with -J' % e)
        if not isinstance(data, dict) or not ('start' in data or 'error' in data):
            raise ParseError('iperf3: no "start" or "error" object: not iperf3 -J output')
        docs.append(data)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not docs:
        raise ParseError('iperf3: empty output')
    return docs


def _add(values):
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def summary(text):
    """Role, streams, received bytes per stream, throughput (bit/s), retransmits, errors; summed
    over the documents of several processes."""
    parts = [_summary(data) for data in parse(text)]
    first = parts[0]
    return {
        'role': first['role'],
        'processes': len(parts),
        'streams': sum(p['streams'] for p in parts),
        'received_bytes': _add([p['received_bytes'] for p in parts]),
        'sent_bytes': _add([p['sent_bytes'] for p in parts]),
        'throughput_bps': _add([p['throughput_bps'] for p in parts]),
        'seconds': max([p['seconds'] for p in parts if p['seconds'] is not None] or [None]),
        'retransmits': _add([p['retransmits'] for p in parts]),
        'per_flow_bytes': [b for p in parts for b in p['per_flow_bytes']],
        'cpu_percent': [p['cpu_percent'] for p in parts] if len(parts) > 1 else first['cpu_percent'],
        'error': '; '.join(p['error'] for p in parts if p['error']) or None,
    }


def _summary(data):
    start = data.get('start', {})
    end = data.get('end', {})
    streams = end.get('streams', [])
    received = [int(s.get('receiver', {}).get('bytes', 0)) for s in streams]
    sum_received = end.get('sum_received', {})
    sum_sent = end.get('sum_sent', {})
    is_client = 'connecting_to' in start
    return {
        'role': 'client' if is_client else 'server',
        'streams': len(start.get('connected', [])) or len(streams),
        'received_bytes': sum_received.get('bytes'),
        'sent_bytes': sum_sent.get('bytes'),
        'throughput_bps': sum_received.get('bits_per_second'),
        'seconds': sum_received.get('seconds'),
        'retransmits': sum_sent.get('retransmits') if is_client else None,
        'per_flow_bytes': received,
        'cpu_percent': end.get('cpu_utilization_percent'),
        'error': data.get('error'),
    }
