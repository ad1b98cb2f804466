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


# A small tree in real Kconfig syntax: sourcing (with $(SRCARCH), rsource, a missing osource),
# menuconfig, if/menu/choice blocks, bool + separate prompt, def_bool, select/imply with if,
# help text that looks like Kconfig (both help keywords), continuation lines, comments.
KCONFIG_TREE = {
    'Kconfig': """
mainmenu "Test/$(SRCARCH) Kernel Configuration"

source "init/Kconfig"
source "net/Kconfig"
source "arch/$(SRCARCH)/Kconfig"
osource "nowhere/Kconfig"
""",
    'init/Kconfig': """
config MODULES
\tbool "Enable loadable module support"
\tmodules
\thelp
\t  config IN_HELP
\t  select NET_CLS

\t  Still help after a blank line:
\t    bool "not a prompt"

config EXPERT
\tbool "Configure standard kernel features (expert users)"

config BUG
\tbool "BUG() support" if EXPERT
\tdefault y

config SLOB
\tbool "SLOB allocator" if EXPERT

menuconfig NET
\tbool "Networking support"
\t---help---
\t  The 4.14 spelling of help.
config FROM_GCC
\tdef_bool $(success,true)

config HAVE_PCI
\tdef_bool y

config SHOWN_NUMBER
\tint "A number"
\trange 1 10
\tdefault 4

config BIG_NUMBER_ONLY
\tbool "Only with a big number"
\tdepends on SHOWN_NUMBER >= 8 && !EXPERT

config STACKPROTECTOR
\tbool "Stack protector"
\tdepends on $(cc-option,-fstack-protector)

config LOCALVERSION
\tstring "Local version - append to kernel release"

config PHYSICAL_START
\thex "Physical address where the kernel is loaded"
\tdefault 0x1000000

config ORPHAN
\tbool

config SET_BY_DEFAULT
\tbool
\tdefault y if NET
""",
    'net/Kconfig': """
if NET

menu "QoS and/or fair queueing"

config NET_SCHED
\tbool "QoS and/or fair queueing"
\tselect NET_SCH_FIFO

config NET_SCH_FIFO
\tbool

config NET_CLS
\tbool

config NET_CLS_BASIC
\ttristate "Elementary classification (BASIC)"
\tdepends on NET_SCHED
\tselect NET_CLS

config NET_CLS_U32
\ttristate
\tprompt "Universal 32bit comparisons w/ hashing (U32)"
\tdepends on NET_SCHED
\tselect NET_CLS if NET_SCHED
\timply NET_EMATCH  # a comment

config NET_EMATCH
\tbool

endmenu

menuconfig NETDEVICES
\tbool "Network device support"

config INET
\tbool "TCP/IP networking"

config TUN
\ttristate "Universal TUN/TAP device driver support"
\tdepends on NETDEVICES && \\
\t\t   INET

config TAP
\ttristate "MACVTAP and IPVTAP backend"
\tdepends on NETDEVICES

config VHOST_NET
\ttristate "Host kernel accelerator for virtio net"
\tdepends on TAP

rsource "Kconfig.extra"

endif # NET
""",
    'net/Kconfig.extra': """
config NET_EXTRA
\tbool "Sourced relative to net/"
""",
    'arch/x86/Kconfig': """
config ARCH
\tstring
\toption env="ARCH"

config X86
\tdef_bool y
\tselect NET_SCHED if NET

config 64BIT
\tbool "64-bit kernel" if ARCH = "x86"
\tdefault ARCH != "i386"

choice
\tprompt "Processor family"
\tdefault GENERIC_CPU

config MCORE2
\tbool "Core 2/newer Xeon"

config GENERIC_CPU
\tbool "Generic-x86-64"

endchoice
""",
    'arch/arm/Kconfig': """
config ARM
\tdef_bool y

config NET_CLS
\tbool "Only arm would give it a prompt"
""",
    'Documentation/kbuild/Kconfig.example': """
config NOT_SOURCED
\tbool "An example in the documentation"
""",
}


@pytest.fixture
def ktree(tmp_path):
    for rel, text in KCONFIG_TREE.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip('\n'))
    return str(tmp_path)


