#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: tc_qdisc
short_description: Idempotent Linux tc queueing disciplines (one qdisc or a whole tree)
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Sets one qdisc (O(parent), O(handle), O(kind), O(options)) or a tree of qdiscs (O(tree)) on a
    network device, optionally inside a network namespace, and reports a change only when the
    kernel's state differs.
  - The state is read with C(tc -s -d -r -j qdisc show). Desired and read-back values are compared
    in the kernel's units (rates in bytes/s, sizes in bytes, times in microseconds), after
    converting the desired values the way iproute2 and the kernel do, so that re-applying the
    same options reports no change and a real change is detected.
  - Option changes use C(tc qdisc change). A different kind or handle in the same place is deleted
    and added again (with the qdiscs below it), since C(tc qdisc replace) refuses a kind change.
    All commands of a task run in one C(tc -batch) process.
  - Before changing anything, the commands are tried on the loopback device of a throw-away
    network namespace (C(unshare --net)), so that a qdisc kind the kernel lacks or options the
    kernel refuses fail the task without touching the device. Without C(unshare) this check is
    skipped.
  - Supported kinds and their O(options) (values take tc's units, e.g. C(100mbit), C(15000),
    C(32k), C(10ms)).
  - C(tbf) - C(rate), C(burst) and exactly one of C(latency) or
    C(limit) are required; C(peakrate) with C(mtu).
  - C(red) - C(limit) and C(avpkt) are required; C(min),
    C(max), C(burst) (packets), C(probability) (a fraction as in tc,
    default C(0.02)), C(bandwidth) (default C(10mbit)), C(ecn),
    C(harddrop), C(adaptive). Missing values get tc's defaults.
  - C(pfifo) (C(limit) in packets, default the device's txqueuelen) and C(bfifo)
    (C(limit) in bytes).
  - C(htb) - the root of an htb hierarchy, C(default) (class minor in hex, as in tc),
    C(r2q), C(direct_qlen). htb classes are not managed by this module.
  - C(netem) - C(delay), C(jitter), C(loss) (percent),
    C(rate), C(limit) (packets, default 1000).
  - C(fq_codel) - C(limit) (packets), C(target), C(interval),
    C(ecn), with the kernel's defaults for what is not given.
  - C(pfifo_fast), C(ingress), C(clsact) take no options.
options:
  device:
    description: Network device, for example C(tap0) or C(eth0).
    type: str
    required: true
  netns:
    description: Network namespace that holds O(device) (commands run with C(ip netns exec)).
    type: str
  state:
    description:
      - C(present) makes the qdisc(s) exist with the given options.
      - C(absent) deletes the qdisc at O(parent) (by default the root qdisc, which gives the
        device its default qdisc back) when it matches O(handle) and O(kind) where these are
        given; with O(tree), every listed qdisc.
    type: str
    choices: [present, absent]
    default: present
  parent:
    description: Where the qdisc sits, C(root), C(ingress), C(clsact) or a class id such as
      C(1:1) (the class of a tbf with handle C(1:)). Defaults to C(root) (C(ingress)/C(clsact)
      for those kinds).
    type: str
  handle:
    description:
      - Handle of the qdisc, C(MAJOR:) in hex, for example C(1:) or C(10:). tc ignores a minor,
        so C(1:1) means C(1:). When not given, an existing qdisc of the same kind at O(parent)
        is accepted whatever its handle, and a new one gets a handle from the kernel.
    type: str
  kind:
    description: Qdisc kind. Required with O(state=present) unless O(tree) is given.
    type: str
    choices: [tbf, red, pfifo, bfifo, pfifo_fast, htb, netem, fq_codel, ingress, clsact]
  options:
    description: Options of the kind (see the description above); keys as in tc.
    type: dict
    default: {}
  tree:
    description:
      - Several qdiscs of one device, parents before children; each item has the keys
        O(parent), O(handle), O(kind) and O(options) of a single qdisc.
      - A child's parent class must belong to a qdisc earlier in the list or already on the
        device.
    type: list
    elements: dict
    suboptions:
      parent:
        description: As O(parent).
        type: str
      handle:
        description: As O(handle). Required for a qdisc that has children in the tree.
        type: str
      kind:
        description: As O(kind).
        type: str
        required: true
        choices: [tbf, red, pfifo, bfifo, pfifo_fast, htb, netem, fq_codel, ingress, clsact]
      options:
        description: As O(options).
        type: dict
        default: {}
  purge:
    description:
      - With O(state=present), also delete qdiscs that sit directly below the given ones but are
        not listed. A tbf whose child is deleted gets its default bfifo back (the layout zD's
        vm-tbf kernels expect).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads the device, checks the kinds and options, returns RV(commands) without
      running them.
  diff_mode:
    support: full
    description:
      - Shows the device's qdiscs before and after, parents before children.
      - In check mode the after is predicted as the kernel will report it, derived values
        included (a tbf's limit and latency from rate, burst and latency, red's ewma and
        Scell_log, fifo, htb and fq_codel defaults from the device's txqueuelen and MTU), with
        the kernel's side effects (a tbf change sets its fifo children's limit to its own, a
        red change replaces its children, a deleted root gives the device its default qdisc).
        A handle the kernel chooses (no O(handle) given) shows as null; an C(mq) root's
        per-queue children are not predicted.
  platform:
    support: full
    platforms: posix
    description: Linux with iproute2 (C(tc), C(ip)).
notes:
  - Needs root, C(tc) and C(ip) (iproute2), and C(unshare) (util-linux) for the check before
    changes.
  - Values the kernel does not report cannot be compared; a change only in them is not seen.
    For red, avpkt, burst and bandwidth are compared through the EWMA weight (C(ewma)) and
    C(Scell_log) they produce, and the probability as tc prints it (not for adaptive RED, whose
    kernel moves it). For tbf, peakrate is compared through the minburst ticks it produces.
    For bfifo without a limit, the default limit (txqueuelen times the MTU with link header) is
    not compared.
  - Changing a tbf makes the kernel set the limit of a pfifo/bfifo child to the tbf's limit, and
    changing a red replaces its child; qdiscs listed in the same task are set again afterwards,
    other children are not.
  - C(tc -batch) is not atomic. If the kernel refuses a command after the check, the commands
    before it stay applied (listed in RV(commands), C(changed) true and RV(qdiscs) showing the
    device as it is then).
  - Bad input (a malformed or out-of-range option, a device name the kernel cannot have, a
    missing device or namespace, a kind the kernel lacks) fails before any change; messages
    name the field and the range it takes.
seealso:
  - module: zerodrop.testbed.tc_qdisc_info
'''

EXAMPLES = r'''
- name: Seed layout on a VM tap, tbf at 100 Mbit/s with a RED (ECN) child
  zerodrop.testbed.tc_qdisc:
    device: tap0
    tree:
      - parent: root
        handle: "1:"
        kind: tbf
        options: {rate: 100mbit, burst: 15000, latency: 10us}
      - parent: "1:1"
        handle: "10:"
        kind: red
        options: {limit: 100000, min: 30000, max: 90000, avpkt: 1000, burst: 35,
                  ecn: true, bandwidth: 100mbit}

- name: zD vm-tbf layout, tbf with its default bfifo child only
  zerodrop.testbed.tc_qdisc:
    device: eth0
    handle: "1:"
    kind: tbf
    options: {rate: 100mbit, burst: 15000, latency: 10ms}
    purge: true

- name: zD vm-pfifo layout, root pfifo whose limit is the device's txqueuelen
  zerodrop.testbed.tc_qdisc:
    device: eth0
    kind: pfifo

- name: Bottleneck inside a network namespace
  zerodrop.testbed.tc_qdisc:
    netns: rtr
    device: veth-rcv
    tree:
      - {handle: "1:", kind: tbf, options: {rate: 100mbit, burst: 15000, latency: 10ms}}
      - {parent: "1:1", handle: "10:", kind: bfifo, options: {limit: 100000}}

- name: Back to the device's default qdisc
  zerodrop.testbed.tc_qdisc:
    device: tap0
    state: absent
'''

RETURN = r'''
qdiscs:
  description:
    - The device's qdiscs as read back after the task (in check mode, before it), with
      statistics. Options use the module's names and units (rate bytes/s, sizes bytes, times
      microseconds; red C(ewma), C(probability) and C(Scell_log) as the kernel derived them).
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: tbf, handle: "1:", parent: root, default: false,
       options: {rate: 12500000, burst: 15000, latency: 10, limit: 15125},
       stats: {bytes: 0, packets: 0, drops: 0, overlimits: 0, requeues: 0, backlog: 0, qlen: 0},
       xstats: {}}
