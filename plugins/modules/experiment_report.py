#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: experiment_report
short_description: Tables and plots comparing the modes of an experiment's results
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Reads every run under O(results_dir) (its C(result.json), or the raw files when there is none or
    O(refresh=true)) and writes C(runs.csv) (one row per run), C(report.md), C(report.html)
    (self-contained, plots referenced relatively) and PNG plots under C(plots/<variant>/).
  - Runs are grouped by variant, flow count and mode; figures are means over the successful
    repetitions with the sample standard deviation (tables) and min-max whiskers (plots). Failed runs
    are listed with their reason, never averaged. Each mode other than O(baseline_mode) gets a ratio
    row against it, only where both sides have data.
  - Plots show, against the flow count, the modes side by side - throughput and fraction of the
    bottleneck rate, aborted and zero-byte flows, Jain's index, retransmissions, RTOs, sender-side
    qdisc drops, connection failures, ECN marks, CPU per host role and RTT percentiles (those with data).
  - The setup of each mode (kernels, commits, qdiscs, sysctls) is taken from C(metadata.json).
  - Runs with more than one sender (C(per_sender) of result.json) get a per-sender table - each
    sender's receiver, flows, throughput, alive, aborted and zero-byte flows, Jain's index,
    retransmissions, RTOs, sender-side qdisc drops and start offset - and their start spread;
    the tables above stay the whole run's figures.
  - The report starts with the C(notes) of metadata.json (a baseline-only experiment says so in
    its title). With a mode besides O(baseline_mode), its first section is that mode's effect per
    flow count - sender-side qdisc drops, throughput and fraction of the bottleneck rate, failed
    connections, flows stalled in SYN-SENT, RTOs, retransmissions, zero-byte and aborted flows,
    Jain's index side by side with their ratio, runs that are not comparable (zD layout guard,
    queue never filled) or whose client was stopped marked - then the kernels and whether their
    configs are identical apart from LOCALVERSION.
  - "Runs on the controller - use C(delegate_to: localhost) - and needs matplotlib in the Python
    that runs the module there (C(ansible_python_interpreter) of localhost)."
options:
  results_dir:
    description: One experiment's results, C(results/<experiment>/<timestamp>) (holding C(metadata.json)).
    type: path
    required: true
  dest:
    description:
      - Directory to write the report into (created); default O(results_dir).
      - It must be a directory that can be written when a file of the report changes; that is
        checked before any file is written.
    type: path
  baseline_mode:
    description: The mode every other mode is compared with.
    type: str
    default: baseline
  refresh:
    description: Normalise every run from its raw files even when it has a C(result.json).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Builds the report in memory and reports which files would change; writes nothing.
  diff_mode:
    support: partial
    description: Shows the change of C(report.md) only.
  platform:
    support: full
    platforms: posix
    description: Any POSIX host; the results directory must be on the host that runs it.
requirements:
  - matplotlib (on the controller)
seealso:
  - module: zerodrop.testbed.experiment_result
'''

EXAMPLES = r'''
- name: Report an experiment
  zerodrop.testbed.experiment_report:
    results_dir: "{{ playbook_dir }}/results/smoke/20261122T060000Z"
  delegate_to: localhost
  run_once: true
  register: report

- name: Point at the report
  ansible.builtin.debug:
    msg: "{{ report.report_html }} ({{ report.failed_runs | length }} failed runs)"
'''

RETURN = r'''
report_md:
  description: Path of the Markdown report.
  returned: always
  type: str
  sample: results/smoke/20261122T060000Z/report.md
report_html:
  description: Path of the HTML report.
  returned: always
  type: str
  sample: results/smoke/20261122T060000Z/report.html
runs_csv:
  description: Path of the per-run table.
  returned: always
  type: str
  sample: results/smoke/20261122T060000Z/runs.csv
plots:
  description: Paths of the PNG plots.
  returned: always
  type: list
  elements: str
  sample: [results/smoke/20261122T060000Z/plots/default/throughput.png]
changed_files:
  description: Files that were (in check mode would be) written because their content changed.
  returned: always
  type: list
  elements: str
  sample: [report.md]
