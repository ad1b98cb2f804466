"""experiment_pairs: flows split over senders, pairing, port blocks and the checks of the host
maps (the values of experiment_hosts, experiment_sender_weights and experiment_pairing)."""

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import experiment_pairs as ep
from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_split

INVENTORY = ['vm1', 'vm2', 'vm3', 'rcv1', 'rcv2', 'rtr', 'snd', 'rcv']


@pytest.mark.parametrize('total, senders, weights, expected', [
    (100, ['a'], {}, [100]),
    (100, ['a', 'b'], {}, [50, 50]),
    (10, ['a', 'b', 'c'], {}, [4, 3, 3]),  # the remainder goes to the earliest
    (11, ['a', 'b', 'c'], {}, [4, 4, 3]),
    (1000, ['a', 'b', 'c'], {'a': 2}, [500, 250, 250]),
    (7, ['a', 'b'], {'a': 0.5, 'b': 1.5}, [2, 5]),  # 1.75 / 5.25: b's larger remainder first
    (3, ['a', 'b', 'c'], {}, [1, 1, 1]),
    (40000, ['s1', 's2', 's3', 's4'], {}, [10000] * 4),
])
def test_split_flows(total, senders, weights, expected):
    counts = ep.split_flows(total, senders, weights)
    assert counts == expected and sum(counts) == total


@pytest.mark.parametrize('total, senders, weights, names', [
    (2, ['a', 'b', 'c'], {}, 'c'),
    (10, ['a', 'b'], {'a': 100}, 'b'),
])
def test_a_sender_left_without_a_flow_is_an_error(total, senders, weights, names):
    with pytest.raises(ValueError) as e:
        ep.split_flows(total, senders, weights)
    assert 'experiment_flows' in str(e.value) and 'experiment_sender_weights' in str(e.value)
    assert 'leave %s with no flow' % names in str(e.value)


@pytest.mark.parametrize('senders, receivers, pairing, expected', [
    (['a'], ['r'], {}, ['r']),
    (['a', 'b', 'c'], ['r1', 'r2'], {}, ['r1', 'r2', 'r1']),
    (['a', 'b', 'c'], ['r1', 'r2'], {'a': 'r2'}, ['r2', 'r2', 'r1']),
    (['a', 'b'], ['r1'], {}, ['r1', 'r1']),
])
def test_pair(senders, receivers, pairing, expected):
    assert ep.pair(senders, receivers, pairing) == expected


def test_pairing_with_a_host_that_is_not_a_receiver_of_the_run():
    with pytest.raises(ValueError) as e:
        ep.pair(['a', 'b'], ['r1'], {'b': 'r9'})
    assert str(e.value).startswith('experiment_pairing.b: r9 is not a receiver of this run (receivers: r1)')


@pytest.mark.parametrize('tool, senders, receivers, total, per_process, expected', [
    # one pair: the tool's base port, one process
    ('neper', ['snd'], ['rcv'], 100, 20000, [('snd', 'rcv', 100, 12866, 'sender', 'receiver')]),
    # two senders on one receiver: neper's second block after the first's 2 ports a process
    ('neper', ['vm1', 'vm2'], ['rcv'], 30000, 10000,
     [('vm1', 'rcv', 15000, 12866, 'sender-vm1', 'receiver'),
      ('vm2', 'rcv', 15000, 12870, 'sender-vm2', 'receiver')]),
    # iperf3: 128 streams a process, one port each
    ('iperf3', ['vm1', 'vm2', 'vm3'], ['rcv1', 'rcv2'], 600, 20000,
     [('vm1', 'rcv1', 200, 5201, 'sender-vm1', 'receiver-rcv1'),
      ('vm2', 'rcv2', 200, 5201, 'sender-vm2', 'receiver-rcv2'),
      ('vm3', 'rcv1', 200, 5203, 'sender-vm3', 'receiver-rcv1')]),
    ('iperf2', ['vm1', 'vm2'], ['rcv'], 10, 20000,
     [('vm1', 'rcv', 5, 5001, 'sender-vm1', 'receiver'), ('vm2', 'rcv', 5, 5002, 'sender-vm2', 'receiver')]),
])
def test_layout(tool, senders, receivers, total, per_process, expected):
    roles = {'sender': senders, 'receiver': receivers, 'router': ['rtr']}
    base = {'neper': 12866, 'iperf3': 5201, 'iperf2': 5001}[tool]
    pairs = ep.layout(roles, total, tool, base, per_process, flow_split.span)
    assert [(p['sender'], p['receiver'], p['flows'], p['port'], p['sender_dir'], p['receiver_dir'])
            for p in pairs] == expected
    # no two blocks on one receiver overlap
    for receiver in receivers:
        blocks = sorted((p['port'], p['port'] + flow_split.span(tool, p['flows'], per_process))
                        for p in pairs if p['receiver'] == receiver)
        assert all(a[1] <= b[0] for a, b in zip(blocks, blocks[1:]))


