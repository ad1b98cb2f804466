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
    format, backing file or recorded options differ) or O(allow_shrink=true) (shrink).
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
      - C(absent) removes the image file.
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
  description: The image as C(qemu-img info) reads it after the change (null when absent; in
    check mode, the predicted format, size and backing file).
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
holders:
  description: Processes that hold the image, when a write was refused because of its lock.
  returned: failure
  type: list
  elements: dict
  sample: [{pid: 4242, cmdline: "qemu-system-x86_64 -drive file=/var/lib/zd/vm1.qcow2"}]
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.qemu import (
    ImageLocked, SizeError, assert_not_locked, diff_view, human_size, image_info,
    parse_image_size, raise_if_locked, resolve_backing)
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
            os.path.abspath(params['source']) == os.path.abspath(params['path']):
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

    def read(self, path=None):
        path = path or self.path
        if not os.path.exists(path):
            return None
        if os.path.isdir(path):
            self.runner.fail("path: '%s' is a directory, not an image file" % path)
        try:
            return image_info(self.runner, path)
        except CommandError as e:
            self.runner.fail("'%s' is not an image qemu-img can read" % path, error=e)

    def backing_format(self):
        if self.params['backing_format']:
            return self.params['backing_format']
        backing = resolve_backing(self.path, self.params['backing_file'])
        info = self.read(backing)
        if info is None:
            self.runner.fail("backing_file: '%s' does not exist (resolved relative to the image's "
                             "directory: %s)" % (self.params['backing_file'], backing))
        return info['format']

    def source_info(self):
        source = os.path.abspath(self.params['source'])
        info = self.read(source)
        if info is None:
            self.runner.fail("source: '%s' does not exist" % source)
        return info

    def create(self, size):
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
                             "to create it" % self.path)
        argv += option_args(self.params['options'])
        argv.append(self.path)
        if size is not None:
            argv.append(str(size))
        self.write(argv)
        return predicted

    def convert(self, source):
        fmt = self.params['format'] or DEFAULT_FORMAT
        sfmt = self.params['source_format'] or source['format']
        # A copy of an image that a VM still writes to would be inconsistent.
        assert_not_locked(self.runner, source['path'])
        argv = ['qemu-img', 'convert', '-q', '-f', sfmt, '-O', fmt]
        argv += option_args(self.params['options'])
        argv += [source['path'], self.path]
        self.write(argv)
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

    def resize(self, info, size):
        argv = ['qemu-img', 'resize', '-q', '-f', info['format']]
        if size < info['virtual_size']:
            argv.append('--shrink')
        argv += [self.path, str(size)]
        self.write(argv)

    def write(self, argv):
        try:
            self.runner.run(argv, changes=True)
        except CommandError as e:
            raise_if_locked(e, self.path)

    def present(self, before, size):
        p = self.params
        if before is None:
            if p['source']:
                after = self.convert(self.source_info())
            else:
                after = self.create(size)
            if size is not None and p['source'] and after['virtual_size'] != size:
                self.grow_or_shrink(after, size, existing=False)
                after['virtual_size'] = size
            return after

        wrong = mismatches(before, p, self.path)
        # An existing image is compared with its source only when force may re-convert it (the
        # source may be gone by now).
        source = self.source_info() if p['source'] and p['force'] else None
        if not wrong and source and p['force'] and self.differs_from_source(before, source):
            wrong = [('source', source['path'], 'different contents or size')]
        if wrong:
            if not p['force']:
                detail = '; '.join("%s is %s, not %s" % (f, have, want) for f, want, have in wrong)
                self.runner.fail(
                    "existing image '%s' differs from the request (%s). It is never overwritten: "
                    "set force: true to recreate it (its contents are lost), or change %s to "
                    "match it" % (self.path, detail, ', '.join(w[0] for w in wrong)),
                    mismatches=[{'field': f, 'wanted': w, 'found': h} for f, w, h in wrong])
            assert_not_locked(self.runner, self.path)
            after = self.convert(source) if source else self.create(
                size if size is not None else (None if p['backing_file']
                                               else before['virtual_size']))
            if size is not None and after['virtual_size'] != size:
                self.grow_or_shrink(after, size, existing=False)
                after['virtual_size'] = size
            return after

        after = dict(diff_view(before))
        if size is not None and size != before['virtual_size']:
            self.grow_or_shrink(before, size, existing=True)
            after['virtual_size'] = size
        return after

    def grow_or_shrink(self, info, size, existing):
        if size < info['virtual_size'] and not self.params['allow_shrink']:
            self.runner.fail(
                "size: %s (%d bytes) is smaller than the image's %s (%d bytes); shrinking "
                "destroys the data beyond the new end: set allow_shrink: true to shrink it"
                % (self.params['size'], size, human_size(info['virtual_size']),
                   info['virtual_size']))
        if existing:
            assert_not_locked(self.runner, self.path)
        self.resize(info, size)

    def absent(self, before):
        if before is None:
            return None
        if not self.params['force']:
            assert_not_locked(self.runner, self.path)
        self.runner.run(['rm', '-f', '--', self.path], changes=True)
        return None


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
        module.fail_json(msg='; '.join(errors), errors=errors, commands=[])

    img = QemuImg(module)
    state = module.params['state']
    before = img.read()
    try:
        if state == 'absent':
            after = img.absent(before)
        else:
            after = img.present(before, size)
    except ImageLocked as e:
        img.runner.fail(str(e), holders=e.holders)
    except CommandError as e:
        img.runner.fail(str(e), error=e)

    changed = bool(img.runner.changes)
    if changed and not module.check_mode:
        after = img.read()
    info = after if (after is None or 'path' in after) else dict(after, path=img.path)
    result = dict(changed=changed, path=img.path, exists=after is not None, info=info,
                  commands=img.runner.changes)
    if module._diff:
        result['diff'] = {'before': diff_view(before), 'after': diff_view(after)}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
