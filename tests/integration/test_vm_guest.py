"""Role vm_guest applied to a network namespace through the netns connection (a stand-in for a
VM): interface files, per-namespace sysctls, limits, tools; files go to the test's directory.
Then with its own defaults in the session's Debian guest (QEMU TCG), neper included."""

import glob
import os
import subprocess

import pytest

from lib.playbook import ROOT

pytestmark = [pytest.mark.root]

NEPER_ARCHIVES = sorted(glob.glob(os.path.join(ROOT, '..', 'shared', 'sources', 'neper-*.tar.gz')))


def test_vm_guest_in_a_namespace(playbook, netns, tmp_path):
    ns = netns('zvm')
    inventory = tmp_path / 'inv.yml'
    inventory.write_text(
        'all:\n  hosts:\n    vm:\n      ansible_connection: zerodrop.testbed.netns\n'
        '      ansible_netns_name: %s\n'
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n' % ns)
    (tmp_path / 'ifaces').mkdir()
    extra = {
        'vm_guest_tools': ['iperf3', 'iperf2'], 'vm_guest_network_packages': [],
        'vm_guest_ifup': False, 'vm_guest_interfaces_dir': str(tmp_path / 'ifaces'),
        'vm_guest_interfaces': [{'name': 'eth0', 'method': 'dhcp'},
                                {'name': 'eth1', 'method': 'static', 'address': '10.0.1.11/24',
                                 'gateway': '10.0.1.1'}],
        'vm_guest_sysctl_file': str(tmp_path / 'sysctl.conf'),
        'vm_guest_limits_file': str(tmp_path / 'limits.conf'), 'vm_guest_flows': 3000,
    }
    play = '- hosts: vm\n  gather_facts: false\n  roles: [zerodrop.testbed.vm_guest]\n'
    run = playbook(play, inventory=str(inventory), extra_vars=extra)
    assert run.rc == 0, run
    assert 'iface eth0 inet dhcp' in (tmp_path / 'ifaces' / 'eth0').read_text()
    eth1 = (tmp_path / 'ifaces' / 'eth1').read_text()
    assert 'iface eth1 inet static' in eth1 and 'address 10.0.1.11/24' in eth1
    assert 'gateway 10.0.1.1' in eth1
    somaxconn = subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', 'net.core.somaxconn'],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert somaxconn == '65535'
    assert 'net.core.somaxconn=65535' in (tmp_path / 'sysctl.conf').read_text().replace(' ', '')
    assert '4000' in (tmp_path / 'limits.conf').read_text()
    again = playbook(play, inventory=str(inventory), extra_vars=extra)
    assert again.rc == 0 and not again.changed, again

    bad = dict(extra, vm_guest_interfaces=[{'name': 'eth2', 'method': 'static'}])
    failed = playbook(play, inventory=str(inventory), extra_vars=bad)
    assert failed.rc != 0
    msg = failed.result('zerodrop.testbed.vm_guest : Check the variables')['msg']
    assert 'vm_guest_interfaces[eth2]' in msg and 'CIDR' in msg, msg


@pytest.mark.slow
def test_vm_guest_defaults_in_a_guest(running_guest, playbook):
    """Every default but neper's source (the archive in ../shared/sources) and where neper is built:
    once on the controller (vm_guest_neper_build_host=localhost), the guest receiving one file.
    The default, a build inside the guest, works too but took 23 minutes under TCG here (gcc and
    git installed by apt, then make), so the neper and receiver tests run that default on
    namespace hosts instead."""
    if not NEPER_ARCHIVES:
        pytest.skip('no neper source archive in ../shared/sources (see its README.md)')
    run = playbook('- hosts: guest\n  gather_facts: false\n  roles: [zerodrop.testbed.vm_guest]\n',
                   inventory=running_guest.inventory(),
                   extra_vars={'vm_guest_neper_src': os.path.abspath(NEPER_ARCHIVES[-1]),
                               'vm_guest_neper_build_host': 'localhost'})
    assert run.rc == 0, run
    assert not run.result('zerodrop.testbed.neper : Install the binaries built on the build host').get('skipped')
    out = running_guest.ssh(
        '/opt/neper/bin/tcp_stream --nolog -v; sysctl -n net.core.somaxconn; '
        'cat /etc/security/limits.d/60-zerodrop-guest.conf /etc/network/interfaces.d/eth0; '
        "dpkg-query --show --showformat='${Package}=${db:Status-Status}\\n' rsync iperf3 iperf gcc 2>&1; true"
    ).stdout
    lines = out.splitlines()
    assert lines[0] == '1.1.0' and lines[1] == '65535', out
    assert '* hard nofile 11000' in ' '.join(out.split()), out
    assert 'iface eth0 inet dhcp' in out
    for package in ('rsync', 'iperf3', 'iperf'):
        assert '%s=installed' % package in lines, out
    assert 'gcc=installed' not in lines, out
