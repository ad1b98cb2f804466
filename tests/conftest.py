"""Shared pytest fixtures: run real playbooks, make network namespaces, start private OVS daemons.

Integration tests drive the collection through ``ansible-playbook`` exactly as a user would and
read each task's result from the ansible.posix.json callback.
"""

import glob
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, '.collections'))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from lib.playbook import run_playbook  # noqa: E402
from lib.ovs import PrivateOVS  # noqa: E402
from guest_fixtures import guest_image, debian_guest, running_guest  # noqa: F401,E402 pylint: disable=unused-import


# ./scripts/test runs two pytest workers (pytest-xdist, --dist loadgroup). These modules run one
# after another on one worker: Open vSwitch's netdev datapath is one per network namespace (a
# second ovs-vswitchd cannot set up its bridges), and the local lab's fixed device names.
# The modules on the session's Debian guest (debian_guest, one per worker process) run together
# in their own group: xdist gives it to the other worker while the serial group is busy, so the
# serial group (the longest path of CI) does not boot and drive that guest too.
# The bad-input tables run whole, in order, on one worker each (a case may read what an earlier
# one wrote); those with OVS join the serial group.
SERIAL = ('test_hypervisor_role', 'test_ovs_bridge', 'test_ovs_port', 'test_molecule', 'test_site')
GUEST = ('test_vm_image', 'test_vm_guest', 'test_ecn_dctcp')


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups from the markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rpartition('.')[2]
        if module in SERIAL:
            item.add_marker(pytest.mark.xdist_group('serial'))
        elif module in GUEST:
            item.add_marker(pytest.mark.xdist_group('guest'))
        elif module == 'test_bad_input':
            params = item.callspec.params
            item.add_marker(pytest.mark.xdist_group(
                'serial' if 'ovs' in params['needs'] else 'bad_input-' + params['table']))
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason='needs root: network namespaces, tc and OVS')
    for item in items:
        if 'root' in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def playbook(tmp_path):
    """``playbook(text_or_path, extra_vars=None, check=False, diff=False)`` -> PlaybookRun."""

    def _run(play, **kwargs):
        return run_playbook(play, workdir=str(tmp_path), **kwargs)

    return _run


def _ip(*args, check=True):
    return subprocess.run(['ip'] + list(args), check=check, capture_output=True, text=True)


@pytest.fixture
def netns():
    """Factory for network namespaces that are deleted after the test: ``netns('snd')`` -> name."""
    made = []

    def _make(prefix='zt'):
        name = '%s-%s' % (prefix, uuid.uuid4().hex[:6])
        _ip('netns', 'add', name)
        _ip('-n', name, 'link', 'set', 'lo', 'up')
        made.append(name)
        return name

    yield _make
    for name in made:
        _ip('netns', 'del', name, check=False)


@pytest.fixture
def veth(netns):
    """Factory for a veth pair inside one namespace: ``veth(ns)`` -> (a, b) device names."""

    def _make(ns, up=True):
        a = 'va%s' % uuid.uuid4().hex[:6]
        b = 'vb%s' % a[2:]
        _ip('-n', ns, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b)
        if up:
            _ip('-n', ns, 'link', 'set', a, 'up')
            _ip('-n', ns, 'link', 'set', b, 'up')
        return a, b

    return _make


@pytest.fixture
def ovs(tmp_path):
    """Private ovsdb-server + ovs-vswitchd (netdev datapath works without the kernel module)."""
    if not shutil.which('ovsdb-server'):
        pytest.skip('openvswitch-switch is not installed')
    daemons = PrivateOVS(str(tmp_path / 'ovs'))
    daemons.start()
    yield daemons
    daemons.stop()


@pytest.fixture
def running_vm(tmp_path):
    """A paused QEMU (TCG) that holds an image open, as a running VM does."""
    if not shutil.which('qemu-system-x86_64'):
        pytest.skip('qemu-system-x86 is not installed')
    img = tmp_path / 'vm.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(img), '16M'], check=True)
    proc = subprocess.Popen(['qemu-system-x86_64', '-accel', 'tcg', '-nographic', '-S',
                             '-display', 'none', '-monitor', 'none', '-serial', 'none',
                             '-nodefaults', '-drive', 'file=%s,if=virtio,format=qcow2' % img],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while subprocess.run(['qemu-img', 'info', str(img)], capture_output=True,
                         check=False).returncode == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail('QEMU did not take the image lock: %s' % proc.stderr.read())
        time.sleep(0.2)
    yield img, proc.pid
    proc.kill()
    proc.wait()


NEPER_ARCHIVES = os.path.join(os.path.dirname(ROOT), 'shared', 'sources', 'neper-*.tar.gz')


@pytest.fixture(scope='session')
def neper_build(tmp_path_factory):
    """A directory holding tcp_stream, built from the neper archive of ../shared/sources (once
    per test process)."""
    archives = sorted(glob.glob(NEPER_ARCHIVES))
    if not archives:
        pytest.skip('no neper archive at %s' % NEPER_ARCHIVES)
    if not shutil.which('make') or not shutil.which('gcc'):
        pytest.skip('building neper needs make and gcc')
    top = tmp_path_factory.mktemp('neper')
    subprocess.run(['tar', 'xzf', archives[-1], '-C', str(top)], check=True)
    subprocess.run(['make', '-C', str(top / 'neper'), 'tcp_stream'], check=True,
                   capture_output=True)
    return str(top / 'neper')
