#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: netns_host
short_description: A network namespace set up as a host of its own
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Creates (or removes) a named network namespace and gives it links, addresses, routes and
    sysctls, so that it can stand in for a machine of a lab (for example the receiver of the
    local lab) and be reached with the C(zerodrop.testbed.netns) connection plugin.
  - A link is either a new veth pair whose other end stays in the root namespace (optionally
    enslaved to a Linux bridge) or goes to another namespace (O(links[].peer_netns), to chain
    namespaces such as sender, router and receiver), or an existing device that is moved in from
    the root namespace (for example an Open vSwitch internal port made with
    M(zerodrop.testbed.ovs_port)) or is already inside (the far end of another namespace's veth).
  - State is read with C(ip -j); every change is an C(ip) call listed in RV(commands).
  - On failure nothing this call changed stays. Everything that can be checked is checked
    before the first change (names, addresses, MTU ranges, that a gateway is on-link, that the
    peer bridge and the devices to move exist, that each sysctl exists in a network namespace
    and takes a value of that shape); a step that still fails (for example a sysctl value out
    of the kernel's range) is rolled back - the namespace deleted if this call made it, veths
    it made deleted, moved devices moved back, addresses, MTUs, routes and sysctls restored -
    and the module fails with C(changed=false), listing the undo commands in RV(rolled_back).
    Only when the rollback itself fails does it report C(changed=true), naming what stays.
options:
  name:
    description: Name of the network namespace.
    type: str
    required: true
  state:
    description: C(present) creates and configures the namespace; C(absent) deletes it (its
      virtual devices, and the root-namespace ends of its veth pairs, go with it).
    type: str
    choices: [present, absent]
    default: present
  links:
    description: Devices the namespace must have, besides C(lo) (always set up).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Device name inside the namespace (at most 15 characters).
        type: str
        required: true
      kind:
        description:
          - C(veth) creates a veth pair whose end O(links[].peer) stays in the root namespace
            (or goes to O(links[].peer_netns)).
          - C(existing) moves a device that already exists in the root namespace, or takes one
            that is already in this namespace (C(lo) too, to give it addresses).
        type: str
        choices: [veth, existing]
        default: veth
      peer:
        description: The other end of a veth pair, in the root namespace or in
          O(links[].peer_netns). Required when O(links[].kind=veth).
        type: str
      peer_netns:
        description:
          - Namespace the other end of a veth pair goes to (the root namespace when unset). It
            must exist already; that namespace's own task then lists the end with
            O(links[].kind=existing) to give it addresses.
        type: str
      peer_bridge:
        description: Linux bridge the veth peer is enslaved to, in the peer's namespace (left
          alone when unset). It must exist already.
        type: str
      addresses:
        description: Unicast addresses in CIDR notation (IPv4 or IPv6), each address once.
        type: list
        elements: str
        default: []
      purge_addresses:
        description: Remove global addresses of the device that O(links[].addresses) does not list.
        type: bool
        default: true
      mtu:
        description:
          - MTU of the device (left alone when unset). 68-65535 for a veth; an existing device
            takes what its driver allows (C(ip -d link) shows min_mtu and max_mtu).
          - IPv6 addresses need 1280 or more.
        type: int
      tx_offload:
        description:
          - Set TX checksum offload on the veth peer (left alone when unset).
          - Open vSwitch's userspace (netdev) datapath needs C(false) on the far end of a veth
            port, else TCP stalls.
        type: bool
  routes:
    description:
      - Routes inside the namespace (IPv4 and IPv6); existing routes that are not listed stay.
      - One route per destination and family.
    type: list
    elements: dict
    default: []
    suboptions:
      to:
        description: Destination, C(default) or a CIDR prefix (no host bits set).
        type: str
        required: true
      via:
        description:
          - Gateway address, of the family of O(routes[].to). It must be on-link, inside the
            subnet of an address the namespace will have (on O(routes[].dev) when given), or of
            an earlier route with only O(routes[].dev). A link-local gateway needs
            O(routes[].dev).
        type: str
      dev:
        description: Output device (C(lo), a device of O(links) or one already in the
          namespace).
        type: str
  sysctls:
    description:
      - Per-namespace sysctls (the C(net.*) tree), e.g. C(net.ipv4.ip_forward) or
        C(net.ipv4.tcp_ecn). Applied live inside the namespace; nothing is written to C(/etc).
      - The name must exist in a network namespace (some keys, such as
        C(net.core.default_qdisc), exist only in the root namespace). Keys of a device of
        O(links) (C(net.ipv4.conf.eth0.rp_filter)) may name it before it exists.
      - A number, a word, or a list of numbers (C([32768, 60999])); C(true)/C(false) are written
        as 1/0. A key whose value is a number takes only numbers.
    type: dict
    default: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode).
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Needs root and C(iproute2); C(ethtool) for O(links[].tx_offload).
seealso:
  - module: zerodrop.testbed.ovs_port
