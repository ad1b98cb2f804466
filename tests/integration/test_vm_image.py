"""The vm_image role for real: debootstrap image (cached), overlays, data disks, and a guest that
boots from it under QEMU TCG and has the kernel features this host lacks."""

import json
import os
import subprocess

import pytest

from lib.guest import TEST_IMAGE_VARS

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROLE_PLAY = """
- name: Use the vm_image role
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run vm_image
      ansible.builtin.include_role:
        name: zerodrop.testbed.vm_image
        tasks_from: %s
    - name: Report the image
      ansible.builtin.debug:
        var: vm_image
      when: vm_image is defined
"""


def role(entry='main'):
    return ROLE_PLAY % entry


def qemu_info(path):
    out = subprocess.run(['qemu-img', 'info', '--output=json', '-U', path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def debugfs(image, request, tmp_path):
    """Run a debugfs request against an ext4 image (qcow2 is converted to raw first)."""
    raw = str(tmp_path / 'inspect.raw')
    if not os.path.exists(raw):
        subprocess.run(['qemu-img', 'convert', '-O', 'raw', image, raw], check=True)
    return subprocess.run(['debugfs', '-R', request, raw], capture_output=True, text=True,
                          check=True).stdout


def test_image_is_built_once_and_reused(guest_image, playbook):
    for key in ('base_image', 'kernel', 'initrd'):
        assert os.path.isfile(guest_image[key]), key
    info = qemu_info(guest_image['base_image'])
    assert info['format'] == 'qcow2' and 'backing-filename' not in info
    assert guest_image['kernel_version'] and 'console=ttyS0' in guest_image['append']
    assert os.path.isfile(guest_image['ssh_private_key'])

    again = playbook(role(), extra_vars=TEST_IMAGE_VARS)
    assert again.rc == 0, again
    assert not again.changed, again
    assert again.result('Report the image')['vm_image']['base_image'] == guest_image['base_image']


def test_changed_setting_gives_another_image_in_check_mode(guest_image, playbook):
    other = dict(TEST_IMAGE_VARS, vm_image_hostname='zt-other')
    run = playbook(role(), extra_vars=other, check=True)
    assert run.rc == 0, run
    predicted = run.result('Report the image')['vm_image']
    assert predicted['dir'] != guest_image['dir']
    # Same packages and mirror: the debootstrap tree would be reused.
    assert predicted['rootfs'] == guest_image['rootfs']
    assert run.result('zerodrop.testbed.vm_image : Report the build check mode would do')['changed']
    assert not os.path.exists(predicted['dir'])


def test_bad_input_is_refused_before_any_change(playbook, tmp_path):
    cache = str(tmp_path / 'cache')
    bad = dict(TEST_IMAGE_VARS, vm_image_cache_dir=cache,
               vm_image_interfaces=[{'name': 'eth1', 'method': 'static'}])
    run = playbook(role(), extra_vars=bad)
    assert run.rc != 0
    assert 'vm_image_interfaces[eth1]: method static needs addresses' in run.stdout, run
    assert not os.path.exists(cache)


def test_interfaces_file_for_static_addresses(playbook, tmp_path):
    out = tmp_path / 'interfaces'
    play = """
- name: Render the ifupdown file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.template:
        src: %s/roles/vm_image/templates/interfaces.j2
        dest: %s
        mode: "0644"
""" % (os.path.dirname(os.path.dirname(os.path.dirname(__file__))), out)
    interfaces = [{'name': 'eth0', 'method': 'dhcp'},
                  {'name': 'eth1', 'method': 'static', 'addresses': ['10.0.0.2/24', 'fd00::2/64'],
                   'gateway': '10.0.0.1', 'mtu': 9000}]
    run = playbook(play, extra_vars={'vm_image_interfaces': interfaces})
    assert run.rc == 0, run
    text = out.read_text()
    assert 'allow-hotplug eth0\niface eth0 inet dhcp\n' in text
    assert ('iface eth1 inet static\n    address 10.0.0.2/24\n    gateway 10.0.0.1\n'
            '    pre-up /sbin/ip link set dev eth1 mtu 9000\n') in text
    assert 'iface eth1 inet6 static\n    address fd00::2/64\n' in text


def test_overlay_is_created_once(guest_image, playbook, tmp_path):
    path = str(tmp_path / 'vms' / 'vm1.qcow2')
    variables = {'vm_image_overlay_path': path, 'vm_image_overlay_base': guest_image['base_image']}
    first = playbook(role('overlay'), extra_vars=variables)
    assert first.rc == 0, first
    assert first.result('zerodrop.testbed.vm_image : Create the overlay')['changed']
    info = qemu_info(path)
    assert info['format'] == 'qcow2'
    assert info['backing-filename'] == guest_image['base_image']

    second = playbook(role('overlay'), extra_vars=variables)
    assert second.rc == 0 and not second.changed, second

    # Another base is refused unless asked to recreate.
    other = str(tmp_path / 'other.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', other, '1G'], check=True)
    variables['vm_image_overlay_base'] = other
    refused = playbook(role('overlay'), extra_vars=variables)
    assert refused.rc != 0, refused
    assert qemu_info(path)['backing-filename'] == guest_image['base_image']
    recreated = playbook(role('overlay'), extra_vars=dict(variables, vm_image_overlay_recreate=True))
    assert recreated.rc == 0, recreated
    assert qemu_info(path)['backing-filename'] == other


def test_data_disk_with_mkfs_holds_the_files(playbook, tmp_path):
    source = tmp_path / 'index.txt'
    source.write_text('clip list\n')
    disk = str(tmp_path / 'data' / 'video.qcow2')
    spec = {'vm_image_data_disk_method': 'mkfs', 'vm_image_cache_dir': str(tmp_path / 'cache'),
            'vm_image_data_disk': {
                'path': disk, 'size': '64M', 'label': 'videos',
                'files': [{'src': str(source), 'dest': 'meta/index.txt'}],
                'generate': [{'dest': 'video/clip', 'size': '1MB', 'count': 3}]}}
    first = playbook(role('data_disk'), extra_vars=spec)
    assert first.rc == 0, first
    assert qemu_info(disk)['format'] == 'qcow2'
    assert qemu_info(disk)['virtual-size'] == 64 * 1024 * 1024
    listing = debugfs(disk, 'ls -l /video', tmp_path)
    for n in range(3):
        assert 'clip-%03d' % n in listing
    assert listing.count(' 1000000 ') == 3
    assert debugfs(disk, 'cat /meta/index.txt', tmp_path) == 'clip list\n'
    assert 'videos' in subprocess.run(['debugfs', '-R', 'stats', str(tmp_path / 'inspect.raw')],
                                      capture_output=True, text=True, check=False).stdout

    again = playbook(role('data_disk'), extra_vars=spec)
    assert again.rc == 0 and not again.changed, again

    source.write_text('clip list, longer\n')
    rebuilt = playbook(role('data_disk'), extra_vars=spec)
    assert rebuilt.rc == 0 and rebuilt.changed, rebuilt
    os.unlink(str(tmp_path / 'inspect.raw'))
    assert debugfs(disk, 'cat /meta/index.txt', tmp_path) == 'clip list, longer\n'


def tree(path):
    return sorted(os.path.relpath(os.path.join(d, n), str(path))
                  for d, dirs, files in os.walk(str(path)) for n in dirs + files)


def test_overlay_bad_input_is_refused_before_any_change(playbook, tmp_path):
    tmp_path = tmp_path / 'scene'  # the playbook files go to the test's directory itself
    tmp_path.mkdir()
    base = str(tmp_path / 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '64M'], check=True)
    cases = [
        ({'vm_image_overlay_path': 'vms/vm1.qcow2', 'vm_image_overlay_base': base},
         'vm_image_overlay_path=vms/vm1.qcow2'),
        ({'vm_image_overlay_path': str(tmp_path / 'vms' / 'vm1.qcow2'), 'vm_image_overlay_base': base,
          'vm_image_overlay_size': '8'}, 'vm_image_overlay_size=8'),
        ({'vm_image_overlay_path': base, 'vm_image_overlay_base': base}, 'the base image itself'),
        # Only qemu-img knows: it refuses in check mode, before the directory is made.
        ({'vm_image_overlay_path': str(tmp_path / 'vms' / 'vm1.qcow2'),
          'vm_image_overlay_base': str(tmp_path / 'missing.qcow2')}, 'does not exist'),
    ]
    before = tree(tmp_path)
    for variables, fragment in cases:
        run = playbook(role('overlay'), extra_vars=variables)
        assert run.rc != 0, run
        failures = run.failures()
        assert fragment in str(failures[0][2]), failures
        assert tree(tmp_path) == before, variables


