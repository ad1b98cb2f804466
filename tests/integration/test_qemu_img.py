"""zerodrop.testbed.qemu_img against the real qemu-img of this host."""

import hashlib
import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(not shutil.which('qemu-img'), reason='qemu-utils is not installed')

G = 1024 ** 3
M = 1024 ** 2


def info(path):
    return json.loads(subprocess.run(['qemu-img', 'info', '-U', '--output=json', str(path)],
                                     check=True, capture_output=True, text=True).stdout)


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_create_check_mode_then_idempotent(playbook, tmp_path):
    run = playbook("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: create check
      zerodrop.testbed.qemu_img: &sys
        path: "{{ dir }}/sys.qcow2"
        size: 1G
        options: {cluster_size: 128k, lazy_refcounts: true}
      check_mode: true
      diff: true
    - name: files after check mode
      ansible.builtin.find: {paths: "{{ dir }}", patterns: ["*.qcow2", "*.img"]}
    - name: create
      zerodrop.testbed.qemu_img: *sys
      diff: true
    - name: raw
      zerodrop.testbed.qemu_img: &raw {path: "{{ dir }}/data.img", format: raw, size: 16M}
    - name: create again
      zerodrop.testbed.qemu_img: *sys
      diff: true
    - name: raw again
      zerodrop.testbed.qemu_img: *raw
    - name: old qcow2
      zerodrop.testbed.qemu_img: &old {path: "{{ dir }}/old.qcow2", size: 1M, options: {compat: 0.10}}
    - name: old qcow2 again
      zerodrop.testbed.qemu_img: *old
""", extra_vars={'dir': str(tmp_path)})
    assert run.rc == 0, run
    check = run.result('create check')
    assert check['changed'] is True
    assert check['diff']['before'] == {}
    assert check['diff']['after'] == {
        'format': 'qcow2', 'virtual_size': G, 'backing_file': None, 'backing_format': None}
    assert run.result('files after check mode')['matched'] == 0

    assert run.result('create')['changed'] is True
    sys_info = info(tmp_path / 'sys.qcow2')
    assert (sys_info['format'], sys_info['virtual-size'], sys_info['cluster-size']) == \
        ('qcow2', G, 128 * 1024)
    assert sys_info['format-specific']['data']['lazy-refcounts'] is True
    assert run.result('create')['info']['virtual_size'] == G
    assert run.result('raw')['changed'] is True
    assert info(tmp_path / 'data.img')['format'] == 'raw'
    assert info(tmp_path / 'data.img')['virtual-size'] == 16 * M

    assert info(tmp_path / 'old.qcow2')['format-specific']['data']['compat'] == '0.10'
    for task in ('create again', 'raw again', 'old qcow2 again'):
        assert run.result(task)['changed'] is False
        assert run.result(task)['commands'] == []
    assert run.result('create again')['diff']['before'] == run.result('create again')['diff']['after']


def test_resize_grows_and_shrinks_only_when_allowed(playbook, tmp_path):
    img = tmp_path / 'd.img'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(img), '16M'], check=True)
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: grow check
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 32M}
      check_mode: true
      diff: true
    - name: grow
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 32M}
    - name: grow again
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: "33554432"}
    - name: shrink refused
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 8M}
      ignore_errors: true
    - name: shrink
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 8M, allow_shrink: true}
    - name: bad size
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 10GB}
      ignore_errors: true
    - name: unaligned size
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: "1000"}
      ignore_errors: true
''', extra_vars={'img': str(img)})
    assert run.rc == 0, run
    assert run.result('grow check')['changed'] is True
    assert run.result('grow check')['diff']['before']['virtual_size'] == 16 * M
    assert run.result('grow check')['diff']['after']['virtual_size'] == 32 * M
    assert run.result('grow')['changed'] is True
    assert run.result('grow again')['changed'] is False
    refused = run.result('shrink refused')
    assert refused['failed'] is True
    assert 'allow_shrink: true' in refused['msg'] and 'size: 8M' in refused['msg']
    assert run.result('shrink')['changed'] is True
    assert info(img)['virtual-size'] == 8 * M
    assert run.result('bad size')['msg'].startswith("size: '10GB' is not a size")
    assert 'multiple of 512' in run.result('unaligned size')['msg']
    assert info(img)['virtual-size'] == 8 * M


def test_backing_file_overlay(playbook, tmp_path):
    base = tmp_path / 'base.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(base), '64M'], check=True)
    (tmp_path / 'vm').mkdir()
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: overlay
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/vm/o.qcow2", backing_file: ../base.qcow2}
    - name: overlay again
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/vm/o.qcow2", backing_file: ../base.qcow2,
                                  backing_format: qcow2}
    - name: same backing file, absolute name
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/vm/o.qcow2", backing_file: "{{ dir }}/base.qcow2"}
    - name: other backing file
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/vm/o.qcow2", backing_file: ../vm/none.qcow2}
      ignore_errors: true
    - name: missing backing file
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/vm/p.qcow2", backing_file: nothere.qcow2}
      ignore_errors: true
    - name: bigger overlay
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/vm/q.qcow2", backing_file: ../base.qcow2,
                                  size: 128M}
''', extra_vars={'dir': str(tmp_path)})
    assert run.rc == 0, run
    assert run.result('overlay')['changed'] is True
    overlay = info(tmp_path / 'vm' / 'o.qcow2')
    assert overlay['backing-filename'] == '../base.qcow2'
    assert overlay['backing-filename-format'] == 'qcow2'
    assert overlay['virtual-size'] == 64 * M
    assert run.result('overlay again')['changed'] is False
    assert run.result('same backing file, absolute name')['changed'] is False
    other = run.result('other backing file')
    assert other['failed'] and 'backing_file' in other['msg'] and 'force: true' in other['msg']
    assert "backing_file: 'nothere.qcow2' does not exist" in run.result('missing backing file')['msg']
    assert not (tmp_path / 'vm' / 'p.qcow2').exists()
    assert info(tmp_path / 'vm' / 'q.qcow2')['virtual-size'] == 128 * M


def test_never_overwrites_without_force(playbook, tmp_path):
    img = tmp_path / 'keep.img'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(img), '4M'], check=True)
    # Past the first 64 KiB: its zeroed start is what shows that the file is a raw disk image.
    with open(img, 'r+b') as f:
        f.seek(M)
        f.write(b'precious data')
    before = digest(img)
    run = playbook("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: other format
      zerodrop.testbed.qemu_img: {path: "{{ img }}", format: qcow2, size: 4M}
      ignore_errors: true
    - name: checksum after refusal
      ansible.builtin.stat: {path: "{{ img }}", checksum_algorithm: sha256}
    - name: other format forced
      zerodrop.testbed.qemu_img: {path: "{{ img }}", format: qcow2, size: 4M, force: true}
""", extra_vars={'img': str(img)})
    assert run.rc == 0, run
    result = run.result('other format')
    assert result['failed'] is True
    assert 'format is raw, not qcow2' in result['msg'] and 'force: true' in result['msg']
    assert result['commands'] == []
    assert run.result('checksum after refusal')['stat']['checksum'] == before
    assert run.result('other format forced')['changed'] is True
    assert info(img)['format'] == 'qcow2'


