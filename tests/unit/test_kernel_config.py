"""kernel_config (fragments, merge, verification, hash) and kernel_toolchain (versions, compat
variables, requirements) on recorded outputs of this machine (fixtures/kernel_build/README.md).
"""

import os

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_config as kc
from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_toolchain as kt

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'kernel_build')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.fixture(scope='module')
def tiny():
    return kc.parse_config(fixture('tinyconfig-6.1.192-x86_64.config'))


@pytest.mark.parametrize('given,want', [
    ('NET_SCH_TBF', 'CONFIG_NET_SCH_TBF'),
    ('CONFIG_NET_SCH_TBF', 'CONFIG_NET_SCH_TBF'),
    (' 64BIT ', 'CONFIG_64BIT'),
])
def test_symbol_prefix_is_optional(given, want):
    assert kc.normalize_symbol(given) == want


@pytest.mark.parametrize('bad', ['', 'CONFIG_', 'NET-SCH', 'NET SCH', 'CONFIG_X=y', 5])
def test_bad_symbol_names_the_rule(bad):
    with pytest.raises(kc.ConfigError, match='Kconfig symbol|not a string'):
        kc.normalize_symbol(bad)


@pytest.mark.parametrize('given,want', [
    (True, 'y'), (False, 'n'), ('y', 'y'), ('M', 'm'), ('n', 'n'), (100, '100'),
    ('0x1000', '0x1000'), ('-zd', '"-zd"'), ('"-zd"', '"-zd"'), ('a"b', '"a\\"b"'),
])
def test_values_in_dot_config_spelling(given, want):
    assert kc.normalize_value(given) == want


@pytest.mark.parametrize('bad', [None, [1], {'a': 1}, 'two\nlines'])
def test_bad_values_are_refused(bad):
    with pytest.raises(kc.ConfigError, match='CONFIG_X'):
        kc.normalize_value(bad, 'CONFIG_X')


def test_parse_recorded_config(tiny):
    assert tiny['CONFIG_TCP_CONG_DCTCP'] == 'y'
    assert tiny['CONFIG_MODULES'] == 'n'
    assert tiny['CONFIG_CC_VERSION_TEXT'].startswith('"gcc (Debian 12.2')
    assert tiny['CONFIG_NR_CPUS'].isdigit()


def test_render_and_parse_round_trip():
    frag = kc.normalize_dict({'TMPFS': True, 'CONFIG_NET_SCH_RED': 'n', 'LOCALVERSION': '-zd',
                              'NR_CPUS': 4})
    text = kc.render_fragment(frag)
    assert '# CONFIG_NET_SCH_RED is not set' in text.splitlines()
    assert 'CONFIG_LOCALVERSION="-zd"' in text.splitlines()
    assert kc.parse_config(text) == frag


def test_later_fragments_win():
    a = kc.parse_config('CONFIG_A=y\nCONFIG_B=y\n')
    b = kc.parse_config('# CONFIG_A is not set\nCONFIG_C=m\n')
    assert kc.merge(a, b) == {'CONFIG_A': 'n', 'CONFIG_B': 'y', 'CONFIG_C': 'm'}


def test_verify_lists_each_unmet_symbol(tiny):
    requested = kc.normalize_dict({
        'TCP_CONG_DCTCP': 'y',       # met
        'NET_SCH_FIFO': 'y',         # met (selected, no prompt)
        'MODULES': 'n',              # met
        'EXT4_FS': 'n',              # absent counts as not set
        'TUN': 'y',                  # absent: NETDEVICES is off
        'TCP_CONG_CUBIC': 'm',       # y here, m wanted
        'NO_SUCH_SYMBOL': 'y',
        'LOCALVERSION': '',          # string, met
    })
    unmet = kc.verify(requested, tiny)
    assert [u['symbol'] for u in unmet] == ['CONFIG_TUN', 'CONFIG_TCP_CONG_CUBIC',
                                            'CONFIG_NO_SUCH_SYMBOL']
    assert unmet[0] == {'symbol': 'CONFIG_TUN', 'wanted': 'y', 'got': None}
    assert unmet[1]['got'] == 'y'
    lines = kc.describe_unmet(unmet, known={'TUN', 'TCP_CONG_CUBIC'})
    assert lines[0] == ('CONFIG_TUN: wanted y, got absent (dropped by olddefconfig: a dependency '
                        'is not met)')
    assert lines[1] == 'CONFIG_TCP_CONG_CUBIC: wanted m, got y'
    assert 'unknown to this kernel' in lines[2]


def test_verify_numbers_by_value():
    assert kc.verify({'CONFIG_X': '0x10'}, {'CONFIG_X': '16'}) == []
    assert kc.verify({'CONFIG_X': '17'}, {'CONFIG_X': '16'})


def test_config_hash_ignores_comments_and_order(tiny):
    text = fixture('tinyconfig-6.1.192-x86_64.config')
    shuffled = '# header\n' + '\n'.join(reversed(text.splitlines())) + '\n'
    assert kc.config_hash(kc.parse_config(shuffled)) == kc.config_hash(tiny)
    changed = dict(tiny, CONFIG_TCP_CONG_DCTCP='n')
    assert kc.config_hash(changed) != kc.config_hash(tiny)


def test_kconfig_symbols(tmp_path):
    (tmp_path / 'Kconfig').write_text('config FOO\n\tbool "foo"\nmenuconfig BAR\n\tbool\n')
    sub = tmp_path / 'net'
    sub.mkdir()
    (sub / 'Kconfig.debug').write_text('  config BAZ\n# config NOT_ME\n')
    assert kc.kconfig_symbols(str(tmp_path)) == {'FOO', 'BAR', 'BAZ'}


