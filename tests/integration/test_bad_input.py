"""The bad-input suite: every module and role entry point, fed malformed input, fails cleanly.

Each file in tests/integration/bad_input/ is a table of cases (see bad_input/README.md). A
module case runs the module itself (its Python file with ANSIBLE_MODULE_ARGS, as Ansible does,
against the real tools); a role case runs the role in a playbook. Every case asserts that the
outcome is the expected one (failed with every fragment of the expected message, or accepted),
that no traceback reached the user, and that nothing changed: the files under the case's scratch
directory, the namespaces, the fixture namespace's links, addresses, routes and qdiscs, the
private OVS database and the root namespace's devices named with the suite's tag.
"""

import glob
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TABLES = sorted(glob.glob(os.path.join(HERE, 'bad_input', '*.yml')))
COLLECTIONS = os.path.join(ROOT, '.collections')
FIXTURES = os.path.join(ROOT, 'tests', 'unit', 'fixtures')

pytestmark = [pytest.mark.root]


def load(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    needs = doc.get('needs', [])
    for case in doc['cases']:
        yield os.path.basename(path)[:-4], needs, case


CASES = [c for path in TABLES for c in load(path)]


def ip_json(*args):
    out = subprocess.run(['ip', '-j'] + list(args), capture_output=True, text=True,
                         check=False).stdout
    return json.loads(out) if out.strip() else []


def volatile_free(links):
    keep = ('ifname', 'flags', 'mtu', 'operstate', 'master', 'address', 'txqlen', 'link',
            'qdisc', 'addr_info', 'linkinfo')
    return [dict((k, v) for k, v in link.items() if k in keep) for link in links]


class Scene(object):
    """What a table's cases run against, and its state as one comparable value."""

    def __init__(self, tmp_path, needs, ovs_factory):
        self.tag = uuid.uuid4().hex[:4]
        self.tmp = tmp_path
        self.values = {'tmp': str(tmp_path), 'tag': self.tag, 'fixtures': FIXTURES,
                       'tables': os.path.join(HERE, 'bad_input')}
        self.namespaces = []
        self.immutable = []
        ro = tmp_path / 'ro'
        ro.mkdir()
        (ro / 'kept.txt').write_text('read-only directory\n')
        self.values['ro'] = str(ro)
        (tmp_path / 'notes.txt').write_text('not an image\n' * 100)
        self.values['textfile'] = str(tmp_path / 'notes.txt')
        (tmp_path / 'plain').mkdir()
        self.values['dir'] = str(tmp_path / 'plain')
        if 'image' in needs:
            img = tmp_path / 'disk.qcow2'
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(img), '16M'],
                           check=True)
            self.values['image'] = str(img)
        if 'netns' in needs:
            ns = 'zbi-%s' % self.tag
            subprocess.run(['ip', 'netns', 'add', ns], check=True)
            self.namespaces.append(ns)
            subprocess.run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'], check=True)
            subprocess.run(['ip', '-n', ns, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name',
                            'vb'], check=True)
            for dev in ('va', 'vb'):
                subprocess.run(['ip', '-n', ns, 'link', 'set', dev, 'up'], check=True)
            subprocess.run(['ip', '-n', ns, 'addr', 'add', '10.251.%d.1/24'
                            % (int(self.tag, 16) % 250), 'dev', 'va'], check=True)
            self.values['ns'] = ns
            # IPv6 duplicate address detection changes addresses for a second after set-up
            deadline = time.monotonic() + 10
            while ip_json('-n', ns, 'addr', 'show', 'tentative') and time.monotonic() < deadline:
                time.sleep(0.1)
        self.ovs = None
        if 'ovs' in needs:
            self.ovs = ovs_factory()
            self.values['ovsdb'] = self.ovs.database
        # chattr +i: root ignores file modes, not the immutable flag
        subprocess.run(['chattr', '+i', str(ro)], check=True)
        self.immutable.append(str(ro))

    def close(self):
        for path in self.immutable:
            subprocess.run(['chattr', '-i', path], check=False)
        for ns in self.namespaces:
            subprocess.run(['ip', 'netns', 'del', ns], check=False)

    def fill(self, value, case_id):
        """Placeholders {tmp}, {ro}, {ns}, {tag}, {new} (a name unique to the case), ..."""
        values = dict(self.values, new='zbn%s%s' % (self.tag, uuid.uuid4().hex[:4]))
        if isinstance(value, str):
            return value.format(**values)
        if isinstance(value, list):
            return [self.fill(v, case_id) for v in value]
        if isinstance(value, dict):
            return dict((k, self.fill(v, case_id)) for k, v in value.items())
        return value

    def state(self):
        files = []
        for dirpath, dirnames, filenames in os.walk(str(self.tmp)):
            if os.path.basename(dirpath) == 'ovs' or '/ovs/' in dirpath + '/':
                dirnames[:] = []
                continue
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                files.append((os.path.relpath(path, str(self.tmp)), st.st_mode, st.st_size,
                              st.st_mtime_ns))
        state = {'files': sorted(files),
                 # Only this scene's names ({new} holds its tag): the other worker's cases
                 # add and delete namespaces and links of their own meanwhile.
                 'netns': sorted(n['name'] for n in ip_json('netns', 'list')
                                 if self.tag in n['name']),
                 'root_links': sorted(l['ifname'] for l in ip_json('link', 'show')
                                      if self.tag in l['ifname'])}
        for ns in self.namespaces:
            state[ns] = {'links': volatile_free(ip_json('-n', ns, '-d', 'addr', 'show')),
                         'routes': ip_json('-n', ns, 'route', 'show', 'table', 'all'),
                         'qdiscs': json.loads(subprocess.run(
                             ['tc', '-n', ns, '-j', 'qdisc', 'show'], capture_output=True,
                             text=True, check=True).stdout or '[]')}
        if self.ovs:
            state['ovs'] = self.ovs.dump()
        return state


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    made = {}
    ovs_daemons = []

    def _get(table, needs):
        if table not in made:
            # two private OVS instances cannot share the netdev datapath: one table's at a time
            while ovs_daemons:
                ovs_daemons.pop().stop()

            def ovs_factory():
                from lib.ovs import PrivateOVS
                daemons = PrivateOVS(str(tmp_path_factory.mktemp('ovs-' + table)))
                daemons.start()
                ovs_daemons.append(daemons)
                return daemons
            made[table] = Scene(tmp_path_factory.mktemp(table), needs, ovs_factory)
        return made[table]

    yield _get
    for scene in made.values():
        scene.close()
    for daemons in ovs_daemons:
        daemons.stop()


