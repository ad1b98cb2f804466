#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: experiment_plan
short_description: The run matrix of an experiment and its results directory
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Expands an experiment (modes, flow counts, repetitions, base parameters and sweep
    dimensions) into its list of runs, in the order they run, each with its parameters and
    its directory C(<results_dir>/<name>/<timestamp>/<mode>/<variant>/<flows>/<rep>) as in
    docs/results-layout.md, and creates the experiment's directory.
  - A sweep is the cross product of its dimensions, in the order given; C(<variant>) names one
    point as C(key=value) pairs joined by C(,), or C(default) without a sweep.
  - Runs on the controller (the results live there).
options:
  name:
    description: Experiment name (first directory level).
    type: str
    required: true
  modes:
    description: Modes, e.g. V(baseline) and V(zd); each mode runs the whole matrix.
    type: list
    elements: str
    default: [baseline]
  flows:
    description: Flow counts.
    type: list
    elements: int
    required: true
  repetitions:
    description: Repetitions of every point.
    type: int
    default: 1
  params:
    description: Parameters of every run (duration, tool, cc, ...); a sweep value overrides one.
    type: dict
    default: {}
  sweep:
    description:
      - Sweep dimensions, C(name -> list of values); any parameter can be one, except V(mode),
        V(flows) and V(rep), which have their own options.
    type: dict
    default: {}
  results_dir:
    description: Directory on the controller that holds every experiment.
    type: path
    required: true
  timestamp:
    description: Name of this execution's directory; default the current UTC time C(%Y%m%dT%H%M%SZ).
    type: str
  hosts:
    description:
      - Host role to an inventory host or a list of them (C(experiment_hosts)); V(sender) and
        V(receiver) are required. With it every run carries its C(hosts), C(dirs) and C(pairs).
      - The run's flow count is the total over its senders, split by O(sender_weights); each
        sender is paired with a receiver (O(pairing), else round robin) and every pair gets its
        own block of server ports on its receiver, from the run's C(port) or the tool's default.
    type: dict
    default: {}
  mode_hosts:
    description: Per mode, host roles that replace those of O(hosts) (C(experiment_mode_hosts)).
    type: dict
    default: {}
  sender_weights:
    description: Sender host to its share of the flows (above 0; default 1 each).
    type: dict
    default: {}
  pairing:
    description: Sender host to the receiver host it sends to; unlisted senders go round robin.
    type: dict
    default: {}
  flows_per_process:
    description:
      - Flows one tool process holds, the same on both sides of every pair; null or 0 = the
        smallest C(per_process_cap) of the run's senders' and receivers' O(nofile).
    type: int
  nofile:
    description:
      - Host to its RLIMIT_NOFILE hard limit (C(nofile.hard) of
        M(zerodrop.testbed.experiment_host_facts)). Hosts without one do not limit
        C(flows_per_process); with none known each pair's block is planned for one process.
    type: dict
    default: {}
  inventory:
    description: Inventory host names; when given, a host of O(hosts) or O(mode_hosts) not among them fails.
    type: list
    elements: str
  clocks:
    description:
      - Host to its clock (C(clock_s) of M(zerodrop.testbed.experiment_host_facts)), read between
        O(clock_before) and O(clock_after) on the controller; gives RV(clock_offsets).
    type: dict
    default: {}
  clock_before:
    description: The controller's time (Unix epoch seconds) before the hosts read O(clocks).
    type: float
  clock_after:
    description: The controller's time after the hosts read O(clocks).
    type: float
  measured_offsets:
    description:
      - Host to its clock offset measured on its own (C(clock_offset) of
        M(zerodrop.testbed.experiment_host_facts), C(offset_s) and C(uncertainty_s)); it
        replaces the one O(clocks) gives that host. Null values are ignored.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Computes the plan and creates nothing.
extends_documentation_fragment:
  - zerodrop.testbed.attributes.linux_no_diff
'''

EXAMPLES = r'''
- name: Plan a queue-limit sweep
  zerodrop.testbed.experiment_plan:
    name: limits
    modes: [baseline, zd]
    flows: [1000, 4000]
    repetitions: 3
    params: {duration: 20, tool: neper, cc: cubic}
    sweep: {qdisc_limit: [100000, 1000000]}
    results_dir: /srv/results
  delegate_to: localhost
  run_once: true
  register: plan

- name: Plan 1000 flows from three senders to two receivers
  zerodrop.testbed.experiment_plan:
    name: scale
    flows: [1000]
    params: {duration: 20, tool: neper}
    hosts: {sender: [vm1, vm2, vm3], receiver: [rcv1, rcv2], router: rtr}
    sender_weights: {vm1: 2}
    nofile: {vm1: 20000, vm2: 20000, vm3: 20000, rcv1: 65536, rcv2: 65536}
    results_dir: /srv/results
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
root:
  description: This execution's directory, C(<results_dir>/<name>/<timestamp>).
  returned: always
  type: str
  sample: /srv/results/limits/20261122T060000Z
total:
  description: Number of runs.
  returned: always
  type: int
  sample: 24