commands:
  description: The tc commands run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: list
  sample: [["tc", "qdisc", "add", "dev", "tap0", "root", "handle", "1:", "tbf", "rate",
            "12500000bps", "burst", "15000b", "latency", "10us"]]
reasons:
  description: Why each command in RV(commands) is needed (for example C(rate 12500000 -> 25000000)).
  returned: always
  type: list
  elements: str
diff:
  description: The qdiscs before and after (without statistics), parents before children; in
    check mode the after is the prediction (see the diff_mode attribute).
  returned: when diff mode is on
  type: dict
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import (
    device_name, errors, path_component)
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import CommandError, Runner
from ansible_collections.zerodrop.testbed.plugins.module_utils import tc

DEFAULT_QDISC = '/proc/sys/net/core/default_qdisc'

KIND_CHOICES = ['tbf', 'red', 'pfifo', 'bfifo', 'pfifo_fast', 'htb', 'netem', 'fq_codel',
                'ingress', 'clsact']


def where(module):
    netns = module.params['netns']
    return "network namespace '%s'" % netns if netns else 'the root network namespace'


def read_device(module, runner):
    device = module.params['device']
    result = runner.run(['ip', '-d', '-j', 'link', 'show', 'dev', device], check_rc=False)
    if result.rc != 0:
        err = (result.stderr or '').strip()
        if 'network namespace' in err:
            module.fail_json(msg="network namespace '%s' does not exist (%s)"
                             % (module.params['netns'], err), commands=[])
        module.fail_json(msg="device '%s' not found in %s (%s)" % (device, where(module), err),
                         commands=[])
    links = json.loads(result.stdout or '[]')
    return links[0] if links else {}


