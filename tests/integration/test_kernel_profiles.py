"""Kernel profile check: the role with kernel_build_check_only (configure and verify, no build)
on the real trees.

- zD 4.14.67 (the local copy of github.com/zD-linux/linux-4.14.67 at tests/lib/zd_copy.py's ZD_KERNEL_REPO): every preset,
  with the minimal config and each profile, and with the authors' config and its default profile.
  The branches differ only in C files (asserted below), so one checkout (vanilla) serves them all.
- Debian's linux-source-6.1: the vm and hypervisor profiles with the minimal config.
- The module with targets: [] on 6.1, with its check mode; NET_CLS alone is explained as a
  promptless symbol (the 4.14 vm profile once asked for it).

Sources and build directories live under /var/cache/zerodrop/kernel-check, apart from the kernels
that other tests and the lab build, so a later run reuses the checkout and the unpacked tree.
"""

import json
import os
import re
import subprocess
import time

import pytest
import yaml

from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_config as kc
from lib import zd_copy
from lib.playbook import ROOT, run_playbook
from lib.zd_copy import ZD_KERNEL_REPO

pytestmark = [pytest.mark.slow, pytest.mark.root]

ZD_BRANCHES = ('vanilla', 'vm-pfifo', 'vm-tbf', 'physical-pfifo', 'physical-tbf')
AUTHORS_CONFIG = os.path.normpath(os.path.join(ROOT, '..', 'shared', 'sources',
                                               'zD-authors-4.14.67.config'))
ARCHIVE = '/usr/src/linux-source-6.1.tar.xz'
WORK = '/var/cache/zerodrop/kernel-check'
ROLE = 'zerodrop.testbed.kernel_build : '
BUILD_TASK = ROLE + 'Configure, verify and build the kernel'
ROLE_DIR = os.path.join(ROOT, 'roles', 'kernel_build')
MODULE_BUILD = 'test-profile-6.1-module'

with open(os.path.join(ROLE_DIR, 'vars', 'main.yml')) as _f:
    PRESETS = yaml.safe_load(_f)['kernel_build__presets']
with open(os.path.join(ROLE_DIR, 'defaults', 'main.yml')) as _f:
    DEFAULTS = yaml.safe_load(_f)
PROFILES = {
    'vm': kc.normalize_dict(DEFAULTS['kernel_build_vm_symbols']),
    'hypervisor': kc.normalize_dict(dict(DEFAULTS['kernel_build_vm_symbols'],
                                         **DEFAULTS['kernel_build_hypervisor_symbols'])),
}
OPTIONAL = kc.normalize_dict(DEFAULTS['kernel_build_optional_symbols'])
OTHER = {'vm': 'hypervisor', 'hypervisor': 'vm'}

# The role runs on the one 4.14.67 tree: (preset, config kind, profile; '' = the preset's).
# A preset chooses only the branch (same Kconfig, see test_zd_branches_share_their_kconfig),
# LOCALVERSION (a make variable, not a config symbol) and its default profile, so these five
# cover every preset with both kinds (test_runs_cover_every_preset_and_kind); each preset runs
# once, and physical-tbf redoes physical-pfifo's config to show that the preset changes nothing
# in it.
ZD_RUNS = [('vm-pfifo', 'minimal', ''), ('vanilla', 'minimal', ''), ('vm-tbf', 'authors', ''),
           ('physical-pfifo', 'authors', ''), ('physical-tbf', 'authors', '')]

CHECK_PLAY = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Check a profile
      ansible.builtin.include_role:
        name: zerodrop.testbed.kernel_build
      vars:
        kernel_build_preset: "{{ item.preset }}"
        kernel_build_config: "{{ item.kind }}"
        kernel_build_profile: "{{ item.profile }}"
        kernel_build_name: "{{ item.name }}"
        kernel_build_source_type: "{{ item.source_type | default('git') }}"
        kernel_build_source_dir: "{{ item.source_dir | default('') }}"
      loop: "{{ zt_runs }}"
'''

MODULE_PLAY = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Configure only
      zerodrop.testbed.kernel_build: %s
'''


def common_vars(**extra):
    data = {
        'kernel_build_work_dir': WORK,
        'kernel_build_check_only': True,
        'kernel_build_install_deps': False,
        'kernel_build_on_unmet': 'warn',
        'kernel_build_authors_config_path': AUTHORS_CONFIG,
    }
    data.update(extra)
    return data


def resolved_profile(preset, profile):
    return profile or PRESETS[preset]['profile']


def git(*args):
    return subprocess.run(['git', '-C', ZD_KERNEL_REPO] + list(args), capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope='module')
def zd_repo():
    reason = zd_copy.missing(ZD_BRANCHES)
    if reason:
        pytest.skip(reason)
    return ZD_KERNEL_REPO


