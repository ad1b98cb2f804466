"""module_utils/ovsdb.py against ovs-vsctl JSON recorded on this machine (fixtures/ovs/README.md):
parsing, validation, one-transaction planning, and the undo of a refused change."""

import os

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import ovsdb
from ansible_collections.zerodrop.testbed.plugins.module_utils.ovsdb import (
    OvsError, Snapshot, desired_bridge, desired_port, plan_bridge, plan_port, plan_restore,
    problems)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'ovs')


def snap(name):
    with open(os.path.join(FIXTURES, name + '.json')) as f:
        return Snapshot.parse(f.read())


# ---------------------------------------------------------------- parsing -----------------------

@pytest.mark.parametrize('value, expected', [
    (['uuid', 'a-b'], 'a-b'),
    (['set', []], []),
    (['set', [['uuid', 'x'], ['uuid', 'y']]], ['x', 'y']),
    (['map', [['k', 'v'], ['a:b', ' x']]], {'k': 'v', 'a:b': ' x'}),
    (['map', []], {}),
    ('netdev', 'netdev'),
    (5, 5),
])
def test_datum(value, expected):
    assert ovsdb.datum(value) == expected


def test_parse_empty_database():
    empty = snap('empty')
    assert empty.bridges == {} and empty.ports == {} and empty.interfaces == {}


def test_parse_hand_made_state():
    seed = snap('seed')
    assert sorted(seed.bridges) == ['br0', 'br1']
    br0 = seed.bridges['br0']
    assert (br0['datapath_type'], br0['fail_mode'], br0['stp']) == ('netdev', 'unset', False)
    # ovs-vsctl add-br leaves datapath_type empty: the kernel datapath, reported as "system".
    assert seed.bridges['br1']['datapath_type'] == 'system'
    # The bridge's own internal port is a port of the database but not a user port.
    assert list(br0['ports']) == ['tap0']
    assert seed.ports['br0']['bridge'] == 'br0' and seed.ports['br0']['type'] == 'internal'
    tap0 = br0['ports']['tap0']
    assert (tap0['type'], tap0['tag'], tap0['trunks'], tap0['ofport']) == ('internal', None, [], 1)


def test_parse_values_of_every_kind():
    br0 = snap('rich').bridges['br0']
    assert br0['fail_mode'] == 'secure' and br0['stp'] is True
    assert br0['other_config'] == {'hwaddr': '02:00:00:00:00:01'}
    assert br0['external_ids'] == {'a:b': ' x,y=z"{', 'owner': 'zd'}
    ports = br0['ports']
    assert sorted(ports) == ['bond0', 'nodev0', 'pa', 'tap0', 'vm1', 'vm2', 'vm3']
    assert (ports['vm1']['tag'], ports['vm1']['ofport_request'], ports['vm1']['ofport'],
            ports['vm1']['mtu_request']) == (10, 11, 11, 1400)
    assert ports['vm2']['trunks'] == [20, 30] and ports['vm2']['external_ids'] == {'k': 'v'}
    assert ports['vm3']['trunks'] == [5]  # a one-element set is printed as a bare atom
    assert ports['pa']['options'] == {'peer': 'pb'}
    assert ports['nodev0']['type'] == 'system' and ports['nodev0']['ofport'] == -1
    assert 'No such device' in ports['nodev0']['error']
    assert ports['bond0']['type'] is None and ports['bond0']['interfaces'] == ['bm0', 'bm1']
    assert 'bm0' in snap('rich').interfaces


def test_read_argv_lists_three_tables_in_one_call():
    argv = ovsdb.read_argv()
    assert argv[0] == '--format=json'
    tables = [argv[i + 1] for i, word in enumerate(argv) if word == 'list']
    assert tables == ['Bridge', 'Port', 'Interface']


@pytest.mark.parametrize('value, expected', [
    ('netdev', 'netdev'),
    ('10.0.0.2', '10.0.0.2'),
    ('', '""'),
    ('a:b', '"a:b"'),
    ('hello world', '"hello world"'),
    (' x,y=z"{', '" x,y=z\\"{"'),
    ('ü', '"ü"'),
])
def test_quote(value, expected):
    assert ovsdb.quote(value) == expected