def test_port_blocks_past_65535_name_the_port():
    roles = {'sender': ['vm1', 'vm2'], 'receiver': ['rcv']}
    with pytest.raises(ValueError) as e:
        ep.layout(roles, 20000, 'iperf3', 65400, 20000, flow_split.span)
    assert str(e.value).startswith('experiment_port: the port blocks of rcv\'s pairs run past 65535')


@pytest.mark.parametrize('hosts, mode_hosts, expected', [
    ({'sender': 'snd', 'receiver': 'rcv'}, {}, {'sender': ['snd'], 'receiver': ['rcv']}),
    ({'sender': ['vm1', 'vm2'], 'receiver': 'rcv', 'router': ['rtr']}, {},
     {'sender': ['vm1', 'vm2'], 'receiver': ['rcv'], 'router': ['rtr']}),
    ({'sender': 'snd', 'receiver': 'rcv'}, {'m': {'sender': ['vm1', 'vm3']}},
     {'sender': ['vm1', 'vm3'], 'receiver': ['rcv']}),
])
def test_run_hosts(hosts, mode_hosts, expected):
    assert ep.check_all(hosts, mode_hosts, ['m'], inventory=INVENTORY)['m'] == expected


@pytest.mark.parametrize('hosts, mode_hosts, weights, pairing, message', [
    ({'sender': 'vm9', 'receiver': 'rcv'}, {}, {}, {},
     'experiment_hosts.sender: vm9 is not in the inventory'),
    ({'sender': 'snd', 'receiver': 'rcv'}, {'m': {'receiver': ['rcv', 'nope']}}, {}, {},
     'experiment_mode_hosts.m.receiver: nope is not in the inventory'),
    ({'sender': ['vm1', 'vm2', 'vm1'], 'receiver': 'rcv'}, {}, {}, {},
     'experiment_hosts.sender lists vm1 more than once'),
    ({'sender': [], 'receiver': 'rcv'}, {}, {}, {},
     'experiment_hosts.sender must be an inventory host name or a non-empty list'),
    ({'receiver': 'rcv'}, {}, {}, {}, 'experiment_hosts.sender is missing'),
    ({'sender': ['vm1', 'vm2'], 'receiver': 'rcv'}, {}, {'vm1': 0}, {},
     'experiment_sender_weights.vm1 is 0: give a number above 0'),
    ({'sender': ['vm1', 'vm2'], 'receiver': 'rcv'}, {}, {'vm2': -1}, {},
     'experiment_sender_weights.vm2 is -1'),
    ({'sender': ['vm1', 'vm2'], 'receiver': 'rcv'}, {}, {'rcv': 2}, {},
     'experiment_sender_weights.rcv: rcv is not a sender of any mode'),
    ({'sender': ['vm1', 'vm2'], 'receiver': ['rcv1', 'rcv2']}, {}, {}, {'vm1': 'vm2'},
     'experiment_pairing.vm1: vm2 is not a receiver of any mode'),
    ({'sender': ['vm1', 'vm2'], 'receiver': ['rcv1', 'rcv2']}, {}, {}, {'rtr': 'rcv1'},
     'experiment_pairing.rtr: rtr is not a sender of any mode'),
])
def test_bad_host_maps_name_the_variable(hosts, mode_hosts, weights, pairing, message):
    with pytest.raises(ValueError) as e:
        ep.check_all(hosts, mode_hosts, ['m'], weights, pairing, INVENTORY)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize('roles, expected', [
    ({'sender': ['snd'], 'receiver': ['rcv'], 'router': ['rtr']},
     {'snd': 'sender', 'rcv': 'receiver', 'rtr': 'router'}),
    ({'sender': ['a', 'b'], 'receiver': ['r'], 'router': ['x', 'y']},
     {'a': 'sender-a', 'b': 'sender-b', 'r': 'receiver', 'x': 'router-x', 'y': 'router-y'}),
    # a host in two roles writes into its sender's directory
    ({'sender': ['a'], 'receiver': ['r'], 'router': ['a']}, {'a': 'sender', 'r': 'receiver'}),
])
def test_host_dirs(roles, expected):
    assert ep.host_dirs(roles) == expected


@pytest.mark.parametrize('given, tool, nofile, expected', [
    (500, 'neper', {'a': 20000}, 500),
    (None, 'neper', {'a': 20000, 'b': 1024}, 1024 - flow_split.NOFILE_MARGIN),
    (None, 'iperf3', {'a': 20000, 'b': 20000}, 128),
    (None, 'neper', {}, None),
])
def test_flows_per_process(given, tool, nofile, expected):
    assert ep.flows_per_process(given, tool, ['a', 'b'], nofile, flow_split.per_process_cap) == expected


def test_a_file_limit_too_small_for_one_flow_names_the_variable():
    with pytest.raises(ValueError) as e:
        ep.flows_per_process(None, 'neper', ['a'], {'a': 100}, flow_split.per_process_cap)
    assert str(e.value).startswith('experiment_flows_per_process: a\'s file limit (RLIMIT_NOFILE hard 100)')
