"""The experiment runner end to end: real iperf3/iperf2 between network namespaces.

Forwarding layout: sender ns -> router ns (tbf 100mbit + bfifo on its egress) -> receiver ns.
Direct layout: tbf + bfifo on the sender's own egress. Hosts are namespaces of this machine
reached with the local connection and the runner's own netns support (`experiment_netns`).
"""

import glob
import json
import os
import subprocess
import uuid

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import iperf3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(ROOT, 'playbooks', 'experiment.yml')
HOST_FILES = ('nstat.txt', 'tc_before.json', 'tc_during.jsonl', 'tc_after.json',
              'cpu_before.txt', 'cpu_after.txt', 'established.txt')

pytestmark = [pytest.mark.root]


def ip(*args):
    subprocess.run(['ip'] + list(args), check=True, capture_output=True, text=True)


def link(ns_a, dev_a, ns_b, dev_b, addr_a, addr_b):
    ip('-n', ns_a, 'link', 'add', dev_a, 'type', 'veth', 'peer', 'name', dev_b, 'netns', ns_b)
    for ns, dev, addr in ((ns_a, dev_a, addr_a), (ns_b, dev_b, addr_b)):
        ip('-n', ns, 'addr', 'add', addr, 'dev', dev)
        ip('-n', ns, 'link', 'set', dev, 'up')


