"""Internal ports on a netdev bridge: one ovs_bridge task against a per-port loop of ovs_port.

Baseline "per-port loop": one ovs_port task per port in an Ansible loop, the pattern of the
openvswitch.openvswitch collection (whose openvswitch_port took ~30 s for 64 ports here). Ours:
one zerodrop.testbed.ovs_bridge task with a ports list, one ovs-vsctl transaction.

Starts its own private OVS daemons (root, openvswitch-switch). For each size, runs both ways on
a fresh bridge, first run and idempotent re-run, through ansible-playbook, and prints the task
time (from the ansible.posix.json callback), the whole ansible-playbook time, and the ratios
baseline/ours. Goal: >= 20x on task time at 64 ports, first run and re-run.

    python bench/ovs_ports.py [--sizes 64,256]
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, 'tests')]

from lib.ovs import PrivateOVS  # noqa: E402
from lib.playbook import run_playbook  # noqa: E402

GOAL = 20.0


def playbook(tasks):
    return json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}])


def ours(bridge, ports, database):
    return playbook([{'name': 'ports', 'zerodrop.testbed.ovs_bridge': {
        'name': bridge, 'database': database,
        'ports': [{'name': p, 'type': 'internal'} for p in ports]}}])


def per_port_loop(bridge, ports, database):
    return playbook([{'name': 'ports', 'loop': ports, 'zerodrop.testbed.ovs_port': {
        'bridge': bridge, 'name': '{{ item }}', 'type': 'internal', 'database': database}}])


def task_seconds(run):
    """Duration of the task named 'ports' as the json callback recorded it."""
    for play in run.data['plays']:
        for task in play['tasks']:
            if task['task']['name'] == 'ports':
                d = task['task']['duration']
                start, end = (datetime.datetime.fromisoformat(d[k].replace('Z', '+00:00'))
                              for k in ('start', 'end'))
                return (end - start).total_seconds()
    raise RuntimeError('no task "ports" in the output')


def measure(ovs, workdir, make, size):
    """(task s, playbook s) for the first run and the re-run, on a fresh bridge."""
    tag = uuid.uuid4().hex[:4]
    bridge = 'zkb' + tag
    ports = ['zk%s%d' % (tag, i) for i in range(size)]
    ovs.vsctl('add-br', bridge, '--', 'set', 'bridge', bridge, 'datapath_type=netdev')
    times = []
    try:
        for attempt in ('first', 'rerun'):
            start = time.monotonic()
            run = run_playbook(make(bridge, ports, ovs.database), workdir=workdir)
            wall = time.monotonic() - start
            if run.rc != 0:
                raise RuntimeError('playbook failed: %r' % run)
            if attempt == 'rerun' and run.changed:
                raise RuntimeError('re-run reported a change: %r' % run)
            times.append((task_seconds(run), wall))
        listed = ovs.vsctl('list-ports', bridge).stdout.split()
        if sorted(listed) != sorted(ports):
            raise RuntimeError('bridge has %d ports, expected %d' % (len(listed), size))
    finally:
        ovs.vsctl('--if-exists', 'del-br', bridge, check=False)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--sizes', default='64,256')
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(',')]
    tmp = tempfile.mkdtemp(prefix='zd-bench-ovs-')
    ovs = PrivateOVS(os.path.join(tmp, 'ovs'))
    ovs.start()
    met = True
    try:
        print('%5s %-6s %-15s %9s %11s' % ('ports', 'run', 'way', 'task [s]', 'playbook [s]'))
        for size in sizes:
            base = measure(ovs, tmp, per_port_loop, size)
            mine = measure(ovs, tmp, ours, size)
            for i, attempt in enumerate(('first', 'rerun')):
                for way, times in (('per-port loop', base[i]), ('ovs_bridge', mine[i])):
                    row = (size, attempt, way, times[0], times[1])
                    print('%5d %-6s %-15s %9.2f %11.2f' % row)
                task_ratio = base[i][0] / mine[i][0]
                wall_ratio = base[i][1] / mine[i][1]
                print('%5d %-6s ratio per-port loop/ours: task %.1fx, playbook %.1fx'
                      % (size, attempt, task_ratio, wall_ratio))
                if size == 64 and task_ratio < GOAL:
                    met = False
        print('goal (>= %.0fx on task time at 64 ports, both runs): %s'
              % (GOAL, 'met' if met else 'NOT met'))
    finally:
        ovs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if met else 1


if __name__ == '__main__':
    sys.exit(main())
