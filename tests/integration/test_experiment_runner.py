"""The experiment runner end to end: real iperf3/iperf2/neper between network namespaces.

Forwarding layout: sender ns -> router ns (tbf 100mbit + bfifo on its egress) -> receiver ns.
Direct layout: tbf + bfifo on the sender's own egress. Hosts are namespaces of this machine
reached with the local connection and the runner's own netns support (`experiment_netns`).
neper is built from ../shared/sources (tests never need GitHub).
"""

import glob
import json
import os
import shutil
import subprocess
import time
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


def forwarding_lab(netns, tmp_path, senders):
    """``senders`` (host names) -> rtr -> rcv: sender i on 10.<x>.<n>.0/24 with the router's
    vr<n> (n = 1 for the first, i + 2 for the others), the receiver on 10.<x>.2.0/24 behind the
    router's vr2; a local-connection inventory. Returns (namespace per host, x, inventory path)."""
    names = dict((host, netns('zsnd')) for host in senders)
    names.update(rtr=netns('zrtr'), rcv=netns('zrcv'))
    x = 100 + uuid.uuid4().int % 100
    for i, host in enumerate(senders):
        n = 1 if i == 0 else i + 2
        link(names[host], 'vs', names['rtr'], 'vr%d' % n, '10.%d.%d.1/24' % (x, n), '10.%d.%d.2/24' % (x, n))
        ip('-n', names[host], 'route', 'add', 'default', 'via', '10.%d.%d.2' % (x, n))
    link(names['rtr'], 'vr2', names['rcv'], 'vc', '10.%d.2.2/24' % x, '10.%d.2.1/24' % x)
    ip('-n', names['rcv'], 'route', 'add', 'default', 'via', '10.%d.2.2' % x)
    subprocess.run(['ip', 'netns', 'exec', names['rtr'], 'sysctl', '-qw', 'net.ipv4.ip_forward=1'],
                   check=True)
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(
        'all:\n'
        '  vars:\n'
        '    ansible_connection: local\n'
        '    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
        '  hosts:\n'
        + ''.join('    %s: {experiment_netns: %s}\n' % (host, names[host]) for host in senders + ['rtr'])
        + '    rcv: {experiment_netns: %s, experiment_data_address: 10.%d.2.1}\n' % (names['rcv'], x))
    return names, x, str(inventory)


