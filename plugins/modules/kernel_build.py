#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: kernel_build
short_description: Configure, verify and build a Linux kernel tree, idempotently
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Configures a kernel tree from a base (a C(make) config target such as C(defconfig) or
    C(tinyconfig), a given C(.config) file, or the running kernel's config) plus fragments
    (fragment files and inline symbols), merged with the tree's own
    C(scripts/kconfig/merge_config.sh -m) followed by C(make olddefconfig).
  - Then verifies that every requested symbol has the requested value in the final C(.config);
    symbols dropped by unmet dependencies or unknown to the kernel fail the task (or warn, see
    O(on_unmet)) with one line per symbol, wanted and got.
  - Builds the requested targets. Old kernels on new toolchains (for example 4.14 with gcc >= 10
    and binutils >= 2.36) get the make variables they need, chosen from the final config, the
    kernel version and the toolchain versions (see O(compat)).
  - Idempotent by fingerprint (source commit or tree hash, final C(.config) hash, toolchain
    versions, make variables, targets). With an unchanged fingerprint and the artifacts present
    the task does nothing and reports no change; any change rebuilds incrementally.
  - Writes C(metadata.json) (and the build log C(build.log)) into the build directory.
  - With O(targets=[]) it only configures and verifies, a profile check that takes seconds.
    Base, fragments and C(make olddefconfig) in the build directory, then the verification; no
    C(metadata.json), nothing built, C(changed) when the C(.config) changed.
  - Every input is checked before any make, and a failure there changes nothing. Checked are the
    source tree, a build directory (and C(ccache_dir)) that can be written or created, the base and
    fragment files, make variables and targets (no leading C(-)), and each requested symbol's
    value against its type in the tree's Kconfig files (y or n for a bool, y, m or n for a
    tristate, a decimal or hexadecimal number, a string in double quotes).
  - A failure after make ran puts the previous C(.config) back; what make built in the build
    directory stays (C(changed) is then true and RV(commands) lists what ran).
  - A failed verification explains each symbol from the tree's Kconfig files, read once per
    task. Unknown to this kernel; no prompt, so set only when selected (with the symbols that
    select it); a value that does not fit its type (not y/m/n for a bool or tristate); m
    without C(CONFIG_MODULES); or the dependency that is n in the final config.
options:
  source:
    description: Path of the kernel source tree (the directory with the top-level C(Makefile)).
    type: path
    required: true
  build_dir:
    description:
      - Out-of-tree build directory (C(make O=)); created if missing. Unset builds in the tree.
      - Recommended, and needed for a cheap fingerprint of a source tree that is not a git
        checkout.
    type: path
  config_base:
    description:
      - Where the configuration starts. A C(make) config target (C(defconfig), C(tinyconfig),
        C(allnoconfig), C(x86_64_defconfig), C(olddefconfig) to start from the C(.config)
        already in the build directory, ...), or C(running) for the running kernel's config
        (C(/boot/config-$(uname -r)), else C(/proc/config.gz)).
      - Defaults to C(defconfig) when O(config_file) is not given.
    type: str
  config_file:
    description: A complete C(.config) to start from (for example the zD authors' config).
    type: path
  config_fragments:
    description: Fragment files merged on top of the base, in order (later ones win).
    type: list
    elements: path
    default: []
  config:
    description:
      - Inline symbols merged last, a dict from symbol to value. Keys with or without the C(CONFIG_)
        prefix; values C(y), C(m), C(n) (or YAML booleans), numbers, or strings (quoted for
        you).
      - Every symbol of O(config) and of O(config_fragments) is verified in the final config.
    type: dict
    default: {}
  config_optional:
    description:
      - Like O(config) but symbols that this kernel's Kconfig does not define are left out
        (returned in RV(skipped_symbols)); known ones are merged and verified. Lets one fragment
        serve several kernel versions (for example C(VIRTIO_MENU) exists in 6.1, not in 4.14).
    type: dict
    default: {}
  on_unmet:
    description: What to do when a requested symbol does not have its value in the final config.
      C(fail) restores the previous C(.config) and fails; C(warn) warns and builds anyway.
    type: str
    choices: [fail, warn]
    default: fail
  targets:
    description:
      - Make targets, in order. C(image) stands for the architecture's boot image (C(bzImage)
        on x86). C(modules) is skipped when the final config has C(CONFIG_MODULES) off.
      - C(bindeb-pkg) leaves C(.deb) packages in the parent directory of the build directory.
      - An empty list configures and verifies only (see the description); RV(config_path),
        RV(config_sha256), RV(unmet) and RV(skipped_symbols) are then the result.
    type: list
    elements: str
    default: [image, modules]
  jobs:
    description: Parallel make jobs (C(make -j)). Defaults to the number of CPUs. Not part of the
      fingerprint.
    type: int
  make_vars:
    description:
      - Variables on the make command line (C(CC), C(HOSTCC), C(ARCH), C(CROSS_COMPILE),
        C(LOCALVERSION), C(KDEB_PKGVERSION), C(KCFLAGS), C(WERROR), per-object flags such as
        C(CFLAGS_foo.o), ...). They override the compatibility variables of O(compat).
      - Keep them identical between builds of one tree; kbuild rebuilds objects whose command
        line changed.
    type: dict
    default: {}
  ccache:
    description: Compile through ccache (C(CC="ccache <compiler>")). Switching it on or off
      rebuilds everything once, since the compiler command changes.
    type: bool
    default: false
  ccache_dir:
    description: ccache's cache directory (C(CCACHE_DIR)); ccache's own default when unset.
    type: path
  compat:
    description:
      - C(auto) adds the make variables an old kernel needs on a new toolchain, each only when
        its trigger is in the final config (C(WERROR=0) when objtool is built with gcc >= 12,
        C(OBJECT_FILES_NON_STANDARD_thunk_64.o=y) with binutils >= 2.36,
        C(CFLAGS_pagetable.o=-fcommon) with C(RANDOMIZE_BASE) and gcc >= 10,
        C(CFLAGS_REMOVE_elfcore.o=-pg) with C(FUNCTION_TRACER) and binutils >= 2.36).
        They are returned and recorded in the metadata. C(off) adds none.
    type: str
    choices: [auto, 'off']
    default: auto
  force:
    description: Run make even when the fingerprint is unchanged.
    type: bool
    default: false
  source_id:
    description:
      - A string that identifies the content of O(source), such as the checksum of the archive
        it was unpacked from. It replaces the source part of the fingerprint, so the tree is not
        inspected at all.
      - Unset, a git checkout is identified by its commit (plus a hash of C(git diff HEAD) when
        dirty) and any other tree by a hash of every file's path, size and mtime (a stat of each
        file, a few seconds for a full kernel tree).
    type: str
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - Compares the inputs with those recorded by the last build and reports whether a build
        would run; nothing is configured or built.
      - With O(targets=[]) and O(build_dir) set, configures a temporary build directory
        (removed afterwards), so the verification runs for real and C(changed) says whether
        the C(.config) in O(build_dir) would change; O(build_dir) is not touched.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode).
    support: full
    details:
      - Before and after are the recorded and the new fingerprints (source, config hash,
        kernel release).
      - With O(targets=[]), the old and new C(.config) assignments.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - The build runs in the foreground of the task; run long builds with C(async) and C(poll).
    The log (RV(build_log)) grows while make runs.
  - Needs make, a C compiler, binutils, bc; flex and bison from 4.16 on; libelf-dev when objtool
    runs; dpkg-dev for C(bindeb-pkg). A missing one fails the task naming its Debian package.
