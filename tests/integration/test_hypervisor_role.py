"""The hypervisor role's input checks and its teardown, without booting a guest.

The full path (private OVS, a TCG guest, qdiscs, SSH, teardown) is the molecule scenario
molecule/hypervisor.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from lib.hypervisor_role import ROLE_PLAY, TEARDOWN_PLAY, base_vars

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATES = os.path.join(ROOT, 'roles', 'hypervisor', 'templates')
BIN = os.path.dirname(sys.executable)

RENDER_PLAY = """
- hosts: localhost
  gather_facts: false
  vars_files: [%s]
  tasks:
    - name: Render
      ansible.builtin.template:
        src: "{{ zt_render.src }}"
        dest: "{{ zt_render.dest }}"
        mode: "0755"
      loop: "{{ rendered }}"
      loop_control:
        loop_var: zt_render
""" % os.path.join(ROOT, 'roles', 'hypervisor', 'vars', 'main.yml')


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
    variables = dict(base_vars(tmp_path), hypervisor_bridges=[{'name': bridge, 'type': 'linux'}],
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
    variables = dict(base_vars(tmp_path), hypervisor_bridges=[
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


def _scratch(prefix):
    """A directory whose path has a space, a quote and shell syntax in it."""
    path = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    os.chmod(path, 0o755)
    return path


def _render(playbook, variables, templates):
    """Render the role's templates, {template: destination}, with ``variables``."""
    run = playbook(RENDER_PLAY, extra_vars=dict(variables, rendered=[
        {'src': os.path.join(TEMPLATES, t), 'dest': d} for t, d in templates.items()]))
    assert run.rc == 0, [r.get('msg') for r in run.result('Render').get('results', [])]


def _ns(ns, *argv, **kwargs):
    return subprocess.run(['ip', 'netns', 'exec', ns] + list(argv), capture_output=True, text=True,
                          check=kwargs.pop('check', False), **kwargs)


@pytest.mark.root
def test_tap_scripts_quote_the_database_and_the_bridge(playbook):
    """The ifup/ifdown scripts, rendered with an OVS database path holding a space, quotes and a
    command substitution, attach and detach a real tap on private OVS and on a Linux bridge."""
    tag = uuid.uuid4().hex[:5]
    ns = 'zthv-' + tag
    rundir = _scratch("zt hv $(touch PWNED);'")
    scripts = os.path.join(rundir, 'scripts dir')
    os.mkdir(scripts)
    env = dict(os.environ, OVS_RUNDIR=rundir, OVS_LOGDIR=rundir, OVS_DBDIR=rundir)
    database = 'unix:%s/db.sock' % rundir
    subprocess.run(['ip', 'netns', 'add', ns], check=True)
    try:
        subprocess.run(['ovsdb-tool', 'create', rundir + '/conf.db',
                        '/usr/share/openvswitch/vswitch.ovsschema'], check=True, env=env)
        # Daemons and devices in a namespace of their own: the netdev datapath allows one
        # ovs-vswitchd per namespace.
        _ns(ns, 'ovsdb-server', rundir + '/conf.db', '--remote=punix:%s/db.sock' % rundir,
            '--pidfile=%s/ovsdb-server.pid' % rundir, '--unixctl=%s/ovsdb-server.ctl' % rundir,
            '--log-file=%s/ovsdb-server.log' % rundir, '--detach', check=True, env=env)
        subprocess.run(['ovs-vsctl', '--db=' + database, '--no-wait', 'init'], check=True)
        _ns(ns, 'ovs-vswitchd', database, '--pidfile=%s/ovs-vswitchd.pid' % rundir,
            '--unixctl=%s/ovs-vswitchd.ctl' % rundir, '--log-file=%s/ovs-vswitchd.log' % rundir,
            '--detach', check=True, env=env)
        subprocess.run(['ovs-vsctl', '--db=' + database, '--timeout=30', 'add-br', 'zovs', '--',
                        'set', 'bridge', 'zovs', 'datapath_type=netdev'], check=True)
        for argv in (['ip', 'tuntap', 'add', 'ztap0', 'mode', 'tap'],
                     ['ip', 'tuntap', 'add', 'ztap1', 'mode', 'tap'],
                     ['ip', 'link', 'add', 'zlbr', 'type', 'bridge']):
            _ns(ns, *argv, check=True)
        bridges = [{'name': 'zovs', 'type': 'ovs'}, {'name': 'zlbr', 'type': 'linux'}]
        for bridge in bridges:
            _render(playbook, {'item': bridge, 'hypervisor_ovs_database': database,
                               'hypervisor_tap_scripts_dir': scripts},
                    {'tap-ifup.sh.j2': os.path.join(scripts, 'ifup-' + bridge['name']),
                     'tap-ifdown.sh.j2': os.path.join(scripts, 'ifdown-' + bridge['name'])})
        for name in sorted(os.listdir(scripts)):
            for shell in ('sh', 'bash'):
                check = subprocess.run([shell, '-n', os.path.join(scripts, name)],
                                       capture_output=True, text=True, check=False)
                assert check.returncode == 0, (shell, name, check.stderr)

        def script(name, dev):
            run = _ns(ns, os.path.join(scripts, name), dev, cwd=rundir, timeout=60)
            assert run.returncode == 0, (name, run.stdout, run.stderr)

        def link(dev):
            return json.loads(_ns(ns, 'ip', '-j', 'link', 'show', dev, check=True).stdout)[0]

        script('ifup-zovs', 'ztap0')
        ports = subprocess.run(['ovs-vsctl', '--db=' + database, 'list-ports', 'zovs'],
                               capture_output=True, text=True, check=True).stdout.split()
        assert ports == ['ztap0']
        assert 'UP' in link('ztap0')['flags']
        script('ifdown-zovs', 'ztap0')
        assert subprocess.run(['ovs-vsctl', '--db=' + database, 'list-ports', 'zovs'],
                              capture_output=True, text=True, check=True).stdout.split() == []
        assert 'UP' not in link('ztap0')['flags']

        script('ifup-zlbr', 'ztap1')
        assert link('ztap1').get('master') == 'zlbr'
        script('ifdown-zlbr', 'ztap1')
        assert 'master' not in link('ztap1')
        assert not os.path.exists(os.path.join(rundir, 'PWNED'))
    finally:
        for daemon in ('ovs-vswitchd', 'ovsdb-server'):
            subprocess.run(['ovs-appctl', '-t', '%s/%s.ctl' % (rundir, daemon), 'exit']
                           + (['--cleanup'] if daemon == 'ovs-vswitchd' else []),
                           capture_output=True, timeout=30, check=False)
        subprocess.run(['ip', 'netns', 'del', ns], capture_output=True, check=False)
        shutil.rmtree(rundir, ignore_errors=True)