def test_data_disk_bad_input_is_refused_before_any_change(playbook, tmp_path):
    tmp_path = tmp_path / 'scene'  # the playbook files go to the test's directory itself
    tmp_path.mkdir()
    big = tmp_path / 'big.bin'
    with open(str(big), 'wb') as f:
        f.truncate(8 * 1024 * 1024)
    cache = str(tmp_path / 'cache')
    disk = str(tmp_path / 'data' / 'disk.qcow2')
    cases = [
        ({'path': disk, 'size': '0M'}, 'size=0M'),
        ({'path': disk, 'size': '4096'}, 'size=4096: give a size with a unit'),
        ({'path': disk, 'size': '8M', 'generate': [{'dest': 'clip', 'size': '2MB', 'count': 5}]},
         'cannot hold the 9.5 MiB of generate'),
        ({'path': disk, 'size': '8M', 'generate': [{'dest': 'clip', 'size': '64', 'count': 1}]},
         'generate[clip]: size 64 needs a unit'),
        ({'path': disk, 'size': '8M', 'generate': [{'dest': 'clip', 'size': '1M', 'count': 0}]},
         'generate[clip]: count 0'),
        # The source files' sizes are known after a stat: still before anything is written.
        ({'path': disk, 'size': '6M', 'files': [{'src': str(big), 'dest': 'big.bin'}]},
         'size=6M cannot hold its files'),
    ]
    before = tree(tmp_path)
    for spec, fragment in cases:
        run = playbook(role('data_disk'), extra_vars={'vm_image_data_disk': spec,
                                                      'vm_image_data_disk_method': 'mkfs',
                                                      'vm_image_cache_dir': cache})
        assert run.rc != 0, run
        failures = run.failures()
        assert fragment in str(failures[0][2]), failures
        assert tree(tmp_path) == before, spec