@pytest.fixture
def lab(netns, tmp_path):
    """snd -> rtr -> rcv, 10.<x>.1.0/24 and 10.<x>.2.0/24; returns names and an inventory."""
    snd, rtr, rcv = netns('zsnd'), netns('zrtr'), netns('zrcv')
    x = 100 + uuid.uuid4().int % 100
    link(snd, 'vs', rtr, 'vr1', '10.%d.1.1/24' % x, '10.%d.1.2/24' % x)
    link(rtr, 'vr2', rcv, 'vc', '10.%d.2.2/24' % x, '10.%d.2.1/24' % x)
    ip('-n', snd, 'route', 'add', 'default', 'via', '10.%d.1.2' % x)
    ip('-n', rcv, 'route', 'add', 'default', 'via', '10.%d.2.2' % x)
    subprocess.run(['ip', 'netns', 'exec', rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'],
                   check=True)
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(
        'all:\n'
        '  vars:\n'
        '    ansible_connection: local\n'
        '    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
        '  hosts:\n'
        '    snd: {experiment_netns: %s}\n'
        '    rtr: {experiment_netns: %s}\n'
        '    rcv: {experiment_netns: %s, experiment_data_address: 10.%d.2.1}\n'
        % (snd, rtr, rcv, x))
    # The same hosts through the netns connection plugin: modules run inside the namespace.
    inventory_netns = tmp_path / 'inventory-netns.yml'
    inventory_netns.write_text(
        'all:\n'
        '  vars:\n'
        '    ansible_connection: zerodrop.testbed.netns\n'
        '    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
        '  hosts:\n'
        '    snd: {ansible_netns_name: %s}\n'
        '    rcv: {ansible_netns_name: %s, experiment_data_address: 10.%d.2.1}\n'
        % (snd, rcv, x))
    return {'snd': snd, 'rtr': rtr, 'rcv': rcv, 'inventory': str(inventory),
            'inventory_netns': str(inventory_netns),
            'results': str(tmp_path / 'results')}


def tc_json(ns, dev):
    out = subprocess.run(['tc', '-n', ns, '-j', 'qdisc', 'show', 'dev', dev], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def runs_of(results):
    pattern = os.path.join(results, '*', '*', '*', '*', '*', '*', 'run.json')
    return {os.path.relpath(os.path.dirname(p), results).split(os.sep, 2)[2]: json.load(open(p))
            for p in glob.glob(pattern)}


def test_forwarding_layout_matrix_with_a_failing_run(lab, playbook):
    # Something else holds port 5301 in the receiver: the port=5301 runs must fail, the
    # others complete.
    blocker = subprocess.Popen(['ip', 'netns', 'exec', lab['rcv'], 'python3', '-c',
                                'import socket,time; s=socket.socket(); '
                                's.bind(("0.0.0.0",5301)); s.listen(); time.sleep(600)'])
    try:
        run = playbook(PLAYBOOK, inventory=lab['inventory'], extra_vars={
            'experiment_name': 'fwd',
            'experiment_hosts': {'sender': 'snd', 'receiver': 'rcv', 'router': 'rtr'},
            'experiment_tool': 'iperf3',
            'experiment_flows': [2, 8, 200],
            'experiment_duration': 4,
            'experiment_sweep': {'port': [5201, 5301]},
            'experiment_qdisc_limit': 60000,
            'experiment_bottleneck': {'host_role': 'router', 'device': 'vr2', 'netns': None,
                                      'tree': [
                                          {'parent': 'root', 'handle': '1:', 'kind': 'tbf',
                                           'options': {'rate': '100mbit', 'burst': 15000,
                                                       'latency': '10ms'}},
                                          {'parent': '1:1', 'handle': '10:', 'kind': 'bfifo',
                                           'options': {'limit': '{{ experiment_run.params.qdisc_limit }}'}}]},
            'experiment_results_dir': lab['results'],
        })
    finally:
        blocker.kill()
    assert run.rc == 0, run
    runs = runs_of(lab['results'])
    assert sorted(runs) == ['baseline/port=5201/2/1', 'baseline/port=5201/200/1',
                            'baseline/port=5201/8/1', 'baseline/port=5301/2/1',
                            'baseline/port=5301/200/1', 'baseline/port=5301/8/1'], runs
    qdiscs = tc_json(lab['rtr'], 'vr2')
    kinds = [(q['kind'], q['options'].get('limit')) for q in qdiscs]
    assert kinds == [('tbf', None), ('bfifo', 60000)]
    for name, record in runs.items():
        run_dir = glob.glob(os.path.join(lab['results'], 'fwd', '*', name))[0]
        if name.startswith('baseline/port=5301'):
            assert record['status'] == 'failed', record
            assert 'Address already in use' in record['reason'], record
            assert not os.path.exists(os.path.join(run_dir, 'sender', 'client.txt'))
            continue
        assert record['status'] == 'ok', record
        assert record['bottleneck_rate_bps'] == 100000000
        assert record['params']['bottleneck']['tree'][1]['options']['limit'] == 60000
        for role in ('sender', 'receiver', 'router'):
            for f in HOST_FILES:
                assert os.path.getsize(os.path.join(run_dir, role, f)) > 0, (role, f)
        # 200 flows take two iperf3 processes, each with its own control connection
        processes = 2 if record['flows'] > 128 else 1
        with open(os.path.join(run_dir, 'sender', 'client.txt')) as f:
            clients = iperf3.parse(f.read())
        assert len(clients) == processes
        assert sum(len(c['start']['connected']) for c in clients) == record['flows']
        with open(os.path.join(run_dir, 'receiver', 'established.txt')) as f:
            est = [line.split() for line in f]
        assert max(int(e[1]) for e in est) == record['flows'] + processes
        assert max(int(e[2]) for e in est) > 1000000  # bytes received, from ss's tcp_info
        if processes > 1:  # and the count of each process's port
            assert all(sum(int(p.split(':')[1]) for p in e[4:]) == int(e[1]) for e in est), est
        with open(os.path.join(run_dir, 'sender', 'client_times.json')) as f:
            times = json.load(f)
        assert len(times['exited_s']) == processes and None not in times['exited_s'], times
        assert times['ports'] == [5201 + i for i in range(processes)], times
        during = [json.loads(line) for line in open(os.path.join(run_dir, 'router',
                                                                 'tc_during.jsonl'))]
        assert len(during) >= 3 and any(q['kind'] == 'bfifo' for q in during[-1]['qdiscs'])
        nstat = open(os.path.join(run_dir, 'sender', 'nstat.txt')).read()
        out_segs = int(nstat.split('TcpOutSegs')[1].split()[0])
        assert out_segs > 1000  # increments of this run, not the namespace's totals
        result = json.load(open(os.path.join(run_dir, 'result.json')))
        assert result['status'] == 'ok'
        assert 0.5 < result['fraction_of_bottleneck'] < 1.1, result
        assert result['flows_alive'] == record['flows'], result
        sampled = result['throughput_sampled']
        if processes > 1:
            assert result['throughput_source'] == 'sampled' and result['problems'] == [], result
            assert result['fraction_of_bottleneck'] <= 1.0, result
        else:
            # the receiver's own byte samples agree with what iperf3 reported
            assert result['throughput_source'] == 'tool'
            assert sampled['bps'] == pytest.approx(result['throughput_bps'], rel=0.15), result
    meta = json.load(open(glob.glob(os.path.join(lab['results'], 'fwd', '*',
                                                 'metadata.json'))[0]))
    hosts = meta['modes']['baseline']['hosts']
    assert hosts['sender']['kernel_release'] == os.uname().release
    assert hosts['receiver']['host'] == 'rcv'
    assert hosts['receiver']['tools']['iperf3'].startswith('iperf 3')
    assert meta['collection']['version'] == '0.1.0'
    assert meta['sweep'] == {'port': [5201, 5301]}
    assert len(meta['runs']) == 6


def test_direct_layout_iperf2_through_the_netns_connection(lab, playbook):
    run = playbook(PLAYBOOK, inventory=lab['inventory_netns'], extra_vars={
        'experiment_name': 'direct',
        'experiment_hosts': {'sender': 'snd', 'receiver': 'rcv'},
        'experiment_tool': 'iperf2',
        'experiment_flows': [3],
        'experiment_duration': 3,
        'experiment_bottleneck': {'host_role': 'sender', 'device': 'vs', 'netns': None,
                                  'tree': [
                                      {'parent': 'root', 'handle': '1:', 'kind': 'tbf',
                                       'options': {'rate': '100mbit', 'burst': 15000,
                                                   'latency': '10ms'}},
                                      {'parent': '1:1', 'handle': '10:', 'kind': 'bfifo',
                                       'options': {'limit': 100000}}]},
        'experiment_results_dir': lab['results'],
    })
    assert run.rc == 0, run
    runs = runs_of(lab['results'])
    assert list(runs) == ['baseline/default/3/1'] and runs['baseline/default/3/1']['status'] == 'ok', runs
    run_dir = glob.glob(os.path.join(lab['results'], 'direct', '*', 'baseline', 'default', '3',
                                     '1'))[0]
    assert '[SUM]' in open(os.path.join(run_dir, 'sender', 'client.txt')).read()
    assert 'Server listening' in open(os.path.join(run_dir, 'receiver', 'server.txt')).read()
    during = [json.loads(line) for line in open(os.path.join(run_dir, 'sender',
                                                             'tc_during.jsonl'))]
    kinds = set(q['kind'] for sample in during for q in sample['qdiscs'] if q['dev'] == 'vs')
    assert kinds == {'tbf', 'bfifo'}
    assert not os.path.exists(os.path.join(run_dir, 'router'))