def read_qdiscs(runner, device):
    return tc.parse_show(runner.json(tc.READ_ARGV + [device]))


def probe(module, ops):
    """Try the kinds and options on lo in a throw-away namespace; fail before any change."""
    lines, owners = [], []
    for op in ops:
        if op.action == 'del' or not op.entry.get('kind') or 'raw' in op.entry:
            continue  # deletions, and re-applying a qdisc read back from this kernel
        entry = dict(op.entry, parent=op.entry['parent'] if op.entry['parent'] in
                     ('ingress', 'clsact') else 'root')
        lines.append(' '.join(tc.op_argv('add', 'lo', entry)))
        lines.append(' '.join(tc.op_argv('del', 'lo', entry)))
        owners += [op, op]
    unshare = module.get_bin_path('unshare')
    if not lines or not unshare:
        return
    tried = Runner(module, prefix=[unshare, '--net']).run(
        ['tc', '-batch', '-'], check_rc=False, data='\n'.join(lines) + '\n')
    err = tried.stderr
    if tried.rc == 0 or 'Command failed' not in err:
        return  # passed, or unshare itself is not allowed here: the real run will tell
    op = tc.kind_of_failed_op(owners, err)
    msg = tc.explain_failure([op], err)
    if msg.startswith('tc failed'):
        msg = 'the kernel refuses %s: %s' % (' '.join(['tc'] + op.argv), err.strip())
    module.fail_json(msg='%s; nothing was changed' % msg, commands=[])


def default_qdisc():
    """net.core.default_qdisc: what a device without a root qdisc of its own gets."""
    try:
        with open(DEFAULT_QDISC) as f:
            return f.read().strip() or 'pfifo_fast'
    except (IOError, OSError):
        return 'pfifo_fast'


def main():
    qdisc_spec = dict(
        parent=dict(type='str'),
        handle=dict(type='str'),
        kind=dict(type='str', required=True, choices=KIND_CHOICES),
        options=dict(type='dict', default={}),
    )
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type='str', required=True),
            netns=dict(type='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            parent=dict(type='str'),
            handle=dict(type='str'),
            kind=dict(type='str', choices=KIND_CHOICES),
            options=dict(type='dict', default={}),
            tree=dict(type='list', elements='dict', options=qdisc_spec),
            purge=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('tree', 'parent'), ('tree', 'handle'), ('tree', 'kind')],
        supports_check_mode=True,
    )
    runner = Runner(module, netns=module.params['netns'])
    with Guard(module, runner) as guard:
        manage(module, runner, guard)


