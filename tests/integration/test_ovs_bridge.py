"""zerodrop.testbed.ovs_bridge through ansible-playbook against private OVS daemons (netdev).

Internal ports are kernel tap devices in the root namespace, shared with every other test and
helper on the machine: every bridge and port name here carries a random part.
"""

import json
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.root


def play(*tasks):
    return json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': list(tasks)}])


def task(name, args, **extra):
    return dict({'name': name, 'zerodrop.testbed.ovs_bridge': args}, **extra)


def names(n):
    tag = uuid.uuid4().hex[:5]
    return ['zb%s' % tag] + ['zp%s%d' % (tag, i) for i in range(n)]


def get(ovs, table, record, column):
    return json.loads(ovs.vsctl('--format=json', '--columns=' + column, 'list', table,
                                record).stdout)['data'][0][0]


@pytest.fixture
def root_veth():
    made = []

    def _make():
        a = 'zv%s' % uuid.uuid4().hex[:6]
        subprocess.run(['ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', a + 'p'],
                       check=True)
        subprocess.run(['ip', 'link', 'set', a, 'up'], check=True)
        made.append(a)
        return a

    yield _make
    for a in made:
        subprocess.run(['ip', 'link', 'del', a], check=False, capture_output=True)


def test_create_check_diff_and_rerun(ovs, playbook):
    br, p0, p1, p2 = names(3)
    args = {'name': br, 'datapath_type': 'netdev', 'fail_mode': 'secure',
            'external_ids': {'owner': 'zd', 'a:b': 'x y'}, 'database': ovs.database,
            'ports': [{'name': p0, 'type': 'internal'},
                      {'name': p1, 'type': 'internal', 'tag': 10, 'ofport_request': 21,
                       'external_ids': {'vm': 1}},
                      {'name': p2, 'type': 'internal', 'trunks': [30, 20]}]}
    empty = ovs.dump()

    run = playbook(play(task('create', args)), check=True)
    assert run.rc == 0, run
    result = run.result('create')
    assert result['changed'] and len(result['commands']) == 1
    assert ovs.dump() == empty, 'check mode changed the database'
    assert sorted(result['bridge']['ports']) == [p0, p1, p2]

    run = playbook(play(task('create', args)), diff=True)
    assert run.rc == 0, run
    result = run.result('create')
    assert result['changed']
    # Every change of the task is one ovs-vsctl run.
    assert len(result['commands']) == 1 and result['commands'][0].count('add-port') == 3
    assert result['diff']['before'] == {}
    assert sorted(result['diff']['after']['ports']) == [p0, p1, p2]
    assert result['bridge']['ports'][p1]['ofport'] == 21
    assert br not in result['bridge']['ports']
    assert get(ovs, 'Bridge', br, 'datapath_type') == 'netdev'
    assert get(ovs, 'Bridge', br, 'fail_mode') == 'secure'
    assert get(ovs, 'Bridge', br, 'external_ids') == ['map', [['a:b', 'x y'], ['owner', 'zd']]]
    assert get(ovs, 'Port', p1, 'tag') == 10
    assert get(ovs, 'Port', p2, 'trunks') == ['set', [20, 30]]
    assert get(ovs, 'Interface', p0, 'type') == 'internal'

    created = ovs.dump()
    run = playbook(play(task('create', args)), diff=True)
    assert run.rc == 0, run
    result = run.result('create')
    assert not result['changed'] and result['commands'] == []
    assert result['diff']['before'] == result['diff']['after']
    assert ovs.dump() == created

    args['ports'][1]['tag'] = 11
    run = playbook(play(task('create', args)), diff=True)
    assert run.rc == 0, run
    result = run.result('create')
    assert result['changed']
    assert result['diff']['before']['ports'][p1]['tag'] == 10
    assert result['diff']['after']['ports'][p1]['tag'] == 11
    assert get(ovs, 'Port', p1, 'tag') == 11


def test_hand_made_state_is_converged(ovs, playbook, root_veth):
    br, tap, brsys = names(2)
    dev = root_veth()
    # The seeds' own command lines (bridge on netdev, as this host has no kernel module).
    ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev')
    ovs.vsctl('add-port', br, tap, '--', 'set', 'interface', tap, 'type=internal')
    ovs.vsctl('add-port', br, dev)
    ovs.vsctl('add-br', brsys)
    before = ovs.dump()
    run = playbook(play(
        task('same bridge', {'name': br, 'database': ovs.database, 'ports': [
            {'name': tap, 'type': 'internal'}, {'name': dev}]}),
        task('same again', {'name': br, 'datapath_type': 'netdev', 'fail_mode': 'unset',
                            'stp': False, 'database': ovs.database,
                            'ports': [{'name': tap}, {'name': dev, 'type': 'system'}],
                            'purge_ports': True}),
        task('system bridge', {'name': brsys, 'datapath_type': 'system',
                               'database': ovs.database})))
    assert run.rc == 0, run
    assert not run.changed, run
    assert run.result('same bridge')['bridge']['ports'][dev]['type'] == 'system'
    assert ovs.dump() == before


