"""flow_run with more flows than one tool process takes (flows_per_process), for the real neper
(built from ../shared/sources), iperf3 and iperf2, and a receiver serving two senders on port
blocks of their own (servers) that start at one instant (start_at).

Namespaces: snd1 - rcv and snd2 - rcv, each pair joined by a veth. Each playbook runs the module
as the experiment role does: start on the receiver, the client(s), stop.
"""

import json
import os
import subprocess
import time
import uuid

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import iperf2, iperf3, neper, \
    neper_samples
from lib.playbook import run_playbook

pytestmark = [pytest.mark.root]

FLOWS = 60
PER_PROCESS = 25  # 60 flows: three processes of 20 on each side
DURATION = 2
PORTS = {'neper': 12866, 'iperf3': 5201, 'iperf2': 5001}
# neper's --listen-backlog 65535 must not exceed it (a new namespace has 4096)
SYSCTLS = {'net.core.somaxconn': 65535}


def ip(*args):
    subprocess.run(['ip'] + list(args), check=True, capture_output=True, text=True)


@pytest.fixture(scope='module')
def neper_dir(neper_build):
    return neper_build


@pytest.fixture(scope='module')
def lab(tmp_path_factory, neper_dir):
    """rcv with a veth to snd1 (10.<x>.1.0/24) and one to snd2 (10.<x>.2.0/24), an inventory."""
    tag = uuid.uuid4().hex[:6]
    names = {role: 'zf%s-%s' % (role, tag) for role in ('rcv', 'snd1', 'snd2')}
    x = 100 + uuid.uuid4().int % 100
    work = tmp_path_factory.mktemp('flow-processes')
    try:
        for ns in names.values():
            ip('netns', 'add', ns)
            ip('-n', ns, 'link', 'set', 'lo', 'up')
        for i, snd in ((1, 'snd1'), (2, 'snd2')):
            ip('-n', names[snd], 'link', 'add', 'vs', 'type', 'veth', 'peer', 'name', 'vr%d' % i,
               'netns', names['rcv'])
            ip('-n', names[snd], 'addr', 'add', '10.%d.%d.1/24' % (x, i), 'dev', 'vs')
            ip('-n', names['rcv'], 'addr', 'add', '10.%d.%d.2/24' % (x, i), 'dev', 'vr%d' % i)
            ip('-n', names[snd], 'link', 'set', 'vs', 'up')
            ip('-n', names['rcv'], 'link', 'set', 'vr%d' % i, 'up')
        inventory = work / 'inventory.yml'
        inventory.write_text(
            'all:\n'
            '  vars:\n'
            '    ansible_connection: local\n'
            '    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
            '    bin_dir: %s\n'
            '  hosts:\n'
            '    rcv: {netns: %s}\n'
            '    snd1: {netns: %s, server_address: 10.%d.1.2}\n'
            '    snd2: {netns: %s, server_address: 10.%d.2.2}\n'
            % (neper_dir, names['rcv'], names['snd1'], x, names['snd2'], x))
        yield {'inventory': str(inventory), 'work': work, 'names': names}
    finally:
        for ns in names.values():
            subprocess.run(['ip', 'netns', 'del', ns], check=False, capture_output=True)


def run_dir(lab, *parts):
    return str(lab['work'].joinpath('runs', *parts))


@pytest.fixture(scope='module')
def split_runs(lab):
    """One playbook: for each tool, start (rcv), client (snd1), stop (rcv), 60 flows by 25."""
    plays = []
    for tool, port in PORTS.items():
        common = {'tool': tool, 'port': port, 'flows': FLOWS, 'threads': 2, 'duration': DURATION,
                  'flows_per_process': PER_PROCESS, 'netns': '{{ netns }}'}
        if tool == 'neper':
            common['bin_dir'] = '{{ bin_dir }}'
        plays += [
            {'hosts': 'rcv', 'gather_facts': False, 'tasks': [{
                'name': 'start %s' % tool, 'zerodrop.testbed.flow_run': dict(
                    common, phase='start', run_dir=run_dir(lab, tool, 'receiver'), sysctls=SYSCTLS)}]},
            {'hosts': 'snd1', 'gather_facts': False, 'tasks': [{
                'name': 'client %s' % tool, 'zerodrop.testbed.flow_run': dict(
                    common, phase='client', run_dir=run_dir(lab, tool, 'sender'),
                    server_address='{{ server_address }}')}]},
            {'hosts': 'rcv', 'gather_facts': False, 'tasks': [{
                'name': 'stop %s' % tool, 'zerodrop.testbed.flow_run': {
                    'phase': 'stop', 'run_dir': run_dir(lab, tool, 'receiver')}}]},
        ]
    return run_playbook(json.dumps(plays, indent=1), workdir=str(lab['work']), inventory=lab['inventory'])


