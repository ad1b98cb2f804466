"""The report over a synthetic results tree made of real recorded runs: two modes, two flow
counts, two repetitions each, and one failed run."""

import csv
import io
import json
import os
import shutil

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import report

import recorded

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('results'))
    for rep in (1, 2):
        recorded.build_run(root, 'r_neper_F100', 'baseline', flows=100, rep=rep)
        recorded.build_run(root, 'd_neper_F4000', 'baseline', flows=4000, rep=rep)
        recorded.build_run(root, 'r_neper_F100', 'zd', flows=100, rep=rep)
    recorded.build_run(root, 'r_iperf3_P128', 'zd', flows=4000, rep=1)
    recorded.build_run(root, 'r_iperf2_P1000', 'zd', flows=4000, rep=2)
    recorded.build_run(root, 'r_neper_F100', 'zd', flows=4000, rep=3, status='failed',
                       reason='client rc=1: socket: Too many open files')
    recorded.copy_rtt(os.path.join(root, 'zd', 'default', '100', '1'))
    metadata = {'experiment': 'unit', 'collection': {'version': '0.1.0', 'commit': 'abc123'},
                'modes': {'baseline': {'hosts': {'sender': {'kernel_release': '4.14.67'}}},
                          'zd': {'hosts': {'sender': {'kernel_release': '4.14.67-zd'}}}}}
    with open(os.path.join(root, 'metadata.json'), 'w') as f:
        json.dump(metadata, f)
    assert report.main([root]) == 0
    return root


def _read(tree, name):
    with open(os.path.join(tree, name)) as f:
        return f.read()


def test_summary_table_rows_and_ratio(tree):
    md = _read(tree, 'report.md').split('## Summary')[1]
    rows = [line for line in md.splitlines() if line.startswith('| 4000 |')]
    assert [r.split('|')[2].strip() for r in rows] == ['baseline', 'zd', 'zd/baseline']
    baseline, zd, ratio = [[c.strip() for c in r.split('|')[1:-1]] for r in rows]
    assert baseline[2] == '2/0' and zd[2] == '2/1'  # runs ok/failed
    assert 'ran several iperf3 processes' not in md  # every throughput is the tools' own
    assert baseline[3] == '95.6 ± 0.0'  # Mbit/s
    assert baseline[5] == '3735 ± 0' and zd[5] == '0 ± 0'  # aborted flows
    assert ratio[5] == '0.00×'  # aborted flows zd/baseline
    # zd at 4000: the iperf3 run (server's sum_received) and the iperf2 run (263 MBytes in 28.0072 s)
    zd_mean = (94084098.17171067 + 263 * 1024 ** 2 * 8 / 28.0072) / 2
    assert ratio[3] == '%.2f×' % (zd_mean / 95627304)
    assert zd[3] == '%.1f ± %.1f' % (zd_mean / 1e6, abs(94084098.17171067 - 263 * 1024 ** 2 * 8 / 28.0072) / 2 ** 0.5 / 1e6)
    # no ratio where the baseline has no figure (local drops not captured in the forwarding runs)
    row100 = [r for r in md.splitlines() if r.startswith('| 100 | zd/baseline')][0]
    cells = [c.strip() for c in row100.split('|')[1:-1]]
    header = [c.strip() for c in md.splitlines()[2].split('|')[1:-1]]
    assert header[10] == 'Sender-side qdisc drops' and cells[10] == '—'


def test_failed_run_listed_not_averaged(tree):
    md = _read(tree, 'report.md')
    failed = md.split('## Failed runs')[1].split('##')[0]
    assert '| zd | default | 4000 | 3 | client rc=1: socket: Too many open files | zd/default/4000/3 |' in failed
    with open(os.path.join(tree, 'runs.csv')) as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 9
    assert sum(1 for r in runs if r['status'] == 'failed') == 1


def test_runs_csv_columns(tree):
    header = _read(tree, 'runs.csv').splitlines()[0].split(',')
    for column in ('status', 'reason', 'mode', 'variant', 'flows', 'rep', 'throughput_bps',
                   'fraction_of_bottleneck', 'flows_aborted', 'flows_zero_bytes', 'jain_index',
                   'retrans_segs', 'rto_count', 'local_qdisc_drops', 'ecn_marks', 'connect_failures',
                   'cpu.sender.busy', 'rtt_ms.p99', 'run_dir'):
        assert column in header
    rows = list(csv.DictReader(io.StringIO(_read(tree, 'runs.csv'))))
    direct = [r for r in rows if r['mode'] == 'baseline' and r['flows'] == '4000']
    assert [r['flows_aborted'] for r in direct] == ['3735', '3735']


