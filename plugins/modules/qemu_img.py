#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: qemu_img
short_description: Create, grow, convert, read or remove QEMU disk images with qemu-img
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Makes sure a QEMU disk image exists with a given format, virtual size and backing file, by
    creating it (C(qemu-img create)), converting it from another image (C(qemu-img convert)) or
    resizing it (C(qemu-img resize)); or removes it; or only reads it.
  - The image is read with C(qemu-img info --output=json --force-share), so the image of a
    running VM can be read. Writes (resize, overwrite, removal) first check QEMU's image lock and
    fail with a message naming the process that holds it.
  - An existing image is never overwritten or truncated unless O(force=true) (recreate when its
    format, backing file or recorded options differ) or O(allow_shrink=true) (shrink). A
    recreated image is built next to the old one and renamed over it only once complete.
  - B(Only images are touched.) qemu-img reads any file it does not recognise (a text file, an
    archive) as a raw image, so an existing file that qemu-img reads as C(raw) counts as an
    image only when its content shows it, that is a whole number of 512-byte sectors that
    starts with a partition table or boot sector (C(0x55AA) at byte 510), an ext2/3/4, XFS, btrfs, F2FS,
    ISO 9660 or squashfs file system, an LVM physical volume or a swap signature, or zeros (a
    new or sparse image). Any other file is refused - not read, resized, recreated or removed
    - unless O(force=true). Files of the formats qemu-img recognises (qcow2, vmdk, ...) are
    images. Devices, sockets and fifos are always refused.
  - On failure nothing stays. The checks (sizes, shrinking, formats, locks) run before the
    first write, and an image this call was creating or converting is removed again.
  - Sizes are parsed as qemu-img parses them (a bare number is bytes; K, M, G, T, P, E are
    1024-based, case-insensitive) and compared exactly in bytes.