def read(lab, *parts):
    with open(run_dir(lab, *parts)) as f:
        return f.read()


def per_port_max(text):
    """established.txt -> {port: the most connections seen on it at one sample}."""
    found = {}
    for line in text.splitlines():
        for item in line.split()[5:]:  # t count received acked read_s port:count:received:acked
            port, count = item.split(':')[:2]
            found[int(port)] = max(found.get(int(port), 0), int(count))
    return found


@pytest.mark.parametrize('tool', sorted(PORTS))
def test_flows_beyond_one_process_take_three_on_each_side(split_runs, lab, tool):
    assert split_runs.rc == 0, split_runs
    start = split_runs.result('start %s' % tool)
    client = split_runs.result('client %s' % tool)
    stop = split_runs.result('stop %s' % tool)
    port = PORTS[tool]
    step = 2 if tool == 'neper' else 1
    # every server process listened (start returns once all do) and every client connected
    for result in (start, client):
        assert result['status'] == 'ok', result
        assert [(p['port'], p['data_port'], p['flows']) for p in result['processes']] == [
            (port + step * i, port + step * i + step - 1, 20) for i in range(3)], result
    assert client['exit_codes'] == [0, 0, 0] and not client['client_stopped'], client
    assert start['flows_per_process'] == client['flows_per_process'] == PER_PROCESS
    assert stop['status'] == 'ok' and len(stop['exit_codes']) == 3, stop
    data_ports = [p['data_port'] for p in start['processes']]
    control = 0 if tool == 'neper' else (1 if tool == 'iperf3' else 0)
    for side in ('receiver', 'sender'):
        seen = per_port_max(read(lab, tool, side, 'established.txt'))
        assert sorted(seen) == data_ports, seen
        assert all(seen[p] >= 20 + control for p in data_ports), (side, seen)
    times = json.loads(read(lab, tool, 'sender', 'client_times.json'))
    assert times['ports'] == data_ports, times
    assert times['start_at'] is None and times['started_epoch'] == client['started_epoch']

    served = read(lab, tool, 'receiver', 'server.txt')
    if tool == 'neper':
        docs = neper.documents(served)
        assert len(docs) == 3
        each = [neper.throughput_bps(neper.parse(doc)) for doc in docs]
        assert all(bps > 0 for bps in each), each
        summary = neper.summary(served)
        assert summary['num_flows'] == FLOWS and summary['processes'] == 3, summary
        assert summary['throughput_bps'] == sum(each), (summary, each)
        flows = neper_samples.flow_bytes(read(lab, tool, 'receiver', 'samples.csv'))
        assert len(flows) == FLOWS and all(b > 0 for b in flows.values()), flows
        sent = neper.summary(read(lab, tool, 'sender', 'client.txt'))
        assert sent['processes'] == 3 and sent['num_flows'] == FLOWS, sent
        print('neper, 60 flows in 3 processes, %d s: %.1f Mbit/s (%s)'
              % (DURATION, summary['throughput_bps'] / 1e6,
                 ', '.join('%.1f' % (b / 1e6) for b in each)))
    elif tool == 'iperf3':
        docs = iperf3.parse(served)
        assert len(docs) == 3
        summary = iperf3.summary(served)
        assert summary['streams'] == FLOWS and summary['processes'] == 3, summary
        each = [d['end']['sum_received']['bits_per_second'] for d in docs]
        assert summary['throughput_bps'] == pytest.approx(sum(each)) and min(each) > 0, each
        assert len(iperf3.parse(read(lab, tool, 'sender', 'client.txt'))) == 3
    else:
        assert len(iperf2.documents(served)) == 3
        summary = iperf2.summary(served)
        assert summary['processes'] == 3 and summary['flows'] == FLOWS, summary
        each = [iperf2.summary(doc)['bytes'] for doc in iperf2.documents(served)]
        assert summary['bytes'] == sum(each) and min(each) > 0, each
        sent = iperf2.summary(read(lab, tool, 'sender', 'client.txt'))
        assert sent['processes'] == 3 and sent['flows'] == FLOWS, sent


