"""Pure parts of the experiment runner: the run matrix, run.json's status, iperf3's split, and
RTT samples from a capture recorded on this machine (fixtures/experiment/README.md)."""

import gzip
import os
import subprocess

import pytest

from ansible_collections.zerodrop.testbed.plugins.modules.experiment_plan import plan
from ansible_collections.zerodrop.testbed.plugins.modules.experiment_record import record
from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_probe, pcap_rtt

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'experiment')


def test_plan_is_the_cross_product_in_layout_order():
    runs = plan('s', ['baseline', 'zd'], [100, 1000], 2, {'duration': 20, 'cc': 'cubic'},
                {'qdisc_limit': [100, 1000], 'cc': ['cubic', 'reno']})
    assert len(runs) == 2 * 4 * 2 * 2
    assert [r['index'] for r in runs] == list(range(1, 33))
    assert runs[0]['relpath'] == 'baseline/qdisc_limit=100,cc=cubic/100/1'
    assert runs[1]['relpath'] == 'baseline/qdisc_limit=100,cc=cubic/100/2'
    assert runs[-1]['relpath'] == 'zd/qdisc_limit=1000,cc=reno/1000/2'
    assert runs[-1]['params'] == {'duration': 20, 'cc': 'reno', 'qdisc_limit': 1000, 'flows': 1000}
    assert len(set(r['relpath'] for r in runs)) == 32


def test_plan_makes_numbers_of_command_line_strings():
    runs = plan('s', ['baseline'], [10], 1, {'duration': '20', 'buffer': '1024', 'cc': '1',
                                             'qdisc_limit': '100kb', 'ecn': None},
                {'qdisc_limit': ['100', '2000'], 'threads': ['2']})
    assert runs[0]['params'] == {'duration': 20, 'buffer': 1024, 'cc': '1', 'qdisc_limit': 100,
                                 'ecn': None, 'threads': 2, 'flows': 10}
    assert runs[0]['relpath'] == 'baseline/qdisc_limit=100,threads=2/10/1'


def test_plan_without_sweep_is_default():
    runs = plan('s', ['baseline'], [10], 1, {}, {})
    assert [r['relpath'] for r in runs] == ['baseline/default/10/1']


@pytest.mark.parametrize('kwargs,field', [
    ({'sweep': {'flows': [1, 2]}}, 'sweep.flows'),
    ({'sweep': {'cc': []}}, 'sweep.cc'),
    ({'sweep': {'dev': ['a/b']}}, 'sweep.dev'),
    ({'flows': [0]}, 'flows'),
    ({'modes': []}, 'modes'),
    ({'name': '../x'}, 'name'),
    ({'params': {'duration': 'long'}}, 'params.duration'),
    ({'sweep': {'port': ['5201', 'x']}}, 'sweep.port'),
])
def test_plan_rejects_bad_input_naming_the_field(kwargs, field):
    args = dict(name='s', modes=['baseline'], flows=[10], repetitions=1, params={}, sweep={})
    args.update(kwargs)
    with pytest.raises(ValueError) as e:
        plan(**args)
    assert field in str(e.value)


def test_record_fails_with_every_reason_and_ignores_skipped():
    run = {'mode': 'zd', 'variant': 'default', 'flows': 10, 'rep': 1,
           'params': {'duration': 5, 'rate': '100mbit', 'flows': 10}}
    ok = record('e', run, {'sender': 'a', 'receiver': 'b'}, {}, {
        'sender': [{}, {'skipped': True}, {'status': 'ok', 'reason': None, 'tool_wall_s': 5.2}],
        'receiver': [{'status': 'ok', 'reason': None}]}, [], 100.0, 112.5)
    assert ok['status'] == 'ok' and ok['reason'] is None
    assert ok['bottleneck_rate_bps'] == 100000000 and ok['wall_s'] == 12.5
    assert ok['tool_wall_s'] == 5.2
    assert 'flows' not in ok['params'] and ok['started'] == '1970-01-01T00:01:40Z'
    bad = record('e', run, {}, {}, {
        'receiver': [{'status': 'failed', 'reason': 'server exited rc=1'}],
        'sender': [{'status': 'failed', 'reason': 'client timed out'}]}, ['qdisc: no'], 0, 1)
    assert bad['status'] == 'failed'
    assert bad['reason'] == ('qdisc: no; receiver: server exited rc=1; '
                             'sender: client timed out')


def test_iperf3_split_keeps_128_per_process():
    assert flow_probe.iperf3_split(128) == [128]
    assert flow_probe.iperf3_split(129) == [65, 64]
    assert sum(flow_probe.iperf3_split(1000)) == 1000
    assert max(flow_probe.iperf3_split(1000)) <= 128 and len(flow_probe.iperf3_split(1000)) == 8


def test_iperf3_error_in_its_json_fails_the_run_even_when_it_exits_0(tmp_path):
    procs = flow_probe.Processes(str(tmp_path), 'client', 1024)
    procs.stderr = ''
    with gzip.open(os.path.join(FIXTURES, 'iperf3_client_stream_error.json.gz'), 'rt') as f:
        procs.stdout = f.read()
    reason = procs.failure([0], allow_stopped=False)
    assert reason.startswith('client stopped the test: unable to write to stream socket: '
                             'Connection timed out (iperf3 ends every stream'), reason
    assert procs.failure([1], allow_stopped=False).startswith('client exited rc=1: unable to')
    with open(os.path.join(FIXTURES, 'fwd_iperf3_F160', 'sender', 'client.txt')) as f:
        procs.stdout = f.read()
    assert procs.failure([0, 0], allow_stopped=False) is None


def handshake_rtts(path):
    """SYN -> SYN/ACK times (ms) as tcpdump itself prints them, for a cross-check."""
    out = subprocess.run(['tcpdump', '-r', path, '-n', '-tt'], capture_output=True,
                         text=True, check=True).stdout
    syn = {}
    found = []
    for line in out.splitlines():
        fields = line.split()
        t, src, dst = float(fields[0]), fields[2], fields[4].rstrip(':')
        if 'Flags [S]' in line:
            syn[(src, dst)] = t
        elif 'Flags [S.]' in line and (dst, src) in syn:
            found.append((t - syn[(dst, src)]) * 1000)
    return found


def test_rtt_samples_from_a_recorded_capture():
    path = os.path.join(FIXTURES, 'iperf3_2flows.pcap')
    samples = pcap_rtt.rtt_samples(path)
    assert len(samples) > 20
    assert all(s >= 0 for s in samples)
    handshakes = handshake_rtts(path)
    assert len(handshakes) == 3  # control connection + 2 streams
    for h in handshakes:
        assert any(abs(s - h) < 0.002 for s in samples), (h, samples[:10])
    # A sender on a 100 Mbit/s bottleneck with a 100 kB fifo: queueing delay of a few ms at most.
    assert max(samples) < 100
