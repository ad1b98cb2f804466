#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: tc_redirect
short_description: Redirect a device's ingress traffic to an ifb device (for ingress shaping)
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Incoming traffic cannot be queued on the device it arrives on. To shape it, this module
    redirects it to an ifb device, whose root qdisc (set with M(zerodrop.testbed.tc_qdisc))
    then shapes it as egress traffic.
  - The redirect is an C(ingress) qdisc on O(device) and a u32 filter that matches every packet
    (C(protocol all u32 match u32 0 0)) with the action C(mirred egress redirect dev O(to)).
  - The state is read with C(tc -j filter show ingress dev O(device)) and compared as parsed
    JSON. A match-all egress redirect to O(to) at any preference counts as present; other
    redirecting filters of the device's ingress (to another device, or of only some packets)
    are deleted, since a packet can only be redirected once.
  - Before changing anything, the commands are tried on the loopback device of a throw-away
    network namespace (C(unshare --net)), so that a kernel without the u32 classifier or the
    mirred action fails the task without touching the device.
options:
  device:
    description: The device whose ingress is redirected, for example a VM's tap C(tap0).
    type: str
    required: true
  to:
    description: The ifb device that receives the traffic, in the same network namespace.
    type: str
    required: true
  netns:
    description: Network namespace that holds O(device) and O(to) (commands run with
      C(ip netns exec)).
    type: str
  pref:
    description: Preference (priority) of a filter this module adds, 1 to 65535. An existing
      redirect at another preference is kept.
    type: int
    default: 49152
  state:
    description:
      - C(present) makes the redirect exist.
      - C(absent) deletes every filter of the ingress of O(device) that redirects to O(to), and
        then the C(ingress) qdisc when no filter is left on it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reads the devices, qdiscs and filters and returns RV(commands) without running
      them.
  diff_mode:
    support: full
    description: Shows the ingress qdisc kind and the redirecting filters before and after; in
      check mode the after is predicted.
  platform:
    support: full
    platforms: posix
    description: Linux with iproute2 (C(tc), C(ip)).
notes:
  - Needs root, C(tc) and C(ip) (iproute2), and C(unshare) (util-linux) for the check before
    changes.
  - A redirect to O(to) on a C(clsact) qdisc is accepted as it is; a new one gets an C(ingress)
    qdisc.
  - Bad input (a device name the kernel cannot have, a missing device, ifb or namespace, a
    preference out of range) fails before any change, naming the field.
seealso:
  - module: zerodrop.testbed.tc_qdisc
'''

EXAMPLES = r'''
- name: Shape a tap's ingress at 100 Mbit/s, one tbf on its ifb
  zerodrop.testbed.tc_qdisc:
    device: ifb-tap0
    handle: "1:"
    kind: tbf
    options: {rate: 100mbit, burst: 32k, limit: 2000000}

- name: Redirect the tap's ingress to that ifb
  zerodrop.testbed.tc_redirect:
    device: tap0
    to: ifb-tap0

- name: Stop redirecting
  zerodrop.testbed.tc_redirect:
    device: tap0
    to: ifb-tap0
    state: absent
'''

RETURN = r'''
ingress:
  description: The kind of the device's ingress qdisc after the task (C(ingress), C(clsact)) or
    null when it has none. In check mode, as before the task.
  returned: always
  type: str
  sample: ingress
redirects:
  description: The filters of the device's ingress that redirect traffic, after the task (in
    check mode, before it).
  returned: always
  type: list
  elements: dict
  sample:
    - {pref: 49152, protocol: all, kind: u32, match_all: true, direction: egress, to: ifb-tap0}
commands:
  description: The tc commands run (or, in check mode, that would run), in order.
  returned: always
  type: list
  elements: list
  sample: [["tc", "qdisc", "add", "dev", "tap0", "ingress"],
           ["tc", "filter", "add", "dev", "tap0", "ingress", "protocol", "all", "pref", "49152",
            "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
            "ifb-tap0"]]
reasons:
  description: Why each command in RV(commands) is needed.
  returned: always
  type: list
  elements: str
diff:
  description: The ingress qdisc kind and the redirects before and after; in check mode the
    after is the prediction.
  returned: when diff mode is on
  type: dict
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import (
    device_name, errors, path_component)
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner
from ansible_collections.zerodrop.testbed.plugins.module_utils import tc


def where(netns):
    return "network namespace '%s'" % netns if netns else 'the root network namespace'


def require_device(module, runner, field):
    name = module.params[field]
    result = runner.run(['ip', '-j', 'link', 'show', 'dev', name], check_rc=False)
    if result.rc == 0 and json.loads(result.stdout or '[]'):
        return
    err = (result.stderr or '').strip()
    netns = module.params['netns']
    if 'network namespace' in err or ('netns' in err and netns):
        module.fail_json(msg="netns: network namespace '%s' does not exist (%s); create it first"
                         % (netns, err), commands=[])
    fix = ' (create it with ip link add NAME type ifb)' if field == 'to' else ''
    module.fail_json(msg="%s: device '%s' not found in %s%s (%s)"
                     % (field, name, where(netns), fix, err), commands=[])


