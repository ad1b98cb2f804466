# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kernel_build's decisions, without running anything: the compiler, linker and host compiler a
build uses, the identity of the source, the two fingerprints (of the inputs before configuring,
and of the configured build), whether a previous build is still good, the compat make variables,
the make targets and the reproducer. The module runs commands; these functions decide.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shlex

from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_toolchain as kt

METADATA = 'metadata.json'
LOG = 'build.log'
STATE_DIR = '.zerodrop'
DEB_TARGETS = ('bindeb-pkg', 'deb-pkg')
# In-tree build products left out of the tree hash of a source tree that is not a git checkout.
GENERATED_SUFFIXES = ('.o', '.ko', '.cmd', '.a', '.mod', '.mod.c', '.order', '.symvers', '.tmp',
                      '.d', '.s', '.lst', '.so', '.dtb', '.builtin', '.modinfo', '.gz', '.xz',
                      '.lzma', '.lz4', '.zst', '.bin', '.elf', '.map', '.log')
GENERATED_DIRS = ('generated', 'config', '.tmp_versions', STATE_DIR, 'debian')


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_json(doc):
    return sha256_bytes(json.dumps(doc, sort_keys=True).encode('utf-8'))


def programs(user_vars, ccache):
    """(cc, ld, hostcc) for these make variables; ccache puts 'ccache ' before CC.

    ``user_vars`` gains CC when ccache wraps a compiler the user did not name with ccache.
    """
    cc = user_vars.get('CC')
    cross = user_vars.get('CROSS_COMPILE', '')
    llvm = user_vars.get('LLVM', '') not in ('', '0')
    if not cc:
        cc = 'clang' if llvm else cross + 'gcc'
    if ccache and kt.compiler_words(cc)[0] != 'ccache':
        cc = 'ccache ' + cc
        user_vars['CC'] = cc
    ld = user_vars.get('LD') or ('ld.lld' if llvm else cross + 'ld')
    hostcc = user_vars.get('HOSTCC') or ('clang' if llvm else 'gcc')
    return cc, ld, hostcc


def given_identity(source_id):
    return {'kind': 'given', 'source_id': source_id, 'commit': None, 'describe': None,
            'dirty': None}


def git_identity(commit, describe, status, diff=None):
    """The source identity from ``git rev-parse HEAD``, ``describe`` and ``status --porcelain``
    outputs; a dirty tree adds the hash of ``git diff HEAD --binary`` (``diff``)."""
    ident = {'kind': 'git', 'commit': commit.strip(), 'describe': describe.strip(),
             'dirty': bool(status.strip())}
    if ident['dirty']:
        ident['diff_sha256'] = sha256_bytes((diff or '').encode('utf-8', 'replace'))
    return ident


def tree_identity(tree_sha256):
    return {'kind': 'tree', 'tree_sha256': tree_sha256, 'commit': None, 'describe': None,
            'dirty': None}


def _tree_file_skipped(rel_top, name, out_of_tree):
    if rel_top == '.' and (name in (METADATA, LOG, STATE_DIR, '.git') or name.startswith('.config')
                           or name.startswith('vmlinux') or name.startswith('.')
                           or name in ('System.map', 'Module.symvers')
                           or name.startswith('modules.')):
        return True
    return not out_of_tree and (name.endswith(GENERATED_SUFFIXES) or name.startswith('.'))


def tree_hash(src, obj):
    """Hash of every source file's path, size and mtime (stat only, no reads) under ``src``,
    leaving out the build directory ``obj`` and, in an in-tree build, the build products."""
    out_of_tree = obj != src
    h = hashlib.sha256()
    skip_top = {'.git', METADATA, LOG, STATE_DIR}
    for top, dirs, files in os.walk(src):
        if top == obj and out_of_tree:
            dirs[:] = []
            continue
        rel_top = os.path.relpath(top, src)
        dirs.sort()
        if rel_top == '.':
            dirs[:] = [d for d in dirs if d not in skip_top]
        if not out_of_tree:
            dirs[:] = [d for d in dirs if d not in GENERATED_DIRS]
        for name in sorted(files):
            if _tree_file_skipped(rel_top, name, out_of_tree):
                continue
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            h.update(('%s\0%d\0%d\n' % (os.path.join(rel_top, name), st.st_size,
                                        st.st_mtime_ns)).encode('utf-8', 'replace'))
    return h.hexdigest()


def inputs_fingerprint(source, base_kind, base, base_data, fragment_hashes, inline, optional,
                       on_unmet, toolchain, make_vars, targets, compat):
    """Everything known before configuring: equal fingerprints mean nothing to do when the
    previous build's .config and artifacts are still there."""
    return sha256_json({
        'source': source, 'base_kind': base_kind, 'base': base,
        'base_sha256': sha256_bytes(base_data), 'fragments': fragment_hashes,
        'config': inline, 'config_optional': optional,
        'on_unmet': on_unmet, 'toolchain': toolchain, 'make_vars': make_vars,
        'targets': targets, 'compat': compat,
    })


def build_fingerprint(source, config_sha256, toolchain, make_vars, targets):
    """The configured build: equal fingerprints mean the same make run."""
    return sha256_json({'source': source, 'config_sha256': config_sha256,
                        'toolchain': toolchain, 'make_vars': make_vars, 'targets': targets})


def still_built(meta, force, artifacts_present, config_sha256):
    """A previous build (its metadata ``meta``) that nothing but its fingerprint could change:
    not forced, its artifacts there and the .config (``config_sha256``, None when there is none)
    the one it built."""
    return bool(meta and not force and artifacts_present and config_sha256 is not None
                and config_sha256 == meta.get('config_sha256'))


def compat_plan(compat_mode, version, config, cc_kind, cc_version, ld_version, user_vars):
    """(compat entries, make variables): the compat variables this kernel needs on this
    toolchain (compat: auto), each marked overridden when the user set it; the user's
    variables win."""
    compat = []
    if compat_mode == 'auto':
        for name, value, reason in kt.compat_vars(version, config, cc_kind, cc_version,
                                                  ld_version):
            compat.append({'name': name, 'value': value, 'reason': reason,
                           'overridden': name in user_vars})
    variables = dict((c['name'], c['value']) for c in compat)
    variables.update(user_vars)
    return compat, variables


def make_targets(requested, image_name, modules_on):
    """(targets, skipped): 'image' becomes the arch's image file name (``make image_name``);
    modules and modules_install are skipped without CONFIG_MODULES."""
    targets, skipped = [], []
    for target in requested:
        if target in ('modules', 'modules_install') and not modules_on:
            skipped.append(target)
            continue
        targets.append(os.path.basename(image_name) if target == 'image' else target)
    return targets, skipped


def reproducer(src, env, commands):
    """Shell lines that redo ``commands`` (the module's changes) by hand."""
    lines = ['cd %s' % shlex.quote(src)]
    env_prefix = ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    for cmd in commands:
        if cmd and cmd[0] == 'cp' and len(cmd) == 3:
            lines.append(' '.join(shlex.quote(a) for a in cmd))
        elif cmd and cmd[0] != 'mkdir':
            lines.append(env_prefix + ' ' + ' '.join(shlex.quote(a) for a in cmd))
    return lines
