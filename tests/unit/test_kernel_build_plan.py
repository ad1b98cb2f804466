"""module_utils/kernel_build_plan.py: kernel_build's decisions without running anything.

Toolchain texts and the .config are the recorded ones of tests/unit/fixtures/kernel_build
(README.md there says how they were made)."""

import os

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_build_plan as plan
from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_config as kc
from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_toolchain as kt

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'kernel_build')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


GCC = fixture('gcc-version.txt')
LD = fixture('ld-version.txt')
TINY = kc.parse_config(fixture('tinyconfig-6.1.192-x86_64.config'))


@pytest.mark.parametrize('user_vars, ccache, expected, cc_var', [
    ({}, False, ('gcc', 'ld', 'gcc'), None),
    ({'CROSS_COMPILE': 'aarch64-linux-gnu-'}, False,
     ('aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-ld', 'gcc'), None),
    ({'LLVM': '1'}, False, ('clang', 'ld.lld', 'clang'), None),
    ({'LLVM': '0'}, False, ('gcc', 'ld', 'gcc'), None),
    ({}, True, ('ccache gcc', 'ld', 'gcc'), 'ccache gcc'),
    ({'CC': 'ccache gcc-12'}, True, ('ccache gcc-12', 'ld', 'gcc'), 'ccache gcc-12'),
    ({'CC': 'gcc-12', 'LD': 'ld.bfd', 'HOSTCC': 'gcc-11'}, False,
     ('gcc-12', 'ld.bfd', 'gcc-11'), 'gcc-12'),
])
def test_programs(user_vars, ccache, expected, cc_var):
    assert plan.programs(user_vars, ccache) == expected
    assert user_vars.get('CC') == cc_var


def test_git_identity_clean_and_dirty():
    clean = plan.git_identity('abc123\n', 'v6.1-5-gabc123\n', '')
    assert clean == {'kind': 'git', 'commit': 'abc123', 'describe': 'v6.1-5-gabc123',
                     'dirty': False}
    dirty = plan.git_identity('abc123\n', 'v6.1-dirty\n', ' M Makefile\n', 'diff --git a b\n')
    assert dirty['dirty'] is True
    assert dirty['diff_sha256'] == plan.sha256_bytes(b'diff --git a b\n')
    other = plan.git_identity('abc123\n', 'v6.1-dirty\n', ' M Makefile\n', 'diff --git a c\n')
    assert other['diff_sha256'] != dirty['diff_sha256']


def _touch(path, mtime_ns=1_000_000_000):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('x')
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_tree_hash_follows_sources_not_build_products(tmp_path):
    src = str(tmp_path / 'linux')
    _touch(os.path.join(src, 'Makefile'))
    _touch(os.path.join(src, 'kernel', 'fork.c'))
    first = plan.tree_hash(src, src)
    for product in ('kernel/fork.o', 'kernel/.fork.o.cmd', '.config', 'vmlinux', 'System.map',
                    'include/generated/autoconf.h', plan.METADATA, plan.LOG):
        _touch(os.path.join(src, product))
    assert plan.tree_hash(src, src) == first
    _touch(os.path.join(src, 'kernel', 'fork.c'), mtime_ns=2_000_000_000)
    assert plan.tree_hash(src, src) != first


def test_tree_hash_out_of_tree_skips_the_build_dir_only(tmp_path):
    src = str(tmp_path / 'linux')
    _touch(os.path.join(src, 'Makefile'))
    obj = os.path.join(src, 'build')
    first = plan.tree_hash(src, obj)
    _touch(os.path.join(obj, 'vmlinux.o'))
    assert plan.tree_hash(src, obj) == first
    _touch(os.path.join(src, 'lib', 'crc.o'))  # out of tree, an .o in the source is a source
    assert plan.tree_hash(src, obj) != first


INPUTS = dict(source=plan.given_identity('v6.1'), base_kind='target', base='tinyconfig',
              base_data=b'tinyconfig', fragment_hashes=[], inline={'CONFIG_NET': 'y'},
              optional={}, on_unmet='fail',
              toolchain={'cc': 'gcc', 'cc_version': GCC.splitlines()[0]},
              make_vars={}, targets=['image'], compat='auto')