def _shell_words(text):
    """The words of a line quoted for the shell (as systemd dumps a command line: \\$ for a
    literal $), split by bash itself."""
    proc = subprocess.run(['bash', '-c', 'eval "set -- $1"; printf "%s\\0" "$@"', '_', text],
                          capture_output=True, text=True, check=True)
    return proc.stdout.split('\0')[:-1]


def _systemd_dump(unit_dir, unit):
    """What systemd read from ``unit``: {setting: [values]}, command lines as argv lists.

    systemd --test loads the unit as the real manager does and dumps it; it refuses to run as
    root, hence nobody."""
    systemd = '/lib/systemd/systemd'
    if not os.path.exists(systemd):
        pytest.skip('systemd is not installed')
    proc = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'env',
                           'SYSTEMD_UNIT_PATH=%s:' % unit_dir, systemd, '--test', '--system',
                           '--unit=' + unit, '--no-pager'],
                          capture_output=True, text=True, timeout=120, check=False)
    lines = proc.stdout.splitlines()
    start = lines.index('\t-> Unit %s:' % unit)
    found = {}
    exec_kind = None
    for line in lines[start + 1:]:
        if line.startswith('\t-> Unit '):
            break
        if line.startswith('\t\t-> Exec'):
            exec_kind = line.strip()[3:-1]
        elif line.startswith('\t\t\tCommand Line: ') and exec_kind:
            found.setdefault(exec_kind, []).append(_shell_words(line.split(': ', 1)[1]))
        elif line.startswith('\t\t') and ': ' in line:
            key, value = line.lstrip('\t').split(': ', 1)
            found.setdefault(key, []).append(value)
    return found


def _as_stored(argv):
    """An argv as systemd stores it: a literal $ is $$ until the command runs."""
    return [argv[0]] + [a.replace('$', '$$') for a in argv[1:]]