def test_guest_boots_with_image_settings(running_guest):
    out = running_guest.ssh('hostname; cat /proc/cmdline; ip -br -4 addr show eth0; '
                            'systemctl is-enabled e2scrub_reap.service getty-static.service || true; '
                            'sshd -T | grep -i -E "^(permitrootlogin|passwordauthentication) "').stdout
    assert out.splitlines()[0] == 'zt-guest'
    assert 'console=ttyS0' in out and 'net.ifnames=0' in out
    assert '10.0.2.15/24' in out
    assert out.count('masked') == 2
    assert 'permitrootlogin without-password' in out and 'passwordauthentication no' in out


# What each module gives once loaded (built-in ones have no /sys/module entry).
KERNEL_FEATURES = {
    'sch_red': 'tc qdisc add dev zt0 root red limit 100000 min 30000 max 90000 avpkt 1000 '
               'burst 35 probability 0.1 bandwidth 100mbit ecn',
    'sch_netem': 'tc qdisc add dev zt0 root netem delay 5ms',
    'sch_fq_codel': 'tc qdisc add dev zt0 root fq_codel',
    'tcp_dctcp': 'grep -qw dctcp /proc/sys/net/ipv4/tcp_available_congestion_control',
    'nbd': 'test -b /dev/nbd0',
    'openvswitch': 'test -d /sys/module/openvswitch',
}


@pytest.mark.parametrize('module', sorted(KERNEL_FEATURES))
def test_guest_kernel_has_what_the_host_lacks(running_guest, module):
    running_guest.ssh('modprobe %s' % module)
    proc = running_guest.ssh('ip link add zt0 type dummy && { %s; }; rc=$?; ip link del zt0; exit $rc'
                             % KERNEL_FEATURES[module], check=False)
    assert proc.returncode == 0, proc


def test_guest_takes_a_netem_qdisc(running_guest):
    out = running_guest.ssh('ip link add zt0 type dummy && ip link set zt0 up && '
                            'tc qdisc add dev zt0 root netem delay 5ms && tc -j qdisc show dev zt0; '
                            'ip link del zt0').stdout
    assert json.loads(out.splitlines()[0])[0]['kind'] == 'netem'


def test_guest_inventory_works_with_ansible(running_guest, playbook):
    run = playbook("""
- name: Reach the guest
  hosts: guest
  gather_facts: false
  tasks:
    - name: Read the kernel release
      ansible.builtin.command: uname -r
      changed_when: false
""", inventory=running_guest.inventory())
    assert run.rc == 0, run
    assert run.result('Read the kernel release')['stdout'] == running_guest.image['kernel_version']
