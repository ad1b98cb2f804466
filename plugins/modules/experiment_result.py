#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: experiment_result
short_description: Normalise the raw files of one experiment run into result.json
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Reads one run directory of the results layout (C(docs/results-layout.md) - C(run.json) and one
    sub-directory per host role with tool stdout, neper C(--all-samples), C(nstat), C(tc -s -j)
    snapshots and samples, C(/proc/stat) snapshots, established-connection samples, RTT samples)
    and writes the normalised record to O(dest).
  - The record holds throughput and its fraction of the bottleneck rate, flows started, alive,
    aborted (C(TcpExtTCPAbortOnTimeout)) and with zero bytes, Jain's fairness index over per-flow
    bytes, retransmissions, RTOs, sender-side and bottleneck qdisc drops, ECN marks, listen
    overflows, connections attempted, failed, connected and stalled in SYN-SENT, SYN
    retransmissions, whether the client was stopped, CPU per host role, RTT percentiles and the
    largest sampled bottleneck backlog, plus C(per_host) with the raw counter deltas each figure
    came from.
  - It also says whether the run could show zD's effect - C(layout_check) (the qdisc layout the
    sender's zD branch needs), C(queue_check) (whether the sender's queue filled) and
    C(not_comparable) (the reasons when not).
  - A figure whose input was not captured is null, never 0. Files that cannot be parsed are named
    in C(problems) and do not stop the rest; C(status) and C(reason) come from C(run.json).
  - "The results live on the controller, so run it there (C(delegate_to: localhost)). It only reads
    files and needs nothing beyond Python."
options:
  run_dir:
    description: The run directory (C(<results>/<mode>/<variant>/<flows>/<rep>)) holding C(run.json).
    type: path
    required: true
  dest:
    description:
      - Where to write the record; default C(result.json) inside O(run_dir).
      - A file path (not a directory) in a directory that exists and can be written; it is
        replaced whole (written next to it, then renamed) only when its content changes.
    type: path
attributes:
  check_mode:
    support: full
    description: Computes and returns the record, writes nothing; reports a change when O(dest) would differ.
  diff_mode:
    support: full
    description: Shows the old and new content of O(dest).
  platform:
    support: full
    platforms: posix
    description: Any POSIX host; the results directory must be on the host that runs it.
seealso:
  - module: zerodrop.testbed.experiment_report
notes:
  - A bad O(run_dir) or O(dest) (no C(run.json), a directory as O(dest), a directory that cannot
    be written) fails before anything is written; O(dest) is then as it was.
  - Which host roles send and receive is read from the files - a role with C(client.txt) sends, a
    role with C(server.txt) receives - and otherwise from the role names (C(sender*), C(receiver*)).
'''

EXAMPLES = r'''
- name: Normalise one run
  zerodrop.testbed.experiment_result:
    run_dir: results/smoke/20261122T060000Z/baseline/default/1000/1
  delegate_to: localhost
  register: run

- name: Show what neper does not tell
  ansible.builtin.debug:
    msg: "{{ run.record.flows_aborted }} of {{ run.record.flows_started }} flows aborted"
'''

RETURN = r'''
path:
  description: The file the record was (or in check mode would be) written to.
  returned: always
  type: str
  sample: results/smoke/20261122T060000Z/baseline/default/1000/1/result.json
record:
  description: The normalised record (keys as in C(docs/results-layout.md)).
  returned: always
  type: dict
  sample:
    status: ok
    mode: baseline
    flows: 4000
    throughput_bps: 95627304.0
    fraction_of_bottleneck: 0.956
    flows_started: 4000
    flows_alive: 274
    flows_aborted: 3735
    flows_zero_bytes: 3135
    jain_index: 0.081
    retrans_segs: 1
    local_qdisc_drops: 273997
problems:
  description: Input files that could not be parsed, with the reason.
  returned: always
  type: list
  elements: str
  sample: ["receiver/server.txt: iperf3: invalid JSON (Expecting value: line 1 column 1 (char 0)); run iperf3 with -J"]
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerodrop.testbed.plugins.module_utils import run_record
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError
from ansible_collections.zerodrop.testbed.plugins.module_utils.writable import file_problem, \
    replace_file


def main():
    module = AnsibleModule(
        argument_spec=dict(
            run_dir=dict(type='path', required=True),
            dest=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    run_dir = module.params['run_dir']
    dest = module.params['dest'] or os.path.join(run_dir, 'result.json')
    if not os.path.isfile(os.path.join(run_dir, 'run.json')):
        module.fail_json(msg='run_dir %s has no run.json: pass a run directory '
                             '(<results>/<mode>/<variant>/<flows>/<rep>) as written by the runner' % run_dir)
    if os.path.isdir(dest):
        module.fail_json(msg=file_problem('dest', dest))
    with Guard(module) as guard:
        guard.doing('normalise the run in run_dir', run_dir)
        try:
            record = run_record.normalise(run_dir)
        except ParseError as e:
            module.fail_json(msg='run_dir: %s' % e)
        content = run_record.dumps(record)
        before = ''
        if os.path.exists(dest):
            guard.doing('read the current dest', dest)
            with open(dest) as f:
                before = f.read()
        changed = before != content
        if changed:
            problem = file_problem('dest', dest)
            if problem:
                module.fail_json(msg=problem)
        if changed and not module.check_mode:
            guard.doing('write dest', dest)
            replace_file(dest, content)
    result = dict(changed=changed, path=dest, record=record, problems=record.get('problems', []))
    if module._diff:
        result['diff'] = dict(before=before, after=content, before_header=dest, after_header=dest)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