@pytest.mark.root
def test_units_quote_paths_and_arguments(playbook):
    """The VM and OVS units, rendered with paths and arguments that hold spaces, quotes,
    backslashes, $, % and ;, are read back by systemd as exactly those values."""
    unit_dir = _scratch('zt-units-')
    odd = _scratch("zt run %n $HOME 'q' \"d\" b\\s;x ")
    try:
        rundir = odd + '/vms'
        argv = ['/usr/bin/qemu-system-x86_64', '-name', 'vm1', '-pidfile', rundir + '/vm1.pid',
                '-append', 'root=/dev/vda console=ttyS0 home=$HOME unit=%n', 'q"x', "it's",
                'back\\slash', 'semi;colon', ';', '', 'a  b']
        variables = {
            'ansible_managed': 'managed',
            'hypervisor__vm': {'name': 'vm1', 'pidfile': rundir + '/vm1.pid',
                               'qmp': rundir + '/vm1.qmp'},
            'hypervisor__argv': argv,
            'hypervisor__ovs_mode': 'private',
            'hypervisor_helper_dir': odd + '/lib',
            'hypervisor_vm_stop_timeout': 60,
            'hypervisor_ovs_rundir': odd + '/ovs'}
        _render(playbook, variables, {
            'zerodrop-vm.service.j2': unit_dir + '/zt-vm.service',
            'zerodrop-ovsdb-server.service.j2': unit_dir + '/zerodrop-ovsdb-server.service',
            'zerodrop-ovs-vswitchd.service.j2': unit_dir + '/zerodrop-ovs-vswitchd.service'})
        os.chmod(unit_dir, 0o755)
        for name in os.listdir(unit_dir):
            os.chmod(os.path.join(unit_dir, name), 0o644)

        vm = _systemd_dump(unit_dir, 'zt-vm.service')
        assert vm['Description'] == ['zerodrop VM vm1']
        assert vm['PIDFile'] == [rundir + '/vm1.pid']
        assert vm['ExecStart'] == [_as_stored(argv)]
        assert vm['ExecStop'] == [_as_stored(['/usr/bin/python3', odd + '/lib/qmp_stop.py',
                                              rundir + '/vm1.qmp', rundir + '/vm1.pid', '60'])]

        ovs = odd + '/ovs'
        environment = ['OVS_RUNDIR=' + ovs, 'OVS_LOGDIR=' + ovs, 'OVS_DBDIR=' + ovs]
        db = _systemd_dump(unit_dir, 'zerodrop-ovsdb-server.service')
        assert db['Description'] == ['zerodrop private ovsdb-server (%s)' % ovs]
        assert db['PIDFile'] == [ovs + '/ovsdb-server.pid']
        assert db['Environment'] == environment
        assert db['ExecStart'] == [_as_stored([
            'ovsdb-server', ovs + '/conf.db', '--remote=punix:%s/db.sock' % ovs,
            '--pidfile=%s/ovsdb-server.pid' % ovs, '--unixctl=%s/ovsdb-server.ctl' % ovs,
            '--log-file=%s/ovsdb-server.log' % ovs, '--no-chdir', '--detach'])]
        assert db['ExecStop'] == [_as_stored(['ovs-appctl', '-t', ovs + '/ovsdb-server.ctl',
                                              'exit'])]
        vswitchd = _systemd_dump(unit_dir, 'zerodrop-ovs-vswitchd.service')
        assert vswitchd['PIDFile'] == [ovs + '/ovs-vswitchd.pid']
        assert vswitchd['Environment'] == environment
        assert vswitchd['ExecStart'] == [_as_stored([
            'ovs-vswitchd', 'unix:%s/db.sock' % ovs, '--pidfile=%s/ovs-vswitchd.pid' % ovs,
            '--unixctl=%s/ovs-vswitchd.ctl' % ovs, '--log-file=%s/ovs-vswitchd.log' % ovs,
            '--no-chdir', '--detach'])]
    finally:
        shutil.rmtree(unit_dir, ignore_errors=True)
        shutil.rmtree(odd, ignore_errors=True)


