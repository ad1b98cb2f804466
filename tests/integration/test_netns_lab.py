"""playbooks/netns_lab.yml on inventories/netns as shipped: one command builds the sender, router
and receiver namespaces and runs the experiment in the direct and in the forwarding layout; with
netns_lab_senders=4 and netns_lab_receivers=2 it builds the many-sender layout and runs the
forwarding layout with the flows split across the senders. Only the namespace prefix, the
results directory, the lab's size and the matrix's size are overridden."""

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
    for name in namespaces():
        if name.startswith(made):
            subprocess.run(['ip', 'netns', 'del', name], capture_output=True, check=False)


def test_one_command_runs_both_layouts(playbook, prefix, tmp_path):
    results = str(tmp_path / 'results')
    extra = {'netns_lab_prefix': prefix, 'experiment_results_dir': results,
             'experiment_flows': [60], 'experiment_duration': 5}
    run = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars=extra)
    assert run.rc == 0, run
    assert {prefix + r for r in ('snd', 'rtr', 'rcv')} <= namespaces()

    forwarding = results_of(results, 'netns-forwarding')
    direct = results_of(results, 'netns-direct')
    assert sorted(forwarding) == sorted(direct) == [60]
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

    # The direct layout ran first and left its tbf on the sender; the forwarding layout after it
    # started from the default qdiscs (its sender-side drops are 0 above) and left its own tree
    # on the router only.
    assert 'tbf' not in qdisc_kinds(prefix + 'snd', 'eth0')
    assert qdisc_kinds(prefix + 'rtr', 'to-rcv')[0] == 'tbf'

    # The lab is built once: a second build changes nothing.
    again = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars=extra, tags='lab')
    assert again.rc == 0, again
    assert not again.changed, again

    down = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars=extra, tags='teardown')
    assert down.rc == 0, down
    assert not {prefix + r for r in ('snd', 'rtr', 'rcv')} & namespaces()


def test_many_senders_share_the_one_bottleneck(playbook, prefix, tmp_path):
    results = str(tmp_path / 'results')
    senders = [prefix + 'snd%d' % i for i in range(1, 5)]
    receivers = [prefix + 'rcv1', prefix + 'rcv2']
    # 70 flows a sender at 40 a process: two iperf3 processes on each sender, so that the
    # aggregate comes from the receivers' samples while every flow of every process was up
    # (the processes connect one by one, slowly on a loaded machine: 6 s with samples every second
    # left no common stretch once in CI; 10 s sampled every half second do).
    run = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars={
        'netns_lab_prefix': prefix, 'experiment_results_dir': results,
        'netns_lab_senders': 4, 'netns_lab_receivers': 2, 'experiment_flows_per_process': 40,
        'experiment_flows': [280], 'experiment_duration': 10, 'experiment_sample_interval': 0.5})
    assert run.rc == 0, run
    assert set(senders + receivers + [prefix + 'rtr']) <= namespaces()
    # the one-sender hosts are not part of this layout
    assert not {prefix + 'snd', prefix + 'rcv'} & namespaces()
    # every receiver sits behind the router's bridge to-rcv, whose tbf carries all flows
    assert qdisc_kinds(prefix + 'rtr', 'to-rcv')[0] == 'tbf'

    assert not os.path.exists(os.path.join(results, 'netns-direct'))
    records = list(results_of(results, 'netns-forwarding').values())
    assert len(records) == 1, records
    record = records[0]
    assert record['status'] == 'ok', record
    assert record['bottleneck'] == {'host_role': 'router', 'device': 'to-rcv', 'source': 'run.json'}
    per_sender = record['per_sender']
    assert sorted(s['sender'] for s in per_sender) == ['snd1', 'snd2', 'snd3', 'snd4'], record
    # round robin: two senders per receiver, an equal share of the flows each
    assert sorted(s['receiver'] for s in per_sender) == ['rcv1', 'rcv1', 'rcv2', 'rcv2'], record
    assert [s['flows'] for s in per_sender] == [70] * 4, record
    assert sum(s['flows'] for s in per_sender) == record['flows'] == 280, record
    assert sum(s['flows_alive'] for s in per_sender) == record['flows_alive'] == 280, record
    assert record['flows_started'] == 280 and record['throughput_source'] == 'sampled', record.get('problems')
    for sender in per_sender:
        ports = record['per_host'][sender['dir']]['client_times']['ports']
        assert len(ports) == 2, record
    assert all(s['throughput_bps'] > 0 for s in per_sender), record
    assert record['bottleneck_drops'] > 0 and record['local_qdisc_drops'] == 0, record
    assert 0.9 < record['fraction_of_bottleneck'] <= 1.0, record
    report = glob.glob(os.path.join(results, 'netns-forwarding', '*', 'report.md'))
    assert len(report) == 1 and '## Per sender' in open(report[0]).read()

    # the teardown finds every namespace of the lab without being told its size
    down = playbook(PLAYBOOK, inventory=INVENTORY, extra_vars={'netns_lab_prefix': prefix},
                    tags='teardown')
    assert down.rc == 0, down
    assert not [n for n in namespaces() if n.startswith(prefix)]
