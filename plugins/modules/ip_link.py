#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ip_link
short_description: Network devices of a namespace as data (tap, ifb, bridge, veth, existing)
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Creates the listed devices that are missing and sets their bridge (O(devices[].master)),
    up state, txqueuelen, MTU, addresses and routes, in the root network namespace or in
    O(netns). With O(state=absent), deletes the listed devices.
  - The state is read with C(ip -d -j addr show) and C(ip -j route show); only what differs is
    changed, so a re-run reports no change.
  - RV(created) lists the devices this call made, so that a teardown can delete exactly those
    (O(state=absent) with the same list).
  - Everything checkable (names, values, devices that must exist, a name taken by a device of
    another kind, a master that is neither there nor created here) is checked before the first
    change.
options:
  netns:
    description: Network namespace of the devices; the root namespace when not given.
    type: str
  state:
    description:
      - C(present) makes the devices exist as described.
      - C(absent) deletes the listed devices that exist (a veth with its peer); devices of kind
        C(existing) are left alone. Only O(devices[].name) and O(devices[].kind) are used.
    type: str
    choices: [present, absent]
    default: present
  devices:
    description: The devices, in order (a bridge before the devices that name it as master).
      An empty list changes nothing (a teardown of a run that created nothing).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Device name (1-15 bytes, no C(/), no white space).
        type: str
        required: true
      kind:
        description:
          - C(tap) (a persistent tap, C(ip tuntap add)), C(ifb), C(bridge) (a Linux bridge),
            C(veth) (with O(devices[].peer)), or C(existing) (a device that must already be
            there, for example an uplink; never created or deleted).
        type: str
        choices: [tap, ifb, bridge, veth, existing]
        default: existing
      peer:
        description: Name of a veth's other end (same namespace). Required for C(veth).
        type: str
      master:
        description: Bridge the device is attached to; an empty string detaches it.
        type: str
      up:
        description: Set the device up (true) or down (false); left as it is when not given.
        type: bool
      txqueuelen:
        description: Transmit queue length in packets (0 to 4294967295).
        type: int
      mtu:
        description: MTU in bytes (68 to 65535, within the device's own range).
        type: int
      addresses:
        description: Addresses with prefix length (C(10.0.0.1/24), C(fd00::1/64)); others on the
          device are kept.
        type: list
        elements: str
        default: []
      routes:
        description: Routes through the device (C(ip route replace TO [via VIA] dev NAME)).
        type: list
        elements: dict
        default: []
        suboptions:
          to:
            description: Destination network, or C(default).
            type: str
            required: true
          via:
            description: Gateway address.
            type: str
attributes:
  check_mode:
    support: full
    description: Reads the devices and returns RV(commands) without running them.
  diff_mode:
    support: full
    description: The listed devices (and their routes) before and after; in check mode the
      after is predicted (a device still to be created shows the MTU and txqueuelen the kernel
      will give it as null unless they are set).
  platform:
    support: full
    platforms: posix
    description: Linux with iproute2 (C(ip)).
notes:
  - Needs root and C(ip) (iproute2).
  - The commands of one call are not atomic; if the kernel refuses one after the checks, the
    ones before it stay, C(changed) is true and RV(created) and RV(commands) say what was made.
seealso:
  - module: zerodrop.testbed.netns_host
  - module: zerodrop.testbed.tc_qdisc
'''

EXAMPLES = r'''
- name: A Linux bridge with an address and a route, a tap and an ifb
  zerodrop.testbed.ip_link:
    devices:
      - {name: br0, kind: bridge, up: true, addresses: [10.0.0.1/24],
         routes: [{to: 10.1.0.0/24, via: 10.0.0.2}]}
      - {name: tap0, kind: tap, master: br0, up: true}
      - {name: ifb-tap0, kind: ifb, up: true}
  register: made

- name: Delete what the call above created
  zerodrop.testbed.ip_link:
    state: absent
    devices: "{{ made.created }}"
'''

RETURN = r'''
created:
  description: The devices this call created (in check mode, would create), as
    O(devices) items (name, kind, peer), ready for O(state=absent).
  returned: always
  type: list
  elements: dict
  sample: [{name: tap0, kind: tap}]
deleted:
  description: The devices this call deleted (O(state=absent)).
  returned: always
  type: list
  elements: str
devices:
  description: The listed devices as read back after the task (in check mode, before it).
  returned: always
  type: dict
  sample: {tap0: {addresses: [], mtu: 1500, up: true, master: br0, kind: tun, txqueuelen: 1000}}
commands:
  description: The ip commands run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: list
reasons:
  description: Why each command in RV(commands) is needed.
  returned: always
  type: list
  elements: str
diff:
  description: The listed devices and the routes through them (not those the kernel adds for
    an address) before and after.
  returned: when diff mode is on
  type: dict
'''

import ipaddress

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils import iplink
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import (
    device_name, errors, path_component)
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner

U32 = 0xffffffff
MTU_RANGE = (68, 65535)


def check_input(p):
    """Every error of the arguments alone, each naming its field and the fix."""
    bad = []
    if p['netns'] is not None:
        bad.append(path_component('netns', p['netns']))
    seen = set()
    for i, dev in enumerate(p['devices']):
        field = 'devices[%d]' % i
        bad.append(device_name('%s.name' % field, dev['name']))
        if dev['name'] in seen:
            bad.append("%s.name: '%s' is listed twice; list each device once"
                       % (field, dev['name']))
        seen.add(dev['name'])
        if dev['kind'] == 'veth':
            if not dev.get('peer'):
                bad.append('%s.peer: a veth needs the name of its other end, e.g. peer: %s-p'
                           % (field, dev['name'][:13]))
            else:
                bad.append(device_name('%s.peer' % field, dev['peer']))
        elif dev.get('peer'):
            bad.append('%s.peer: only a veth has a peer; drop peer or use kind: veth' % field)
        if dev.get('master'):
            bad.append(device_name('%s.master' % field, dev['master']))
            if dev['master'] == dev['name']:
                bad.append("%s.master: '%s' cannot be its own master; name a bridge"
                           % (field, dev['name']))
        if dev.get('mtu') is not None and not MTU_RANGE[0] <= dev['mtu'] <= MTU_RANGE[1]:
            bad.append('%s.mtu: %s is out of range; use %d to %d bytes'
                       % ((field, dev['mtu']) + MTU_RANGE))
        if dev.get('txqueuelen') is not None and not 0 <= dev['txqueuelen'] <= U32:
            bad.append('%s.txqueuelen: %s is out of range; use 0 to %d packets'
                       % (field, dev['txqueuelen'], U32))
        for j, addr in enumerate(dev.get('addresses') or []):
            if '/' not in str(addr):
                bad.append("%s.addresses[%d]: '%s' has no prefix length; write it as "
                           "ADDRESS/PREFIX, e.g. 10.0.0.1/24" % (field, j, addr))
                continue
            try:
                ipaddress.ip_interface(addr)
            except ValueError as e:
                bad.append("%s.addresses[%d]: '%s' is not an address with prefix (%s); e.g. "
                           "10.0.0.1/24" % (field, j, addr, e))
        for j, route in enumerate(dev.get('routes') or []):
            where = '%s.routes[%d]' % (field, j)
            if route['to'] != 'default':
                try:
                    ipaddress.ip_network(route['to'], strict=False)
                except ValueError as e:
                    bad.append("%s.to: '%s' is not a network (%s); e.g. 10.1.0.0/24 or default"
                               % (where, route['to'], e))
            if route.get('via'):
                try:
                    ipaddress.ip_address(route['via'])
                except ValueError as e:
                    bad.append("%s.via: '%s' is not an address (%s); e.g. 10.0.0.2"
                               % (where, route['via'], e))
    return errors(*bad)


def check_system(p, have):
    """Errors only the system can show: missing or mistyped devices, masters nowhere."""
    bad = []
    made = set(d['name'] for d in p['devices'] if d['kind'] != 'existing')
    where = "network namespace '%s'" % p['netns'] if p['netns'] else 'the root namespace'
    for i, dev in enumerate(p['devices']):
        field = 'devices[%d]' % i
        current = have.get(dev['name'])
        if current is None and dev['kind'] == 'existing':
            bad.append("%s.name: device '%s' not found in %s; create it first or give its kind "
                       "(tap, ifb, bridge, veth)" % (field, dev['name'], where))
        elif current is not None and dev['kind'] != 'existing' \
                and current['kind'] != iplink.INFO_KIND[dev['kind']]:
            bad.append("%s.kind: '%s' exists as a %s device, not a %s; pick another name or "
                       "kind: existing" % (field, dev['name'], current['kind'] or 'plain',
                                           dev['kind']))
        elif current is None and dev['kind'] == 'veth' and dev['peer'] in have:
            bad.append("%s.peer: '%s' already exists in %s; name a free device for the peer"
                       % (field, dev['peer'], where))
        master = dev.get('master')
        if master and master not in have and master not in made:
            bad.append("%s.master: bridge '%s' not found in %s; list it (kind: bridge) before "
                       "this device" % (field, master, where))
        elif master and master in have and have[master]['kind'] != 'bridge' \
                and master not in made:
            bad.append("%s.master: '%s' is a %s device, not a bridge" % (
                field, master, have[master]['kind'] or 'plain'))
        if current is not None and dev.get('mtu') is not None:
            low, high = current.get('min_mtu'), current.get('max_mtu')
            # max_mtu 0: the driver sets no upper bound (ifb)
            if (low is not None and dev['mtu'] < low) or (high and dev['mtu'] > high):
                bad.append('%s.mtu: %s is outside what %s takes (%s to %s)'
                           % (field, dev['mtu'], dev['name'], low, high))
    return bad


def view(have, routes, names):
    """The listed devices and the routes through them, without those the kernel adds for an
    address (protocol kernel)."""
    return {'devices': dict((n, have[n]) for n in names if n in have),
            'routes': sorted(iplink.public_routes(r for r in routes if r['dev'] in names
                                                  and r.get('protocol') != 'kernel'),
                             key=lambda r: (r['dev'], r['to'], r['via'] or ''))}


def main():
    route_spec = dict(to=dict(type='str', required=True), via=dict(type='str'))
    device_spec = dict(
        name=dict(type='str', required=True),
        kind=dict(type='str', choices=['tap', 'ifb', 'bridge', 'veth', 'existing'],
                  default='existing'),
        peer=dict(type='str'),
        master=dict(type='str'),
        up=dict(type='bool'),
        txqueuelen=dict(type='int'),
        mtu=dict(type='int'),
        addresses=dict(type='list', elements='str', default=[]),
        routes=dict(type='list', elements='dict', options=route_spec, default=[]),
    )
    module = AnsibleModule(
        argument_spec=dict(
            netns=dict(type='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            devices=dict(type='list', elements='dict', options=device_spec, required=True),
        ),
        supports_check_mode=True,
    )
    runner = Runner(module, netns=module.params['netns'])
    with Guard(module, runner) as guard:
        manage(module, runner, guard)


def manage(module, runner, guard):
    p = module.params
    bad = check_input(p)
    if bad:
        module.fail_json(msg='; '.join(bad), commands=[], created=[], deleted=[])
    names = [d['name'] for d in p['devices']]

    guard.doing('read the devices and routes')
    if p['netns']:
        spaces = Runner(module).json(['ip', '-j', 'netns', 'list']) or []
        if p['netns'] not in [entry.get('name') for entry in spaces]:
            module.fail_json(msg="netns: network namespace '%s' does not exist; create it first "
                             "(ip netns add %s or zerodrop.testbed.netns_host)"
                             % (p['netns'], p['netns']), commands=[], created=[], deleted=[])
    have = iplink.read_links(runner)
    routes = iplink.read_routes(runner)
    before = view(have, routes, names)

    ops, created, deleted = [], [], []
    after_have = dict(have)
    after_routes = [dict(r) for r in routes]
    if p['state'] == 'absent':
        for dev in p['devices']:
            if dev['kind'] == 'existing' or dev['name'] not in have:
                continue
            if dev['kind'] != 'existing' and have[dev['name']]['kind'] != \
                    iplink.INFO_KIND[dev['kind']]:
                module.fail_json(msg="devices: '%s' is a %s device, not a %s; nothing was "
                                 "deleted" % (dev['name'], have[dev['name']]['kind'],
                                              dev['kind']), commands=[], created=[], deleted=[])
            ops.append((['link', 'del', 'dev', dev['name']], 'listed as absent'))
            deleted.append(dev['name'])
            after_have.pop(dev['name'], None)
            if dev['kind'] == 'veth' and dev.get('peer'):
                after_have.pop(dev['peer'], None)
        after_routes = [r for r in after_routes if r['dev'] not in deleted]
    else:
        bad = check_system(p, have)
        if bad:
            module.fail_json(msg='nothing was changed: %s' % '; '.join(bad), commands=[],
                             created=[], deleted=[])
        for dev in p['devices']:
            current = have.get(dev['name'])
            dev_ops, after_have[dev['name']] = iplink.plan_device(dev, current)
            ops += dev_ops
            if current is None:
                created.append(dict((k, dev[k]) for k in ('name', 'kind', 'peer')
                                    if dev.get(k)))
        for dev in p['devices']:
            for route in dev['routes']:
                wanted = dict(route, dev=dev['name'])
                if not iplink.route_present(wanted, after_routes):
                    ops.append((iplink.route_args('replace', wanted),
                                'route to %s missing' % route['to']))
                    after_routes.append({'to': iplink.normal_to(route['to']),
                                         'via': route.get('via'), 'dev': dev['name'],
                                         'family': iplink.route_family(wanted),
                                         'protocol': 'boot'})

    guard.doing('run the ip commands')
    for argv, dummy in ops:
        runner.run(['ip'] + argv, changes=True)
    after = before
    if ops and not module.check_mode:
        after = view(iplink.read_links(runner), iplink.read_routes(runner), names)
    prefix = ['ip', 'netns', 'exec', p['netns']] if p['netns'] else []
    result = dict(changed=bool(ops), created=created, deleted=deleted,
                  devices=after['devices'],
                  commands=[prefix + ['ip'] + argv for argv, dummy in ops],
                  reasons=[why for dummy, why in ops])
    if module._diff:
        predicted = view(after_have, after_routes, names) if module.check_mode else after
        result['diff'] = {'before': before, 'after': predicted}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
