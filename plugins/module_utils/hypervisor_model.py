# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hypervisor role's data model: hypervisor_vms and hypervisor_bridges with every default
filled in, the derived paths and device names, and every validation error.

``build()`` is pure: the role's validate step calls it through the filter
``zerodrop.testbed.hypervisor_model`` and fails listing all errors before its first change.
Defaults are read from the role's argument spec (``options``), so ``meta/argument_specs.yml``
is the one place that states them. VNC passwords stay out of the model: the task that writes a
VM's secret file reads the password from ``hypervisor_vms`` itself.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import device_name
from ansible_collections.zerodrop.testbed.plugins.module_utils.units import (
    UnitError, parse_rate, parse_size)

NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*\Z')
# Device names also go into QEMU option strings (ifname=...), file names and OVS commands:
# narrower than what the kernel takes.
DEVICE_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*\Z')
MAC_RE = re.compile(r'[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z')
NULL_MAC = '00:00:00:00:00:00'
# sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
UNIX_PATH_MAX = 107
VNC_DISPLAY_MAX = 65535 - 5900

# Role variables the model reads; a missing one takes its default from the argument spec.
SETTINGS = ('hypervisor_rundir', 'hypervisor_logdir', 'hypervisor_hostfwd_address',
            'hypervisor_vm_rng', 'hypervisor_ssh_user', 'hypervisor_ssh_key',
            'hypervisor_vm_groups', 'hypervisor_wait_ssh')
# Role variables that are paths: they end up in unit files and scripts, where a control
# character cannot be written; the first two also in QEMU option strings, where a comma splits.
PATH_SETTINGS = ('hypervisor_rundir', 'hypervisor_logdir', 'hypervisor_ovs_rundir',
                 'hypervisor_helper_dir', 'hypervisor_tap_scripts_dir', 'hypervisor_unit_dir',
                 'hypervisor_state_file')
QEMU_OPTION_PATHS = ('hypervisor_rundir', 'hypervisor_logdir')


class Spec(object):
    """The argument spec's options of one level, for defaults and known keys."""

    def __init__(self, options):
        self.options = options or {}

    def sub(self, name):
        return Spec(self.options[name].get('options'))

    def default(self, name):
        return copy.deepcopy(self.options[name].get('default'))

    def get(self, given, name):
        """``given[name]`` if given (even when null), else the spec's default."""
        if name in given:
            return given[name]
        return self.default(name)

    def unknown(self, given):
        return sorted(str(k) for k in given if k not in self.options)


def settings_from(options, given):
    """The role variables the model reads: ``given`` filled with the spec's defaults."""
    spec = Spec(options)
    unknown = sorted(set(given) - set(SETTINGS) - set(PATH_SETTINGS))
    if unknown:
        raise ValueError('unknown settings %s; the model reads %s'
                         % (', '.join(unknown), ', '.join(SETTINGS + PATH_SETTINGS)))
    return dict((name, spec.get(given, name)) for name in SETTINGS + PATH_SETTINGS)