'''

EXAMPLES = r'''
- name: Receiver namespace on an Open vSwitch bridge (internal port moved in)
  zerodrop.testbed.ovs_port:
    bridge: br-zd
    name: zd-rcv0
    type: internal

- name: Namespace host with the internal port, an address and ECN on
  zerodrop.testbed.netns_host:
    name: zd-rcv
    links:
      - name: zd-rcv0
        kind: existing
        addresses: [10.77.0.2/24]
    sysctls:
      net.ipv4.tcp_ecn: 1

- name: Router namespace joined to a Linux bridge by a veth pair
  zerodrop.testbed.netns_host:
    name: rtr
    links:
      - name: eth0
        peer: rtr-eth0
        peer_bridge: br-lab
        addresses: [10.78.0.1/24]
    routes:
      - to: default
        via: 10.78.0.254
    sysctls:
      net.ipv4.ip_forward: 1

- name: Namespaces chained sender -> router -> receiver (all three made bare first)
  zerodrop.testbed.netns_host:
    name: "{{ item }}"
  loop: [snd, rtr, rcv]

- name: Sender with a veth whose far end goes into the router
  zerodrop.testbed.netns_host:
    name: snd
    links:
      - {name: eth0, peer: to-snd, peer_netns: rtr, addresses: [10.97.1.1/24]}
    routes:
      - {to: default, via: 10.97.1.254}

- name: Router taking that end (and the receiver's) as existing devices
  zerodrop.testbed.netns_host:
    name: rtr
    links:
      - {name: to-snd, kind: existing, addresses: [10.97.1.254/24]}
      - {name: to-rcv, kind: existing, addresses: [10.97.2.254/24]}
    sysctls:
      net.ipv4.ip_forward: 1

- name: Remove the namespace
  zerodrop.testbed.netns_host:
    name: rtr
    state: absent
'''

RETURN = r'''
commands:
  description: The commands run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: list
  sample: [["ip", "netns", "add", "zd-rcv"], ["ip", "link", "set", "zd-rcv0", "netns", "zd-rcv"]]
rolled_back:
  description: The commands that undid this call's changes after a later step failed (also at
    the end of RV(commands)).
  returned: failure after a change
  type: list
  elements: list
  sample: [["ip", "netns", "del", "zd-rcv"]]
state:
  description: The namespace as read back after the change (null when absent).
  returned: always
  type: dict
  sample:
    links:
      zd-rcv0: {addresses: ["10.77.0.2/24"], mtu: 1500, up: true}
    routes: [{to: "10.77.0.0/24", via: null, dev: "zd-rcv0"}]
    sysctls: {net.ipv4.tcp_ecn: "1"}
