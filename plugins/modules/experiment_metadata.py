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
    read on them (kernel release and source commit, sysctls, qdiscs, devices, OVS, tool
    versions), as C(modes.<mode>.hosts.<dir>.<field>), where C(<dir>) is the host's directory in
    a run - the role's name when the role has one host, else C(<role>-<inventory_hostname>).
  - "Per mode, the sender's kernel as C(kernels.<mode>) - name, preset, zD branch, release, git
    commit, config hash (with and without C(CONFIG_LOCALVERSION)) - from O(kernels) when given
    (kernels booted with QEMU C(-kernel) leave nothing in the guest to read), filled in from
    the kernel build's C(metadata_file); otherwise from the sender's C(uname -r) and the build
    metadata found on it. C(kernel_comparison.<mode>) says whether that mode's config is
    identical to the baseline mode's apart from C(CONFIG_LOCALVERSION), with the differing
    symbols when it is not."
  - "C(zd_branches.<mode>) is the zD branch whose qdisc layout the mode's runs must have (its
    own, or for a mode without one the only zD branch of the experiment), and C(notes) the
    lines the report prints first."
options:
  path:
    description:
      - The experiment's directory (holds metadata.json; created). It, or the directory it is
        created in, must be writable - checked before anything is written.
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
    description: Host role to an inventory host or a list of them (C(experiment_hosts)).
    type: dict
    required: true
  mode_hosts:
    description: Per mode, the host roles whose hosts differ from O(hosts) (the same forms).
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
  kernels:
    description:
      - Per mode, the kernel its sender runs - C(name), C(preset) (V(vanilla), V(vm-pfifo), ...),
        C(kernelrelease), C(commit), C(config_sha256), C(config) (path on the controller of the
        final C(.config)), C(metadata_file) (the kernel build's C(metadata.json) on the
        controller); any may be missing. Empty - read from the senders.
    type: dict
    default: {}
  notes:
    description: Lines the report prints at its top (e.g. why a run is baseline only).
    type: list
    elements: str
    default: []
  baseline_mode:
    description: The mode the others' kernel configs are compared with.
    type: str
    default: baseline
attributes:
  check_mode:
    support: full
    description: Computes the metadata without writing it; reports a change when metadata.json would differ.
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
    kernels:
      baseline: {name: vanilla, preset: vanilla, config: /var/cache/zerodrop/kernel/vanilla/.config}
      zd: {name: vm-pfifo, preset: vm-pfifo, config: /var/cache/zerodrop/kernel/vm-pfifo/.config,
           metadata_file: /var/cache/zerodrop/kernel/vm-pfifo/metadata.json}
    notes: ["Baseline and zD guests run under QEMU TCG."]
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
metadata:
  description: What metadata.json holds.
  returned: always
  type: dict
kernels:
  description: Per mode, the sender's kernel (as C(kernels) of metadata.json).
  returned: always
  type: dict
  sample:
    zd: {name: vm-pfifo, preset: vm-pfifo, branch: vm-pfifo, kernelrelease: 4.14.67-vm-pfifo,
         commit: 0123abc, config_sha256: 5e1f..., config_sha256_without_localversion: 9a0b...,
         localversion: '"-vm-pfifo"', source: experiment_kernels}
zd_branches:
  description: Per mode, the zD branch whose qdisc layout its runs must have (null for none).
  returned: always
  type: dict
  sample: {baseline: vm-pfifo, zd: vm-pfifo}
kernel_comparison:
  description: Per mode other than O(baseline_mode), how its kernel config compares with the baseline's.
  returned: always
  type: dict
  sample:
    zd: {against: baseline, identical_apart_from_localversion: true, differing: [],
         localversion: ['"-vanilla"', '"-vm-pfifo"'], reason: null}