def whole(value):
    """``value`` as an int if it is a whole number (an int, or text of one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and re.match(r'\s*[-+]?[0-9]+\s*\Z', value):
        return int(value)
    return None


def boolean(value):
    """``value`` as a bool as Ansible reads one (true/yes/on/1 ...), else None."""
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    text = str(value).lower() if isinstance(value, str) else value
    if text in BOOLEANS_TRUE:
        return True
    if text in BOOLEANS_FALSE:
        return False
    return None


def control_characters(text):
    return sorted(set(repr(c) for c in text if ord(c) < 32 or ord(c) == 127))


def device_error(field, value, derived_from=None):
    """An error for a device name that the kernel, QEMU or a file name cannot take, or None."""
    error = device_name(field, value)
    if not error and not DEVICE_RE.match(str(value)):
        error = ('%s %r: use letters, digits and . _ - only, starting with a letter or digit'
                 % (field, str(value)))
    if error and derived_from:
        error = ('%s is not set and its default (%s) %r is no device name (1-15 characters: '
                 'letters, digits and . _ -): set %s' % (field, derived_from, str(value), field))
    return error


def mac_error(field, mac):
    """An error for a MAC a NIC cannot use, or None (``mac`` is lower case)."""
    if not MAC_RE.match(mac):
        return '%s "%s" is not a MAC address like 52:54:00:12:34:57' % (field, mac)
    if int(mac[1], 16) % 2 == 1:
        return ('%s %s is a multicast address; use an even first octet (52:54:00:... is QEMU\'s)'
                % (field, mac))
    if mac == NULL_MAC:
        return ('%s %s is the null address, which no NIC may have; use a unicast address like '
                '52:54:00:12:34:57' % (field, mac))
    return None


class Model(object):
    """One build of the model; ``errors`` collects every problem in input order."""

    def __init__(self, options, settings):
        self.spec = Spec(options)
        self.bridge_spec = self.spec.sub('hypervisor_bridges')
        self.vm_spec = self.spec.sub('hypervisor_vms')
        self.disk_spec = self.vm_spec.sub('disks')
        self.nic_spec = self.vm_spec.sub('nics')
        self.ingress_spec = self.nic_spec.sub('ingress')
        self.user_net_spec = self.vm_spec.sub('user_net')
        self.vnc_spec = self.vm_spec.sub('vnc')
        self.ssh_spec = self.vm_spec.sub('ssh')
        self.settings = settings
        self.errors = []
        self.vms = []
        self.bridges = []
        self.macs = {}
        self.devices = {}
        self.ports = {}
        self.vnc_displays = {}

    def error(self, where, message):
        self.errors.append('%s: %s' % (where, message) if where else message)

    def check_settings(self):
        for name in PATH_SETTINGS:
            value = self.settings[name]
            if not isinstance(value, str) or not value:
                self.error(None, '%s must be a path, got %r' % (name, value))
                continue
            bad = control_characters(value)
            if bad:
                self.error(None, '%s %r contains %s, which a unit file or script cannot hold: '
                                 'choose another path' % (name, value, ' '.join(bad)))
            if name in QEMU_OPTION_PATHS and ',' in value:
                self.error(None, '%s %r contains a comma, which splits QEMU options: choose '
                                 'another path' % (name, value))

    def add_bridges(self, bridges):
        names = [b.get('name') if isinstance(b, dict) else None for b in bridges]
        for index, given in enumerate(bridges):
            where = 'hypervisor_bridges[%d] (%s)' % (index, names[index])
            if not isinstance(given, dict):
                self.error(where, 'a bridge is a dict {name, type, addresses, ...}, got %r' % (given,))
                continue
            for key in self.bridge_spec.unknown(given):
                self.error(where, 'unknown key %r; known: %s'
                           % (key, ', '.join(sorted(self.bridge_spec.options))))
            name = given.get('name')
            error = device_error('name', name)
            if error:
                self.error(where, error)
            if names.count(name) > 1 and names.index(name) == index:
                self.error(where, 'bridge name is defined more than once; rename one')
            bridge_type = self.bridge_spec.get(given, 'type')
            if bridge_type not in self.bridge_spec.options['type']['choices']:
                self.error(where, 'type %r must be one of %s' % (
                    bridge_type, ', '.join(self.bridge_spec.options['type']['choices'])))
            uplink = self.bridge_spec.get(given, 'uplink')
            if uplink is not None:
                error = device_error('uplink', uplink)
                if error:
                    self.error(where, error)
            self.bridges.append({
                'name': name,
                'type': bridge_type,
                'addresses': self.bridge_spec.get(given, 'addresses'),
                'routes': self.bridge_spec.get(given, 'routes'),
                'uplink': uplink,
                'fail_mode': self.bridge_spec.get(given, 'fail_mode'),
                'other_config': self.bridge_spec.get(given, 'other_config'),
                'external_ids': self.bridge_spec.get(given, 'external_ids'),
                'ports': []})

    def bridge(self, name):
        for bridge in self.bridges:
            if bridge['name'] == name:
                return bridge
        return None

    def count(self, where, field, value, minimum, what):
        """``value`` as a whole number >= minimum, else an error and None."""
        number = whole(value)
        if number is None or number < minimum:
            self.error(where, '%s %r is not %s' % (field, value, what))
            return None
        return number

    def flag(self, where, field, value):
        result = boolean(value)
        if result is None:
            self.error(where, '%s %r is not a boolean: use true or false' % (field, value))
            return False
        return result

    def add_vms(self, vms):
        names = [vm.get('name') if isinstance(vm, dict) else None for vm in vms]
        for index, given in enumerate(vms):
            where = 'hypervisor_vms[%d] (%s)' % (
                index, names[index] if names[index] is not None else '?')
            if not isinstance(given, dict):
                self.error(where, 'a VM is a dict {name, memory, nics, ...}, got %r' % (given,))
                continue
            self.add_vm(index, where, given, names)

    def add_vm(self, index, where, given, names):
        spec = self.vm_spec
        for key in spec.unknown(given):
            self.error(where, 'unknown key %r; known: %s' % (key, ', '.join(sorted(spec.options))))
        name = given.get('name')
        if name is None or not NAME_RE.match(str(name)):
            self.error(where, 'name is required and must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$')
        elif names.count(name) > 1 and names.index(name) == index:
            self.error(where, 'VM name is used more than once; rename one')
        name = 'vm%d' % index if name is None else str(name)
        rundir = self.settings['hypervisor_rundir']
        logdir = self.settings['hypervisor_logdir']
        qmp = '%s/%s.qmp' % (rundir, name)
        if len(qmp.encode('utf-8')) > UNIX_PATH_MAX:
            self.error(where, 'its QMP socket %s is %d bytes long, a UNIX socket path at most %d: '
                              'shorten hypervisor_rundir or the VM name'
                       % (qmp, len(qmp.encode('utf-8')), UNIX_PATH_MAX))
        cpus = self.count(where, 'cpus', spec.get(given, 'cpus'), 1,
                          'a number of virtual CPUs: give a whole number of at least 1')
        memory = self.count(where, 'memory', spec.get(given, 'memory'), 1,
                            'a size in MiB: give a whole number of at least 1 (e.g. 1024)')
        if not given.get('kernel') and not given.get('disks'):
            self.error(where, 'give a kernel (kernel/initrd/append) or at least one disk')
        disks = [self.disk(where, i, d) for i, d in enumerate(spec.get(given, 'disks') or [])]
        nics = [self.nic(where, name, i, n) for i, n in enumerate(spec.get(given, 'nics') or [])]
        user_net_given = given.get('user_net') or {}
        user_net = self.user_net(where, name, user_net_given)
        if not isinstance(user_net_given, dict):
            user_net_given = {}
        vnc = self.vnc(where, name, given.get('vnc'))
        ssh = self.ssh(where, given.get('ssh') or {})
        rng = given['rng'] if 'rng' in given else self.settings['hypervisor_vm_rng']
        wait = ssh['wait'] if 'wait' in ssh else self.settings['hypervisor_wait_ssh']
        self.vms.append({
            'name': name,
            'cpus': cpus,
            'memory': memory,
            'machine': spec.get(given, 'machine'),
            'cpu': spec.get(given, 'cpu'),
            'kernel': spec.get(given, 'kernel'),
            'initrd': spec.get(given, 'initrd'),
            'append': spec.get(given, 'append'),
            'disks': disks,
            'snapshot': self.flag(where, 'snapshot', spec.get(given, 'snapshot')),
            'rng': self.flag(where, 'rng', rng),
            'nics': nics,
            'user_net': user_net,
            'vnc': vnc,
            'extra_args': spec.get(given, 'extra_args'),
            'pidfile': '%s/%s.pid' % (rundir, name),
            'qmp': qmp,
            'argv_file': '%s/%s.argv.json' % (rundir, name),
            'vnc_secret': '%s/%s.vncpw' % (rundir, name),
            'serial_log': '%s/%s.serial.log' % (logdir, name),
            'unit': 'zerodrop-vm-%s.service' % name,
            'ssh': {
                'host': ssh.get('host'),
                'port': ssh['port'] if 'port' in ssh else user_net_given.get('ssh_port', 22),
                'user': ssh['user'] if 'user' in ssh else self.settings['hypervisor_ssh_user'],
                'key': ssh['key'] if 'key' in ssh else self.settings['hypervisor_ssh_key'],
                'groups': (ssh['groups'] if 'groups' in ssh
                           else copy.deepcopy(self.settings['hypervisor_vm_groups'])),
                'wait': self.flag(where, 'ssh.wait', wait)}})

    def ssh(self, where, given):
        if not isinstance(given, dict):
            self.error(where, 'ssh must be a dict {host, port, user, key, groups, wait}, got %r'
                       % (given,))
            return {}
        for key in self.ssh_spec.unknown(given):
            self.error(where, 'ssh: unknown key %r; known: %s'
                       % (key, ', '.join(sorted(self.ssh_spec.options))))
        return given

    def disk(self, where, index, given):
        spec = self.disk_spec
        field = 'disks[%d]' % index
        if isinstance(given, dict):
            for key in spec.unknown(given):
                self.error(where, '%s: unknown key %r; known: %s'
                           % (field, key, ', '.join(sorted(spec.options))))
            path = given.get('path')
        else:
            path, given = given, {}
        if not isinstance(path, str) or not path:
            self.error(where, '%s.path is required: the image file of the disk' % field)
            path = '' if path is None else path
        elif ',' in path:
            self.error(where, '%s.path must not contain a comma (QEMU option syntax)' % field)
        # An empty value takes the default, as a disk given as a bare path has none of these.
        disk = {'path': path}
        for key in ('format', 'interface', 'cache', 'snapshot'):
            disk[key] = given.get(key) or spec.default(key)
            if key != 'snapshot' and ',' in str(disk[key]):
                self.error(where, '%s.%s %r must not contain a comma (QEMU option syntax)'
                           % (field, key, disk[key]))
        for key in ('backing_file', 'backing_format', 'size'):
            disk[key] = spec.get(given, key)
        return disk

    def nic(self, where, vm_name, index, given):
        spec = self.nic_spec
        nw = '%s: nics[%d]' % (where, index)
        field = 'nics[%d]' % index
        if not isinstance(given, dict):
            self.error(where, '%s: a NIC is a dict {bridge, mac, tap, ...}, got %r' % (field, given))
            given = {}
        for key in spec.unknown(given):
            self.error(nw, 'unknown key %r; known: %s' % (key, ', '.join(sorted(spec.options))))
        tap_given = 'tap' in given
        tap = str(given['tap']) if tap_given else 't-%s-%d' % (vm_name, index)
        mac = str(given.get('mac', '')).lower()
        bridge_name = given.get('bridge', '')
        bridge = self.bridge(bridge_name)
        if bridge is None:
            self.error(nw, 'bridge "%s" is not in hypervisor_bridges; add it there or fix the name'
                       % bridge_name)
        else:
            bridge['ports'].append(tap)
        error = mac_error('mac', mac)
        if error:
            self.error(nw, error)
        else:
            self.macs.setdefault(mac, []).append('%s nics[%d]' % (vm_name, index))
        error = device_error('%s.tap' % field, tap, None if tap_given else 't-VM-INDEX')
        if error:
            self.error(where, error)
        self.devices.setdefault(tap, []).append('%s nics[%d].tap' % (vm_name, index))
        sndbuf = spec.get(given, 'sndbuf')
        if sndbuf is not None:
            self.count(nw, 'sndbuf', sndbuf, 1, 'a buffer size in bytes: give a whole number of at '
                                                'least 1')
        return {
            'id': 'net%d' % index,
            'bridge': bridge_name,
            'mac': mac,
            'tap': tap,
            'model': spec.get(given, 'model'),
            'vhost': self.flag(nw, 'vhost', spec.get(given, 'vhost')),
            'vnet_hdr': self.flag(nw, 'vnet_hdr', spec.get(given, 'vnet_hdr')),
            'sndbuf': sndbuf,
            'qdisc': spec.get(given, 'qdisc'),
            'ingress': self.ingress(where, nw, field, vm_name, index, tap, given.get('ingress'))}

    def ingress(self, where, nw, field, vm_name, index, tap, given):
        if not given:
            return None
        spec = self.ingress_spec
        if not isinstance(given, dict):
            self.error(nw, 'ingress must be a dict {rate, burst, limit, ifb}, got %r' % (given,))
            given = {}
        for key in spec.unknown(given):
            self.error(nw, 'ingress: unknown key %r; known: %s'
                       % (key, ', '.join(sorted(spec.options))))
        ifb_given = 'ifb' in given
        ifb = str(given['ifb']) if ifb_given else 'i' + tap
        error = device_error('%s.ingress.ifb' % field, ifb,
                             None if ifb_given else 'i + the tap name')
        if error:
            self.error(where, error)
        rate = given.get('rate', '')
        if not rate:
            self.error(nw, 'ingress.rate is required (e.g. 30mbit)')
        else:
            try:
                parse_rate(rate)
            except UnitError as e:
                self.error(nw, 'ingress.rate: %s; give a rate like 30mbit' % e)
        burst = spec.get(given, 'burst')
        try:
            parse_size(burst)
        except UnitError as e:
            self.error(nw, 'ingress.burst: %s; give a size like 32k' % e)
        limit = spec.get(given, 'limit')
        self.count(nw, 'ingress.limit', limit, 1,
                   'a queue limit in bytes: give a whole number of at least 1')
        self.devices.setdefault(ifb, []).append('%s nics[%d].ingress.ifb' % (vm_name, index))
        return {'ifb': ifb, 'rate': rate, 'burst': burst, 'limit': limit}

    def user_net(self, where, vm_name, given):
        spec = self.user_net_spec
        if not isinstance(given, dict):
            self.error(where, 'user_net must be a dict {ssh_port, hostfwd, mac, model}, got %r'
                       % (given,))
            return None
        for key in spec.unknown(given):
            self.error(where, 'user_net: unknown key %r; known: %s'
                       % (key, ', '.join(sorted(spec.options))))
        if not self.flag(where, 'user_net.enabled', given.get('enabled', len(given) > 0)):
            return None
        hostfwd = []
        ssh_port = given.get('ssh_port')
        if ssh_port:
            port = self.count(where, 'user_net.ssh_port', ssh_port, 1,
                              'a TCP port: give a number from 1 to 65535')
            if port is not None and port > 65535:
                self.error(where, 'user_net.ssh_port %r is not a TCP port: give a number from 1 '
                                  'to 65535' % (ssh_port,))
            elif port is not None:
                hostfwd.append('tcp:%s:%d-:22' % (self.settings['hypervisor_hostfwd_address'], port))
                self.ports.setdefault(port, []).append(vm_name)
        hostfwd.extend(spec.get(given, 'hostfwd') or [])
        mac = given.get('mac')
        if mac:
            error = mac_error('user_net.mac', str(mac).lower())
            if error:
                self.error(where, error)
            else:
                self.macs.setdefault(str(mac).lower(), []).append('%s user_net' % vm_name)
        return {'ssh_port': given.get('ssh_port'), 'hostfwd': hostfwd, 'mac': mac,
                'model': spec.get(given, 'model')}

    def vnc(self, where, vm_name, given):
        if not given:
            return None
        spec = self.vnc_spec
        if not isinstance(given, dict):
            self.error(where, 'vnc must be a dict {display, password}, got %r' % (given,))
            return None
        for key in spec.unknown(given):
            self.error(where, 'vnc: unknown key %r; known: %s'
                       % (key, ', '.join(sorted(spec.options))))
        password = given.get('password')
        if password is None or not 1 <= len(str(password)) <= 8:
            self.error(where, 'vnc.password is required, 1-8 characters (VNC limit)')
        display = self.count(where, 'vnc.display', spec.get(given, 'display'), 0,
                             'a display number: give a whole number from 0 to %d (the port is '
                             '5900 + display)' % VNC_DISPLAY_MAX)
        if display is not None and display > VNC_DISPLAY_MAX:
            self.error(where, 'vnc.display %d is not a display number: give a whole number from 0 '
                              'to %d (the port is 5900 + display)' % (display, VNC_DISPLAY_MAX))
            display = None
        if display is None:
            return None
        self.vnc_displays.setdefault(display, []).append(vm_name)
        return {'display': display}

    def check_shared(self):
        bridge_names = [b['name'] for b in self.bridges]
        for mac, users in self.macs.items():
            if len(users) > 1:
                self.error(None, 'MAC %s is used by more than one NIC: %s. Give every NIC its own '
                                 'MAC or ARP breaks' % (mac, ', '.join(users)))
        for dev, users in self.devices.items():
            if len(users) > 1 or dev in bridge_names:
                self.error(None, 'device name %s is used more than once: %s. Set distinct '
                                 'nics[].tap / ingress.ifb names'
                           % (dev, ', '.join(users + (['a bridge'] if dev in bridge_names else []))))
        for port, users in self.ports.items():
            if len(users) > 1:
                self.error(None, 'user_net.ssh_port %d is used by %s; give each VM its own port'
                           % (port, ', '.join(users)))
        for display, users in self.vnc_displays.items():
            if len(users) > 1:
                self.error(None, 'vnc.display %d is used by %s; give each VM its own display'
                           % (display, ', '.join(users)))


def build(vms, bridges, options, settings=None):
    """The model ``{'vms', 'bridges', 'errors', 'nics_ingress'}`` of ``vms``/``bridges``.

    ``nics_ingress`` lists the NICs (of every VM, in order) whose ingress is shaped: the loop of
    the role's ifb shapers and redirects.

    ``options`` is the role's argument spec (``argument_specs.main.options``), the source of
    every default; ``settings`` the role variables of SETTINGS and PATH_SETTINGS (a missing one
    takes its spec default). The model is complete even when there are errors, so that every
    error is found in one run.
    """
    model = Model(options, settings_from(options, settings or {}))
    model.check_settings()
    if not isinstance(bridges, list):
        model.error(None, 'hypervisor_bridges must be a list of bridges, got %r' % (bridges,))
        bridges = []
    if not isinstance(vms, list):
        model.error(None, 'hypervisor_vms must be a list of VMs, got %r' % (vms,))
        vms = []
    model.add_bridges(bridges)
    model.add_vms(vms)
    model.check_shared()
    return {'vms': model.vms, 'bridges': model.bridges, 'errors': model.errors,
            'nics_ingress': [nic for vm in model.vms for nic in vm['nics'] if nic['ingress']]}