@pytest.fixture
def lab(netns, tmp_path):
    """snd -> rtr -> rcv, 10.<x>.1.0/24 and 10.<x>.2.0/24; returns names and an inventory."""
    names, x, inventory = forwarding_lab(netns, tmp_path, ['snd'])
    snd, rtr, rcv = names['snd'], names['rtr'], names['rcv']
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
    return {'snd': snd, 'rtr': rtr, 'rcv': rcv, 'inventory': inventory,
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
        assert max(int(e[2]) for e in est) > 1000000  # bytes received, from tcp_info
        if processes > 1:  # and the count and bytes received of each process's port
            assert all(sum(int(p.split(':')[1]) for p in e[5:]) == int(e[1]) for e in est), est
            assert all(sum(int(p.split(':')[2]) for p in e[5:]) == int(e[2]) for e in est), est
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


@pytest.fixture(scope='module')
def neper(neper_build):
    return neper_build


@pytest.fixture
def pair(netns, tmp_path):
    """snd <-> rcv over one veth (vs 10.<x>.1.1/24 and 10.<x>.9.1/32, vc 10.<x>.1.2/24); the
    receiver has no route back to 10.<x>.9.1, so a SYN from there is answered into nowhere."""
    snd, rcv = netns('zsnd'), netns('zrcv')
    x = 100 + uuid.uuid4().int % 100
    link(snd, 'vs', rcv, 'vc', '10.%d.1.1/24' % x, '10.%d.1.2/24' % x)
    ip('-n', snd, 'addr', 'add', '10.%d.9.1/32' % x, 'dev', 'vs')
    return {'snd': snd, 'rcv': rcv, 'a': '10.%d.1.1' % x, 'unanswered': '10.%d.9.1' % x,
            'server': '10.%d.1.2' % x, 'results': str(tmp_path / 'results'), 'tmp': tmp_path}


def pair_inventory(pair, neper_dir, sender_vars=''):
    empty = pair['tmp'] / 'no-tools'
    empty.mkdir(exist_ok=True)
    inventory = pair['tmp'] / 'inventory.yml'
    inventory.write_text(
        'all:\n'
        '  vars:\n'
        '    ansible_connection: local\n'
        '    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
        '  hosts:\n'
        '    snd: {experiment_netns: %s, experiment_bin_dir: %s%s}\n'
        '    rcv: {experiment_netns: %s, experiment_data_address: %s, experiment_bin_dir: %s}\n'
        '    rcv-no-tools: {experiment_netns: %s, experiment_data_address: %s,'
        ' experiment_bin_dir: %s}\n'
        '    gone: {ansible_connection: ssh, ansible_host: 127.0.0.1, ansible_port: 1}\n'
        % (pair['snd'], neper_dir, sender_vars, pair['rcv'], pair['server'], neper_dir,
           pair['rcv'], pair['server'], empty))
    return str(inventory), str(empty)


def records_of(results, name):
    found = {}
    for path in glob.glob(os.path.join(results, name, '*', '*', '*', '*', '*', 'run.json')):
        run_dir = os.path.dirname(path)
        key = os.path.relpath(run_dir, glob.glob(os.path.join(results, name, '*'))[0])
        with open(path) as f:
            run = json.load(f)
        result = None
        if os.path.exists(os.path.join(run_dir, 'result.json')):
            with open(os.path.join(run_dir, 'result.json')) as f:
                result = json.load(f)
        found[key] = (run, result, run_dir)
    return found


def test_a_run_whose_server_tool_is_missing_fails_and_the_next_runs(pair, neper, playbook):
    # Issue 10: the receiver's tool was not found, its server never started, every client was
    # skipped, and the sender (not on the controller: its files are pulled) left no outcome.
    # The broken mode also has an observer that cannot be reached at all.
    remote = pair['tmp'] / 'remote'
    inventory, empty = pair_inventory(
        pair, neper, ', experiment_on_controller: false, experiment_remote_dir: %s' % remote)
    run = playbook(PLAYBOOK, inventory=inventory, extra_vars={
        'experiment_name': 'missing',
        'experiment_modes': ['broken', 'fine'],
        'experiment_hosts': {'sender': 'snd', 'receiver': 'rcv'},
        'experiment_mode_hosts': {'broken': {'receiver': 'rcv-no-tools', 'observer': 'gone'}},
        'experiment_flows': [4],
        'experiment_threads': 1,
        'experiment_duration': 2,
        'experiment_bottleneck_enabled': False,
        # neper's --listen-backlog 65535 must not exceed it (a new namespace has 4096)
        'experiment_sysctls': {'net.core.somaxconn': 65535},
        'experiment_results_dir': pair['results'],
    })
    assert run.rc == 4, run  # ansible-playbook's code for an unreachable host
    assert set(host for _task, host, _msg in run.failures()) == {'gone'}, run
    records = records_of(pair['results'], 'missing')
    assert sorted(records) == ['broken/default/4/1', 'fine/default/4/1'], records
    broken, _result, broken_dir = records['broken/default/4/1']
    assert broken['status'] == 'failed'
    assert broken['reason'] == ('observer: gone left no outcome of this run: it failed or became '
                                'unreachable before the run ended; receiver: neper server did not '
                                'start: tcp_stream not found in bin_dir %s (the PATH is not '
                                'searched when bin_dir is set)' % empty), broken
    assert not os.path.exists(os.path.join(broken_dir, 'sender'))
    fine, result, fine_dir = records['fine/default/4/1']
    assert fine['status'] == 'ok' and fine['reason'] is None, fine
    assert os.path.getsize(os.path.join(fine_dir, 'sender', 'client.txt')) > 0  # pulled
    assert result['status'] == 'ok' and result['flows_started'] == 4, result
    assert result['flows_connected'] == 4 and result['client_stopped'] is False, result
    report = run.result('zerodrop.testbed.experiment : Write the report')
    assert [r['reason'][:40] for r in report['failed_runs']] == [broken['reason'][:40]]


def test_a_neper_client_waiting_on_a_stalled_connect_is_stopped_and_recorded(pair, neper,
                                                                             playbook):
    # tcp_stream connects its flows one by one and starts its test when all are up. Flows bound
    # to an address the receiver cannot answer stay in SYN-SENT: with blocking connects (the
    # default) the client waits, and is stopped grace seconds after the test; with
    # --async-connect it runs its test with the others.
    inventory, _empty = pair_inventory(pair, neper)
    local_hosts = ','.join([pair['a']] * 3 + [pair['unanswered']])
    run = playbook(PLAYBOOK, inventory=inventory, extra_vars={
        'experiment_name': 'stall',
        'experiment_hosts': {'sender': 'snd', 'receiver': 'rcv'},
        'experiment_flows': [8],
        'experiment_threads': 1,
        'experiment_duration': 3,
        'experiment_client_grace': 3,
        'experiment_sweep': {'connect': ['blocking', 'async']},
        'experiment_client_args': "{{ ['-L', '%s'] + (['--async-connect'] if "
                                  "experiment_run.params.connect | default('') == 'async' else []) }}"
                                  % local_hosts,
        'experiment_bottleneck_enabled': False,
        # neper's --listen-backlog 65535 must not exceed it (a new namespace has 4096)
        'experiment_sysctls': {'net.core.somaxconn': 65535},
        'experiment_results_dir': pair['results'],
    })
    assert run.rc == 0, run
    records = records_of(pair['results'], 'stall')
    blocking, result, run_dir = records['baseline/connect=blocking/8/1']
    assert blocking['status'] == 'ok' and blocking['client_stopped'] is True, blocking
    assert any('client still running 3.0 s after the 3 s test: stopped (1 socket(s) in SYN-SENT, '
               '3 connection(s) established)' in n for n in blocking['notes']), blocking
    with open(os.path.join(run_dir, 'sender', 'client_times.json')) as f:
        assert 6 <= json.load(f)['stopped_s'] < 9
    assert result['status'] == 'ok' and result['client_stopped'] is True, result
    # flows 0-2 connected, flow 3 waited in SYN-SENT, 4-7 were never tried; no data moved
    assert result['flows_connected'] == 3 and result['flows_stalled_connect'] == 1, result
    assert result['connect_attempts'] == 5  # the control connection, 3 flows, the stalled one
    assert result['syn_retrans'] >= 2 and result['connect_failures'] == 0, result
    assert result['flows_started'] == 3 and result['flows_zero_bytes'] == 3, result
    assert result['throughput_source'] == 'sampled' and result['throughput_bps'] == 0, result
    assert result['problems'] == [], result

    asynchronous, result, run_dir = records['baseline/connect=async/8/1']
    assert asynchronous['status'] == 'ok' and asynchronous['client_stopped'] is False
    # flows 3 and 7 are bound to the unanswered address; the other six ran the test
    assert result['flows_connected'] == 6 and result['flows_stalled_connect'] == 2, result
    assert result['flows_started'] == 6 and result['flows_zero_bytes'] == 0, result
    assert result['throughput_source'] == 'tool' and result['throughput_bps'] > 1e6, result
    assert result['syn_retrans'] >= 2, result


# Stands in for rsync on the controller: fails the pulls it is told to (as rsync does when its
# ssh to a wedged guest times out: the real messages, exit 255), then runs the real rsync.
RSYNC_SHIM = r"""#!/bin/sh
count=$(cat "$ZT_RSYNC_STATE" 2>/dev/null || echo 0)
echo $((count + 1)) > "$ZT_RSYNC_STATE"
if [ "$count" -lt "$ZT_RSYNC_FAILURES" ]; then
    echo "ssh: connect to host snd port 22: Connection timed out" >&2
    echo "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]" >&2
    echo "rsync error: unexplained error (code 255) at io.c(231) [Receiver=3.2.7]" >&2
    exit 255
fi
exec %s "$@"
"""


@pytest.mark.parametrize('failures', [1, 2])
def test_a_sender_whose_files_could_not_be_pulled_is_recovered(pair, neper, playbook, failures):
    # experiment_recover_tasks (pull.yml): the first pull of the sender's files fails; the
    # recovery task file runs on that host and the pull is tried once more. One failure: the run
    # is ok, noted as recovered, the files are there. Two: the run failed, naming the pull.
    remote = pair['tmp'] / 'remote'
    inventory, _empty = pair_inventory(
        pair, neper, ', experiment_on_controller: false, experiment_remote_dir: %s' % remote)
    shim = pair['tmp'] / 'shim'
    shim.mkdir()
    (shim / 'rsync').write_text(RSYNC_SHIM % shutil.which('rsync'))
    (shim / 'rsync').chmod(0o755)
    recovered = pair['tmp'] / 'recovered'
    recover = pair['tmp'] / 'recover.yml'
    recover.write_text('- name: Reset the host (the test leaves a mark instead)\n'
                       '  ansible.builtin.copy:\n'
                       '    content: "{{ inventory_hostname }}"\n'
                       '    dest: %s\n' % recovered)
    run = playbook(PLAYBOOK, inventory=inventory, env={
        'PATH': '%s:%s' % (shim, os.environ['PATH']),
        'ZT_RSYNC_STATE': str(pair['tmp'] / 'rsync-calls'), 'ZT_RSYNC_FAILURES': str(failures),
    }, extra_vars={
        'experiment_name': 'recover',
        'experiment_hosts': {'sender': 'snd', 'receiver': 'rcv'},
        'experiment_flows': [4],
        'experiment_threads': 1,
        'experiment_duration': 2,
        'experiment_recover_tasks': str(recover),
        'experiment_bottleneck_enabled': False,
        'experiment_sysctls': {'net.core.somaxconn': 65535},
        'experiment_results_dir': pair['results'],
    })
    assert run.rc == 0, run
    assert recovered.read_text() == 'snd'
    assert (pair['tmp'] / 'rsync-calls').read_text().strip() == '2'  # the pull and the one after
    (record, result, run_dir) = records_of(pair['results'], 'recover')['baseline/default/4/1']
    if failures == 1:
        assert record['status'] == 'ok' and record['reason'] is None, record
        assert any(note.startswith('sender: unreachable after the run (rsync: connection unexpectedly '
                                   'closed (0 bytes received so far) [Receiver]); recovered with '
                                   'recover.yml, files pulled after it') for note in record['notes']), record
        assert os.path.getsize(os.path.join(run_dir, 'sender', 'client.txt')) > 0
        assert result['status'] == 'ok' and result['flows_connected'] == 4, result
    else:
        assert record['status'] == 'failed', record
        assert 'sender: pulling the raw files failed' in record['reason'], record
        assert not os.path.exists(os.path.join(run_dir, 'sender', 'client.txt'))


TINYCONFIG = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'kernel_build',
                          'tinyconfig-6.1.192-x86_64.config')