'''

import ipaddress
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard, describe
from ansible_collections.zerodrop.testbed.plugins.module_utils import iplink
from ansible_collections.zerodrop.testbed.plugins.module_utils import sysctl_live
from ansible_collections.zerodrop.testbed.plugins.module_utils.iplink import route_family
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import (
    device_name, errors as real_errors, path_component)
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import (
    CommandError, Runner, netns_argv)

# ETH_MIN_MTU and ETH_MAX_MTU: the MTU range of a veth device.
VETH_MTU = (68, 65535)
# Below this the kernel disables IPv6 on a device, and adding an IPv6 address fails.
IPV6_MIN_MTU = 1280
# Dotted sysctl names; a '/' inside a part stands for a '.' of a device name (eth0/100).
SYSCTL_KEY = re.compile(r'^net(\.[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)+$')
DEVICE_SYSCTL = re.compile(r'^net\.(ipv4|ipv6)\.(conf|neigh)\.([^.]+)\.(.+)$')
INTEGERS = re.compile(r'^-?[0-9]+(\s+-?[0-9]+)*$')


def sysctl_path(key):
    return '/proc/sys/' + '/'.join(part.replace('/', '.') for part in key.split('.'))


def validate(params):
    """Every input error that needs no look at the system, at once, before anything changes."""
    errors = [path_component('name', params['name'])]
    name = params['name']
    seen, peers = set(), set()
    for i, link in enumerate(params['links']):
        field = 'links[%d]' % i
        errors.append(device_name('%s.name' % field, link['name']))
        for key in ('peer', 'peer_bridge'):
            if link.get(key) is not None:
                errors.append(device_name('%s.%s' % (field, key), link[key]))
        if link.get('peer_netns') is not None:
            errors.append(path_component('%s.peer_netns' % field, link['peer_netns']))
        if link['name'] in seen:
            errors.append("%s.name: '%s' is listed twice" % (field, link['name']))
        seen.add(link['name'])
        if link['kind'] == 'veth' and not link.get('peer'):
            errors.append("%s.peer: a veth link needs the name of its other end "
                          "(or use kind: existing to move a device in)" % field)
        if link['kind'] == 'veth' and link['name'] == 'lo':
            errors.append("%s.name: 'lo' exists in every namespace; list it with kind: existing "
                          "to give it addresses" % field)
        if link['kind'] == 'veth' and link.get('peer'):
            where = (link.get('peer_netns'), link['peer'])
            if where in peers:
                errors.append("%s.peer: '%s' is the peer of an earlier link too; give each veth "
                              "its own peer name" % (field, link['peer']))
            peers.add(where)
        if link['kind'] == 'existing' and (link.get('peer_bridge') or link.get('peer')
                                           or link.get('peer_netns')
                                           or link.get('tx_offload') is not None):
            errors.append("%s: peer, peer_netns, peer_bridge and tx_offload apply to kind: veth "
                          "only" % field)
        if link.get('peer_netns') == name:
            errors.append("%s.peer_netns: '%s' is this namespace; a veth with both ends here "
                          "needs no peer_netns (or name another namespace)" % (field, name))
        mtu = link.get('mtu')
        if mtu is not None:
            low, high = VETH_MTU if link['kind'] == 'veth' else (1, None)
            if mtu < low or (high and mtu > high):
                errors.append("%s.mtu: %d is outside %d-%d, the MTU range of a veth device"
                              % (field, mtu, low, high) if high else
                              "%s.mtu: %d is not a positive MTU" % (field, mtu))
        ips = {}
        for j, addr in enumerate(link['addresses']):
            where = '%s.addresses[%d]' % (field, j)
            try:
                if '/' not in str(addr):
                    raise ValueError('no prefix length')
                iface = ipaddress.ip_interface(addr)
            except ValueError:
                errors.append("%s: '%s' is not an address in CIDR notation (e.g. 10.77.0.2/24)"
                              % (where, addr))
                continue
            if iface.ip.is_multicast or iface.ip.is_unspecified:
                errors.append("%s: '%s' is a %s address, which a device cannot have; give a "
                              "unicast address" % (where, addr, 'multicast' if iface.ip.is_multicast
                                                   else 'unspecified'))
            if iface.ip in ips:
                errors.append("%s: %s is listed twice on this link (as %s too); list it once"
                              % (where, iface.ip, ips[iface.ip]))
            ips[iface.ip] = addr
            if iface.version == 6 and mtu is not None and mtu < IPV6_MIN_MTU:
                errors.append("%s: '%s' is IPv6, which the kernel disables on a device whose MTU "
                              "is below %d (mtu: %d); raise mtu or drop the address"
                              % (where, addr, IPV6_MIN_MTU, mtu))
    route_keys = {}
    for i, route in enumerate(params['routes']):
        field = 'routes[%d]' % i
        to = via = None
        if route['to'] != 'default':
            try:
                to = ipaddress.ip_network(route['to'])
            except ValueError:
                try:
                    network = ipaddress.ip_network(route['to'], strict=False)
                    errors.append("%s.to: '%s' has host bits set; the prefix is %s"
                                  % (field, route['to'], network))
                except ValueError:
                    errors.append("%s.to: '%s' is neither 'default' nor a CIDR prefix"
                                  % (field, route['to']))
        if route.get('via'):
            try:
                via = ipaddress.ip_address(route['via'])
            except ValueError:
                errors.append("%s.via: '%s' is not an IP address" % (field, route['via']))
        if to is not None and via is not None and to.version != via.version:
            errors.append("%s.via: gateway %s is IPv%d but the destination %s is IPv%d; give a "
                          "gateway of the same family" % (field, via, via.version, to, to.version))
        if via is not None and via.is_link_local and not route.get('dev'):
            errors.append("%s.dev: the gateway %s is link-local, which names no device; give dev"
                          % (field, via))
        if via is not None and (via.is_multicast or via.is_unspecified):
            errors.append("%s.via: %s cannot be a gateway; give a unicast address" % (field, via))
        if route.get('dev') is not None:
            errors.append(device_name('%s.dev' % field, route['dev']))
        if not route.get('via') and not route.get('dev'):
            errors.append("%s: give via, dev or both" % field)
        if (route['to'] == 'default' or to is not None) and (not route.get('via') or via):
            key = (route_family(route), str(to) if to else 'default')
            if key in route_keys:
                errors.append("%s.to: %s is already routed by routes[%d]; one route per "
                              "destination" % (field, route['to'], route_keys[key]))
            route_keys.setdefault(key, i)
    for key, value in params['sysctls'].items():
        if not key.startswith('net.'):
            errors.append("sysctls.%s: only the per-namespace net.* sysctls can be set here" % key)
        elif not SYSCTL_KEY.match(key):
            errors.append("sysctls.%s: not a sysctl name (dotted, e.g. net.ipv4.tcp_ecn)" % key)
        errors.append(sysctl_live.value_problem('sysctls', key, value))
    return real_errors(*errors)


class NetnsHost(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.ns = self.p['name']
        self.root = Runner(module)
        self.inside = Runner(module, netns=self.ns)
        # Both runners record into one list, so RV(commands) keeps the real order.
        self.inside.changes = self.root.changes
        # (runner, argv, moot once this call's new namespace is deleted), newest last.
        self.undo = []
        self.created = False
        # State-changing commands that succeeded (RV(commands) also lists one that failed).
        self.done = 0

    def programs(self):
        """Every program this call may run, found before the first change."""
        self.root.bin('ip')
        if self.p['sysctls']:
            self.root.bin('sysctl')
            self.root.bin('stat')
        if any(link.get('tx_offload') is not None for link in self.p['links']):
            self.root.bin('ethtool')

    # --- reading -------------------------------------------------------------------------
    def exists(self):
        names = self.root.json(['ip', '-j', 'netns', 'list']) or []
        return any(entry.get('name') == self.ns for entry in names)

    def links_in(self, netns):
        return iplink.read_links(self.root, netns)

    def route_table(self):
        """Routes of the main table, both families: to, via, dev (+ family, protocol)."""
        return iplink.read_routes(self.root, self.ns)

    public_routes = staticmethod(iplink.public_routes)

    def tx_offload(self, dev, netns=None):
        out = self.root.run(netns_argv(['ethtool', '-k', dev], netns)).stdout
        for line in out.splitlines():
            if line.startswith('tx-checksumming:'):
                return line.split(':', 1)[1].strip().startswith('on')
        return None

    def read(self):
        if not self.exists():
            return None
        links = self.links_in(self.ns)
        listed = set(link['name'] for link in self.p['links'])
        return {
            'links': dict((k, {'addresses': v['addresses'], 'mtu': v['mtu'], 'up': v['up']})
                          for k, v in links.items() if k != 'lo' or 'lo' in listed),
            'lo_up': links.get('lo', {}).get('up', False),
            'routes': self.public_routes(self.route_table()),
            'sysctls': sysctl_live.read_all(self.inside, self.p['sysctls']),
        }

    def predicted(self):
        """What read() would return after the change (for check mode's diff)."""
        if self.p['state'] == 'absent':
            return None
        links = dict((link['name'], {
            'addresses': sorted(str(ipaddress.ip_interface(a)) for a in link['addresses']),
            'mtu': link.get('mtu'), 'up': True}) for link in self.p['links'])
        return {'links': links, 'lo_up': True, 'routes': self.p['routes'],
                'sysctls': dict((k, sysctl_live.text(v)) for k, v in self.p['sysctls'].items())}

    # --- checks before the first change --------------------------------------------------
    def peer_links(self, root_links):
        """Devices of every namespace the veth peers go to: {netns or None: {name: state}}."""
        found = {None: root_links}
        wanted = set(link['peer_netns'] for link in self.p['links']
                     if link['kind'] == 'veth' and link.get('peer_netns'))
        if wanted:
            names = set(entry.get('name') for entry in
                        self.root.json(['ip', '-j', 'netns', 'list']) or [])
            for netns in sorted(wanted & names):
                found[netns] = self.links_in(netns)
        return found

    def preflight(self, exists, have, root_links, peers, routes):
        """Everything that needs a look at the system, checked before the first change."""
        errors = []
        for i, link in enumerate(self.p['links']):
            errors += self.check_link(i, link, have, root_links, peers)
        errors += self.check_routes(have, routes)
        errors += self.check_sysctls(exists, have)
        if errors:
            self.module.fail_json(msg='netns_host %s: nothing was changed: %s'
                                  % (self.ns, '; '.join(errors)),
                                  errors=errors, commands=[], changed=False)

    def where(self, netns):
        return "namespace '%s'" % netns if netns else 'the root namespace'

    def check_link(self, i, link, have, root_links, peers):
        errors = []
        name = link['name']
        peer_netns = link.get('peer_netns')
        device = have.get(name)
        if device is None and link['kind'] == 'existing':
            device = root_links.get(name)
            if device is None:
                errors.append(
                    "links[%d].name: device '%s' exists neither in namespace '%s' nor in the root "
                    "namespace; create it first (e.g. an internal port with "
                    "zerodrop.testbed.ovs_port) or use kind: veth" % (i, name, self.ns))
        if link['kind'] == 'veth':
            if peer_netns and peer_netns not in peers:
                return errors + [
                    "links[%d].peer_netns: namespace '%s' does not exist; create it first "
                    "(e.g. a netns_host task with only its name)" % (i, peer_netns)]
            peer = peers[peer_netns].get(link['peer'])
            if name not in have and peer is not None:
                errors.append(
                    "links[%d].peer: '%s' already exists in %s while '%s' is missing from "
                    "namespace '%s'; delete '%s' or choose another peer name"
                    % (i, link['peer'], self.where(peer_netns), name, self.ns, link['peer']))
            if name in have and peer is None:
                errors.append(
                    "links[%d].peer: '%s' exists in namespace '%s' but its peer '%s' is not in "
                    "%s; give the name of its other end (or kind: existing)"
                    % (i, name, self.ns, link['peer'], self.where(peer_netns)))
            bridge = link.get('peer_bridge')
            if bridge:
                found = peers[peer_netns].get(bridge)
                if found is None:
                    errors.append(
                        "links[%d].peer_bridge: bridge '%s' does not exist in %s; create it "
                        "first (ip link add %s type bridge) or leave peer_bridge unset"
                        % (i, bridge, self.where(peer_netns), bridge))
                elif found['kind'] != 'bridge':
                    errors.append(
                        "links[%d].peer_bridge: '%s' in %s is a %s device, not a Linux bridge"
                        % (i, bridge, self.where(peer_netns), found['kind'] or 'plain'))
        mtu = link.get('mtu')
        if device is not None and mtu is not None:
            low, high = device.get('min_mtu'), device.get('max_mtu')
            if (low is not None and mtu < low) or (high and mtu > high):
                errors.append("links[%d].mtu: %d is outside %s-%s, the MTU range of device '%s'"
                              % (i, mtu, low, high, name))
        if device is not None and mtu is None and device.get('mtu') is not None \
                and device['mtu'] < IPV6_MIN_MTU:
            for j, addr in enumerate(link['addresses']):
                if ipaddress.ip_interface(addr).version == 6:
                    errors.append("links[%d].addresses[%d]: '%s' is IPv6, which the kernel "
                                  "disables on '%s' (MTU %s, below %d); set mtu: %d or more"
                                  % (i, j, addr, name, device.get('mtu'), IPV6_MIN_MTU,
                                     IPV6_MIN_MTU))
        return errors

    def onlink(self, have, routes):
        """{device: [networks reached without a gateway]} once the links are converged, and the
        addresses the namespace will have."""
        prefixes, local = {}, set()
        listed = dict((link['name'], link) for link in self.p['links'])
        for dev, state in have.items():
            addrs = state['addresses']
            if dev in listed:
                want = list(listed[dev]['addresses'])
                addrs = want if listed[dev]['purge_addresses'] else addrs + want
            prefixes[dev] = [ipaddress.ip_interface(a) for a in addrs]
        for dev, link in listed.items():
            if dev not in have:
                prefixes[dev] = [ipaddress.ip_interface(a) for a in link['addresses']]
        nets = {}
        for dev, ifaces in prefixes.items():
            local.update(i.ip for i in ifaces)
            nets[dev] = [i.network for i in ifaces if i.network.prefixlen < i.network.max_prefixlen]
        for r in routes:
            if not r['via'] and r['dev'] and r['protocol'] != 'kernel' and r['to'] != 'default':
                nets.setdefault(r['dev'], []).append(ipaddress.ip_network(r['to'], strict=False))
        return nets, local

    def check_routes(self, have, routes):
        errors = []
        devices = set(have) | set(link['name'] for link in self.p['links']) | {'lo'}
        nets, local = self.onlink(have, routes)
        for i, route in enumerate(self.p['routes']):
            dev = route.get('dev')
            if dev and dev not in devices:
                errors.append("routes[%d].dev: no device '%s' in namespace '%s' nor in links; "
                              "list it in links or fix the name" % (i, dev, self.ns))
                continue
            if route.get('via'):
                via = ipaddress.ip_address(route['via'])
                if via in local:
                    errors.append("routes[%d].via: %s is an address of namespace '%s' itself; "
                                  "a gateway is a neighbour" % (i, via, self.ns))
                    continue
                if via.is_link_local:
                    continue
                candidates = nets.get(dev, []) if dev else [n for v in nets.values() for n in v]
                if not any(via in net for net in candidates):
                    errors.append(
                        "routes[%d].via: gateway %s is not on-link: no address%s of namespace "
                        "'%s' is in its subnet; add an address of that subnet to links[]."
                        "addresses or a route to it with dev first"
                        % (i, via, (" on '%s'" % dev) if dev else '', self.ns))
            elif dev:
                network = None if route['to'] == 'default' else \
                    ipaddress.ip_network(route['to'])
                if network is not None:
                    nets.setdefault(dev, []).append(network)
        return errors

    def sysctl_probe(self, exists):
        """The runner that reads /proc/sys/net as the namespace will have it: the namespace
        itself, or, before it exists, a throwaway one (unshare --net) with the same keys (the
        root namespace has more). It only reads."""
        if exists:
            return self.inside
        return Runner(self.module, prefix=['unshare', '--net', '--'])

    def check_sysctls(self, exists, have):
        if not self.p['sysctls']:
            return []
        errors = []
        probe_runner = self.sysctl_probe(exists)
        listed = set(link['name'] for link in self.p['links'])
        probes = {}
        for key in sorted(self.p['sysctls']):
            probe = key
            m = DEVICE_SYSCTL.match(key)
            if m and m.group(3) not in ('all', 'default'):
                dev = m.group(3).replace('/', '.')
                if dev not in have:
                    if dev not in listed:
                        errors.append("sysctls.%s: device '%s' is neither in namespace '%s' nor "
                                      "in links" % (key, dev, self.ns))
                        continue
                    # Not made yet: its keys are those of 'default'.
                    probe = 'net.%s.%s.default.%s' % (m.group(1), m.group(2), m.group(4))
            probes[key] = probe
        if not probes:
            return errors
        stat = probe_runner.run(['stat', '-c', '%a %n'] +
                                sorted(set(sysctl_path(p) for p in probes.values())),
                                check_rc=False)
        modes = {}
        for line in stat.stdout.splitlines():
            mode, path = line.split(' ', 1)
            modes[path] = int(mode, 8)
        for key, probe in sorted(probes.items()):
            mode = modes.get(sysctl_path(probe))
            if mode is None:
                errors.append("sysctls.%s: this kernel has no such per-namespace sysctl (no %s in "
                              "a network namespace); check the name" % (key, sysctl_path(probe)))
                continue
            if not mode & 0o200:
                errors.append("sysctls.%s: read-only in a network namespace" % key)
                continue
            if not mode & 0o400:
                continue
            now = sysctl_live.read(probe_runner, probe)
            want = sysctl_live.text(self.p['sysctls'][key])
            if now is not None and INTEGERS.match(now):
                count = len(now.split())
                if not INTEGERS.match(want) or len(want.split()) != count:
                    errors.append("sysctls.%s: '%s' is not %s; the kernel's value is '%s'"
                                  % (key, want, 'an integer' if count == 1 else
                                     '%d integers' % count, now))
        return errors

    # --- converging ----------------------------------------------------------------------
    def change(self, argv, undo=None, moot=True, runner=None):
        """Run a state-changing command; ``undo`` reverts it (``moot``: the deletion of a
        namespace this call made reverts it too)."""
        (runner or self.root).run(argv, changes=True)
        self.done += 1
        if undo is not None:
            self.undo.append((runner or self.root, undo, moot))

    def ns_ip(self, *args):
        return ['ip', '-n', self.ns] + list(args)

    def present(self, before, have, root_links, peers, routes):
        exists = before is not None
        if not exists:
            self.change(['ip', 'netns', 'add', self.ns], undo=['ip', 'netns', 'del', self.ns],
                        moot=False)
            self.created = True
        if not exists or not before['lo_up']:
            self.change(self.ns_ip('link', 'set', 'lo', 'up'),
                        undo=self.ns_ip('link', 'set', 'lo', 'down'))
        for link in self.p['links']:
            self.converge_link(link, have.get(link['name']), root_links, peers)
        # Address changes drop the routes through them: read routes after the links are done.
        current_routes = self.route_table() if exists and not self.module.check_mode else routes
        for route in self.p['routes']:
            if not self.route_present(route, current_routes):
                self.change(self.ns_ip(*self.route_args('replace', route)),
                            undo=self.route_undo(route, current_routes))
        # Each write joins the undo list of the whole call: a later failure restores it too.
        for key, old, want in sysctl_live.differing(before['sysctls'] if exists else {},
                                                    self.p['sysctls']):
            self.change(sysctl_live.write_argv(key, want), runner=self.inside,
                        undo=sysctl_live.write_argv(key, old) if old is not None else None)

    route_args = staticmethod(iplink.route_args)

    def route_undo(self, route, current):
        fam = route_family(route)
        to = self.normal_to(route['to'])
        for r in current:
            if r['family'] == fam and r['to'] == to:
                return self.ns_ip(*self.route_args('replace', r, fam))
        return self.ns_ip(*self.route_args('del', route, fam))

    def converge_link(self, link, current, root_links, peers):
        name = link['name']
        peer_netns = link.get('peer_netns')
        fresh = False
        if current is None:
            if link['kind'] == 'veth':
                # Made with its inner end directly in the namespace: no clash with root devices.
                self.change(['ip'] + (['-n', peer_netns] if peer_netns else []) + [
                    'link', 'add', link['peer'], 'type', 'veth', 'peer', 'name', name,
                    'netns', self.ns], undo=self.ns_ip('link', 'del', name),
                    # deleted even when the namespace goes too: its peer in the root namespace
                    # then goes at once, not when the kernel gets round to freeing the namespace
                    moot=False)
                fresh = True
            else:
                self.move_in(name, root_links[name])
            current = {'addresses': [], 'mtu': None, 'up': False}

        # A veth this call made goes with all its settings when its undo deletes it.
        def undo(argv):
            return None if fresh else argv
        want = sorted(str(ipaddress.ip_interface(a)) for a in link['addresses'])
        # Purge first: deleting a primary address also deletes the secondaries of its subnet.
        if link['purge_addresses']:
            for addr in current['addresses']:
                if addr not in want:
                    self.change(self.ns_ip('addr', 'del', addr, 'dev', name),
                                undo=undo(self.ns_ip('addr', 'add', addr, 'dev', name)))
        for addr in want:
            if addr not in current['addresses']:
                self.change(self.ns_ip('addr', 'add', addr, 'dev', name),
                            undo=undo(self.ns_ip('addr', 'del', addr, 'dev', name)))
        if link.get('mtu') and current['mtu'] != link['mtu']:
            old = current['mtu'] or root_links.get(name, {}).get('mtu')
            # A moved-in device keeps its MTU when it goes back: undone even with the namespace.
            self.change(self.ns_ip('link', 'set', name, 'mtu', str(link['mtu'])),
                        undo=undo(self.ns_ip('link', 'set', name, 'mtu', str(old))) if old
                        else None, moot=link['kind'] == 'veth')
        if not current['up']:
            self.change(self.ns_ip('link', 'set', name, 'up'),
                        undo=undo(self.ns_ip('link', 'set', name, 'down')))
        if link['kind'] == 'veth':
            self.converge_peer(link, peers.get(peer_netns, {}).get(link['peer']), fresh)

    def move_in(self, name, state):
        """Move a root-namespace device in; its undo moves it back (to this process's namespace,
        the root one) and gives it back its addresses, bridge and up state."""
        self.change(['ip', 'link', 'set', name, 'netns', self.ns])
        # Undone newest first: these run after the move back.
        for addr in state['addresses']:
            self.undo.append((self.root, ['ip', 'addr', 'add', addr, 'dev', name], False))
        if state.get('master'):
            self.undo.append((self.root, ['ip', 'link', 'set', name, 'master', state['master']],
                              False))
        if state.get('up'):
            self.undo.append((self.root, ['ip', 'link', 'set', name, 'up'], False))
        self.undo.append((self.root, self.ns_ip('link', 'set', name, 'netns', str(os.getpid())),
                          False))

    def converge_peer(self, link, peer, fresh):
        name = link['peer']
        netns = link.get('peer_netns')
        where = ['ip'] + (['-n', netns] if netns else [])
        keep = not fresh and peer is not None
        if link.get('peer_bridge') and (peer is None or peer['master'] != link['peer_bridge']):
            old = peer and peer['master']
            back = ['master', old] if old else ['nomaster']
            self.change(where + ['link', 'set', name, 'master', link['peer_bridge']],
                        undo=where + ['link', 'set', name] + back if keep else None)
        if peer is None or not peer['up']:
            self.change(where + ['link', 'set', name, 'up'],
                        undo=where + ['link', 'set', name, 'down'] if keep else None)
        if link.get('tx_offload') is not None:
            state = None if peer is None else self.tx_offload(name, netns)
            if state != link['tx_offload']:
                self.change(netns_argv(['ethtool', '-K', name, 'tx',
                                        'on' if link['tx_offload'] else 'off'], netns),
                            undo=netns_argv(['ethtool', '-K', name, 'tx',
                                             'on' if state else 'off'], netns)
                            if keep and state is not None else None)

    normal_to = staticmethod(iplink.normal_to)
    route_present = staticmethod(iplink.route_present)

    # --- rolling back --------------------------------------------------------------------
    def roll_back(self, before, routes):
        """Undo this call's changes, newest first. Returns what could not be restored."""
        problems = []
        for runner, argv, moot in reversed(self.undo):
            if self.created and moot:
                continue
            try:
                runner.run(argv, changes=True)
            except CommandError as e:
                problems.append(str(e))
        if self.created:
            if self.exists():
                problems.append("namespace '%s' is still there" % self.ns)
            return problems
        # Deleted addresses took routes through them along: put back what is missing.
        now = self.route_table()
        for r in routes:
            if r['protocol'] != 'kernel' and not any(
                    (n['family'], n['to'], n['via'], n['dev']) ==
                    (r['family'], r['to'], r['via'], r['dev']) for n in now):
                try:
                    self.root.run(self.ns_ip(*self.route_args('replace', r, r['family'])),
                                  changes=True)
                except CommandError as e:
                    problems.append(str(e))
        after = self.read()
        for part in ('links', 'lo_up', 'sysctls'):
            if after[part] != before[part]:
                problems.append('%s differ: %s before, %s now' % (part, json.dumps(before[part]),
                                                                  json.dumps(after[part])))
        if sorted(json.dumps(r, sort_keys=True) for r in after['routes']) != \
                sorted(json.dumps(r, sort_keys=True) for r in before['routes']):
            problems.append('routes differ: %s before, %s now' % (json.dumps(before['routes']),
                                                                  json.dumps(after['routes'])))
        return problems

    def fail_after_change(self, before, routes, error):
        """A step failed after changes: roll back, then fail saying what is left."""
        cause = str(error) if isinstance(error, CommandError) else describe(error)
        details = error.result.as_dict() if isinstance(error, CommandError) else {}
        if self.module.check_mode or not self.done:
            self.module.fail_json(msg='netns_host %s: %s' % (self.ns, cause), changed=False,
                                  commands=self.root.changes, **details)
        done = len(self.root.changes)
        problems = self.roll_back(before, routes)
        undone = self.root.changes[done:]
        if not problems:
            what = ("namespace '%s' deleted" % self.ns) if self.created else \
                'namespace %s as it was' % self.ns
            self.module.fail_json(
                msg='netns_host %s: %s. Rolled back (%s): nothing this call changed stays'
                    % (self.ns, cause, what),
                changed=False, rolled_back=undone, commands=self.root.changes, **details)
        self.module.fail_json(
            msg='netns_host %s: %s. Rollback incomplete, changes stay (listed in commands): %s'
                % (self.ns, cause, '; '.join(problems)),
            changed=True, rolled_back=undone, commands=self.root.changes, **details)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            links=dict(type='list', elements='dict', default=[], options=dict(
                name=dict(type='str', required=True),
                kind=dict(type='str', choices=['veth', 'existing'], default='veth'),
                peer=dict(type='str'),
                peer_netns=dict(type='str'),
                peer_bridge=dict(type='str'),
                addresses=dict(type='list', elements='str', default=[]),
                purge_addresses=dict(type='bool', default=True),
                mtu=dict(type='int'),
                tx_offload=dict(type='bool'),
            )),
            routes=dict(type='list', elements='dict', default=[], options=dict(
                to=dict(type='str', required=True),
                via=dict(type='str'),
                dev=dict(type='str'),
            )),
            sysctls=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )
    errors = validate(module.params)
    if errors:
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, changed=False,
                         commands=[])

    host = NetnsHost(module)
    with Guard(module, host.root) as guard:
        guard.doing('find the programs this call runs')
        host.programs()
        guard.doing('read network namespace %s' % host.ns)
        before = host.read()
        if module.params['state'] == 'absent':
            if before is not None:
                guard.doing('delete network namespace %s' % host.ns)
                host.change(['ip', 'netns', 'del', host.ns])
        else:
            root_links = host.links_in(None)
            if before is not None:
                have, routes = host.links_in(host.ns), host.route_table()
            else:
                # A new namespace has only lo, which this call sets up first.
                have = {'lo': dict(root_links['lo'], addresses=[], up=True, master=None)}
                routes = []
            peers = host.peer_links(root_links)
            host.preflight(before is not None, have, root_links, peers, routes)
            guard.doing('configure network namespace %s' % host.ns)
            try:
                host.present(before, have, root_links, peers, routes)
            except Exception as error:  # any failure after a change is rolled back first
                guard.doing('roll back network namespace %s' % host.ns)
                host.fail_after_change(before, routes, error)
        changed = bool(host.root.changes)
        if not changed:
            after = before
        elif module.check_mode:
            after = host.predicted()
        else:
            guard.doing('read network namespace %s back' % host.ns)
            after = host.read()
    result = dict(changed=changed, commands=host.root.changes, state=after)
    if module._diff:
        result['diff'] = dict(before=before or {}, after=after or {})
    module.exit_json(**result)


if __name__ == '__main__':
    main()