@pytest.mark.root
def test_vnc_password_appears_only_in_its_file(playbook, tmp_path):
    """A VM with VNC, run with -vvv and --diff, then again with every result in JSON: the
    password is in no output, no fact and no file but its own, which is 0600."""
    if not shutil.which('qemu-system-x86_64'):
        pytest.skip('qemu-system-x86 is not installed')
    tag = uuid.uuid4().hex[:6]
    password = 'P' + uuid.uuid4().hex[:7]
    name = 'ztvnc' + tag
    variables = dict(base_vars(tmp_path), hypervisor_service_manager='none', hypervisor_bridges=[],
                     hypervisor_vms=[{'name': name, 'memory': 64,
                                      'disks': [{'path': str(tmp_path / 'blank.qcow2'),
                                                 'size': '1M'}],
                                      'vnc': {'display': random.randint(100, 900),
                                              'password': password}}])
    vars_file = tmp_path / 'vars.json'
    vars_file.write_text(json.dumps(variables))
    play = tmp_path / 'vnc.yml'
    play.write_text(ROLE_PLAY)
    try:
        verbose = subprocess.run(
            [os.path.join(BIN, 'ansible-playbook'), str(play), '-i',
             os.path.join(ROOT, 'tests', 'inventory', 'localhost.yml'), '-e', '@' + str(vars_file),
             '-vvv', '--diff'],
            capture_output=True, text=True, cwd=ROOT, timeout=1200, check=False,
            env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                     ANSIBLE_STDOUT_CALLBACK='ansible.builtin.default', ANSIBLE_NOCOLOR='1',
                     PATH=BIN + os.pathsep + os.environ.get('PATH', '')))
        assert verbose.returncode == 0, verbose.stdout[-4000:] + verbose.stderr[-2000:]
        assert 'Write the VNC password of ' + name in verbose.stdout
        assert password not in verbose.stdout + verbose.stderr

        again = playbook(ROLE_PLAY, extra_vars=variables, diff=True)
        assert again.rc == 0, again
        assert password not in again.stdout + again.stderr
        assert 'vnc' in json.dumps(again.result('zerodrop.testbed.hypervisor : Build the '
                                                'hypervisor data model'))

        secret = tmp_path / 'run' / (name + '.vncpw')
        assert secret.read_text() == password
        assert secret.stat().st_mode & 0o777 == 0o600
        for dirpath, dummy, filenames in os.walk(str(tmp_path)):
            for filename in filenames:
                path = os.path.join(dirpath, filename)
                if path == str(secret) or path == str(vars_file) or not os.path.isfile(path):
                    continue
                with open(path, 'rb') as f:
                    assert password.encode() not in f.read(), path
    finally:
        down = playbook(TEARDOWN_PLAY, extra_vars=variables)
        pidfile = tmp_path / 'run' / (name + '.pid')
        if pidfile.exists():
            subprocess.run(['pkill', '-F', str(pidfile)], check=False)
    assert down.rc == 0, down


QDISCS_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Shape
      ansible.builtin.include_role:
        name: zerodrop.testbed.hypervisor
        tasks_from: qdiscs.yml
"""


@pytest.mark.root
def test_ingress_shaping_is_an_ifb_tbf_and_a_redirect_then_torn_down(playbook, tmp_path):
    tag = uuid.uuid4().hex[:5]
    tap, ifb = 'ztt' + tag, 'zti' + tag
    nic = {'tap': tap, 'qdisc': [],
           'ingress': {'ifb': ifb, 'rate': '100mbit', 'burst': '32k', 'limit': 2000000}}
    variables = {'hypervisor__model': {'vms': [{'name': 'vm1', 'nics': [nic]}], 'nics_ingress': [nic]}}
    try:
        subprocess.run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], check=True)
        subprocess.run(['ip', 'link', 'add', ifb, 'type', 'ifb'], check=True)
        checked = playbook(QDISCS_PLAY, extra_vars=variables, check=True)
        assert checked.rc == 0 and checked.changed, checked
        assert subprocess.run(['tc', '-j', 'filter', 'show', 'ingress', 'dev', tap],
                              capture_output=True, text=True, check=True).stdout.strip() == '[]'

        run = playbook(QDISCS_PLAY, extra_vars=variables)
        assert run.rc == 0, run
        qdiscs = json.loads(subprocess.run(['tc', '-j', 'qdisc', 'show', 'dev', ifb],
                                           capture_output=True, text=True, check=True).stdout)
        assert [(q['kind'], q['handle']) for q in qdiscs] == [('tbf', '1:')]
        assert qdiscs[0]['options']['rate'] == 12500000
        tap_qdiscs = json.loads(subprocess.run(['tc', '-j', 'qdisc', 'show', 'dev', tap],
                                               capture_output=True, text=True, check=True).stdout)
        assert 'ingress' in [q['kind'] for q in tap_qdiscs]
        filters = json.loads(subprocess.run(['tc', '-j', 'filter', 'show', 'ingress', 'dev', tap],
                                            capture_output=True, text=True, check=True).stdout)
        actions = [a for f in filters for a in (f.get('options') or {}).get('actions', [])]
        assert [(a['kind'], a['mirred_action'], a['direction'], a['to_dev'])
                for a in actions] == [('mirred', 'redirect', 'egress', ifb)]

        again = playbook(QDISCS_PLAY, extra_vars=variables)
        assert again.rc == 0 and not again.changed, again

        state = tmp_path / 'state.json'
        state.write_text(json.dumps({'version': 1, 'taps': [tap], 'ifbs': [ifb]}))
        down = playbook(TEARDOWN_PLAY, extra_vars=dict(base_vars(tmp_path)))
        assert down.rc == 0, down
        assert not _link_exists(tap) and not _link_exists(ifb)
        assert not state.exists()
    finally:
        subprocess.run(['ip', 'link', 'del', tap], capture_output=True, check=False)
        subprocess.run(['ip', 'link', 'del', ifb], capture_output=True, check=False)