# ---------------------------------------------------------------- planning ----------------------

def bridge_plan(fixture, name='br0', state='present', ports=None, **kw):
    want = desired_bridge(dict(kw.pop('want', {}), name=name))
    specs = None if ports is None else [desired_port(p, 'ports[%d]' % i)
                                        for i, p in enumerate(ports)]
    txn, after = plan_bridge(snap(fixture), name, state, want, ports=specs, **kw)
    return txn.clauses


def port_plan(fixture, bridge, state='present', move=False, **params):
    txn, after = plan_port(snap(fixture), bridge, desired_port(params, ''), state, move)
    return txn.clauses


BRIDGE_CASES = [
    # id, fixture, kwargs, expected clauses
    ('seed bridge converged', 'seed', {}, []),
    ('seed bridge and port converged', 'seed',
     {'want': {'datapath_type': 'netdev', 'fail_mode': 'unset', 'stp': False},
      'ports': [{'name': 'tap0', 'type': 'internal'}]}, []),
    ('seed system bridge converged', 'seed', {'name': 'br1', 'want': {'datapath_type': 'system'}},
     []),
    ('set datapath type', 'seed', {'name': 'br1', 'want': {'datapath_type': 'netdev'}},
     [['set', 'Bridge', 'br1', 'datapath_type=netdev']]),
    ('new bridge with ports', 'empty',
     {'want': {'datapath_type': 'netdev', 'external_ids': {'n': 1}},
      'ports': [{'name': 'p1', 'type': 'internal'},
                {'name': 'p2', 'tag': 5, 'trunks': [3, 1, 3], 'ofport_request': 7,
                 'mtu_request': 9000, 'external_ids': {'x y': True}},
                {'name': 'p3', 'type': 'patch', 'options': {'peer': 'q3'}}]},
     [['add-br', 'br0'], ['set', 'Bridge', 'br0', 'datapath_type=netdev', 'external_ids:n=1'],
      ['add-port', 'br0', 'p1'], ['set', 'Interface', 'p1', 'type=internal'],
      ['add-port', 'br0', 'p2'],
      ['set', 'Port', 'p2', 'tag=5', 'trunks=[1,3]', 'external_ids:"x y"=true'],
      ['set', 'Interface', 'p2', 'ofport_request=7', 'mtu_request=9000'],
      ['add-port', 'br0', 'p3'], ['set', 'Interface', 'p3', 'type=patch', 'options:peer=q3']]),
    ('unset fail mode and stp', 'rich', {'want': {'fail_mode': 'unset', 'stp': False}},
     [['set', 'Bridge', 'br0', 'stp_enable=false'], ['clear', 'Bridge', 'br0', 'fail_mode']]),
    ('merge external ids', 'rich', {'want': {'external_ids': {'owner': 'zd', 'new': 'x y'}}},
     [['set', 'Bridge', 'br0', 'external_ids:new="x y"']]),
    ('purge external ids', 'rich',
     {'want': {'external_ids': {'owner': 'zd'}, 'other_config': {}}, 'purge_external_ids': True},
     [['remove', 'Bridge', 'br0', 'external_ids', '"a:b"']]),
    ('purge other_config', 'rich', {'want': {'other_config': {}}, 'purge_other_config': True},
     [['remove', 'Bridge', 'br0', 'other_config', 'hwaddr']]),
    ('purge ports keeps the own port', 'rich',
     {'ports': [{'name': 'vm1'}, {'name': 'vm2'}], 'purge_ports': True},
     [['del-port', 'br0', p] for p in ('bond0', 'nodev0', 'pa', 'tap0', 'vm3')]),
    ('purge without ports list does nothing', 'rich', {'purge_ports': True}, []),
    ('port settings', 'rich',
     {'ports': [{'name': 'vm2', 'trunks': [], 'external_ids': {'k': 'w'}},
                {'name': 'vm3', 'type': 'system', 'tag': 4095},
                {'name': 'vm1', 'external_ids': {}, 'purge_external_ids': True, 'options': {}},
                {'name': 'pa', 'options': {'peer': 'pc'}}]},
     [['set', 'Port', 'vm2', 'external_ids:k=w'], ['clear', 'Port', 'vm2', 'trunks'],
      ['set', 'Port', 'vm3', 'tag=4095'], ['set', 'Interface', 'vm3', 'type=""'],
      ['set', 'Interface', 'pa', 'options:peer=pc']]),
    ('options are replaced whole', 'rich',
     {'ports': [{'name': 'pa', 'type': 'vxlan', 'options': {'remote_ip': '10.0.0.2'}}]},
     [['set', 'Interface', 'pa', 'type=vxlan', 'options:remote_ip=10.0.0.2'],
      ['remove', 'Interface', 'pa', 'options', 'peer']]),
    ('move a port with its settings', 'rich',
     {'name': 'br1', 'ports': [{'name': 'vm1'}], 'move_ports': True},
     [['del-port', 'br0', 'vm1'], ['add-port', 'br1', 'vm1'], ['set', 'Port', 'vm1', 'tag=10'],
      ['set', 'Interface', 'vm1', 'type=internal', 'ofport_request=11', 'mtu_request=1400']]),
    ('absent', 'seed', {'state': 'absent'}, [['del-br', 'br0']]),
    ('absent already', 'empty', {'state': 'absent'}, []),
]


