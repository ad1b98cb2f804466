"""zerodrop.testbed.sysctl_live against a real network namespace this test makes."""

import os
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.root

KEYS = ('net.core.somaxconn', 'net.ipv4.tcp_ecn', 'net.ipv4.ip_local_port_range')


def bare(commands):
    """The commands with programs by name (the module runs them by absolute path)."""
    return [[os.path.basename(argv[0])] + argv[1:4] + [os.path.basename(argv[4])] + argv[5:]
            for argv in commands]


def values(ns):
    return dict((key, ' '.join(subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', key],
                                              capture_output=True, text=True,
                                              check=True).stdout.split())) for key in KEYS)


@pytest.fixture
def ns():
    name = 'zt-sl-' + uuid.uuid4().hex[:6]
    subprocess.run(['ip', 'netns', 'add', name], check=True)
    yield name
    subprocess.run(['ip', 'netns', 'del', name], capture_output=True, check=False)


def play(ns, sysctls):
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: set
      zerodrop.testbed.sysctl_live:
        netns: %s
        sysctls: %s
""" % (ns, sysctls)


WANTED = '{net.core.somaxconn: 1000, net.ipv4.tcp_ecn: 2, net.ipv4.ip_local_port_range: [40000, 50000]}'


def test_check_set_idempotent_and_in_the_namespace_only(playbook, ns):
    fresh = values(ns)
    assert fresh['net.ipv4.tcp_ecn'] == '2'
    host_somaxconn = open('/proc/sys/net/core/somaxconn').read().strip()

    checked = playbook(play(ns, WANTED), check=True, diff=True)
    assert checked.rc == 0, checked
    res = checked.result('set')
    assert res['changed']
    assert res['sysctls'] == {
        'net.core.somaxconn': {'old': fresh['net.core.somaxconn'], 'new': '1000'},
        'net.ipv4.ip_local_port_range': {'old': fresh['net.ipv4.ip_local_port_range'],
                                         'new': '40000 50000'}}
    assert res['diff'] == {'before': {'net.core.somaxconn': fresh['net.core.somaxconn'],
                                      'net.ipv4.ip_local_port_range':
                                      fresh['net.ipv4.ip_local_port_range']},
                           'after': {'net.core.somaxconn': '1000',
                                     'net.ipv4.ip_local_port_range': '40000 50000'}}
    assert values(ns) == fresh, 'check mode wrote a sysctl'

    first = playbook(play(ns, WANTED))
    assert first.rc == 0, first
    res = first.result('set')
    assert res['changed']
    assert bare(res['commands']) == [
        ['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.core.somaxconn=1000'],
        ['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w',
         'net.ipv4.ip_local_port_range=40000 50000']]
    assert values(ns) == {'net.core.somaxconn': '1000', 'net.ipv4.tcp_ecn': '2',
                          'net.ipv4.ip_local_port_range': '40000 50000'}
    assert open('/proc/sys/net/core/somaxconn').read().strip() == host_somaxconn

    again = playbook(play(ns, WANTED))
    assert again.rc == 0, again
    assert not again.result('set')['changed'], again.result('set')
    assert again.result('set')['commands'] == []


def test_a_refused_value_leaves_every_value_as_it_was(playbook, ns):
    fresh = values(ns)
    run = playbook(play(ns, '{net.core.somaxconn: 1000, net.ipv4.tcp_ecn: lots}'))
    assert run.rc != 0
    res = run.result('set')
    assert res['failed'] and not res['changed']
    assert 'net.ipv4.tcp_ecn=lots was refused' in res['msg']
    assert '(net.core.somaxconn restored)' in res['msg']
    assert values(ns) == fresh
    # the write, the refused write and the restore, in order
    assert [argv[-1] for argv in res['commands']] == [
        'net.core.somaxconn=1000', 'net.ipv4.tcp_ecn=lots',
        'net.core.somaxconn=%s' % fresh['net.core.somaxconn']]
