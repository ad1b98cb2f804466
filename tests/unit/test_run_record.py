"""Normalising run directories built (in the results layout) from the real recorded runs."""

import gzip
import json
import os
import shutil

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import run_record

import recorded


def _record(tmp_path, run, **kwargs):
    return run_record.normalise(recorded.build_run(str(tmp_path), run, 'baseline', **kwargs))


def test_direct_layout_shows_what_neper_hides(tmp_path):
    rec = _record(tmp_path, 'd_neper_F4000')
    assert set(run_record.RECORD_KEYS) <= set(rec)
    assert rec['status'] == 'ok' and rec['tool'] == 'neper' and rec['problems'] == []
    # the aggregate looks fine ...
    assert rec['throughput_bps'] == pytest.approx(95.6e6, rel=0.01)
    assert rec['fraction_of_bottleneck'] == pytest.approx(0.956, abs=0.001)
    # ... but most flows were aborted by the sender's own qdisc drops, which are not retransmissions
    assert rec['flows_started'] == 4000
    assert rec['flows_aborted'] == 3735 and rec['flows_aborted'] > 0.9 * rec['flows_started']
    assert rec['flows_alive'] == 274  # timeseries.txt at t=19.10, the last sample within 20 s
    assert rec['local_qdisc_drops'] == rec['bottleneck_drops'] == 273997
    assert rec['retrans_segs'] == 1 and rec['rto_count'] == 0
    assert rec['flows_zero_bytes'] == 3135
    assert rec['jain_index'] == pytest.approx(0.0807, abs=1e-4)
    assert rec['backlog_max_bytes'] == 96896
    assert rec['senders'] == ['sender'] and rec['receivers'] == ['receiver']
    assert rec['per_host']['sender']['nstat']['TcpExtTCPAbortOnTimeout'] == 3735
    assert rec['cpu']['sender']['softirq'] == pytest.approx(10.545)
    assert rec['rtt_ms'] is None and rec['ecn_marks'] is None
    assert rec['bottleneck'] == {'host_role': 'sender', 'device': 'veth-snd', 'source': 'run.json'}


def test_bottleneck_found_without_run_json_saying(tmp_path):
    run_dir = recorded.build_run(str(tmp_path), 'r_neper_F100', 'zd')
    with open(os.path.join(run_dir, 'run.json')) as f:
        run = json.load(f)
    del run['params']['bottleneck']
    with open(os.path.join(run_dir, 'run.json'), 'w') as f:
        json.dump(run, f)
    rec = run_record.normalise(run_dir)
    assert rec['bottleneck'] == {'host_role': 'router', 'device': '',
                                 'source': 'the only rate-limiting root qdisc'}
    assert rec['bottleneck_drops'] == 18767 and rec['backlog_max_bytes'] == 98410


def test_forwarding_layout_no_aborts(tmp_path):
    run_dir = recorded.build_run(str(tmp_path), 'r_neper_F100', 'zd')
    recorded.copy_cpu(run_dir, 'receiver')
    recorded.copy_rtt(run_dir, 'sender')
    rec = run_record.normalise(run_dir)
    assert rec['mode'] == 'zd' and rec['flows'] == 100
    assert rec['flows_aborted'] == 0 and rec['flows_alive'] == 100
    assert rec['retrans_segs'] == 25908 and rec['rto_count'] == 1769
    assert rec['bottleneck_drops'] == 18767
    assert rec['local_qdisc_drops'] is None  # the sender's qdiscs were not recorded
    assert rec['flows_zero_bytes'] == 23
    assert rec['rtt_ms']['count'] == 40
    assert rec['cpu']['receiver']['user'] == pytest.approx(100.0 * 706 / 1192)
    assert json.loads(run_record.dumps(rec))['per_host']['router']['qdisc']['total']['drops'] == 18767


def test_iperf_runs(tmp_path):
    rec3 = _record(tmp_path / 'a', 'r_iperf3_P128')
    assert rec3['tool'] == 'iperf3' and rec3['flows_started'] == 128 and rec3['flows_zero_bytes'] == 76
    assert rec3['retrans_segs'] == 22846  # nstat, not iperf3's own 22829
    assert rec3['flows_alive'] == 128  # 129 established on the data port, one is iperf3's control
    rec2 = _record(tmp_path / 'b', 'r_iperf2_P1000')
    assert rec2['tool'] == 'iperf2' and rec2['flows_zero_bytes'] == 389
    assert rec2['flows_alive'] == 997 and rec2['rto_count'] == 9947
    # received bytes over the client's sending time (263 MBytes in 28.0072 s)
    assert rec2['throughput_bps'] == pytest.approx(263 * 1024 ** 2 * 8 / 28.0072)