def test_kconfig_index_reads_what_kconfig_sources(ktree):
    index = kc.kconfig_index(ktree, 'x86_64')
    assert index.arch == 'x86' and index.warnings == []
    assert set(index) == {
        'MODULES', 'EXPERT', 'BUG', 'SLOB', 'NET', 'FROM_GCC', 'HAVE_PCI', 'SHOWN_NUMBER',
        'BIG_NUMBER_ONLY', 'STACKPROTECTOR', 'LOCALVERSION', 'PHYSICAL_START', 'ORPHAN',
        'SET_BY_DEFAULT', 'NET_SCHED', 'NET_SCH_FIFO', 'NET_CLS', 'NET_CLS_BASIC',
        'NET_CLS_U32', 'NET_EMATCH', 'NETDEVICES', 'INET', 'TUN', 'TAP', 'VHOST_NET', 'NET_EXTRA',
        'ARCH', 'X86', '64BIT', 'MCORE2', 'GENERIC_CPU'}
    assert 'CONFIG_NET_CLS' in index and 'ARM' not in index and 'IN_HELP' not in index
    assert kc.kconfig_symbols(ktree, 'x86_64') == set(index)


def test_kconfig_index_types_prompts_and_selects(ktree):
    index = kc.kconfig_index(ktree, 'x86_64')
    cls = index.get('NET_CLS')
    assert (cls.type, cls.has_prompt, cls.defaults) == ('bool', False, 0)
    assert cls.selected_by == [('NET_CLS_BASIC', ''), ('NET_CLS_U32', 'NET_SCHED')]
    assert index.get('NET_EMATCH').implied_by == [('NET_CLS_U32', '')]
    assert index.get('NET_SCHED').selected_by == [('X86', 'NET')]
    u32 = index.get('CONFIG_NET_CLS_U32')
    assert (u32.type, u32.has_prompt) == ('tristate', True)     # bool/tristate + separate prompt
    assert u32.definitions[0]['depends'] == ['NET', 'NET_SCHED']   # if NET + its own
    assert index.get('NET').has_prompt and index.get('NETDEVICES').has_prompt   # menuconfig
    pci = index.get('HAVE_PCI')
    assert (pci.type, pci.has_prompt, pci.defaults) == ('bool', False, 1)       # def_bool
    assert index.get('BUG').definitions[0]['prompts'] == ['EXPERT']
    assert index.get('TUN').definitions[0]['depends'] == ['NET', 'NETDEVICES && INET']
    assert index.get('MODULES').selected_by == []       # the help text's "select" is text
    assert [index.get(n).type for n in ('SHOWN_NUMBER', 'PHYSICAL_START', 'LOCALVERSION')] == [
        'int', 'hex', 'string']
    assert index.get('GENERIC_CPU').definitions[0]['choice'] is not None
    assert index.get('EXPERT').definitions[0]['choice'] is None
    assert index.get('ARCH').env == 'ARCH' and index.get('X86').env is None


def test_kconfig_index_follows_the_architecture(ktree):
    arm = kc.kconfig_index(ktree, 'arm')
    assert 'ARM' in arm and 'X86' not in arm and 'GENERIC_CPU' not in arm
    assert arm.get('NET_CLS').has_prompt         # arm's own definition has a prompt
    assert arm.get('NET_SCHED').selected_by == []


@pytest.mark.parametrize('arch,srcarch', [
    ('x86_64', 'x86'), ('i386', 'x86'), ('x86', 'x86'), ('arm64', 'arm64'), ('sparc64', 'sparc'),
])
def test_kconfig_arch(arch, srcarch):
    assert kc.kconfig_arch(arch) == srcarch


def test_make_arch_defaults_to_this_machine():
    assert kc.make_arch('x86_64') == 'x86_64'
    machine = os.uname().machine
    subarch = {'x86_64': 'x86', 'aarch64': 'arm64'}.get(machine, machine)
    assert kc.make_arch() == subarch and kc.kconfig_arch() == kc.kconfig_arch(subarch)


def test_kconfig_index_names_what_it_cannot_read(tmp_path):
    (tmp_path / 'Kconfig').write_text('source "arch/$(NO_SUCH_VARIABLE)/Kconfig"\n'
                                      'source "missing/Kconfig"\nconfig A\n\tbool "a"\n')
    index = kc.kconfig_index(str(tmp_path), 'x86')
    assert set(index) == {'A'}
    assert len(index.warnings) == 2
    assert 'cannot expand source "arch/$(NO_SUCH_VARIABLE)/Kconfig"' in index.warnings[0]
    assert 'cannot read %s' % (tmp_path / 'missing' / 'Kconfig') in index.warnings[1]


# A final .config as olddefconfig would leave it for the tree above (x86).
FINAL = kc.parse_config("""
CONFIG_MODULES=y
# CONFIG_EXPERT is not set
CONFIG_BUG=y
CONFIG_NET=y
CONFIG_HAVE_PCI=y
CONFIG_SHOWN_NUMBER=4
CONFIG_LOCALVERSION=""
CONFIG_PHYSICAL_START=0x1000000
CONFIG_SET_BY_DEFAULT=y
CONFIG_NET_SCHED=y
CONFIG_NET_SCH_FIFO=y
# CONFIG_NET_CLS_BASIC is not set
CONFIG_NETDEVICES=y
# CONFIG_INET is not set
CONFIG_TAP=m
CONFIG_VHOST_NET=m
CONFIG_X86=y
# CONFIG_MCORE2 is not set
CONFIG_GENERIC_CPU=y
""")