seealso:
  - name: Kernel build system
    description: kbuild documentation of make variables and targets.
    link: https://docs.kernel.org/kbuild/kbuild.html
'''

EXAMPLES = r'''
- name: Build the zD vm-pfifo kernel with the authors' config and what the experiment needs
  zerodrop.testbed.kernel_build:
    source: /usr/src/zd/linux-4.14.67
    build_dir: /var/cache/zerodrop/kernel/build/vm-pfifo
    config_file: /usr/src/zd/zD-configuration/kernel-config/.config
    config:
      TCP_CONG_DCTCP: y
      NET_SCH_RED: y
      LOCALVERSION: -zd-vm-pfifo
    targets: [bindeb-pkg]
    make_vars:
      KDEB_PKGVERSION: 1zd
    ccache: true
    ccache_dir: /var/cache/zerodrop/ccache
  async: 7200
  poll: 30

- name: A tiny 6.1 kernel for QEMU direct boot
  zerodrop.testbed.kernel_build:
    source: /srv/linux-6.1
    build_dir: /srv/build/tiny
    config_base: tinyconfig
    config:
      64BIT: y
      SERIAL_8250_CONSOLE: y
      TCP_CONG_DCTCP: y
    targets: [image]
  register: kernel

- name: Show the image
  ansible.builtin.debug:
    msg: "{{ kernel.artifacts.image }} ({{ kernel.kernelrelease }})"

- name: Check that a profile's symbols survive olddefconfig, without building
  zerodrop.testbed.kernel_build:
    source: /usr/src/zd/linux-4.14.67
    build_dir: /var/cache/zerodrop/kernel/build/check-vm
    config_base: tinyconfig
    config:
      64BIT: y
      NET_SCHED: y
      NET_CLS_U32: y
    targets: []
  register: checked
'''

RETURN = r'''
kernelrelease:
  description: C(make kernelrelease) of the build; null with O(targets=[]).
  returned: success
  type: str
  sample: 6.1.192
artifacts:
  description: Paths of what the build produced.
  returned: success
  type: dict
  contains:
    image:
      description: Boot image, if an image target was built.
      type: str
      sample: /srv/build/tiny/arch/x86/boot/bzImage
    vmlinux:
      description: Uncompressed kernel with symbols.
      type: str
    system_map:
      description: C(System.map).
      type: str
    config:
      description: The final C(.config) (the only artifact with O(targets=[])).
      type: str
    modules:
      description: Built modules (C(.ko) paths) in C(modules.order) order.
      type: list
      elements: str
    debs:
      description: Packages made by C(bindeb-pkg)/C(deb-pkg).
      type: list
      elements: str
metadata:
  description: The content of RV(metadata_file).
  returned: success, when O(targets) is not empty
  type: dict
metadata_file:
  description: Path of C(metadata.json) in the build directory.
  returned: success, when O(targets) is not empty
  type: str
config_path:
  description: Path of the final C(.config) (in check mode with O(targets=[]), the one that
    would be written).
  returned: success
  type: str
  sample: /srv/build/tiny/.config
