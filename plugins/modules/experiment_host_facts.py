#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: experiment_host_facts
short_description: What an experiment's metadata.json records about one host
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Reads, without changing anything, what makes a host's results reproducible - the kernel
    (release, C(/proc/version), and the kernel build's C(metadata.json) when one is found),
    sysctls, the qdiscs (C(tc -j qdisc show)), each device's txqueuelen and MTU
    (C(ip -j link show)), the Open vSwitch bridges and ports when C(ovs-vsctl) answers, the
    traffic tools' versions and paths, and the file-descriptor limit.
  - Sysctls, qdiscs and devices are read inside O(netns) when given.
options:
  netns:
    description: Network namespace to read sysctls and qdiscs in; it must exist.
    type: str
  sysctls:
    description: Sysctl keys to record (names like C(net.ipv4.tcp_ecn)); one the kernel does not have is recorded as null.
    type: list
    elements: str
    default:
      - net.ipv4.tcp_congestion_control
      - net.ipv4.tcp_ecn
      - net.ipv4.tcp_retries2
      - net.core.somaxconn
      - net.ipv4.tcp_max_syn_backlog
      - net.ipv4.ip_local_port_range
  kernel_metadata_paths:
    description:
      - Files where a kernel build left its C(metadata.json); the first that exists is read.
      - One that exists but is not JSON fails the module, naming it.
    type: list
    elements: path
    default: [/boot/zerodrop-kernel.json, /etc/zerodrop/kernel.json]
  ovs_database:
    description: OVSDB socket for C(ovs-vsctl --db); the default database when unset.
    type: str
  bin_dir:
    description:
      - Directory of the tools' binaries, searched before the PATH; neper's tcp_stream is then
        looked for in C(/opt/neper/bin), where the collection's C(neper) role installs it.
    type: path
attributes:
  check_mode:
    support: full
    description: Only reads.
extends_documentation_fragment:
  - zerodrop.testbed.attributes.linux_no_diff
'''

EXAMPLES = r'''
- name: Record the receiver
  zerodrop.testbed.experiment_host_facts:
    netns: rcv
  register: facts
'''

RETURN = r'''
kernel:
  description: C(release), C(version) (C(/proc/version)) and C(build) (the kernel build metadata or null).
  returned: always
  type: dict
sysctls:
  description: Key to value (null when the key does not exist).
  returned: always
  type: dict
qdiscs:
  description: C(tc -j qdisc show) of every device.
  returned: always
  type: list
ovs:
  description: C(bridges) and C(ports) as C(ovs-vsctl --format=json list) gives them, or null.
  returned: always
  type: dict
tools:
  description: First line of each tool's version output (null when not installed).
  returned: always
  type: dict
tool_paths:
  description: Where each tool was found (null when not installed).
  returned: always
  type: dict
  sample: {neper: /opt/neper/bin/tcp_stream, iperf3: /usr/bin/iperf3, iperf2: null}
devices:
  description: Per network device, C(txqueuelen), C(mtu) and C(qdisc) (C(ip -j link show)).
  returned: always
  type: dict
  sample: {eth1: {txqueuelen: 100, mtu: 1500, qdisc: pfifo}}
nofile:
  description: Soft and hard RLIMIT_NOFILE of the module's process (C(soft), C(hard)).
  returned: always
  type: dict
  sample: {soft: 1024, hard: 524288}
clock_s:
  description:
    - The host's wall clock (Unix epoch seconds) when the module read it; against the controller's
      time before and after the task it gives the host's clock offset.
  returned: always
  type: float
  sample: 1795332000.123
clock_offset:
  description:
    - The host's clock against the controller's, measured after the module (by the action
      plugin, over the task's connection) - C(offset_s), its clock minus the midpoint of the
      controller's readings before and after the host's C(date +%s.%N), and C(uncertainty_s),
      half their distance; the tightest of three readings. Null when C(date) gives no
      fractional seconds.
  returned: always
  type: dict
  sample: {offset_s: -1.583, uncertainty_s: 0.041}
'''

import json
import os
import resource
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_probe
from ansible_collections.zerodrop.testbed.plugins.module_utils import sysctl_live
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard, describe
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import errors, path_component
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner, CommandError


def first_line(text):
    for line in (text or '').splitlines():
        if line.strip():
            return line.strip()
    return None


# neper writes a log file into the working directory unless told not to
VERSION_ARGS = {'iperf3': ['--version'], 'iperf2': ['-v'], 'neper': ['--nolog', '--version']}


def tool_versions(runner, bin_dir):
    """``(versions, paths)``: each tool from bin_dir, else as flow_run finds it."""
    versions, paths = {}, {}
    for tool, args in VERSION_ARGS.items():
        path = None
        if bin_dir:
            path = flow_probe.find_tool(tool, bin_dir)[0]
        path = path or flow_probe.find_tool(tool, None)[0]
        paths[tool] = path
        if not path:
            versions[tool] = None
            continue
        result = runner.run([path] + args, check_rc=False)
        versions[tool] = first_line(result.stdout) or first_line(result.stderr)
    return versions, paths


def devices(runner):
    try:
        links = runner.json(['ip', '-j', 'link', 'show']) or []
    except CommandError:
        return None
    return dict((link['ifname'], {'txqueuelen': link.get('txqlen'), 'mtu': link.get('mtu'),
                                  'qdisc': link.get('qdisc')})
                for link in links if isinstance(link, dict) and link.get('ifname'))


def ovs_config(module, runner, database):
    if not module.get_bin_path('ovs-vsctl'):
        return None
    base = ['ovs-vsctl', '--timeout=5', '--format=json']
    if database:
        base.insert(1, '--db=%s' % database)
    found = {}
    for table, columns in (('Bridge', 'name,datapath_type,ports,other_config'),
                           ('Port', 'name,interfaces,qos,tag,other_config'),
                           ('Interface', 'name,type,options,ofport')):
        result = runner.run(base + ['--columns=' + columns, 'list', table], check_rc=False)
        if result.rc != 0:
            return None
        found[table.lower()] = json.loads(result.stdout)
    return found


def kernel_build(module, paths):
    """The first of ``paths`` that exists, read as JSON; one that is not JSON fails the module."""
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            with open(path) as f:
                return json.load(f)
        except (IOError, OSError, ValueError) as e:
            module.fail_json(msg='kernel_metadata_paths: %s cannot be read as JSON (%s): fix or '
                                 'remove it, or list other paths' % (path, describe(e)))
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            netns=dict(type='str'),
            sysctls=dict(type='list', elements='str', default=[
                'net.ipv4.tcp_congestion_control', 'net.ipv4.tcp_ecn', 'net.ipv4.tcp_retries2',
                'net.core.somaxconn', 'net.ipv4.tcp_max_syn_backlog',
                'net.ipv4.ip_local_port_range']),
            kernel_metadata_paths=dict(type='list', elements='path',
                                       default=['/boot/zerodrop-kernel.json',
                                                '/etc/zerodrop/kernel.json']),
            ovs_database=dict(type='str'),
            bin_dir=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = errors(path_component('netns', p['netns']) if p['netns'] is not None else None,
                      *[sysctl_live.key_problem('sysctls', key) for key in p['sysctls']])
    if not problems and p['netns'] is not None and not flow_probe.netns_exists(p['netns']):
        problems.append('netns %s does not exist (ip netns list): give an existing namespace or '
                        'unset netns' % p['netns'])
    if problems:
        module.fail_json(msg='; '.join(problems))
    runner = Runner(module, netns=p['netns'])
    # the tools and Open vSwitch are the machine's, read from the root namespace
    host = Runner(module)
    with Guard(module, runner) as guard:
        guard.doing('read the kernel release', '/proc/sys/kernel/osrelease')
        with open('/proc/sys/kernel/osrelease') as f:
            release = f.read().strip()
        guard.doing('read the kernel version', '/proc/version')
        with open('/proc/version') as f:
            version = f.read().strip()
        build = kernel_build(module, p['kernel_metadata_paths'])
        guard.doing('read the sysctls')
        sysctls = sysctl_live.read_all(runner, p['sysctls'])
        guard.doing('read the qdiscs')
        try:
            qdiscs = runner.json(['tc', '-j', 'qdisc', 'show']) or []
        except CommandError as e:
            runner.fail('cannot read the qdiscs: %s' % e, error=e)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        clock = time.time()
        guard.doing('read the traffic tools\' versions', p['bin_dir'])
        versions, paths = tool_versions(host, p['bin_dir'])
        guard.doing('read the devices')
        links = devices(runner)
        guard.doing('read the Open vSwitch configuration', p['ovs_database'])
        ovs = ovs_config(module, host, p['ovs_database'])
    module.exit_json(
        changed=False,
        kernel={'release': release, 'version': version, 'build': build},
        sysctls=sysctls, qdiscs=qdiscs, devices=links, ovs=ovs, tools=versions, tool_paths=paths,
        nofile={'soft': soft, 'hard': hard}, clock_s=clock)


if __name__ == '__main__':
    main()