def test_purge_ports_and_external_ids(ovs, playbook):
    br, p0, p1, p2 = names(3)
    ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev',
              'external_ids:keep=1', 'external_ids:drop=2', 'other_config:stays=1')
    for p in (p0, p1, p2):
        ovs.vsctl('add-port', br, p, '--', 'set', 'interface', p, 'type=internal')
    args = {'name': br, 'database': ovs.database, 'external_ids': {'keep': 1},
            'purge_external_ids': True, 'ports': [{'name': p0}], 'purge_ports': True}
    run = playbook(play(task('purge', args), task('again', args)))
    assert run.rc == 0, run
    assert run.result('purge')['changed'] and not run.result('again')['changed']
    assert ovs.vsctl('list-ports', br).stdout.split() == [p0]
    assert get(ovs, 'Bridge', br, 'external_ids') == ['map', [['keep', '1']]]
    assert get(ovs, 'Bridge', br, 'other_config') == ['map', [['stays', '1']]]
    # The bridge's own internal port survives any purge.
    assert get(ovs, 'Port', br, 'name') == br


def test_move_ports_between_bridges(ovs, playbook):
    br, p0, br2 = names(2)
    ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev',
              '--', 'add-port', br, p0, 'tag=7', '--', 'set', 'interface', p0, 'type=internal')
    ovs.vsctl('add-br', br2, '--', 'set', 'bridge', br2, 'datapath_type=netdev')
    before = ovs.dump()
    args = {'name': br2, 'database': ovs.database, 'ports': [{'name': p0}]}
    run = playbook(play(task('no move', args)))
    assert run.rc != 0
    msg = run.result('no move')['msg']
    assert br in msg and br2 in msg and 'move_ports: true' in msg, msg
    assert ovs.dump() == before
    run = playbook(play(task('move', dict(args, move_ports=True))))
    assert run.rc == 0, run
    assert ovs.vsctl('port-to-br', p0).stdout.strip() == br2
    assert get(ovs, 'Port', p0, 'tag') == 7
    assert get(ovs, 'Interface', p0, 'type') == 'internal'


BAD = [
    # name, module arguments (database added), words the message must contain
    ('port named like a bridge', lambda n: {'name': n['br'], 'ports': [{'name': n['other']}]},
     ["'%(other)s' is the name of bridge %(other)s"]),
    ('port listed twice', lambda n: {'name': n['br'], 'ports': [{'name': n['p0']},
                                                                {'name': n['p0']}]},
     ['ports[1].name', 'listed twice']),
    ('port name too long', lambda n: {'name': n['br'], 'ports': [{'name': 'x' * 16}]},
     ['ports[0].name', 'must be 1-15 characters']),
    ('patch without peer', lambda n: {'name': n['br'], 'ports': [{'name': n['new'],
                                                                  'type': 'patch'}]},
     ['ports[0].options.peer is missing']),
    ('tag out of range', lambda n: {'name': n['br'], 'ports': [{'name': n['new'], 'tag': 4096}]},
     ['ports[0].tag 4096', '0..4095']),
    ('trunk out of range', lambda n: {'name': n['br'], 'ports': [{'name': n['new'],
                                                                  'trunks': [5000]}]},
     ['ports[0].trunks contains 5000']),
    ('unknown datapath type', lambda n: {'name': n['br'], 'datapath_type': 'fast'},
     ['datapath_type', 'system, netdev']),
    ('ofport_request taken', lambda n: {'name': n['br'], 'ports': [
        {'name': n['new'], 'type': 'internal', 'ofport_request': 5}]},
     ['ofport_request 5', 'already the OpenFlow port of %(p0)s']),
    ('bridge named like a port', lambda n: {'name': n['p0']},
     ["'%(p0)s' is already a port of bridge %(br)s"]),
    ('database socket missing', lambda n: {'name': n['br'],
                                           'database': 'unix:/nonexistent/db.sock'},
     ['/nonexistent/db.sock', 'ovsdb-server', 'datapath_type: netdev']),
]