runs:
  description: Number of runs found.
  returned: always
  type: int
  sample: 12
failed_runs:
  description: The failed runs with their reason.
  returned: always
  type: list
  elements: dict
  sample: [{mode: zd, variant: default, flows: 4000, rep: 3, reason: "client rc=1", run_dir: zd/default/4000/3}]
summary:
  description:
    - One row per variant, flow count and mode with C(runs_ok), C(runs_failed) and per figure
      C({n, mean, std, min, max}) (null without data); rows with C(ratio=true) hold mode/baseline ratios.
  returned: always
  type: list
  elements: dict
  sample:
    - {variant: default, flows: 1000, mode: baseline, runs_ok: 3, runs_failed: 0,
       throughput_bps: {n: 3, mean: 95100000.0, std: 200000.0, min: 94900000.0, max: 95300000.0}}
    - {variant: default, flows: 1000, mode: zd/baseline, ratio: true, throughput_bps: 1.01}
'''

import importlib.util
import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.zerodrop.testbed.plugins.module_utils import report
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import errors
from ansible_collections.zerodrop.testbed.plugins.module_utils.writable import directory_problem


def main():
    module = AnsibleModule(
        argument_spec=dict(
            results_dir=dict(type='path', required=True),
            dest=dict(type='path'),
            baseline_mode=dict(type='str', default='baseline'),
            refresh=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    # report.plots imports matplotlib itself, only when it draws
    if importlib.util.find_spec('matplotlib') is None:
        module.fail_json(msg=missing_required_lib('matplotlib') + ' (run this module on the controller '
                         'with delegate_to: localhost)')
    results_dir = module.params['results_dir']
    dest = module.params['dest'] or results_dir
    if not os.path.isdir(results_dir):
        module.fail_json(msg='results_dir %s is not a directory: pass results/<experiment>/<timestamp>'
                         % results_dir)
    dest_field = 'dest' if module.params['dest'] else 'dest (default results_dir)'
    if os.path.lexists(dest) and not os.path.isdir(dest):
        module.fail_json(msg=directory_problem(dest_field, dest))
    with Guard(module) as guard:
        guard.doing('read the runs of results_dir', results_dir)
        files, results = report.build(results_dir, module.params['baseline_mode'],
                                      module.params['refresh'])
        if not results.runs:
            module.fail_json(msg='results_dir %s holds no run.json: pass results/<experiment>/<timestamp>'
                             % results_dir)
        md_path = os.path.join(dest, 'report.md')
        before = ''
        if os.path.exists(md_path):
            guard.doing('read the current report', md_path)
            with open(md_path, 'rb') as f:
                before = f.read().decode('utf-8', 'replace')
        guard.doing('compare the report with dest', dest)
        changed = report.write(dest, files, check=True)
        problems = errors(*([directory_problem(dest_field, dest)] if changed else []) + [
            directory_problem(dest_field, os.path.dirname(os.path.join(dest, rel)))
            for rel in changed])
        if problems:
            module.fail_json(msg=problems[0])
        if not module.check_mode:
            # one file at a time, so that a failure says which files were written before it
            for rel in changed:
                guard.doing('write the report file %s into dest' % rel, dest)
                report.write(dest, {rel: files[rel]})
                guard.record('write %s' % os.path.join(dest, rel))
    result = dict(
        changed=bool(changed),
        changed_files=changed,
        report_md=md_path,
        report_html=os.path.join(dest, 'report.html'),
        runs_csv=os.path.join(dest, 'runs.csv'),
        plots=[os.path.join(dest, p) for p in sorted(files) if p.endswith('.png')],
        runs=len(results.runs),
        failed_runs=[dict((k, r[k]) for k in ('mode', 'variant', 'flows', 'rep', 'reason', 'run_dir'))
                     for r in results.failed()],
        summary=results.summary(),
    )
    if module._diff:
        result['diff'] = dict(before=before, after=files['report.md'].decode('utf-8'),
                              before_header=md_path, after_header=md_path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
