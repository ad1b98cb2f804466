"""Run a playbook with ansible-playbook and read every task result (ansible.posix.json callback)."""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


class PlaybookRun(object):
    """Outcome of one ansible-playbook run.

    ``results(name)`` gives the per-host results of every task whose name is ``name``;
    ``result(name)`` the single one (first host); ``changed`` whether any task changed something.
    """

    def __init__(self, rc, stdout, stderr, argv):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.argv = argv
        start = stdout.find('{')
        self.data = json.loads(stdout[start:]) if start >= 0 else {'plays': [], 'stats': {}}

    def tasks(self):
        for play in self.data.get('plays', []):
            yield from play.get('tasks', [])

    def results(self, name):
        found = []
        for task in self.tasks():
            if task['task']['name'] == name:
                found.extend(task['hosts'].values())
        if not found:
            raise KeyError('no task named %r; tasks: %s'
                           % (name, [t['task']['name'] for t in self.tasks()]))
        return found

    def result(self, name):
        return self.results(name)[0]

    @property
    def changed(self):
        return any(s.get('changed', 0) for s in self.data.get('stats', {}).values())

    @property
    def failed(self):
        return self.rc != 0

    def failures(self):
        """(task name, host, message) of every failed task result."""
        found = []
        for task in self.tasks():
            for host, res in task['hosts'].items():
                if res.get('failed') or res.get('unreachable'):
                    found.append((task['task']['name'], host,
                                  res.get('msg') or res.get('stderr') or res))
        return found

    def __repr__(self):
        failures = '\n'.join('%s [%s]: %s' % f for f in self.failures())
        return '<PlaybookRun rc=%s>\nFAILED TASKS:\n%s\nSTDERR:\n%s\nSTDOUT (tail):\n%s' % (
            self.rc, failures, self.stderr[-3000:], self.stdout[-3000:])


def run_playbook(play, workdir=None, extra_vars=None, check=False, diff=False, inventory=None,
                 limit=None, tags=None, env=None, timeout=1800):
    """Run ``play`` (a path, or YAML text written to a temporary file) and return a PlaybookRun."""
    workdir = workdir or tempfile.mkdtemp(prefix='zt-play-')
    if '\n' in play or not os.path.exists(play):
        path = os.path.join(workdir, 'play-%d.yml' % len(os.listdir(workdir)))
        with open(path, 'w') as f:
            f.write(play)
        play = path
    argv = [os.path.join(BIN, 'ansible-playbook'), play,
            '-i', inventory or os.path.join(ROOT, 'tests', 'inventory', 'localhost.yml')]
    if extra_vars:
        argv += ['-e', json.dumps(extra_vars)]
    if check:
        argv.append('--check')
    if diff:
        argv.append('--diff')
    if limit:
        argv += ['--limit', limit]
    if tags:
        argv += ['--tags', tags]
    environ = dict(os.environ)
    environ.update({
        'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg'),
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.posix.json',
        'ANSIBLE_CALLBACK_RESULT_FORMAT': 'json',
        'ANSIBLE_NOCOLOR': '1',
        'PATH': BIN + os.pathsep + environ.get('PATH', ''),
    })
    environ.update(env or {})
    proc = subprocess.run(argv, capture_output=True, text=True, env=environ, cwd=ROOT,
                          timeout=timeout, check=False)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, argv)
