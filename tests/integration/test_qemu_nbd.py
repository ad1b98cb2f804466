"""zerodrop.testbed.qemu_nbd on this host, whose kernel has no nbd driver.

The attach/detach path needs a kernel with nbd: tests/integration/targets/qemu_nbd_guest/main.yml
runs it inside a guest VM (molecule scenario of the guest images).
"""

import os
import shutil
import subprocess

import pytest

# A fixture: a paused QEMU that holds an image, as a running VM does.

pytestmark = pytest.mark.skipif(not shutil.which('qemu-img'), reason='qemu-utils is not installed')


def host_has_nbd():
    if os.path.isdir('/sys/module/nbd') or os.path.exists('/dev/nbd0'):
        return True
    modprobe = shutil.which('modprobe') or '/usr/sbin/modprobe'
    if not os.path.exists(modprobe):
        return False
    return subprocess.run([modprobe, '--dry-run', 'nbd'], capture_output=True,
                          check=False).returncode == 0


needs_no_nbd = pytest.mark.skipif(host_has_nbd(), reason='this kernel has nbd: the guest target '
                                  'covers attach/detach; this test is for kernels without it')


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'disk.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path), '16M'], check=True)
    return path


@needs_no_nbd
def test_kernel_without_nbd_fails_clearly(playbook, image):
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: attach
      zerodrop.testbed.qemu_nbd: {image: "{{ image }}"}
      ignore_errors: true
    - name: attach in check mode
      zerodrop.testbed.qemu_nbd: {image: "{{ image }}"}
      check_mode: true
      ignore_errors: true
    - name: detach
      zerodrop.testbed.qemu_nbd: {image: "{{ image }}", state: absent}
''', extra_vars={'image': str(image)})
    assert run.rc == 0, run
    for task in ('attach', 'attach in check mode'):
        result = run.result(task)
        assert result['failed'] is True
        msg = result['msg']
        assert msg.startswith('this kernel has no nbd driver'), msg
        for hint in ('CONFIG_BLK_DEV_NBD', 'modprobe nbd max_part=16', 'guest VM'):
            assert hint in msg, (hint, msg)
        assert result['commands'] == []
    detach = run.result('detach')
    assert detach['changed'] is False and detach['detached'] == []


def test_bad_input_changes_nothing(playbook, image, tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('not an image\n')
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: not an nbd device
      zerodrop.testbed.qemu_nbd: {image: "{{ image }}", device: /dev/sda}
      ignore_errors: true
    - name: no image
      zerodrop.testbed.qemu_nbd: {device: /dev/nbd0}
      ignore_errors: true
    - name: missing image
      zerodrop.testbed.qemu_nbd: {image: "{{ missing }}"}
      ignore_errors: true
    - name: format of another image
      zerodrop.testbed.qemu_nbd: {image: "{{ image }}", format: raw}
      ignore_errors: true
    - name: unknown format
      zerodrop.testbed.qemu_nbd: {image: "{{ image }}", format: qcow3}
      ignore_errors: true
    - name: text file
      zerodrop.testbed.qemu_nbd: {image: "{{ text }}"}
      ignore_errors: true
''', extra_vars={'image': str(image), 'missing': str(tmp_path / 'nope.qcow2'),
                   'text': str(text)})
    assert run.rc == 0, run
    for task in ('not an nbd device', 'no image', 'missing image', 'format of another image',
                 'unknown format', 'text file'):
        assert run.result(task)['failed'] is True and run.result(task)['changed'] is False
        assert run.result(task).get('commands', []) == []
    assert "format: 'raw' but qemu-img reads '%s' as qcow2" % image in \
        run.result('format of another image')['msg']
    assert "format: 'qcow3' is not an image format qemu-img knows" in \
        run.result('unknown format')['msg']
    assert "image: '%s' is not a disk image" % text in run.result('text file')['msg']
    assert 'format: raw' in run.result('text file')['msg']
    assert "device: '/dev/sda' is not an nbd device" in run.result('not an nbd device')['msg']
    assert 'image: required with state: present' in run.result('no image')['msg']
    assert "image: '%s' does not exist" % (tmp_path / 'nope.qcow2') in \
        run.result('missing image')['msg']


def test_image_held_by_a_vm_is_refused(playbook, running_vm):
    img, pid = running_vm
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: attach
      zerodrop.testbed.qemu_nbd: {image: "{{ image }}", read_only: true}
      ignore_errors: true
''', extra_vars={'image': str(img)})
    assert run.rc == 0, run
    result = run.result('attach')
    assert result['failed'] is True
    assert "image '%s' is in use" % img in result['msg']
    assert 'pid %d' % pid in result['msg']
    assert result['commands'] == []