EXPERIMENT = os.path.join(os.path.dirname(__file__), 'fixtures', 'experiment')


def test_several_iperf3_processes_take_the_receivers_samples(tmp_path):
    # 160 flows = two iperf3 processes; recorded by bench/experiment_overhead.py
    run_dir = str(tmp_path / 'run')
    shutil.copytree(os.path.join(EXPERIMENT, 'fwd_iperf3_F160'), run_dir)
    rec = run_record.normalise(run_dir)
    assert rec['per_host']['receiver']['server']['processes'] == 2
    assert rec['throughput_source'] == 'sampled' and rec['problems'] == []
    # receiver/established.txt: 162 connections (two are iperf3's control) from t=1.001 to
    # t=6.002, bytes received 5458600 -> 65231360
    assert rec['throughput_sampled'] == {'bps': pytest.approx((65231360 - 5458600) * 8 / 5.001),
                                         'window_s': 5.001, 'connections': 162,
                                         'window': [1.001, 6.002]}
    assert rec['throughput_bps'] == rec['throughput_sampled']['bps']
    assert rec['fraction_of_bottleneck'] == pytest.approx(0.956, abs=0.001)
    assert rec['flows_started'] == 160 and rec['flows_alive'] == 160


def test_several_iperf3_processes_without_byte_samples_say_so(tmp_path):
    run_dir = str(tmp_path / 'run')
    shutil.copytree(os.path.join(EXPERIMENT, 'fwd_iperf3_F160'), run_dir)
    path = os.path.join(run_dir, 'receiver', 'established.txt')
    with open(path) as f:
        lines = [' '.join(line.split()[:2]) + '\n' for line in f]
    with open(path, 'w') as f:
        f.writelines(lines)
    rec = run_record.normalise(run_dir)
    assert rec['throughput_source'] == 'tool' and rec['throughput_sampled'] is None
    assert rec['throughput_bps'] == rec['per_host']['receiver']['server']['throughput_bps']
    assert any('may overstate' in p for p in rec['problems'])


def test_each_iperf3_process_is_counted_before_its_own_end():
    # The sender of a 200-flow run (two iperf3 processes, ports 5201 and 5202, 5 s): the
    # second process's last streams connected a second later, so it exited at 7.444 s, two
    # seconds after the first (5.44 s). Each port is counted at the end of its own process's
    # test, 5 s after its connections were up: 5201 (up by 0.009 s) at 4.012 s, 101; 5202 (up
    # by 1.011 s, all 101 seen at 2.015 s) at 5.012 s, 101. (Here both were up in time for a
    # single end too; test_alive_by_process_cases has ends that differ.)
    host, problems = run_record.read_host(os.path.join(EXPERIMENT, 'fwd_iperf3_F200_sender'))
    assert problems == []
    assert host['client_times'] == {'started_s': 0.0, 'exited_s': [5.44, 7.444],
                                    'ports': [5201, 5202], 'stopped_s': None}
    assert host['established_by_port'][1] == (1.011, {5201: 101, 5202: 88})
    assert run_record._alive_by_process(host, 5) == 202
    assert run_record._alive({'sender': host}, ['sender'], 5) == 202


def test_a_client_lingering_after_its_test_does_not_move_the_end():
    # The sender of the direct layout, 1000 flows, iperf2, 15 s: every flow was up at 1.015 s;
    # 533 were aborted; iperf2's client waited for flows stuck in timeouts and exited at
    # 33.872 s, when no connection was left. The test ended 15 s after 0.008 s (the sample before
    # the count reached 1000): the count at 14.013 s.
    host, problems = run_record.read_host(os.path.join(EXPERIMENT, 'direct_iperf2_F1000_sender'))
    assert problems == [] and 'established_by_port' not in host
    assert host['client_times']['exited_s'] == [33.872]
    assert run_record._alive({'sender': host}, ['sender'], 15) == 628


@pytest.mark.parametrize('exited,ports,expected', [
    # a process that was never seen to exit is counted at the test's nominal end
    ([3.0, None], [1, 2], 5 + 7),
    # a port without connections in that sample counts 0
    ([3.0, 4.6], [1, 3], 5),
    # ports and processes that do not pair up: no per-process count
    ([3.0], [1, 2], None),
])
def test_alive_by_process_cases(exited, ports, expected):
    host = {'established_by_port': [(1.0, {1: 5, 2: 6}), (2.0, {1: 5, 2: 7}), (4.0, {1: 0, 2: 7})],
            'client_times': {'started_s': 0.0, 'exited_s': exited, 'ports': ports}}
    assert run_record._alive_by_process(host, 5) == expected