def test_tool_versions_from_recorded_output():
    assert kt.parse_version(fixture('gcc-version.txt')) == (12, 2, 0)
    assert kt.parse_version(fixture('ld-version.txt')) == (2, 40, 0)
    assert kt.parse_version(fixture('make-version.txt')) == (4, 3, 0)
    assert kt.compiler_kind(fixture('gcc-version.txt')) == 'gcc'
    assert kt.compiler_kind('Debian clang version 14.0.6') == 'clang'


def test_tree_version(tmp_path):
    (tmp_path / 'Makefile').write_text('# SPDX\nVERSION = 4\nPATCHLEVEL = 14\nSUBLEVEL = 67\n'
                                       'EXTRAVERSION =\nNAME = Petit Gorille\n')
    assert kt.tree_version(str(tmp_path)) == (4, 14, 67, '')
    assert not kt.is_kernel_tree(str(tmp_path))   # no Kconfig, no merge_config.sh
    (tmp_path / 'Makefile').write_text('all:\n')
    assert kt.tree_version(str(tmp_path)) is None


# The authors' 4.14.67 config has UNWINDER_ORC, RANDOMIZE_BASE and FUNCTION_TRACER on.
AUTHORS_LIKE = {'CONFIG_UNWINDER_ORC': 'y', 'CONFIG_STACK_VALIDATION': 'y',
                'CONFIG_RANDOMIZE_BASE': 'y', 'CONFIG_FUNCTION_TRACER': 'y'}
GCC12 = (12, 2, 0)
BINUTILS240 = (2, 40, 0)


def names(compat):
    return [c[0] for c in compat]


def test_compat_for_the_authors_config_on_gcc12():
    compat = kt.compat_vars((4, 14, 67, ''), AUTHORS_LIKE, 'gcc', GCC12, BINUTILS240)
    assert [(n, v) for n, v, reason in compat] == [
        ('WERROR', '0'), ('OBJECT_FILES_NON_STANDARD_thunk_64.o', 'y'),
        ('CFLAGS_pagetable.o', '-fcommon'), ('CFLAGS_REMOVE_elfcore.o', '-pg')]
    assert all(reason for name, value, reason in compat)


def test_compat_each_only_with_its_feature():
    v = (4, 14, 67, '')
    assert kt.compat_vars(v, {}, 'gcc', GCC12, BINUTILS240) == []
    assert names(kt.compat_vars(v, {'CONFIG_RETPOLINE': 'y'}, 'gcc', GCC12, BINUTILS240)) == [
        'WERROR', 'OBJECT_FILES_NON_STANDARD_thunk_64.o']
    assert names(kt.compat_vars(v, {'CONFIG_RANDOMIZE_BASE': 'y'}, 'gcc', GCC12,
                                BINUTILS240)) == ['CFLAGS_pagetable.o']
    assert names(kt.compat_vars(v, {'CONFIG_FUNCTION_TRACER': 'y'}, 'gcc', GCC12,
                                BINUTILS240)) == ['CFLAGS_REMOVE_elfcore.o']


def test_compat_only_with_new_toolchains():
    v = (4, 14, 67, '')
    assert kt.compat_vars(v, AUTHORS_LIKE, 'gcc', (9, 4, 0), (2, 34, 0)) == []
    assert names(kt.compat_vars(v, AUTHORS_LIKE, 'gcc', (10, 2, 1), (2, 35, 2))) == [
        'CFLAGS_pagetable.o']
    # clang has none of gcc's problems; binutils ones remain
    assert names(kt.compat_vars(v, AUTHORS_LIKE, 'clang', (14, 0, 6), BINUTILS240)) == [
        'OBJECT_FILES_NON_STANDARD_thunk_64.o', 'CFLAGS_REMOVE_elfcore.o']


def test_no_compat_for_new_kernels(tiny):
    assert kt.compat_vars((6, 1, 192, ''), tiny, 'gcc', GCC12, BINUTILS240) == []
    assert kt.compat_vars((6, 1, 192, ''), dict(AUTHORS_LIKE, CONFIG_OBJTOOL='y'), 'gcc', GCC12,
                          BINUTILS240) == []


def test_requirements_from_config(tiny):
    assert ('gelf.h', 'header', 'libelf-dev') in kt.config_requirements(tiny, ['bzImage'])
    reqs = kt.config_requirements({'CONFIG_MODULES': 'y'}, ['bindeb-pkg'])
    assert ('dpkg-buildpackage', 'program', 'dpkg-dev') in reqs
    assert ('depmod', 'program', 'kmod') in reqs
    assert kt.config_requirements({}, ['bzImage']) == []


def test_flex_bison_from_416():
    assert not kt.needs_flex_bison((4, 14, 67, ''))
    assert kt.needs_flex_bison((4, 16, 0, ''))
    assert kt.needs_flex_bison((6, 1, 192, ''))


def test_ccache_stats_from_recorded_output():
    stats = kt.parse_ccache_stats(fixture('ccache-print-stats.txt'))
    assert stats['cache_miss'] > 1000 and stats['direct_cache_hit'] > 0   # a cold kernel build
    later = dict(stats, direct_cache_hit=stats['direct_cache_hit'] + 7,
                 preprocessed_cache_hit=stats.get('preprocessed_cache_hit', 0) + 2,
                 cache_miss=stats['cache_miss'] + 1)
    assert kt.ccache_delta(stats, later) == {'hits': 9, 'misses': 1}
