#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: ovs_bridge
short_description: Manage an Open vSwitch bridge and its ports in one transaction
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Creates, changes or removes an Open vSwitch bridge and, optionally, the whole list of its ports.
  - Reads the state with one C(ovs-vsctl --format=json) call and applies every change of the task
    in ONE C(ovs-vsctl) transaction (C(add-br), C(set), C(add-port), C(del-port) clauses joined by
    C(--)), so a rejected change leaves nothing half-done.
  - The database accepts interface types and devices that C(ovs-vswitchd) then cannot open. When
    that happens to a port or bridge this task set up, the module puts back the state from before
    the task in a second transaction and fails naming the interface and the C(ovs-vswitchd) error.
  - Every bridge has an internal port of its own name. It is never purged, never reported among
    O(ports), and must not be listed there.
  - State made by hand (C(ovs-vsctl add-br br0), C(ovs-vsctl add-port br0 tap0)) is recognised;
    asking for the same thing reports no change.
  - All input is checked before anything changes; errors name the field and the fix. A failure
    changes nothing (the transaction is refused whole, or undone as above).
  - A bridge that exists but has no datapath (its own internal port has no OpenFlow port, what
    C(ovs-vsctl add-br) leaves with the system datapath on a kernel without the openvswitch
    module) is reported with a warning naming O(datapath_type=netdev) as the fix; a new bridge
    in that state is refused and undone.
options:
  name:
    description: Name of the bridge (a Linux device name, at most 15 bytes).
    type: str
    required: true
  state:
    description: Whether the bridge exists. V(absent) removes it with all its ports.
    type: str
    choices: [present, absent]
    default: present
  datapath_type:
    description:
      - V(system) is the kernel datapath (needs the openvswitch kernel module, stored as the
        empty default); V(netdev) the userspace datapath, which works without the module.
      - Left unchanged when not given; a new bridge then gets the OVS default (V(system)).
    type: str
    choices: [system, netdev]
  fail_mode:
    description: OpenFlow fail mode; V(unset) clears it. Left unchanged when not given.
    type: str
    choices: [standalone, secure, unset]
  stp:
    description: Spanning tree (C(stp_enable)). Left unchanged when not given.
    type: bool
  other_config:
    description: Keys of the bridge's C(other_config) column (values are turned into strings).
    type: dict
  purge_other_config:
    description: Remove C(other_config) keys not listed in O(other_config).
    type: bool
    default: false
  external_ids:
    description: Keys of the bridge's C(external_ids) column (values are turned into strings).
    type: dict
  purge_external_ids:
    description: Remove C(external_ids) keys not listed in O(external_ids).
    type: bool
    default: false
  ports:
    description:
      - Ports of the bridge. Ports already there are changed to match; settings not given for a
        port are left as they are. When not given, the bridge's ports are not managed at all.
    type: list
    elements: dict
    suboptions:
      name:
        description: Port name; the port's single interface has the same name.
        type: str
        required: true
      type:
        description:
          - OVS interface type. V(system) is a plain kernel device (the empty type).
          - A new port without a type is a V(system) port, as with C(ovs-vsctl add-port).
        type: str
        choices: [system, internal, tap, patch, vxlan, gre, geneve, erspan, ip6erspan, ip6gre,
                  stt, bareudp, gtpu, srv6, dpdk, dpdkvhostuser, dpdkvhostuserclient, afxdp,
                  afxdp-nonpmd]
      tag:
        description: Access VLAN id (0..4095).
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
        description: Keys of the port's C(external_ids) column.
        type: dict
      purge_external_ids:
        description: Remove the port's C(external_ids) keys not listed in O(ports[].external_ids).
        type: bool
        default: false
  purge_ports:
    description: Remove the bridge's ports not listed in O(ports) (never its own internal port).
    type: bool
    default: false
  move_ports:
    description:
      - Move a listed port that is on another bridge (C(del-port) and C(add-port) in the same
        transaction, keeping its settings). Without it, such a port is an error.
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
    description: Shows the bridge and its ports before and after.
  platform:
    support: full
    platforms: posix
    description: Any host with C(ovs-vsctl) and a reachable OVS database.
requirements:
  - Open vSwitch (C(ovs-vsctl)) with a running C(ovsdb-server) and C(ovs-vswitchd)
seealso:
  - module: zerodrop.testbed.ovs_port
'''

EXAMPLES = r'''
- name: A userspace bridge with 4 internal ports, in one transaction
  zerodrop.testbed.ovs_bridge:
    name: br0
    datapath_type: netdev
    fail_mode: standalone
    ports:
      - {name: vm0, type: internal}
      - {name: vm1, type: internal, tag: 10}
      - {name: vm2, type: internal, trunks: [10, 20]}
      - {name: uplink, type: system, mtu_request: 9000}