@pytest.fixture
def index(ktree):
    return kc.kconfig_index(ktree, 'x86')


def explain(index, final=None, **wanted):
    final = FINAL if final is None else final
    requested = kc.normalize_dict(wanted)
    unmet = kc.verify(requested, final)
    assert [u['symbol'] for u in unmet] == list(requested)
    return kc.describe_unmet(unmet, index, final)


def test_promptless_symbol_names_what_selects_it(index):
    assert explain(index, NET_CLS='y') == [
        'CONFIG_NET_CLS: wanted y, got absent (no prompt: it is set only when selected, by '
        'NET_CLS_BASIC, NET_CLS_U32 if NET_SCHED; ask for one of those)']
    assert explain(index, NET_EMATCH='y', ORPHAN='y') == [
        'CONFIG_NET_EMATCH: wanted y, got absent (no prompt: it is set only when implied, by '
        'NET_CLS_U32; ask for one of those)',
        'CONFIG_ORPHAN: wanted y, got absent (no prompt and nothing selects it: no '
        'configuration can set it)']
    no_net = {'CONFIG_NET': 'n'}
    assert explain(index, no_net, SET_BY_DEFAULT='y') == [
        'CONFIG_SET_BY_DEFAULT: wanted y, got absent (no prompt and nothing selects it: its '
        'value comes from its default alone, whose conditions are not met here)']


def test_unknown_symbol(index):
    assert explain(index, NO_SUCH_SYMBOL='y') == [
        'CONFIG_NO_SUCH_SYMBOL: wanted y, got absent (unknown to this kernel: no Kconfig '
        'defines it)']
    assert explain(index, ARM='y')[0].endswith('(unknown to this kernel: no Kconfig defines it)')


def test_unmet_dependency_names_the_false_one(index, ktree):
    assert explain(index, TUN='y', BIG_NUMBER_ONLY='y', STACKPROTECTOR='y') == [
        'CONFIG_TUN: wanted y, got absent (dropped by olddefconfig: a dependency is not met: '
        'NETDEVICES && INET is n here)',
        'CONFIG_BIG_NUMBER_ONLY: wanted y, got absent (dropped by olddefconfig: a dependency '
        'is not met: SHOWN_NUMBER >= 8 && !EXPERT is n here)',
        'CONFIG_STACKPROTECTOR: wanted y, got absent (dropped by olddefconfig: a dependency is '
        'not met; it depends on $(cc-option,-fstack-protector))']
    assert explain(index, SLOB='y') == [
        'CONFIG_SLOB: wanted y, got absent (dropped by olddefconfig: its prompt is hidden: its '
        'condition EXPERT is n here)']
    assert explain(index, VHOST_NET='y') == [
        'CONFIG_VHOST_NET: wanted y, got m (limited to m by a dependency: TAP is m here)']
    # 4.14's 64BIT: prompt 'if ARCH = "x86"', ARCH from the environment (make's ARCH)
    no64 = dict(FINAL, CONFIG_64BIT='n')
    assert explain(index, no64, **{'64BIT': 'y'}) == [
        'CONFIG_64BIT: wanted y, got n (dropped by olddefconfig: a dependency is not met)']
    assert explain(kc.kconfig_index(ktree, 'x86_64'), no64, **{'64BIT': 'y'}) == [
        'CONFIG_64BIT: wanted y, got n (dropped by olddefconfig: its prompt is hidden: its '
        'condition ARCH = "x86" is n here)']
    assert explain(index, MCORE2='y') == [
        'CONFIG_MCORE2: wanted y, got n (dropped by olddefconfig: GENERIC_CPU, another member '
        'of its choice, is y; ask for that one as n)']


def test_values_that_do_not_fit_the_type(index):
    assert explain(index, NET_CLS_BASIC='yy', NETDEVICES='m', SHOWN_NUMBER='"four"',
                   PHYSICAL_START='"zz"', LOCALVERSION='y') == [
        'CONFIG_NET_CLS_BASIC: wanted "yy", got n (the value "yy" is not y, m or n: '
        'CONFIG_NET_CLS_BASIC is a tristate)',
        'CONFIG_NETDEVICES: wanted m, got y (CONFIG_NETDEVICES is a bool: it cannot be m; ask '
        'for y or n)',
        'CONFIG_SHOWN_NUMBER: wanted "four", got 4 (the value "four" is not a decimal number: '
        'CONFIG_SHOWN_NUMBER is an int)',
        'CONFIG_PHYSICAL_START: wanted "zz", got 0x1000000 (the value "zz" is not a hexadecimal '
        'number such as 0x1000: CONFIG_PHYSICAL_START is a hex)',
        'CONFIG_LOCALVERSION: wanted y, got "" (CONFIG_LOCALVERSION is a string: give the value '
        'in double quotes)']


