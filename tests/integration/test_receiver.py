"""Role receiver on this machine: iperf3/iperf from Debian, many-flow sysctls in a namespace,
file limits written and read back, and the warning for this machine's 20000 hard limit; and the
role with its own defaults on a namespace host, neper built from ../shared/sources."""

import glob
import os
import resource
import subprocess

import pytest

from lib.playbook import ROOT

pytestmark = [pytest.mark.root]

NEPER_ARCHIVES = sorted(glob.glob(os.path.join(ROOT, '..', 'shared', 'sources', 'neper-*.tar.gz')))

PLAY = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: zerodrop.testbed.receiver
'''
WARNING = 'zerodrop.testbed.receiver : Warn when the file limit caps the flows'


def sysctl(ns, key):
    return subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', key], check=True,
                          capture_output=True, text=True).stdout.split()


def test_receiver_in_a_namespace(playbook, netns, tmp_path):
    ns = netns('zrcv')
    limits = tmp_path / 'limits.conf'
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    extra = {'receiver_tools': ['iperf3', 'iperf2'], 'receiver_netns': ns,
             'receiver_persist': False, 'receiver_flows': hard + 5000}
    run = playbook(PLAY, extra_vars=extra)
    assert run.rc == 0, run
    assert subprocess.run(['iperf3', '--version'], capture_output=True, check=False).returncode == 0
    assert subprocess.run(['iperf', '-v'], capture_output=True, check=False).returncode in (0, 1)
    assert sysctl(ns, 'net.core.somaxconn') == ['65535']
    assert sysctl(ns, 'net.ipv4.tcp_max_syn_backlog') == ['65535']
    assert sysctl(ns, 'net.ipv4.ip_local_port_range') == ['1024', '65535']
    facts = run.result('zerodrop.testbed.receiver : Note the flows the file limit allows')
    assert int(facts['ansible_facts']['receiver_nofile_hard']) == hard
    assert int(facts['ansible_facts']['receiver_max_flows']) == hard - 1000
    warning = run.result(WARNING)['msg']
    assert 'at most %d flows' % (hard - 1000) in warning and 'RLIMIT_NOFILE' in warning, warning

    # Within the limit: no warning; a second run changes nothing.
    extra['receiver_flows'] = hard - 2000
    again = playbook(PLAY, extra_vars=extra)
    assert again.rc == 0 and not again.changed, again
    assert again.result(WARNING).get('skipped'), again


def test_limits_file(playbook, tmp_path):
    limits = tmp_path / 'limits.conf'
    run = playbook(PLAY, extra_vars={'receiver_tools': ['iperf3'], 'receiver_flows': 5000,
                                     'receiver_persist': True,
                                     'receiver_limits_file': str(limits),
                                     'receiver_sysctls': {},
                                     'receiver_sysctl_file': str(tmp_path / 'sysctl.conf')})
    assert run.rc == 0, run
    lines = [line.split() for line in limits.read_text().splitlines()
             if line.strip() and not line.startswith('#')]
    assert ['*', 'soft', 'nofile', '6000'] in lines and ['*', 'hard', 'nofile', '6000'] in lines


def test_receiver_defaults_on_a_namespace_host(playbook, netns, tmp_path):
    """Every default but neper's source (the archive in ../shared/sources) and receiver_persist:
    the host is a namespace of this machine, as the local lab's receiver, whose /etc is the
    machine's. neper is built on the host itself (the default) into /opt/neper."""
    if not NEPER_ARCHIVES:
        pytest.skip('no neper source archive in ../shared/sources (see its README.md)')
    ns = netns('zrcv')
    inventory = tmp_path / 'inv.yml'
    inventory.write_text(
        'all:\n  hosts:\n    rcv:\n      ansible_connection: zerodrop.testbed.netns\n'
        '      ansible_netns_name: %s\n'
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n' % ns)
    play = '- hosts: rcv\n  gather_facts: false\n  roles: [zerodrop.testbed.receiver]\n'
    extra = {'receiver_neper_src': os.path.abspath(NEPER_ARCHIVES[-1]), 'receiver_persist': False}
    run = playbook(play, inventory=str(inventory), extra_vars=extra)
    assert run.rc == 0, run
    help_text = subprocess.run(['ip', 'netns', 'exec', ns, '/opt/neper/bin/tcp_stream', '--nolog',
                                '--help'], capture_output=True, text=True, check=False)
    assert 'usage' in (help_text.stdout + help_text.stderr).lower(), help_text
    assert sysctl(ns, 'net.core.somaxconn') == ['65535']
    assert sysctl(ns, 'net.ipv4.ip_local_port_range') == ['1024', '65535']
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] >= 11000:
        assert run.result(WARNING).get('skipped'), run.result(WARNING)
    again = playbook(play, inventory=str(inventory), extra_vars=extra)
    assert again.rc == 0 and not again.changed, again