def test_without_ports_the_first_exit_ends_the_test():
    host = {'established': [(1.0, 12), (2.0, 11), (4.0, 7)],
            'client_times': {'started_s': 0.0, 'exited_s': [2.6, 4.9], 'ports': []}}
    assert run_record._alive({'sender': host}, ['sender'], 5) == 11
    del host['client_times']
    assert run_record._alive({'sender': host}, ['sender'], 5) == 7


def test_sampled_window_skips_staggered_starts_and_ends():
    # 4000 flows, 32 iperf3 processes through a 100 Mbit tbf: connecting took 14 s, so the
    # processes' own rates add up to 143.8 Mbit/s. From 8.002 (3997 connections, within 1 % of
    # the 4032 reached at 14.003) to 23.004 none closed; at 24.004 the first processes ended.
    with open(os.path.join(EXPERIMENT, 'established_iperf3_F4000_receiver.txt')) as f:
        points = run_record._established(f.read())
    bps, seconds, top, (first, last) = run_record._sampled_window(points)
    assert top == 4032 and seconds == pytest.approx(15.002)
    assert (first, last) == (8.002, 23.004)
    assert bps == pytest.approx((233599352 - 54505020) * 8 / 15.002)
    assert 0.95e8 < bps < 0.96e8


@pytest.mark.parametrize('points,expected', [
    # a closure (count falls) ends a stretch: the longer one after it wins
    ([(0, 10, 0, 0), (1, 10, 100, 0), (2, 9, 50, 0), (3, 10, 150, 0), (4, 10, 250, 0),
      (5, 10, 350, 0)], (800.0, 2, 10, (3, 5))),
    # bytes falling with an unchanged count (one closed, one opened) end it too
    ([(0, 10, 0, 0), (1, 10, 100, 0), (2, 10, 90, 0), (3, 10, 190, 0)], (800.0, 1, 10, (0, 1))),
    # two-column lines, a single sample, or nothing near the maximum: no window
    ([(0, 10), (1, 10)], None),
    ([(0, 10, 0, 0)], None),
    ([(0, 10, 0, 0), (1, 2, 10, 0), (2, 10, 20, 0)], None),
    # a slow read (1.0 s against a median of 0.01) does not begin a stretch: the next sample does
    ([(0, 10, 0, 0, 1.0), (1, 10, 100, 0, 0.01), (2, 10, 200, 0, 0.01), (3, 10, 300, 0, 0.01)],
     (800.0, 2, 10, (1, 3))),
    # nor end one; reads of up to 0.05 s are sharp whatever the median
    ([(0, 10, 0, 0, 0.05), (1, 10, 100, 0, 0.001), (2, 10, 200, 0, 0.001), (3, 10, 300, 0, 0.9)],
     (800.0, 2, 10, (0, 2))),
    # a stretch with only one sharp read (a closure between) makes no window
    ([(0, 10, 0, 0, 0.9), (1, 10, 100, 0, 0.01), (2, 9, 150, 0, 0.01), (3, 10, 300, 0, 0.01),
      (4, 10, 400, 0, 0.9)], None),
])
def test_sampled_window_cases(points, expected):
    assert run_record._sampled_window(points) == expected


@pytest.mark.parametrize('text', ['1.0 3 7\n', '1.0\n', 'x 3\n', '1.0 3 a b\n',
                                  '1.0 3 5201:3\n', '1.0 3 7 8 0.1 5201\n', '1.0 3 7 8 5201:x\n',
                                  '1.0 3 7 5201:1 8\n', '1.0 3 7 8 5201:1:2\n',
                                  '1.0 3 7 8 0.1 0.2\n', '1.0 3 7 8 x\n'])
def test_established_lines_are_checked(text):
    with pytest.raises(run_record.ParseError, match='established: line 1'):
        run_record._established(text)


def test_established_counts_by_port():
    text = '0.01 0 0 0 5201:0 5202:0\n1.0 102 5000 0 5201:101 5202:1\n2.0 3 9000 0\n'
    assert run_record._established(text) == [(0.01, 0, 0, 0), (1.0, 102, 5000, 0),
                                             (2.0, 3, 9000, 0)]
    assert [(counts, sums) for _point, counts, sums in run_record._established_lines(text)] == [
        ({5201: 0, 5202: 0}, {}), ({5201: 101, 5202: 1}, {}), ({}, {})]


