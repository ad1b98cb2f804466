"""Access to the real recorded outputs, and run directories built from them in the layout of
docs/results-layout.md.

Files come from ../shared/recorded next to the clone when it exists (the lab's copy), otherwise
from tests/unit/fixtures/recorded (large files gzipped), so a user's clone runs the same tests.
"""

import gzip
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCES = (os.path.join(ROOT, '..', 'shared', 'recorded'), os.path.join(HERE, 'fixtures', 'recorded'))
FIXTURES = os.path.join(HERE, 'fixtures')


def text(run, name):
    """Content of recorded file ``run/name``."""
    for base in SOURCES:
        path = os.path.join(base, run, name)
        if os.path.exists(path):
            with open(path) as f:
                return f.read()
        if os.path.exists(path + '.gz'):
            with gzip.open(path + '.gz', 'rt') as f:
                return f.read()
    raise FileNotFoundError('recorded file %s/%s in none of %s' % (run, name, SOURCES))


def fixture(*parts):
    with open(os.path.join(FIXTURES, *parts)) as f:
        return f.read()


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(content)


def _established(timeseries):
    """timeseries.txt ``t established [backlog,drops]`` -> established.txt ``t count``."""
    return ''.join('%s %s\n' % tuple(line.split()[:2]) for line in timeseries.splitlines() if line.strip())


# recorded run -> (bottleneck host role, bottleneck device, tool)
LAYOUTS = {
    'd_neper_F4000': ('sender', 'veth-snd', 'neper'),
    'r_neper_F100': ('router', 'veth-rr', 'neper'),
    'r_iperf3_P128': ('router', 'veth-rr', 'iperf3'),
    'r_iperf2_P1000': ('router', 'veth-rr', 'iperf2'),
}


def build_run(results, recorded, mode, variant='default', flows=None, rep=1, status='ok',
              reason=None, experiment='unit'):
    """Write ``results/<mode>/<variant>/<flows>/<rep>/`` from a recorded run; return its path."""
    b_role, b_dev, tool = LAYOUTS[recorded]
    flows = flows or int(recorded.rsplit('_', 1)[1][1:])
    run_dir = os.path.join(results, mode, variant, str(flows), str(rep))
    run = {
        'experiment': experiment, 'mode': mode, 'variant': variant, 'flows': flows, 'rep': rep,
        'params': {'duration': 20, 'threads': 2, 'tool': tool, 'cc': 'cubic', 'ecn': 0,
                   'bottleneck': {'host_role': b_role, 'device': b_dev, 'rate': '100mbit'}},
        'bottleneck_rate_bps': 100000000,
        'hosts': {'sender': 'snd', 'receiver': 'rcv', 'router': 'rtr'},
        'status': status, 'reason': reason,
    }
    _write(os.path.join(run_dir, 'run.json'), json.dumps(run))
    sender = os.path.join(run_dir, 'sender')
    receiver = os.path.join(run_dir, 'receiver')
    _write(os.path.join(sender, 'client.txt'), text(recorded, 'client.txt'))
    _write(os.path.join(sender, 'nstat.txt'), text(recorded, 'nstat_snd.txt'))
    _write(os.path.join(sender, 'established.txt'), _established(text(recorded, 'timeseries.txt')))
    _write(os.path.join(sender, 'mpstat.txt'), text(recorded, 'mpstat.txt'))
    _write(os.path.join(receiver, 'server.txt'), text(recorded, 'server.txt'))
    _write(os.path.join(receiver, 'nstat.txt'), text(recorded, 'nstat_rcv.txt'))
    if tool == 'neper':
        _write(os.path.join(receiver, 'samples.csv'), text(recorded, 'samples.csv'))
    shaper = os.path.join(run_dir, b_role)
    _write(os.path.join(shaper, 'tc_before.json'), text(recorded, 'tc_before.json'))
    _write(os.path.join(shaper, 'tc_after.json'), text(recorded, 'tc_after.json'))
    mid = json.loads(text(recorded, 'tc_mid.json'))
    _write(os.path.join(shaper, 'tc_during.jsonl'), json.dumps({'t': 10.0, 'qdiscs': mid}) + '\n')
    return run_dir


def copy_cpu(run_dir, role='receiver'):
    """Give ``role`` the recorded /proc/stat snapshots."""
    for name in ('cpu_before.txt', 'cpu_after.txt'):
        shutil.copy(os.path.join(FIXTURES, 'cpu', name), os.path.join(run_dir, role, name))


def copy_rtt(run_dir, role='sender'):
    shutil.copy(os.path.join(FIXTURES, 'rtt', 'rtt.txt'), os.path.join(run_dir, role, 'rtt.txt'))