def read_state(runner, device):
    qdiscs = tc.parse_show(runner.json(tc.READ_ARGV + [device]))
    data = runner.json(tc.FILTER_READ_ARGV + [device]) or []
    return qdiscs, tc.parse_filters(data), tc.filter_prefs(data)


def probe(module):
    """Try the qdisc, classifier and action on lo in a throw-away namespace."""
    unshare = module.get_bin_path('unshare')
    if not unshare:
        return
    lines = [' '.join(['qdisc', 'add', 'dev', 'lo', 'ingress']),
             ' '.join(tc.redirect_argv('lo', 'lo', tc.REDIRECT_PREF))]
    probe_runner = Runner(module)
    result = probe_runner.run([unshare, '--net', probe_runner.bin('tc'), '-batch', '-'],
                              check_rc=False, data='\n'.join(lines) + '\n')
    if result.rc == 0 or 'Command failed' not in (result.stderr or ''):
        return  # passed, or unshare itself is not allowed here: the real run will tell
    module.fail_json(msg='the kernel refuses an ingress redirect (needs the ingress qdisc, the '
                     'u32 classifier and the mirred action: CONFIG_NET_SCH_INGRESS, '
                     'CONFIG_NET_CLS_U32, CONFIG_NET_ACT_MIRRED): %s; nothing was changed'
                     % result.stderr.strip(), commands=[])


def replayable(netns, ops):
    """The commands one by one, as a user would type them."""
    prefix = ['ip', 'netns', 'exec', netns] if netns else []
    return [prefix + ['tc'] + op[0] for op in ops]


def public(after):
    return {'ingress': after['ingress'], 'redirects': after['redirects']}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type='str', required=True),
            to=dict(type='str', required=True),
            netns=dict(type='str'),
            pref=dict(type='int', default=tc.REDIRECT_PREF),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
        ),
        supports_check_mode=True,
    )
    runner = Runner(module, netns=module.params['netns'])
    with Guard(module, runner) as guard:
        manage(module, runner, guard)


def manage(module, runner, guard):
    p = module.params
    device, target = p['device'], p['to']
    bad = errors(device_name('device', device), device_name('to', target),
                 path_component('netns', p['netns']) if p['netns'] is not None else None)
    if not bad and device == target:
        bad = ["to: '%s' is the device itself; name the ifb device that receives its ingress"
               % target]
    if not 1 <= p['pref'] <= 0xffff:
        bad.append('pref: %s is out of range; use a filter preference from 1 to 65535'
                   % p['pref'])
    if bad:
        module.fail_json(msg='; '.join(bad), commands=[])

    guard.doing('read the devices, the ingress qdisc and its filters', device)
    require_device(module, runner, 'device')
    if p['state'] == 'present':
        require_device(module, runner, 'to')
    qdiscs, filters, prefs = read_state(runner, device)
    before = {'ingress': tc.ingress_kind(qdiscs), 'redirects': filters}
    ops, predicted = tc.plan_redirect(device, target, qdiscs, filters, state=p['state'],
                                      pref=p['pref'], prefs=prefs)
    after = before
    if ops:
        if p['state'] == 'present':
            guard.doing('try the redirect in a throw-away network namespace', device)
            probe(module)
        guard.doing('run the tc commands', device)
        if len(ops) == 1:
            argv, data = ['tc'] + ops[0][0], None
        else:
            argv, data = ['tc', '-batch', '-'], '\n'.join(' '.join(op[0]) for op in ops) + '\n'
        result = runner.run(argv, changes=True, check_rc=False, data=data)
        if result.rc != 0:
            qdiscs, filters, prefs = read_state(runner, device)
            now = {'ingress': tc.ingress_kind(qdiscs), 'redirects': filters}
            changed = now != before
            msg = 'tc failed: %s' % (result.stderr or result.stdout).strip()
            if changed:
                msg += ('; tc -batch is not atomic: the commands before the failing one stay '
                        'applied (ingress and redirects show the device now)')
            module.fail_json(msg=msg, changed=changed,
                             commands=replayable(p['netns'], ops),
                             stderr=result.stderr, **public(now))
        if not module.check_mode:
            qdiscs, filters, prefs = read_state(runner, device)
            after = {'ingress': tc.ingress_kind(qdiscs), 'redirects': filters}

    commands = replayable(p['netns'], ops)
    result = dict(changed=bool(ops), commands=commands, reasons=[op[1] for op in ops],
                  **public(after))
    if module._diff:
        result['diff'] = {
            'before': dict(device=device, **before),
            'after': dict(device=device, **(predicted if module.check_mode else after))}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
