"""experiment_result, experiment_report and the parser filters through ansible-playbook, on a
results tree made of real recorded runs: check mode writes nothing, a second run changes nothing."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'unit'))

import recorded  # noqa: E402

PLAY = '''
- hosts: localhost
  gather_facts: false
  vars:
    run_dir: "{{ results }}/baseline/default/4000/1"
  tasks:
    - name: result check
      zerodrop.testbed.experiment_result: {run_dir: "{{ run_dir }}"}
      check_mode: true
    - name: result write
      zerodrop.testbed.experiment_result: {run_dir: "{{ run_dir }}"}
    - name: result again
      zerodrop.testbed.experiment_result: {run_dir: "{{ run_dir }}"}
    - name: result bad dir
      zerodrop.testbed.experiment_result: {run_dir: "{{ results }}/baseline"}
      ignore_errors: true
    - name: report check
      zerodrop.testbed.experiment_report: {results_dir: "{{ results }}"}
      check_mode: true
    - name: report write
      zerodrop.testbed.experiment_report: {results_dir: "{{ results }}"}
    - name: report again
      zerodrop.testbed.experiment_report: {results_dir: "{{ results }}"}
    - name: filters
      ansible.builtin.set_fact:
        kv: "{{ lookup('ansible.builtin.file', run_dir + '/receiver/server.txt') | zerodrop.testbed.neper_kv }}"
        flows: "{{ lookup('ansible.builtin.file', run_dir + '/receiver/samples.csv') | zerodrop.testbed.neper_flows }}"
        aborted: "{{ (lookup('ansible.builtin.file', run_dir + '/sender/nstat.txt')
                     | zerodrop.testbed.nstat_counters(['TcpExtTCPAbortOnTimeout'])).TcpExtTCPAbortOnTimeout }}"
        drops: "{{ lookup('ansible.builtin.file', run_dir + '/sender/tc_after.json')
                   | zerodrop.testbed.tc_qdisc_stats(lookup('ansible.builtin.file', run_dir + '/sender/tc_before.json'))
                   | selectattr('root') | map(attribute='drops') | sum }}"
        jain: "{{ [100, 100, 0, 0] | zerodrop.testbed.jain_index }}"
'''


def test_modules_and_filters(playbook, tmp_path):
    results = str(tmp_path / 'results')
    recorded.build_run(results, 'd_neper_F4000', 'baseline')
    recorded.build_run(results, 'r_neper_F100', 'zd', flows=4000)
    recorded.build_run(results, 'r_neper_F100', 'zd', flows=4000, rep=2, status='failed', reason='boom')
    run = playbook(PLAY, extra_vars={'results': results})
    assert run.rc == 0, run
    check = run.result('result check')
    assert check['changed'] and check['record']['flows_aborted'] == 3735
    written = run.result('result write')
    assert written['changed'] and not run.result('result again')['changed']
    with open(written['path']) as f:
        assert json.load(f)['local_qdisc_drops'] == 273997
    assert 'no run.json' in run.result('result bad dir')['msg']

    assert run.result('report check')['changed']
    report = run.result('report write')
    assert report['changed'] and 'report.md' in report['changed_files']
    assert not run.result('report again')['changed']
    assert report['runs'] == 3 and [r['reason'] for r in report['failed_runs']] == ['boom']
    ratio = [r for r in report['summary'] if r.get('ratio')][0]
    assert ratio['mode'] == 'zd/baseline' and ratio['flows_aborted'] == 0.0  # zd: 0 of 3735
    assert ratio['throughput_bps'] == 95617982 / 95627304
    assert all(os.path.exists(p) for p in report['plots'] + [report['report_html']])

    facts = run.result('filters')['ansible_facts']
    assert facts['kv']['num_flows'] == 4000
    assert facts['flows']['zero_bytes'] == 3135
    assert int(facts['aborted']) == 3735 and int(facts['drops']) == 273997
    assert float(facts['jain']) == 0.5