runs:
  description:
    - The runs in order, each with C(index) (1-based), C(mode), C(variant), C(flows), C(rep),
      C(params) (the base parameters with the sweep point applied, plus C(flows)),
      C(relpath) (relative to RV(root)) and C(dir) (absolute).
    - With O(hosts), also C(hosts) (role to list of hosts), C(dirs) (host to its directory in the
      run, C(sender)/C(receiver) when the role has one host, else C(sender-<host>)),
      C(flows_per_process), C(pairs) (C(sender), C(receiver), C(flows), C(port),
      C(sender_dir), C(receiver_dir)) and C(servers) (receiver to the server blocks it runs,
      C(port), C(flows), C(name) - the C(servers) of M(zerodrop.testbed.flow_run)).
  returned: always
  type: list
  elements: dict
hosts:
  description: With O(hosts), per mode the host roles, each a list of hosts.
  returned: always
  type: dict
  sample: {baseline: {sender: [vm1, vm2], receiver: [rcv1], router: [rtr]}}
clock_offsets:
  description:
    - Per host of O(clocks) and O(measured_offsets), C(offset_s) and C(uncertainty_s) - the
      measured one where there is one, else its clock minus the midpoint of O(clock_before) and
      O(clock_after), within half their distance.
  returned: always
  type: dict
  sample: {vm1: {offset_s: 0.012, uncertainty_s: 0.21}}
