"""How flows are split over tool processes (module_utils/flow_split), the commands flow_probe
builds from the split, and flow_run's checks of flows_per_process, servers and start_at."""

import time

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_probe, flow_split
from ansible_collections.zerodrop.testbed.plugins.modules import flow_run

# (tool, port, flows, per_process) -> [(port, data_port, flows) per process], span
SPLITS = [
    ('neper', 12866, 1, 19744, [(12866, 12867, 1)], 2),
    ('neper', 12866, 60, 25, [(12866, 12867, 20), (12868, 12869, 20), (12870, 12871, 20)], 6),
    ('neper', 12866, 50, 25, [(12866, 12867, 25), (12868, 12869, 25)], 4),
    ('neper', 12866, 51, 25, [(12866, 12867, 17), (12868, 12869, 17), (12870, 12871, 17)], 6),
    ('neper', 1000, 40000, 19744,
     [(1000, 1001, 13334), (1002, 1003, 13333), (1004, 1005, 13333)], 6),
    ('iperf3', 5201, 128, 128, [(5201, 5201, 128)], 1),
    ('iperf3', 5201, 129, 128, [(5201, 5201, 65), (5202, 5202, 64)], 2),
    # iperf3 never takes more than 128 streams in one process, whatever it is given
    ('iperf3', 5201, 300, 19744, [(5201, 5201, 100), (5202, 5202, 100), (5203, 5203, 100)], 3),
    ('iperf3', 5201, 7, 3, [(5201, 5201, 3), (5202, 5202, 2), (5203, 5203, 2)], 3),
    ('iperf2', 5001, 1000, 19744, [(5001, 5001, 1000)], 1),
    ('iperf2', 5001, 60, 25, [(5001, 5001, 20), (5002, 5002, 20), (5003, 5003, 20)], 3),
    ('iperf2', 5001, 2, 1, [(5001, 5001, 1), (5002, 5002, 1)], 2),
]


@pytest.mark.parametrize('tool,port,flows,per_process,expected,span', SPLITS,
                         ids=['%s-%d-by-%d' % (c[0], c[2], c[3]) for c in SPLITS])
def test_split(tool, port, flows, per_process, expected, span):
    found = flow_split.split(tool, port, flows, per_process)
    assert [(p['port'], p['data_port'], p['flows']) for p in found] == expected
    assert sum(p['flows'] for p in found) == flows
    assert flow_split.span(tool, flows, per_process) == span
    # the ports of the split are exactly the span's
    used = set(p['port'] for p in found) | set(p['data_port'] for p in found)
    assert used == set(range(port, port + span))


# (tool, RLIMIT_NOFILE) -> flows one process holds
CAPS = [
    ('neper', 20000, 20000 - flow_split.NOFILE_MARGIN),
    ('iperf2', 20000, 20000 - flow_split.NOFILE_MARGIN),
    ('iperf3', 20000, 128),
    ('iperf3', 300, 44),
    ('neper', 1024, 768),
    ('neper', 100, 0),
]


@pytest.mark.parametrize('tool,nofile,cap', CAPS, ids=['%s-%d' % c[:2] for c in CAPS])
def test_per_process_cap(tool, nofile, cap):
    assert flow_split.per_process_cap(tool, nofile) == cap


def test_split_refuses_no_room():
    with pytest.raises(ValueError, match='per_process must be at least 1'):
        flow_split.split('neper', 12866, 10, 0)


def params(**given):
    p = dict(phase='start', role='server', run_dir='/tmp/run', netns=None, tool='neper',
             bin_dir=None, flows=1, threads=1, duration=10, buffer=None, cc=None,
             port=12866, server_address=None, server_args=[], client_args=[], devices=[],
             sample_tc=True, interval=1.0, sysctls={}, nofile=0, server_wait=20,
             client_grace=30, client_stopped=False, stop_grace=5, capture_device=None,
             flows_per_process=0, servers=[], start_at=None, binary='/x/tcp_stream')
    p.update(given)
    return p


def test_neper_commands_of_60_flows_by_25_with_threads_per_process():
    p = params(flows=60, threads=4, flows_per_process=25, duration=3)
    servers = flow_probe.server_commands(p, '/run')
    assert len(servers) == 3
    assert servers[2][:11] == ['/x/tcp_stream', '-F', '20', '-T', '4', '-l', '3', '-C', '12870',
                               '-P', '12871']
    assert servers[2][-1] == '--all-samples=/run/.samples.2.csv'
    clients = flow_probe.client_commands(dict(p, phase='client', server_address='10.0.0.1'))
    assert [c[c.index('-C') + 1] for c in clients] == ['12866', '12868', '12870']
    assert flow_probe.server_ports(p) == [12866, 12868, 12870]
    assert flow_probe.data_ports(p) == [12867, 12869, 12871]
    # fewer flows in a process than threads: one thread per flow
    few = flow_probe.plan(params(flows=5, threads=4, flows_per_process=2))
    assert [(x['flows'], x['threads']) for x in few] == [(2, 2), (2, 2), (1, 1)]


