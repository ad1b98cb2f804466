# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel toolchain: the tree's version, the tools a build needs (with their Debian packages),
compiler/binutils versions, and the make variables old kernels need on new toolchains.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

# Program -> Debian package that provides it.
DEBIAN_PACKAGES = {
    'make': 'make',
    'gcc': 'gcc (build-essential)',
    'cc': 'gcc (build-essential)',
    'ld': 'binutils (build-essential)',
    'bc': 'bc',
    'flex': 'flex',
    'bison': 'bison',
    'perl': 'perl',
    'ccache': 'ccache',
    'clang': 'clang',
    'dpkg-buildpackage': 'dpkg-dev',
    'fakeroot': 'fakeroot',
    'depmod': 'kmod',
    'pahole': 'dwarves',
    'cpio': 'cpio',
    'rsync': 'rsync',
}

_VERSION_LINE_RE = re.compile(r'^\s*(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(.*?)\s*$')
_NUM_RE = re.compile(r'(\d+)\.(\d+)(?:\.(\d+))?')


def tree_version(srctree):
    """(major, minor, sublevel, extraversion) from the top Makefile, or None if not a kernel tree."""
    path = os.path.join(srctree, 'Makefile')
    try:
        with open(path, 'r', errors='replace') as f:
            head = [next(f, '') for dummy in range(12)]
    except (IOError, OSError):
        return None
    fields = {}
    for line in head:
        m = _VERSION_LINE_RE.match(line)
        if m:
            fields[m.group(1)] = m.group(2)
    try:
        return (int(fields['VERSION']), int(fields['PATCHLEVEL']),
                int(fields.get('SUBLEVEL') or 0), fields.get('EXTRAVERSION', ''))
    except (KeyError, ValueError):
        return None


def is_kernel_tree(srctree):
    return (tree_version(srctree) is not None
            and os.path.isfile(os.path.join(srctree, 'Kconfig'))
            and os.path.isfile(os.path.join(srctree, 'scripts', 'kconfig', 'merge_config.sh')))


def parse_version(text):
    """First 'X.Y[.Z]' in a tool's --version text -> (X, Y, Z); None if there is none."""
    first = (text or '').strip().splitlines()[:1]
    m = _NUM_RE.search(first[0]) if first else None
    if not m:
        m = _NUM_RE.search(text or '')
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def compiler_words(cc):
    """'ccache gcc-12' -> ['ccache', 'gcc-12']; the compiler is the last word."""
    return (cc or '').split()


def compiler_kind(version_text):
    text = (version_text or '').lower()
    if 'clang' in text:
        return 'clang'
    if 'gcc' in text or 'free software foundation' in text:
        return 'gcc'
    return 'unknown'


def needs_flex_bison(version):
    """Kconfig's lexer/parser stopped being shipped pre-generated in 4.16."""
    return version is not None and version[:2] >= (4, 16)


def _on(config, *symbols):
    return any(config.get('CONFIG_' + s) in ('y', 'm') for s in symbols)


def objtool_runs(version, config):
    """Whether the build compiles and runs objtool (x86)."""
    if version[:2] >= (5, 19):
        return _on(config, 'OBJTOOL')
    return _on(config, 'STACK_VALIDATION', 'UNWINDER_ORC', 'RETPOLINE')


def compat_vars(version, config, cc_kind, cc_version, binutils_version):
    """Make variables an old kernel needs to build with a new gcc/binutils, each with its reason.

    Returns an ordered list of (name, value, reason). Each applies only when the feature that
    triggers the failure is on in the final config and the toolchain is new enough to hit it.
    """
    out = []
    if not version:
        return out
    kv = version[:2]
    gcc = cc_version if cc_kind == 'gcc' and cc_version else None
    bu = binutils_version
    if objtool_runs(version, config) and gcc and gcc[0] >= 12 and kv < (5, 17):
        out.append(('WERROR', '0', 'gcc >= 12 -Werror=use-after-free in tools/lib/subcmd '
                    'while building objtool'))
    if _on(config, 'STACK_VALIDATION', 'UNWINDER_ORC', 'RETPOLINE') and bu and bu[:2] >= (2, 36) \
            and kv < (5, 11) and version[0] >= 4:
        out.append(('OBJECT_FILES_NON_STANDARD_thunk_64.o', 'y',
                    'binutils >= 2.36 drops section symbols: "thunk_64.o: objtool: missing '
                    'symbol table"'))
    if _on(config, 'RANDOMIZE_BASE') and gcc and gcc[0] >= 10 and kv < (5, 9):
        out.append(('CFLAGS_pagetable.o', '-fcommon',
                    "gcc >= 10 defaults to -fno-common: multiple definition of '__force_order' "
                    'in arch/x86/boot/compressed'))
    if _on(config, 'FUNCTION_TRACER') and bu and bu[:2] >= (2, 36) and kv < (5, 11):
        out.append(('CFLAGS_REMOVE_elfcore.o', '-pg',
                    'binutils >= 2.36: recordmcount "Cannot find symbol for section 1: .text" '
                    'in kernel/elfcore.o'))
    return out


def config_requirements(config, targets):
    """Extra tools/headers the final config or the targets need: [(what, kind, package)].

    kind is 'program' (looked up on PATH) or 'header' (must compile with the host compiler).
    """
    reqs = []
    if _on(config, 'STACK_VALIDATION', 'UNWINDER_ORC', 'OBJTOOL', 'RETPOLINE', 'DEBUG_INFO_BTF'):
        reqs.append(('gelf.h', 'header', 'libelf-dev'))
    if _on(config, 'MODULE_SIG', 'SYSTEM_TRUSTED_KEYRING'):
        reqs.append(('openssl/opensslv.h', 'header', 'libssl-dev'))
    if _on(config, 'DEBUG_INFO_BTF'):
        reqs.append(('pahole', 'program', 'dwarves'))
    if _on(config, 'IKHEADERS'):
        reqs.append(('cpio', 'program', 'cpio'))
    if any(t in ('bindeb-pkg', 'deb-pkg') for t in targets):
        reqs.append(('dpkg-buildpackage', 'program', 'dpkg-dev'))
        if os.geteuid() != 0:
            reqs.append(('fakeroot', 'program', 'fakeroot'))
    if _on(config, 'MODULES') and any(t in ('modules_install', 'bindeb-pkg', 'deb-pkg')
                                      for t in targets):
        reqs.append(('depmod', 'program', 'kmod'))
    return reqs


def parse_ccache_stats(text):
    """``ccache --print-stats`` (tab-separated counters) -> {name: int}."""
    stats = {}
    for line in (text or '').splitlines():
        parts = line.split('\t')
        if len(parts) == 2 and parts[1].strip().isdigit():
            stats[parts[0]] = int(parts[1])
    return stats


def ccache_delta(before, after):
    """Hits and misses between two parsed ``ccache --print-stats`` outputs."""
    def delta(*keys):
        return sum(after.get(k, 0) - before.get(k, 0) for k in keys)
    return {'hits': delta('direct_cache_hit', 'preprocessed_cache_hit'),
            'misses': delta('cache_miss')}