requested_symbols:
  description: Every symbol that was verified (from O(config), O(config_fragments) and the known
    symbols of O(config_optional)) with its wanted value, in C(.config) spelling.
  returned: success
  type: dict
  sample: {CONFIG_TCP_CONG_DCTCP: y, CONFIG_LOCALVERSION: '"-zd"'}
build_log:
  description: Path of the log of the last make run.
  returned: always
  type: str
config_sha256:
  description: Hash of the final C(.config)'s assignments (order and comments ignored).
  returned: success
  type: str
fingerprint:
  description: Hash of source, config hash, toolchain, make variables and targets.
  returned: success, when O(targets) is not empty
  type: str
unmet:
  description: Requested symbols without their value in the final config (the task fails on
    them unless O(on_unmet=warn); its message says why for each).
  returned: always
  type: list
  elements: dict
  sample: [{symbol: CONFIG_TMPFS, wanted: y, got: null}]
skipped_symbols:
  description: Symbols of O(config_optional) that this kernel does not define.
  returned: success
  type: list
  elements: str
compat_vars:
  description: Compatibility make variables applied (name, value, reason).
  returned: success
  type: list
  elements: dict
make_command:
  description: The build's make command line (argv).
  returned: success
  type: list
  elements: str
reproducer:
  description: Shell lines that configure and build the same kernel by hand.
  returned: success
  type: list
  elements: str
duration:
  description: Seconds the task spent.
  returned: always
  type: float
built:
  description: Whether make ran.
  returned: success
  type: bool
commands:
  description: State-changing commands run (or, in check mode, that would run).
  returned: always
  type: list
  elements: list
