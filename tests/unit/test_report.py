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
    md = _read(tree, 'report.md')
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
    header = [c.strip() for c in md.split('## Summary')[1].splitlines()[2].split('|')[1:-1]]
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
                   'retrans_segs', 'rto_count', 'local_qdisc_drops', 'ecn_marks', 'conn_failures',
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
    assert ('1 of the successful runs ran several iperf3 processes (128 flows each)' in md
            and '(5.0-5.0 s of tests of 6 s;' in md), md
    rows = list(csv.DictReader(io.StringIO(_read(root, 'runs.csv'))))
    assert rows[0]['throughput_source'] == 'sampled' and rows[0]['throughput_window_s'] == '5.001'