def test_slow_reads_do_not_bound_the_window_of_a_real_run():
    # 40,000 flows: while they connected the reads took 1.8, 1.1, 0.8, 0.7, 0.8 s; from 10.407 on
    # 0.2-0.3 s. The window runs from there: 93.8 Mbit/s. Ignoring the read times (samplers before
    # them) it ran from 4.917 and gave 94.4, the slow first reads counting too few bytes.
    with open(os.path.join(EXPERIMENT, 'established_neper_F40000_receiver.txt')) as f:
        text = f.read()
    bps, seconds, top, (first, last) = run_record._sampled_window(run_record._established(text))
    assert (first, last, top) == (10.407, 23.384, 40000)
    assert bps == pytest.approx((227429608 - 75222976) * 8 / 12.977)
    bare = [p[:4] for p in run_record._established(text)]
    bps_bare, _s, _top, (first_bare, _last) = run_record._sampled_window(bare)
    assert first_bare == 4.917 and bps_bare == pytest.approx((227429608 - 9438168) * 8 / 18.467)


def test_established_counts_and_bytes_by_port():
    # the sampler's lines since sock_diag: port:count:bytes_received:bytes_acked
    text = '0.5 3 700 0 12867:2:500:0 12869:1:200:0\n1.5 4 1700 0 12867:2:900:0 12869:2:800:0\n'
    lines = list(run_record._established_lines(text))
    assert [counts for _point, counts, _sums in lines] == [{12867: 2, 12869: 1}, {12867: 2, 12869: 2}]
    assert [sums for _point, _counts, sums in lines] == [{12867: (500, 0), 12869: (200, 0)},
                                                         {12867: (900, 0), 12869: (800, 0)}]


@pytest.mark.parametrize('content', ['{"exited_s": [1]}', '{"started_s": 0, "exited_s": 3}',
                                     '{"started_s": 0, "exited_s": ["x"]}',
                                     '{"started_s": 0, "exited_s": [1], "ports": ["5201"]}', '[]'])
def test_client_times_are_checked(content):
    with pytest.raises(run_record.ParseError, match='client_times: not'):
        run_record._client_times(content)


def test_failed_run_keeps_status_reason_and_partial_figures(tmp_path):
    run_dir = recorded.build_run(str(tmp_path), 'r_neper_F100', 'zd', status='failed',
                                 reason='client rc=1: socket: Too many open files')
    os.unlink(os.path.join(run_dir, 'receiver', 'server.txt'))
    with open(os.path.join(run_dir, 'receiver', 'samples.csv'), 'w') as f:
        f.write('garbage\n')
    rec = run_record.normalise(run_dir)
    assert rec['status'] == 'failed' and rec['reason'].startswith('client rc=1')
    assert rec['flows_zero_bytes'] is None and rec['retrans_segs'] == 25908
    assert any('receiver/samples.csv' in p for p in rec['problems'])


def test_missing_run_json(tmp_path):
    (tmp_path / 'sender').mkdir()
    rec = run_record.normalise(str(tmp_path))
    assert rec['status'] == 'failed' and 'run.json' in rec['reason']


def test_fixture_copies_match_the_shared_recordings():
    shared = recorded.SOURCES[0]
    if not os.path.isdir(shared):
        pytest.skip('no ../shared/recorded next to this clone')
    for run in recorded.LAYOUTS:
        for name in os.listdir(os.path.join(shared, run)):
            copy = os.path.join(recorded.FIXTURES, 'recorded', run, name)
            opener = (lambda p: gzip.open(p + '.gz', 'rt')) if not os.path.exists(copy) else open
            with opener(copy) as f, open(os.path.join(shared, run, name)) as g:
                assert f.read() == g.read(), copy


STALL = os.path.join(EXPERIMENT, 'neper_stall_F8')


def test_a_client_stopped_on_a_stalled_connect_is_recorded_with_what_its_flows_did(tmp_path):
    # neper, 8 flows: flows 0-2 connected, flow 3 stayed in SYN-SENT, the test never started
    # and the client was stopped 3 s after it should have ended (fixtures/experiment/README.md)
    run_dir = str(tmp_path / 'run')
    shutil.copytree(os.path.join(STALL, 'blocking'), run_dir)
    rec = run_record.normalise(run_dir)
    assert rec['status'] == 'ok' and rec['client_stopped'] is True and rec['problems'] == []
    assert rec['notes'] == [
        'receiver: server exit codes 255 after the client was stopped',
        'sender: client still running 3.0 s after the 3 s test: stopped (1 socket(s) in SYN-SENT, '
        '3 connection(s) established)']
    assert rec['flows_connected'] == 3 and rec['flows_stalled_connect'] == 1
    assert rec['connect_attempts'] == 5 and rec['connect_failures'] == 0
    # the stalled SYN, resent in the 6 s the client ran (Linux 6.18: the first four a second
    # apart, net.ipv4.tcp_syn_linear_timeouts)
    assert rec['syn_retrans'] == 5
    # neper's samples.csv holds only its header: the receiver's own per-connection bytes count
    assert rec['flows_started'] == 3 and rec['flows_zero_bytes'] == 3
    assert rec['jain_index'] is None
    assert rec['throughput_source'] == 'sampled' and rec['throughput_bps'] == 0.0
    assert rec['per_host']['sender']['connecting'] == {'samples': 7, 'max': 1, 'last': [6.092, 0]}
    assert rec['per_host']['receiver']['flows'] == {'connections': 3, 'bytes_received': 0,
                                                    'bytes_acked': 0}
    assert rec['not_comparable'] == [] and rec['zd_branch'] is None


