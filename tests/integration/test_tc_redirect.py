"""zerodrop.testbed.tc_redirect against the real tc in network namespaces (veth + ifb)."""

import json
import subprocess
import uuid

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import tc

pytestmark = pytest.mark.root


def sh(ns, *argv, check=True):
    return subprocess.run(['ip', 'netns', 'exec', ns] + list(argv), capture_output=True,
                          text=True, check=check)


def filters(ns, dev):
    return json.loads(sh(ns, 'tc', '-j', 'filter', 'show', 'ingress', 'dev', dev).stdout or '[]')


def ingress_qdiscs(ns, dev):
    out = json.loads(sh(ns, 'tc', '-j', 'qdisc', 'show', 'dev', dev).stdout or '[]')
    return [q['kind'] for q in out if q['kind'] in ('ingress', 'clsact')]


def play(*tasks):
    return '- hosts: localhost\n  gather_facts: false\n  tasks:\n' + ''.join(tasks)


def task(name, args):
    return '    - name: %s\n      zerodrop.testbed.tc_redirect: %s\n' % (name, json.dumps(args))


@pytest.fixture
def lab(netns, veth):
    ns = netns('zrd')
    tap = veth(ns)[0]
    ifbs = []
    for dummy in range(2):
        name = 'ifb%s' % uuid.uuid4().hex[:6]
        sh(ns, 'ip', 'link', 'add', name, 'type', 'ifb')
        sh(ns, 'ip', 'link', 'set', name, 'up')
        ifbs.append(name)
    return ns, tap, ifbs[0], ifbs[1]


def test_check_mode_predicts_the_real_run_then_idempotent_then_removed(lab, playbook):
    ns, tap, ifb = lab[:3]
    text = play(task('redirect', {'netns': ns, 'device': tap, 'to': ifb}))

    checked = playbook(text, check=True, diff=True)
    assert checked.rc == 0, checked
    predicted = checked.result('redirect')
    assert predicted['changed'] is True and len(predicted['commands']) == 2
    assert filters(ns, tap) == [] and ingress_qdiscs(ns, tap) == [], 'check mode changed tc'

    real = playbook(text, diff=True)
    assert real.rc == 0, real
    done = real.result('redirect')
    assert done['changed'] is True
    assert done['commands'] == predicted['commands']
    assert done['diff'] == predicted['diff']
    assert done['diff']['before'] == {'device': tap, 'ingress': None, 'redirects': []}
    assert done['redirects'] == [{'pref': 49152, 'protocol': 'all', 'kind': 'u32',
                                  'match_all': True, 'direction': 'egress', 'to': ifb}]
    assert ingress_qdiscs(ns, tap) == ['ingress']
    assert tc.parse_filters(filters(ns, tap)) == done['redirects']

    again = playbook(text, check=True)
    assert again.rc == 0 and not again.changed, again
    again = playbook(text)
    assert again.rc == 0 and not again.changed, again
    assert again.result('redirect')['commands'] == []

    gone_text = play(task('remove', {'netns': ns, 'device': tap, 'to': ifb, 'state': 'absent'}))
    gone_checked = playbook(gone_text, check=True, diff=True)
    assert gone_checked.rc == 0 and gone_checked.changed, gone_checked
    assert ingress_qdiscs(ns, tap) == ['ingress']
    gone = playbook(gone_text, diff=True)
    assert gone.rc == 0, gone
    assert gone.result('remove')['diff'] == gone_checked.result('remove')['diff']
    assert filters(ns, tap) == [] and ingress_qdiscs(ns, tap) == []
    emptied = {'device': tap, 'ingress': None, 'redirects': []}
    assert gone.result('remove')['diff']['after'] == emptied
    gone_again = playbook(gone_text)
    assert gone_again.rc == 0 and not gone_again.changed, gone_again


def test_the_role_filter_made_by_hand_is_recognised(lab, playbook):
    """The command line the hypervisor role ran before this module: no change, no duplicate."""
    ns, tap, ifb = lab[:3]
    sh(ns, 'tc', 'qdisc', 'add', 'dev', tap, 'ingress')
    sh(ns, 'tc', 'filter', 'add', 'dev', tap, 'parent', 'ffff:', 'protocol', 'all', 'u32',
       'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', ifb)
    before = filters(ns, tap)
    run = playbook(play(task('redirect', {'netns': ns, 'device': tap, 'to': ifb})))
    assert run.rc == 0 and not run.changed, run
    assert filters(ns, tap) == before


def test_a_redirect_elsewhere_is_replaced_and_other_filters_stay_on_removal(lab, playbook):
    ns, tap, ifb, other = lab
    sh(ns, 'tc', 'qdisc', 'add', 'dev', tap, 'ingress')
    sh(ns, 'tc', 'filter', 'add', 'dev', tap, 'ingress', 'protocol', 'all', 'pref', '49152',
       'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', other)
    text = play(task('redirect', {'netns': ns, 'device': tap, 'to': ifb}))
    checked = playbook(text, check=True, diff=True)
    run = playbook(text, diff=True)
    assert run.rc == 0 and run.changed, run
    assert run.result('redirect')['diff'] == checked.result('redirect')['diff']
    assert [f['to'] for f in tc.parse_filters(filters(ns, tap))] == [ifb]

    # a filter that does not redirect keeps the ingress qdisc when the redirect goes
    sh(ns, 'tc', 'filter', 'add', 'dev', tap, 'ingress', 'protocol', 'ip', 'pref', '10', 'u32',
       'match', 'ip', 'dst', '10.0.0.1/32', 'classid', '1:1')
    gone_text = play(task('remove', {'netns': ns, 'device': tap, 'to': ifb, 'state': 'absent'}))
    gone_checked = playbook(gone_text, check=True, diff=True)
    gone = playbook(gone_text, diff=True)
    assert gone.rc == 0 and gone.changed, gone
    assert gone.result('remove')['diff'] == gone_checked.result('remove')['diff']
    assert ingress_qdiscs(ns, tap) == ['ingress']
    assert tc.filter_prefs(filters(ns, tap)) == [10]


@pytest.mark.parametrize('args, message', [
    ({'to': 'nosuchifb0'}, "to: device 'nosuchifb0' not found"),
    ({'device': 'nosuchtap0'}, "device: device 'nosuchtap0' not found"),
    ({'pref': 0}, 'pref: 0 is out of range'),
    ({'to': 'bad name'}, "to 'bad name' contains ' '"),
])
def test_bad_input_fails_before_any_change(lab, playbook, args, message):
    ns, tap, ifb = lab[:3]
    full = dict({'netns': ns, 'device': tap, 'to': ifb}, **args)
    run = playbook(play(task('redirect', full)))
    assert run.rc != 0
    res = run.result('redirect')
    assert message in res['msg'] and res['changed'] is False, res
    assert filters(ns, tap) == [] and ingress_qdiscs(ns, tap) == []
