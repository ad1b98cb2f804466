"""Benchmark of zerodrop.testbed.kernel_build on Debian's linux-source-6.1 (tinyconfig + the test
fragment): a first build with an empty ccache (the baseline), a no-op re-run through the module,
and a ccache-warm rebuild after `make clean`. Prints each as a ratio to the first build.

Usage: python bench/kernel_build.py [--work DIR] [--jobs N]
Uses its own build directory and ccache under --work (default /var/cache/zerodrop/kernel/bench),
emptied at the start; the source is the tree the integration tests unpack (or unpacks it).
Costs two kernel builds (the first one ~5-10 min on 2 cores).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from lib.playbook import run_playbook  # noqa: E402

ARCHIVE = '/usr/src/linux-source-6.1.tar.xz'
FRAGMENT = {s: 'y' for s in (
    '64BIT PRINTK EARLY_PRINTK BUG TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP '
    'BINFMT_ELF BINFMT_SCRIPT DEVTMPFS DEVTMPFS_MOUNT PROC_FS SYSFS SHMEM TMPFS MULTIUSER FUTEX '
    'ACPI NET PACKET UNIX INET NET_SCHED NET_SCH_TBF NET_SCH_RED NET_SCH_FIFO TCP_CONG_ADVANCED '
    'TCP_CONG_DCTCP').split()}

PLAY = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Build
      zerodrop.testbed.kernel_build: %s
'''


def source_tree(work):
    """The unpacked linux-source-6.1 (the role's archive cache), unpacked here if missing."""
    parent = '/var/cache/zerodrop/kernel/src'
    if os.path.isdir(parent):
        for name in sorted(os.listdir(parent)):
            path = os.path.join(parent, name)
            if name.startswith('linux-source-6.1-') and os.path.exists(
                    os.path.join(path, '.zerodrop-unpacked')):
                return path
    path = os.path.join(work, 'linux-source-6.1')
    if not os.path.exists(os.path.join(path, 'Makefile')):
        os.makedirs(path, exist_ok=True)
        subprocess.run(['tar', '-xJf', ARCHIVE, '--strip-components=1', '-C', path], check=True)
    return path


def build(args, workdir):
    t0 = time.time()
    run = run_playbook(PLAY % json.dumps(args), workdir=workdir, timeout=7200)
    wall = time.time() - t0
    if run.rc != 0:
        sys.exit('build failed:\n%r' % run)
    result = run.result('Build')
    return wall, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work', default='/var/cache/zerodrop/kernel/bench')
    parser.add_argument('--jobs', type=int, default=os.cpu_count())
    opts = parser.parse_args()
    build_dir = os.path.join(opts.work, 'build')
    ccache_dir = os.path.join(opts.work, 'ccache')
    for path in (build_dir, ccache_dir):
        shutil.rmtree(path, ignore_errors=True)
    os.makedirs(opts.work, exist_ok=True)
    src = source_tree(opts.work)
    args = {'source': src, 'build_dir': build_dir, 'config_base': 'tinyconfig',
            'config': FRAGMENT, 'targets': ['image'], 'ccache': True, 'ccache_dir': ccache_dir,
            'jobs': opts.jobs}
    workdir = os.path.join(opts.work, 'plays')
    os.makedirs(workdir, exist_ok=True)

    first, r1 = build(args, workdir)
    noop, r2 = build(args, workdir)
    assert r2['changed'] is False, r2
    subprocess.run(['make', '-C', src, 'O=%s' % build_dir, 'clean'], check=True,
                   capture_output=True)
    warm, r3 = build(args, workdir)

    def line(label, wall, result):
        # an unchanged run reports the metadata of the build it kept: no ccache activity of its own
        cc = (result['metadata'].get('ccache') or {}) if result['built'] else {}
        print('%-34s %8.1f s  ratio %.3f  changed=%s ccache hits=%s misses=%s'
              % (label, wall, wall / first, result['changed'], cc.get('hits'), cc.get('misses')))

    print('kernel_build bench: linux-source-6.1 (%s) tinyconfig+fragment, -j%d'
          % (r1['kernelrelease'], opts.jobs))
    print('baseline: first build, empty ccache (wall time of ansible-playbook)')
    line('first build (baseline)', first, r1)
    line('no-op re-run', noop, r2)
    line('ccache-warm rebuild after clean', warm, r3)


if __name__ == '__main__':
    main()
