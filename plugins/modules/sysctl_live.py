#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: sysctl_live
short_description: Set live sysctls, in a network namespace or not, all or none
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Sets kernel parameters with C(sysctl -w) for the running kernel only; nothing is written to
    C(/etc) (use M(ansible.posix.sysctl) to persist a setting).
  - Every key is read first (C(sysctl -n)); a key the kernel (or the network namespace) does not
    have fails the task before anything is written.
  - Only the values that differ are written. Values compare as the kernel prints them - true and
    false as 1 and 0, a list of numbers space-separated, runs of whitespace as one space - so
    C(1024 65535), C([1024, 65535]) and the kernel's C(1024<TAB>65535) are the same value.
  - When the kernel refuses a value, the keys this task already wrote get their old values back
    and the task fails naming the key; nothing stays changed.
options:
  sysctls:
    description:
      - The sysctls and their values, for example C(net.ipv4.tcp_ecn) C(1).
      - A key is a name as C(sysctl) takes it (dotted or slashed, e.g. C(net.ipv4.conf.eth0/100.rp_filter)).
      - A value is a number, a word, or a list of numbers.
      - Empty, the task does nothing (a role's empty settings need no condition).
    type: dict
    required: true
  netns:
    description: Network namespace whose sysctls are set (C(ip netns exec)); the per-namespace
      keys are those of C(/proc/sys/net) inside it. Unset, the host's.
    type: str
attributes:
  check_mode:
    support: full
    description: Reads the values and returns RV(sysctls) and RV(commands) of the writes that
      would run, without running them.
  diff_mode:
    support: full
    description: Shows the values of the keys that change, before and after.
  platform:
    support: full
    platforms: posix
    description: Linux with C(sysctl) (procps) and, with O(netns), C(ip) (iproute2).
notes:
  - Needs root to write.
  - Bad input (a key that is not a sysctl name, a value that is not one line, a missing
    namespace, a key the kernel does not have) fails before any change, naming the field.
seealso:
  - module: ansible.posix.sysctl
  - module: zerodrop.testbed.netns_host
'''

EXAMPLES = r'''
- name: Many-flow settings in the receiver's namespace
  zerodrop.testbed.sysctl_live:
    netns: rcv
    sysctls:
      net.core.somaxconn: 65535
      net.ipv4.ip_local_port_range: [1024, 65535]

- name: ECN and DCTCP on the host
  zerodrop.testbed.sysctl_live:
    sysctls:
      net.ipv4.tcp_ecn: 1
      net.ipv4.tcp_congestion_control: dctcp
'''

RETURN = r'''
sysctls:
  description: The keys whose value changed (in check mode, would change), each with its old
    and new value as the kernel prints them.
  returned: always
  type: dict
  sample: {net.core.somaxconn: {old: "4096", new: "65535"}}
commands:
  description: The C(sysctl -w) commands run (in check mode, that would run), restores of a
    refused set included.
  returned: always
  type: list
  elements: list
  sample: [[ip, netns, exec, rcv, sysctl, -q, -w, net.core.somaxconn=65535]]
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerodrop.testbed.plugins.module_utils import sysctl_live
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import errors, path_component
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner


def problems_of(p):
    """Every input error that needs no look at the system."""
    found = errors(path_component('netns', p['netns']) if p['netns'] is not None else None)
    for key, value in sorted(p['sysctls'].items()):
        found.extend(errors(sysctl_live.key_problem('sysctls', key) or
                            sysctl_live.value_problem('sysctls', key, value)))
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sysctls=dict(type='dict', required=True),
            netns=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = problems_of(p)
    if problems:
        module.fail_json(msg='; '.join(problems), commands=[])
    runner = Runner(module, netns=p['netns'])
    with Guard(module, runner) as guard:
        if p['netns'] is not None:
            guard.doing('list the network namespaces')
            names = Runner(module).json(['ip', '-j', 'netns', 'list']) or []
            if not any(entry.get('name') == p['netns'] for entry in names):
                module.fail_json(msg='netns %s does not exist (ip netns list): give an existing '
                                     'namespace or unset netns' % p['netns'], commands=[])
        guard.doing('set the sysctls')
        try:
            changes = sysctl_live.apply(runner, p['sysctls'])
        except sysctl_live.SysctlError as e:
            module.fail_json(msg=str(e), changed=bool(e.left) and not module.check_mode,
                             commands=runner.changes, not_restored=e.left)
    result = {
        'changed': bool(changes),
        'sysctls': dict((key, {'old': old, 'new': new}) for key, old, new in changes),
        'commands': runner.changes,
    }
    if module._diff:
        result['diff'] = {'before': dict((key, old) for key, old, new in changes),
                          'after': dict((key, new) for key, old, new in changes)}
    module.exit_json(**result)


if __name__ == '__main__':
    main()
