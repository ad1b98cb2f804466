# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local lab's guests as the hypervisor role's ``hypervisor_vms``.

One VM per host of group ``vms`` whose ``lab_vm_mode`` is one of ``lab_modes``: the mode's built
kernel (``lab_kernels``) or else the image's, a copy-on-write disk over the image, SSH forwarded
from ``ansible_port``, one NIC on ``lab_bridge`` whose ingress is shaped on ``it-<host>``.

``build()`` is pure: ``playbooks/site_hypervisor.yml`` calls it through the filter
``zerodrop.testbed.lab_vms``. Bad input raises ``ValueError`` naming every variable at fault.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.collections import is_sequence
from ansible.module_utils.six import string_types

from ansible_collections.zerodrop.testbed.plugins.module_utils.units import UnitError, parse_rate

DEFAULT_MODE = 'baseline'
# The lab's variables build() reads, by the name the filter takes them.
REQUIRED = ('lab_modes', 'vm_image', 'lab_vm_dir', 'lab_vm_memory', 'lab_vm_cpus', 'lab_bridge',
            'lab_tap_sndbuf', 'lab_bottleneck_rate', 'lab_calibration_open_rate')
# lab_kernels: {mode: kernel_build artifacts}, set by site_kernels.yml for the modes it built.
# shapers: tc_qdisc_info's ``devices`` ({device: [qdisc, ...]}), read where a calibration may
# have left its shapers (lab_bottleneck_rate auto).
# lab_kernel_append: {kernel build name: words added to the kernel command line of the guests
# booted on that build} (see inventories/local/group_vars/all/lab.yml for why vm-tbf has one).
OPTIONAL = {'lab_kernels': {}, 'shapers': {}, 'lab_kernel_append': {}}


def tap(host):
    return 't-%s' % host


def ifb(host):
    return 'it-%s' % host