def test_plots_written_and_referenced(tree):
    plots = os.path.join(tree, 'plots', 'default')
    names = sorted(os.listdir(plots))
    for name in ('throughput.png', 'fraction_of_bottleneck.png', 'flows_aborted.png',
                 'flows_zero_bytes.png', 'jain_index.png', 'retrans_segs.png', 'local_qdisc_drops.png',
                 'cpu.png', 'rtt.png'):
        assert name in names
    assert 'ecn_marks.png' not in names  # no RED anywhere: no empty plot
    html = _read(tree, 'report.html')
    for name in names:
        with open(os.path.join(plots, name), 'rb') as f:
            data = f.read()
        assert data.startswith(PNG_MAGIC) and len(data) > 10000
        assert 'src="plots/default/%s"' % name in html
    import matplotlib.image
    assert matplotlib.image.imread(os.path.join(plots, 'throughput.png')).shape[0] >= 300


def test_metadata_side_by_side_and_self_contained_html(tree):
    md = _read(tree, 'report.md')
    assert '| kernel_release | 4.14.67 | 4.14.67-zd |' in md
    html = _read(tree, 'report.html')
    assert '<script' not in html and 'http' not in html.replace('http-equiv', '')


def test_second_run_changes_nothing(tree):
    files, _results = report.build(tree)
    assert report.write(tree, files, check=True) == []


def test_sampled_throughput_is_said_and_in_runs_csv(tmp_path):
    # 160 flows = two iperf3 processes (fixtures/experiment/fwd_iperf3_F160, a 6 s test)
    root = str(tmp_path / 'results')
    shutil.copytree(os.path.join(recorded.FIXTURES, 'experiment', 'fwd_iperf3_F160'),
                    os.path.join(root, 'baseline', 'default', '160', '1'))
    assert report.main([root]) == 0
    md = _read(root, 'report.md')
    assert ('1 of the successful runs ran several iperf3 processes (on one host, or one per sender)' in md
            and '(5.0-5.0 s of tests of 6 s;' in md), md
    rows = list(csv.DictReader(io.StringIO(_read(root, 'runs.csv'))))
    assert rows[0]['throughput_source'] == 'sampled' and rows[0]['throughput_window_s'] == '5.001'


KERNELS = {
    'kernels': {
        'baseline': {'name': 'vanilla', 'preset': 'vanilla', 'branch': None,
                     'kernelrelease': '4.14.67-vanilla', 'commit': '0123456789abcdef',
                     'config_sha256': 'a' * 64, 'config_sha256_without_localversion': 'c' * 64,
                     'source': 'experiment_kernels'},
        'zd': {'name': 'vm-pfifo', 'preset': 'vm-pfifo', 'branch': 'vm-pfifo',
               'kernelrelease': '4.14.67-vm-pfifo', 'commit': 'fedcba9876543210',
               'config_sha256': 'b' * 64, 'config_sha256_without_localversion': 'd' * 64,
               'source': 'experiment_kernels'}},
    'kernel_comparison': {'zd': {'against': 'baseline', 'identical_apart_from_localversion': False,
                                 'differing': [{'symbol': 'CONFIG_NET_CLS', 'a': None, 'b': 'y'}],
                                 'localversion': ['"-vanilla"', '"-vm-pfifo"'], 'reason': None}},
    'zd_branches': {'baseline': 'vm-pfifo', 'zd': 'vm-pfifo'},
}


