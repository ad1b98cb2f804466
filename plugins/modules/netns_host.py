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
            that is already in this namespace.
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
          alone when unset).
        type: str
      addresses:
        description: Addresses in CIDR notation (IPv4 or IPv6).
        type: list
        elements: str
        default: []
      purge_addresses:
        description: Remove global addresses of the device that O(links[].addresses) does not list.
        type: bool
        default: true
      mtu:
        description: MTU of the device (left alone when unset).
        type: int
      tx_offload:
        description:
          - Set TX checksum offload on the veth peer (left alone when unset).
          - Open vSwitch's userspace (netdev) datapath needs C(false) on the far end of a veth
            port, else TCP stalls.
        type: bool
  routes:
    description: Routes inside the namespace; existing routes that are not listed stay.
    type: list
    elements: dict
    default: []
    suboptions:
      to:
        description: Destination, C(default) or a CIDR prefix.
        type: str
        required: true
      via:
        description: Gateway address.
        type: str
      dev:
        description: Output device.
        type: str
  sysctls:
    description:
      - Per-namespace sysctls (the C(net.*) tree), e.g. C(net.ipv4.ip_forward) or
        C(net.ipv4.tcp_ecn). Applied live inside the namespace; nothing is written to C(/etc).
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import (
    CommandError, Runner, netns_argv)

IFNAMSIZ = 15


def validate(params):
    """Every input error at once, before anything changes."""
    errors = []
    name = params['name']
    if not name or '/' in name or name in ('.', '..'):
        errors.append("name: '%s' is not a valid namespace name (no '/', not empty)" % name)
    seen = set()
    for i, link in enumerate(params['links']):
        field = 'links[%d]' % i
        for key in ('name', 'peer'):
            value = link.get(key)
            if value and len(value) > IFNAMSIZ:
                errors.append("%s.%s: '%s' is longer than %d characters (Linux IFNAMSIZ)"
                              % (field, key, value, IFNAMSIZ))
        if link['name'] in seen:
            errors.append("%s.name: '%s' is listed twice" % (field, link['name']))
        seen.add(link['name'])
        if link['kind'] == 'veth' and not link.get('peer'):
            errors.append("%s.peer: a veth link needs the name of its other end "
                          "(or use kind: existing to move a device in)" % field)
        if link['kind'] == 'existing' and (link.get('peer_bridge') or link.get('peer')
                                           or link.get('peer_netns')):
            errors.append("%s: peer, peer_netns and peer_bridge apply to kind: veth only" % field)
        if link.get('peer_netns') == name:
            errors.append("%s.peer_netns: '%s' is this namespace; a veth with both ends here "
                          "needs no peer_netns (or name another namespace)" % (field, name))
        for j, addr in enumerate(link['addresses']):
            try:
                ipaddress.ip_interface(addr)
                if '/' not in addr:
                    raise ValueError('no prefix length')
            except ValueError:
                errors.append("%s.addresses[%d]: '%s' is not an address in CIDR notation "
                              "(e.g. 10.77.0.2/24)" % (field, j, addr))
    for i, route in enumerate(params['routes']):
        field = 'routes[%d]' % i
        if route['to'] != 'default':
            try:
                ipaddress.ip_network(route['to'], strict=False)
            except ValueError:
                errors.append("%s.to: '%s' is neither 'default' nor a CIDR prefix" % (field, route['to']))
        if route.get('via'):
            try:
                ipaddress.ip_address(route['via'])
            except ValueError:
                errors.append("%s.via: '%s' is not an IP address" % (field, route['via']))
        if not route.get('via') and not route.get('dev'):
            errors.append("%s: give via, dev or both" % field)
    for key in params['sysctls']:
        if not key.startswith('net.'):
            errors.append("sysctls.%s: only the per-namespace net.* sysctls can be set here" % key)
    return errors