def run_module(name, args, check, workdir):
    path = os.path.join(workdir, 'args-%s.json' % uuid.uuid4().hex[:8])
    params = dict(args, _ansible_check_mode=check, _ansible_diff=True,
                  _ansible_tmpdir=workdir, _ansible_remote_tmp=workdir,
                  _ansible_keep_remote_files=False)
    with open(path, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': params}, f)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    proc = subprocess.run([sys.executable, '-m',
                           'ansible_collections.zerodrop.testbed.plugins.modules.' + name, path],
                          capture_output=True, text=True, env=env, cwd=workdir, timeout=300,
                          check=False)
    os.unlink(path)
    try:
        result = json.loads(proc.stdout[proc.stdout.index('{'):])
    except ValueError:
        pytest.fail('%s printed no JSON result (rc %s): stdout %r stderr %r'
                    % (name, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    assert 'Traceback' not in proc.stderr, proc.stderr
    return result


def run_role(playbook, role, variables, check):
    play = yaml.safe_dump([{
        'name': 'bad input', 'hosts': 'localhost', 'gather_facts': False,
        'roles': [{'role': role, 'vars': variables}]}])
    run = playbook(play, check=check)
    failures = run.failures()
    if not failures:
        return {'failed': False, 'changed': run.changed}
    task, host, msg = failures[0]
    return {'failed': True, 'msg': msg if isinstance(msg, str) else json.dumps(msg),
            'task': task}


@pytest.mark.parametrize('table,needs,case', CASES,
                         ids=['%s:%s' % (t, c['id']) for t, n, c in CASES])
def test_bad_input(table, needs, case, scenes, playbook, tmp_path):
    scene = scenes(table, needs)
    args = scene.fill(case.get('args', {}), case['id'])
    before = scene.state()
    if 'module' in case:
        result = run_module(case['module'], args, case.get('check', False), str(tmp_path))
    else:
        result = run_role(playbook, case['role'], args, case.get('check', False))
    after = scene.state()
    message = result.get('msg', '')
    assert not message.startswith('Module failed') and 'Traceback' not in message, result
    if 'fails' in case:
        assert result.get('failed') is True, result
        fragments = case['fails'] if isinstance(case['fails'], list) else [case['fails']]
        for fragment in fragments:
            assert scene.fill(fragment, case['id']) in message, (fragment, message)
        assert result.get('changed') in (None, False), result
        assert after == before, 'a failed call changed state: %s' % case['id']
    else:
        assert result.get('failed') in (None, False), result
        if 'changed' in case:
            assert result.get('changed') == case['changed'], result
        if not result.get('changed'):
            assert after == before, 'an unchanged call changed state: %s' % case['id']