def config_named(path, localversion):
    """The recorded tinyconfig under another CONFIG_LOCALVERSION (a kernel's name)."""
    with open(TINYCONFIG) as f:
        lines = [line for line in f if not line.startswith('CONFIG_LOCALVERSION=')]
    path.write_text(''.join(lines) + 'CONFIG_LOCALVERSION="%s"\n' % localversion)
    return str(path)


def test_the_layout_guard_and_the_report_of_a_comparison(pair, neper, playbook):
    # Both modes send from the host's own kernel; experiment_kernels says the zd mode runs
    # vm-pfifo, so every run must have vm-pfifo's layout: a root pfifo whose limit equals the
    # sender's txqueuelen (100). The pfifo tree has it but a veth never queues (the queue
    # never fills); the tbf tree fills its queue but is not vm-pfifo's layout.
    ip('-n', pair['snd'], 'link', 'set', 'vs', 'txqueuelen', '100')
    inventory, _empty = pair_inventory(pair, neper)
    pfifo = [{'parent': 'root', 'handle': '1:', 'kind': 'pfifo', 'options': {'limit': 100}}]
    tbf = [{'parent': 'root', 'handle': '2:', 'kind': 'tbf',
            'options': {'rate': '20mbit', 'burst': 32000, 'latency': '50ms'}}]
    kernels = {
        'baseline': {'name': 'vanilla', 'preset': 'vanilla', 'kernelrelease': '4.14.67-vanilla',
                     'config': config_named(pair['tmp'] / 'vanilla.config', '-vanilla')},
        'zd': {'name': 'vm-pfifo', 'preset': 'vm-pfifo', 'kernelrelease': '4.14.67-vm-pfifo',
               'commit': 'c0ffee', 'config': config_named(pair['tmp'] / 'zd.config', '-vm-pfifo')},
    }
    run = playbook(PLAYBOOK, inventory=inventory, extra_vars={
        'experiment_name': 'guard',
        'experiment_modes': ['baseline', 'zd'],
        'experiment_hosts': {'sender': 'snd', 'receiver': 'rcv'},
        'experiment_flows': [8],
        'experiment_duration': 3,
        'experiment_sweep': {'tree': ['pfifo', 'tbf']},
        'experiment_bottleneck': {
            'host_role': 'sender', 'device': 'vs', 'netns': None,
            'tree': "{{ %s if experiment_run.params.tree | default('pfifo') == 'pfifo' else %s }}"
                    % (json.dumps(pfifo), json.dumps(tbf))},
        'experiment_kernels': kernels,
        'experiment_notes': ['Both modes run the host kernel here: the zd label exercises the '
                             'guard, not zD.'],
        'experiment_sysctls': {'net.core.somaxconn': 65535},
        'experiment_results_dir': pair['results'],
    })
    assert run.rc == 0, run
    records = records_of(pair['results'], 'guard')
    assert len(records) == 4, records
    for name, (record, result, _run_dir) in records.items():
        assert record['status'] == 'ok', record
        assert record['zd_branch'] == 'vm-pfifo' and result['zd_branch'] == 'vm-pfifo'
        assert record['kernel']['kernelrelease'] == '4.14.67-%s' % (
            'vm-pfifo' if name.startswith('zd') else 'vanilla')
        if '/tree=pfifo/' in name:
            assert result['layout_check']['ok'] is True, result['layout_check']
            assert result['queue_check']['filled'] is False, result['queue_check']
            assert result['not_comparable'] == [
                "not comparable: the sender's queue never filled (max backlog 0 of limit 100 "
                "packets)"], result
        else:
            assert result['layout_check']['found'] == 'root tbf 2:', result['layout_check']
            assert result['queue_check']['filled'] is True, result['queue_check']
            assert result['queue_check']['unit'] == 'bytes', result['queue_check']
            assert result['not_comparable'] == [
                "not comparable: the bottleneck tree cannot engage zD's vm-pfifo branch: vm-pfifo "
                "pushes back only at a root pfifo whose limit equals the txqueuelen of vs (100): "
                "found root tbf 2:"], result

    top = glob.glob(os.path.join(pair['results'], 'guard', '*'))[0]
    with open(os.path.join(top, 'metadata.json')) as f:
        meta = json.load(f)
    assert meta['zd_branches'] == {'baseline': 'vm-pfifo', 'zd': 'vm-pfifo'}
    assert meta['kernels']['zd']['branch'] == 'vm-pfifo' and meta['kernels']['zd']['commit'] == 'c0ffee'
    assert meta['kernels']['baseline']['branch'] is None
    assert meta['kernels']['zd']['localversion'] == '"-vm-pfifo"'
    assert (meta['kernels']['zd']['config_sha256_without_localversion']
            == meta['kernels']['baseline']['config_sha256_without_localversion'])
    assert meta['kernel_comparison']['zd']['identical_apart_from_localversion'] is True
    assert meta['modes']['zd']['hosts']['sender']['devices']['vs']['txqueuelen'] == 100
    assert meta['modes']['zd']['hosts']['sender']['tool_paths']['neper'] == os.path.join(
        neper, 'tcp_stream')

    with open(os.path.join(top, 'report.md')) as f:
        md = f.read()
    lines = md.splitlines()
    assert lines[0] == '# Experiment report: guard'
    assert lines[2].startswith('Both modes run the host kernel here'), lines[:4]
    assert [line for line in lines if line.startswith('## ')][0] == \
        '## Effect of zd against baseline'
    effect = md.split('## Effect of zd against baseline')[1].split('\n## ')[0]
    pfifo_table = effect.split('Variant tree=pfifo')[1].split('Variant tree=tbf')[0]
    assert '| 8 | runs ok/failed | 1/0 (flagged: a) | 1/0 (flagged: b) |  |' in pfifo_table, effect
    assert 'b: zd, 8 flows, variant tree=pfifo, rep 1: not comparable: the sender\'s queue ' \
           'never filled (max backlog 0 of limit 100 packets)' in effect, effect
    assert '| baseline | vanilla | — | 4.14.67-vanilla |' in effect, effect
    assert '| zd | vm-pfifo | vm-pfifo | 4.14.67-vm-pfifo | c0ffee |' in effect, effect
    assert 'Configs of baseline and zd identical apart from LOCALVERSION: yes.' in effect
    flagged = md.split('## Flagged runs')[1].split('\n## ')[0]
    assert flagged.count('not comparable') == 4, flagged


