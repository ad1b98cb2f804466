"""zerodrop.testbed.netns_host against real namespaces, veths and a Linux bridge."""

import json
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.root


def ip_json(*args):
    out = subprocess.run(['ip', '-j'] + list(args), check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out) if out.strip() else []


def snapshot(ns):
    """Everything the module may touch, for 'nothing changed' assertions (root devices: only
    those named after this test, as other processes may add and remove their own)."""
    tag = ns[-6:]
    root_links = sorted(l['ifname'] for l in ip_json('link', 'show') if tag in l['ifname'])
    names = [n['name'] for n in ip_json('netns', 'list')]
    if ns not in names:
        return {'exists': False, 'root_links': root_links}
    return {
        'exists': True,
        'addr': ip_json('-n', ns, 'addr', 'show'),
        'route': ip_json('-n', ns, 'route', 'show'),
        'root_links': root_links,
        'forward': subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-n',
                                   'net.ipv4.ip_forward'], capture_output=True, text=True,
                                  check=True).stdout,
    }


@pytest.fixture
def names():
    tag = uuid.uuid4().hex[:6]
    made = {'ns': 'zt-h-' + tag, 'peer': 'zh%s' % tag, 'br': 'zb%s' % tag}
    yield made
    subprocess.run(['ip', 'netns', 'del', made['ns']], capture_output=True, check=False)
    for dev in (made['peer'], made['br']):
        subprocess.run(['ip', 'link', 'del', dev], capture_output=True, check=False)


def play(names, state='present', addresses=('10.231.0.2/24',), forward=1):
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: host
      zerodrop.testbed.netns_host:
        name: %(ns)s
        state: %(state)s
        links:
          - name: eth0
            peer: %(peer)s
            peer_bridge: %(br)s
            addresses: %(addresses)s
            tx_offload: false
        routes:
          - to: default
            via: 10.231.0.1
        sysctls:
          net.ipv4.ip_forward: %(forward)d
""" % dict(names, state=state, addresses=json.dumps(list(addresses)), forward=forward)


def test_create_idempotent_check_diff_and_remove(playbook, names):
    subprocess.run(['ip', 'link', 'add', names['br'], 'type', 'bridge'], check=True)
    subprocess.run(['ip', 'link', 'set', names['br'], 'up'], check=True)

    before = snapshot(names['ns'])
    checked = playbook(play(names), check=True, diff=True)
    assert checked.rc == 0, checked
    assert checked.result('host')['changed']
    assert snapshot(names['ns']) == before, 'check mode changed the system'

    first = playbook(play(names), diff=True)
    assert first.rc == 0, first
    res = first.result('host')
    assert res['changed']
    assert res['state']['links']['eth0']['addresses'] == ['10.231.0.2/24']
    assert res['state']['sysctls'] == {'net.ipv4.ip_forward': '1'}
    assert any(r['to'] == 'default' and r['via'] == '10.231.0.1' for r in res['state']['routes'])
    peer = ip_json('link', 'show', names['peer'])[0]
    assert peer['master'] == names['br'] and 'UP' in peer['flags']
    assert 'tx-checksumming: off' in subprocess.run(['ethtool', '-k', names['peer']],
                                                    capture_output=True, text=True,
                                                    check=True).stdout
    # The sysctl lives in the namespace, not on the host.
    host_forward = open('/proc/sys/net/ipv4/ip_forward').read().strip()
    assert res['diff']['before'] == {}

    again = playbook(play(names))
    assert again.rc == 0, again
    assert not again.result('host')['changed'], again.result('host')['commands']
    assert open('/proc/sys/net/ipv4/ip_forward').read().strip() == host_forward

    changed = playbook(play(names, addresses=['10.231.0.3/24'], forward=0), diff=True)
    res = changed.result('host')
    assert res['changed']
    assert res['state']['links']['eth0']['addresses'] == ['10.231.0.3/24']
    assert res['diff']['before']['links']['eth0']['addresses'] == ['10.231.0.2/24']

    gone = playbook(play(names, state='absent'))
    assert gone.result('host')['changed']
    assert not snapshot(names['ns'])['exists']
    assert names['peer'] not in snapshot(names['ns'])['root_links'], 'veth peer left behind'
    assert not playbook(play(names, state='absent')).result('host')['changed']


def test_moves_an_existing_device(playbook, names):
    # The host kernel has no dummy driver: one end of a veth pair serves as the device to move.
    subprocess.run(['ip', 'link', 'add', names['peer'], 'type', 'veth', 'peer', 'name',
                    names['peer'] + 'x'], check=True)
    text = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: host
      zerodrop.testbed.netns_host:
        name: %(ns)s
        links:
          - name: %(peer)s
            kind: existing
            addresses: [10.232.0.2/24]
""" % names
    first = playbook(text)
    assert first.rc == 0, first
    inside = [l['ifname'] for l in ip_json('-n', names['ns'], 'link', 'show')]
    assert names['peer'] in inside
    assert not playbook(text).result('host')['changed']


