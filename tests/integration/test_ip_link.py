"""zerodrop.testbed.ip_link against the real ip in network namespaces."""

import json
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.root


def links(ns):
    out = subprocess.run(['ip', '-n', ns, '-d', '-j', 'addr', 'show'], capture_output=True,
                         text=True, check=True).stdout
    return dict((e['ifname'], e) for e in json.loads(out))


def routes(ns):
    out = subprocess.run(['ip', '-n', ns, '-j', 'route', 'show'], capture_output=True,
                         text=True, check=True).stdout
    return [(r.get('dst'), r.get('gateway'), r.get('dev')) for r in json.loads(out)]


def play(*tasks):
    return '- hosts: localhost\n  gather_facts: false\n  tasks:\n' + ''.join(tasks)


def task(name, args, register=None):
    text = '    - name: %s\n      zerodrop.testbed.ip_link: %s\n' % (name, json.dumps(args))
    if register:
        text += '      register: %s\n' % register
    return text


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:5]
    return {'br': 'zlb' + tag, 'tap': 'zlt' + tag, 'ifb': 'zli' + tag, 'veth': 'zlv' + tag,
            'peer': 'zlp' + tag}


def test_create_idempotent_check_diff_then_teardown_of_what_was_created(
        netns, veth, names, playbook):
    ns = netns('zil')
    uplink = veth(ns, up=False)[0]
    devices = [
        {'name': names['br'], 'kind': 'bridge', 'up': True, 'addresses': ['10.250.90.1/24'],
         'routes': [{'to': '10.250.91.0/24', 'via': '10.250.90.2'}]},
        {'name': names['tap'], 'kind': 'tap', 'master': names['br'], 'up': True,
         'txqueuelen': 77},
        {'name': names['ifb'], 'kind': 'ifb', 'up': True, 'mtu': 9000},
        {'name': names['veth'], 'kind': 'veth', 'peer': names['peer'], 'up': True},
        {'name': uplink, 'kind': 'existing', 'master': names['br']},
    ]
    text = play(task('devices', {'netns': ns, 'devices': devices}))
    before = links(ns)

    checked = playbook(text, check=True, diff=True)
    assert checked.rc == 0, checked
    predicted = checked.result('devices')
    assert predicted['changed'] is True
    made = [names['br'], names['tap'], names['ifb'], names['veth']]
    assert [c['name'] for c in predicted['created']] == made
    assert links(ns).keys() == before.keys(), 'check mode created devices'

    real = playbook(text, diff=True)
    assert real.rc == 0, real
    done = real.result('devices')
    assert done['commands'] == predicted['commands']
    assert done['created'] == predicted['created']
    now = links(ns)
    assert now[names['tap']]['master'] == names['br'] and now[uplink]['master'] == names['br']
    assert now[names['tap']]['txqlen'] == 77 and now[names['ifb']]['mtu'] == 9000
    assert (now[names['tap']]['linkinfo']['info_kind'], now[names['ifb']]['linkinfo']['info_kind'],
            now[names['br']]['linkinfo']['info_kind']) == ('tun', 'ifb', 'bridge')
    assert 'UP' in now[names['veth']]['flags'] and names['peer'] in now
    assert [a['local'] for a in now[names['br']]['addr_info'] if a['family'] == 'inet'] \
        == ['10.250.90.1']
    assert ('10.250.91.0/24', '10.250.90.2', names['br']) in routes(ns)
    after = done['diff']['after']
    assert after['devices'][names['tap']]['master'] == names['br']
    assert after['routes'] == predicted['diff']['after']['routes']
    for name in (names['br'], names['ifb']):
        for key in ('master', 'up', 'addresses', 'kind'):
            assert after['devices'][name][key] == \
                predicted['diff']['after']['devices'][name][key], (name, key)

    again = playbook(text, check=True)
    assert again.rc == 0 and not again.changed, again
    again = playbook(text)
    assert again.rc == 0 and not again.changed, again
    assert again.result('devices')['created'] == []

    teardown = play(task('devices', {'netns': ns, 'devices': devices}, register='made'),
                    '    - name: teardown\n      zerodrop.testbed.ip_link:\n'
                    '        netns: %s\n        state: absent\n'
                    '        devices: "{{ made.created }}"\n' % ns)
    kept = playbook(teardown)
    assert kept.rc == 0, kept
    assert kept.result('teardown')['deleted'] == [], 'made.created is empty on a re-run'

    gone = playbook(play(task('teardown', {'netns': ns, 'state': 'absent',
                                           'devices': done['created']})), diff=True)
    assert gone.rc == 0 and gone.changed, gone
    assert sorted(gone.result('teardown')['deleted']) == sorted(made)
    assert links(ns).keys() == before.keys()
    assert uplink in links(ns)
    gone_again = playbook(play(task('teardown', {'netns': ns, 'state': 'absent',
                                                 'devices': done['created']})))
    assert gone_again.rc == 0 and not gone_again.changed, gone_again


@pytest.mark.parametrize('device, message', [
    ({'name': 'zlmissing0'}, "devices[0].name: device 'zlmissing0' not found"),
    ({'name': 'zlx0', 'kind': 'veth'}, 'devices[0].peer: a veth needs the name'),
    ({'name': 'zlx0', 'kind': 'tap', 'master': 'zlnobr0'}, "bridge 'zlnobr0' not found"),
    ({'name': 'zlx0', 'kind': 'ifb', 'mtu': 10}, 'devices[0].mtu: 10 is out of range'),
    ({'name': 'zlx0', 'kind': 'ifb', 'addresses': ['10.0.0.1']}, 'has no prefix length'),
    ({'name': 'lo', 'kind': 'bridge'}, "'lo' exists as a plain device, not a bridge"),
])
def test_bad_input_fails_before_any_change(netns, playbook, device, message):
    ns = netns('zil')
    before = links(ns)
    run = playbook(play(task('devices', {'netns': ns, 'devices': [device]})))
    assert run.rc != 0
    res = run.result('devices')
    assert message in res['msg'] and res['changed'] is False, res
    assert links(ns) == before