def test_stalled_connects_of_a_client_that_ran_its_test():
    # --async-connect: neper ran its 3 s test with six flows; two stayed in SYN-SENT until it
    # exited at 3.141 s (the last sample half a second before that saw them)
    host, problems = run_record.read_host(os.path.join(STALL, 'async_sender'))
    assert problems == []
    assert host['connecting'] == [(0.08, 2), (1.103, 2), (2.106, 2), (3.068, 0)]
    assert run_record._stalled_connect({'sender': host}, ['sender']) == 2
    assert run_record._connected({'sender': host}, ['sender'], 'neper') == 6
    assert run_record._counter_if_known({'sender': host}, ['sender'], 'TcpExtTCPSynRetrans') == 4
    assert run_record._counter_if_known({'sender': host}, ['sender'], 'NoSuchCounter') is None


@pytest.mark.parametrize('name,text,match', [
    ('flows', 'a b 1 2 3\n', 'flows: line 1'),
    ('flows', '# header\na b 1 2 x y\n', 'flows: line 2'),
    ('connecting', '1.0\n', 'connecting: line 1'),
    ('connecting', '1.0 x\n', 'connecting: line 1'),
    ('host_json', '[]', 'host: not'),
    ('host_json', '{"devices": []}', 'host: not'),
])
def test_runner_files_are_checked(name, text, match):
    with pytest.raises(run_record.ParseError, match=match):
        getattr(run_record, '_' + name)(text)


LAYOUT = os.path.join(os.path.dirname(__file__), 'fixtures', 'layout')


@pytest.mark.parametrize('tree,run,layout_ok,filled', [
    # run.json names the branch the comparison needs; the sender's host.json has the txqueuelen
    ('pfifo', {'zd_branch': 'vm-pfifo'}, True, False),
    ('tbf', {'zd_branch': 'vm-pfifo'}, False, True),
    ('tbf', {'zd_branch': 'vm-tbf'}, True, True),
    # no zD kernel in the experiment: only the queue is checked
    ('pfifo', {'zd_branch': None}, None, False),
    # run.json without zd_branch (a run recorded by hand): the sender's release decides
    ('tbf', {}, None, True),
])
def test_the_guard_of_a_run(tree, run, layout_ok, filled):
    host, problems = run_record.read_host(os.path.join(LAYOUT, 'direct_%s_sender' % tree))
    assert problems == [] and host['host']['egress']['dev'] == 'vs'
    branch, layout, queue, reasons = run_record._zd_guard(run, {'sender': host}, ['sender'])
    assert branch == run.get('zd_branch')
    assert (layout['ok'] if layout else None) == layout_ok
    assert queue['filled'] is filled and queue['device'] == 'vs'
    assert len(reasons) == (layout_ok is False) + (not filled)


def test_every_sender_of_a_run_is_guarded_and_named():
    # two senders (directories sender-<host>): a's pfifo never filled, b's tbf cannot engage
    # vm-pfifo; the checks returned are the failing ones, each sender's reason names it
    hosts = dict(('sender-%s' % name, run_record.read_host(os.path.join(LAYOUT, 'direct_%s_sender' % tree))[0])
                 for name, tree in (('a', 'pfifo'), ('b', 'tbf')))
    branch, layout, queue, reasons = run_record._zd_guard(
        {'zd_branch': 'vm-pfifo'}, hosts, ['sender-a', 'sender-b'])
    assert layout['ok'] is False and layout['found'].startswith('root tbf'), layout
    assert queue['filled'] is False
    assert len(reasons) == 2, reasons
    assert reasons[0].startswith("not comparable: sender sender-a: the sender's queue never filled")
    assert reasons[1].startswith("not comparable: the bottleneck tree cannot engage zD's vm-pfifo "
                                 "branch: sender sender-b: vm-pfifo pushes back only at")