def test_inputs_fingerprint_is_stable_and_covers_every_input():
    base = plan.inputs_fingerprint(**INPUTS)
    assert base == plan.inputs_fingerprint(**dict(INPUTS))
    changes = dict(source=plan.given_identity('v6.2'), base_kind='file', base='other',
                   base_data=b'x', fragment_hashes=['f'], inline={}, optional={'CONFIG_X': 'y'},
                   on_unmet='warn', toolchain={'cc': 'clang'}, make_vars={'W': '1'},
                   targets=['image', 'modules'], compat='off')
    for key, value in changes.items():
        assert plan.inputs_fingerprint(**dict(INPUTS, **{key: value})) != base, key


def test_build_fingerprint_covers_its_inputs():
    args = (plan.given_identity('v6.1'), 'c0ffee', {'cc': 'gcc'}, {}, ['bzImage'])
    base = plan.build_fingerprint(*args)
    for i, value in enumerate((plan.given_identity('v6.2'), 'c0ffef', {'cc': 'clang'},
                               {'WERROR': '0'}, ['bzImage', 'modules'])):
        changed = list(args)
        changed[i] = value
        assert plan.build_fingerprint(*changed) != base


META = {'config_sha256': 'aa', 'inputs_fingerprint': 'ff'}


@pytest.mark.parametrize('meta, force, present, config_sha, expected', [
    (META, False, True, 'aa', True),
    (None, False, True, 'aa', False),
    ({}, False, True, 'aa', False),
    (META, True, True, 'aa', False),
    (META, False, False, 'aa', False),
    (META, False, True, None, False),
    (META, False, True, 'ab', False),
])
def test_still_built(meta, force, present, config_sha, expected):
    assert plan.still_built(meta, force, present, config_sha) is expected


def test_compat_plan_with_the_recorded_toolchain():
    cc_version, ld_version = kt.parse_version(GCC), kt.parse_version(LD)
    cc_kind = kt.compiler_kind(GCC)
    assert cc_kind == 'gcc' and cc_version[0] == 12
    # 6.1 on gcc 12 / binutils 2.40 needs nothing; the user's variables pass through
    assert plan.compat_plan('auto', (6, 1, 192, ''), TINY, cc_kind, cc_version, ld_version,
                            {'W': '1'}) == ([], {'W': '1'})
    config = dict(TINY, CONFIG_RANDOMIZE_BASE='y', CONFIG_FUNCTION_TRACER='y')
    compat, variables = plan.compat_plan('auto', (5, 4, 0, ''), config, cc_kind, cc_version,
                                         ld_version, {'CFLAGS_pagetable.o': '-fcommon -O2'})
    names = [c['name'] for c in compat]
    assert 'CFLAGS_pagetable.o' in names and 'CFLAGS_REMOVE_elfcore.o' in names
    assert [c['overridden'] for c in compat if c['name'] == 'CFLAGS_pagetable.o'] == [True]
    assert variables['CFLAGS_pagetable.o'] == '-fcommon -O2'
    assert variables['CFLAGS_REMOVE_elfcore.o'] == '-pg'
    assert plan.compat_plan('off', (5, 4, 0, ''), config, cc_kind, cc_version, ld_version,
                            {}) == ([], {})


def test_make_targets():
    assert plan.make_targets(['image', 'modules'], 'arch/x86/boot/bzImage', True) == \
        (['bzImage', 'modules'], [])
    assert plan.make_targets(['image', 'modules', 'modules_install', 'bindeb-pkg'],
                             'arch/x86/boot/bzImage', TINY.get('CONFIG_MODULES') == 'y') == \
        (['bzImage', 'bindeb-pkg'], ['modules', 'modules_install'])


def test_reproducer():
    commands = [['mkdir', '-p', '/b'], ['cp', 'running-config', '/b/.config'],
                ['make', '-C', '/src dir', 'O=/b', 'olddefconfig']]
    assert plan.reproducer('/src dir', {'LC_ALL': 'C', 'CCACHE_DIR': '/c c'}, commands) == [
        "cd '/src dir'",
        'cp running-config /b/.config',
        "CCACHE_DIR='/c c' LC_ALL=C make -C '/src dir' O=/b olddefconfig"]
