"""Pure parts of the experiment runner: the run matrix, run.json's status and outcomes, where a
tool is found, ss's connection lines and RTT samples recorded on this machine
(fixtures/experiment/README.md), and the kernels of metadata.json."""

import gzip
import json
import os
import subprocess

import pytest

from ansible_collections.zerodrop.testbed.plugins.modules.experiment_plan import plan
from ansible_collections.zerodrop.testbed.plugins.modules.experiment_record import record
from ansible_collections.zerodrop.testbed.plugins.modules import experiment_metadata, flow_run
from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_probe, pcap_rtt

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'experiment')


def test_plan_is_the_cross_product_in_layout_order():
    runs = plan('s', ['baseline', 'zd'], [100, 1000], 2, {'duration': 20, 'cc': 'cubic'},
                {'qdisc_limit': [100, 1000], 'cc': ['cubic', 'reno']})
    assert len(runs) == 2 * 4 * 2 * 2
    assert [r['index'] for r in runs] == list(range(1, 33))
    assert runs[0]['relpath'] == 'baseline/qdisc_limit=100,cc=cubic/100/1'
    assert runs[1]['relpath'] == 'baseline/qdisc_limit=100,cc=cubic/100/2'
    assert runs[-1]['relpath'] == 'zd/qdisc_limit=1000,cc=reno/1000/2'
    assert runs[-1]['params'] == {'duration': 20, 'cc': 'reno', 'qdisc_limit': 1000, 'flows': 1000}
    assert len(set(r['relpath'] for r in runs)) == 32


def test_plan_makes_numbers_of_command_line_strings():
    runs = plan('s', ['baseline'], [10], 1, {'duration': '20', 'buffer': '1024', 'cc': '1',
                                             'qdisc_limit': '100kb', 'ecn': None},
                {'qdisc_limit': ['100', '2000'], 'threads': ['2']})
    assert runs[0]['params'] == {'duration': 20, 'buffer': 1024, 'cc': '1', 'qdisc_limit': 100,
                                 'ecn': None, 'threads': 2, 'flows': 10}
    assert runs[0]['relpath'] == 'baseline/qdisc_limit=100,threads=2/10/1'


def test_plan_without_sweep_is_default():
    runs = plan('s', ['baseline'], [10], 1, {}, {})
    assert [r['relpath'] for r in runs] == ['baseline/default/10/1']


@pytest.mark.parametrize('kwargs,field', [
    ({'sweep': {'flows': [1, 2]}}, 'sweep.flows'),
    ({'sweep': {'cc': []}}, 'sweep.cc'),
    ({'sweep': {'dev': ['a/b']}}, 'sweep.dev'),
    ({'flows': [0]}, 'flows'),
    ({'modes': []}, 'modes'),
    ({'name': '../x'}, 'name'),
    ({'params': {'duration': 'long'}}, 'params.duration'),
    ({'sweep': {'port': ['5201', 'x']}}, 'sweep.port'),
])
def test_plan_rejects_bad_input_naming_the_field(kwargs, field):
    args = dict(name='s', modes=['baseline'], flows=[10], repetitions=1, params={}, sweep={})
    args.update(kwargs)
    with pytest.raises(ValueError) as e:
        plan(**args)
    assert field in str(e.value)


def test_record_fails_with_every_reason_and_ignores_skipped():
    run = {'mode': 'zd', 'variant': 'default', 'flows': 10, 'rep': 1,
           'params': {'duration': 5, 'rate': '100mbit', 'flows': 10}}
    ok = record('e', run, {'sender': 'a', 'receiver': 'b'}, {}, {
        'sender': [{}, {'skipped': True}, {'status': 'ok', 'reason': None, 'tool_wall_s': 5.2}],
        'receiver': [{'status': 'ok', 'reason': None}]}, [], 100.0, 112.5)
    assert ok['status'] == 'ok' and ok['reason'] is None
    assert ok['bottleneck_rate_bps'] == 100000000 and ok['wall_s'] == 12.5
    assert ok['tool_wall_s'] == 5.2
    assert 'flows' not in ok['params'] and ok['started'] == '1970-01-01T00:01:40Z'
    bad = record('e', run, {}, {}, {
        'receiver': [{'status': 'failed', 'reason': 'server exited rc=1'}],
        'sender': [{'status': 'failed', 'reason': 'client timed out'}]}, ['qdisc: no'], 0, 1)
    assert bad['status'] == 'failed'
    assert bad['reason'] == ('qdisc: no; receiver: server exited rc=1; '
                             'sender: client timed out')