def test_two_senders_share_one_receiver_and_start_together(netns, tmp_path, playbook):
    # snd1 and snd2 -> rtr (tbf + bfifo on its egress to the receiver) -> rcv: experiment_flows
    # is the total (7 = 4 + 3), each sender its own block of iperf3 server ports on the one
    # receiver, one start_at for both clients, a record per sender and Jain over all 7 flows.
    _names, _x, inventory = forwarding_lab(netns, tmp_path, ['snd1', 'snd2'])
    results = str(tmp_path / 'results')
    run = playbook(PLAYBOOK, inventory=inventory, extra_vars={
        'experiment_name': 'two',
        'experiment_hosts': {'sender': ['snd1', 'snd2'], 'receiver': 'rcv', 'router': 'rtr'},
        'experiment_tool': 'iperf3',
        'experiment_flows': [7],
        'experiment_duration': 3,
        'experiment_flows_per_process': 2,
        'experiment_start_delay': 4,
        'experiment_bottleneck': {'host_role': 'router', 'device': 'vr2', 'netns': None, 'tree': [
            {'parent': 'root', 'handle': '1:', 'kind': 'tbf',
             'options': {'rate': '100mbit', 'burst': 15000, 'latency': '10ms'}},
            {'parent': '1:1', 'handle': '10:', 'kind': 'bfifo', 'options': {'limit': 100000}}]},
        'experiment_results_dir': results,
    })
    assert run.rc == 0, run
    records = records_of(results, 'two')
    assert list(records) == ['baseline/default/7/1'], records
    record, result, run_dir = records['baseline/default/7/1']
    assert record['status'] == 'ok', record
    assert record['hosts'] == {'sender': ['snd1', 'snd2'], 'receiver': ['rcv'], 'router': ['rtr']}
    # 4 flows at 2 a process: ports 5201-5202 for snd1, then snd2's 3 flows on 5203-5204
    assert [(p['sender'], p['receiver'], p['flows'], p['port'], p['sender_dir'], p['receiver_dir'])
            for p in record['pairs']] == [('snd1', 'rcv', 4, 5201, 'sender-snd1', 'receiver'),
                                          ('snd2', 'rcv', 3, 5203, 'sender-snd2', 'receiver')]
    assert sorted(os.listdir(run_dir)) == ['receiver', 'result.json', 'router', 'run.json',
                                           'sender-snd1', 'sender-snd2']
    start_at = record['start_at']
    assert start_at is not None and record['started'] <= time.strftime(
        '%Y-%m-%dT%H:%M:%SZ', time.gmtime(start_at))
    for sender in ('snd1', 'snd2'):
        with open(os.path.join(run_dir, 'sender-' + sender, 'client_times.json')) as f:
            times = json.load(f)
        assert times['start_at'] == start_at and times['started_epoch'] >= start_at - 0.01, times
        assert set(record['clock_offsets'][sender]) == {'offset_s', 'uncertainty_s'}
    assert result['status'] == 'ok' and result['flows'] == 7 and result['flows_started'] == 7, result
    assert result['flows_zero_bytes'] == 0 and result['jain_index'] is not None
    assert [(s['sender'], s['dir'], s['flows'], s['flows_alive']) for s in result['per_sender']] == [
        ('snd1', 'sender-snd1', 4, 4), ('snd2', 'sender-snd2', 3, 3)], result['per_sender']
    assert all(s['throughput_bps'] > 0 and s['start_offset_s'] is not None for s in result['per_sender'])
    assert sum(s['throughput_bps'] for s in result['per_sender']) == pytest.approx(
        result['throughput_bps'], rel=0.2)
    assert result['start_spread_s'] is not None and result['start_spread_s'] < 0.5, result
    with open(glob.glob(os.path.join(results, 'two', '*', 'metadata.json'))[0]) as f:
        meta = json.load(f)
    assert sorted(meta['modes']['baseline']['hosts']) == ['receiver', 'router', 'sender-snd1', 'sender-snd2']
    assert meta['kernels']['baseline']['kernelrelease'] == os.uname().release
    assert sorted(meta['clock_offsets']) == ['rcv', 'rtr', 'snd1', 'snd2']
    assert all(o['uncertainty_s'] >= 0 and abs(o['offset_s']) <= o['uncertainty_s'] + 0.05
               for o in meta['clock_offsets'].values()), meta['clock_offsets']  # one clock here
    with open(glob.glob(os.path.join(results, 'two', '*', 'report.md'))[0]) as f:
        report = f.read()
    assert '## Per sender' in report and '| baseline | default | 7 | 1 | snd2 | rcv | 3 |' in report