def test_a_physical_branchs_layout_is_one_reason_for_all_senders():
    # no bottleneck outside the senders: the hypervisor's tree is unknown, once for the run
    hosts = dict(('sender-%s' % name, run_record.read_host(os.path.join(LAYOUT, 'direct_pfifo_sender'))[0])
                 for name in ('a', 'b'))
    _branch, layout, _queue, reasons = run_record._zd_guard(
        {'zd_branch': 'physical-pfifo'}, hosts, ['sender-a', 'sender-b'])
    assert layout['ok'] is False
    physical = [r for r in reasons if 'physical-pfifo' in r]
    assert physical == ["not comparable: the bottleneck tree cannot engage zD's physical-pfifo "
                        "branch: physical-pfifo acts on the hypervisor's tap, and no such device "
                        "is known for this run"], reasons


def test_a_physical_branch_is_checked_on_the_bottleneck_outside_the_sender():
    host, _problems = run_record.read_host(os.path.join(LAYOUT, 'direct_pfifo_sender'))
    run = {'zd_branch': 'physical-pfifo', 'bottleneck': {'host_role': 'sender', 'device': 'vs'}}
    _branch, layout, _queue, reasons = run_record._zd_guard(run, {'sender': host}, ['sender'])
    assert layout['ok'] is False and layout['reason'] == (
        "physical-pfifo acts on the hypervisor's tap, and no such device is known for this run")
    run['bottleneck'] = {'host_role': 'hypervisor', 'device': 'vs'}
    _branch, layout, _queue, reasons = run_record._zd_guard(
        run, {'sender': {}, 'hypervisor': host}, ['sender'])
    assert layout['ok'] is True and layout['found'] == 'root pfifo 1: limit 100'


TWO_SENDERS = os.path.join(os.path.dirname(__file__), 'fixtures', 'experiment', 'two_senders_iperf3_F7')


def test_two_senders_on_one_receiver_per_sender_and_whole_run(tmp_path):
    # A real run (test_experiment_runner's two-sender case): snd1 4 flows on ports 5201-5202,
    # snd2 3 flows on 5203-5204 of the one receiver, 2 iperf3 processes each side of a pair.
    run_dir = str(tmp_path / 'run')
    shutil.copytree(TWO_SENDERS, run_dir)
    rec = run_record.normalise(run_dir)
    assert rec['status'] == 'ok' and rec['problems'] == [], rec['problems']
    assert rec['senders'] == ['sender-snd1', 'sender-snd2'] and rec['receivers'] == ['receiver']
    assert rec['flows_started'] == 7 and rec['flows_alive'] == 7 and rec['flows_zero_bytes'] == 0
    # Jain over all 7 flows of the run (the receiver's 4 processes), not a mean of the senders'
    every_flow = rec['per_host']['receiver']['server']
    assert every_flow['processes'] == 4 and every_flow['streams'] == 7
    assert rec['flow_bytes']['flows'] == 7
    senders = rec['per_sender']
    assert [(s['sender'], s['receiver'], s['dir'], s['receiver_dir'], s['flows'], s['flows_alive'],
             s['flows_zero_bytes']) for s in senders] == [
        ('snd1', 'rcv', 'sender-snd1', 'receiver', 4, 4, 0), ('snd2', 'rcv', 'sender-snd2', 'receiver', 3, 3, 0)]
    mean_of_senders = sum(s['jain_index'] for s in senders) / 2
    assert rec['jain_index'] != pytest.approx(mean_of_senders, abs=1e-6)
    # two iperf3 processes per sender: each sender's throughput is its own sampled acked bytes
    # (its clients' own rates add up to 98.7 Mbit/s, more than the run's 94.9), together the run's
    assert [s['throughput_source'] for s in senders] == ['sampled', 'sampled']
    assert senders[0]['throughput_bps'] == pytest.approx((19874440 - 757264) * 8 / (3.036 - 0.112))
    assert senders[1]['throughput_bps'] == pytest.approx((15940834 - 250306) * 8 / (3.041 - 0.145))
    assert sum(s['throughput_bps'] for s in senders) == pytest.approx(rec['throughput_bps'], rel=0.02)
    assert [s['retrans_segs'] for s in senders] == [711, 409]
    assert rec['retrans_segs'] == 711 + 409
    # the clocks' offsets (0.76 and 0.94 s) are within their uncertainty (1.39 s): not applied
    assert rec['start_at'] == 1796177736.942
    assert rec['start_spread_s'] == pytest.approx(0.04, abs=1e-6)
    assert [s['start_offset_s'] for s in senders] == [0.0, pytest.approx(0.04, abs=1e-6)]
    assert rec['not_comparable'] == []
    assert rec['qdisc_drops_by_host']['router'] == rec['bottleneck_drops'] == 344


