#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: experiment_metadata
short_description: Write an experiment's metadata.json
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Writes C(metadata.json) of docs/results-layout.md on the controller - the experiment as run
    (parameters, sweep, the run list), the inventory used, the collection's version and commit,
    and per mode the hosts of each host role with what M(zerodrop.testbed.experiment_host_facts)
    read on them (kernel release and source commit, sysctls, qdiscs, OVS, tool versions), as
    C(modes.<mode>.hosts.<role>.<field>).
options:
  path:
    description: The experiment's directory (holds metadata.json).
    type: path
    required: true
  experiment:
    description: Everything that defines the experiment (name, parameters, sweep, runs, ...).
    type: dict
    required: true
  modes:
    description: The modes.
    type: list
    elements: str
    required: true
  hosts:
    description: Host role to inventory host.
    type: dict
    required: true
  mode_hosts:
    description: Per mode, the host roles whose host differs from O(hosts).
    type: dict
    default: {}
  host_facts:
    description: Inventory host to its M(zerodrop.testbed.experiment_host_facts) result.
    type: dict
    default: {}
  inventory:
    description: The inventory used (sources, per-host connection variables).
    type: dict
    default: {}
  collection:
    description: Collection name, version and git commit.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Computes the metadata without writing it.
extends_documentation_fragment:
  - zerodrop.testbed.attributes.linux_no_diff
'''

EXAMPLES = r'''
- name: Write metadata.json
  zerodrop.testbed.experiment_metadata:
    path: /srv/results/smoke/20261122T060000Z
    experiment: {name: smoke, parameters: {duration: 20}}
    modes: [baseline, zd]
    hosts: {sender: vm1, receiver: rcv}
    mode_hosts: {zd: {sender: vm-zd}}
    host_facts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'facts'))) }}"
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
metadata:
  description: What metadata.json holds.
  returned: always
  type: dict
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule

COMMIT_KEYS = ('source_commit', 'commit', 'git_commit', 'revision')


def host_entry(host, facts):
    facts = facts or {}
    kernel = facts.get('kernel') or {}
    build = kernel.get('build') or {}
    commit = None
    for key in COMMIT_KEYS:
        if isinstance(build, dict) and build.get(key):
            commit = build[key]
            break
    return {'host': host, 'kernel_release': kernel.get('release'),
            'kernel_version': kernel.get('version'), 'kernel_commit': commit,
            'kernel_build': build or None, 'sysctls': facts.get('sysctls'),
            'qdiscs': facts.get('qdiscs'), 'ovs': facts.get('ovs'), 'tools': facts.get('tools'),
            'nofile': facts.get('nofile')}


def metadata(experiment, modes, hosts, mode_hosts, host_facts, inventory, collection):
    data = dict(experiment)
    data['modes'] = {}
    for mode in modes:
        roles = dict(hosts)
        roles.update(mode_hosts.get(mode) or {})
        data['modes'][mode] = {'hosts': dict((role, host_entry(host, host_facts.get(host)))
                                             for role, host in roles.items())}
    data['inventory'] = inventory
    data['collection'] = collection
    return data


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            experiment=dict(type='dict', required=True),
            modes=dict(type='list', elements='str', required=True),
            hosts=dict(type='dict', required=True),
            mode_hosts=dict(type='dict', default={}),
            host_facts=dict(type='dict', default={}),
            inventory=dict(type='dict', default={}),
            collection=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    data = metadata(p['experiment'], p['modes'], p['hosts'], p['mode_hosts'], p['host_facts'],
                    p['inventory'], p['collection'])
    if not module.check_mode:
        if not os.path.isdir(p['path']):
            os.makedirs(p['path'])
        with open(os.path.join(p['path'], 'metadata.json'), 'w') as f:
            json.dump(data, f, indent=1, sort_keys=True, default=str)
            f.write('\n')
    module.exit_json(changed=True, metadata=data)


if __name__ == '__main__':
    main()
