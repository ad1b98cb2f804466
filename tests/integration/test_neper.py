"""Role neper for real, from ../shared/sources (never GitHub): with its defaults (only neper_src
pointed at the archive) on a namespace host; built once on the controller for two namespace
hosts, from a git clone (file://) and from a source tree, each target receiving one file; and the
built tcp_stream measuring throughput between two namespaces."""

import glob
import hashlib
import os
import shutil
import subprocess
import time
import uuid

import pytest

from lib.playbook import ROOT, run_playbook

pytestmark = [pytest.mark.root]

SOURCES = os.path.join(ROOT, '..', 'shared', 'sources')
ARCHIVES = sorted(glob.glob(os.path.join(SOURCES, 'neper-*.tar.gz')))
PLAY = '- hosts: all\n  gather_facts: false\n  roles: [zerodrop.testbed.neper]\n'
ROLE = 'zerodrop.testbed.neper : '
DEFAULT_BIN = '/opt/neper/bin'


def archive():
    if not ARCHIVES:
        pytest.skip('no neper source archive in %s (see its README.md)' % os.path.normpath(SOURCES))
    return os.path.abspath(ARCHIVES[-1])


def write_inventory(path, hosts):
    """hosts: {name: (namespace, {extra host vars})} reached through the netns connection."""
    lines = ['all:', '  vars:', '    ansible_connection: zerodrop.testbed.netns',
             '    ansible_python_interpreter: "{{ ansible_playbook_python }}"', '  hosts:']
    for name, (ns, variables) in hosts.items():
        lines.append('    %s:' % name)
        lines.append('      ansible_netns_name: %s' % ns)
        lines.extend('      %s: %s' % item for item in variables.items())
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def ran(run, name):
    """The results of task `name` that were not skipped (both imports of build.yml share names)."""
    return [r for r in run.results(ROLE + name) if not r.get('skipped')]


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def version(binary):
    return subprocess.run([binary, '--nolog', '-v'], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope='module')
def defaults_run(tmp_path_factory):
    """The role with its defaults but neper_src, applied to a namespace host: (first, second run)."""
    source = archive()
    work = tmp_path_factory.mktemp('neper-defaults')
    ns = 'zneper-%s' % uuid.uuid4().hex[:6]
    subprocess.run(['ip', 'netns', 'add', ns], check=True)
    try:
        inventory = write_inventory(work / 'inv.yml', {'rcv': (ns, {})})
        runs = [run_playbook(PLAY, workdir=str(work), inventory=inventory,
                             extra_vars={'neper_src': source}) for dummy in range(2)]
        yield runs
    finally:
        subprocess.run(['ip', 'netns', 'del', ns], check=False)


def test_defaults_build_on_the_host_from_the_archive(defaults_run):
    first, second = defaults_run
    assert first.rc == 0, first
    for binary in ('tcp_stream', 'tcp_rr', 'tcp_crr', 'udp_stream', 'udp_rr'):
        assert os.access(os.path.join(DEFAULT_BIN, binary), os.X_OK), binary
    assert ran(first, 'Unpack the neper source'), first
    assert not ran(first, 'Fetch neper from git')
    assert second.rc == 0 and not second.changed, second


