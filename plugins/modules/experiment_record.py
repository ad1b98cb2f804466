#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: experiment_record
short_description: Write one experiment run's run.json (parameters and status)
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Runs on the controller as an action, without a module process (that saves a task's worth
    of time per run); the module is the same code.
  - Writes C(run.json) of docs/results-layout.md into a run directory on the controller - the
    run's parameters, the hosts that took part, the bottleneck rate in bit/s, the sender's kernel,
    and the status, V(failed) with every host's reason when any phase on any host failed, or when
    a host left no outcome of this run (it failed or became unreachable); a client stopped at the
    end of its test (C(client_stopped) of M(zerodrop.testbed.flow_run)) leaves the run V(ok), with
    C(client_stopped) and a note.
options:
  path:
    description: The run directory (created).
    type: path
    required: true
  experiment:
    description: Experiment name.
    type: str
    required: true
  run:
    description: The run as M(zerodrop.testbed.experiment_plan) planned it (C(mode), C(variant),
      C(flows), C(rep), C(params)).
    type: dict
    required: true
  hosts:
    description: Host role to an inventory host name or a list of them.
    type: dict
    required: true
  bottleneck:
    description: The bottleneck (C(host_role), C(device), C(tree)); its rate is C(params.rate).
    type: dict
    default: {}
  outcomes:
    description:
      - Per host role, that host's outcome of the run - C(run) (the run's C(index)), C(results)
        (its phases' results - M(zerodrop.testbed.flow_run) results, or anything with C(status) and
        C(reason); skipped results are ignored) and C(errors) (reasons of tasks that failed), or
        just the list of results.
      - An outcome of another run (its C(run) differs from the C(index) of O(run)), or none at all
        (an empty dict, null), fails the run - the host failed or was unreachable before the run
        ended.
    type: dict
    default: {}
  phases:
    description:
      - Instead of O(outcomes) - per phase (C(qdisc), C(start), C(client), C(stop), C(pull),
        C(pull_again), C(errors)) a map of inventory host to what that host registered in this
        run; a host not in O(play_hosts) (it failed or became unreachable) has no outcome.
      - A failed C(pull) (its C(rc)) fails the run; a C(pull_again) that ran is the recovery
        of O(recover_tasks), noted.
    type: dict
    default: {}
  play_hosts:
    description: The hosts still in the play (C(ansible_play_hosts)); used with O(phases).
    type: list
    elements: str
    default: []
  recover_tasks:
    description: Name of the task file that recovered a host whose files could not be pulled (for the note).
    type: str
    default: ''
  start_at:
    description: The instant (Unix epoch seconds) every client was told to start at; null with one sender.
    type: float
  start_delay:
    description:
      - Seconds between taking O(start_at) and O(start_at) itself (C(experiment_start_delay), or
        what the previous run left in RV(next_start_delay)); null with one sender. Recorded as
        C(start_delay_s), with what each sender's client call used of it as
        C(start_delay_used_s) - O(start_delay) minus how early its C(ready_epoch) of O(phases)
        came before O(start_at).
    type: float
  start_delay_default:
    description:
      - RV(next_start_delay) when this run says nothing of the senders' readiness (one sender,
        a client call that failed before it was ready); null for O(start_delay).
    type: float
  start_spread_max:
    description:
      - Seconds the senders' starts (clock offsets corrected) may be apart; result.json flags a
        run with a larger C(start_spread_s) not comparable. Recorded as C(start_spread_max_s).
    type: float
    default: 0.5
  clock_offsets:
    description:
      - Inventory host to its clock offset against the controller, C(offset_s) and
        C(uncertainty_s) (C(clock_offsets) of M(zerodrop.testbed.experiment_plan)); the run's
        hosts' are recorded.
    type: dict
    default: {}
  errors:
    description: Further reasons of failure (e.g. a task that failed outright).
    type: list
    elements: str
    default: []
  started:
    description: When the run started, seconds since the epoch.
    type: float
    required: true
  kernel:
    description:
      - The kernel of this run's mode as M(zerodrop.testbed.experiment_metadata) returns it in
        C(kernels) (name, preset, kernelrelease, commit, config_sha256, branch); recorded as
        C(kernel).
    type: dict
    default: {}
  zd_branch:
    description:
      - The zD branch whose qdisc layout this run must have (V(vm-pfifo), V(vm-tbf),
        V(physical-pfifo), V(physical-tbf)) - the mode's own, or for a baseline the branch it is
        compared with; null when the experiment has no zD kernel. Recorded as C(zd_branch); the
        layout guard of result.json checks against it.
    type: str
  normalise:
    description:
      - Also write C(result.json), as M(zerodrop.testbed.experiment_result) does, in the same
        task (saves a task per run). A run whose files cannot be normalised keeps its run.json
        and reports why in RV(problems).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Computes the record without writing it.
