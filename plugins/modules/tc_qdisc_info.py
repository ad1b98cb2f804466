#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: tc_qdisc_info
short_description: Read Linux tc qdiscs and their statistics
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Reads the qdiscs of one device or of all devices, optionally inside a network namespace,
    with C(tc -s -d -r -j qdisc show), and returns them in the normalised form of
    M(zerodrop.testbed.tc_qdisc) (rates in bytes/s, sizes in bytes, times in microseconds).
  - Statistics per qdisc are packets, bytes, drops, overlimits, requeues, backlog (bytes) and qlen
    (packets); kind-specific counters, such as RED's marked, early, pdrop and other, are in
    C(xstats).
  - Never changes anything.
options:
  device:
    description: Device to read (a device name, 1-15 characters). All devices of the namespace when not given.
    type: str
  netns:
    description: Network namespace to read in (commands run with C(ip netns exec)).
    type: str
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: Linux with iproute2 (C(tc), C(ip)).
notes:
  - Reading statistics needs no privileges outside a namespace; C(ip netns exec) needs root.
seealso:
  - module: zerodrop.testbed.tc_qdisc
'''

EXAMPLES = r'''
- name: Qdiscs and drop counters of the bottleneck
  zerodrop.testbed.tc_qdisc_info:
    netns: rtr
    device: veth-rcv
  register: bottleneck

- name: Show the drops of the root qdisc
  ansible.builtin.debug:
    msg: "{{ (bottleneck.qdiscs | selectattr('parent', 'eq', 'root') | first).stats.drops }}"

- name: Every device of the host
  zerodrop.testbed.tc_qdisc_info:
  register: all_qdiscs
'''

RETURN = r'''
qdiscs:
  description: The qdiscs of O(device), in tc's order (parents before children).
  returned: when O(device) is given
  type: list
  elements: dict
  sample:
    - kind: red
      handle: "10:"
      parent: "1:1"
      default: false
      options: {limit: 100000, min: 30000, max: 90000, ecn: true, harddrop: false,
                adaptive: false, nodrop: false, ewma: 3, probability: 0.02, Scell_log: 10}
      stats: {bytes: 1514, packets: 1, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0}
      xstats: {marked: 0, early: 0, pdrop: 0, other: 0}
devices:
  description: The qdiscs of every device, by device name.
  returned: when O(device) is not given
  type: dict
  sample: {lo: [{kind: noqueue, handle: "0:", parent: root, default: true, options: {},
                 stats: {}, xstats: {}}]}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import device_name, errors, \
    path_component
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import CommandError, Runner
from ansible_collections.zerodrop.testbed.plugins.module_utils import tc


def main():
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type='str'),
            netns=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    device, netns = module.params['device'], module.params['netns']
    problems = errors(device_name('device', device) if device is not None else None,
                      path_component('netns', netns) if netns is not None else None)
    if problems:
        module.fail_json(msg='; '.join(problems))
    runner = Runner(module, netns=netns)
    argv = tc.READ_ARGV + [device] if device else tc.READ_ARGV[:-1]
    with Guard(module, runner) as guard:
        guard.doing('read the qdiscs')
        try:
            qdiscs = tc.parse_show(runner.json(argv))
        except CommandError as e:
            err = (e.result.stderr or '').strip()
            if 'network namespace' in err:
                runner.fail("network namespace '%s' does not exist (%s): give an existing one "
                            "(ip netns list) or unset netns" % (netns, err), error=e)
            if 'Cannot find device' in err:
                runner.fail("device '%s' not found in %s: give a device that exists (ip link show), "
                            "or no device for all of them" % (
                                device, "network namespace '%s'" % netns if netns else
                                'the root network namespace'), error=e)
            runner.fail('cannot read qdiscs: %s' % e, error=e)
        if device:
            found = dict(qdiscs=tc.public_tree(qdiscs))
        else:
            found = dict(devices=tc.by_device(qdiscs))
    module.exit_json(changed=False, **found)


if __name__ == '__main__':
    main()
