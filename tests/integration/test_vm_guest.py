"""Role vm_guest applied to a network namespace through the netns connection (a stand-in for a
VM): interface files, per-namespace sysctls, limits, tools; files go to the test's directory."""

import subprocess

import pytest

pytestmark = [pytest.mark.root]


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
    check = failed.result('zerodrop.testbed.vm_guest : Check the interfaces')
    assert any('CIDR' in item.get('msg', '') for item in check['results']), check