def test_convert_raw_to_qcow2(playbook, tmp_path):
    src = tmp_path / 'src.img'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(src), '8M'], check=True)
    with open(src, 'r+b') as f:
        f.write(b'first contents')
    run = playbook("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: convert
      zerodrop.testbed.qemu_img: &convert
        path: "{{ dir }}/dst.qcow2"
        source: "{{ dir }}/src.img"
        format: qcow2
    - name: first copy
      ansible.builtin.command: qemu-img compare -U {{ dir }}/src.img {{ dir }}/dst.qcow2
      changed_when: false
    - name: change the source
      ansible.builtin.shell: printf 'second contents' | dd of={{ dir }}/src.img conv=notrunc
    - name: convert unforced
      zerodrop.testbed.qemu_img: *convert
    - name: convert forced
      zerodrop.testbed.qemu_img: &forced
        path: "{{ dir }}/dst.qcow2"
        source: "{{ dir }}/src.img"
        format: qcow2
        force: true
    - name: convert forced again
      zerodrop.testbed.qemu_img: *forced
""", extra_vars={'dir': str(tmp_path)})
    assert run.rc == 0, run
    assert run.result('convert')['changed'] is True
    assert run.result('convert')['info']['format'] == 'qcow2'
    assert run.result('convert unforced')['changed'] is False
    assert run.result('convert forced')['changed'] is True
    assert run.result('convert forced again')['changed'] is False
    assert info(tmp_path / 'dst.qcow2')['format'] == 'qcow2'
    assert subprocess.run(['qemu-img', 'compare', '-U', str(src), str(tmp_path / 'dst.qcow2')],
                          check=False).returncode == 0


def test_absent_and_info(playbook, tmp_path):
    img = tmp_path / 'gone.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(img), '1M'], check=True)
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: info
      zerodrop.testbed.qemu_img: {path: "{{ img }}"}
    - name: absent check
      zerodrop.testbed.qemu_img: {path: "{{ img }}", state: absent}
      check_mode: true
    - name: absent
      zerodrop.testbed.qemu_img: {path: "{{ img }}", state: absent}
    - name: absent again
      zerodrop.testbed.qemu_img: {path: "{{ img }}", state: absent}
    - name: info missing
      zerodrop.testbed.qemu_img: {path: "{{ img }}"}
      ignore_errors: true
''', extra_vars={'img': str(img)})
    assert run.rc == 0, run
    assert run.result('info')['changed'] is False
    assert run.result('info')['info']['format'] == 'qcow2'
    assert run.result('info')['info']['virtual_size'] == M
    assert run.result('absent check')['changed'] is True
    assert run.result('absent')['changed'] is True
    assert run.result('absent again')['changed'] is False
    missing = run.result('info missing')
    assert missing['failed'] is True and missing['commands'] == []
    assert missing['msg'] == "size: '%s' does not exist; give size (or backing_file, or source) " \
        "to create it" % img
    assert not img.exists()


def test_locked_image(playbook, running_vm):
    img, pid = running_vm
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: info
      zerodrop.testbed.qemu_img: {path: "{{ img }}"}
    - name: unchanged
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 16M}
    - name: resize
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 32M}
      ignore_errors: true
    - name: remove
      zerodrop.testbed.qemu_img: {path: "{{ img }}", state: absent}
      ignore_errors: true
''', extra_vars={'img': str(img)})
    assert run.rc == 0, run
    assert run.result('info')['info']['virtual_size'] == 16 * M
    assert run.result('unchanged')['changed'] is False
    for task in ('resize', 'remove'):
        result = run.result(task)
        assert result['failed'] is True
        assert "image '%s' is in use" % img in result['msg']
        assert 'pid %d: qemu-system-x86_64' % pid in result['msg']
        assert [h['pid'] for h in result['holders']] == [pid]
        assert result['commands'] == []
    assert img.exists() and info(img)['virtual-size'] == 16 * M


RETURN_INFO_KEYS = {'path', 'format', 'virtual_size', 'actual_size', 'backing_file',
                    'backing_file_resolved', 'backing_format', 'cluster_size', 'dirty',
                    'encrypted', 'format_specific'}


def test_unchanged_image_returns_every_documented_info_field(playbook, tmp_path):
    img = tmp_path / 'i.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(img), '4M'], check=True)
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: info
      zerodrop.testbed.qemu_img: {path: "{{ img }}"}
    - name: unchanged
      zerodrop.testbed.qemu_img: {path: "{{ img }}", size: 4M, format: qcow2}
''', extra_vars={'img': str(img)})
    assert run.rc == 0, run
    for task in ('info', 'unchanged'):
        result = run.result(task)
        assert result['changed'] is False
        assert set(result['info']) == RETURN_INFO_KEYS, result['info']
        assert result['info']['cluster_size'] == 65536
        assert result['info']['format_specific']['compat'] == '1.1'


def test_files_that_are_not_images_are_left_alone(playbook, tmp_path):
    notes = tmp_path / 'notes.txt'
    notes.write_text('not an image\n' * 100)
    # Text of a whole number of sectors: its content, not its size, gives it away.
    aligned = tmp_path / 'aligned.txt'
    aligned.write_text(('x' * 63 + '\n') * 16)
    disk = tmp_path / 'fs.img'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(disk), '4M'], check=True)
    with open(disk, 'r+b') as f:
        f.write(b'\x7fELF binary data\0\0')
    sums = dict((p, digest(p)) for p in (notes, aligned, disk))
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: grow text
      zerodrop.testbed.qemu_img: {path: "{{ notes }}", size: 1M}
      ignore_errors: true
    - name: remove text
      zerodrop.testbed.qemu_img: {path: "{{ notes }}", state: absent}
      ignore_errors: true
    - name: raw named
      zerodrop.testbed.qemu_img: {path: "{{ notes }}", format: raw}
      ignore_errors: true
    - name: aligned text
      zerodrop.testbed.qemu_img: {path: "{{ aligned }}", size: 4K}
      ignore_errors: true
    - name: unknown content
      zerodrop.testbed.qemu_img: {path: "{{ disk }}", state: absent}
      ignore_errors: true
    - name: read forced
      zerodrop.testbed.qemu_img: {path: "{{ notes }}", force: true}
''', extra_vars={'notes': str(notes), 'aligned': str(aligned), 'disk': str(disk)})
    assert run.rc == 0, run
    for task, why in (('grow text', 'is not a whole number of 512-byte sectors'),
                      ('remove text', 'is not a whole number of 512-byte sectors'),
                      ('raw named', 'is not a whole number of 512-byte sectors'),
                      ('aligned text', 'it starts with text'),
                      ('unknown content', 'no partition table, file system signature or zeros')):
        result = run.result(task)
        assert result['failed'] is True and result['changed'] is False, (task, result)
        assert 'is not a disk image' in result['msg'] and why in result['msg'], (task, result)
        assert 'force: true' in result['msg'] and result['commands'] == []
    assert dict((p, digest(p)) for p in sums) == sums
    forced = run.result('read forced')
    assert forced['changed'] is False and forced['info']['format'] == 'raw'
    # qemu-img rounds a raw file up to whole sectors.
    assert forced['info']['virtual_size'] == 1536


@pytest.mark.skipif(not shutil.which('mkfs.ext4'), reason='e2fsprogs is not installed')
def test_raw_file_system_image_is_an_image(playbook, tmp_path):
    disk = tmp_path / 'fs.img'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(disk), '4M'], check=True)
    subprocess.run(['mkfs.ext4', '-q', '-F', str(disk)], check=True)
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: grow
      zerodrop.testbed.qemu_img: {path: "{{ disk }}", size: 8M}
''', extra_vars={'disk': str(disk)})
    assert run.rc == 0, run
    assert run.result('grow')['changed'] is True
    assert info(disk)['virtual-size'] == 8 * M


def test_source_larger_than_size_is_refused_before_converting(playbook, tmp_path):
    src = tmp_path / 'src.img'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(src), '16M'], check=True)
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: convert smaller
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/dst.qcow2", source: "{{ dir }}/src.img", size: 8M}
      ignore_errors: true
    - name: convert smaller allowed
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/dst.qcow2", source: "{{ dir }}/src.img", size: 8M,
                                  allow_shrink: true}
''', extra_vars={'dir': str(tmp_path)})
    assert run.rc == 0, run
    refused = run.result('convert smaller')
    assert refused['failed'] is True and refused['changed'] is False
    assert "size: 8M (8388608 bytes) is smaller than the source's 16M" in refused['msg']
    assert 'allow_shrink: true' in refused['msg'] and refused['commands'] == []
    assert run.result('convert smaller allowed')['changed'] is True
    assert info(tmp_path / 'dst.qcow2')['virtual-size'] == 8 * M


def test_failed_writes_leave_nothing_behind(playbook, tmp_path):
    tmp_path = tmp_path / 'images'
    tmp_path.mkdir()
    old = tmp_path / 'old.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(old), '4M'], check=True)
    before = digest(old)
    run = playbook('''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: new image too large
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/big.img", format: raw, size: 100T,
                                  options: {preallocation: full}}
      ignore_errors: true
    - name: recreate too large
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/old.qcow2", format: raw, size: 100T,
                                  options: {preallocation: full}, force: true}
      ignore_errors: true
    - name: files after the failures
      ansible.builtin.find: {paths: "{{ dir }}", hidden: true}
    - name: checksum after the failures
      ansible.builtin.stat: {path: "{{ dir }}/old.qcow2", checksum_algorithm: sha256}
    - name: recreate
      zerodrop.testbed.qemu_img: {path: "{{ dir }}/old.qcow2", format: raw, size: 8M, force: true}
''', extra_vars={'dir': str(tmp_path)})
    assert run.rc == 0, run
    new = run.result('new image too large')
    # qemu-img leaves an empty file behind when it refuses this size; the module removes it.
    assert new['failed'] is True and new['changed'] is False
    assert "too large for file format 'raw'" in new['msg']
    assert new['rolled_back'] == [[new['commands'][-1][0], '-f', '--', str(tmp_path / 'big.img')]]
    recreate = run.result('recreate too large')
    assert recreate['failed'] is True and recreate['changed'] is False
    assert [f['path'] for f in run.result('files after the failures')['files']] == [str(old)]
    assert run.result('checksum after the failures')['stat']['checksum'] == before
    assert run.result('recreate')['changed'] is True
    assert info(old)['format'] == 'raw' and info(old)['virtual-size'] == 8 * M
    assert sorted(p.name for p in tmp_path.iterdir()) == ['old.qcow2']