def test_module_without_modules(index):
    final = dict(FINAL, CONFIG_MODULES='n', CONFIG_TAP='y', CONFIG_VHOST_NET='y')
    assert explain(index, final, NET_CLS_BASIC='m', TAP='m') == [
        'CONFIG_NET_CLS_BASIC: wanted m, got n (m needs loadable modules and CONFIG_MODULES is '
        'not y in this config; ask for y, or for MODULES: y as well)',
        'CONFIG_TAP: wanted m, got y (m needs loadable modules and CONFIG_MODULES is not y in '
        'this config; ask for y, or for MODULES: y as well)']


def test_wanted_off_but_forced_on(index):
    assert explain(index, NET_SCH_FIFO='n', BUG='n', SET_BY_DEFAULT='n') == [
        'CONFIG_NET_SCH_FIFO: wanted n, got y (selected by NET_SCHED, on here; turn those off '
        'too)',
        'CONFIG_BUG: wanted n, got y (its prompt is hidden: its condition EXPERT is n here, so '
        'its default sets it)',
        'CONFIG_SET_BY_DEFAULT: wanted n, got y (no prompt: its default sets it)']


def test_describe_without_index_or_config(index):
    unmet = kc.verify(kc.normalize_dict({'TUN': 'y', 'NOPE': 'y'}), FINAL)
    assert kc.describe_unmet(unmet) == ['CONFIG_TUN: wanted y, got absent',
                                        'CONFIG_NOPE: wanted y, got absent']
    assert kc.describe_unmet(unmet, {'TUN'}) == [
        'CONFIG_TUN: wanted y, got absent (dropped by olddefconfig: a dependency is not met)',
        'CONFIG_NOPE: wanted y, got absent (unknown to this kernel: no Kconfig defines it)']
    assert kc.describe_unmet(unmet, index)[0] == (
        'CONFIG_TUN: wanted y, got absent (dropped by olddefconfig: a dependency is not met; it '
        'depends on NET && NETDEVICES && INET)')


def test_many_selectors_are_shortened(tmp_path):
    text = 'config HIDDEN\n\tbool\n' + ''.join(
        'config S%d\n\tbool "s%d"\n\tselect HIDDEN\n' % (i, i) for i in range(11))
    (tmp_path / 'Kconfig').write_text(text)
    index = kc.kconfig_index(str(tmp_path), 'x86')
    line = kc.describe_unmet([{'symbol': 'CONFIG_HIDDEN', 'wanted': 'y', 'got': None}], index,
                             {})[0]
    assert 'by S0, S1, S2, S3, S4, S5, S6, S7, and 3 more; ask for one of those' in line


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


def test_values_that_cannot_fit_are_found_before_make(index):
    requested = kc.normalize_dict({'NET_CLS_BASIC': 'yy', 'NETDEVICES': 'm', 'SHOWN_NUMBER': 'four',
                                   'PHYSICAL_START': '0xZZ', 'LOCALVERSION': 5, 'TUN': 'm',
                                   'INET': True, 'NO_SUCH_SYMBOL': 'yy', 'NET_SCHED': 'n'})
    assert kc.check_values(requested, index) == [
        "CONFIG_NET_CLS_BASIC: 'yy' is not a value of CONFIG_NET_CLS_BASIC, a tristate: give y, "
        "m or n",
        'CONFIG_NETDEVICES: CONFIG_NETDEVICES is a bool, which cannot be m: give y or n',
        "CONFIG_SHOWN_NUMBER: 'four' is not a value of CONFIG_SHOWN_NUMBER, an int: give a "
        "decimal number, e.g. 100",
        "CONFIG_PHYSICAL_START: '0xZZ' is not a value of CONFIG_PHYSICAL_START, a hex: give a "
        "hexadecimal number, e.g. 0x1000",
        'CONFIG_LOCALVERSION: 5 reads as a number, and CONFIG_LOCALVERSION is a string: give it '
        'in double quotes, e.g. \'"-zd"\'']
    # what fits, n (not set) and symbols this tree does not define are left to the verification
    assert kc.check_values(kc.normalize_dict({'TUN': 'm', 'LOCALVERSION': '-zd', 'NETDEVICES': 'n',
                                              'SHOWN_NUMBER': 8, 'PHYSICAL_START': '0x2000',
                                              'NO_SUCH_SYMBOL': 'yy'}), index) == []