RUN = {'index': 3, 'mode': 'zd', 'variant': 'default', 'flows': 10, 'rep': 1,
       'params': {'duration': 5, 'rate': '100mbit', 'flows': 10}}


def test_record_takes_only_this_runs_outcomes():
    # the receiver's server never started, the client was skipped, and the sender's outcome is
    # the one of run 2 (it failed or was unreachable in run 3): the run fails with both reasons
    data = record('e', RUN, {'sender': 'vm', 'receiver': 'rcv'}, {}, {
        'receiver': {'run': 3, 'errors': [], 'results': [
            {}, {'status': 'failed', 'reason': 'neper server did not start: tcp_stream not found'},
            {'skipped': True}, {'skipped': True}]},
        'sender': {'run': 2, 'errors': [], 'results': [{'status': 'ok', 'reason': None}]}},
        [], 0, 1)
    assert data['status'] == 'failed'
    assert data['reason'] == ('receiver: neper server did not start: tcp_stream not found; '
                              'sender: vm left no outcome of this run: it failed or became '
                              'unreachable before the run ended')


@pytest.mark.parametrize('outcome', [{}, None, 'x', {'run': 3}])
def test_record_without_an_outcome_fails_the_run(outcome):
    data = record('e', RUN, {'sender': 'vm'}, {}, {'sender': outcome}, [], 0, 1)
    assert data['status'] == 'failed' and data['reason'].startswith('sender: vm left no outcome')


def test_record_keeps_errors_notes_and_a_stopped_client_once_per_host():
    # one host plays sender and router: its outcome counts once
    outcome = {'run': '3', 'errors': ['Run the client: boom'], 'results': [
        {'status': 'ok', 'reason': None, 'client_stopped': True, 'wall_s': 26.0,
         'note': 'client still running 3 s after the 20 s test: stopped'},
        {'status': 'failed', 'reason': 'pulling the raw files failed: rsync rc=23'}]}
    data = record('e', RUN, {'sender': 'vm', 'router': 'vm', 'receiver': 'rcv'}, {}, {
        'sender': outcome, 'router': outcome,
        'receiver': {'run': 3, 'errors': [], 'results': [
            {'status': 'ok', 'reason': None, 'note': 'server exit codes 255 after the client was '
                                                     'stopped'}]}},
        [], 0, 1, kernel={'name': 'vm-pfifo'}, zd_branch='vm-pfifo')
    assert data['reason'] == ('router/sender: Run the client: boom; router/sender: pulling the raw '
                              'files failed: rsync rc=23')
    assert data['client_stopped'] is True and data['phase_wall_s'] == {'router/sender': [26.0]}
    assert data['notes'] == ['receiver: server exit codes 255 after the client was stopped',
                             'router/sender: client still running 3 s after the 20 s test: stopped']
    assert data['kernel'] == {'name': 'vm-pfifo'} and data['zd_branch'] == 'vm-pfifo'


def test_record_says_a_reason_once():
    failed = {'status': 'failed', 'reason': 'server exited rc=1: listen() backlog'}
    data = record('e', RUN, {'receiver': 'rcv'}, {}, {
        'receiver': {'run': 3, 'errors': [], 'results': [failed, failed]}}, [], 0, 1)
    assert data['reason'] == 'receiver: server exited rc=1: listen() backlog'