@pytest.fixture(scope='module')
def zd_checks(zd_repo, tmp_path_factory):
    if not os.path.isfile(AUTHORS_CONFIG):
        pytest.skip("the authors' config %s is missing" % AUTHORS_CONFIG)
    runs = [{'preset': p, 'kind': k, 'profile': pr, 'name': 'test-profile-4.14-%s-%s' % (p, k)}
            for p, k, pr in ZD_RUNS]
    # The first run clones the vanilla branch as the role does; the others use that checkout
    # as it is (source type dir), which spares them git's look at 60,000 files.
    name = re.sub(r'\.git$', '', os.path.basename(zd_repo.rstrip('/')))
    checkout = os.path.join(WORK, 'src', '%s-vanilla' % name)
    for later in runs[1:]:
        later.update(source_type='dir', source_dir=checkout)
    started = time.time()
    run = run_playbook(CHECK_PLAY, workdir=str(tmp_path_factory.mktemp('zd-profiles')),
                       extra_vars=common_vars(
                           kernel_build_repo='file://' + zd_repo, kernel_build_version='vanilla',
                           zt_runs=runs),
                       timeout=1800)
    assert run.rc == 0, run
    results = run.results(BUILD_TASK)
    assert len(results) == len(runs)
    assert results[0]['invocation']['module_args']['source'] == checkout
    return {'runs': list(zip(runs, results)), 'seconds': time.time() - started,
            'source': checkout}


@pytest.fixture(scope='module')
def linux61(tmp_path_factory):
    if not os.path.exists(ARCHIVE):
        pytest.skip('linux-source-6.1 is not installed (scripts/apt-packages.txt)')
    runs = [{'preset': '', 'kind': 'minimal', 'profile': p, 'name': 'test-profile-6.1-%s' % p,
             'source_type': 'archive'} for p in ('vm', 'hypervisor')]
    tmp = tmp_path_factory.mktemp('linux61-profiles')
    run = run_playbook(CHECK_PLAY, workdir=str(tmp), extra_vars=common_vars(
        kernel_build_archive=ARCHIVE, zt_runs=runs),
        timeout=1800)
    assert run.rc == 0, run
    source = run.results(ROLE + 'Name the source directory after the archive and its checksum')
    return {'runs': list(zip(runs, run.results(BUILD_TASK))), 'tmp': tmp,
            'source': source[0]['ansible_facts']['kernel_build__source']}


def assert_profile_met(check, result, index):
    """Every symbol of the run's profile was requested and has its value in the final config."""
    assert not result.get('failed'), result
    assert result['built'] is False and result['kernelrelease'] is None
    assert result['unmet'] == [], result.get('warnings')
    profile = resolved_profile(check['preset'], check['profile']) if check['preset'] \
        else check['profile']
    requested = result['requested_symbols']
    assert set(PROFILES[profile]) <= set(requested)
    if profile == 'vm':
        assert not (set(PROFILES['hypervisor']) - set(PROFILES['vm'])) & set(requested)
    final = kc.read_config(result['config_path'])
    assert kc.verify(requested, final) == []
    assert result['config_sha256'] == kc.config_hash(final)
    for sym in result['skipped_symbols']:
        assert sym in OPTIONAL and sym not in index
    assert set(OPTIONAL) - set(result['skipped_symbols']) <= set(requested)
    build_dir = os.path.dirname(result['config_path'])
    assert not os.path.exists(os.path.join(build_dir, 'metadata.json'))
    assert not os.path.exists(os.path.join(build_dir, 'vmlinux'))
    return profile


def test_zd_branches_share_their_kconfig(zd_repo):
    for branch in ZD_BRANCHES[1:]:
        assert git('diff', '--stat', 'vanilla', branch, '--', '*Kconfig*') == ''
        changed = git('diff', '--name-only', 'vanilla', branch).split()
        assert changed, 'branch %s is the same as vanilla' % branch
        # Only C sources and headers: nothing that configuration reads (Kconfig, Makefiles,
        # scripts/kconfig, config fragments).
        assert all(path.endswith(('.c', '.h')) for path in changed), (branch, changed)


def test_runs_cover_every_preset_and_kind():
    assert {p for p, k, pr in ZD_RUNS} == set(PRESETS) == set(ZD_BRANCHES)
    covered = {(k, resolved_profile(p, pr)) for p, k, pr in ZD_RUNS}
    for preset, spec in PRESETS.items():
        assert spec['version'] == preset
        default = spec['profile']
        for kind, profile in (('minimal', default), ('minimal', OTHER[default]),
                              ('authors', default)):
            assert (kind, profile) in covered, (preset, kind, profile)


def test_zd_profiles_are_met_on_4_14_67(zd_checks):
    index = kc.kconfig_index(zd_checks['source'])
    by_name = {}
    for check, result in zd_checks['runs']:
        profile = assert_profile_met(check, result, index)
        by_name[check['name']] = result
        assert 'LOCALVERSION=-%s' % check['preset'] in result['commands'][-1]
        base = [c for c in result['commands'] if 'tinyconfig' in c or c[0] == 'cp']
        if check['kind'] == 'authors':
            assert base[0] == ['cp', AUTHORS_CONFIG, result['config_path']]
        else:
            assert base[0][-1] == 'tinyconfig'
        assert profile == resolved_profile(check['preset'], check['profile'])
    # The preset does not change the config: physical-pfifo's and physical-tbf's agree.
    assert (by_name['test-profile-4.14-physical-pfifo-authors']['config_sha256']
            == by_name['test-profile-4.14-physical-tbf-authors']['config_sha256'])
    print('4.14.67 profile checks (%d role runs): %.0f s'
          % (len(zd_checks['runs']), zd_checks['seconds']))