extends_documentation_fragment:
  - zerodrop.testbed.attributes.linux_no_diff
'''

EXAMPLES = r'''
- name: Write run.json
  zerodrop.testbed.experiment_record:
    path: /srv/results/smoke/20261122T060000Z/baseline/default/100/1
    experiment: smoke
    run: {index: 1, mode: baseline, variant: default, flows: 100, rep: 1, params: {duration: 20, rate: 100mbit}}
    hosts: {sender: snd, receiver: rcv}
    outcomes:
      sender: {run: 1, results: [{status: ok, reason: null}], errors: []}
      receiver: {run: 1, results: [{status: ok, reason: null}], errors: []}
    started: 1795332000.0
  delegate_to: localhost
'''

RETURN = r'''
record:
  description: What run.json holds.
  returned: always
  type: dict
result:
  description: What result.json holds (null when not normalised).
  returned: always
  type: dict
next_start_delay:
  description:
    - The start delay for the next run - what this run's slowest sender used of its delay, times
      1.5, plus 0.25 s, within 0.5 s and 60 s - or O(start_delay_default) when this run says
      nothing (one sender, a sender without C(ready_epoch)).
  returned: unless the parameters are refused
  type: float
  sample: 1.4
problems:
  description: Why result.json is missing or incomplete.
  returned: always
  type: list
  elements: str