- name: Exactly these ports, any other removed
  zerodrop.testbed.ovs_bridge:
    name: br0
    ports:
      - {name: vm0, type: internal}
    purge_ports: true

- name: Patch two bridges together
  zerodrop.testbed.ovs_bridge:
    name: br1
    datapath_type: netdev
    ports:
      - {name: patch-br0, type: patch, options: {peer: patch-br1}}

- name: Bridge on private daemons (no kernel module)
  zerodrop.testbed.ovs_bridge:
    name: br-lab
    datapath_type: netdev
    external_ids: {owner: zd}
    database: unix:/run/zd-ovs/db.sock

- name: Remove a bridge with all its ports
  zerodrop.testbed.ovs_bridge:
    name: br1
    state: absent
'''

RETURN = r'''
commands:
  description: The ovs-vsctl argv lists run (or, in check mode, to be run); a second one only
    when a change ovs-vswitchd refused was undone.
  returned: always
  type: list
  elements: list
  sample: [["/usr/bin/ovs-vsctl", "--timeout=30", "add-br", "br0", "--", "set", "Bridge", "br0",
            "datapath_type=netdev", "--", "add-port", "br0", "vm0", "--", "set", "Interface",
            "vm0", "type=internal"]]
bridge:
  description:
    - The bridge as read back after the change (in check mode, as predicted); empty when absent.
    - C(ports) is keyed by port name and leaves out the bridge's own internal port; each port has
      C(type) (V(system) for a plain device), C(tag), C(trunks), C(options), C(ofport_request),
      C(mtu_request), C(external_ids), C(bridge), and the read-only C(ofport), C(error),
      C(interfaces).
  returned: always
  type: dict
  sample:
    name: br0
    datapath_type: netdev
    fail_mode: unset
    stp: false
    other_config: {}
    external_ids: {}
    ports:
      vm0: {name: vm0, bridge: br0, type: internal, tag: null, trunks: [], options: {},
            ofport_request: null, mtu_request: null, external_ids: {}, ofport: 1, error: null,
            interfaces: [vm0]}
rolled_back:
  description: Whether a change ovs-vswitchd refused was undone (only on failure).
  returned: failure
  type: bool
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.ovsdb import (
    CONNECTION_ARGS, DATAPATH_TYPES, FAIL_MODES, PORT_ARGS, OvsClient, OvsError, bridge_view,
    desired_bridge, desired_port, no_datapath_warning, plan_bridge)


def main():
    port_options = dict(PORT_ARGS, name=dict(type='str', required=True))
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            datapath_type=dict(type='str', choices=list(DATAPATH_TYPES)),
            fail_mode=dict(type='str', choices=list(FAIL_MODES)),
            stp=dict(type='bool'),
            other_config=dict(type='dict'),
            purge_other_config=dict(type='bool', default=False),
            external_ids=dict(type='dict'),
            purge_external_ids=dict(type='bool', default=False),
            ports=dict(type='list', elements='dict', options=port_options),
            purge_ports=dict(type='bool', default=False),
            move_ports=dict(type='bool', default=False),
            **CONNECTION_ARGS
        ),
        supports_check_mode=True,
    )
    client = OvsClient(module)
    with Guard(module, client.runner) as guard:
        manage(module, client, guard)


def manage(module, client, guard):
    p = module.params
    try:
        want = desired_bridge(p)
        ports = None
        if p['ports'] is not None:
            ports = [desired_port(port, 'ports[%d]' % i) for i, port in enumerate(p['ports'])]
    except OvsError as e:
        client.fail(str(e))
    guard.doing('read the Open vSwitch database', p['database'])
    before = client.read()
    try:
        txn, predicted = plan_bridge(before, p['name'], p['state'], want,
                                     p['purge_other_config'], p['purge_external_ids'], ports,
                                     p['purge_ports'], p['move_ports'])
    except OvsError as e:
        client.fail(str(e))
    after = predicted
    shown = before.bridges.get(p['name'])
    if txn:
        guard.doing('apply the change to the Open vSwitch database', p['database'])
        snap = client.apply(txn, before)
        if snap is not None:
            after = shown = snap.bridges.get(p['name'])
    if p['state'] == 'present' and shown is not None and \
            want.get('datapath_type', shown['datapath_type']) == shown['datapath_type']:
        warning = no_datapath_warning(shown)
        if warning:
            module.warn(warning)
    old = before.bridges.get(p['name'])
    module.exit_json(
        changed=bool(txn), commands=client.runner.changes, bridge=bridge_view(after),
        diff={'before': bridge_view(old, full=False), 'after': bridge_view(after, full=False)})


if __name__ == '__main__':
    main()