@pytest.mark.parametrize('fixture, kwargs, expected', [c[1:] for c in BRIDGE_CASES],
                         ids=[c[0] for c in BRIDGE_CASES])
def test_plan_bridge(fixture, kwargs, expected):
    assert bridge_plan(fixture, **kwargs) == expected


PORT_CASES = [
    ('hand-made port converged', 'seed', 'br0', {'name': 'tap0'}, []),
    ('hand-made port converged with type', 'seed', 'br0', {'name': 'tap0', 'type': 'internal'},
     []),
    ('new system port', 'seed', 'br0', {'name': 'eth9'}, [['add-port', 'br0', 'eth9']]),
    ('move', 'seed', 'br1', {'name': 'tap0', 'move': True, 'tag': 3},
     [['del-port', 'br0', 'tap0'], ['add-port', 'br1', 'tap0'], ['set', 'Port', 'tap0', 'tag=3'],
      ['set', 'Interface', 'tap0', 'type=internal']]),
    ('absent from its bridge', 'seed', 'br0', {'name': 'tap0', 'state': 'absent'},
     [['del-port', 'br0', 'tap0']]),
    ('absent from any bridge', 'seed', None, {'name': 'tap0', 'state': 'absent'},
     [['del-port', 'br0', 'tap0']]),
    ('absent elsewhere is left alone', 'seed', 'br1', {'name': 'tap0', 'state': 'absent'}, []),
    ('absent already', 'seed', 'br0', {'name': 'nothere', 'state': 'absent'}, []),
]


@pytest.mark.parametrize('fixture, bridge, params, expected', [c[1:] for c in PORT_CASES],
                         ids=[c[0] for c in PORT_CASES])
def test_plan_port(fixture, bridge, params, expected):
    assert port_plan(fixture, bridge, **params) == expected