'''

import itertools
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerodrop.testbed.plugins.module_utils import experiment_pairs, flow_split
from ansible_collections.zerodrop.testbed.plugins.module_utils.flow_probe import DEFAULT_PORTS, TOOLS
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import path_component
from ansible_collections.zerodrop.testbed.plugins.module_utils.writable import directory_problem

RESERVED = ('mode', 'flows', 'rep')
SAFE = re.compile(r'^[A-Za-z0-9_.:+-]+$')
SAFE_CHARS = 'letters, digits and . _ : + -'
# The smallest value of the numeric parameters the runner understands.
AT_LEAST = {'duration': 1, 'threads': 1, 'buffer': 1, 'port': 1, 'ecn': 0}


def label(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


# Run parameters that must be numbers; `-e experiment_duration=20` on the command line gives
# strings. qdisc_limit may also be a size with a unit ("100kb"), so it is only converted when
# it is all digits.
NUMBERS = ('duration', 'threads', 'buffer', 'port', 'ecn')


def number(field, key, value):
    """``value`` as an int or float when ``key`` is a numeric parameter; ValueError otherwise."""
    if value is None or isinstance(value, bool) or not isinstance(value, str):
        return value
    text = value.strip()
    if key == 'qdisc_limit':
        return int(text) if text.isdigit() else value
    if key not in NUMBERS:
        return value
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError('%s: %r is not a number (e.g. %s: 20)' % (field, value, field))


def check_params(params, point):
    """ValueError naming the field when a run's tool or a numeric parameter is out of range."""
    def field(key):
        return 'sweep.%s' % key if key in point else 'params.%s' % key
    tool = params.get('tool')
    if tool is not None and tool not in TOOLS:
        raise ValueError('%s %r: the runner knows %s' % (field('tool'), tool, ', '.join(TOOLS)))
    for key, least in AT_LEAST.items():
        value = params.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
            raise ValueError('%s is %r: give a number of at least %d' % (field(key), value, least))
    if params.get('port') is not None and params['port'] > 65535:
        raise ValueError('%s is %r: a TCP port is at most 65535' % (field('port'), params['port']))


def plan(name, modes, flows, repetitions, params, sweep):
    """The list of runs (without directories); raises ValueError naming the bad field."""
    params = dict((k, number('params.%s' % k, k, v)) for k, v in params.items())
    sweep = dict((k, [number('sweep.%s' % k, k, v) for v in values] if isinstance(values, list)
                  else values) for k, values in sweep.items())
    problem = path_component('name', name, SAFE, SAFE_CHARS)
    if problem:
        raise ValueError(problem + ' (it is a directory)')
    if not modes:
        raise ValueError('modes is empty: give at least one mode, e.g. [baseline]')
    for mode in modes:
        problem = path_component('mode', mode, SAFE, SAFE_CHARS)
        if problem:
            raise ValueError(problem + ' (it is a directory)')
    if not flows or any(not isinstance(f, int) or f < 1 for f in flows):
        raise ValueError('flows must be a non-empty list of positive integers (got %r)' % flows)
    if repetitions < 1:
        raise ValueError('repetitions must be at least 1 (got %r)' % repetitions)
    for key, values in sweep.items():
        if key in RESERVED:
            raise ValueError('sweep.%s: %s has its own option; remove it from the sweep'
                             % (key, key))
        problem = path_component('sweep key', key, SAFE, SAFE_CHARS)
        if problem:
            raise ValueError(problem)
        if not isinstance(values, list) or not values:
            raise ValueError('sweep.%s must be a non-empty list of values (got %r)'
                             % (key, values))
        for value in values:
            if isinstance(value, (dict, list)) or path_component('', label(value), SAFE):
                raise ValueError('sweep.%s value %r: use scalars made of letters, digits and '
                                 '. _ - : + (they name directories), not . or .. alone'
                                 % (key, value))
    keys = list(sweep)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*[sweep[k] for k in keys])]
    runs = []
    for mode in modes:
        for point in points:
            variant = ','.join('%s=%s' % (k, label(point[k])) for k in keys) or 'default'
            for nflows in flows:
                for rep in range(1, repetitions + 1):
                    run_params = dict(params)
                    run_params.update(point)
                    run_params['flows'] = nflows
                    check_params(run_params, point)
                    runs.append({'mode': mode, 'variant': variant, 'flows': nflows, 'rep': rep,
                                 'params': run_params,
                                 'relpath': '/'.join([mode, variant, str(nflows), str(rep)])})
    for i, run in enumerate(runs):
        run['index'] = i + 1
    return runs


def place(runs, hosts, mode_hosts, modes, weights, pairing, flows_per_process, nofile, inventory):
    """Each run's hosts, directories and pairs; ValueError naming the bad variable."""
    roles_of = experiment_pairs.check_all(hosts, mode_hosts, modes, weights, pairing, inventory)
    if flows_per_process is not None and flows_per_process < 0:
        raise ValueError('flows_per_process is %r: give 1 or more, or null for the hosts\' file limit'
                         % flows_per_process)
    for run in runs:
        roles = roles_of[run['mode']]
        tool = run['params'].get('tool') or 'neper'
        per_process = experiment_pairs.flows_per_process(
            flows_per_process, tool, roles['sender'] + roles['receiver'], nofile, flow_split.per_process_cap)
        run['hosts'] = roles
        run['dirs'] = experiment_pairs.host_dirs(roles)
        run['flows_per_process'] = per_process
        run['pairs'] = experiment_pairs.layout(
            roles, run['flows'], tool, run['params'].get('port') or DEFAULT_PORTS[tool], per_process,
            flow_split.span, weights, pairing)
        run['servers'] = dict((receiver, [{'port': x['port'], 'flows': x['flows'], 'name': x['sender']}
                                          for x in run['pairs'] if x['receiver'] == receiver])
                              for receiver in roles['receiver'])
    return roles_of


def clock_offsets(clocks, before, after, measured=None):
    found = {}
    if before is not None and after is not None:
        middle = (before + after) / 2.0
        found = dict((host, {'offset_s': round(float(clock) - middle, 6),
                             'uncertainty_s': round(abs(after - before) / 2.0, 6)})
                     for host, clock in clocks.items() if clock is not None)
    for host, offset in (measured or {}).items():
        if isinstance(offset, dict) and offset.get('offset_s') is not None:
            found[host] = {'offset_s': round(float(offset['offset_s']), 6),
                           'uncertainty_s': round(float(offset.get('uncertainty_s') or 0), 6)}
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            modes=dict(type='list', elements='str', default=['baseline']),
            flows=dict(type='list', elements='int', required=True),
            repetitions=dict(type='int', default=1),
            params=dict(type='dict', default={}),
            sweep=dict(type='dict', default={}),
            results_dir=dict(type='path', required=True),
            timestamp=dict(type='str'),
            hosts=dict(type='dict', default={}),
            mode_hosts=dict(type='dict', default={}),
            sender_weights=dict(type='dict', default={}),
            pairing=dict(type='dict', default={}),
            flows_per_process=dict(type='int'),
            nofile=dict(type='dict', default={}),
            inventory=dict(type='list', elements='str'),
            clocks=dict(type='dict', default={}),
            clock_before=dict(type='float'),
            clock_after=dict(type='float'),
            measured_offsets=dict(type='dict', default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        runs = plan(p['name'], p['modes'], p['flows'], p['repetitions'], p['params'], p['sweep'])
        roles_of = {}
        if p['hosts']:
            roles_of = place(runs, p['hosts'], p['mode_hosts'], p['modes'], p['sender_weights'],
                             p['pairing'], p['flows_per_process'] or None, p['nofile'], p['inventory'])
    except ValueError as e:
        module.fail_json(msg=str(e))
    stamp = p['timestamp'] or time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    problem = path_component('timestamp', stamp, SAFE, SAFE_CHARS)
    if problem:
        module.fail_json(msg=problem)
    results_dir = os.path.abspath(p['results_dir'])
    root = os.path.join(results_dir, p['name'], stamp)
    problem = None if os.path.isdir(root) else directory_problem('results_dir', results_dir)
    if problem:
        module.fail_json(msg=problem)
    for run in runs:
        run['dir'] = os.path.join(root, run['relpath'])
    changed = not os.path.isdir(root)
    if changed and not module.check_mode:
        with Guard(module) as guard:
            guard.doing('create the results directory (results_dir)', root)
            os.makedirs(root)
    module.exit_json(changed=changed, root=root, total=len(runs), runs=runs, hosts=roles_of,
                     clock_offsets=clock_offsets(p['clocks'], p['clock_before'], p['clock_after'],
                                                 p['measured_offsets']))


if __name__ == '__main__':
    main()
