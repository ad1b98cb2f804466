"""The main job end to end: site.yml on the local lab (a TCG guest sending to a namespace through
a shaped tap), then the report, then teardown.yml. Asserts on what a reader gets, not only on
exit codes."""

import csv
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(ROOT, 'inventories', 'local', 'hosts.yml')

pytestmark = [pytest.mark.root, pytest.mark.slow]


def run_dirs(results):
    for dirpath, dirnames, filenames in os.walk(results):
        if 'run.json' in filenames:
            yield dirpath


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    results = str(tmp_path_factory.mktemp('results'))
    extra = {'lab_online': False, 'experiment_results_dir': results,
             'experiment_name': 'ci-site'}
    yield results, extra
    subprocess.run([os.path.join(os.path.dirname(os.sys.executable), 'ansible-playbook'),
                    os.path.join(ROOT, 'teardown.yml'), '-i', INVENTORY],
                   cwd=ROOT, capture_output=True, check=False, timeout=900)


def test_site_runs_the_local_lab_and_reports(playbook, lab):
    results, extra = lab
    run = playbook(os.path.join(ROOT, 'site.yml'), inventory=INVENTORY, extra_vars=extra,
                   timeout=3000)
    assert run.rc == 0, run

    report_dirs = [d for d, dummy, files in os.walk(results) if 'report.md' in files]
    assert len(report_dirs) == 1, report_dirs
    top = report_dirs[0]
    report = open(os.path.join(top, 'report.md')).read()
    assert '## Summary' in report
    flows = [32, 128]
    for count in flows:
        assert '| %d | baseline |' % count in report, report[:3000]

    with open(os.path.join(top, 'runs.csv')) as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r['flows']) for r in rows) == flows
    ok = [r for r in rows if r['status'] == 'ok']
    assert ok, rows

    records = [json.load(open(os.path.join(d, 'result.json'))) for d in run_dirs(top)]
    assert len(records) == len(flows)
    for rec in records:
        if rec['status'] != 'ok':
            assert rec['reason'], rec
            assert '| %d | baseline | 0/1 |' % rec['flows'] in report
            continue
        assert rec['throughput_bps'] > 0
        # The shaper on the tap is the bottleneck: the guest cannot send faster than it.
        assert 0 < rec['fraction_of_bottleneck'] <= 1.1, rec['fraction_of_bottleneck']
        assert rec['flows_started'] == rec['flows']
        assert rec['jain_index'] is not None and 0 < rec['jain_index'] <= 1
        for key in ('local_qdisc_drops', 'retrans_segs', 'flows_aborted', 'flows_zero_bytes'):
            assert rec[key] is not None, key
        assert rec['cpu'].get('sender') and rec['cpu'].get('receiver'), rec['cpu']

    meta = json.load(open(os.path.join(top, 'metadata.json')))
    assert 'baseline' in json.dumps(meta)

    plots = [os.path.join(dp, f) for dp, dummy, fs in os.walk(os.path.join(top, 'plots'))
             for f in fs if f.endswith('.png')]
    assert len(plots) >= 5
    for path in plots:
        with open(path, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
        assert os.path.getsize(path) > 10000, path
    html = open(os.path.join(top, 'report.html')).read()
    assert 'plots/' in html and '<table' in html


def test_provisioned_lab_is_not_provisioned_again(playbook, lab):
    results, extra = lab
    again = playbook(os.path.join(ROOT, 'site.yml'), inventory=INVENTORY, extra_vars=extra,
                     tags='hypervisor,guests,receiver', timeout=1800)
    assert again.rc == 0, again
    changed = [(task['task']['name'], host) for task in again.tasks()
               for host, res in task['hosts'].items() if res.get('changed')]
    assert changed == [], changed


def test_teardown_leaves_nothing(playbook, lab):
    run = playbook(os.path.join(ROOT, 'teardown.yml'), inventory=INVENTORY, timeout=900)
    assert run.rc == 0, run
    links = subprocess.run(['ip', '-br', 'link'], capture_output=True, text=True,
                           check=True).stdout
    assert 't-zd-vm1' not in links and 'br-zd' not in links, links
    namespaces = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True,
                                check=True).stdout
    assert 'zd-rcv' not in namespaces
    qemu = subprocess.run(['pgrep', '-f', 'qemu-system.*zd-vm1'], capture_output=True, check=False)
    assert qemu.returncode != 0
