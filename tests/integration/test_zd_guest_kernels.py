"""Every zD guest kernel that is built here boots a guest and runs what the experiments need.

The lab's guest kernels (vanilla, vm-pfifo, vm-tbf from github.com/zD-linux/linux-4.14.67 with the
lab's config: `minimal` base, `vm` profile) are built by site.yml or playbooks/kernels.yml into
/var/cache/zerodrop/kernel/build/<preset>. Each one found there boots the test guest image with
-kernel under TCG (no initrd, as the lab boots them); the test checks the release, DCTCP, and that
the qdisc layout its branch pushes back on can be set on the guest's device. A cold build takes
about 35 minutes on 2 cores, so a preset that is not built is skipped with that reason (build it
with `ansible-playbook playbooks/kernels.yml -e '{"kernel_presets": ["vm-tbf"]}' -e
kernel_build_config=minimal -e kernel_build_profile=vm -e kernel_build_repo=file://COPY`).
"""

import json
import os

import pytest
import yaml

from lib.guest import Guest, build_image, qemu_available, stop_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = '/var/cache/zerodrop/kernel/build'
# The qdisc layout each branch was written for (../shared/kernel-build-notes.md): root pfifo with
# limit = txqueuelen for vm-pfifo, root tbf with its default bfifo child for vm-tbf.
LAYOUTS = {
    'vanilla': 'pfifo limit 1000',
    'vm-pfifo': 'pfifo limit 1000',
    'vm-tbf': 'tbf rate 30mbit burst 32k limit 64k',
}

with open(os.path.join(ROOT, 'inventories', 'local', 'group_vars', 'all', 'lab.yml')) as _f:
    LAB_KERNEL_APPEND = yaml.safe_load(_f).get('lab_kernel_append') or {}

pytestmark = [pytest.mark.root, pytest.mark.slow]


def cached_build(preset):
    """metadata.json of the preset's lab build, or the reason it cannot be booted."""
    path = os.path.join(BUILD_DIR, preset, 'metadata.json')
    if not os.path.exists(path):
        return None, '%s is not built in %s (cold: ~35 min on 2 cores)' % (preset, BUILD_DIR)
    with open(path) as f:
        metadata = json.load(f)
    if metadata.get('config_base') != 'tinyconfig':
        return None, '%s in %s is not the lab build (config base %s, not the minimal one)' % (
            preset, BUILD_DIR, metadata.get('config_base'))
    return metadata, None


@pytest.mark.parametrize('preset', sorted(LAYOUTS))
def test_zd_guest_kernel_boots_with_its_layout(preset, tmp_path):
    if not qemu_available():
        pytest.skip('qemu-system-x86_64 or debootstrap is missing')
    metadata, reason = cached_build(preset)
    if reason:
        pytest.skip(reason)
    stop_all()
    image = dict(build_image(), kernel=metadata['artifacts']['image'], initrd=None)
    # The lab's lab_kernel_append: zD's vm-tbf __dev_xmit_skb takes every socket for a TCP socket
    # and every root qdisc for a tbf, so it runs without IPv6 (its MLD reports panic it through a
    # tbf root) and with no root qdisc until the layout is set (dhclient's first packet through
    # pfifo_fast panicked it once in CI).
    image['append'] += ''.join(' ' + w for w in LAB_KERNEL_APPEND.get(preset, '').split())
    guest = Guest(image, str(tmp_path))
    try:
        guest.start().wait_ssh()
        assert guest.ssh('uname -r').stdout.strip() == metadata['kernelrelease'] == '4.14.67-' + preset
        assert 'dctcp' in guest.ssh('cat /proc/sys/net/ipv4/tcp_available_congestion_control').stdout
        if 'default_qdisc=noqueue' in image['append']:
            # Applied by the image's zerodrop-cmdline-sysctl unit (4.14 ignores sysctl.* itself).
            assert guest.ssh('cat /proc/sys/net/core/default_qdisc').stdout.strip() == 'noqueue'
            before = json.loads(guest.ssh('tc -j qdisc show dev eth0').stdout)
            assert [q['kind'] for q in before] == ['noqueue'], before
        guest.ssh('tc qdisc replace dev eth0 root handle 1: %s' % LAYOUTS[preset])
        shown = json.loads(guest.ssh('tc -j qdisc show dev eth0').stdout)
        kinds = [q['kind'] for q in shown]
        assert kinds[0] == LAYOUTS[preset].split()[0], shown
        if preset == 'vm-tbf':
            # vm-tbf reads tbf's default bfifo child, which 4.14 does not list as a qdisc: its one
            # class must have no grafted leaf (a RED or other child would show as leaf). iproute2
            # prints tbf classes as text even with -j.
            classes = guest.ssh('tc class show dev eth0').stdout.split('\n')
            assert [c.split() for c in classes if c.startswith('class tbf')] == \
                [['class', 'tbf', '1:1', 'parent', '1:']], classes
    finally:
        guest.stop()
