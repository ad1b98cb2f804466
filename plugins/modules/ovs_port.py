#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ovs_port
short_description: Manage one Open vSwitch port in one transaction
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Adds, changes, moves or removes one port of an Open vSwitch bridge, for labs that manage
    ports one by one. To set up many ports, list them in P(zerodrop.testbed.ovs_bridge#module)'s
    O(zerodrop.testbed.ovs_bridge#module:ports) instead (one transaction for all of them).
  - Reads the state with one C(ovs-vsctl --format=json) call and applies every change in ONE
    C(ovs-vsctl) transaction.
  - The database accepts interface types and devices that C(ovs-vswitchd) then cannot open. When
    that happens, the module puts back the state from before the task in a second transaction
    and fails naming the C(ovs-vswitchd) error.
  - A port made by hand (C(ovs-vsctl add-port br0 tap0)) is recognised; asking for the same
    thing reports no change.
  - All input is checked before anything changes; errors name the field and the fix. A failure
    changes nothing (the transaction is refused whole, or undone as above).
  - O(name) and O(bridge) follow the Linux device name rules where they are devices (at most
    15 bytes, no C(/), C(:) or whitespace, no leading C(-)); patch, tunnel and DPDK ports are
    not devices and only must not start with C(-) or contain whitespace.
  - A port on a bridge without a datapath (see P(zerodrop.testbed.ovs_bridge#module)) gets a
    warning naming C(datapath_type=netdev) as the fix; a new port there is refused and undone.
options:
  name:
    description: Port name (a Linux device name, at most 15 bytes); its single interface has the
      same name.
    type: str
    required: true
  bridge:
    description:
      - Bridge the port belongs to; it must exist. Required with O(state=present).
      - With O(state=absent), the port is removed only from this bridge; without it, from any.
    type: str
  state:
    description: Whether the port exists on O(bridge).
    type: str
    choices: [present, absent]
    default: present
  move:
    description:
      - Move the port when it is on another bridge (C(del-port) and C(add-port) in one
        transaction, keeping its settings). Without it, such a port is an error.
    type: bool
    default: false
  type:
    description:
      - OVS interface type. V(system) is a plain kernel device (the empty type).
      - A new port without a type is a V(system) port, as with C(ovs-vsctl add-port); an existing
        port keeps its type when not given.
    type: str
    choices: [system, internal, tap, patch, vxlan, gre, geneve, erspan, ip6erspan, ip6gre, stt,
              bareudp, gtpu, srv6, dpdk, dpdkvhostuser, dpdkvhostuserclient, afxdp, afxdp-nonpmd]
  tag:
    description: Access VLAN id (0..4095). Left unchanged when not given.
    type: int
  trunks:
    description: VLAN ids (0..4095) the port trunks; V([]) clears the list.
    type: list
    elements: int
  options:
    description:
      - The interface's complete C(options) map, e.g. key C(peer) for a patch port or
        C(remote_ip) for a tunnel. Keys not listed are removed.
    type: dict
  ofport_request:
    description: OpenFlow port number to ask for (1..65279).
    type: int
  mtu_request:
    description: MTU to ask for (68..65535).
    type: int
  external_ids:
    description: Keys of the port's C(external_ids) column (values are turned into strings).
    type: dict
  purge_external_ids:
    description: Remove the port's C(external_ids) keys not listed in O(external_ids).
    type: bool
    default: false
  database:
    description:
      - OVSDB to talk to, for example V(unix:/run/zd-ovs/db.sock) for private daemons.
      - The C(ovs-vsctl) default socket when not given.
    type: str
  timeout:
    description: Seconds C(ovs-vsctl) may wait for the database and for C(ovs-vswitchd).
    type: int
    default: 30
attributes:
  check_mode:
    support: full
    description: Computes and returns RV(commands) without running them.
  diff_mode:
    support: full
    description: Shows the port before and after.
  platform:
    support: full
    platforms: posix
    description: Any host with C(ovs-vsctl) and a reachable OVS database.
requirements:
  - Open vSwitch (C(ovs-vsctl)) with a running C(ovsdb-server) and C(ovs-vswitchd)
seealso:
  - module: zerodrop.testbed.ovs_bridge
'''

EXAMPLES = r'''
- name: Attach a VM's tap device, as the seed's ovs-ifup script does
  zerodrop.testbed.ovs_port:
    bridge: br0
    name: tap0

- name: An internal port on VLAN 10 with a fixed OpenFlow number
  zerodrop.testbed.ovs_port:
    bridge: br0
    name: vm1
    type: internal
    tag: 10
    ofport_request: 11

- name: Move tap1 from br0 to br1
  zerodrop.testbed.ovs_port:
    bridge: br1
    name: tap1
    move: true

- name: Remove tap0 from whatever bridge holds it
  zerodrop.testbed.ovs_port:
    name: tap0
    state: absent
'''

RETURN = r'''
commands:
  description: The ovs-vsctl argv lists run (or, in check mode, to be run); a second one only
    when a change ovs-vswitchd refused was undone.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/ovs-vsctl", "--timeout=30", "add-port", "br0", "vm1", "--", "set", "Port",
            "vm1", "tag=10", "--", "set", "Interface", "vm1", "type=internal"]]
port:
  description:
    - The port as read back after the change (in check mode, as predicted); empty when absent.
    - C(type) is V(system) for a plain device; C(ofport), C(error) and C(interfaces) are read-only.
  returned: always
  type: dict
  sample: {name: vm1, bridge: br0, type: internal, tag: 10, trunks: [], options: {},
           ofport_request: 11, mtu_request: null, external_ids: {}, ofport: 11, error: null,
           interfaces: [vm1]}
rolled_back:
  description: Whether a change ovs-vswitchd refused was undone (only on failure).
  returned: failure
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.ovsdb import (
    CONNECTION_ARGS, PORT_ARGS, OvsClient, OvsError, check_ifname, desired_port,
    no_datapath_warning, plan_port, port_view)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            bridge=dict(type='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            move=dict(type='bool', default=False),
            **dict(PORT_ARGS, **CONNECTION_ARGS)
        ),
        required_if=[('state', 'present', ('bridge',))],
        supports_check_mode=True,
    )
    client = OvsClient(module)
    with Guard(module, client.runner) as guard:
        manage(module, client, guard)


def manage(module, client, guard):
    p = module.params
    try:
        spec = desired_port(p, '')
        if p['bridge'] is not None:
            check_ifname(p['bridge'], 'bridge')
    except OvsError as e:
        client.fail(str(e))
    guard.doing('read the Open vSwitch database', p['database'])
    before = client.read()
    try:
        txn, predicted = plan_port(before, p['bridge'], spec, p['state'], p['move'])
    except OvsError as e:
        client.fail(str(e))
    after = predicted
    snap = before
    if txn:
        guard.doing('apply the change to the Open vSwitch database', p['database'])
        applied = client.apply(txn, before)
        if applied is not None:
            snap = applied
            after = applied.ports.get(p['name'])
    if p['state'] == 'present':
        warning = no_datapath_warning(snap.bridges.get(p['bridge']))
        if warning:
            module.warn(warning)
    old = before.ports.get(p['name'])
    module.exit_json(
        changed=bool(txn), commands=client.runner.changes, port=port_view(after),
        diff={'before': port_view(old, full=False), 'after': port_view(after, full=False)})


if __name__ == '__main__':
    main()