def test_a_tool_is_found_in_bin_dir_only_or_on_the_path_then_in_the_neper_prefix(tmp_path):
    bin_dir, empty, prefix = tmp_path / 'bin', tmp_path / 'empty', tmp_path / 'prefix'
    for directory in (bin_dir, empty, prefix):
        directory.mkdir()
    (bin_dir / 'tcp_stream').write_text('#!/bin/sh\n')
    (bin_dir / 'tcp_stream').chmod(0o755)
    assert flow_probe.find_tool('neper', str(bin_dir)) == (str(bin_dir / 'tcp_stream'),
                                                           {'bin_dir': str(bin_dir)})
    assert flow_probe.find_tool('neper', None, path='%s:%s' % (empty, bin_dir),
                                fallback=[str(prefix)])[0] == str(bin_dir / 'tcp_stream')
    assert flow_probe.find_tool('neper', None, path=str(empty),
                                fallback=[str(bin_dir)])[0] == str(bin_dir / 'tcp_stream')
    assert flow_probe.find_tool('neper', None, path='')[1] == {'path': [],
                                                               'fallback': ['/opt/neper/bin']}
    found, where = flow_probe.find_tool('neper', None, path=str(empty), fallback=[str(prefix)])
    assert found is None and flow_probe.tool_not_found('neper', where) == (
        'tcp_stream not found in PATH (%s) or %s, and bin_dir is not set' % (empty, prefix))
    found, where = flow_probe.find_tool('iperf3', None, path=str(empty))
    assert found is None and flow_probe.tool_not_found('iperf3', where) == (
        'iperf3 not found in PATH (%s), and bin_dir is not set' % empty)
    found, where = flow_probe.find_tool('neper', str(empty))
    assert found is None and flow_probe.tool_not_found('neper', where) == (
        'tcp_stream not found in bin_dir %s (the PATH is not searched when bin_dir is set)' % empty)
    assert 'which does not exist' in flow_probe.tool_not_found(
        'neper', {'bin_dir': str(tmp_path / 'no')})


def test_missing_tool_names_the_side():
    p = {'tool': 'neper', 'binary': None,
         'searched': {'path': ['/usr/bin'], 'fallback': ['/opt/neper/bin']}}
    assert flow_run.missing_tool(p, 'server') == (
        'neper server did not start: tcp_stream not found in PATH (/usr/bin) or /opt/neper/bin, '
        'and bin_dir is not set')
    assert flow_run.missing_tool(dict(p, binary='/usr/bin/tcp_stream'), 'client') is None


def test_connections_of_a_recorded_ss_output():
    # two iperf3 streams and their control connection, from the sender's side
    with open(os.path.join(FIXTURES, 'ss_established_iperf3_P2.txt')) as f:
        count, received, acked, by_port, each = flow_probe.parse_connections(f.read(), [5333])
    assert count == 3 and by_port == {5333: (3, 4, 165 + 496631846 + 489553958)}
    assert each[('10.253.1.1:53462', '10.253.1.2:5333')] == (0, 496631846)
    assert each[('10.253.1.1:53448', '10.253.1.2:5333')] == (4, 165)
    assert acked == 165 + 496631846 + 489553958 and received == 4


def test_the_note_of_a_stopped_client():
    p = {'client_grace': 30.0, 'duration': 20}
    assert flow_run.stopped_note(p, {'t': 49.0, 'established': 997, 'syn_sent': 3}) == (
        'client still running 30.0 s after the 20 s test: stopped (3 socket(s) in SYN-SENT, '
        '997 connection(s) established)')
    assert flow_run.stopped_note(p, None) == 'client still running 30.0 s after the 20 s test: stopped'


TINYCONFIG = os.path.join(os.path.dirname(__file__), 'fixtures', 'kernel_build',
                          'tinyconfig-6.1.192-x86_64.config')


def named_config(tmp_path, name, localversion, extra=''):
    with open(TINYCONFIG) as f:
        text = ''.join(line for line in f if not line.startswith('CONFIG_LOCALVERSION='))
    path = tmp_path / name
    path.write_text(text + 'CONFIG_LOCALVERSION="%s"\n' % localversion + extra)
    return str(path)


