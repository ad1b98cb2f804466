"""playbooks/netns_lab.yml on inventories/netns as shipped: one command builds the sender, router
and receiver namespaces and runs the experiment in the forwarding and in the direct layout.
Only the namespace prefix, the results directory and the matrix's size are overridden."""

import glob
import json
import os
import subprocess
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, 'playbooks', 'netns_lab.yml')
INVENTORY = os.path.join(ROOT, 'inventories', 'netns')

pytestmark = [pytest.mark.root]


def namespaces():
    out = subprocess.run(['ip', '-j', 'netns', 'list'], capture_output=True, text=True,
                         check=True).stdout
    return set(n['name'] for n in json.loads(out or '[]'))


def qdisc_kinds(ns, dev):
    out = subprocess.run(['tc', '-n', ns, '-j', 'qdisc', 'show', 'dev', dev], capture_output=True,
                         text=True, check=True).stdout
    return [q['kind'] for q in json.loads(out)]


def results_of(results, experiment):
    found = {}
    for path in glob.glob(os.path.join(results, experiment, '*', '*', '*', '*', '*',
                                       'result.json')):
        with open(path) as f:
            record = json.load(f)
        found[record['flows']] = record
    return found


@pytest.fixture
def prefix():
    made = 'zt%s-' % uuid.uuid4().hex[:4]
    yield made
    for role in ('snd', 'rtr', 'rcv'):
        subprocess.run(['ip', 'netns', 'del', made + role], capture_output=True, check=False)


def test_one_command_runs_both_layouts(playbook, prefix, tmp_path):
    results = str(tmp_path / 'results')
    extra = {'netns_lab_prefix': prefix, 'experiment_results_dir': results,
             'experiment_flows': [20, 60], 'experiment_duration': 5}
    run = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars=extra)
    assert run.rc == 0, run
    assert {prefix + r for r in ('snd', 'rtr', 'rcv')} <= namespaces()

    forwarding = results_of(results, 'netns-forwarding')
    direct = results_of(results, 'netns-direct')
    assert sorted(forwarding) == sorted(direct) == [20, 60]
    for record in list(forwarding.values()) + list(direct.values()):
        assert record['status'] == 'ok', record
        assert record['fraction_of_bottleneck'] <= 1.0, record
        if record in forwarding.values():
            assert record['flows_started'] == record['flows'], record
        else:
            # iperf2 reports a flow when it closes; one stuck in timeouts past the stop grace
            # may go unreported
            assert 0.95 * record['flows'] <= record['flows_started'] <= record['flows'], record
    for flows, record in forwarding.items():
        # the queue is on the router: the sender's own qdiscs drop nothing
        assert record['tool'] == 'iperf3'
        assert record['bottleneck'] == {'host_role': 'router', 'device': 'to-rcv',
                                        'source': 'run.json'}
        assert record['bottleneck_drops'] > 0 and record['local_qdisc_drops'] == 0, record
        assert record['fraction_of_bottleneck'] > 0.9, record
    for flows, record in direct.items():
        # the queue is the sender's own egress: every bottleneck drop is a local drop
        assert record['tool'] == 'iperf2'
        assert record['bottleneck'] == {'host_role': 'sender', 'device': 'eth0',
                                        'source': 'run.json'}
        assert record['local_qdisc_drops'] == record['bottleneck_drops'] > 0, record
        assert record['fraction_of_bottleneck'] > 0.3, record
    for experiment in ('netns-forwarding', 'netns-direct'):
        assert glob.glob(os.path.join(results, experiment, '*', 'report.md'))
    shown = [r['msg'] for r in run.results('zerodrop.testbed.experiment : Show where the report is')]
    assert len(shown) == 2 and all(m[0].startswith('Report: ' + results) for m in shown)

    # The direct layout left its tbf on the sender; the next forwarding run must not inherit it.
    assert qdisc_kinds(prefix + 'snd', 'eth0')[0] == 'tbf'
    results2 = str(tmp_path / 'results2')
    # Two iperf3 processes connect their streams one by one, and a SYN lost at the full queue
    # holds one back a second or more while the other already sends: 10 s leave them a common
    # stretch to sample.
    again = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars=dict(
        extra, experiment_results_dir=results2, experiment_flows=[200], experiment_duration=10,
        netns_lab_run=['forwarding']))
    assert again.rc == 0, again
    assert not os.path.exists(os.path.join(results2, 'netns-direct'))
    records = list(results_of(results2, 'netns-forwarding').values())
    assert len(records) == 1, records
    record = records[0]
    assert record['status'] == 'ok' and record['local_qdisc_drops'] == 0, record
    # 200 flows take two iperf3 processes: the aggregate comes from the receiver's samples, and
    # each process's flows are counted before its own end
    assert record['throughput_source'] == 'sampled' and record['flows_alive'] == 200, record
    assert record['per_host']['sender']['client_times']['ports'] == [5201, 5202], record
    assert record['per_host']['sender']['established_by_port']['ports'] == [5201, 5202], record
    assert 0.9 < record['fraction_of_bottleneck'] <= 1.0, record
    assert 'tbf' not in qdisc_kinds(prefix + 'snd', 'eth0')

    # The lab is built once: a second build changes nothing.
    again = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars=extra, tags='lab')
    assert again.rc == 0, again
    assert not again.changed, again

    down = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars=extra, tags='teardown')
    assert down.rc == 0, down
    assert not {prefix + r for r in ('snd', 'rtr', 'rcv')} & namespaces()
