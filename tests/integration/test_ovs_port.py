"""zerodrop.testbed.ovs_port through ansible-playbook against private OVS daemons (netdev).

Port names carry a random part: internal ports are kernel tap devices shared with other tests.
"""

import json
import uuid

import pytest

pytestmark = pytest.mark.root


def play(*tasks):
    return json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': list(tasks)}])


def task(name, args, **extra):
    return dict({'name': name, 'zerodrop.testbed.ovs_port': args}, **extra)


def get(ovs, table, record, column):
    return json.loads(ovs.vsctl('--format=json', '--columns=' + column, 'list', table,
                                record).stdout)['data'][0][0]


@pytest.fixture
def bridges(ovs):
    """Two netdev bridges: (names, port name factory)."""
    tag = uuid.uuid4().hex[:5]
    made = ['zb%s%d' % (tag, i) for i in range(2)]
    for br in made:
        ovs.vsctl('add-br', br, '--', 'set', 'bridge', br, 'datapath_type=netdev')
    return made, (lambda i: 'zp%s%d' % (tag, i))


def test_create_check_diff_rerun_remove(ovs, playbook, bridges):
    (br, dummy), port = bridges
    p0, hand = port(0), port(1)
    ovs.vsctl('add-port', br, hand, '--', 'set', 'interface', hand, 'type=internal')
    args = {'bridge': br, 'name': p0, 'type': 'internal', 'tag': 12, 'trunks': [],
            'mtu_request': 1400, 'external_ids': {'vm': 'a'}, 'database': ovs.database}
    before = ovs.dump()

    run = playbook(play(task('create', args)), check=True)
    assert run.rc == 0, run
    assert run.result('create')['changed'] and run.result('create')['commands']
    assert ovs.dump() == before, 'check mode changed the database'

    run = playbook(play(task('create', args), task('again', args),
                        task('hand-made', {'bridge': br, 'name': hand,
                                           'database': ovs.database})), diff=True)
    assert run.rc == 0, run
    created = run.result('create')
    assert created['changed'] and len(created['commands']) == 1
    assert created['diff']['before'] == {}
    assert created['diff']['after']['tag'] == 12 and created['port']['ofport'] > 0
    assert not run.result('again')['changed'] and run.result('again')['commands'] == []
    assert not run.result('hand-made')['changed']
    assert run.result('hand-made')['port']['type'] == 'internal'
    assert get(ovs, 'Port', p0, 'tag') == 12
    assert get(ovs, 'Interface', p0, 'mtu_request') == 1400
    assert get(ovs, 'Port', p0, 'external_ids') == ['map', [['vm', 'a']]]

    gone = {'name': p0, 'state': 'absent', 'database': ovs.database}
    run = playbook(play(task('remove', gone), task('remove again', gone)), diff=True)
    assert run.rc == 0, run
    assert run.result('remove')['changed'] and run.result('remove')['diff']['after'] == {}
    assert not run.result('remove again')['changed']
    assert ovs.vsctl('list-ports', br).stdout.split() == [hand]


def test_move_needs_move(ovs, playbook, bridges):
    (br, br2), port = bridges
    p0 = port(0)
    ovs.vsctl('add-port', br, p0, 'tag=9', '--', 'set', 'interface', p0, 'type=internal',
              'ofport_request=9')
    before = ovs.dump()
    args = {'bridge': br2, 'name': p0, 'database': ovs.database}
    run = playbook(play(task('no move', args)))
    assert run.rc != 0
    msg = run.result('no move')['msg']
    assert br in msg and br2 in msg and 'move: true' in msg, msg
    assert ovs.dump() == before

    run = playbook(play(task('move', dict(args, move=True)), task('again', args)))
    assert run.rc == 0, run
    moved = run.result('move')
    assert moved['changed'] and len(moved['commands']) == 1
    assert not run.result('again')['changed']
    assert ovs.vsctl('port-to-br', p0).stdout.strip() == br2
    assert (get(ovs, 'Port', p0, 'tag'), get(ovs, 'Interface', p0, 'ofport')) == (9, 9)


def test_bad_input_and_refused_change_leave_nothing(ovs, playbook, bridges):
    (br, br2), port = bridges
    p0, new = port(0), port(1)
    ovs.vsctl('add-port', br, p0, '--', 'set', 'interface', p0, 'type=internal')
    before = ovs.dump()
    cases = [
        ('name too long', {'bridge': br, 'name': 'p' * 16}, ['name', 'must be 1-15 characters']),
        ('bridge missing', {'bridge': 'zbnothere', 'name': new},
         ['bridge zbnothere does not exist']),
        ('tag out of range', {'bridge': br, 'name': new, 'tag': 5000}, ['tag 5000']),
        ('trunk out of range', {'bridge': br, 'name': new, 'trunks': [-2]},
         ['trunks contains -2']),
        ('patch without peer', {'bridge': br, 'name': new, 'type': 'patch'},
         ['options.peer is missing']),
        ('named like a bridge', {'bridge': br, 'name': br2}, ['name of bridge %s' % br2]),
        ('socket missing', {'bridge': br, 'name': new, 'database': 'unix:/nonexistent.sock'},
         ['/nonexistent.sock', 'ovsdb-server']),
        # Taken by the database, refused by ovs-vswitchd (no DPDK here): undone.
        ('refused', {'bridge': br, 'name': new, 'type': 'dpdk'}, ['was undone', new]),
    ]
    run = playbook(play(*[task(name, dict({'database': ovs.database}, **args),
                               ignore_errors=True) for name, args, words in cases]))
    for name, args, words in cases:
        result = run.result(name)
        assert result.get('failed'), (name, result)
        for word in words:
            assert word in result['msg'], (name, result['msg'])
    assert run.result('refused')['rolled_back'] is True
    assert ovs.dump() == before