def test_metadata_kernels_from_experiment_kernels_and_from_the_senders(tmp_path):
    build = tmp_path / 'metadata.json'
    build.write_text(json.dumps({'kernelrelease': '4.14.67-vm-pfifo', 'config_sha256': 'ab' * 32,
                                 'source': {'commit': 'f00d'}}))
    kernels = {
        'baseline': {'name': 'vanilla', 'preset': 'vanilla', 'commit': 'beef',
                     'config': named_config(tmp_path, 'a.config', '-vanilla')},
        'zd': {'name': 'vm-pfifo', 'preset': 'vm-pfifo', 'metadata_file': str(build),
               'config': named_config(tmp_path, 'b.config', '-vm-pfifo'), 'profile': 'vm'},
    }
    facts = {'vm1': {'kernel': {'release': '6.1.0-50-amd64'}},
             'vm2': {'kernel': {'release': '4.14.67-vm-tbf', 'build': {'commit': 'cafe'}}}}
    data = experiment_metadata.metadata({'experiment': 'e'}, ['baseline', 'zd', 'other'],
                                        {'sender': 'vm1'}, {'other': {'sender': 'vm2'}}, facts,
                                        {}, {}, kernels, ['Baseline only: no zD sources.'])
    zd = data['kernels']['zd']
    assert (zd['branch'], zd['kernelrelease'], zd['commit'], zd['config_sha256']) == (
        'vm-pfifo', '4.14.67-vm-pfifo', 'f00d', 'ab' * 32)
    assert zd['profile'] == 'vm' and zd['source'] == 'experiment_kernels'
    assert zd['localversion'] == '"-vm-pfifo"'
    base = data['kernels']['baseline']
    assert base['branch'] is None and base['commit'] == 'beef'
    assert base['config_sha256_without_localversion'] == zd['config_sha256_without_localversion']
    other = data['kernels']['other']
    assert (other['kernelrelease'], other['commit'], other['branch'], other['source']) == (
        '4.14.67-vm-tbf', 'cafe', 'vm-tbf', "the sender's uname -r")
    assert data['kernel_comparison']['zd']['identical_apart_from_localversion'] is True
    assert data['kernel_comparison']['other'] == {
        'against': 'baseline', 'identical_apart_from_localversion': None, 'differing': None,
        'localversion': None,
        'reason': 'other: no config file given (experiment_kernels.<mode>.config)'}
    # two zD branches: a mode without one is checked against none of them
    assert data['zd_branches'] == {'baseline': None, 'zd': 'vm-pfifo', 'other': 'vm-tbf'}
    assert data['notes'] == ['Baseline only: no zD sources.']


def test_metadata_names_the_hosts_of_a_listed_role_by_their_run_directories():
    facts = {'snd1': {'kernel': {'release': '4.14.67-vm-pfifo'}},
             'snd2': {'kernel': {'release': '4.14.67-vm-pfifo'}},
             'vm0': {'kernel': {'release': '4.14.67-vanilla'}}}
    data = experiment_metadata.metadata({}, ['baseline', 'zd'],
                                        {'sender': ['vm0'], 'receiver': 'rcv'},
                                        {'zd': {'sender': ['snd1', 'snd2']}}, facts, {}, {})
    assert sorted(data['modes']['baseline']['hosts']) == ['receiver', 'sender']
    assert sorted(data['modes']['zd']['hosts']) == ['receiver', 'sender-snd1', 'sender-snd2']
    # the mode's kernel is its first sender's
    assert data['kernels']['baseline']['kernelrelease'] == '4.14.67-vanilla'
    assert (data['kernels']['zd']['kernelrelease'], data['kernels']['zd']['branch']) == (
        '4.14.67-vm-pfifo', 'vm-pfifo')


def test_metadata_config_comparison_lists_what_differs(tmp_path):
    kernels = {'baseline': {'config': named_config(tmp_path, 'a', '-vanilla')},
               'zd': {'preset': 'vm-pfifo',
                      'config': named_config(tmp_path, 'b', '-vm-pfifo', 'CONFIG_NET_CLS=y\n')}}
    data = experiment_metadata.metadata({}, ['baseline', 'zd'], {'sender': 'h'}, {}, {}, {}, {},
                                        kernels)
    assert data['kernel_comparison']['zd']['differing'] == [
        {'symbol': 'CONFIG_NET_CLS', 'a': None, 'b': 'y'}]
    assert data['zd_branches'] == {'baseline': 'vm-pfifo', 'zd': 'vm-pfifo'}