'''

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerodrop.testbed.plugins.module_utils import experiment_pairs, zd_checks
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import errors
from ansible_collections.zerodrop.testbed.plugins.module_utils.writable import directory_problem, \
    file_problem, replace_file

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
            'qdiscs': facts.get('qdiscs'), 'devices': facts.get('devices'),
            'ovs': facts.get('ovs'), 'tools': facts.get('tools'),
            'tool_paths': facts.get('tool_paths'), 'nofile': facts.get('nofile')}


def _read_json(path):
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def _read_config(path):
    """(parsed .config, None) or (None, why not)."""
    if not path:
        return None, 'no config file given (experiment_kernels.<mode>.config)'
    try:
        with open(path) as f:
            return zd_checks.parse_config(f.read()), None
    except (IOError, OSError) as e:
        return None, 'cannot read %s: %s' % (path, e)


def kernel_entry(given, sender):
    """One mode's kernel: ``given`` (an experiment_kernels entry) completed from its build
    metadata_file, or, without it, the sender's host entry (uname -r and build metadata)."""
    if given:
        build = _read_json(given['metadata_file']) if given.get('metadata_file') else {}
        entry = {
            'name': given.get('name'), 'preset': given.get('preset'),
            'kernelrelease': given.get('kernelrelease') or build.get('kernelrelease'),
            'commit': given.get('commit') or (build.get('source') or {}).get('commit'),
            'config_sha256': given.get('config_sha256') or build.get('config_sha256'),
            'config': given.get('config'), 'metadata_file': given.get('metadata_file'),
            'source': 'experiment_kernels',
        }
        entry.update((k, v) for k, v in given.items() if k not in entry)
    else:
        sender = sender or {}
        build = sender.get('kernel_build') or {}
        entry = {'name': None, 'preset': None, 'kernelrelease': sender.get('kernel_release'),
                 'commit': sender.get('kernel_commit'),
                 'config_sha256': build.get('config_sha256') if isinstance(build, dict) else None,
                 'config': None, 'metadata_file': None, 'source': "the sender's uname -r"}
    entry['branch'] = zd_checks.kernel_branch(entry)
    config, _why = _read_config(entry.get('config'))
    entry['config_sha256_without_localversion'] = zd_checks.config_hash(config) if config else None
    entry['localversion'] = config.get(zd_checks.LOCALVERSION) if config else None
    return entry


def compare(kernels, baseline):
    """Per mode other than ``baseline``: its config against the baseline's."""
    found = {}
    base_config, base_why = _read_config((kernels.get(baseline) or {}).get('config'))
    for mode, entry in sorted(kernels.items()):
        if mode == baseline or baseline not in kernels:
            continue
        config, why = _read_config(entry.get('config'))
        result = {'against': baseline, 'identical_apart_from_localversion': None,
                  'differing': None, 'localversion': None,
                  'reason': ('%s: %s' % (baseline, base_why)) if base_why else
                  ('%s: %s' % (mode, why)) if why else None}
        if config is not None and base_config is not None:
            diff = zd_checks.compare_configs(base_config, config)
            result.update(identical_apart_from_localversion=diff['identical_apart_from_localversion'],
                          differing=diff['differing'], localversion=diff['localversion'])
        found[mode] = result
    return found


def zd_branches(kernels):
    """Per mode, the branch whose layout its runs need: its own, else the only one there is."""
    known = sorted(set(k['branch'] for k in kernels.values() if k.get('branch')))
    return dict((mode, k.get('branch') or (known[0] if len(known) == 1 else None))
                for mode, k in kernels.items())


def metadata(experiment, modes, hosts, mode_hosts, host_facts, inventory, collection,
             kernels=None, notes=None, baseline_mode='baseline'):
    data = dict(experiment)
    data['modes'] = {}
    data['kernels'] = {}
    for mode in modes:
        roles = dict(hosts)
        roles.update(mode_hosts.get(mode) or {})
        roles = dict((role, experiment_pairs.as_list(names)) for role, names in roles.items())
        entries = dict((experiment_pairs.role_dir(role, host, len(names)),
                        host_entry(host, host_facts.get(host)))
                       for role, names in roles.items() for host in names)
        data['modes'][mode] = {'hosts': entries}
        senders = roles.get('sender') or [None]
        data['kernels'][mode] = kernel_entry((kernels or {}).get(mode), entries.get(
            experiment_pairs.role_dir('sender', senders[0], len(senders))))
    data['kernel_comparison'] = compare(data['kernels'], baseline_mode)
    data['zd_branches'] = zd_branches(data['kernels'])
    data['notes'] = list(notes or [])
    data['inventory'] = inventory
    data['collection'] = collection
    return data


def read_text(path):
    with open(path, 'rb') as f:
        return f.read().decode('utf-8', 'replace')


def problems_of(p):
    """What is wrong with the parameters, found before anything is written."""
    problems = errors(directory_problem('path', p['path']),
                      file_problem('path', os.path.join(p['path'], 'metadata.json'), 'metadata.json')
                      if os.path.isdir(p['path']) else None)
    for field, values in (('hosts', p['hosts']),) + tuple(
            ('mode_hosts.%s' % mode, roles) for mode, roles in sorted(p['mode_hosts'].items())):
        if not isinstance(values, dict):
            problems.append('%s must map host roles to inventory hosts (got %r)' % (field, values))
            continue
        for role, names in sorted(values.items()):
            try:
                experiment_pairs.host_list('%s.%s' % (field, role), names)
            except ValueError as e:
                problems.append(str(e))
    for field in ('host_facts', 'kernels'):
        problems.extend('%s.%s must be a dict (%s) or null (got %r)' % (
            field, key, 'what experiment_host_facts returned' if field == 'host_facts' else
            'name, preset, kernelrelease, commit, config_sha256, config, metadata_file', value)
            for key, value in sorted(p[field].items())
            if value is not None and not isinstance(value, dict))
    problems.extend('modes[%d] is empty: name the mode' % i for i, mode in enumerate(p['modes'])
                    if not mode)
    return problems


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
            kernels=dict(type='dict', default={}),
            notes=dict(type='list', elements='str', default=[]),
            baseline_mode=dict(type='str', default='baseline'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = problems_of(p)
    if problems:
        module.fail_json(msg='; '.join(problems))
    with Guard(module) as guard:
        guard.doing('build the metadata')
        data = metadata(p['experiment'], p['modes'], p['hosts'], p['mode_hosts'], p['host_facts'],
                        p['inventory'], p['collection'], p['kernels'], p['notes'],
                        p['baseline_mode'])
        content = json.dumps(data, indent=1, sort_keys=True, default=str) + '\n'
        dest = os.path.join(p['path'], 'metadata.json')
        guard.doing('read the current metadata.json', dest)
        changed = not os.path.isfile(dest) or read_text(dest) != content
        if changed and not module.check_mode:
            if not os.path.isdir(p['path']):
                guard.doing('create the experiment directory (path)', p['path'])
                os.makedirs(p['path'])
                guard.record('mkdir %s' % p['path'])
            guard.doing('write metadata.json', dest)
            replace_file(dest, content)
    module.exit_json(changed=changed, metadata=data, kernels=data['kernels'],
                     zd_branches=data['zd_branches'], kernel_comparison=data['kernel_comparison'])


if __name__ == '__main__':
    main()