@pytest.fixture(scope='module')
def comparison(tmp_path_factory):
    """baseline: the recorded direct layout twice; zd: the recorded forwarding run, the neper
    run whose client was stopped and the direct pfifo run whose queue never filled."""
    root = str(tmp_path_factory.mktemp('comparison'))
    for rep in (1, 2):
        recorded.build_run(root, 'd_neper_F4000', 'baseline', flows=4000, rep=rep)
    recorded.build_run(root, 'r_neper_F100', 'zd', flows=4000, rep=1)
    stalled = os.path.join(root, 'zd', 'default', '4000', '2')
    shutil.copytree(os.path.join(recorded.FIXTURES, 'experiment', 'neper_stall_F8', 'blocking'),
                    stalled)
    idle = os.path.join(root, 'zd', 'default', '4000', '3')
    shutil.copytree(os.path.join(recorded.FIXTURES, 'layout', 'direct_pfifo_sender'),
                    os.path.join(idle, 'sender'))
    for run_dir, rep, extra in ((stalled, 2, {}), (idle, 3, {'zd_branch': 'vm-pfifo'})):
        path = os.path.join(run_dir, 'run.json')
        run = {}
        if os.path.exists(path):
            with open(path) as f:
                run = json.load(f)
        run.update({'mode': 'zd', 'variant': 'default', 'flows': 4000, 'rep': rep,
                    'status': 'ok', 'reason': None}, **extra)
        with open(path, 'w') as f:
            json.dump(run, f)
    metadata = dict(KERNELS, experiment='cmp', notes=['Guests under QEMU TCG, 1 vCPU each.'])
    with open(os.path.join(root, 'metadata.json'), 'w') as f:
        json.dump(metadata, f)
    files, results = report.build(root)
    return files['report.md'].decode('utf-8'), results


def test_the_report_leads_with_notes_and_the_zd_effect(comparison):
    md, _results = comparison
    lines = md.splitlines()
    assert lines[:3] == ['# Experiment report: cmp', '', 'Guests under QEMU TCG, 1 vCPU each.']
    assert [line for line in lines if line.startswith('## ')][:2] == [
        '## Effect of zd against baseline', '## Summary, variant default']
    assert '5 runs: 5 ok, 0 failed, 2 flagged.' in md


def effect_table(md):
    section = md.split('## Effect of zd against baseline')[1].split('\n## ')[0]
    rows = [[c.strip() for c in line.split('|')[1:-1]] for line in section.splitlines()
            if line.startswith('| 4000 |')]
    return section, dict((row[1], row[2:]) for row in rows)


def test_zd_effect_table_side_by_side_with_ratios_and_flags(comparison):
    md, _results = comparison
    section, rows = effect_table(md)
    assert list(rows) == ['runs ok/failed', 'Sender-side qdisc drops', 'Throughput (Mbit/s)',
                          'Fraction of bottleneck rate',
                          'Failed connections (TcpAttemptFails: SYN timeouts, refused)',
                          'Flows stalled in SYN-SENT at the end', 'RTOs (TcpExtTCPTimeouts)',
                          'Retransmitted segments (TcpRetransSegs)', 'Zero-byte flows',
                          'Flows aborted (TcpExtTCPAbortOnTimeout)', "Jain's fairness index"]
    assert rows['runs ok/failed'] == ['2/0', '3/0 (flagged: a, b)', '']
    # the stopped client's run and the idle pfifo run dropped nothing at the sender; the
    # forwarding run recorded no sender qdisc
    assert rows['Sender-side qdisc drops'] == ['273997 ± 0', '0 ± 0', '0.00×']
    assert rows['Flows aborted (TcpExtTCPAbortOnTimeout)'] == ['3735 ± 0', '0 ± 0', '0.00×']
    assert rows['Flows stalled in SYN-SENT at the end'] == ['—', '1', '—']
    assert ('a: zd, 4000 flows, variant default, rep 2: receiver: server exit codes 255 after '
            'the client was stopped; sender: client still running 3.0 s after the 3 s test: '
            'stopped (1 socket(s) in SYN-SENT, 3 connection(s) established)' in section), section
    assert ("b: zd, 4000 flows, variant default, rep 3: not comparable: the sender's queue never "
            "filled (max backlog 0 of limit 100 packets)" in section), section


def test_zd_effect_section_names_the_kernels(comparison):
    md, _results = comparison
    section, _rows = effect_table(md)
    assert ('| baseline | vanilla | — | 4.14.67-vanilla | 0123456789ab | aaaaaaaaaaaa | '
            'cccccccccccc | experiment_kernels |') in section
    assert '| zd | vm-pfifo | vm-pfifo | 4.14.67-vm-pfifo | fedcba987654 |' in section
    assert ('Configs of baseline and zd identical apart from LOCALVERSION: no, 1 symbol(s) '
            'differ: CONFIG_NET_CLS (baseline not set, zd y).') in section