BAD_BRIDGE = [
    ('port named like another bridge', 'seed', {'ports': [{'name': 'br1'}]},
     "ports[0].name 'br1' is the name of bridge br1"),
    ('port named like its own bridge', 'seed', {'ports': [{'name': 'br0'}]},
     'internal port OVS gives bridge br0'),
    ('port named like its new bridge', 'empty', {'name': 'brx', 'ports': [{'name': 'brx'}]},
     "ports[0].name 'brx' is the internal port OVS gives bridge brx itself"),
    ('port listed twice', 'seed', {'ports': [{'name': 'a'}, {'name': 'b'}, {'name': 'a'}]},
     "ports[2].name 'a' is listed twice (ports[0] and ports[2])"),
    ('port name too long', 'seed', {'ports': [{'name': 'x' * 16}]},
     "ports[0].name 'xxxxxxxxxxxxxxxx' must be 1-15 characters (the kernel's IFNAMSIZ)"),
    ('port name too many bytes', 'seed', {'ports': [{'name': '\u00fc' * 8}]},
     'is 16 bytes in UTF-8: the kernel takes at most 15'),
    ('bridge name too long', 'empty', {'name': 'bridge-name-too-long'},
     "name 'bridge-name-too-long' must be 1-15 characters"),
    ('bad character', 'seed', {'ports': [{'name': 'a/b'}]},
     "ports[0].name 'a/b' contains '/', which a device name cannot"),
    ('leading dash', 'seed', {'ports': [{'name': '-p'}]},
     "ports[0].name '-p' is not a usable device name"),
    ('patch port name with a space', 'seed',
     {'ports': [{'name': 'patch to', 'type': 'patch', 'options': {'peer': 'x'}}]},
     "ports[0].name 'patch to' starts with \"-\" or contains whitespace"),
    ('patch without peer', 'seed', {'ports': [{'name': 'pp', 'type': 'patch'}]},
     'ports[0].options.peer is missing: a patch port needs it'),
    ('vxlan without remote_ip', 'seed',
     {'ports': [{'name': 'vx', 'type': 'vxlan', 'options': {'key': 5}}]},
     'ports[0].options.remote_ip is missing'),
    ('tag out of range', 'seed', {'ports': [{'name': 't', 'tag': 4096}]},
     'ports[0].tag 4096 is not a VLAN id: use 0..4095'),
    ('trunk out of range', 'seed', {'ports': [{'name': 't', 'trunks': [1, -1]}]},
     'ports[0].trunks contains -1'),
    ('ofport_request out of range', 'seed', {'ports': [{'name': 't', 'ofport_request': 0}]},
     'ports[0].ofport_request 0 is out of range'),
    ('mtu_request out of range', 'seed', {'ports': [{'name': 't', 'mtu_request': 10}]},
     'ports[0].mtu_request 10 is out of range'),
    ('ofport_request twice', 'rich', {'ports': [{'name': 'n1', 'ofport_request': 11}]},
     'ofport_request 11 is asked for by ports vm1 and n1'),
    ('ofport_request taken', 'rich', {'ports': [{'name': 'n1', 'ofport_request': 2}]},
     'ofport_request 2 of port n1 is already the OpenFlow port of vm2'),
    ('port on another bridge', 'seed', {'name': 'br1', 'ports': [{'name': 'tap0'}]},
     'ports[0]: port tap0 is on bridge br0, not on bridge br1: set move_ports: true'),
    ('bridge named like a port', 'seed', {'name': 'tap0'},
     "name 'tap0' is already a port of bridge br0"),
    ('bond with interface settings', 'rich', {'ports': [{'name': 'bond0', 'mtu_request': 9000}]},
     'is a bond of bm0, bm1'),
    ('bond moved', 'rich', {'name': 'br1', 'ports': [{'name': 'bond0'}], 'move_ports': True},
     'port bond0 on bridge br0 is a bond of bm0, bm1: bonds are not moved'),
    ('bond member as a port', 'rich', {'ports': [{'name': 'bm0'}]},
     'already an interface of another port'),
    ('map value missing', 'seed', {'want': {'external_ids': {'k': None}}},
     'external_ids.k has no value'),
]


@pytest.mark.parametrize('fixture, kwargs, message', [c[1:] for c in BAD_BRIDGE],
                         ids=[c[0] for c in BAD_BRIDGE])
def test_bad_bridge_input(fixture, kwargs, message):
    with pytest.raises(OvsError) as e:
        bridge_plan(fixture, **kwargs)
    assert message in str(e.value)


BAD_PORT = [
    ('on another bridge', 'seed', 'br1', {'name': 'tap0'},
     'port tap0 is on bridge br0, not on bridge br1: set move: true'),
    ('bridge missing', 'seed', 'br9', {'name': 'p'}, 'bridge br9 does not exist'),
    ('own port removed', 'seed', 'br0', {'name': 'br0', 'state': 'absent'},
     'internal port of bridge br0'),
    ('tag', 'seed', 'br0', {'name': 'p', 'tag': -1}, 'tag -1 is not a VLAN id'),
]


@pytest.mark.parametrize('fixture, bridge, params, message', [c[1:] for c in BAD_PORT],
                         ids=[c[0] for c in BAD_PORT])
def test_bad_port_input(fixture, bridge, params, message):
    with pytest.raises(OvsError) as e:
        port_plan(fixture, bridge, **params)
    assert message in str(e.value)