def manage(module, runner, guard):
    p = module.params
    device, present = p['device'], p['state'] == 'present'
    bad = errors(device_name('device', device),
                 path_component('netns', p['netns']) if p['netns'] is not None else None)
    if bad:
        module.fail_json(msg='; '.join(bad), commands=[])
    if p['tree'] is not None and not p['tree']:
        module.fail_json(msg="tree is empty: list at least one qdisc", commands=[])
    if present and not p['tree'] and not p['kind']:
        module.fail_json(msg="state=present needs kind (e.g. kind: tbf) or tree", commands=[])
    if p['tree'] is None and p['options'] and not present:
        p['options'] = {}
    items = p['tree'] if p['tree'] is not None else [dict(
        parent=p['parent'], handle=p['handle'], kind=p['kind'], options=p['options'])]
    field = 'tree' if p['tree'] is not None else None
    try:
        desired = []
        for i, item in enumerate(items):
            name = '%s[%d]' % (field, i) if field else 'qdisc'
            desired.append(tc.desired_entry(item, name, need_kind=present))
    except tc.TcError as e:
        module.fail_json(msg=str(e).replace('qdisc.', ''), commands=[])

    guard.doing('read the device and its qdiscs', device)
    device_info = read_device(module, runner)
    try:
        before = read_qdiscs(runner, device)
    except CommandError as e:
        runner.fail('cannot read the qdiscs of %s: %s' % (device, e), error=e)
    if present:
        try:
            tc.check_tree(desired, before, field or 'qdisc')
        except tc.TcError as e:
            module.fail_json(msg=str(e).replace('qdisc[0].', ''), commands=[])
    ops, warnings = tc.plan(device, desired, before, state=p['state'], purge=p['purge'],
                            device_info=device_info)

    after = before
    if ops:
        guard.doing('try the tc commands in a throw-away network namespace', device)
        probe(module, ops)
        guard.doing('run the tc commands', device)
        lines = '\n'.join(' '.join(op.argv) for op in ops) + '\n'
        if len(ops) == 1:
            argv = ['tc'] + ops[0].argv
            data = None
        else:
            argv, data = ['tc', '-batch', '-'], lines
        result = runner.run(argv, changes=True, check_rc=False, data=data)
        if result.rc != 0:
            partial = read_qdiscs(runner, device)
            changed = tc.public_tree(partial, stats=False) != tc.public_tree(before, stats=False)
            msg = tc.explain_failure(ops, result.stderr or result.stdout)
            if changed:
                msg += ('; tc -batch is not atomic: the commands before the failing one stay '
                        'applied (qdiscs shows the device now)')
            module.fail_json(msg=msg, changed=changed,
                             commands=[runner.argv(['tc'] + op.argv) for op in ops],
                             stderr=result.stderr, qdiscs=tc.public_tree(partial))
        if not module.check_mode:
            after = read_qdiscs(runner, device)
            if present:
                rest = tc.plan(device, desired, after, state='present', purge=p['purge'],
                               device_info=device_info)[0]
                if rest:
                    warnings.append('tc accepted the commands but reads back differently, a '
                                    'next run will change again: %s'
                                    % '; '.join('%s (%s)' % (' '.join(op.argv), op.why)
                                                for op in rest))
    for warning in warnings:
        module.warn(warning)

    commands = [['ip', 'netns', 'exec', p['netns'], 'tc'] + op.argv if p['netns']
                else ['tc'] + op.argv for op in ops]
    result = dict(changed=bool(ops), qdiscs=tc.public_tree(after), commands=commands,
                  reasons=['%s: %s' % (op.action, op.why) for op in ops])
    if module._diff:
        if module.check_mode:
            predicted = tc.simulate(before, ops, device_info, default_qdisc())
        else:
            predicted = tc.tree_order(after)
        result['diff'] = {
            'before': {'device': device,
                       'qdiscs': tc.public_tree(tc.tree_order(before), stats=False)},
            'after': {'device': device, 'qdiscs': tc.public_tree(predicted, stats=False)}}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
