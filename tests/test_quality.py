"""Static quality gates, run by the same pytest command as every other test:
ansible-lint (production profile), ansible-test sanity (offline) and the changelog lint."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
# A stable copy keeps ansible-test's own virtual environments between runs (73 s cold, ~10 s warm).
SANITY_ROOT = os.environ.get('ZERODROP_SANITY_ROOT', '/var/cache/zerodrop/sanity')


def _run(argv, cwd, timeout):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _collection_files():
    out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines()
            if not f.startswith('.collections/') and os.path.lexists(os.path.join(ROOT, f))]


def test_ansible_lint_production_profile():
    proc = _run([os.path.join(BIN, 'ansible-lint'), '--profile', 'production', '--nocolor'],
                ROOT, 1200)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]


def test_ansible_test_sanity():
    target = os.path.join(SANITY_ROOT, 'ansible_collections', 'zerodrop', 'testbed')
    os.makedirs(target, exist_ok=True)
    subprocess.run(['rsync', '-a', '--delete', '--exclude', '/tests/output/',
                    '--files-from=-', ROOT + '/', target + '/'],
                   input='\n'.join(_collection_files()), text=True, check=True)
    # --files-from does not delete files that left the tree: remove them explicitly.
    keep = set(_collection_files())
    for dirpath, dirnames, filenames in os.walk(target):
        rel = os.path.relpath(dirpath, target)
        if rel.startswith(os.path.join('tests', 'output')):
            continue
        for name in filenames:
            path = os.path.normpath(os.path.join(rel, name))
            if path not in keep:
                os.unlink(os.path.join(dirpath, name))
    proc = _run([os.path.join(BIN, 'ansible-test'), 'sanity', '--python',
                 '%d.%d' % sys.version_info[:2], '--venv', '--color', 'no'], target, 1800)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-8000:]


def test_changelog_fragments_lint():
    if not os.path.exists(os.path.join(ROOT, 'changelogs', 'config.yaml')):
        pytest.fail('changelogs/config.yaml is missing')
    proc = _run([os.path.join(BIN, 'antsibull-changelog'), 'lint'], ROOT, 300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