def test_iperf3_error_in_its_json_fails_the_run_even_when_it_exits_0(tmp_path):
    procs = flow_probe.Processes(str(tmp_path), 'client', 1024)
    procs.stderr = ''
    with gzip.open(os.path.join(FIXTURES, 'iperf3_client_stream_error.json.gz'), 'rt') as f:
        procs.stdout = f.read()
    reason = procs.failure([0], allow_stopped=False)
    assert reason.startswith('client stopped the test: unable to write to stream socket: '
                             'Connection timed out (iperf3 ends every stream'), reason
    assert procs.failure([1], allow_stopped=False).startswith('client exited rc=1: unable to')
    with open(os.path.join(FIXTURES, 'fwd_iperf3_F160', 'sender', 'client.txt')) as f:
        procs.stdout = f.read()
    assert procs.failure([0, 0], allow_stopped=False) is None


def handshake_rtts(path):
    """SYN -> SYN/ACK times (ms) as tcpdump itself prints them, for a cross-check."""
    out = subprocess.run(['tcpdump', '-r', path, '-n', '-tt'], capture_output=True,
                         text=True, check=True).stdout
    syn = {}
    found = []
    for line in out.splitlines():
        fields = line.split()
        t, src, dst = float(fields[0]), fields[2], fields[4].rstrip(':')
        if 'Flags [S]' in line:
            syn[(src, dst)] = t
        elif 'Flags [S.]' in line and (dst, src) in syn:
            found.append((t - syn[(dst, src)]) * 1000)
    return found


def test_rtt_samples_from_a_recorded_capture():
    path = os.path.join(FIXTURES, 'iperf3_2flows.pcap')
    samples = pcap_rtt.rtt_samples(path)
    assert len(samples) > 20
    assert all(s >= 0 for s in samples)
    handshakes = handshake_rtts(path)
    assert len(handshakes) == 3  # control connection + 2 streams
    for h in handshakes:
        assert any(abs(s - h) < 0.002 for s in samples), (h, samples[:10])
    # A sender on a 100 Mbit/s bottleneck with a 100 kB fifo: queueing delay of a few ms at most.
    assert max(samples) < 100


def flow_params(**given):
    params = dict(phase='start', role='server', run_dir='/tmp/run', netns=None, tool='neper',
                  bin_dir=None, flows=1, threads=1, duration=10, buffer=None, cc=None,
                  port=12866, server_address=None, server_args=[], client_args=[], devices=[],
                  sample_tc=True, interval=1.0, sysctls={}, nofile=0, server_wait=20,
                  client_grace=30, client_stopped=False, stop_grace=5, capture_device=None)
    params.update(given)
    return params


def test_flow_run_accepts_the_edges_of_every_range():
    assert flow_run.problems_of(flow_params(port=65534, stop_grace=0, interval=0.01)) == []
    assert flow_run.problems_of(flow_params(tool='iperf2', port=65535)) == []
    # 256 iperf3 flows: two processes, ports 65534 and 65535
    assert flow_run.problems_of(flow_params(tool='iperf3', flows=256, port=65534)) == []


def test_flow_run_names_every_number_out_of_range():
    assert flow_run.problems_of(flow_params(
        flows=0, threads=-1, duration=-5, interval=-1, server_wait=0, client_grace=0,
        stop_grace=-0.5, nofile=-1, buffer=0, port=0)) == [
        'flows must be a whole number of at least 1 (got 0)',
        'threads must be a whole number of at least 1 (got -1)',
        'duration must be a whole number of at least 1 (got -5)',
        'interval must be a number of seconds above 0 (got -1)',
        'server_wait must be a number of seconds above 0 (got 0)',
        'client_grace must be a number of seconds above 0 (got 0)',
        'stop_grace must be 0 seconds or more (got -0.5)',
        'nofile must be 0 (the hard limit) or a positive limit (got -1)',
        "buffer must be at least 1 byte, or unset for the tool's default (got 0)",
        'port must be between 1 and 65535 (got 0)']
    assert flow_run.problems_of(flow_params(tool='iperf3', flows=257, port=65534)) == [
        'port 65534 leaves no room: iperf3 with 257 flows uses ports up to 65536, above 65535; '
        'give a lower port']
