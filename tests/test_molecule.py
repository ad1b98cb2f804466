"""Every molecule scenario (molecule/*/), run end to end by the one pytest command."""

import os
import subprocess
import sys

import pytest

from lib.guest import stop_all

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SCENARIOS = sorted(name for name in os.listdir(os.path.join(ROOT, 'molecule'))
                   if os.path.isfile(os.path.join(ROOT, 'molecule', name, 'molecule.yml')))
TIMEOUT = int(os.environ.get('ZERODROP_MOLECULE_TIMEOUT', '2400'))


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize('scenario', SCENARIOS)
def test_molecule_scenario(scenario):
    # Scenarios boot their own guests: stop the test session's guest first (one guest at a time).
    stop_all()
    # molecule calls ansible-config and ansible-playbook: the venv's bin must come first on PATH.
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get('PATH', ''), ANSIBLE_NOCOLOR='1',
               NO_COLOR='1', PY_COLORS='0')
    env.pop('ANSIBLE_CONFIG', None)
    try:
        proc = subprocess.run([os.path.join(BIN, 'molecule'), 'test', '-s', scenario], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        subprocess.run([os.path.join(BIN, 'molecule'), 'destroy', '-s', scenario], cwd=ROOT,
                       env=env, capture_output=True, timeout=600, check=False)
        pytest.fail('molecule test -s %s took more than %d s:\n%s'
                    % (scenario, TIMEOUT, (exc.stdout or b'')[-6000:]))
    assert proc.returncode == 0, (
        'molecule test -s %s failed (rc %d)\n--- stdout (tail)\n%s\n--- stderr (tail)\n%s'
        % (scenario, proc.returncode, proc.stdout[-12000:], proc.stderr[-6000:]))
