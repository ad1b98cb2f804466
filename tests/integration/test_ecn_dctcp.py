"""Role ecn_dctcp on this machine: its kernel has no dctcp (and no sch_red), so the DCTCP path
must fail early with a clear message; ECN and another congestion control work in namespaces.
Its defaults (DCTCP, persisted) run in the session's Debian guest, whose kernel has tcp_dctcp.
RED marking with DCTCP is tested in a guest (targets/ecn_dctcp_guest/main.yml)."""

import subprocess

import pytest

pytestmark = [pytest.mark.root]


def sysctl(ns, key):
    return subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', key], check=True,
                          capture_output=True, text=True).stdout.strip()


PLAY = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: zerodrop.testbed.ecn_dctcp
'''


def test_dctcp_missing_fails_clearly_and_changes_nothing(playbook, netns):
    ns = netns('zecn')
    before = sysctl(ns, 'net.ipv4.tcp_ecn')
    run = playbook(PLAY, extra_vars={'ecn_dctcp_netns': ns, 'ecn_dctcp_persist': False})
    assert run.rc != 0, run
    msg = run.result('zerodrop.testbed.ecn_dctcp : Explain the missing congestion control')['msg']
    print(msg)
    assert 'CONFIG_TCP_CONG_DCTCP' in msg and 'modprobe' in msg and 'tcp_dctcp' in msg, msg
    assert sysctl(ns, 'net.ipv4.tcp_ecn') == before


def test_ecn_and_congestion_control_in_a_namespace_idempotent(playbook, netns):
    ns = netns('zecn')
    extra = {'ecn_dctcp_netns': ns, 'ecn_dctcp_persist': False, 'ecn_dctcp_ecn': 1,
             'ecn_dctcp_congestion_control': 'reno'}
    run = playbook(PLAY, extra_vars=extra)
    assert run.rc == 0, run
    assert run.changed
    assert sysctl(ns, 'net.ipv4.tcp_ecn') == '1'
    assert sysctl(ns, 'net.ipv4.tcp_congestion_control') == 'reno'
    again = playbook(PLAY, extra_vars=extra)
    assert again.rc == 0 and not again.changed, again


def test_namespace_cannot_be_persisted(playbook, netns):
    ns = netns('zecn')
    run = playbook(PLAY, extra_vars={'ecn_dctcp_netns': ns, 'ecn_dctcp_persist': True,
                                     'ecn_dctcp_congestion_control': 'reno'})
    assert run.rc != 0
    assert 'ecn_dctcp_persist to false' in run.result('zerodrop.testbed.ecn_dctcp : Check the variables')['msg']


def test_dctcp_on_one_end_only_fails_before_any_change(playbook, netns, tmp_path):
    snd, rcv = netns('zecs'), netns('zecr')
    inventory = tmp_path / 'inv.yml'
    inventory.write_text(
        'all:\n'
        '  vars: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}",'
        ' ecn_dctcp_persist: false}\n'
        '  hosts:\n'
        '    snd: {ecn_dctcp_netns: %s, ecn_dctcp_congestion_control: dctcp, ecn_dctcp_peers: [rcv]}\n'
        '    rcv: {ecn_dctcp_netns: %s, ecn_dctcp_congestion_control: reno, ecn_dctcp_peers: [snd]}\n'
        % (snd, rcv))
    run = playbook('- hosts: snd\n  gather_facts: false\n  roles: [zerodrop.testbed.ecn_dctcp]\n',
                   inventory=str(inventory))
    assert run.rc != 0
    msg = run.result('zerodrop.testbed.ecn_dctcp : Check that the peers use DCTCP too')['msg']
    assert 'rcv=reno' in msg and 'ECN is not negotiated' in msg, msg
    with pytest.raises(KeyError):
        run.result('zerodrop.testbed.ecn_dctcp : Read the congestion controls and ECN setting')


@pytest.mark.slow
def test_defaults_in_a_guest(running_guest, playbook):
    """Every default: DCTCP and ECN as the guest's own settings, persisted to /etc. The guest is
    shared by the session's tests: its settings are put back afterwards."""
    keys = 'net.ipv4.tcp_congestion_control net.ipv4.tcp_ecn'
    before = running_guest.ssh('sysctl -n %s' % keys).stdout.split()
    try:
        run = playbook('- hosts: guest\n  gather_facts: false\n  roles: [zerodrop.testbed.ecn_dctcp]\n',
                       inventory=running_guest.inventory())
        assert run.rc == 0, run
        out = running_guest.ssh('sysctl -n %s; cat /etc/sysctl.d/60-zerodrop-ecn-dctcp.conf '
                                '/etc/modules-load.d/tcp_dctcp.conf' % keys).stdout
        assert out.split()[:2] == ['dctcp', '1'], out
        persisted = out.replace(' ', '')
        assert 'net.ipv4.tcp_congestion_control=dctcp' in persisted and 'net.ipv4.tcp_ecn=1' in persisted
        assert 'tcp_dctcp' in out.split()[2:], out
    finally:
        running_guest.ssh('rm -f /etc/sysctl.d/60-zerodrop-ecn-dctcp.conf /etc/modules-load.d/tcp_dctcp.conf; '
                          'sysctl -qw net.ipv4.tcp_congestion_control=%s net.ipv4.tcp_ecn=%s' % tuple(before),
                          check=False)
