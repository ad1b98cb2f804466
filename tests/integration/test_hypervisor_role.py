"""The hypervisor role's input checks and its teardown, without booting a guest.

The full path (private OVS, a TCG guest, qdiscs, SSH, teardown) is the molecule scenario
molecule/hypervisor.
"""

import json
import os
import subprocess
import uuid

import pytest

ROLE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the hypervisor role
      ansible.builtin.include_role:
        name: zerodrop.testbed.hypervisor
"""

TEARDOWN_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Tear down
      ansible.builtin.include_role:
        name: zerodrop.testbed.hypervisor
        tasks_from: teardown.yml
"""


def _base(tmp_path):
    return {
        'hypervisor_install_packages': False,
        'hypervisor_state_file': str(tmp_path / 'state.json'),
        'hypervisor_rundir': str(tmp_path / 'run'),
        'hypervisor_logdir': str(tmp_path / 'log'),
        'hypervisor_tap_scripts_dir': str(tmp_path / 'scripts'),
        'hypervisor_helper_dir': str(tmp_path / 'lib'),
        'hypervisor_accel': 'tcg',
    }


def _vm(name, mac, bridge='zthv-br', tap=None, **extra):
    nic = {'bridge': bridge, 'mac': mac}
    if tap:
        nic['tap'] = tap
    vm = {'name': name, 'kernel': '/nonexistent/vmlinuz', 'nics': [nic]}
    vm.update(extra)
    return vm


def _link_exists(name):
    return os.path.exists('/sys/class/net/' + name)


@pytest.mark.root
def test_bad_vms_are_refused_before_any_change(playbook, tmp_path):
    tag = uuid.uuid4().hex[:5]
    bridge = 'zthv' + tag
    variables = dict(_base(tmp_path), hypervisor_bridges=[{'name': bridge, 'type': 'linux'}],
                     hypervisor_vms=[
                         _vm('server1', '52:54:00:12:34:57', bridge, tap='zta' + tag),
                         _vm('lb', '52:54:00:12:34:57', bridge, tap='ztb' + tag),
                         _vm('bad', '52:54:00:12:34', bridge, tap='a-very-long-tap-name'),
                         _vm('odd', '53:54:00:12:34:01', 'nosuchbridge', tap='ztc' + tag)])
    run = playbook(ROLE_PLAY, extra_vars=variables)
    assert run.rc != 0, run
    failed = run.result('zerodrop.testbed.hypervisor : Fail on invalid bridges or VMs')
    text = '\n'.join(failed['msg'])
    assert 'MAC 52:54:00:12:34:57 is used by more than one NIC: server1 nics[0], lb nics[0]' in text
    assert 'hypervisor_vms[2] (bad): nics[0]: mac "52:54:00:12:34" is not a MAC address' in text
    assert "nics[0].tap 'a-very-long-tap-name' must be 1-15 characters" in text
    assert 'bridge "nosuchbridge" is not in hypervisor_bridges' in text
    assert 'mac 53:54:00:12:34:01 is a multicast address' in text
    # Validation comes first: nothing was created.
    assert not _link_exists(bridge)
    assert not os.path.exists(variables['hypervisor_state_file'])


@pytest.mark.root
def test_linux_bridge_and_tap_scripts_then_teardown(playbook, tmp_path):
    bridge = 'zthv' + uuid.uuid4().hex[:5]
    variables = dict(_base(tmp_path), hypervisor_bridges=[
        {'name': bridge, 'type': 'linux', 'addresses': ['10.250.71.1/24'],
         'routes': [{'to': '10.250.72.0/24', 'via': '10.250.71.2'}]}])
    try:
        run = playbook(ROLE_PLAY, extra_vars=variables)
        assert run.rc == 0, run
        addr = json.loads(subprocess.run(['ip', '-j', 'addr', 'show', 'dev', bridge],
                                         capture_output=True, text=True, check=True).stdout)
        assert [a['local'] for a in addr[0]['addr_info'] if a['family'] == 'inet'] == ['10.250.71.1']
        routes = subprocess.run(['ip', 'route', 'show', '10.250.72.0/24'], capture_output=True,
                                text=True, check=True).stdout
        assert 'via 10.250.71.2 dev %s' % bridge in routes
        state = json.load(open(variables['hypervisor_state_file']))
        assert state['bridges'] == [{'name': bridge, 'type': 'linux'}]
        script = tmp_path / 'scripts' / ('ifup-' + bridge)
        assert 'ip link set "$1" master %s' % bridge in script.read_text()

        again = playbook(ROLE_PLAY, extra_vars=variables)
        assert again.rc == 0 and not again.changed, again

        down = playbook(TEARDOWN_PLAY, extra_vars=variables)
        assert down.rc == 0, down
        assert not _link_exists(bridge)
        assert not script.exists()
        assert not os.path.exists(variables['hypervisor_state_file'])
        assert playbook(TEARDOWN_PLAY, extra_vars=variables).changed is False
    finally:
        subprocess.run(['ip', 'link', 'del', bridge], capture_output=True, check=False)
