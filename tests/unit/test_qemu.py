"""module_utils/qemu.py: sizes, qemu-img info, image locks and the nbd sysfs readers.

Inputs are outputs recorded on real systems (tests/unit/fixtures/qemu/README.md says how).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import qemu

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'qemu')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


# Sizes as qemu-img 7.2 reads them (`qemu-img create -f raw x SIZE` + `qemu-img info`).
@pytest.mark.parametrize('text, size', [
    ('1.5G', 1610612736), ('10k', 10240), ('10K', 10240), ('1T', 1099511627776),
    ('1g', 1073741824), ('512b', 512), ('512', 512), (4096, 4096), ('64M', 64 * 1024 ** 2),
    ('1E', 1024 ** 6),
])
def test_parse_image_size(text, size):
    assert qemu.parse_image_size(text) == size


# qemu-img refuses the first three ("Invalid image size specified"); it rounds up the others.
@pytest.mark.parametrize('text, why', [
    ('1GiB', 'is not a size'), ('10KB', 'is not a size'), ('1e3', 'is not a size'),
    ('100', 'multiple of 512'), ('0', 'not a positive size'), ('1.0001k', 'whole number'),
    (True, 'is not a size'),
])
def test_parse_image_size_refuses(text, why):
    with pytest.raises(qemu.SizeError, match=why):
        qemu.parse_image_size(text)


@pytest.mark.parametrize('nbytes, text', [
    (10737418240, '10G'), (1536, '1536'), (131072, '128K'), (1024 ** 4, '1T'), (512, '512')])
def test_human_size_round_trips(nbytes, text):
    assert qemu.human_size(nbytes) == text
    assert qemu.parse_image_size(text) == nbytes


def test_normalise_qcow2_info():
    info = qemu.normalise_info(json.loads(fixture('info-qcow2.json')), '/lab/base.qcow2')
    assert info['format'] == 'qcow2'
    assert info['virtual_size'] == 1024 ** 3
    assert info['cluster_size'] == 128 * 1024
    assert info['format_specific']['lazy-refcounts'] is True
    assert info['backing_file'] is None and info['backing_file_resolved'] is None
    assert qemu.diff_view(info) == {'format': 'qcow2', 'virtual_size': 1024 ** 3,
                                    'backing_file': None, 'backing_format': None}


def test_normalise_overlay_info_resolves_backing_file_against_the_image(tmp_path):
    (tmp_path / 'vm').mkdir()
    info = qemu.normalise_info(json.loads(fixture('info-overlay.json')),
                               str(tmp_path / 'vm' / 'overlay.qcow2'))
    assert info['backing_file'] == '../base.qcow2'
    assert info['backing_format'] == 'qcow2'
    assert info['backing_file_resolved'] == os.path.realpath(str(tmp_path / 'base.qcow2'))


def test_normalise_raw_info():
    info = qemu.normalise_info(json.loads(fixture('info-raw.json')), 'data.img')
    assert (info['format'], info['virtual_size'], info['cluster_size']) == \
        ('raw', 16 * 1024 ** 2, None)
    assert qemu.diff_view(None) == {}


@pytest.mark.parametrize('name', ['info-locked.stderr', 'resize-locked.stderr'])
def test_lock_error_is_recognised(name):
    assert qemu.LOCK_ERROR.search(fixture(name))


def test_other_errors_are_not_lock_errors():
    assert not qemu.LOCK_ERROR.search(
        "qemu-img: Could not open '/tmp/qi': 'file' driver requires '/tmp/qi' to be a regular "
        "file")


def test_lock_holders_finds_the_process_with_the_file_open(tmp_path):
    image = tmp_path / 'held.img'
    image.write_bytes(b'\0' * 512)
    with open(image, 'rb') as held:
        proc = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                                stdin=held)
    try:
        holders = qemu.lock_holders(str(image))
        assert [h['pid'] for h in holders] == [proc.pid]
        assert holders[0]['cmdline'].startswith(sys.executable)
        msg = qemu.lock_message(str(image), holders, fixture('resize-locked.stderr'))
        assert "image '%s' is in use" % image in msg
        assert 'pid %d' % proc.pid in msg
        assert 'Failed to get "write" lock' in msg
    finally:
        proc.kill()
        proc.wait()
    assert qemu.lock_holders(str(image)) == []


@pytest.mark.parametrize('argv, image', [
    (['qemu-nbd', '-c', '/dev/nbd0', 'video-file-dataset'], 'video-file-dataset'),
    (['/usr/bin/qemu-nbd', '--connect=/dev/nbd0', '--format=qcow2', '/lab/a.qcow2'],
     '/lab/a.qcow2'),
    (['qemu-nbd', '-rc', '/dev/nbd1', '-f', 'raw', 'd.img'], 'd.img'),
    (['qemu-nbd', 'd.img', '--connect', '/dev/nbd1', '-fraw'], 'd.img'),
    (['qemu-nbd', '-c', '/dev/nbd0', '--', '-odd-name.img'], '-odd-name.img'),
    (['qemu-system-x86_64', '-drive', 'file=x'], None),
])
def test_qemu_nbd_image_arg(argv, image):
    assert qemu.qemu_nbd_image_arg(argv) == image


def test_nbd_missing_message_names_the_way_out():
    msg = qemu.NBD_MISSING.format(why='no /sys/module/nbd')
    for hint in ('CONFIG_BLK_DEV_NBD', 'modprobe nbd max_part=16', 'guest'):
        assert hint in msg


@pytest.fixture
def guest_tree(tmp_path):
    """sysfs/procfs/dev of the recorded guest (fixtures/qemu/guest-nbd) rebuilt under tmp_path."""
    rec = os.path.join(FIXTURES, 'guest-nbd')
    shutil.copytree(os.path.join(rec, 'sys'), str(tmp_path / 'sys'))
    shutil.copytree(os.path.join(rec, 'proc'), str(tmp_path / 'proc'))
    for name in fixture('guest-nbd/block-list.txt').split():
        (tmp_path / 'sys' / 'block' / name).mkdir(exist_ok=True)
    for pid in os.listdir(str(tmp_path / 'proc')):
        recorded = tmp_path / 'proc' / pid
        if (recorded / 'cwd.txt').exists():
            os.symlink((recorded / 'cwd.txt').read_text().strip(), str(recorded / 'cwd'))
        if (recorded / 'fd.txt').exists():
            (recorded / 'fd').mkdir()
            for line in (recorded / 'fd.txt').read_text().splitlines():
                fd, target = line.split(' ', 1)
                os.symlink(target, str(recorded / 'fd' / fd))
    (tmp_path / 'dev').mkdir()
    (tmp_path / 'dev' / 'nbd0p1').touch()
    return qemu.NbdSysfs(str(tmp_path / 'sys'), str(tmp_path / 'proc'), str(tmp_path / 'dev'))


def test_nbd_devices_in_numeric_order(guest_tree):
    assert guest_tree.loaded()
    # modprobe nbd max_part=16: the driver rounds up to 2^fls(16) - 1 partitions.
    assert guest_tree.max_part() == 31
    assert guest_tree.devices() == ['nbd%d' % i for i in range(16)]


def test_nbd_attachment_made_by_hand_is_found(guest_tree, tmp_path):
    # sysfs names the thread that runs the NBD_DO_IT ioctl; the process is its thread group.
    assert guest_tree.pid('nbd0') == 772
    assert guest_tree.tgid(772) == 768
    att = guest_tree.attachment('nbd0')
    assert att['pid'] == 768
    assert att['argv'] == ['qemu-nbd', '-c', '/dev/nbd0', '-f', 'qcow2', 'rec.qcow2']
    # Given relative to /var/tmp, but qemu-nbd daemonized into '/': its open file tells.
    assert os.readlink(os.path.join(guest_tree.proc, '768', 'cwd')) == '/'
    assert att['image'] == '/var/tmp/rec.qcow2'
    assert att['device'] == str(tmp_path / 'dev' / 'nbd0')
    assert att['partitions'] == [str(tmp_path / 'dev' / 'nbd0p1')]
    assert att['read_only'] is False
    assert [a['name'] for a in guest_tree.attachments()] == ['nbd0']


def test_nbd_free_devices(guest_tree):
    assert not guest_tree.is_free('nbd0')
    assert guest_tree.is_free('nbd1') and guest_tree.attachment('nbd1') is None
    assert guest_tree.partitions('nbd1') == []


def test_nbd_mounts_of_device_and_partitions(guest_tree):
    mountinfo = os.path.join(FIXTURES, 'guest-nbd', 'mountinfo')
    assert guest_tree.dev_numbers('nbd0') == ['43:0', '43:1']
    assert guest_tree.mounts('nbd0', mountinfo) == ['/mnt/rec dir']
    assert guest_tree.mounts('nbd1', mountinfo) == []


def test_nbd_not_loaded(tmp_path):
    sysfs = qemu.NbdSysfs(str(tmp_path), str(tmp_path), str(tmp_path))
    assert not sysfs.loaded()
    assert sysfs.devices() == [] and sysfs.attachments() == [] and sysfs.max_part() is None


def _raw(tmp_path, name, size='1M'):
    path = tmp_path / name
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'raw', str(path), size], check=True)
    return path


needs_qemu_img = pytest.mark.skipif(not shutil.which('qemu-img'),
                                    reason='qemu-utils is not installed')


@needs_qemu_img
def test_raw_disk_evidence_new_image_is_zeros(tmp_path):
    what, why = qemu.raw_disk_evidence(str(_raw(tmp_path, 'new.img')))
    assert what.startswith('zeros') and why is None


@pytest.mark.parametrize('tool, argv, what', [
    ('mkfs.ext4', ['mkfs.ext4', '-q', '-F'], 'an ext2/3/4 file system'),
    ('mkswap', ['mkswap'], 'a swap area'),
])
def test_raw_disk_evidence_file_system_signatures(tmp_path, tool, argv, what):
    if not shutil.which(tool) or not shutil.which('qemu-img'):
        pytest.skip('%s or qemu-img is not installed' % tool)
    path = _raw(tmp_path, 'fs.img', '4M')
    subprocess.run(argv + [str(path)], check=True, capture_output=True)
    assert qemu.raw_disk_evidence(str(path)) == (what, None)


@needs_qemu_img
def test_raw_disk_evidence_boot_sector(tmp_path):
    path = _raw(tmp_path, 'mbr.img')
    with open(path, 'r+b') as f:
        f.write(b'\xeb\x63\x90' + b'\x10' * 100)
        f.seek(510)
        f.write(b'\x55\xaa')
    assert qemu.raw_disk_evidence(str(path)) == ('a partition table or boot sector', None)


@pytest.mark.parametrize('content, why', [
    (b'', 'it is empty'),
    (b'not an image\n' * 100, 'its size (1300 bytes) is not a whole number of 512-byte sectors'),
    # The first sector ends inside a two-byte character: still text.
    (u'x' * 511 + u'\u00e9' + u'y' * 511, 'it starts with text'),
    (b'\x7fELF\x02\x01\x01' + b'\0' * 505 + b'code' * 128,
     'it starts with no partition table, file system signature or zeros'),
], ids=['empty', 'text', 'utf8-text', 'program'])
def test_raw_disk_evidence_refuses_other_files(tmp_path, content, why):
    path = tmp_path / 'file'
    path.write_bytes(content.encode('utf-8') if isinstance(content, str) else content)
    assert qemu.raw_disk_evidence(str(path)) == (None, why)


def test_supported_formats_from_recorded_help():
    known = qemu.supported_formats(fixture('qemu-img-help.txt'))
    assert {'qcow2', 'raw', 'vmdk', 'vdi', 'luks'} <= known
    assert 'bogus' not in known and 'Supported' not in known
    assert qemu.supported_formats('qemu-img: unknown option') is None