class NetnsHost(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.ns = self.p['name']
        self.root = Runner(module)
        self.inside = Runner(module, netns=self.ns)
        # Both runners record into one list, so RV(commands) keeps the real order.
        self.inside.changes = self.root.changes

    # --- reading -------------------------------------------------------------------------
    def exists(self):
        names = self.root.json(['ip', '-j', 'netns', 'list']) or []
        return any(entry.get('name') == self.ns for entry in names)

    def links_in(self, netns):
        argv = ['ip', '-j'] + (['-n', netns] if netns else []) + ['addr', 'show']
        links = {}
        for entry in self.root.json(argv) or []:
            addrs = sorted('%s/%s' % (a['local'], a['prefixlen']) for a in entry.get('addr_info', [])
                           if a.get('scope') == 'global')
            links[entry['ifname']] = {
                'addresses': addrs, 'mtu': entry.get('mtu'),
                'up': 'UP' in entry.get('flags', []), 'master': entry.get('master')}
        return links

    def routes(self):
        routes = []
        for r in self.root.json(['ip', '-j', '-n', self.ns, 'route', 'show']) or []:
            routes.append({'to': r.get('dst'), 'via': r.get('gateway'), 'dev': r.get('dev')})
        return routes

    def sysctl(self, key):
        return self.inside.run(['sysctl', '-n', key]).stdout.strip()

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
        return {
            'links': dict((k, {'addresses': v['addresses'], 'mtu': v['mtu'], 'up': v['up']})
                          for k, v in links.items() if k != 'lo'),
            'lo_up': links.get('lo', {}).get('up', False),
            'routes': self.routes(),
            'sysctls': dict((k, self.sysctl(k)) for k in sorted(self.p['sysctls'])),
        }

    def predicted(self):
        """What read() would return after the change (for check mode's diff)."""
        if self.p['state'] == 'absent':
            return None
        links = dict((link['name'], {
            'addresses': sorted(str(ipaddress.ip_interface(a)) for a in link['addresses']),
            'mtu': link.get('mtu'), 'up': True}) for link in self.p['links'])
        return {'links': links, 'lo_up': True, 'routes': self.p['routes'],
                'sysctls': dict((k, str(v)) for k, v in self.p['sysctls'].items())}

    # --- converging ----------------------------------------------------------------------
    def ip(self, *args):
        self.root.run(['ip'] + list(args), changes=True)

    def ip_ns(self, *args):
        self.root.run(['ip', '-n', self.ns] + list(args), changes=True)

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

    def preflight(self, have, root_links, peers):
        """Devices and namespaces that must already exist, checked before the first change."""
        errors = []
        for i, link in enumerate(self.p['links']):
            name = link['name']
            if name in have:
                continue
            if link['kind'] == 'veth' and link.get('peer_netns'):
                if link['peer_netns'] not in peers:
                    errors.append(
                        "links[%d].peer_netns: namespace '%s' does not exist; create it first "
                        "(e.g. a netns_host task with only its name)" % (i, link['peer_netns']))
                elif link['peer'] in peers[link['peer_netns']]:
                    errors.append(
                        "links[%d].peer: '%s' already exists in namespace '%s' while '%s' is "
                        "missing from namespace '%s'; delete '%s' or choose another peer name"
                        % (i, link['peer'], link['peer_netns'], name, self.ns, link['peer']))
                continue
            if link['kind'] == 'existing' and name not in root_links:
                errors.append(
                    "links[%d].name: device '%s' exists neither in namespace '%s' nor in the root "
                    "namespace; create it first (e.g. an internal port with "
                    "zerodrop.testbed.ovs_port) or use kind: veth" % (i, name, self.ns))
            if link['kind'] == 'veth' and link['peer'] in root_links:
                errors.append(
                    "links[%d].peer: '%s' already exists in the root namespace while '%s' is "
                    "missing from namespace '%s'; delete '%s' or choose another peer name"
                    % (i, link['peer'], name, self.ns, link['peer']))
        if errors:
            self.module.fail_json(msg='; '.join(errors), errors=errors, commands=[])

    def present(self, before):
        exists = before is not None
        root_links = self.links_in(None)
        peers = self.peer_links(root_links)
        have = before['links'] if exists else {}
        self.preflight(have, root_links, peers)
        if not exists:
            self.ip('netns', 'add', self.ns)
        if not exists or not before['lo_up']:
            self.ip_ns('link', 'set', 'lo', 'up')
        for i, link in enumerate(self.p['links']):
            self.converge_link(i, link, have.get(link['name']), peers)
        # Address changes drop the routes through them: read routes after the links are done.
        current_routes = self.routes() if exists and not self.module.check_mode else (
            before['routes'] if exists else [])
        for route in self.p['routes']:
            if not self.route_present(route, current_routes):
                argv = ['route', 'replace', route['to']]
                if route.get('via'):
                    argv += ['via', route['via']]
                if route.get('dev'):
                    argv += ['dev', route['dev']]
                self.ip_ns(*argv)
        for key, value in sorted(self.p['sysctls'].items()):
            want = str(value)
            if not exists or before['sysctls'].get(key) != want:
                self.inside.run(['sysctl', '-q', '-w', '%s=%s' % (key, want)], changes=True)

    def converge_link(self, index, link, current, peers):
        name = link['name']
        peer_netns = link.get('peer_netns')
        if current is None:
            if link['kind'] == 'veth':
                # Made with its inner end directly in the namespace: no clash with root devices.
                self.ip(*(['-n', peer_netns] if peer_netns else []) + [
                    'link', 'add', link['peer'], 'type', 'veth', 'peer', 'name', name,
                    'netns', self.ns])
            else:
                self.ip('link', 'set', name, 'netns', self.ns)
            current = {'addresses': [], 'mtu': None, 'up': False}
        want = sorted(str(ipaddress.ip_interface(a)) for a in link['addresses'])
        # Purge first: deleting a primary address also deletes the secondaries of its subnet.
        if link['purge_addresses']:
            for addr in current['addresses']:
                if addr not in want:
                    self.ip_ns('addr', 'del', addr, 'dev', name)
        for addr in want:
            if addr not in current['addresses']:
                self.ip_ns('addr', 'add', addr, 'dev', name)
        if link.get('mtu') and current['mtu'] != link['mtu']:
            self.ip_ns('link', 'set', name, 'mtu', str(link['mtu']))
        if not current['up']:
            self.ip_ns('link', 'set', name, 'up')
        if link['kind'] == 'veth':
            self.converge_peer(link, peers.get(peer_netns, {}).get(link['peer']))

    def converge_peer(self, link, peer):
        name = link['peer']
        netns = link.get('peer_netns')
        where = ['-n', netns] if netns else []
        if link.get('peer_bridge') and (peer is None or peer['master'] != link['peer_bridge']):
            self.ip(*where + ['link', 'set', name, 'master', link['peer_bridge']])
        if peer is None or not peer['up']:
            self.ip(*where + ['link', 'set', name, 'up'])
        if link.get('tx_offload') is not None:
            state = None if peer is None else self.tx_offload(name, netns)
            if state != link['tx_offload']:
                self.root.run(netns_argv(['ethtool', '-K', name, 'tx',
                                          'on' if link['tx_offload'] else 'off'], netns),
                              changes=True)

    @staticmethod
    def route_present(route, current):
        to = route['to']
        if to != 'default':
            to = str(ipaddress.ip_network(to, strict=False))
            if to.endswith('/32') or to.endswith('/128'):
                to = to.rsplit('/', 1)[0]
        for r in current:
            if r['to'] == to and (not route.get('via') or r['via'] == route['via']) \
                    and (not route.get('dev') or r['dev'] == route['dev']):
                return True
        return False


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
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors)

    host = NetnsHost(module)
    try:
        before = host.read()
        if module.params['state'] == 'absent':
            if before is not None:
                host.ip('netns', 'del', host.ns)
        else:
            host.present(before)
        changed = bool(host.root.changes)
        if not changed:
            after = before
        elif module.check_mode:
            after = host.predicted()
        else:
            after = host.read()
    except CommandError as e:
        host.root.fail('netns_host %s: %s' % (host.ns, e), error=e)
    result = dict(changed=changed, commands=host.root.changes, state=after)
    if module._diff:
        result['diff'] = dict(before=before or {}, after=after or {})
    module.exit_json(**result)


if __name__ == '__main__':
    main()