def test_port_left_alone_elsewhere_is_reported_as_it_is():
    txn, after = plan_port(snap('seed'), 'br1', desired_port({'name': 'tap0'}, ''), 'absent')
    assert not txn and after['bridge'] == 'br0'


def test_transaction_argv_joins_clauses():
    txn, after = plan_bridge(snap('empty'), 'br0', 'present', {'datapath_type': 'netdev'},
                             ports=[desired_port({'name': 'p1', 'type': 'internal'}, 'ports[0]')])
    assert txn.argv() == ['add-br', 'br0', '--', 'set', 'Bridge', 'br0', 'datapath_type=netdev',
                          '--', 'add-port', 'br0', 'p1', '--', 'set', 'Interface', 'p1',
                          'type=internal']
    assert txn.touched() == (['br0'], ['p1'])
    assert txn.verify == ['br0', 'p1']
    assert after['ports']['p1']['type'] == 'internal' and after['datapath_type'] == 'netdev'


# ---------------------------------------------------------------- after the commit --------------

def test_problems_reports_new_errors_only():
    seed, rich = snap('seed'), snap('rich')
    found = problems(seed, rich, ['nodev0', 'pa', 'vm1', 'tap0'])
    # pa's peer is simply not there yet; vm1 and tap0 are fine.
    assert found == ['nodev0: could not open network device nodev0 (No such device)']
    # br1 had no OpenFlow port before this change: not this change's doing.
    assert problems(seed, rich, ['br1']) == []
    assert 'use datapath_type: netdev' in problems(snap('empty'), seed, ['br1'])[0]


def test_restore_undoes_changes_and_new_ports():
    txn = plan_restore(snap('seed'), snap('rich'), ['br0'], ['vm1', 'nodev0', 'tap0'])
    assert txn.clauses == [
        ['set', 'Bridge', 'br0', 'stp_enable=false'],
        ['clear', 'Bridge', 'br0', 'fail_mode'],
        ['remove', 'Bridge', 'br0', 'other_config', 'hwaddr'],
        ['remove', 'Bridge', 'br0', 'external_ids', '"a:b"', 'owner'],
        ['del-port', 'br0', 'vm1'], ['del-port', 'br0', 'nodev0']]


def test_restore_removes_new_bridges_and_brings_back_removed_ports():
    assert plan_restore(snap('empty'), snap('seed'), ['br0', 'br1'], ['tap0']).clauses == [
        ['del-br', 'br0'], ['del-br', 'br1']]
    assert plan_restore(snap('rich'), snap('seed'), [], ['vm1']).clauses == [
        ['add-port', 'br0', 'vm1'], ['set', 'Port', 'vm1', 'tag=10'],
        ['set', 'Interface', 'vm1', 'type=internal', 'ofport_request=11', 'mtu_request=1400']]


# ---------------------------------------------------------------- datapath ----------------------

def test_bridge_without_datapath_is_recognised():
    """seed.json: br1 made by a plain add-br on a host without the openvswitch module."""
    seed = snap('seed')
    assert seed.bridges['br0']['datapath'] is True
    assert seed.bridges['br1']['datapath'] is False
    assert ovsdb.no_datapath_warning(seed.bridges['br0']) is None
    warning = ovsdb.no_datapath_warning(seed.bridges['br1'])
    assert 'bridge br1 exists but has no datapath' in warning
    assert 'datapath_type: netdev' in warning and 'modprobe openvswitch' in warning


def test_port_refused_on_a_bridge_without_datapath_names_the_fix():
    seed = snap('seed')
    after = Snapshot(seed.bridges, dict(seed.ports), seed.interfaces)
    after.ports['p1'] = dict(seed.ports['tap0'], name='p1', bridge='br1', ofport=None)
    (found,) = problems(seed, after, ['p1'])
    assert found.startswith('p1: ovs-vswitchd gave it no OpenFlow port (bridge br1 has no '
                            'datapath; datapath_type system needs the openvswitch kernel module')


def test_long_patch_port_name_is_not_held_to_device_rules():
    clauses = bridge_plan('seed', ports=[{'name': 'patch-br0-to-br1', 'type': 'patch',
                                          'options': {'peer': 'patch-br1-to-br0'}}])
    assert clauses[0] == ['add-port', 'br0', 'patch-br0-to-br1']
