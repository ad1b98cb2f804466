"""iperf3 -J and iperf2 -e parsers on real recorded runs.

Expected figures from jq (iperf3: `jq '[.end.streams[].receiver.bytes]' server.txt`) and from
awk over iperf2's per-flow report lines (`[ID] 0.0000-END sec TRANSFER UNIT ...`).
"""

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError, iperf2, iperf3, neper_samples

import recorded


def test_iperf3_server_per_stream():
    summary = iperf3.summary(recorded.text('r_iperf3_P128', 'server.txt'))
    assert summary['role'] == 'server' and summary['streams'] == 128
    assert summary['received_bytes'] == sum(summary['per_flow_bytes']) == 235441904
    assert sum(1 for b in summary['per_flow_bytes'] if b == 0) == 76
    assert neper_samples.jain_index(summary['per_flow_bytes']) == pytest.approx(0.360390, abs=1e-6)
    assert summary['throughput_bps'] == pytest.approx(94084098.17, abs=0.01)


def test_iperf3_client_and_concatenated_documents():
    text = recorded.text('r_iperf3_P128', 'client.txt')
    client = iperf3.summary(text)
    assert client['role'] == 'client' and client['retransmits'] == 22829
    both = iperf3.summary(text + '\n' + text)
    assert both['processes'] == 2 and both['streams'] == 256
    assert both['retransmits'] == 2 * 22829


def test_iperf3_error_document():
    summary = iperf3.summary('{"start": {"connected": []}, "intervals": [], "end": {},'
                             ' "error": "unable to connect to server"}')
    assert summary['error'] == 'unable to connect to server' and summary['throughput_bps'] is None
    with pytest.raises(ParseError, match='-J'):
        iperf3.summary('iperf3: error - unable to connect')


def test_iperf2_server_flows():
    summary = iperf2.summary(recorded.text('r_iperf2_P1000', 'server.txt'))
    assert summary['role'] == 'server'
    assert summary['flows'] == 995  # 1000 connected, 5 never reported (the server crashed)
    per_flow = summary['per_flow_bytes']
    assert sum(1 for b in per_flow if b <= iperf2.HEADER_BYTES) == 389  # "60.0 Bytes" flows
    assert sum(per_flow) == pytest.approx(276167539, rel=1e-6)
    assert summary['bytes'] == 263 * 1024 ** 2  # [SUM] 263 MBytes
    assert 'corrupted double-linked list' in summary['messages']


def test_iperf2_client_sum_retries_and_connects():
    summary = iperf2.summary(recorded.text('r_iperf2_P1000', 'client.txt'))
    assert summary['role'] == 'client' and summary['flows'] == 1000
    assert summary['retries'] == 43720
    assert summary['seconds'] == pytest.approx(28.0072)
    assert (summary['connect_total'], summary['connect_errors']) == (1000, 0)
    assert summary['messages'].count('tcp write failed: Broken pipe') == 3


def test_iperf2_refuses_other_text():
    with pytest.raises(ParseError, match='not iperf 2'):
        iperf2.parse(recorded.text('r_neper_F100', 'server.txt'))


def test_iperf2_outputs_of_several_processes_are_summed():
    server = recorded.text('r_iperf2_P1000', 'server.txt')
    client = recorded.text('r_iperf2_P1000', 'client.txt')
    assert len(iperf2.documents(server + server)) == 2
    one = iperf2.summary(server)
    two = iperf2.summary(server + server)
    assert one['processes'] == 1 and two['processes'] == 2
    assert two['flows'] == 2 * 995 and len(two['per_flow_bytes']) == 2 * 995
    assert two['bytes'] == 2 * one['bytes'] and two['seconds'] == one['seconds']
    assert two['messages'].count('corrupted double-linked list') == 2
    clients = iperf2.summary(client * 3)
    assert clients['role'] == 'client' and clients['flows'] == 3000
    assert clients['retries'] == 3 * 43720
    assert (clients['connect_total'], clients['connect_errors']) == (3000, 0)
