"""Module tables: run a module's real code with its commands served from recorded outputs.

A table (tests/unit/module_tables/<name>.yml) is a mapping::

    module: tc_qdisc                   # plugins/modules/<module>.py
    cases:
      - name: add a tbf root           # unique in the table
        args: {device: v0, kind: tbf}  # module arguments
        check_mode: false              # optional, default false
        diff: false                    # optional, default false
        files: {sub/path: text}        # files made under {tmp} before setup and the run
        missing_programs: [bc]         # recorded: programs get_bin_path did not find
        setup: [[ip, link, add, ...]]  # recording only: run (as root) before the module
        teardown: [[ip, link, del, ...]]  # recording only: run after it, errors ignored
        commands:                      # every command the module runs, in order
          - argv: [ip, -j, link, show, dev, v0]
            data: null                 # optional: what the command reads on stdin
            rc: 0
            stdout: '...'
            stderr: ''
            creates: ['{tmp}/disk.qcow2']  # files the command made under {tmp} (recorded);
            removes: []                    # replay makes them empty, or removes them
        result: {changed: true, msg: ...}  # subset of the module's result that must match

A table with ``private_ovs: true`` records each case against fresh private Open vSwitch daemons
(tests/lib/ovs.py) whose socket is ``{tmp}/ovs/db.sock``.

``{tmp}`` in args, files, argv, data and outputs stands for a fresh scratch directory.

Replay (``run_case``) patches ``AnsibleModule.run_command`` to check each argv (and stdin) against
the next recorded command and return its rc, stdout and stderr; an unexpected or missing command
fails the test. ``get_bin_path`` answers a program's bare name, so argv do not depend on where a
machine keeps its programs. No root, no network namespace, no daemon is needed to replay.

Recording (``python tests/unit/module_table.py record TABLE [CASE...]``, as root) runs the same
cases with the real commands and writes what they printed, and the result keys the case names,
back into the table; comments at the top of the file (where the outputs came from) are kept.
"""

import contextlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TABLES = os.path.join(HERE, 'module_tables')
if os.path.join(ROOT, '.collections') not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, '.collections'))

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

PACKAGE = 'ansible_collections.zerodrop.testbed.plugins.modules.'
ALWAYS = ('changed', 'failed', 'msg')
OVS_SOCKET = 'ovs/db.sock'  # under {tmp}, for tables with private_ovs: true


class UnexpectedCommand(AssertionError):
    pass


def load(path):
    with open(path) as f:
        table = yaml.safe_load(f)
    names = [case['name'] for case in table['cases']]
    dupes = sorted(set(n for n in names if names.count(n) > 1))
    if dupes:
        raise ValueError('%s: case names used twice: %s' % (path, dupes))
    return table


def tables():
    return sorted(os.path.join(TABLES, name) for name in os.listdir(TABLES)
                  if name.endswith('.yml'))


def substitute(value, tmp, reverse=False):
    """Replace {tmp} by the scratch directory in every string of ``value`` (or back)."""
    if isinstance(value, str):
        return value.replace(tmp, '{tmp}') if reverse else value.replace('{tmp}', tmp)
    if isinstance(value, list):
        return [substitute(v, tmp, reverse) for v in value]
    if isinstance(value, dict):
        return dict((k, substitute(v, tmp, reverse)) for k, v in value.items())
    return value


def make_files(files, tmp):
    for rel, content in (files or {}).items():
        path = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(substitute(content, tmp))


def tree(top):
    """Paths of the files under ``top``."""
    return set(os.path.join(d, f) for d, dummy, names in os.walk(top) for f in names)


def _text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return value


class Served(object):
    """run_command/get_bin_path stand-ins: replay recorded commands, or run and record them."""

    def __init__(self, commands, tmp, record=False, missing_programs=()):
        self.expected = [substitute(c, tmp) for c in commands or []]
        self.tmp = tmp
        self.record = record
        self.missing_programs = set(missing_programs)
        self.seen = []
        self.errors = []

    def get_bin_path(self, module, name, required=False, opt_dirs=None):
        if self.record and shutil.which(name) is None and not os.path.isabs(name):
            self.missing_programs.add(name)
        if name in self.missing_programs:
            if required:
                module.fail_json(msg='Failed to find required executable "%s"' % name)
            return None
        return name

    def run_command(self, module, args, check_rc=False, data=None, binary_data=False,
                    environ_update=None, cwd=None, **kwargs):
        argv = [str(a) for a in args]
        data = _text(data)
        if self.record:
            env = dict(os.environ, **(environ_update or {}))
            files = tree(self.tmp)
            proc = subprocess.run(argv, input=data, capture_output=True, text=True, env=env,
                                  cwd=cwd, check=False)
            entry = {'argv': argv, 'rc': proc.returncode, 'stdout': proc.stdout,
                     'stderr': proc.stderr}
            if data is not None:
                entry['data'] = data
            now = tree(self.tmp)
            if now - files:
                entry['creates'] = sorted(now - files)
            if files - now:
                entry['removes'] = sorted(files - now)
            self.seen.append(entry)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            index = len(self.seen)
            self.seen.append({'argv': argv, 'data': data})
            if index >= len(self.expected):
                self.errors.append('unexpected command #%d: %s' % (index + 1, argv))
                raise UnexpectedCommand(self.errors[-1])
            want = self.expected[index]
            if want['argv'] != argv or want.get('data') != data:
                self.errors.append('command #%d differs:\n  expected %s (stdin %r)\n  got      %s '
                                   '(stdin %r)' % (index + 1, want['argv'], want.get('data'),
                                                   argv, data))
                raise UnexpectedCommand(self.errors[-1])
            rc, out, err = want['rc'], want.get('stdout', ''), want.get('stderr', '')
            make_files(dict((os.path.relpath(p, self.tmp), '') for p in want.get('creates', [])),
                       self.tmp)
            for path in want.get('removes', []):
                os.remove(path)
        if check_rc and rc != 0:
            module.fail_json(msg=err or out, rc=rc, stdout=out, stderr=err, cmd=argv)
        return rc, out, err

    def missing(self):
        return self.expected[len(self.seen):]