def test_built_once_on_the_controller_for_two_hosts(playbook, netns, tmp_path):
    source = archive()
    repo = tmp_path / 'repo'
    (tmp_path / 'unpacked').mkdir()
    subprocess.run(['tar', '-C', str(tmp_path / 'unpacked'), '-xzf', source], check=True)
    top, = os.listdir(str(tmp_path / 'unpacked'))
    shutil.copytree(str(tmp_path / 'unpacked' / top), str(repo))
    git = ['git', '-C', str(repo), '-c', 'user.name=zt', '-c', 'user.email=zt@localhost']
    subprocess.run(git[:3] + ['init', '-q', '-b', 'zt'], check=True)
    subprocess.run(git + ['add', '-A'], check=True)
    subprocess.run(git + ['commit', '-q', '-m', 'neper'], check=True)

    prefixes = {'a': tmp_path / 'a', 'b': tmp_path / 'b'}
    inventory = write_inventory(tmp_path / 'inv.yml', {
        name: (netns('zneper'), {'neper_prefix': str(prefix)}) for name, prefix in prefixes.items()})
    build = tmp_path / 'build'
    extra = {'neper_repo': 'file://%s' % repo, 'neper_version': 'zt', 'neper_build_host': 'localhost',
             'neper_build_dir': str(build), 'neper_controller_dir': str(tmp_path / 'controller'),
             'neper_binaries': ['tcp_stream', 'tcp_rr']}

    def installed():
        return [str(prefix / 'bin' / binary) for prefix in prefixes.values()
                for binary in extra['neper_binaries']]

    first = playbook(PLAY, inventory=inventory, extra_vars=extra)
    assert first.rc == 0, first
    builds = ran(first, 'Build neper')
    assert len(builds) == 1 and builds[0]['changed'], builds
    assert not ran(first, 'Install the binaries built here')
    sends = first.results(ROLE + 'Install the binaries built on the build host')
    assert len(sends) == 2 and all(r['changed'] for r in sends), sends
    for path in installed():
        assert sha256(path) == sha256(str(build / os.path.basename(path))), path
        assert version(path) == '1.1.0'

    again = playbook(PLAY, inventory=inventory, extra_vars=extra)
    assert again.rc == 0 and not again.changed, again

    # Another source, a tree on the controller (patched): it replaces the git checkout, is rebuilt
    # once and reaches both hosts.
    tree = tmp_path / 'unpacked' / top
    version_c = tree / 'version.c'
    version_c.write_text(version_c.read_text().replace('#define PATCH 0', '#define PATCH 7'))
    tree_vars = dict(extra, neper_src=str(tree))
    from_tree = playbook(PLAY, inventory=inventory, extra_vars=tree_vars)
    assert from_tree.rc == 0, from_tree
    assert ran(from_tree, 'Remove a build tree made from the other kind of source')[0]['changed']
    assert len(ran(from_tree, 'Clean the objects of the previous source')) == 1
    assert not (build / '.git').exists()
    assert [version(path) for path in installed()] == ['1.1.7'] * 4
    tree_again = playbook(PLAY, inventory=inventory, extra_vars=tree_vars)
    assert tree_again.rc == 0 and not tree_again.changed, tree_again


def test_a_source_that_is_neither_tree_nor_archive_is_refused(playbook, netns, tmp_path):
    bogus = tmp_path / 'neper.zip'
    bogus.write_text('not a tarball')
    inventory = write_inventory(tmp_path / 'inv.yml', {'rcv': (netns('zneper'), {})})
    extra = {'neper_src': str(bogus), 'neper_prefix': str(tmp_path / 'p')}
    run = playbook(PLAY, inventory=inventory, extra_vars=extra)
    assert run.rc != 0
    msg = run.result(ROLE + 'Check the variables')['msg']
    assert 'neper_src=%s' % bogus in msg and 'neper_repo' in msg, msg
    assert not (tmp_path / 'p').exists()


def _ip(*args):
    subprocess.run(['ip'] + list(args), check=True, capture_output=True)


def _keys(output):
    return dict(line.split('=', 1) for line in output.splitlines() if '=' in line)


def test_tcp_stream_between_two_namespaces(defaults_run, netns):
    assert defaults_run[0].rc == 0, defaults_run[0]
    tcp_stream = os.path.join(DEFAULT_BIN, 'tcp_stream')
    snd, rcv = netns('znsnd'), netns('znrcv')
    _ip('-n', snd, 'link', 'add', 'zn0', 'type', 'veth', 'peer', 'name', 'zn1', 'netns', rcv)
    _ip('-n', snd, 'addr', 'add', '10.213.0.1/24', 'dev', 'zn0')
    _ip('-n', rcv, 'addr', 'add', '10.213.0.2/24', 'dev', 'zn1')
    _ip('-n', snd, 'link', 'set', 'zn0', 'up')
    _ip('-n', rcv, 'link', 'set', 'zn1', 'up')
    server = subprocess.Popen(['ip', 'netns', 'exec', rcv, tcp_stream, '--nolog', '-l', '2'],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not subprocess.run(['ip', 'netns', 'exec', rcv, 'ss', '-Htln', 'sport = :12866'],
                                 capture_output=True, text=True, check=True).stdout.strip():
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()[0]
            time.sleep(0.2)
        client = subprocess.run(['ip', 'netns', 'exec', snd, tcp_stream, '--nolog', '-c',
                                 '-H', '10.213.0.2', '-l', '2', '-F', '4'],
                                capture_output=True, text=True, timeout=60, check=False)
        served = server.communicate(timeout=30)[0]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert client.returncode == 0, client.stdout + client.stderr
    assert server.returncode == 0, served
    sent, received = _keys(client.stdout), _keys(served)
    assert int(sent['num_flows']) == 4
    assert int(sent['remote_throughput']) > 0, client.stdout
    assert float(received['throughput']) > 0 and received['throughput_units'] == 'Mbit/s', served
    print('tcp_stream, 4 flows for 2 s between two namespaces: %s %s'
          % (received['throughput'], received['throughput_units']))