'''

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerodrop.testbed.plugins.module_utils import experiment_pairs, start_delay, units
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard, describe
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import errors
from ansible_collections.zerodrop.testbed.plugins.module_utils.writable import directory_problem

try:
    from ansible_collections.zerodrop.testbed.plugins.module_utils import run_record
except ImportError:  # the collection may be used without its parsers
    run_record = None


def iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


NO_OUTCOME = ('%s: %s left no outcome of this run: it failed or became unreachable before the '
              'run ended')


def unique(items):
    seen = set()
    return [x for x in items if not (x in seen or seen.add(x))]


def outcome_results(outcome, run_index):
    """One host's outcome -> ``(phase results, errors)``; None when it has none of this run."""
    if isinstance(outcome, list):
        return outcome, []
    if not isinstance(outcome, dict) or 'results' not in outcome:
        return None
    if run_index is not None and str(outcome.get('run')) != str(run_index):
        return None
    return list(outcome.get('results') or []), list(outcome.get('errors') or [])


def phase_outcome(host, phases, play_hosts, run_index, recover_tasks=''):
    """A host's outcome from what it registered in each phase; None when it left the play."""
    if host not in play_hosts:
        return None

    def got(name):
        return (phases.get(name) or {}).get(host) or {}

    results = [got('qdisc'), got('start'), got('client'), got('stop')]
    pull, again = got('pull'), got('pull_again')
    recovered = bool(again) and not again.get('skipped')
    pulled = again if recovered else pull
    if pulled.get('rc') not in (None, 0):
        results.append({'status': 'failed', 'reason': 'pulling the raw files failed: %s'
                        % (pulled.get('msg') or 'rc=%s' % pulled['rc'])})
    elif recovered:
        closed = [line for line in (pull.get('msg') or '').splitlines() if 'closed' in line]
        results.append({'status': 'ok', 'note': 'unreachable after the run (%s); recovered with %s, '
                        'files pulled after it' % (closed[0] if closed else 'pull failed', recover_tasks)})
    return {'run': run_index, 'results': results, 'errors': list(got('errors') or [])}


def record(experiment, run, hosts, bottleneck, outcomes, errors, started, finished, kernel=None,
           zd_branch=None, host_outcomes=None):
    """run.json's content. ``outcomes`` are per host role; ``host_outcomes`` (when given) per
    inventory host instead."""
    reasons = list(errors)
    notes = []
    tool_wall = None
    stopped = False
    phases = {}
    roles_of = {}
    if host_outcomes is not None:
        for role in sorted(hosts):
            for host in experiment_pairs.as_list(hosts[role]):
                roles_of.setdefault(host, []).append(role)
    else:
        for role in sorted(outcomes):
            roles_of.setdefault(experiment_pairs.as_list(hosts.get(role) or role)[0], []).append(role)
    for host, roles in sorted(roles_of.items(), key=lambda item: item[1]):
        label = '/'.join(experiment_pairs.role_dir(r, host, len(experiment_pairs.as_list(hosts.get(r, host))))
                         for r in roles)
        outcome = host_outcomes.get(host) if host_outcomes is not None else outcomes[roles[0]]
        found = outcome_results(outcome, run.get('index'))
        if found is None:
            reasons.append(NO_OUTCOME % (label, host))
            continue
        results, host_errors = found
        reasons.extend('%s: %s' % (label, e) for e in host_errors)
        for result in results:
            if not isinstance(result, dict) or result.get('skipped') or not result:
                continue
            if result.get('wall_s') is not None:
                phases.setdefault(label, []).append(result['wall_s'])
            if result.get('tool_wall_s') is not None:
                tool_wall = max(tool_wall or 0, result['tool_wall_s'])
            stopped = stopped or bool(result.get('client_stopped'))
            if result.get('note'):
                notes.append('%s: %s' % (label, result['note']))
            if result.get('status', 'failed' if result.get('failed') else 'ok') != 'ok':
                reasons.append('%s: %s' % (label, result.get('reason') or result.get('msg')))
    params = dict(run['params'])
    params.pop('flows', None)
    if bottleneck:
        params['bottleneck'] = dict(bottleneck, rate=params.get('rate'))
    rate = params.get('rate')
    try:
        rate_bps = units.parse_rate(rate) * 8 if rate else None
    except ValueError:
        rate_bps = None
    return {
        'experiment': experiment, 'mode': run['mode'], 'variant': run['variant'],
        'flows': run['flows'], 'rep': run['rep'], 'params': params,
        'bottleneck_rate_bps': rate_bps, 'hosts': hosts,
        'status': 'failed' if reasons else 'ok', 'reason': '; '.join(unique(reasons)) or None,
        'client_stopped': stopped, 'notes': notes,
        'kernel': kernel or None, 'zd_branch': zd_branch,
        'pairs': run.get('pairs') or [],
        'flows_per_process': run.get('flows_per_process'),
        'started': iso(started), 'finished': iso(finished),
        'wall_s': round(finished - started, 3),
        # How long the client itself ran: wall_s minus this is the harness's own time.
        'tool_wall_s': tool_wall,
        # Seconds each host's module calls took, in order (where the harness's time goes).
        'phase_wall_s': phases,
    }


ARGUMENT_SPEC = dict(
    path=dict(type='path', required=True),
    experiment=dict(type='str', required=True),
    run=dict(type='dict', required=True),
    hosts=dict(type='dict', required=True),
    bottleneck=dict(type='dict', default={}),
    outcomes=dict(type='dict', default={}),
    errors=dict(type='list', elements='str', default=[]),
    started=dict(type='float', required=True),
    phases=dict(type='dict', default={}),
    play_hosts=dict(type='list', elements='str', default=[]),
    recover_tasks=dict(type='str', default=''),
    start_at=dict(type='float'),
    start_delay=dict(type='float'),
    start_delay_default=dict(type='float'),
    start_spread_max=dict(type='float', default=0.5),
    clock_offsets=dict(type='dict', default={}),
    normalise=dict(type='bool', default=True),
    kernel=dict(type='dict', default={}),
    zd_branch=dict(type='str'),
)


def problems_of(p):
    """What is wrong with the parameters, found before anything is written."""
    problems = []
    for key in ('mode', 'variant', 'flows', 'rep', 'params'):
        if key not in p['run']:
            problems.append('run.%s is missing: pass a run as experiment_plan returns it' % key)
    if 'params' in p['run'] and not isinstance(p['run']['params'], dict):
        problems.append('run.params must be a dict of the run\'s parameters (got %r)'
                        % (p['run']['params'],))
    for role, host in sorted(p['hosts'].items()):
        try:
            experiment_pairs.host_list('hosts.%s' % role, host)
        except ValueError as e:
            problems.append(str(e))
    for key in ('start_delay', 'start_delay_default'):
        if p[key] is not None and p[key] < 0:
            problems.append('%s must be 0 seconds or more (got %r)' % (key, p[key]))
    if p['start_spread_max'] is not None and p['start_spread_max'] <= 0:
        problems.append('start_spread_max must be above 0 seconds (got %r)' % p['start_spread_max'])
    problems.extend(errors(directory_problem('path', p['path'])))
    return problems


def execute(p, check_mode):
    """Write run.json (and result.json); returns the module result (shared with the action,
    which has no module: every failure is returned, never raised)."""
    problems = problems_of(p)
    if problems:
        return {'failed': True, 'changed': False, 'msg': '; '.join(problems)}
    host_outcomes = None
    if p['phases']:
        host_outcomes = dict((host, phase_outcome(host, p['phases'], p['play_hosts'], p['run'].get('index'),
                                                  p['recover_tasks']))
                             for host in unique(h for v in p['hosts'].values() for h in experiment_pairs.as_list(v)))
    data = record(p['experiment'], p['run'], p['hosts'], p['bottleneck'], p['outcomes'],
                  p['errors'], p['started'], time.time(), p['kernel'], p['zd_branch'], host_outcomes)
    members = set(h for v in p['hosts'].values() for h in experiment_pairs.as_list(v))
    data['start_at'] = p['start_at']
    data['start_delay_s'] = p['start_delay']
    ready = ready_epochs(p)
    data['start_delay_used_s'] = start_delay.used(p['start_delay'], p['start_at'], ready)
    unknown = p['start_delay_default'] if p['start_delay_default'] is not None else p['start_delay']
    next_delay = start_delay.next_delay(p['start_delay'], p['start_at'], ready, unknown)
    data['start_spread_max_s'] = p['start_spread_max']
    data['clock_offsets'] = dict((h, o) for h, o in sorted(p['clock_offsets'].items()) if h in members)
    result, problems, made = None, [], []
    if check_mode:
        return {'changed': True, 'record': data, 'result': result, 'problems': problems,
                'next_start_delay': next_delay}
    operation = 'create the run directory (path)'
    try:
        if not os.path.isdir(p['path']):
            os.makedirs(p['path'])
            made.append('mkdir %s' % p['path'])
        operation = 'write run.json in the run directory (path)'
        with open(os.path.join(p['path'], 'run.json'), 'w') as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write('\n')
        made.append('write %s' % os.path.join(p['path'], 'run.json'))
    except (IOError, OSError) as e:
        return {'failed': True, 'changed': bool(made), 'commands': made, 'next_start_delay': unknown,
                'msg': 'could not %s %s: %s' % (operation, p['path'], describe(e))}
    if p['normalise']:
        if run_record is None:
            problems.append('no parsers in this collection: result.json not written')
        else:
            try:
                result = run_record.normalise(p['path'])
                with open(os.path.join(p['path'], 'result.json'), 'w') as f:
                    f.write(run_record.dumps(result))
                problems = list(result.get('problems') or [])
            except Exception as e:  # a broken run keeps its raw files; the report says why
                problems.append('cannot normalise %s: %s' % (p['path'], e))
    return {'changed': True, 'record': data, 'result': result, 'problems': problems,
            'next_start_delay': next_delay}


def ready_epochs(p):
    """{sender: ready_epoch of its client call on the controller's clock} for the run's senders
    (None: it reported none); its clock offset is taken off where it is larger than its
    uncertainty, as its start_at was shifted by it."""
    client = (p['phases'] or {}).get('client') or {}
    senders = experiment_pairs.as_list(p['hosts'].get('sender')) if p['hosts'].get('sender') else []
    found = {}
    for host in senders:
        ready = (client.get(host) or {}).get('ready_epoch')
        clock = p['clock_offsets'].get(host) or {}
        offset = clock.get('offset_s') or 0.0
        if ready is not None and abs(offset) > (clock.get('uncertainty_s') or 0.0):
            ready -= offset
        found[host] = ready
    return found


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    with Guard(module) as guard:
        guard.doing('record the run', module.params['path'])
        outcome = execute(module.params, module.check_mode)
    if outcome.get('failed'):
        module.fail_json(**outcome)
    module.exit_json(**outcome)


if __name__ == '__main__':
    main()