def test_flagged_runs_are_listed_and_in_runs_csv(comparison):
    md, results = comparison
    flagged = md.split('## Flagged runs')[1].split('\n## ')[0]
    assert '| a | zd | default | 4000 | 2 |' in flagged and '| b | zd | default | 4000 | 3 |' in flagged
    rows = list(csv.DictReader(io.StringIO(report.runs_csv(results))))
    stopped = [r for r in rows if r['rep'] == '2' and r['mode'] == 'zd'][0]
    assert stopped['client_stopped'] == 'True' and stopped['flows_connected'] == '3'
    idle = [r for r in rows if r['rep'] == '3'][0]
    assert idle['not_comparable'].startswith("not comparable: the sender's queue never filled")


def test_a_baseline_only_report_says_so_first(tmp_path):
    root = str(tmp_path / 'results')
    recorded.build_run(root, 'r_neper_F100', 'baseline')
    with open(os.path.join(root, 'metadata.json'), 'w') as f:
        json.dump({'experiment': 'local', 'notes': [
            'Baseline only: the zD kernel and neper sources could not be reached.']}, f)
    md = report.build(root)[0]['report.md'].decode('utf-8')
    assert md.splitlines()[:3] == ['# Experiment report: local (baseline only)', '',
                                   'Baseline only: the zD kernel and neper sources could not be '
                                   'reached.']
    assert '## Effect of' not in md
    os.unlink(os.path.join(root, 'metadata.json'))
    md = report.build(root)[0]['report.md'].decode('utf-8')
    assert md.splitlines()[2] == ('Baseline only: no other mode ran, and no reason was recorded '
                                  '(experiment_notes).')


def test_old_records_keep_their_connection_failures():
    flat = report.flatten({'status': 'ok', 'conn_failures': 4})
    assert flat['connect_failures'] == 4
    assert report.flatten({'status': 'ok', 'connect_failures': 2})['connect_failures'] == 2


def test_no_per_sender_table_with_one_sender(tree):
    assert '## Per sender' not in _read(tree, 'report.md')


def test_the_per_sender_section_names_senders_that_sent_nothing(tmp_path):
    # the recorded 40,000-flow run with neper's blocking connects: snd3 and snd4 were still
    # connecting while snd1 and snd2 sent; their shares are 0 and the section says so
    root = str(tmp_path / 'results')
    shutil.copytree(os.path.join(os.path.dirname(__file__), 'fixtures', 'experiment', 'four_senders_neper_F40000'),
                    os.path.join(root, 'baseline', 'default', '40000', '1'))
    files, _results = report.build(root)
    section = files['report.md'].decode().split('## Per sender\n', 1)[1].split('\n## ', 1)[0]
    rows = [line.split(' | ') for line in section.splitlines() if line.startswith('| baseline')]
    assert [(row[4], row[7]) for row in rows] == [('snd1', '46.8'), ('snd2', '48.1'),
                                                  ('snd3', '0.0'), ('snd4', '0.0')]
    assert ('Senders with connections up that sent nothing during the window of their run\'s '
            'throughput, which is then the other senders\' (runs.csv, notes): '
            'baseline/default/40000/1: snd3, snd4.') in section


def test_per_sender_table_for_a_run_with_two_senders(tmp_path):
    # the real two-sender run of test_experiment_runner beside a one-sender run
    root = str(tmp_path / 'results')
    shutil.copytree(os.path.join(os.path.dirname(__file__), 'fixtures', 'experiment', 'two_senders_iperf3_F7'),
                    os.path.join(root, 'baseline', 'default', '7', '1'))
    recorded.build_run(root, 'r_neper_F100', 'baseline', flows=100, rep=1)
    files, _results = report.build(root)
    md = files['report.md'].decode()
    section = md.split('## Per sender\n', 1)[1].split('\n## ', 1)[0]
    assert 'Start spread per run: baseline/default/7/1: 0.040 s.' in section
    rows = [line for line in section.splitlines() if line.startswith('| baseline')]
    assert [row.split(' | ')[4:7] for row in rows] == [['snd1', 'rcv', '4'], ['snd2', 'rcv', '3']]
    assert rows[0].split(' | ')[7] == '52.3' and rows[1].split(' | ')[7] == '43.3'
    assert rows[1].rstrip(' |').endswith('| 0.040')
    # the aggregate summary keeps one row per flow count and mode, the run's own figures
    summary = md.split('## Summary, variant default\n', 1)[1].split('\n## ', 1)[0]
    assert '| 7 | baseline | 1/0 | 94.9 |' in summary
