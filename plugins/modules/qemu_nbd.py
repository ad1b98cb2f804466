#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: qemu_nbd
short_description: Attach a QEMU disk image to an nbd block device with qemu-nbd, or detach it
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Attaches an image (qcow2, raw, ...) to a network block device C(/dev/nbdN) with
    C(qemu-nbd --connect), so that its partitions can be formatted and mounted on the host, and
    detaches it again (C(qemu-nbd --disconnect)).
  - Idempotent through sysfs, also for attachments made by hand (C(qemu-nbd -c /dev/nbd0 img)).
    C(/sys/block/nbdN/pid) names the serving qemu-nbd process, whose command line and open files
    give the image, compared by real path. An image that is already attached is reported
    unchanged.
  - Without O(device), the first free device is used (no C(/sys/block/nbdN/pid), size 0).
  - After attaching, the partition table is re-read (C(blockdev --rereadpt)) and the module waits
    for the partition device nodes, so RV(partitions) can be formatted and mounted at once.
  - O(state=absent) first unmounts every mount point of the device and of its partitions
    (deepest first), then detaches and waits until sysfs shows the device free.
  - Refuses an image that another process holds (QEMU's image lock, for example a running VM),
    naming the process.
  - Only images are attached. qemu-img reads any file it does not recognise (a text file, an
    archive) as raw, so such a file is attached only when its content shows a disk (a whole
    number of 512-byte sectors starting with a partition table, a file system or swap
    signature, or zeros; the rule of M(zerodrop.testbed.qemu_img)) or when O(format=raw) is
    named.
  - On failure nothing stays. The image, its format, the device name and the driver are
    checked first, and an attach that fails part of the way is undone (the device detached,
    the driver unloaded if this call loaded it). A detach that fails after unmounting leaves
    those mount points unmounted and says so (C(changed=true)).
  - B(Mounting) is left to M(ansible.posix.mount) (see the examples), which already handles file
    system types, options, C(/etc/fstab) and check mode; use its C(state=ephemeral) because
    C(/dev/nbdN) names are not stable across boots. This module only unmounts on detach, because
    detaching a mounted device would lose data.
options:
  image:
    description: Path of the image. Required with O(state=present).
    type: path
  state:
    description: C(present) attaches the image; C(absent) detaches it (unmounting first).
    type: str
    choices: [present, absent]
    default: present
  device:
    description:
      - The nbd device, e.g. C(/dev/nbd0). Default for O(state=present) is the first free one.
      - With O(state=absent) it selects the device to detach (when O(image) is also given, the
        device must serve that image).
    type: str
  format:
    description:
      - Image format given to C(qemu-nbd --format). Default is the format that C(qemu-img info)
        reads from the image.
      - It must be a format qemu-img knows and the one qemu-img reads from the image (a qcow2
        file attached as raw would show its container, and writes would damage it); C(raw)
        also attaches a raw file whose content does not look like a disk.
    type: str
  read_only:
    description:
      - Attach read-only (C(qemu-nbd --read-only)).
      - An image attached with the other mode is an error (detach it first).
    type: bool
    default: false
  partition_scan:
    description: Re-read the partition table after attaching (needs the driver's C(max_part) > 0).
    type: bool
    default: true
  load_module:
    description: Load the nbd driver (C(modprobe nbd max_part=O(max_part))) when it is not loaded.
    type: bool
    default: true
  max_part:
    description: Partitions per device when this module loads the driver.
    type: int
    default: 16
  timeout:
    description: Seconds to wait for the kernel to show an attach, a detach or partition nodes.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Reads sysfs and the image lock and reports the commands it would run; attaches,
      detaches, unmounts and loads nothing.
  diff_mode:
    support: full
    description: Shows the device and image before and after.
  platform:
    support: full
    platforms: linux
    description: Linux with the nbd driver (CONFIG_BLK_DEV_NBD).
notes:
  - Needs root, C(qemu-nbd) and C(qemu-img) (Debian package C(qemu-utils)), C(blockdev) and
    C(umount) (util-linux), and a kernel with the nbd driver (C(CONFIG_BLK_DEV_NBD)). Where the
    kernel has none (no C(/sys/module/nbd), no C(/dev/nbd0) and C(modprobe nbd) fails) the
    module fails saying so; run it in a guest VM or on another kernel.
seealso:
  - module: zerodrop.testbed.qemu_img
  - module: ansible.posix.mount
'''

EXAMPLES = r'''
# The lab notes' "mount a qemu partition": modprobe nbd max_part=16; qemu-nbd -c /dev/nbd0 img;
# partprobe /dev/nbd0; mount /dev/nbd0p1 /qemu_mnt
- name: Attach the dataset disk
  zerodrop.testbed.qemu_nbd:
    image: /var/lib/zd/dataset.img
    format: raw
  register: dataset_nbd

- name: Mount its first partition (runtime only, no fstab entry)
  ansible.posix.mount:
    src: "{{ dataset_nbd.partitions[0] }}"
    path: /qemu_mnt
    fstype: ext4
    state: ephemeral

- name: Unmount and detach
  zerodrop.testbed.qemu_nbd:
    image: /var/lib/zd/dataset.img
    state: absent

- name: Look into a VM's system disk, read-only, on a given device
  zerodrop.testbed.qemu_nbd:
    image: /var/lib/zd/vm1.qcow2
    device: /dev/nbd3
    read_only: true
'''

RETURN = r'''
device:
  description: The nbd device that serves the image (null when detached or never attached).
  returned: always
  type: str
  sample: /dev/nbd0
partitions:
  description: Partition device nodes of the attached image.
  returned: always
  type: list
  elements: str
  sample: [/dev/nbd0p1, /dev/nbd0p2]
pid:
  description: Process id of the qemu-nbd serving the device (null in check mode or detached).
  returned: always
  type: int
  sample: 2345
image:
  description: Real path of the image.
  returned: always
  type: str
  sample: /var/lib/zd/dataset.img
read_only:
  description: Whether the device is read-only.
  returned: always
  type: bool
mounts:
  description: Mount points of the device and its partitions.
  returned: always
  type: list
  elements: str
  sample: [/qemu_mnt]
detached:
  description: Devices detached by O(state=absent).
  returned: always
  type: list
  elements: str
  sample: [/dev/nbd0]
unmounted:
  description: Mount points unmounted by O(state=absent) before detaching.
  returned: always
  type: list
  elements: str
  sample: [/qemu_mnt]
commands:
  description: The commands run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/qemu-nbd", "--connect=/dev/nbd0", "--format=raw", "/var/lib/zd/dataset.img"]]
rolled_back:
  description: The commands that undid a failed attach (detach, driver unload).
  returned: failure after a change
  type: list
  elements: list
  sample: [["/usr/bin/qemu-nbd", "--disconnect", "/dev/nbd0"]]
holders:
  description: Processes that hold the image, when attaching was refused because of its lock.
  returned: failure
  type: list
  elements: dict
  sample: [{pid: 4242, cmdline: "qemu-system-x86_64 -drive file=/var/lib/zd/vm1.qcow2"}]
'''

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.qemu import (
    NBD_MISSING, ImageLocked, NbdSysfs, assert_not_locked, image_info, raise_if_locked,
    raw_disk_evidence, unknown_formats)
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import CommandError, Runner

_DEVICE = re.compile(r'^/dev/(nbd[0-9]+)$')


def validate(params):
    errors = []
    if params['state'] == 'present' and not params['image']:
        errors.append('image: required with state: present')
    if params['state'] == 'absent' and not (params['image'] or params['device']):
        errors.append('image or device: give the image or the device to detach')
    if params['device'] is not None and not _DEVICE.match(params['device']):
        errors.append("device: '%s' is not an nbd device (use /dev/nbdN, e.g. /dev/nbd0; "
                      "partitions such as /dev/nbd0p1 come with it)" % params['device'])
    if params['max_part'] < 0:
        errors.append('max_part: must be 0 or more')
    if params['timeout'] <= 0:
        errors.append('timeout: must be a positive number of seconds')
    return errors


class NbdTimeout(Exception):
    pass


class NbdRefused(Exception):
    """The device asked for (or every device) cannot take the image."""


class QemuNbd(object):
    def __init__(self, module, sysfs=None):
        self.module = module
        self.params = module.params
        self.runner = Runner(module)
        self.sysfs = sysfs or NbdSysfs()
        image = module.params['image']
        self.image = os.path.realpath(image) if image else None
        # What this call did that a failure undoes: the driver it loaded, the device it attached.
        self.loaded_driver = False
        self.connected = None
        self.unmounted = []

    def wait(self, what, predicate):
        if self.module.check_mode:
            return
        deadline = time.monotonic() + self.params['timeout']
        while not predicate():
            if time.monotonic() > deadline:
                raise NbdTimeout('timed out after %ds waiting for %s'
                                 % (self.params['timeout'], what))
            time.sleep(0.1)

    def check_image(self):
        """The image exists, is an image, and the format fits it: checked before anything."""
        given = self.params['image']
        if not os.path.lexists(given) or not os.path.exists(self.image):
            self.runner.fail("image: '%s' does not exist" % given, changed=False)
        if os.path.isdir(self.image):
            self.runner.fail("image: '%s' is a directory, not an image file" % given,
                             changed=False)
        if not os.path.isfile(self.image):
            self.runner.fail("image: '%s' is not a regular file; qemu_nbd attaches image files"
                             % given, changed=False)
        fmt = self.params['format']
        errors = unknown_formats(self.runner, [('format', fmt)])
        if errors:
            self.runner.fail(errors[0], changed=False)
        try:
            found = image_info(self.runner, self.image)['format']
        except CommandError as e:
            self.runner.fail("image: '%s' is not an image qemu-img can read" % given, error=e,
                             changed=False)
        if fmt and fmt != found:
            self.runner.fail(
                "format: '%s' but qemu-img reads '%s' as %s; attached as %s its contents would "
                "be misread (and writes would damage it): give format: %s or leave format unset"
                % (fmt, given, found, fmt, found), changed=False)
        if found == 'raw' and not fmt:
            evidence, why_not = raw_disk_evidence(self.image)
            if evidence is None:
                self.runner.fail(
                    "image: '%s' is not a disk image: qemu-img reads any file it does not "
                    "recognise as raw, and %s. Name format: raw to attach it anyway"
                    % (given, why_not), changed=False)
        return fmt or found

    def ensure_driver(self):
        """Load the nbd driver when needed; False when it would be loaded (check mode)."""
        if self.sysfs.loaded():
            return True
        if not self.params['load_module']:
            self.runner.fail(NBD_MISSING.format(why='no /sys/module/nbd and no /dev/nbd0; '
                                                'load_module is false'), changed=False)
        modprobe = self.module.get_bin_path('modprobe')
        if modprobe is None:
            self.runner.fail(NBD_MISSING.format(why='no /sys/module/nbd, no /dev/nbd0 and no '
                                                'modprobe program'), changed=False)
        probe = self.runner.run([modprobe, '--dry-run', 'nbd'], check_rc=False)
        if probe.rc != 0:
            self.runner.fail(NBD_MISSING.format(
                why='no /sys/module/nbd, no /dev/nbd0, and modprobe cannot load it: %s'
                % (probe.stderr or probe.stdout).strip()), changed=False, **probe.as_dict())
        try:
            self.runner.run([modprobe, 'nbd', 'max_part=%d' % self.params['max_part']],
                            changes=True)
        except CommandError as e:
            self.runner.fail(NBD_MISSING.format(why='modprobe nbd failed'), error=e,
                             changed=False)
        self.loaded_driver = not self.module.check_mode
        self.wait('the nbd driver to create /sys/block/nbd0',
                  lambda: bool(self.sysfs.devices()))
        return not self.module.check_mode

    def describe(self, att, mounts=True):
        if att is None:
            return dict(device=None, partitions=[], pid=None, image=self.image,
                        read_only=self.params['read_only'], mounts=[])
        return dict(device=att['device'], partitions=att['partitions'], pid=att['pid'],
                    image=att['image'], read_only=att['read_only'],
                    mounts=self.sysfs.mounts(att['name']) if mounts else [])

    def choose_device(self):
        devices = self.sysfs.devices()
        wanted = self.params['device']
        if wanted:
            name = _DEVICE.match(wanted).group(1)
            if devices and name not in devices:
                raise NbdRefused("device: %s does not exist; this kernel has /dev/nbd0 to "
                                 "/dev/%s (the driver's nbds_max)" % (wanted, devices[-1]))
            att = self.sysfs.attachment(name) if devices else None
            if att or (devices and not self.sysfs.is_free(name)):
                raise NbdRefused("device: %s is busy (serving %s, qemu-nbd pid %s); choose "
                                 "another device or leave device unset for the first free one"
                                 % (wanted, att and att['image'], att and att['pid']))
            return name
        if not devices:
            return 'nbd0'  # check mode, driver not loaded yet
        for name in devices:
            if self.sysfs.is_free(name):
                return name
        raise NbdRefused('no free nbd device (all of /dev/nbd0 to /dev/%s are in use): detach '
                         'one, or reload the driver with a larger nbds_max' % devices[-1])

    def present(self):
        fmt = self.check_image()
        existing = [a for a in self.sysfs.attachments() if a['image'] == self.image] \
            if self.sysfs.loaded() else []
        if existing:
            att = existing[0]
            if self.params['device'] and att['device'] != self.params['device']:
                self.runner.fail("device: image '%s' is already attached at %s, not %s; detach "
                                 "it first (state: absent)"
                                 % (self.image, att['device'], self.params['device']),
                                 changed=False)
            if att['read_only'] != self.params['read_only']:
                self.runner.fail("read_only: image '%s' is attached %s at %s; detach it first "
                                 "(state: absent) to attach it %s"
                                 % (self.image, 'read-only' if att['read_only'] else 'read-write',
                                    att['device'], 'read-only' if self.params['read_only']
                                    else 'read-write'), changed=False)
            return None, att

        # Not attached here: any holder of the image lock is another process (a VM, qemu-nbd).
        assert_not_locked(self.runner, self.image)
        loaded = self.ensure_driver()
        name = self.choose_device() if loaded else (
            _DEVICE.match(self.params['device']).group(1) if self.params['device'] else 'nbd0')
        device = '/dev/' + name
        argv = ['qemu-nbd', '--connect=%s' % device, '--format=%s' % fmt]
        if self.params['read_only']:
            argv.append('--read-only')
        argv.append(self.image)
        try:
            self.runner.run(argv, changes=True)
        except CommandError as e:
            raise_if_locked(e, self.image)
        self.connected = None if self.module.check_mode else device
        self.wait('%s to show the attachment in /sys/block/%s/pid' % (device, name),
                  lambda: self.sysfs.pid(name) is not None)
        self.scan_partitions(name)
        if self.module.check_mode:
            return None, {'device': device, 'name': name, 'pid': None, 'image': self.image,
                          'read_only': self.params['read_only'], 'partitions': []}
        return None, self.sysfs.attachment(name)

    def scan_partitions(self, name):
        if not self.params['partition_scan']:
            return
        max_part = self.sysfs.max_part()
        if max_part == 0:
            self.module.warn('the nbd driver was loaded with max_part=0, so the kernel shows no '
                             'partitions: reload it with `modprobe -r nbd; modprobe nbd '
                             'max_part=16`')
            return
        self.runner.run(['blockdev', '--rereadpt', '/dev/' + name], changes=True)

        def nodes_exist():
            parts = self.sysfs.partitions(name)
            return all(os.path.exists(os.path.join(self.sysfs.dev, p)) for p in parts)
        self.wait('the partition device nodes of /dev/%s' % name, nodes_exist)

    def absent(self):
        if not self.sysfs.loaded():
            return [], [], None
        if self.params['device']:
            name = _DEVICE.match(self.params['device']).group(1)
            att = self.sysfs.attachment(name)
            if att and self.image and att['image'] != self.image:
                self.runner.fail("device: %s serves '%s', not image '%s'; nothing was detached"
                                 % (self.params['device'], att['image'], self.image),
                                 changed=False)
            targets = [att] if att else []
        else:
            targets = [a for a in self.sysfs.attachments() if a['image'] == self.image]
        detached = []
        for att in targets:
            for point in self.sysfs.mounts(att['name']):
                self.runner.run(['umount', point], changes=True)
                self.unmounted.append(point)
            self.runner.run(['qemu-nbd', '--disconnect', att['device']], changes=True)
            self.wait('%s to be free after detaching' % att['device'],
                      lambda: self.sysfs.pid(att['name']) is None)
            detached.append(att['device'])
        return detached, self.unmounted, targets[0] if targets else None

    def fail(self, msg, error=None, **kwargs):
        """Fail; an attach that got part of the way is undone first (detached, driver unloaded).
        Unmounts of a failed detach are not undone: ``changed`` says so."""
        if self.module.check_mode:
            self.runner.fail(msg, error=error, changed=False, **kwargs)
        done = len(self.runner.changes)
        left = []
        if self.connected:
            name = os.path.basename(self.connected)
            try:
                self.runner.run(['qemu-nbd', '--disconnect', self.connected], changes=True)
                self.wait('%s to be free after detaching' % self.connected,
                          lambda: self.sysfs.pid(name) is None)
            except (CommandError, NbdTimeout) as e:
                left.append('%s stays attached (%s)' % (self.connected, e))
        if self.loaded_driver and not left:
            try:
                self.runner.run(['modprobe', '-r', 'nbd'], changes=True)
            except CommandError as e:
                left.append('the nbd driver stays loaded (%s)' % e)
        if self.unmounted:
            left.append('unmounted before the failure: %s' % ', '.join(self.unmounted))
        undone = self.runner.changes[done:]
        if undone and not left:
            msg += '. Undone: %s' % '; '.join(' '.join(c) for c in undone)
        if left:
            msg += '. What stays: %s' % '; '.join(left)
        self.runner.fail(msg, error=error, changed=bool(left), rolled_back=undone, **kwargs)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            image=dict(type='path'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            device=dict(type='str'),
            format=dict(type='str'),
            read_only=dict(type='bool', default=False),
            partition_scan=dict(type='bool', default=True),
            load_module=dict(type='bool', default=True),
            max_part=dict(type='int', default=16),
            timeout=dict(type='int', default=30),
        ),
        supports_check_mode=True,
    )
    errors = validate(module.params)
    if errors:
        module.fail_json(msg='; '.join(errors), errors=errors, commands=[], changed=False)

    nbd = QemuNbd(module)
    detached, unmounted = [], []
    with Guard(module, nbd.runner) as guard:
        try:
            if module.params['state'] == 'present':
                guard.doing('attach the image', nbd.image)
                before, after = nbd.present()
                if not nbd.runner.changes:
                    before = after
            else:
                guard.doing('detach', module.params['device'] or nbd.image)
                detached, unmounted, before = nbd.absent()
                after = None
        except ImageLocked as e:
            nbd.fail(str(e), holders=e.holders)
        except CommandError as e:
            nbd.fail(str(e), error=e)
        except (NbdTimeout, NbdRefused) as e:
            nbd.fail(str(e))
        result = nbd.describe(after, mounts=not module.check_mode)
    if after is None and before is not None:
        result['image'] = before['image']
    result.update(changed=bool(nbd.runner.changes), commands=nbd.runner.changes,
                  detached=detached, unmounted=unmounted)
    if module._diff:
        result['diff'] = {
            'before': {'device': before['device'], 'image': before['image']} if before else {},
            'after': {'device': after['device'], 'image': after['image']} if after else {},
        }
    module.exit_json(**result)


if __name__ == '__main__':
    main()
