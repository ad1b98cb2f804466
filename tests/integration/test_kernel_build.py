"""kernel_build module and role on a real kernel: Debian's linux-source-6.1, tinyconfig plus the
test fragment, built through the role (local archive source, direct_boot) and booted under QEMU
TCG with a busybox initramfs that checks DCTCP and the qdiscs with the host's own `tc`.

One build is shared by every test of the module (module-scoped fixture). Sources, the build
directory and ccache live under /var/cache/zerodrop, so a later run of the suite reuses them.
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from lib.playbook import run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.root]

ARCHIVE = '/usr/src/linux-source-6.1.tar.xz'
WORK = '/var/cache/zerodrop/kernel'
CCACHE = '/var/cache/zerodrop/ccache'
NAME = 'test-linux-6.1-tiny'
BUILD_DIR = os.path.join(WORK, 'build', NAME)
ROLE = 'zerodrop.testbed.kernel_build : '
BUILD_TASK = ROLE + 'Configure, verify and build the kernel'

# A bootable, testable VM kernel on 6.1 tinyconfig (see /work/shared/kernel-build-notes.md).
FRAGMENT = {s: 'y' for s in (
    '64BIT PRINTK EARLY_PRINTK BUG TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP '
    'BINFMT_ELF BINFMT_SCRIPT DEVTMPFS DEVTMPFS_MOUNT PROC_FS SYSFS SHMEM TMPFS MULTIUSER FUTEX '
    'ACPI NET PACKET UNIX INET NET_SCHED NET_SCH_TBF NET_SCH_RED NET_SCH_FIFO TCP_CONG_ADVANCED '
    'TCP_CONG_DCTCP').split()}

ROLE_PLAY = '''
- hosts: localhost
  gather_facts: false
  roles:
    - role: zerodrop.testbed.kernel_build
  post_tasks:
    - name: Show artifacts
      ansible.builtin.debug:
        var: kernel_build_artifacts
'''

MODULE_PLAY = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Build
      zerodrop.testbed.kernel_build: %s
'''


def role_vars(tmp_dir, **extra):
    data = {
        'kernel_build_source_type': 'archive',
        'kernel_build_archive': ARCHIVE,
        'kernel_build_work_dir': WORK,
        'kernel_build_name': NAME,
        'kernel_build_config': 'minimal',
        'kernel_build_config_base': 'tinyconfig',
        'kernel_build_profile': 'none',
        'kernel_build_symbols': FRAGMENT,
        'kernel_build_targets': ['image'],
        'kernel_build_ccache_dir': CCACHE,
        'kernel_build_install_deps': False,
        'kernel_build_install': 'direct_boot',
        'kernel_build_direct_boot_dir': str(tmp_dir),
        'kernel_build_poll': 5,
    }
    data.update(extra)
    return data


def run_role(tmp_dir, check=False, **extra):
    return run_playbook(ROLE_PLAY, workdir=str(tmp_dir), extra_vars=role_vars(tmp_dir, **extra),
                        check=check, timeout=3600)


def run_module(tmp_dir, args):
    return run_playbook(MODULE_PLAY % json.dumps(args), workdir=str(tmp_dir), timeout=600)


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    if not os.path.exists(ARCHIVE):
        pytest.skip('linux-source-6.1 is not installed (scripts/apt-packages.txt)')
    tmp = tmp_path_factory.mktemp('kernel')
    run = run_role(tmp)
    assert run.rc == 0, run
    return {'run': run, 'tmp': tmp, 'build': run.result(BUILD_TASK),
            'artifacts': run.result('Show artifacts')['kernel_build_artifacts']}


def test_role_builds_and_records_metadata(built):
    build, arts = built['build'], built['artifacts']
    assert build['kernelrelease'] == arts['kernelrelease'] == '6.1.192'
    assert build['unmet'] == []
    assert build['artifacts']['image'] == os.path.join(BUILD_DIR, 'arch/x86/boot/bzImage')
    # direct_boot copied the image and its files next to each other for the hypervisor
    assert arts['image'] == os.path.join(str(built['tmp']), NAME, 'vmlinuz-6.1.192')
    with open(arts['image'], 'rb') as a, open(arts['build_image'], 'rb') as b:
        assert a.read() == b.read()
    with open(os.path.join(BUILD_DIR, 'metadata.json')) as f:
        meta = json.load(f)
    assert meta['config_sha256'] == build['config_sha256']
    assert meta['toolchain']['cc'] == 'ccache gcc'
    assert meta['toolchain']['cc_version'].startswith('gcc')
    assert meta['source']['kind'] == 'given'
    assert meta['source']['source_id'].startswith('archive %s sha1=' % ARCHIVE)
    assert meta['compat_vars'] == []          # 6.1 needs none of the 4.14 workarounds
    assert meta['make_command'][0].endswith('make') and 'bzImage' in meta['make_command']
    assert 'CC=ccache gcc' in meta['make_command']
    assert os.path.isfile(meta['build_log'])
    assert set(FRAGMENT) <= {s[len('CONFIG_'):] for s in meta['requested_symbols']}


def _initramfs(tmp):
    root = tmp / 'initramfs'
    for d in ('bin', 'sbin', 'proc', 'sys', 'dev'):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy('/bin/busybox', root / 'bin' / 'busybox')
    os.symlink('busybox', root / 'bin' / 'sh')
    tc = shutil.which('tc') or '/sbin/tc'
    shutil.copy(tc, root / 'sbin' / 'tc')
    ldd = subprocess.run(['ldd', tc], capture_output=True, text=True, check=True).stdout
    for lib in re.findall(r'(/\S+\.so[.\d]*)', ldd):
        dest = root / lib.lstrip('/')
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(lib), dest)
    init = root / 'init'
    init.write_text('''#!/bin/sh
/bin/busybox mount -t devtmpfs dev /dev
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "ZT-CC-AVAILABLE: $(cat /proc/sys/net/ipv4/tcp_available_congestion_control)"
echo dctcp > /proc/sys/net/ipv4/tcp_congestion_control
echo "ZT-CC-SET: $(cat /proc/sys/net/ipv4/tcp_congestion_control)"
TC=/sbin/tc  # the host's iproute2 tc; busybox has a tc applet of its own
$TC qdisc add dev lo root handle 1: tbf rate 100mbit burst 15000 latency 10ms && echo ZT-TBF-OK
$TC qdisc add dev lo parent 1:1 handle 10: red limit 100000 min 30000 max 90000 avpkt 1000 \\
    burst 35 ecn bandwidth 100mbit && echo ZT-RED-OK
echo "ZT-QDISCS: $($TC -j qdisc show dev lo)"
$TC qdisc del dev lo root
$TC qdisc add dev lo root handle 2: pfifo limit 100 && echo ZT-PFIFO-OK
echo ZT-DONE
reboot -f
''')
    init.chmod(0o755)
    image = tmp / 'initramfs.cpio.gz'
    files = subprocess.run(['find', '.'], cwd=root, capture_output=True, check=True).stdout
    cpio = subprocess.run(['cpio', '-o', '-H', 'newc', '--quiet'], cwd=root, input=files,
                          capture_output=True, check=True).stdout
    subprocess.run(['gzip', '-c'], input=cpio, stdout=open(image, 'wb'), check=True)
    return image


def test_kernel_boots_with_dctcp_and_qdiscs(built, tmp_path):
    initrd = _initramfs(tmp_path)
    argv = ['qemu-system-x86_64', '-accel', 'tcg', '-m', '256', '-nographic', '-no-reboot',
            '-kernel', built['artifacts']['image'], '-initrd', str(initrd),
            '-append', 'console=ttyS0 panic=-1']
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, check=False)
    out = proc.stdout.replace('\r', '')
    assert 'ZT-DONE' in out, out[-4000:]
    available = re.search(r'ZT-CC-AVAILABLE: (.*)', out).group(1).split()
    assert 'dctcp' in available
    assert re.search(r'ZT-CC-SET: (.*)', out).group(1).strip() == 'dctcp'
    for marker in ('ZT-TBF-OK', 'ZT-RED-OK', 'ZT-PFIFO-OK'):
        assert marker in out, out[-4000:]
    qdiscs = json.loads(re.search(r'ZT-QDISCS: (.*)', out).group(1))
    kinds = {q['kind']: q for q in qdiscs}
    assert kinds['tbf']['options']['rate'] == 12500000
    assert kinds['red']['parent'] == '1:1' and kinds['red']['options']['ecn'] is True


def test_rerun_is_a_noop(built, tmp_path):
    run = run_role(built['tmp'])
    assert run.rc == 0, run
    result = run.result(BUILD_TASK)
    assert result['changed'] is False and result['built'] is False
    assert result['commands'] == []             # no make, not even the config steps
    assert result['fingerprint'] == built['build']['fingerprint']
    assert result['artifacts']['image'] == built['build']['artifacts']['image']


def test_check_mode_reports_without_touching(built):
    config = os.path.join(BUILD_DIR, '.config')
    before = os.stat(config).st_mtime_ns
    same = run_role(built['tmp'], check=True)
    assert same.rc == 0, same
    assert same.result(BUILD_TASK)['changed'] is False
    other = run_role(built['tmp'], check=True,
                     kernel_build_symbols=dict(FRAGMENT, TCP_CONG_VEGAS='y'))
    assert other.rc == 0, other
    assert other.result(BUILD_TASK)['changed'] is True
    assert os.stat(config).st_mtime_ns == before


def test_changed_symbol_rebuilds_then_restores(built):
    first = built['build']
    more = run_role(built['tmp'], kernel_build_symbols=dict(FRAGMENT, TCP_CONG_VEGAS='y'))
    assert more.rc == 0, more
    changed = more.result(BUILD_TASK)
    assert changed['changed'] is True and changed['built'] is True
    assert changed['config_sha256'] != first['config_sha256']
    with open(os.path.join(BUILD_DIR, 'metadata.json')) as f:
        assert json.load(f)['config_sha256'] == changed['config_sha256']
    with open(os.path.join(BUILD_DIR, '.config')) as f:
        assert 'CONFIG_TCP_CONG_VEGAS=y\n' in f.read()

    back = run_role(built['tmp'])
    assert back.rc == 0, back
    restored = back.result(BUILD_TASK)
    assert restored['changed'] is True and restored['built'] is True
    assert restored['config_sha256'] == first['config_sha256']
    assert restored['fingerprint'] == first['fingerprint']


def test_unsatisfiable_symbols_fail_with_the_list(built):
    config = os.path.join(BUILD_DIR, '.config')
    before = (os.stat(config).st_mtime_ns, open(config).read())
    run = run_role(built['tmp'], kernel_build_symbols=dict(FRAGMENT, TUN='y',
                                                           NO_SUCH_SYMBOL_ZT='y'))
    assert run.rc != 0
    msg = run.result(BUILD_TASK)['msg']
    assert '2 requested config symbol(s) not satisfied' in msg
    assert 'CONFIG_TUN: wanted y, got absent (dropped by olddefconfig' in msg
    assert 'CONFIG_NO_SUCH_SYMBOL_ZT: wanted y, got absent (unknown to this kernel' in msg
    unmet = {u['symbol'] for u in run.result(BUILD_TASK)['unmet']}
    assert unmet == {'CONFIG_TUN', 'CONFIG_NO_SUCH_SYMBOL_ZT'}
    assert (os.stat(config).st_mtime_ns, open(config).read()) == before


def test_missing_tree_is_named(tmp_path):
    (tmp_path / 'not-a-kernel').mkdir()
    run = run_module(tmp_path, {'source': str(tmp_path / 'not-a-kernel'), 'targets': ['image']})
    assert run.rc != 0
    assert 'is not a Linux kernel tree' in run.result('Build')['msg']


def test_missing_toolchain_names_the_package(built, tmp_path):
    src = built['build']['metadata']['source_path']
    build_dir = tmp_path / 'never-made'
    run = run_module(tmp_path, {'source': src, 'build_dir': str(build_dir),
                                'config_base': 'tinyconfig',
                                'make_vars': {'CC': '/nonexistent/gcc'}})
    assert run.rc != 0
    msg = run.result('Build')['msg']
    assert msg.startswith('missing toolchain:')
    assert "'/nonexistent/gcc'" in msg and 'gcc (build-essential)' in msg
    assert not build_dir.exists()


def test_bad_git_version_is_explained(tmp_path):
    repo = tmp_path / 'repo'
    repo.mkdir()
    env = dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@t', GIT_COMMITTER_NAME='t',
               GIT_COMMITTER_EMAIL='t@t')
    (repo / 'Makefile').write_text('VERSION = 4\n')
    for argv in (['git', 'init', '-q', '-b', 'vanilla'], ['git', 'add', 'Makefile'],
                 ['git', 'commit', '-q', '-m', 'x']):
        subprocess.run(argv, cwd=repo, env=env, check=True)
    run = run_role(tmp_path, kernel_build_source_type='git', kernel_build_repo=str(repo),
                   kernel_build_version='no-such-branch', kernel_build_work_dir=str(tmp_path / 'w'),
                   kernel_build_git_depth=0)
    assert run.rc != 0
    msg = run.result(ROLE + 'Explain the git failure')['msg']
    assert "could not check out version 'no-such-branch'" in msg and str(repo) in msg, msg