def whole(value):
    """``value`` as an int if it is a whole number (an int, or text of one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, string_types) and value.strip().lstrip('+').isdigit():
        return int(value)
    return None


def calibrated_rate(qdiscs):
    """The rate of the root tbf a calibration left on an ifb, as tc text ('%dbit'), or None.

    ``qdiscs`` is one device's list in tc_qdisc_info's form (rates in bytes/s).
    """
    for qdisc in qdiscs or []:
        if qdisc.get('parent') == 'root' and qdisc.get('kind') == 'tbf':
            rate = (qdisc.get('options') or {}).get('rate')
            if whole(rate) is None:
                raise ValueError('shapers: the tbf of %s has no rate in bytes/s (%r): pass '
                                 "zerodrop.testbed.tc_qdisc_info's devices"
                                 % (qdisc.get('device', 'a device'), rate))
            return '%dbit' % (whole(rate) * 8)
    return None


class Lab(object):
    """One build; ``errors`` collects every problem, each naming its variable."""

    def __init__(self, given):
        self.errors = []
        unknown = sorted(set(given) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            self.errors.append('unknown variables %s; lab_vms reads %s'
                               % (', '.join(unknown), ', '.join(REQUIRED + tuple(sorted(OPTIONAL)))))
        for name in REQUIRED:
            if name not in given or given[name] is None:
                self.errors.append('%s is not set: give it in the inventory (see '
                                   'inventories/local/group_vars/all/lab.yml)' % name)
        self.v = dict(OPTIONAL, **given)
        for name in OPTIONAL:
            if self.v[name] is None:
                self.v[name] = {}

    def check(self):
        """The checks of the lab-wide variables (once all required ones are there)."""
        v = self.v
        modes = v['lab_modes']
        if isinstance(modes, string_types) or not is_sequence(modes):
            self.errors.append('lab_modes must be a list of modes like [baseline, zd], got %r'
                               % (modes,))
        for name in ('lab_kernels', 'shapers', 'vm_image', 'lab_kernel_append'):
            if not isinstance(v[name], dict):
                self.errors.append('%s must be a dict, got %r' % (name, v[name]))
        for name in ('lab_vm_dir', 'lab_bridge'):
            if not isinstance(v[name], string_types) or not v[name]:
                self.errors.append('%s must be a non-empty string, got %r' % (name, v[name]))
        for name, what in (('lab_vm_memory', 'a size in MiB (e.g. 1024)'),
                           ('lab_vm_cpus', 'a number of virtual CPUs (e.g. 1)'),
                           ('lab_tap_sndbuf', 'a tap send buffer in bytes (e.g. 32768)')):
            number = whole(v[name])
            if number is None or number < 1:
                self.errors.append('%s %r is not %s: give a whole number of at least 1'
                                   % (name, v[name], what))
        if v['lab_bottleneck_rate'] != 'auto':
            self.rate('lab_bottleneck_rate', 'auto or a rate like 30mbit')
        else:
            self.rate('lab_calibration_open_rate', 'a rate like 1gbit')

    def rate(self, name, fix):
        try:
            parse_rate(self.v[name])
        except UnitError as e:
            self.errors.append('%s: %s; give %s' % (name, e, fix))

    def kernel(self, host, mode):
        """(kernel, initrd) of a guest: the mode's built kernel, else the image's."""
        built = self.v['lab_kernels'].get(mode)
        if built:
            if not isinstance(built, dict) or not built.get('image'):
                self.errors.append('lab_kernels.%s has no image (the kernel_build artifacts of '
                                   'mode %s): build the kernel again or remove the entry'
                                   % (mode, mode))
                return None, None
            return built['image'], None
        image = self.v['vm_image']
        missing = [k for k in ('kernel', 'initrd') if not image.get(k)]
        if missing:
            self.errors.append('%s (mode %s, no built kernel in lab_kernels): vm_image has no %s: '
                               'run the zerodrop.testbed.vm_image role first'
                               % (host, mode, ' or '.join(missing)))
        return image.get('kernel'), image.get('initrd')

    def append(self, mode):
        """The image's kernel command line plus lab_kernel_append's words for the mode's build."""
        words = self.v['vm_image'].get('append')
        built = self.v['lab_kernels'].get(mode)
        table = self.v['lab_kernel_append']
        extra = table.get(built.get('name')) if isinstance(built, dict) and isinstance(table, dict) else None
        if extra and words:
            return '%s %s' % (words, ' '.join(extra) if isinstance(extra, list) else extra)
        return words

    def shaper_rate(self, host):
        v = self.v
        if v['lab_bottleneck_rate'] != 'auto':
            return v['lab_bottleneck_rate']
        try:
            found = calibrated_rate(v['shapers'].get(ifb(host)))
        except ValueError as e:
            self.errors.append(str(e))
            found = None
        return found or v['lab_calibration_open_rate']

    def vm(self, index, hostvars):
        v = self.v
        if not hasattr(hostvars, 'get') or not hostvars.get('inventory_hostname'):
            self.errors.append("hosts[%d] is no host's variables (%r): pass groups['vms'] | "
                               "map('extract', hostvars) | list" % (index, hostvars))
            return None
        host = str(hostvars.get('inventory_hostname'))
        mode = hostvars.get('lab_vm_mode', DEFAULT_MODE)
        if not isinstance(mode, string_types):
            self.errors.append('%s: lab_vm_mode %r is not a mode name: give one of %s'
                               % (host, mode, ', '.join(str(m) for m in v['lab_modes'])))
            return None
        if mode not in v['lab_modes']:
            return None
        for name, what in (('ansible_port', 'the port forwarded to its SSH'),
                           ('lab_vm_mac', 'a MAC of its own')):
            if hostvars.get(name) is None:
                self.errors.append('%s: %s is not set: give every host of group vms %s in the '
                                   'inventory' % (host, name, what))
        port = hostvars.get('ansible_port')
        if port is not None and not 1 <= (whole(port) or 0) <= 65535:
            self.errors.append('%s: ansible_port %r is not a TCP port: give the port forwarded to '
                               'its SSH (1-65535)' % (host, port))
        kernel, initrd = self.kernel(host, mode)
        image = v['vm_image']
        return {
            'name': host,
            'memory': v['lab_vm_memory'],
            'cpus': v['lab_vm_cpus'],
            'kernel': kernel,
            'initrd': initrd,
            'append': self.append(mode),
            'disks': [{'path': '%s/%s.qcow2' % (v['lab_vm_dir'], host),
                       'backing_file': image.get('base_image'),
                       'backing_format': 'qcow2'}],
            'user_net': {'ssh_port': port},
            'nics': [{'bridge': v['lab_bridge'],
                      'mac': hostvars.get('lab_vm_mac'),
                      'tap': tap(host),
                      'sndbuf': v['lab_tap_sndbuf'],
                      'ingress': {'ifb': ifb(host), 'rate': self.shaper_rate(host)}}]}


def build(hosts, given):
    """``hypervisor_vms`` of the lab: ``hosts`` the vms group's host variables (each with
    inventory_hostname, lab_vm_mode, ansible_port, lab_vm_mac), ``given`` the lab variables of
    REQUIRED and OPTIONAL by name. Raises ValueError listing every problem."""
    lab = Lab(given)
    if lab.errors:
        raise ValueError('; '.join(lab.errors))
    lab.check()
    if isinstance(hosts, string_types) or not is_sequence(hosts):
        lab.errors.append("the vms group's hosts must be a list of their variables (groups['vms'] "
                          "| map('extract', hostvars) | list), got %r" % (hosts,))
    if lab.errors:
        raise ValueError('; '.join(lab.errors))
    if 'base_image' not in lab.v['vm_image'] or 'append' not in lab.v['vm_image']:
        lab.errors.append('vm_image has no base_image or append: run the zerodrop.testbed.vm_image '
                          'role first')
    vms = [lab.vm(i, h) for i, h in enumerate(hosts)]
    if lab.errors:
        raise ValueError('; '.join(lab.errors))
    return [vm for vm in vms if vm is not None]