def test_servers_blocks_are_each_split_and_sampled():
    p = params(tool='iperf2', flows_per_process=25, servers=[
        {'port': 5001, 'flows': 60, 'name': 'snd1'}, {'port': 6001, 'flows': 10}])
    assert [(x['port'], x['flows'], x['name']) for x in flow_probe.plan(p)] == [
        (5001, 20, 'snd1'), (5002, 20, 'snd1'), (5003, 20, 'snd1'), (6001, 10, None)]
    assert flow_probe.data_ports(p) == [5001, 5002, 5003, 6001]
    assert [c[c.index('-p') + 1] for c in flow_probe.server_commands(p, '/run')] == [
        '5001', '5002', '5003', '6001']
    assert flow_run.problems_of(p) == []


def test_iperf3_interval_only_with_several_processes():
    one = flow_probe.client_commands(params(tool='iperf3', flows=128, server_address='a',
                                            phase='client'))
    two = flow_probe.client_commands(params(tool='iperf3', flows=129, server_address='a',
                                            phase='client'))
    assert '-i' not in one[0] and len(one) == 1
    assert [c[c.index('-P') + 1] for c in two] == ['65', '64'] and all('-i' in c for c in two)


def test_flows_per_process_above_the_host_limit_is_refused_naming_it():
    cap = flow_split.per_process_cap('neper', flow_probe.nofile_limit(0))
    problems = flow_run.problems_of(params(flows_per_process=cap + 1))
    assert len(problems) == 1, problems
    assert problems[0].startswith('flows_per_process %d is above what one neper process can hold '
                                  'here, %d (RLIMIT_NOFILE' % (cap + 1, cap)), problems
    assert 'give at most %d, or 0 for that' % cap in problems[0]
    assert flow_run.problems_of(params(flows_per_process=cap)) == []
    iperf3 = flow_run.problems_of(params(tool='iperf3', flows_per_process=129))
    assert 'iperf3 takes at most 128 streams' in iperf3[0], iperf3
    assert flow_run.problems_of(params(flows_per_process=-1)) == [
        'flows_per_process must be 0 (what one process can hold here) or a positive number of '
        'flows (got -1)']
    small = flow_run.problems_of(params(nofile=100))
    assert small and small[0].startswith('nofile leaves a neper process no descriptors'), small


def test_ports_above_65535_are_refused_with_the_split():
    problems = flow_run.problems_of(params(flows=60, flows_per_process=25, port=65531))
    assert problems == ['port 65531 leaves no room: neper with 60 flows uses ports up to 65536, '
                        'above 65535; give a lower port']
    assert flow_run.problems_of(params(flows=60, flows_per_process=25, port=65530)) == []


def test_servers_overlapping_or_out_of_range_are_refused_naming_the_entry():
    p = params(flows_per_process=25, servers=[
        {'port': 12866, 'flows': 60}, {'port': 12870, 'flows': 10}, {'port': 12880, 'flows': 0},
        {'port': 65534, 'flows': 1}, {'port': 65534, 'flows': 30}, {'port': 70000, 'flows': 1}])
    assert flow_run.problems_of(p) == [
        "servers[1] uses ports 12870-12871, which overlap servers[0]'s 12866-12871: give each "
        "block ports of its own",
        'servers[2].flows must be a whole number of at least 1 (got 0)',
        'servers[4] port 65534 leaves no room: neper with 30 flows uses ports up to 65537, above '
        '65535; give a lower port',
        'servers[5].port must be between 1 and 65535 (got 70000)']
    assert flow_run.problems_of(params(phase='client', server_address='a', servers=[
        {'port': 12866, 'flows': 1}])) == [
        "servers is only for phase=start (the receiver's port blocks); a client uses port and "
        "flows"]


def test_start_at_is_checked():
    now = time.time()
    client = dict(phase='client', server_address='10.0.0.1')
    assert flow_run.problems_of(params(start_at=now + 2, **client)) == []
    assert flow_run.problems_of(params(start_at=now - 100, **client)) == []
    ahead = flow_run.problems_of(params(start_at=now + 3600, **client))
    assert len(ahead) == 1 and ahead[0].startswith('start_at %s is 3600 s ahead' % (now + 3600))
    assert flow_run.problems_of(params(start_at=now + 2)) == [
        'start_at is only for phase=client (when the client processes start)']
    assert flow_run.problems_of(params(start_at=-1.0, **client)) == [
        'start_at must be a Unix time in seconds (got -1.0)']


class Doing(object):
    def __init__(self):
        self.what = []

    def doing(self, operation, path=None):
        self.what.append(operation)


def test_wait_until_start_at_sleeps_or_says_how_late():
    guard = Doing()
    assert flow_run.wait_until(guard, None) is None and guard.what == []
    target = time.time() + 0.3
    assert flow_run.wait_until(guard, target) is None
    assert 0 <= time.time() - target < 0.1
    late = flow_run.wait_until(guard, time.time() - 1.5)
    assert late.startswith('start_at ') and ' was 1.5' in late and late.endswith(
        ' s past when the client was ready: started at once'), late
    assert guard.what[0].startswith('wait for start_at ')