def run_module(name, args, check_mode=False, diff=False, served=None):
    """Run plugins/modules/<name>.py's main() with ``args``; return its result dict."""
    module = importlib.import_module(PACKAGE + name)
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff,
                _ansible_remote_tmp='/tmp', _ansible_keep_remote_files=False)
    out = io.StringIO()

    def run_command(self, *a, **kw):
        return served.run_command(self, *a, **kw)

    def get_bin_path(self, *a, **kw):
        return served.get_bin_path(self, *a, **kw)

    patches = [(basic.AnsibleModule, 'run_command', run_command),
               (basic.AnsibleModule, 'get_bin_path', get_bin_path)]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, dummy in patches]
    try:
        for obj, attr, value in patches:
            setattr(obj, attr, value)
        with patch_module_args(args), contextlib.redirect_stdout(out):
            try:
                module.main()
            except SystemExit:
                pass
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)
    text = out.getvalue()
    try:
        return json.loads(text[text.index('{'):])
    except ValueError:
        raise AssertionError('%s printed no JSON result: %r' % (name, text[:500]))


def run_case(table, case, tmp, record=False):
    """Run one case; return (result, served). ``tmp`` is a fresh directory."""
    if not record:
        make_files(case.get('files'), tmp)
    if table.get('private_ovs') and not record:
        make_files({OVS_SOCKET: ''}, tmp)  # the module checks that the socket exists
    served = Served(case.get('commands'), tmp, record=record,
                    missing_programs=case.get('missing_programs', ()))
    result = run_module(table['module'], substitute(case.get('args', {}), tmp),
                        check_mode=case.get('check_mode', False), diff=case.get('diff', False),
                        served=served)
    result.setdefault('failed', False)
    return substitute(result, tmp, reverse=True), served


def mismatches(expected, actual, where='result'):
    """Differences between ``expected`` (a subset) and ``actual``, one line each."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key, value in expected.items():
            if key not in actual:
                out.append('%s.%s missing (expected %r)' % (where, key, value))
            else:
                out += mismatches(value, actual[key], '%s.%s' % (where, key))
        return out
    if expected != actual:
        return ['%s: expected %r, got %r' % (where, expected, actual)]
    return []


# --- recording --------------------------------------------------------------------------------

def _str_presenter(dumper, data):
    if '\n' in data:
        return dumper.represent_scalar('tag:yaml.org,2002:str', data, style='|')
    return dumper.represent_scalar('tag:yaml.org,2002:str', data)


class _Dumper(yaml.SafeDumper):
    pass


def _list_presenter(dumper, data):
    flat = all(isinstance(v, (str, int, float, bool)) and '\n' not in str(v) for v in data)
    return dumper.represent_sequence('tag:yaml.org,2002:seq', data, flow_style=flat and bool(data))


_Dumper.add_representer(str, _str_presenter)
_Dumper.add_representer(list, _list_presenter)


def _sh(argv, tmp, check):
    proc = subprocess.run(substitute(argv, tmp), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError('setup %s failed: %s' % (argv, proc.stderr))


def record(path, only=None):
    import tempfile
    with open(path) as f:
        header = ''.join(line for line in f if line.startswith('#'))
    table = load(path)
    for case in table['cases']:
        if only and case['name'] not in only:
            continue
        tmp = tempfile.mkdtemp(prefix='zd-table-')
        ovs = None
        try:
            if table.get('private_ovs'):
                sys.path.insert(0, os.path.join(ROOT, 'tests'))
                from lib.ovs import PrivateOVS
                ovs = PrivateOVS(os.path.dirname(os.path.join(tmp, OVS_SOCKET)))
                ovs.start()
            for argv in case.get('teardown', []):
                _sh(argv, tmp, False)
            make_files(case.get('files'), tmp)
            for argv in case.get('setup', []):
                _sh(argv, tmp, True)
            result, served = run_case(table, case, tmp, record=True)
        finally:
            for argv in case.get('teardown', []):
                _sh(argv, tmp, False)
            if ovs is not None:
                ovs.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        case['commands'] = substitute(served.seen, tmp, reverse=True)
        case.pop('missing_programs', None)
        if served.missing_programs:
            case['missing_programs'] = sorted(served.missing_programs)
        keep = list(ALWAYS) + [k for k in case.get('result', {}) if k not in ALWAYS]
        case['result'] = dict((k, result[k]) for k in keep if k in result)
        print('%s: %s' % (case['name'], json.dumps(case['result'])[:300]))
    with open(path, 'w') as f:
        f.write(header)
        yaml.dump(table, f, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


if __name__ == '__main__':
    if len(sys.argv) < 3 or sys.argv[1] != 'record':
        sys.exit('usage: module_table.py record TABLE.yml [CASE NAME...]')
    record(sys.argv[2], set(sys.argv[3:]) or None)