def test_bad_input_fails_clearly_and_changes_nothing(ovs, playbook):
    br, p0, new, other = names(3)
    other = 'zb' + other[2:]
    n = {'br': br, 'p0': p0, 'new': new, 'other': other}
    ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev',
              '--', 'add-port', br, p0, '--', 'set', 'interface', p0, 'type=internal',
              'ofport_request=5')
    ovs.vsctl('add-br', other, '--', 'set', 'bridge', other, 'datapath_type=netdev')
    # Turn p0's requested number into its plain number, so that asking for 5 again collides.
    ovs.vsctl('clear', 'interface', p0, 'ofport_request')
    assert get(ovs, 'Interface', p0, 'ofport') == 5
    before = ovs.dump()
    tasks = [task(name, dict({'database': ovs.database}, **make(n)), ignore_errors=True)
             for name, make, words in BAD]
    tasks.append(task('no ovs-vsctl', {'name': br, 'database': ovs.database},
                      ignore_errors=True, environment={'PATH': '/nonexistent'}))
    run = playbook(play(*tasks))
    for name, make, words in BAD:
        result = run.result(name)
        assert result.get('failed'), (name, result)
        for word in words:
            assert word % n in result['msg'], (name, result['msg'])
        assert not result.get('changed')
    result = run.result('no ovs-vsctl')
    assert result.get('failed') and 'install Open vSwitch' in result['msg'], result
    assert ovs.dump() == before


def test_refused_change_is_undone(ovs, playbook):
    br, p0, p1, p2, nbr, np0 = names(5)
    ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev',
              'external_ids:v=1', '--', 'add-port', br, p0, 'tag=5', '--', 'set', 'interface',
              p0, 'type=internal')
    before = ovs.dump()
    run = playbook(play(
        # p2 is a system port without a device: the database takes it, ovs-vswitchd cannot.
        task('half way', {'name': br, 'database': ovs.database, 'external_ids': {'v': 2},
                          'ports': [{'name': p0, 'tag': 6}, {'name': p1, 'type': 'internal'},
                                    {'name': p2}]}, ignore_errors=True),
        # A new bridge whose port type does not exist on this host (no DPDK).
        task('new bridge', {'name': 'zb' + nbr[2:], 'datapath_type': 'netdev',
                            'database': ovs.database,
                            'ports': [{'name': np0, 'type': 'dpdk'}]}, ignore_errors=True)))
    first = run.result('half way')
    assert first['failed'] and first['rolled_back'], first
    assert p2 in first['msg'] and 'No such device' in first['msg'], first['msg']
    assert len(first['commands']) == 2  # the change, then its undo
    second = run.result('new bridge')
    assert second['failed'] and second['rolled_back'] and np0 in second['msg'], second
    assert ovs.dump() == before


def test_bridge_without_datapath_warns_with_the_fix(ovs, playbook):
    """`ovs-vsctl add-br` on a kernel without the openvswitch module leaves a bridge without a
    datapath: the module says so (and how to fix it) instead of a silent ok."""
    br, port = names(1)
    ovs.vsctl('add-br', br, check=False)  # "Error detected while setting up": rc 0 all the same
    if get(ovs, 'Interface', br, 'ofport') == 65534:
        pytest.skip('this kernel has the openvswitch module: the system datapath works')
    assert get(ovs, 'Interface', br, 'error') == ['set', []]  # the error column says nothing
    before = ovs.dump()
    checked = playbook(play(task('as it is', {'name': br, 'database': ovs.database})),
                       check=True)
    run = playbook(play(
        task('as it is', {'name': br, 'database': ovs.database}),
        {'name': 'a port', 'ignore_errors': True,
         'zerodrop.testbed.ovs_port': {'name': port, 'bridge': br, 'type': 'internal',
                                       'database': ovs.database}}))
    assert ovs.dump() == before
    for res in (checked.result('as it is'), run.result('as it is')):
        assert res['changed'] is False
        (warning,) = res['warnings']
        assert 'bridge %s exists but has no datapath' % br in warning
        assert 'datapath_type: netdev' in warning
    refused = run.result('a port')
    assert refused['failed'] is True and refused['changed'] is False, refused
    assert 'bridge %s has no datapath' % br in refused['msg']
    assert 'use datapath_type: netdev' in refused['msg']

    fixed = playbook(play(task('netdev', {'name': br, 'datapath_type': 'netdev',
                                          'database': ovs.database})))
    res = fixed.result('netdev')
    assert res['changed'] is True and not res.get('warnings'), res
    assert get(ovs, 'Interface', br, 'ofport') == 65534