def test_one_receiver_serves_two_senders_that_start_at_one_instant(lab):
    blocks = [{'port': 13000, 'flows': 12, 'name': 'snd1'}, {'port': 13100, 'flows': 12, 'name': 'snd2'}]
    common = {'tool': 'neper', 'threads': 2, 'duration': DURATION, 'flows_per_process': 5,
              'netns': '{{ netns }}', 'bin_dir': '{{ bin_dir }}'}
    receiver = run_dir(lab, 'servers', 'receiver')
    plays = [
        {'hosts': 'rcv', 'gather_facts': False, 'tasks': [{
            'name': 'start', 'zerodrop.testbed.flow_run': dict(
                common, phase='start', run_dir=receiver, servers=blocks, sysctls=SYSCTLS)}]},
        {'hosts': 'snd1,snd2', 'gather_facts': False, 'tasks': [
            # 3 s, not 2: from this task to the clients' wait took up to 2.3 s with the two
            # cores busy (the runner's forks, the module's snapshots), and a late start fails
            {'name': 'take one start time', 'run_once': True,
             'ansible.builtin.set_fact': {'start_at': '{{ now().timestamp() + 3 }}'}},
            {'name': 'client', 'zerodrop.testbed.flow_run': dict(
                common, phase='client', run_dir=run_dir(lab, 'servers', '{{ inventory_hostname }}'),
                server_address='{{ server_address }}', flows=12,
                port="{{ 13000 if inventory_hostname == 'snd1' else 13100 }}",
                start_at='{{ start_at }}')}]},
        {'hosts': 'rcv', 'gather_facts': False, 'tasks': [{
            'name': 'stop', 'zerodrop.testbed.flow_run': {'phase': 'stop', 'run_dir': receiver}}]},
    ]
    run = run_playbook(json.dumps(plays, indent=1), workdir=str(lab['work']), inventory=lab['inventory'])
    assert run.rc == 0, run
    start = run.result('start')
    assert [(p['port'], p['data_port'], p['flows'], p['name']) for p in start['processes']] == [
        (13000, 13001, 4, 'snd1'), (13002, 13003, 4, 'snd1'), (13004, 13005, 4, 'snd1'),
        (13100, 13101, 4, 'snd2'), (13102, 13103, 4, 'snd2'), (13104, 13105, 4, 'snd2')], start
    clients = run.results('client')
    start_at = float(run.results('take one start time')[0]['ansible_facts']['start_at'])
    for client in clients:
        assert client['status'] == 'ok' and client['exit_codes'] == [0, 0, 0], client
        assert abs(client['started_epoch'] - start_at) < 0.2, (start_at, client)
        assert client['start_late_s'] < 0.2, client
    for name in ('snd1', 'snd2'):
        times = json.loads(read(lab, 'servers', name, 'client_times.json'))
        assert times['start_at'] == pytest.approx(start_at) and times['started_epoch'] > 0, times
    stop = run.result('stop')
    assert stop['status'] == 'ok' and not [f for f in stop['files'] if f.startswith('.')], stop
    # local connection: every phase ran in the controller's process (plugins/action/flow_run.py);
    # a module would have reported its invocation (the guests' SSH runs, tests/integration/test_site.py)
    assert not [r for r in [start, stop] + clients if 'invocation' in r], (start, stop)
    seen = per_port_max(read(lab, 'servers', 'receiver', 'established.txt'))
    assert seen == dict((p['data_port'], 4) for p in start['processes']), seen
    flows = neper_samples.flow_bytes(read(lab, 'servers', 'receiver', 'samples.csv'))
    assert len(flows) == 24 and all(b > 0 for b in flows.values()), flows
    served = neper.summary(read(lab, 'servers', 'receiver', 'server.txt'))
    assert served['processes'] == 6 and served['num_flows'] == 24, served
    print('two senders, start_at spread: %.3f s' % (
        max(c['started_epoch'] for c in clients) - min(c['started_epoch'] for c in clients)))


def test_check_mode_plans_the_start_and_waits_for_nothing(lab):
    plays = [{'hosts': 'snd1', 'gather_facts': False, 'tasks': [{
        'name': 'client', 'zerodrop.testbed.flow_run': {
            'phase': 'client', 'run_dir': run_dir(lab, 'check', 'sender'), 'netns': '{{ netns }}',
            'bin_dir': '{{ bin_dir }}', 'server_address': '{{ server_address }}', 'flows': FLOWS,
            'flows_per_process': PER_PROCESS, 'start_at': '{{ now().timestamp() + 300 }}'}}]}]
    began = time.time()
    run = run_playbook(json.dumps(plays, indent=1), workdir=str(lab['work']),
                       inventory=lab['inventory'], check=True)
    assert run.rc == 0, run
    assert time.time() - began < 60  # it did not wait the 300 s
    client = run.result('client')
    assert client['changed'] and client['started_epoch'] is None, client
    assert client['note'].startswith('would start the client processes at '), client
    assert len(client['commands']) == 3 and len(client['processes']) == 3, client
    assert not os.path.exists(run_dir(lab, 'check'))