def assert_index_knows_every_symbol(source, runs):
    started = time.time()
    index = kc.kconfig_index(source)
    seconds = time.time() - started
    assert seconds < 15, 'one pass over the Kconfig files of %s took %.1f s' % (source, seconds)
    assert index.warnings == []
    for dummy, result in runs:
        final = kc.read_config(result['config_path'])
        assert [s for s in final if s not in index] == []
    assert not index.get('NET_CLS').has_prompt
    assert 'NET_CLS_U32' in [s for s, c in index.get('NET_CLS').selected_by]
    return index


def test_kconfig_index_knows_every_symbol_of_4_14_67(zd_checks):
    index = assert_index_knows_every_symbol(zd_checks['source'], zd_checks['runs'])
    assert [s for s in kc.read_config(AUTHORS_CONFIG) if s not in index] == []


def test_kconfig_index_knows_every_symbol_of_6_1(linux61):
    assert_index_knows_every_symbol(linux61['source'], linux61['runs'])


def test_linux_6_1_profiles_are_met(linux61):
    index = kc.kconfig_index(linux61['source'])
    for check, result in linux61['runs']:
        assert assert_profile_met(check, result, index) == check['profile']
        final = kc.read_config(result['config_path'])
        # NET_CLS has no prompt: the hypervisor profile gets it through NET_CLS_U32
        assert final.get('CONFIG_NET_CLS') == ('y' if check['profile'] == 'hypervisor' else None)


def module_args(linux61, tmp_path, **config):
    """Configure-only arguments on 6.1: the vm profile's final config plus ``config``."""
    base = tmp_path / 'vm.config'
    with open(linux61['runs'][0][1]['config_path'], 'rb') as f:
        base.write_bytes(f.read())
    return {'source': linux61['source'], 'build_dir': os.path.join(WORK, 'build', MODULE_BUILD),
            'config_file': str(base), 'config': config, 'targets': []}


def run_module(args, tmp_path, check=False):
    run = run_playbook(MODULE_PLAY % json.dumps(args), workdir=str(tmp_path), check=check,
                       timeout=600)
    return run, run.result('Configure only')


def test_configure_only_module_and_its_check_mode(linux61, tmp_path):
    args = module_args(linux61, tmp_path, NET_CLS_U32='y')
    run, result = run_module(args, tmp_path)
    assert run.rc == 0, run
    assert result['built'] is False and result['unmet'] == []
    assert result['config_path'] == os.path.join(args['build_dir'], '.config')
    final = kc.read_config(result['config_path'])
    assert final['CONFIG_NET_CLS_U32'] == 'y' and final['CONFIG_NET_CLS'] == 'y'  # selected
    assert result['requested_symbols'] == {'CONFIG_NET_CLS_U32': 'y'}
    assert result['config_sha256'] == kc.config_hash(final)
    assert not os.path.exists(os.path.join(args['build_dir'], 'metadata.json'))

    again, same = run_module(args, tmp_path)
    assert again.rc == 0 and same['changed'] is False, again

    stamp = os.stat(result['config_path']).st_mtime_ns
    entries = sorted(os.listdir(args['build_dir']))
    check, checked = run_module(args, tmp_path, check=True)
    assert check.rc == 0, check
    assert checked['changed'] is False and checked['unmet'] == []
    assert checked['config_sha256'] == result['config_sha256']
    assert checked['commands'][-1][-1] == 'olddefconfig'
    assert 'O=%s' % args['build_dir'] in checked['commands'][-1]     # the would-be command
    assert os.stat(result['config_path']).st_mtime_ns == stamp
    assert sorted(os.listdir(args['build_dir'])) == entries


def test_net_cls_alone_is_explained(linux61, tmp_path):
    args = module_args(linux61, tmp_path, NET_CLS='y')
    config = os.path.join(args['build_dir'], '.config')
    before = (os.stat(config).st_mtime_ns, open(config).read()) if os.path.exists(config) else None
    run, result = run_module(args, tmp_path)
    assert run.rc != 0
    msg = result['msg']
    assert msg.startswith('1 requested config symbol(s) not satisfied after olddefconfig'), msg
    assert ('CONFIG_NET_CLS: wanted y, got absent (no prompt: it is set only when selected, by '
            'NET_CLS_BASIC, ') in msg, msg
    assert 'NET_CLS_U32' in msg and msg.endswith('; ask for one of those)'), msg
    assert result['unmet'] == [{'symbol': 'CONFIG_NET_CLS', 'wanted': 'y', 'got': None}]
    after = (os.stat(config).st_mtime_ns, open(config).read()) if os.path.exists(config) else None
    assert after == before                        # the previous .config (or none) is kept
    assert not os.path.exists(os.path.join(args['build_dir'], 'metadata.json'))