options:
  path:
    description: Path of the image.
    type: path
    required: true
  state:
    description:
      - C(present) makes sure the image exists as described (create, convert or resize). With
        only O(path) given, an existing image is only read (RV(info)) and never changed.
      - C(absent) removes the image file (an image only; see the rule above).
    type: str
    choices: [present, absent]
    default: present
  format:
    description:
      - Image format (C(qemu-img create -f)), e.g. C(qcow2) or C(raw).
      - When unset, a new image is C(qcow2) and an existing image may have any format.
    type: str
  size:
    description:
      - Virtual size, e.g. C(10G) or C(1073741824) (bytes). Must be a multiple of 512 bytes.
      - Needed to create an image unless O(backing_file) or O(source) gives the size.
      - A larger size than the existing image's grows it; a smaller one needs O(allow_shrink).
      - With O(source), a size smaller than the source's needs O(allow_shrink) too (checked
        before converting).
    type: str
  allow_shrink:
    description: Allow shrinking an existing image to O(size) (data beyond the new end is lost).
    type: bool
    default: false
  backing_file:
    description:
      - Backing file of a copy-on-write overlay (C(qemu-img create -b)), as stored in the image
        (relative names are relative to the image's directory, as QEMU resolves them).
    type: str
  backing_format:
    description:
      - Format of O(backing_file) (C(-F)). Defaults to the format qemu-img reads from the
        backing file.
    type: str
  source:
    description:
      - Image to convert into O(path) (C(qemu-img convert)). Runs only when O(path) does not
        exist, or with O(force=true) when O(path) differs from it (format, size or contents,
        compared with C(qemu-img compare)).
      - The source must not be in use by a running VM (its lock is checked).
    type: path
  source_format:
    description: Format of O(source). Defaults to the format qemu-img reads from it.
    type: str
  options:
    description:
      - Format options passed as C(-o key=value) when the image is created or converted, e.g.
        C(cluster_size), C(preallocation), C(compat), C(lazy_refcounts). Booleans become
        C(on)/C(off).
      - Options that the image records (C(cluster_size), C(compat), C(lazy_refcounts),
        C(refcount_bits), C(compression_type), C(extended_l2)) are compared with an existing
        image; a difference is an error unless O(force=true). Others (C(preallocation)) only
        apply at creation.
    type: dict
    default: {}
  force:
    description:
      - Recreate (or re-convert) an existing image that differs from the request; its contents
        are lost. Also allows O(state=absent) to remove an image that a process holds.
      - Handle an existing file that does not look like a disk image (see the rule above) as a
        raw image (read, grow, recreate or remove it).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads the image and reports the commands it would run; writes nothing.
  diff_mode:
    support: full
    description: Shows format, virtual size, backing file and backing format before and after.
  platform:
    support: full
    platforms: posix
    description: Any POSIX host with qemu-img.
notes:
  - Needs C(qemu-img) (Debian package C(qemu-utils)).
seealso:
  - module: zerodrop.testbed.qemu_nbd
'''

EXAMPLES = r'''
- name: System disk (qcow2, 20 GiB)
  zerodrop.testbed.qemu_img:
    path: /var/lib/zd/vm1.qcow2
    size: 20G

- name: Dataset disk, raw, fully allocated
  zerodrop.testbed.qemu_img:
    path: /var/lib/zd/dataset.img
    format: raw
    size: 10G
    options:
      preallocation: falloc

- name: Per-VM overlay on a shared base image
  zerodrop.testbed.qemu_img:
    path: /var/lib/zd/vm2.qcow2
    backing_file: base.qcow2
    backing_format: qcow2

- name: Grow the dataset disk
  zerodrop.testbed.qemu_img:
    path: /var/lib/zd/dataset.img
    size: 16G

- name: Convert a raw root filesystem into a compressed-cluster qcow2
  zerodrop.testbed.qemu_img:
    path: /var/lib/zd/base.qcow2
    source: /var/lib/zd/rootfs.raw
    format: qcow2
    options:
      cluster_size: 2M

- name: Read an image, even while a VM runs on it (only path given, nothing changes)
  zerodrop.testbed.qemu_img:
    path: /var/lib/zd/vm1.qcow2
  register: vm1_disk
'''

RETURN = r'''
path:
  description: Absolute path of the image.
  returned: always
  type: str
  sample: /var/lib/zd/vm1.qcow2
exists:
  description: Whether the image exists (after the change; in check mode, as it would).
  returned: always
  type: bool
info:
  description:
    - The image as C(qemu-img info) reads it after the change, or as it is when nothing changes
      (null when absent).
    - In check mode with a change, only the predicted path, format, virtual size, backing file
      and backing format.
  returned: always
  type: dict
  sample:
    path: /var/lib/zd/vm2.qcow2
    format: qcow2
    virtual_size: 21474836480
    actual_size: 200704
    backing_file: base.qcow2
    backing_file_resolved: /var/lib/zd/base.qcow2
    backing_format: qcow2
    cluster_size: 65536
    dirty: false
    encrypted: false
    format_specific: {compat: "1.1", lazy-refcounts: false, refcount-bits: 16}
commands:
  description: The commands run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/qemu-img", "resize", "-f", "raw", "/var/lib/zd/dataset.img", "17179869184"]]
rolled_back:
  description: The commands that removed what this call had written, after a later step
    failed.
  returned: failure after a write
  type: list
  elements: list
  sample: [["/usr/bin/rm", "-f", "--", "/var/lib/zd/base.qcow2"]]
holders:
  description: Processes that hold the image, when a write was refused because of its lock.
  returned: failure
  type: list
  elements: dict
  sample: [{pid: 4242, cmdline: "qemu-system-x86_64 -drive file=/var/lib/zd/vm1.qcow2"}]
'''

import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard, describe
from ansible_collections.zerodrop.testbed.plugins.module_utils.qemu import (
    ImageLocked, SizeError, assert_not_locked, diff_view, human_size, image_info,
    parse_image_size, raise_if_locked, raw_disk_evidence, resolve_backing, unknown_formats)
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import CommandError, Runner

DEFAULT_FORMAT = 'qcow2'

# qcow2 compat levels as qemu-img info prints them (YAML reads an unquoted 0.10 as 0.1).
COMPAT_ALIASES = {'0.1': '0.10', 'v2': '0.10', 'v3': '1.1'}

# -o options that qemu-img info reads back: option -> (where in the info, how to normalise).
RECORDED_OPTIONS = {
    'cluster_size': ('cluster_size', parse_image_size),
    'compat': ('compat', lambda v: COMPAT_ALIASES.get(str(v), str(v))),
    'lazy_refcounts': ('lazy-refcounts', lambda v: _on_off(v) == 'on'),
    'refcount_bits': ('refcount-bits', int),
    'compression_type': ('compression-type', str),
    'extended_l2': ('extended-l2', lambda v: _on_off(v) == 'on'),
}


def _on_off(value):
    if isinstance(value, bool):
        return 'on' if value else 'off'
    text = str(value).lower()
    if text in ('true', 'yes', '1', 'on'):
        return 'on'
    if text in ('false', 'no', '0', 'off'):
        return 'off'
    return str(value)


def option_args(options):
    """``-o k=v,k=v`` (commas inside values doubled, as QEMU's option parser wants)."""
    if not options:
        return []
    parts = []
    for key in sorted(options):
        value = options[key]
        if isinstance(value, bool):
            text = _on_off(value)
        elif key == 'compat':
            text = COMPAT_ALIASES.get(str(value), str(value))
        else:
            text = str(value)
        parts.append('%s=%s' % (key, text.replace(',', ',,')))
    return ['-o', ','.join(parts)]


def validate(params):
    """Every input error at once, before anything runs."""
    errors = []
    size = None
    if params['size'] is not None:
        try:
            size = parse_image_size(params['size'])
        except SizeError as e:
            errors.append('size: %s' % e)
    if params['backing_format'] and not params['backing_file']:
        errors.append('backing_format: only applies with backing_file')
    if params['source_format'] and not params['source']:
        errors.append('source_format: only applies with source')
    if params['source'] and params['backing_file']:
        errors.append('source, backing_file: give one (convert, or create an overlay)')
    for key, value in (params['options'] or {}).items():
        if isinstance(value, (dict, list)):
            errors.append('options.%s: must be a single value, not %s' % (key, type(value).__name__))
        elif key in RECORDED_OPTIONS:
            try:
                RECORDED_OPTIONS[key][1](value)
            except (ValueError, SizeError) as e:
                errors.append('options.%s: %s' % (key, e))
    if params['source'] and params['state'] == 'present' and \
            os.path.realpath(params['source']) == os.path.realpath(params['path']):
        errors.append('source: is the same file as path')
    return size, errors


def recorded_option(info, key):
    where = RECORDED_OPTIONS[key][0]
    if where == 'cluster_size':
        return info.get('cluster_size')
    return info['format_specific'].get(where)


def mismatches(info, params, path):
    """(field, wanted, found) for every requested property the existing image lacks."""
    found = []
    if params['format'] and info['format'] != params['format']:
        found.append(('format', params['format'], info['format']))
    if params['backing_file']:
        wanted = resolve_backing(path, params['backing_file'])
        if info['backing_file_resolved'] != wanted:
            found.append(('backing_file', params['backing_file'], info['backing_file']))
        if params['backing_format'] and info['backing_format'] != params['backing_format']:
            found.append(('backing_format', params['backing_format'], info['backing_format']))
    if not params['format'] or info['format'] == params['format']:
        for key, value in sorted((params['options'] or {}).items()):
            if key in RECORDED_OPTIONS:
                have = recorded_option(info, key)
                want = RECORDED_OPTIONS[key][1](value)
                if have is not None and have != want:
                    found.append(('options.%s' % key, want, have))
    return found


class QemuImg(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.runner = Runner(module)
        self.path = os.path.abspath(module.params['path'])
        # Files this call writes that a failure must remove: a new image, a temporary one.
        self.scratch = []

    def read(self, path=None):
        path = path or self.path
        if not os.path.exists(path):
            return None
        if os.path.isdir(path):
            self.runner.fail("path: '%s' is a directory, not an image file" % path, changed=False)
        if not os.path.isfile(path):
            self.runner.fail("'%s' is not a regular file (a device, a socket or a fifo); this "
                             "module handles image files only" % path, changed=False)
        try:
            return image_info(self.runner, path)
        except CommandError as e:
            self.runner.fail("'%s' is not an image qemu-img can read" % path, error=e,
                             changed=False)

    def read_image(self):
        """The image at path; a file that only reads as raw must look like a disk (or force)."""
        info = self.read()
        if info is None or info['format'] != 'raw' or self.params['force']:
            return info
        evidence, why_not = raw_disk_evidence(self.path)
        if evidence is None:
            self.runner.fail(
                "path: '%s' is not a disk image: qemu-img reads any file it does not recognise "
                "as raw, and %s. It is left alone (not read, resized, recreated or removed); set "
                "force: true to handle it as a raw image anyway" % (self.path, why_not),
                changed=False)
        return info

    def backing_format(self):
        if self.params['backing_format']:
            return self.params['backing_format']
        backing = resolve_backing(self.path, self.params['backing_file'])
        info = self.read(backing)
        if info is None:
            self.runner.fail("backing_file: '%s' does not exist (resolved relative to the image's "
                             "directory: %s)" % (self.params['backing_file'], backing),
                             changed=False)
        return info['format']

    def source_info(self):
        source = os.path.abspath(self.params['source'])
        info = self.read(source)
        if info is None:
            self.runner.fail("source: '%s' does not exist" % source, changed=False)
        return info

    def create(self, size, target):
        fmt = self.params['format'] or DEFAULT_FORMAT
        argv = ['qemu-img', 'create', '-q', '-f', fmt]
        predicted = {'format': fmt, 'virtual_size': size, 'backing_file': None,
                     'backing_format': None}
        if self.params['backing_file']:
            bfmt = self.backing_format()
            argv += ['-b', self.params['backing_file'], '-F', bfmt]
            predicted.update(backing_file=self.params['backing_file'], backing_format=bfmt)
            if size is None:
                back = self.read(resolve_backing(self.path, self.params['backing_file']))
                predicted['virtual_size'] = back['virtual_size']
        elif size is None:
            self.runner.fail("size: '%s' does not exist; give size (or backing_file, or source) "
                             "to create it" % self.path, changed=False)
        argv += option_args(self.params['options'])
        argv.append(target)
        if size is not None:
            argv.append(str(size))
        self.write(argv, target)
        return predicted

    def convert(self, source, target):
        fmt = self.params['format'] or DEFAULT_FORMAT
        sfmt = self.params['source_format'] or source['format']
        # A copy of an image that a VM still writes to would be inconsistent.
        assert_not_locked(self.runner, source['path'])
        argv = ['qemu-img', 'convert', '-q', '-f', sfmt, '-O', fmt]
        argv += option_args(self.params['options'])
        argv += [source['path'], target]
        self.write(argv, target)
        return {'format': fmt, 'virtual_size': source['virtual_size'], 'backing_file': None,
                'backing_format': None}

    def differs_from_source(self, info, source):
        if info['virtual_size'] != source['virtual_size']:
            return True
        sfmt = self.params['source_format'] or source['format']
        result = self.runner.run(['qemu-img', 'compare', '-U', '-f', sfmt, '-F', info['format'],
                                  source['path'], self.path], check_rc=False)
        if result.rc not in (0, 1):
            raise CommandError(result)
        return result.rc == 1

    def resize(self, info, size, target):
        argv = ['qemu-img', 'resize', '-q', '-f', info['format']]
        if size < info['virtual_size']:
            argv.append('--shrink')
        argv += [target, str(size)]
        self.write(argv, target)

    def write(self, argv, target):
        if target not in self.scratch and not os.path.exists(target):
            self.scratch.append(target)
        try:
            self.runner.run(argv, changes=True)
        except CommandError as e:
            raise_if_locked(e, target)

    def check_shrink(self, current, size):
        """Refuse a shrink without allow_shrink, before anything is written."""
        if size is None or current is None or size >= current['virtual_size'] or \
                self.params['allow_shrink']:
            return
        what = "the source's" if current.get('path') != self.path else "the image's"
        self.runner.fail(
            "size: %s (%d bytes) is smaller than %s %s (%d bytes); shrinking destroys the data "
            "beyond the new end: set allow_shrink: true to shrink it, or give size %s or more"
            % (self.params['size'], size, what, human_size(current['virtual_size']),
               current['virtual_size'], human_size(current['virtual_size'])), changed=False)

    def make(self, source, size, target, keep_size=None):
        """Convert or create ``target``, then bring it to ``size``."""
        self.check_shrink(source, size)
        if source:
            after = self.convert(source, target)
        else:
            after = self.create(size if size is not None else keep_size, target)
        if size is not None and source and after['virtual_size'] != size:
            self.resize(after, size, target)
            after['virtual_size'] = size
        return after

    def present(self, before, size):
        """The image as it is after the change (check mode: as predicted)."""
        p = self.params
        if before is None:
            return self.make(self.source_info() if p['source'] else None, size, self.path)

        wrong = mismatches(before, p, self.path)
        # An existing image is compared with its source only when force may re-convert it (the
        # source may be gone by now).
        source = self.source_info() if p['source'] and p['force'] else None
        if not wrong and source and self.differs_from_source(before, source):
            wrong = [('source', source['path'], 'different contents or size')]
        if wrong:
            if not p['force']:
                detail = '; '.join("%s is %s, not %s" % (f, have, want) for f, want, have in wrong)
                self.runner.fail(
                    "existing image '%s' differs from the request (%s). It is never overwritten: "
                    "set force: true to recreate it (its contents are lost), or change %s to "
                    "match it" % (self.path, detail, ', '.join(w[0] for w in wrong)),
                    mismatches=[{'field': f, 'wanted': w, 'found': h} for f, w, h in wrong],
                    changed=False)
            assert_not_locked(self.runner, self.path)
            return self.recreate(before, source, size)

        if size is not None and size != before['virtual_size']:
            self.check_shrink(before, size)
            assert_not_locked(self.runner, self.path)
            self.resize(before, size, self.path)
            return dict(diff_view(before), virtual_size=size)
        return before

    def recreate(self, before, source, size):
        """Build the new image next to the old one and rename it over the old one only when it
        is complete, so that a failure leaves the old image as it was."""
        real = os.path.realpath(self.path)
        folder, name = os.path.split(real)
        temp = os.path.join(folder, ('.%s.zerodrop-new-%d' % (name, os.getpid()))[-255:])
        keep_size = None if self.params['backing_file'] else before['virtual_size']
        after = self.make(source, size, temp, keep_size)
        if not self.module.check_mode:
            st = os.stat(real)
            os.chown(temp, st.st_uid, st.st_gid)
            os.chmod(temp, stat.S_IMODE(st.st_mode))
        self.runner.run(['mv', '-f', '-T', '--', temp, real], changes=True)
        self.scratch.remove(temp)
        return after

    def absent(self, before):
        if before is None:
            return None
        if not self.params['force']:
            assert_not_locked(self.runner, self.path)
        self.runner.run(['rm', '-f', '--', self.path], changes=True)
        return None

    def remove_scratch(self):
        """After a failure: remove the files this call was writing. What could not be removed."""
        left = []
        for path in self.scratch:
            if os.path.lexists(path):
                try:
                    self.runner.run(['rm', '-f', '--', path], changes=True)
                except CommandError as e:
                    left.append(str(e))
        return left

    def fail(self, msg, **kwargs):
        """Fail after removing what this call wrote; ``changed`` says whether anything stays."""
        if self.module.check_mode or not self.runner.changes:
            self.runner.fail(msg, changed=False, **kwargs)
        done = len(self.runner.changes)
        left = self.remove_scratch()
        # A failed write on an existing image (resize, absent) is the one change that may
        # stay: qemu-img changes nothing when it refuses.
        if left:
            msg += '. Could not remove what this call wrote: %s' % '; '.join(left)
        elif self.runner.changes[done:]:
            msg += '. Removed what this call had written (%s)' % ', '.join(
                c[-1] for c in self.runner.changes[done:])
        self.runner.fail(msg, changed=bool(left), rolled_back=self.runner.changes[done:],
                         **kwargs)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            format=dict(type='str'),
            size=dict(type='str'),
            allow_shrink=dict(type='bool', default=False),
            backing_file=dict(type='str'),
            backing_format=dict(type='str'),
            source=dict(type='path'),
            source_format=dict(type='str'),
            options=dict(type='dict', default={}),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    size, errors = validate(module.params)
    if errors:
        module.fail_json(msg='; '.join(errors), errors=errors, commands=[], changed=False)

    img = QemuImg(module)
    state = module.params['state']
    with Guard(module, img.runner) as guard:
        guard.doing('read the formats qemu-img knows')
        errors = unknown_formats(img.runner, [(k, module.params[k]) for k in (
            'format', 'backing_format', 'source_format')])
        if errors:
            module.fail_json(msg='; '.join(errors), errors=errors, commands=[], changed=False)
        guard.doing('read the image', img.path)
        before = img.read_image()
        guard.doing('%s the image' % ('remove' if state == 'absent' else 'make'), img.path)
        try:
            if state == 'absent':
                after = img.absent(before)
            else:
                after = img.present(before, size)
        except ImageLocked as e:
            img.fail(str(e), holders=e.holders)
        except CommandError as e:
            img.fail(str(e), error=e)
        except EnvironmentError as e:
            img.fail('could not %s: %s' % (guard.operation, describe(e)))

        changed = bool(img.runner.changes)
        if changed and not module.check_mode:
            guard.doing('read the image back', img.path)
            after = img.read()
    info = after if (after is None or 'path' in after) else dict(after, path=img.path)
    result = dict(changed=changed, path=img.path, exists=after is not None, info=info,
                  commands=img.runner.changes)
    if module._diff:
        result['diff'] = {'before': diff_view(before), 'after': diff_view(after)}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