def test_a_start_spread_beyond_the_maximum_flags_the_run(tmp_path):
    # the same run with snd2's clock known to be 0.9 s ahead (uncertainty 0.1 s): corrected, snd2
    # started 0.86 s before snd1
    run_dir = str(tmp_path / 'run')
    shutil.copytree(TWO_SENDERS, run_dir)
    with open(os.path.join(run_dir, 'run.json')) as f:
        run = json.load(f)
    run['clock_offsets'] = {'snd1': {'offset_s': 0.0, 'uncertainty_s': 0.1},
                            'snd2': {'offset_s': 0.9, 'uncertainty_s': 0.1}}
    with open(os.path.join(run_dir, 'run.json'), 'w') as f:
        json.dump(run, f)
    rec = run_record.normalise(run_dir)
    assert rec['start_spread_s'] == pytest.approx(0.86, abs=1e-6)
    assert [s['start_offset_s'] for s in rec['per_sender']] == [pytest.approx(0.86, abs=1e-6), 0.0]
    assert rec['not_comparable'] == ['not comparable: the senders started 0.860 s apart (clock offsets '
                                     'corrected), more than experiment_start_spread_max (0.5 s)']


def test_two_pairs_on_two_receivers_jain_over_every_flow(tmp_path):
    # Two recorded neper runs as the two pairs of one run: 4000 flows to receiver-r1 and 100 to
    # receiver-r2. The run's Jain is over all 4100 flows of both receivers' samples.
    run_dir = str(tmp_path / 'run')
    for name, recorded_run, sender, receiver in (('a', 'd_neper_F4000', 'vm1', 'r1'),
                                                 ('b', 'r_neper_F100', 'vm2', 'r2')):
        built = recorded.build_run(str(tmp_path / name), recorded_run, 'baseline')
        shutil.copytree(os.path.join(built, 'sender'), os.path.join(run_dir, 'sender-' + sender))
        shutil.copytree(os.path.join(built, 'receiver'), os.path.join(run_dir, 'receiver-' + receiver))
    with open(os.path.join(run_dir, 'run.json'), 'w') as f:
        json.dump({'mode': 'baseline', 'variant': 'default', 'flows': 4100, 'rep': 1, 'status': 'ok',
                   'params': {'duration': 20, 'tool': 'neper'},
                   'hosts': {'sender': ['vm1', 'vm2'], 'receiver': ['r1', 'r2']},
                   'pairs': [{'sender': 'vm1', 'receiver': 'r1', 'flows': 4000, 'port': 12866,
                              'sender_dir': 'sender-vm1', 'receiver_dir': 'receiver-r1'},
                             {'sender': 'vm2', 'receiver': 'r2', 'flows': 100, 'port': 12866,
                              'sender_dir': 'sender-vm2', 'receiver_dir': 'receiver-r2'}]}, f)
    rec = run_record.normalise(run_dir)
    alone = dict((r, _record(tmp_path / r, r)) for r in ('d_neper_F4000', 'r_neper_F100'))
    assert rec['flow_bytes']['flows'] == 4100
    assert rec['flows_zero_bytes'] == sum(a['flows_zero_bytes'] for a in alone.values())
    per = rec['per_sender']
    # each receiver serves one pair: each sender's figures are its own run's
    assert [p['jain_index'] for p in per] == [alone['d_neper_F4000']['jain_index'],
                                              alone['r_neper_F100']['jain_index']]
    assert [p['throughput_bps'] for p in per] == [alone['d_neper_F4000']['throughput_bps'],
                                                  alone['r_neper_F100']['throughput_bps']]
    assert rec['throughput_bps'] == pytest.approx(sum(p['throughput_bps'] for p in per))
    assert rec['jain_index'] not in (pytest.approx(sum(p['jain_index'] for p in per) / 2),)
    assert rec['start_spread_s'] is None and [p['start_offset_s'] for p in per] == [None, None]


def test_a_sender_side_flow_with_only_its_syn_acked_is_a_zero_byte_flow():
    # ss reports bytes_acked:1 for a connection that sent no data (the SYN counts, measured on
    # loopback); with its receiver shared, a neper sender's flows come from its own flows.txt
    hosts = {'sender-a': {'flows': [('10.0.0.1:40000', '10.0.0.9:12867', 0.1, 20.0, 0, 1),
                                    ('10.0.0.1:40001', '10.0.0.9:12867', 0.1, 20.0, 0, 5001)]},
             'sender-b': {'flows': [('10.0.0.2:40000', '10.0.0.9:12869', 0.1, 20.0, 0, 1)]},
             'receiver': {}}
    pairs = [('a', 'r', 'sender-a', 'receiver', 2), ('b', 'r', 'sender-b', 'receiver', 1)]
    entries = run_record._per_sender({}, 'neper', hosts, pairs, 20, {}, False)
    assert [(e['dir'], e['flows_zero_bytes']) for e in entries] == [('sender-a', 1), ('sender-b', 1)]