'''

import glob
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner, CommandError
from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_config as kc
from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_toolchain as kt
from ansible_collections.zerodrop.testbed.plugins.module_utils import kernel_build_plan as plan
from ansible_collections.zerodrop.testbed.plugins.module_utils.kernel_build_plan import (
    DEB_TARGETS, LOG, METADATA, STATE_DIR)

MAKE_VAR_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.\-]*$')
# No leading '-': make would take the word as an option.
TARGET_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$')
CONFIG_TARGET_RE = re.compile(r'^(?:[A-Za-z0-9_][A-Za-z0-9_.\-]*)?config$')


class BuildError(Exception):
    def __init__(self, msg, **extra):
        super(BuildError, self).__init__(msg)
        self.extra = extra


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def read_bytes(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except (IOError, OSError):
        return None


def writable_dir_problem(field, path):
    """Why ``path`` cannot be (made) a writable directory, or None."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            return "%s: '%s' exists and is not a directory" % (field, path)
        if not os.access(path, os.W_OK | os.X_OK):
            return ("%s: '%s' is not writable (read-only file system, immutable or no "
                    "permission): give a directory this task can write" % (field, path))
        return None
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return "%s: '%s' cannot be created: '%s' is not a directory" % (field, path, parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        return ("%s: '%s' cannot be created: '%s' is not writable (read-only file system, "
                "immutable or no permission)" % (field, path, parent))
    return None


def file_problem(field, path):
    """Why ``path`` is not a readable file, or None."""
    if not os.path.exists(path):
        return "%s: '%s' does not exist" % (field, path)
    if not os.path.isfile(path):
        return "%s: '%s' is not a file (give the path of a .config or fragment)" % (field, path)
    if not os.access(path, os.R_OK):
        return "%s: '%s' is not readable" % (field, path)
    return None


def write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.tmp-')
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
    os.rename(tmp, path)


class KernelBuild(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.started = time.time()
        self.src = os.path.realpath(self.p['source'])
        self.obj = os.path.realpath(self.p['build_dir']) if self.p['build_dir'] else self.src
        self.out_of_tree = self.obj != self.src
        self.log = os.path.join(self.obj, LOG)
        self.state_dir = os.path.join(self.obj, STATE_DIR)
        self.meta_path = os.path.join(self.obj, METADATA)
        self._kconfig = None
        self.env = {'LC_ALL': 'C', 'LANG': 'C'}
        if self.p['ccache'] and self.p['ccache_dir']:
            self.env['CCACHE_DIR'] = self.p['ccache_dir']
        # check_mode=False: check mode of targets: [] configures a trial directory for real
        # (configure_trial); every other change is behind an explicit check_mode test.
        self.runner = Runner(module, env=self.env, check_mode=False)

    # ---- validation (nothing is changed before all of it passed) ----

    def validate(self):
        p = self.p
        if not os.path.isdir(self.src):
            raise BuildError("source: '%s' does not exist or is not a directory; give the path of "
                             "a kernel source tree" % p['source'])
        if not kt.is_kernel_tree(self.src):
            raise BuildError("source: '%s' is not a Linux kernel tree (needs a top-level Makefile "
                             "with VERSION/PATCHLEVEL, Kconfig and scripts/kconfig/merge_config.sh)"
                             % p['source'])
        self.version = kt.tree_version(self.src)
        if self.out_of_tree and (os.path.exists(os.path.join(self.src, '.config'))
                                 or os.path.isdir(os.path.join(self.src, 'include', 'config'))):
            raise BuildError("source: '%s' has been configured in-tree, so kbuild refuses the "
                             "out-of-tree build_dir; run 'make mrproper' in it, or leave build_dir "
                             "unset to build in the tree" % self.src)
        problem = writable_dir_problem('build_dir' if self.out_of_tree else 'source', self.obj)
        if problem:
            raise BuildError(problem + ('' if self.out_of_tree else
                                        '; or set build_dir to build out of the tree'))
        if p['ccache'] and p['ccache_dir']:
            problem = writable_dir_problem('ccache_dir', p['ccache_dir'])
            if problem:
                raise BuildError(problem)

        base = p['config_base']
        if p['config_file']:
            if base:
                raise BuildError('config_base and config_file are mutually exclusive: '
                                 'config_file is the base')
            problem = file_problem('config_file', p['config_file'])
            if problem:
                raise BuildError(problem)
            self.base_kind = 'file'
        else:
            base = base or 'defconfig'
            if base == 'running':
                self.base_kind = 'running'
            elif CONFIG_TARGET_RE.match(base):
                self.base_kind = 'target'
                if base == 'olddefconfig' and not os.path.isfile(os.path.join(self.obj, '.config')):
                    raise BuildError("config_base: 'olddefconfig' starts from the existing .config "
                                     "but '%s' has none; use a target such as defconfig, or "
                                     "config_file" % os.path.join(self.obj, '.config'))
            else:
                raise BuildError("config_base: %r is neither 'running' nor a make config target "
                                 "(a name ending in 'config' that does not start with '-', e.g. "
                                 "defconfig, tinyconfig)" % base)
        self.base = base

        for path in p['config_fragments']:
            problem = file_problem('config_fragments', path)
            if problem:
                raise BuildError(problem)
        try:
            self.inline = kc.normalize_dict(p['config'])
        except kc.ConfigError as e:
            raise BuildError('config: %s' % e)
        try:
            self.optional = kc.normalize_dict(p['config_optional'])
        except kc.ConfigError as e:
            raise BuildError('config_optional: %s' % e)

        self.user_vars = {}
        for name, value in p['make_vars'].items():
            if not MAKE_VAR_RE.match(str(name)):
                raise BuildError('make_vars: %r is not a make variable name' % (name,))
            if isinstance(value, (dict, list)):
                raise BuildError('make_vars: %s must be a string, not %s'
                                 % (name, type(value).__name__))
            if isinstance(value, bool):
                value = '1' if value else '0'
            self.user_vars[str(name)] = '' if value is None else str(value)
        for target in p['targets']:
            if not TARGET_RE.match(target):
                raise BuildError("targets: %r is not a make target (letters, digits and _ . - /, "
                                 "not starting with '-' or '/'), e.g. bzImage or modules"
                                 % (target,))
        if p['jobs'] is not None and p['jobs'] < 1:
            raise BuildError('jobs: %d is not a number of parallel make jobs: give 1 or more, or '
                             'leave jobs unset for one per CPU' % p['jobs'])

        self.cc, self.ld, self.hostcc = plan.programs(self.user_vars, p['ccache'])
        self.check_symbols()

    def check_symbols(self):
        """Values that cannot fit their symbol's type (from the tree's Kconfig files), refused
        before any make: kconfig would drop them and the verification fail after the work."""
        sources = [('config_fragments: %s' % path, kc.read_config(path))
                   for path in self.p['config_fragments']]
        sources += [('config', self.inline), ('config_optional', self.optional)]
        if not any(values for dummy, values in sources):
            return
        index = self.kconfig()
        problems = ['%s: %s' % (field, line) for field, values in sources
                    for line in kc.check_values(values, index)]
        if problems:
            raise BuildError('%s; nothing was configured or built' % '; '.join(problems))

    def _program(self, name):
        if os.path.isabs(name):
            return name if os.access(name, os.X_OK) and os.path.isfile(name) else None
        return self.module.get_bin_path(name)

    def check_tools(self):
        """Every program the configuration and build need; fail naming the Debian packages."""
        missing = []

        def need(prog, origin, package=None):
            if not self._program(prog):
                base = os.path.basename(prog)
                pkg = package or kt.DEBIAN_PACKAGES.get(base) or kt.DEBIAN_PACKAGES.get(
                    re.sub(r'-[0-9.]+$', '', base).split('-')[-1], 'the package providing it')
                missing.append("%s '%s' not found or not executable (Debian package: %s)"
                               % (origin, prog, pkg))

        need('make', 'make')
        words = kt.compiler_words(self.cc)
        if words[0] == 'ccache':
            need('ccache', 'ccache (option ccache)')
            words = words[1:]
        if not words:
            missing.append('make_vars.CC is empty')
        else:
            need(words[0], 'compiler (make_vars.CC)' if 'CC' in self.p['make_vars']
                 else 'compiler', 'gcc (build-essential)' if 'gcc' in words[0] else None)
        need(self.hostcc, 'host compiler (HOSTCC)', 'gcc (build-essential)'
             if 'gcc' in self.hostcc else None)
        need(self.ld, 'linker (LD)', 'binutils (build-essential)' if self.ld.endswith('ld')
             else None)
        if self.p['targets']:
            need('bc', 'bc')
            need('perl', 'perl')
        if kt.needs_flex_bison(self.version):
            need('flex', 'flex')
            need('bison', 'bison')
        if missing:
            raise BuildError('missing toolchain: ' + '; '.join(missing), missing=missing)

    def check_config_requirements(self, config):
        missing = []
        for what, kind, package in kt.config_requirements(config, self.p['targets']):
            if kind == 'program':
                ok = bool(self._program(what))
            else:
                r = self.runner.run([self.hostcc, '-E', '-x', 'c', '-o', os.devnull, '-'],
                                    check_rc=False, data='#include <%s>\n' % what)
                ok = r.rc == 0
            if not ok:
                missing.append('%s %s (Debian package: %s)' % (kind, what, package))
        if missing:
            raise BuildError('missing build dependency for this config/targets: '
                             + '; '.join(missing), missing=missing)

    # ---- identity of inputs ----

    def toolchain(self):
        def first_line(argv):
            r = self.runner.run(argv, check_rc=False)
            text = (r.stdout or r.stderr or '').strip()
            return text.splitlines()[0] if text else ''
        cc_words = kt.compiler_words(self.cc)
        compiler = cc_words[-1]
        cc_text = first_line([compiler, '--version'])
        ld_text = first_line([self.ld, '--version'])
        info = {
            'cc': self.cc,
            'cc_version': cc_text,
            'cc_kind': kt.compiler_kind(cc_text),
            'ld_version': ld_text,
            'hostcc_version': first_line([self.hostcc, '--version']),
            'make_version': first_line(['make', '--version']),
        }
        if cc_words[0] == 'ccache':
            info['ccache_version'] = first_line(['ccache', '--version'])
        self.cc_version = kt.parse_version(cc_text)
        self.ld_version = kt.parse_version(ld_text)
        return info

    def source_identity(self):
        if self.p['source_id']:
            return plan.given_identity(self.p['source_id'])
        git = self.module.get_bin_path('git')
        if git and os.path.exists(os.path.join(self.src, '.git')):
            r = self.runner.run(['git', '-C', self.src, 'rev-parse', 'HEAD'], check_rc=False)
            if r.rc == 0:
                describe = self.runner.run(['git', '-C', self.src, 'describe', '--always',
                                            '--tags', '--dirty'], check_rc=False).stdout
                status = self.runner.run(['git', '-C', self.src, 'status', '--porcelain',
                                          '--untracked-files=no'], check_rc=False).stdout
                diff = None
                if status.strip():
                    diff = self.runner.run(['git', '-C', self.src, 'diff', 'HEAD', '--binary'],
                                           check_rc=False).stdout
                return plan.git_identity(r.stdout, describe, status, diff)
        return plan.tree_identity(plan.tree_hash(self.src, self.obj))

    def base_content(self):
        if self.base_kind == 'file':
            return read_bytes(self.p['config_file'])
        if self.base_kind == 'running':
            path = '/boot/config-%s' % platform.release()
            data = read_bytes(path)
            if data is None and os.path.exists('/proc/config.gz'):
                with gzip.open('/proc/config.gz', 'rb') as f:
                    data = f.read()
            if data is None:
                raise BuildError("config_base: 'running' needs %s or /proc/config.gz, and this "
                                 "host has neither; give config_file instead" % path)
            return data
        if self.base == 'olddefconfig':
            return read_bytes(os.path.join(self.obj, '.config')) or b''
        return self.base.encode('utf-8')

    def inputs_fingerprint(self, toolchain, source, base_data):
        return plan.inputs_fingerprint(
            source, self.base_kind, self.base, base_data,
            [sha256_file(path) for path in self.p['config_fragments']], self.inline,
            self.optional, self.p['on_unmet'], toolchain, self.user_vars, self.p['targets'],
            self.p['compat'])

    # ---- make ----

    def make_argv(self, variables, targets, jobs=None, silent=False):
        argv = ['make', '-C', self.src]
        if self.out_of_tree:
            argv.append('O=%s' % self.obj)
        if silent:
            argv.append('-s')
        if jobs:
            argv.append('-j%d' % jobs)
        argv += ['%s=%s' % (k, variables[k]) for k in sorted(variables)]
        return argv + list(targets)

    def run(self, argv, cwd=None):
        """A state-changing short command with the build environment."""
        r = self.runner.run(argv, changes=True, check_rc=False, cwd=cwd)
        if r.rc != 0:
            detail = (r.stderr or r.stdout).strip()[-3000:]
            raise BuildError("'%s' failed (rc=%s): %s" % (' '.join(r.argv), r.rc, detail),
                             cmd=r.argv, rc=r.rc, stdout=r.stdout[-5000:], stderr=r.stderr[-5000:])
        return r.stdout

    def query(self, argv):
        r = self.runner.run(argv, check_rc=False)
        if r.rc != 0:
            raise BuildError("'%s' failed (rc=%s): %s" % (' '.join(r.argv), r.rc,
                                                          (r.stderr or r.stdout).strip()))
        lines = [line for line in r.stdout.splitlines() if line.strip() and 'directory' not in line]
        return lines[-1].strip() if lines else ''

    def kconfig(self):
        """The tree's Kconfig index for the build's architecture, read once per task."""
        if self._kconfig is None:
            self._kconfig = kc.kconfig_index(self.src, self.user_vars.get('ARCH'))
        return self._kconfig

    def configure(self, state_dir):
        """Base + fragments + olddefconfig into <obj>/.config; returns the fragment paths used."""
        dot_config = os.path.join(self.obj, '.config')
        if self.base_kind == 'target':
            self.run(self.make_argv(self.user_vars, [self.base]))
        else:
            write_atomic(dot_config, self.base_content())
            self.runner.changes.append(['cp', self.p['config_file'] or 'running-config',
                                        dot_config])
        fragments = list(self.p['config_fragments'])
        inline = dict(self.inline)
        self.skipped = []
        if self.optional:
            known = self.kconfig()
            for sym, value in self.optional.items():
                if sym in known:
                    inline.setdefault(sym, value)
                else:
                    self.skipped.append(sym)
        if inline:
            path = os.path.join(state_dir, 'inline.config')
            with open(path, 'w') as f:
                f.write(kc.render_fragment(inline))
            fragments.append(path)
        if fragments:
            self.run(['sh', os.path.join(self.src, 'scripts', 'kconfig', 'merge_config.sh'), '-m',
                      '-O', self.obj, dot_config] + fragments, cwd=self.src)
        self.run(self.make_argv(self.user_vars, ['olddefconfig']))
        self.requested = {}
        for path in self.p['config_fragments']:
            self.requested.update(kc.read_config(path))
        self.requested.update(inline)
        return fragments

    def ccache_stats(self):
        if kt.compiler_words(self.cc)[0] != 'ccache':
            return None
        r = self.runner.run(['ccache', '--print-stats'], check_rc=False)
        return kt.parse_ccache_stats(r.stdout) if r.rc == 0 else None

    def build(self, variables, targets, jobs):
        made = self.runner.run(self.make_argv(variables, targets, jobs=jobs), changes=True,
                               check_rc=False, log=self.log)
        argv, rc = made.argv, made.rc
        if rc != 0:
            with open(self.log, 'r', errors='replace') as f:
                lines = f.read().splitlines()
            errors = [line for line in lines if re.search(r'\berror\b|Error \d|\*\*\*', line)]
            hint = ''
            if any('please install libelf-dev' in line or 'gelf.h' in line for line in lines):
                hint = ' Install libelf-dev.'
            raise BuildError('make failed (rc=%d); see %s. Errors: %s%s'
                             % (rc, self.log, ' | '.join(errors[-15:]) or '(none matched)', hint),
                             cmd=argv, rc=rc, log_tail=lines[-40:])
        return argv

    # ---- artifacts ----

    def artifacts(self, image_rel, debs):
        obj = self.obj
        found = {'config': os.path.join(obj, '.config'), 'image': None, 'vmlinux': None,
                 'system_map': None, 'modules': [], 'debs': debs}
        if image_rel and os.path.isfile(os.path.join(obj, image_rel)):
            found['image'] = os.path.join(obj, image_rel)
        for key, name in (('vmlinux', 'vmlinux'), ('system_map', 'System.map')):
            if os.path.isfile(os.path.join(obj, name)):
                found[key] = os.path.join(obj, name)
        order = os.path.join(obj, 'modules.order')
        if os.path.isfile(order):
            with open(order) as f:
                for line in f:
                    line = line.strip()
                    if line.startswith('kernel/'):
                        line = line[len('kernel/'):]
                    if line.endswith('.o'):
                        line = line[:-2] + '.ko'
                    if line and os.path.isfile(os.path.join(obj, line)):
                        found['modules'].append(os.path.join(obj, line))
        return found

    def artifacts_present(self, meta):
        arts = (meta or {}).get('artifacts') or {}
        paths = [arts.get('config')] + list(arts.get('debs') or [])
        if arts.get('image'):
            paths.append(arts['image'])
        return all(p and os.path.exists(p) for p in paths)

    # ---- main ----

    def load_meta(self):
        data = read_bytes(self.meta_path)
        if not data:
            return None
        try:
            return json.loads(data.decode('utf-8'))
        except ValueError:
            return None

    def summary(self, meta):
        if not meta:
            return {}
        return {'kernelrelease': meta.get('kernelrelease'), 'fingerprint': meta.get('fingerprint'),
                'config_sha256': meta.get('config_sha256'),
                'source': meta.get('source'), 'make_vars': meta.get('make_vars')}

    def prepare_build_dir(self, dot_config):
        """Create the build and state directories; return the .config's bytes and stat."""
        if not os.path.isdir(self.obj):
            os.makedirs(self.obj)
            self.runner.changes.append(['mkdir', '-p', self.obj])
        if not os.path.isdir(self.state_dir):
            os.makedirs(self.state_dir)
        old_bytes = read_bytes(dot_config)
        return old_bytes, os.stat(dot_config) if old_bytes is not None else None

    def configure_verified(self, dot_config, old_bytes, old_stat, check=None):
        """Configure and verify; on failure put the previous .config back (content and times).

        Returns the final .config's bytes, its parsed form and the unmet symbols (on_unmet=warn).
        """
        try:
            self.configure(self.state_dir)
            final_bytes = read_bytes(dot_config)
            final = kc.parse_config(final_bytes.decode('utf-8', 'replace'))
            unmet = kc.verify(self.requested, final)
            if unmet:
                lines = kc.describe_unmet(unmet, self.kconfig(), final)
                if self.p['on_unmet'] == 'fail':
                    raise BuildError('%d requested config symbol(s) not satisfied after '
                                     'olddefconfig (the previous .config is kept): %s'
                                     % (len(unmet), '; '.join(lines)), unmet=unmet)
                self.module.warn('requested config symbols not satisfied: '
                                 + '; '.join(lines))
            if check:
                check(final)
        except BuildError:
            if old_bytes is None:
                if os.path.exists(dot_config):
                    os.unlink(dot_config)
            else:
                write_atomic(dot_config, old_bytes)
                os.utime(dot_config, ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
            raise
        if final_bytes == old_bytes and old_stat is not None:
            # Same config: keep the old mtime so that kbuild sees an untouched .config.
            os.utime(dot_config, ns=(old_stat.st_atime_ns, old_stat.st_mtime_ns))
        return final_bytes, final, unmet

    def configure_only(self):
        """targets: []: configure and verify the build directory's .config, build nothing."""
        dot_config = os.path.join(self.obj, '.config')
        if self.module.check_mode:
            return self.configure_trial(dot_config)
        old_bytes, old_stat = self.prepare_build_dir(dot_config)
        final_bytes, final, unmet = self.configure_verified(dot_config, old_bytes, old_stat)
        return self.config_result(old_bytes, final_bytes, final, unmet, dot_config)

    def configure_trial(self, dot_config):
        """Check mode of targets: []: configure a temporary build directory, compare."""
        if not self.out_of_tree:
            result = self.config_result(None, None, None, [], dot_config)
            result['msg'] = ('would configure the tree in place; check mode verifies the '
                             'configuration only with build_dir set')
            return result
        real_obj, real_state = self.obj, self.state_dir
        trial = tempfile.mkdtemp(prefix='zerodrop-kconfig-')
        try:
            self.obj, self.state_dir = trial, os.path.join(trial, STATE_DIR)
            os.makedirs(self.state_dir)
            if os.path.isdir(os.path.join(real_obj, 'scripts', 'kconfig')):
                # kbuild's host programs, already built there: make finds them up to date.
                shutil.copytree(os.path.join(real_obj, 'scripts'), os.path.join(trial, 'scripts'),
                                symlinks=True)
            trial_config = os.path.join(trial, '.config')
            existing = read_bytes(dot_config)
            if self.base_kind == 'target' and self.base == 'olddefconfig':
                write_atomic(trial_config, existing or b'')
            final_bytes, final, unmet = self.configure_verified(trial_config, None, None)
        finally:
            self.obj, self.state_dir = real_obj, real_state
            shutil.rmtree(trial, ignore_errors=True)
            self.runner.changes = [[arg.replace(trial, real_obj) for arg in argv]
                                   for argv in self.runner.changes]
        return self.config_result(existing, final_bytes, final, unmet, dot_config)

    def config_result(self, old_bytes, final_bytes, final, unmet, dot_config):
        """The result of targets: []; changed when the .config's bytes differ (or are unknown)."""
        changed = final_bytes is None or final_bytes != old_bytes
        result = {
            'changed': changed, 'built': False, 'kernelrelease': None,
            'config_path': dot_config,
            'artifacts': {'config': dot_config, 'image': None, 'vmlinux': None,
                          'system_map': None, 'modules': [], 'debs': []},
            'build_log': self.log,
            'config_sha256': kc.config_hash(final) if final is not None else None,
            'unmet': unmet, 'skipped_symbols': getattr(self, 'skipped', []),
            'requested_symbols': getattr(self, 'requested', {}),
            'compat_vars': [], 'make_command': [], 'reproducer': [],
            'duration': round(time.time() - self.started, 2),
            'commands': self.runner.changes,
        }
        if changed and final is not None and self.module._diff:
            before = kc.parse_config(old_bytes.decode('utf-8', 'replace')) if old_bytes else {}
            result['diff'] = {'before': kc.render_fragment(before) if before else '',
                              'after': kc.render_fragment(final),
                              'before_header': dot_config, 'after_header': dot_config}
        return result

    def still_built(self, meta, dot_config):
        """The previous build's .config and artifacts are still there and it is not forced."""
        current = kc.read_config(dot_config) if os.path.isfile(dot_config) else None
        return plan.still_built(meta, self.p['force'], self.artifacts_present(meta),
                                kc.config_hash(current) if current is not None else None)

    def would_build(self, prev, inputs_fp):
        result = self.result(prev or {}, changed=True, built=False)
        result['msg'] = 'would configure and build'
        result['diff'] = {'before': self.summary(prev), 'after': {'inputs_fingerprint': inputs_fp}}
        return result

    def keep_build(self, prev, inputs_fp):
        """The configured build is the previous one: remember the new inputs, build nothing."""
        prev['inputs_fingerprint'] = inputs_fp
        write_atomic(self.meta_path, json.dumps(prev, indent=2, sort_keys=True).encode())
        return self.result(prev, changed=False, built=False)

    def run_make(self, variables, targets):
        """make the targets; what the metadata records of the run."""
        jobs = self.p['jobs'] or os.cpu_count() or 1
        before = self.ccache_stats()
        t0 = time.time()
        build_start = t0 - 1
        argv = self.build(variables, targets, jobs) if targets else []
        build_seconds = time.time() - t0
        after = self.ccache_stats()
        kernelrelease = self.query(self.make_argv(variables, ['kernelrelease'], silent=True))
        debs = []
        if any(t in DEB_TARGETS for t in targets):
            parent = os.path.dirname(self.obj)
            debs = sorted(p for p in glob.glob(os.path.join(parent, '*.deb'))
                          if os.path.getmtime(p) >= build_start)
        with open(self.log, 'r', errors='replace') as f:
            warnings = sum(1 for line in f if 'warning:' in line)
        ccache = None
        if before is not None and after is not None:
            ccache = kt.ccache_delta(before, after)
            ccache['dir'] = self.env.get('CCACHE_DIR')
        return {'kernelrelease': kernelrelease, 'jobs': jobs, 'make_command': argv,
                'build_seconds': round(build_seconds, 1), 'warnings': warnings,
                'ccache': ccache}, debs

    def execute(self):
        self.validate()
        self.check_tools()
        if not self.p['targets']:
            return self.configure_only()
        toolchain = self.toolchain()
        source = self.source_identity()
        inputs_fp = self.inputs_fingerprint(toolchain, source, self.base_content())
        prev = self.load_meta()
        dot_config = os.path.join(self.obj, '.config')
        if self.still_built(prev, dot_config) and prev.get('inputs_fingerprint') == inputs_fp:
            return self.result(prev, changed=False, built=False)
        if self.module.check_mode:
            return self.would_build(prev, inputs_fp)

        old_bytes, old_stat = self.prepare_build_dir(dot_config)
        final_bytes, final, unmet = self.configure_verified(
            dot_config, old_bytes, old_stat, check=self.check_config_requirements)
        compat, variables = plan.compat_plan(self.p['compat'], self.version, final,
                                             toolchain['cc_kind'], self.cc_version,
                                             self.ld_version, self.user_vars)
        image_rel = self.query(self.make_argv(variables, ['image_name'], silent=True))
        targets, skipped_targets = plan.make_targets(self.p['targets'], image_rel,
                                                     final.get('CONFIG_MODULES') == 'y')
        config_sha = kc.config_hash(final)
        fingerprint = plan.build_fingerprint(source, config_sha, toolchain, variables, targets)
        if (prev and not self.p['force'] and prev.get('fingerprint') == fingerprint
                and self.artifacts_present(prev) and final_bytes == old_bytes):
            return self.keep_build(prev, inputs_fp)

        made, debs = self.run_make(variables, targets)
        meta = dict(
            made,
            kernel_version='%d.%d.%d%s' % self.version,
            source=source, source_path=self.src, build_dir=self.obj,
            config_base=self.base if self.base_kind != 'file' else None,
            config_file=self.p['config_file'],
            config_fragments=self.p['config_fragments'],
            requested_symbols=self.requested, unmet=unmet,
            skipped_symbols=self.skipped,
            config_sha256=config_sha, toolchain=toolchain,
            make_vars=variables, compat_vars=compat, targets=targets,
            skipped_targets=skipped_targets,
            reproducer=plan.reproducer(self.src, self.env, self.runner.changes),
            build_log=self.log, fingerprint=fingerprint, inputs_fingerprint=inputs_fp,
            built_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            artifacts=self.artifacts(image_rel, debs))
        write_atomic(self.meta_path, json.dumps(meta, indent=2, sort_keys=True).encode('utf-8'))
        result = self.result(meta, changed=True, built=True)
        result['diff'] = {'before': self.summary(prev), 'after': self.summary(meta)}
        return result

    def result(self, meta, changed, built):
        return {
            'changed': changed, 'built': built,
            'kernelrelease': meta.get('kernelrelease'),
            'artifacts': meta.get('artifacts'),
            'metadata': meta, 'metadata_file': self.meta_path,
            'build_log': meta.get('build_log') or self.log,
            'config_sha256': meta.get('config_sha256'),
            'fingerprint': meta.get('fingerprint'),
            'unmet': meta.get('unmet') or [],
            'skipped_symbols': meta.get('skipped_symbols') or [],
            'requested_symbols': meta.get('requested_symbols') or {},
            'config_path': (meta.get('artifacts') or {}).get('config'),
            'compat_vars': meta.get('compat_vars') or [],
            'make_command': meta.get('make_command') or [],
            'reproducer': meta.get('reproducer') or [],
            'duration': round(time.time() - self.started, 2),
            'commands': self.runner.changes,
        }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type='path', required=True),
            build_dir=dict(type='path'),
            config_base=dict(type='str'),
            config_file=dict(type='path'),
            config_fragments=dict(type='list', elements='path', default=[]),
            config=dict(type='dict', default={}),
            config_optional=dict(type='dict', default={}),
            on_unmet=dict(type='str', choices=['fail', 'warn'], default='fail'),
            targets=dict(type='list', elements='str', default=['image', 'modules']),
            jobs=dict(type='int'),
            make_vars=dict(type='dict', default={}),
            ccache=dict(type='bool', default=False),
            ccache_dir=dict(type='path'),
            compat=dict(type='str', choices=['auto', 'off'], default='auto'),
            force=dict(type='bool', default=False),
            source_id=dict(type='str'),
        ),
        mutually_exclusive=[['config_base', 'config_file']],
        supports_check_mode=True,
    )
    with Guard(module) as guard:
        job = KernelBuild(module)
        guard.runner = job.runner
        guard.doing('configure and build the kernel', job.obj)
        try:
            result = job.execute()
        except BuildError as e:
            extra = dict(e.extra)
            extra.setdefault('unmet', [])
            module.fail_json(msg=str(e), build_log=job.log, commands=job.runner.changes,
                             changed=bool(job.runner.changes) and not module.check_mode,
                             duration=round(time.time() - job.started, 2), **extra)
        except CommandError as e:
            job.runner.fail(str(e), error=e, build_log=job.log)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