def test_chains_namespaces_with_peer_netns(playbook):
    tag = uuid.uuid4().hex[:6]
    snd, rtr, rcv = ('zt-%s-%s' % (role, tag) for role in ('s', 'r', 'c'))
    text = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: bare
      zerodrop.testbed.netns_host:
        name: "{{ item }}"
      loop: [%(snd)s, %(rtr)s, %(rcv)s]
    - name: sender
      zerodrop.testbed.netns_host:
        name: %(snd)s
        links: [{name: eth0, peer: to-snd, peer_netns: %(rtr)s, addresses: [10.233.1.1/24],
                 tx_offload: false}]
        routes: [{to: default, via: 10.233.1.254}]
    - name: receiver
      zerodrop.testbed.netns_host:
        name: %(rcv)s
        links: [{name: eth0, peer: to-rcv, peer_netns: %(rtr)s, addresses: [10.233.2.1/24]}]
        routes: [{to: default, via: 10.233.2.254}]
    - name: router
      zerodrop.testbed.netns_host:
        name: %(rtr)s
        links:
          - {name: to-snd, kind: existing, addresses: [10.233.1.254/24]}
          - {name: to-rcv, kind: existing, addresses: [10.233.2.254/24]}
        sysctls: {net.ipv4.ip_forward: 1}
""" % {'snd': snd, 'rtr': rtr, 'rcv': rcv}
    try:
        first = playbook(text)
        assert first.rc == 0, first
        assert ['-n', rtr, 'link', 'add', 'to-snd', 'type', 'veth', 'peer', 'name', 'eth0',
                'netns', snd] in [c[1:] for c in first.result('sender')['commands']]
        router = {l['ifname']: l for l in ip_json('-n', rtr, 'addr', 'show')}
        assert set(router) == {'lo', 'to-snd', 'to-rcv'}
        assert 'UP' in router['to-snd']['flags']
        offload = subprocess.run(['ip', 'netns', 'exec', rtr, 'ethtool', '-k', 'to-snd'],
                                 capture_output=True, text=True, check=True).stdout
        assert 'tx-checksumming: off' in offload
        ping = subprocess.run(['ip', 'netns', 'exec', snd, 'ping', '-c', '1', '-W', '2',
                               '10.233.2.1'], capture_output=True, text=True, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        again = playbook(text)
        assert again.rc == 0, again
        for task in ('sender', 'receiver', 'router'):
            assert not again.result(task)['changed'], (task, again.result(task))
        assert not any(r['changed'] for r in again.result('bare')['results'])
    finally:
        for ns in (snd, rtr, rcv):
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True, check=False)


@pytest.mark.parametrize('links, routes, sysctls, words', [
    ([{'name': 'eth0'}], [], {}, ['links[0].peer', 'kind: existing']),
    ([{'name': 'a-very-long-device-name', 'peer': 'p0'}], [], {}, ['links[0].name', 'IFNAMSIZ']),
    ([{'name': 'eth0', 'peer': 'p0', 'addresses': ['10.1.2.3']}], [], {},
     ['links[0].addresses[0]', 'CIDR']),
    ([], [{'to': 'nowhere', 'via': '10.0.0.1'}], {}, ['routes[0].to']),
    ([], [], {'kernel.pid_max': 100}, ['sysctls.kernel.pid_max', 'net.*']),
    ([{'name': 'zz-missing0', 'kind': 'existing'}], [], {},
     ['links[0].name', 'exists neither', 'ovs_port']),
    ([{'name': 'eth0', 'peer': 'p0', 'peer_netns': 'zz-no-such-ns'}], [], {},
     ['links[0].peer_netns', "'zz-no-such-ns' does not exist", 'create it first']),
    ([{'name': 'eth0', 'kind': 'existing', 'peer_netns': 'x'}], [], {},
     ['links[0]', 'kind: veth only']),
])
def test_bad_input_is_refused_and_changes_nothing(playbook, names, links, routes, sysctls, words):
    text = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: host
      zerodrop.testbed.netns_host:
        name: %s
        links: %s
        routes: %s
        sysctls: %s
""" % (names['ns'], json.dumps(links), json.dumps(routes), json.dumps(sysctls))
    before = snapshot(names['ns'])
    run = playbook(text)
    assert run.rc != 0
    msg = run.result('host')['msg']
    for word in words:
        assert word in msg, msg
    assert snapshot(names['ns']) == before