def test_a_sender_of_several_processes_without_a_sampled_stretch_keeps_its_clients_rates(tmp_path):
    # the two-sender run with snd1's samples cut to one line: no stretch to measure, so its
    # figure is its two iperf3 clients' own rates (54.02 Mbit/s), not none
    run_dir = str(tmp_path / 'run')
    shutil.copytree(TWO_SENDERS, run_dir)
    path = os.path.join(run_dir, 'sender-snd1', 'established.txt')
    with open(path) as f:
        first = f.readline()
    with open(path, 'w') as f:
        f.write(first)
    snd1 = run_record.normalise(run_dir)['per_sender'][0]
    assert snd1['throughput_source'] == 'tool'
    assert snd1['throughput_bps'] == pytest.approx(54.02e6, rel=0.01)


def test_a_bottleneck_on_a_role_of_several_hosts_sums_their_drops(tmp_path):
    # The local lab's layout with two senders: the tree on every sender's own egress
    # (host_role sender), whose directories are sender-<host>, none of them `sender`.
    run_dir = str(tmp_path / 'run')
    shutil.copytree(TWO_SENDERS, run_dir)
    before = run_record.normalise(run_dir)
    devices = [set((before['per_host'][d].get('qdisc') or {}).get('devices', {})) for d in before['senders']]
    device = sorted(devices[0] & devices[1])[0]
    path = os.path.join(run_dir, 'run.json')
    with open(path) as f:
        run = json.load(f)
    run['bottleneck'] = {'host_role': 'sender', 'device': device, 'tree': []}
    with open(path, 'w') as f:
        json.dump(run, f)
    rec = run_record.normalise(run_dir)
    assert rec['bottleneck'] == {'host_role': 'sender', 'device': device, 'source': 'run.json'}
    assert rec['bottleneck_drops'] == sum(
        before['per_host'][d]['qdisc']['devices'][device]['drops'] for d in before['senders'])


FOUR_SENDERS = os.path.join(os.path.dirname(__file__), 'fixtures', 'experiment', 'four_senders_neper_F40000')


def test_senders_shares_come_from_the_receivers_ports_and_name_the_idle_senders(tmp_path):
    # bench/flow_scale.py with neper's blocking connects: snd3 and snd4 were still connecting
    # their last flows (8,126 and 8,500 of 10,000 up) and sent nothing during the window of the
    # run's figure; each sender's share is the bytes the receiver took in on its port over that
    # window, so the shares add up to the run's figure (their clients' own reports do not).
    run_dir = str(tmp_path / 'run')
    shutil.copytree(FOUR_SENDERS, run_dir)
    rec = run_record.normalise(run_dir)
    assert rec['throughput_source'] == 'sampled'
    first, last = rec['throughput_sampled']['window']
    assert (first, last) == (4.266, 23.126)
    shares = [s['throughput_bps'] for s in rec['per_sender']]
    assert [s['throughput_source'] for s in rec['per_sender']] == ['sampled'] * 4
    assert shares[2] == shares[3] == 0
    # snd1 on 12867, snd2 on 12869: the receiver's per-port bytes at the window's two ends
    assert shares[0] == pytest.approx((115280688 - 5001816) * 8 / (last - first))
    assert shares[1] == pytest.approx((113385016 - 0) * 8 / (last - first))
    assert sum(shares) == pytest.approx(rec['throughput_bps'], rel=1e-9)
    assert rec['notes'] == [
        "snd3, snd4 sent nothing that reached the receiver from 4.3 to 23.1 s, the window of the "
        "run's throughput, with 36916 connections up: the run's figure is the other senders' "
        "(neper sends only once all flows of its process are connected; --async-connect in "
        "experiment_client_args starts with those that are)"]


def test_without_bytes_per_port_a_sender_keeps_its_own_sampled_stretch(tmp_path):
    # the same run as a sampler before sock_diag wrote it (ports as port:count only): no share
    # of the receiver's window can be told, so each sender's own bytes acked over its own stretch
    run_dir = str(tmp_path / 'run')
    shutil.copytree(FOUR_SENDERS, run_dir)
    path = os.path.join(run_dir, 'receiver', 'established.txt')
    with open(path) as f:
        lines = [line.split() for line in f]
    with open(path, 'w') as f:
        for fields in lines:
            f.write(' '.join(fields[:4] + [':'.join(p.split(':')[:2]) for p in fields[4:]]) + '\n')
    rec = run_record.normalise(run_dir)
    per = rec['per_sender']
    assert [s['throughput_source'] for s in per] == ['sampled'] * 4
    assert all(s['throughput_bps'] > 0 for s in per)
    assert rec['notes'] == []
