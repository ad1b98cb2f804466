"""Harness overhead and bottleneck utilisation of the experiment runner (playbooks/experiment.yml).

Builds the forwarding layout in network namespaces (sender(s) -> router with `tbf rate 100mbit
burst 15000 latency 10ms` + `bfifo limit 100000` on its egress -> receiver), runs an experiment
through ansible-playbook and prints, per run and against the goals:
  overhead = run wall time - the clients' own run time (the longest)
             goal <= 1.5 s per run with one sender, <= 2 s with up to 8 (ratio = overhead / goal)
  throughput / bottleneck rate (100 Mbit/s)  goal >= 0.95         (ratio = fraction / 0.95)
and the cost of one bare module task (ping) at the same moment, since the machine is shared.
--senders N makes N sender namespaces (snd1..sndN, each on its own veth and /24 into the router)
and splits the flows of each run across them (experiment_hosts' list form); the overhead then
includes the synchronized start's delay (experiment_start_delay, applied with several senders).
Needs root. Default: iperf3, 1000 flows, 20 s. iperf3 runs one process per 128 flows, so it
reaches the file-descriptor limit's flow count (19000 for a 20000 hard limit) here without neper:
  python3 bench/experiment_overhead.py --flows 19000 --duration 30 --client-grace 400
(connecting 19000 flows through the congested bottleneck takes about 30 s; the throughput is then
the receiver's sampled bytes while every flow was up, docs/results-layout.md). iperf2's thread
per flow did not get 19000 flows going on 2 cores; neper: `--tool neper --bin-dir DIR`.

  python3 bench/experiment_overhead.py [--tool iperf3] [--flows 1000 ...] [--duration 20]
      [--senders 1] [--layout forwarding|direct] [--client-grace 60] [--keep DIR]
"""

import argparse
import calendar
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOAL_OVERHEAD_S = {1: 1.5, 8: 2.0}
GOAL_FRACTION = 0.95


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True, text=True)


def goal_overhead(senders):
    return GOAL_OVERHEAD_S[1] if senders == 1 else GOAL_OVERHEAD_S[8]


def sender_names(senders):
    return ['snd'] if senders == 1 else ['snd%d' % i for i in range(1, senders + 1)]


def make_lab(tag, senders=1):
    """Namespaces {host: name}: the senders (snd, or snd1..sndN), rtr and rcv; sender i's veth
    vs goes to the router's vr1 (one sender, 10.98.1.0/24) or vr1-<i> (10.98.<10+i>.0/24)."""
    names = {r: 'zb%s-%s' % (r, tag) for r in sender_names(senders) + ['rtr', 'rcv']}
    for ns in names.values():
        sh('ip', 'netns', 'add', ns)
        sh('ip', '-n', ns, 'link', 'set', 'lo', 'up')
    rtr, rcv = names['rtr'], names['rcv']
    sh('ip', '-n', rtr, 'link', 'add', 'vr2', 'type', 'veth', 'peer', 'name', 'vc', 'netns', rcv)
    addresses = [(rtr, 'vr2', '10.98.2.2/24'), (rcv, 'vc', '10.98.2.1/24')]
    for i, host in enumerate(sender_names(senders), start=1):
        net, peer = ('10.98.1', 'vr1') if senders == 1 else ('10.98.%d' % (10 + i), 'vr1-%d' % i)
        sh('ip', '-n', names[host], 'link', 'add', 'vs', 'type', 'veth', 'peer', 'name', peer,
           'netns', rtr)
        addresses += [(names[host], 'vs', net + '.1/24'), (rtr, peer, net + '.2/24')]
    for ns, dev, addr in addresses:
        sh('ip', '-n', ns, 'addr', 'add', addr, 'dev', dev)
        sh('ip', '-n', ns, 'link', 'set', dev, 'up')
    for i, host in enumerate(sender_names(senders), start=1):
        sh('ip', '-n', names[host], 'route', 'add', 'default', 'via',
           '10.98.1.2' if senders == 1 else '10.98.%d.2' % (10 + i))
    sh('ip', '-n', rcv, 'route', 'add', 'default', 'via', '10.98.2.2')
    sh('ip', 'netns', 'exec', rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
    return names


def task_cost(env, inventory, host):
    """Seconds one module task costs on this machine now (ping), from 1- and 6-task playbooks."""
    times = []
    for count in (1, 6):
        play = os.path.join(os.path.dirname(inventory), 'ping%d.yml' % count)
        with open(play, 'w') as f:
            f.write('- hosts: %s\n  gather_facts: false\n  tasks:\n' % host + ''.join(
                '    - {name: ping %d, ansible.builtin.ping: }\n' % i for i in range(count)))
        started = time.time()
        subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), play,
                        '-i', inventory], env=env, capture_output=True, check=True)
        times.append(time.time() - started)
    return (times[1] - times[0]) / 5


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--tool', default='iperf3', choices=['neper', 'iperf3', 'iperf2'])
    ap.add_argument('--flows', type=int, nargs='+', default=[1000])
    ap.add_argument('--duration', type=int, default=20)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--senders', type=int, default=1,
                    help='sender namespaces; the flows of each run are split across them')
    ap.add_argument('--bin-dir', default=None, help='where tcp_stream is (neper)')
    ap.add_argument('--layout', default='forwarding', choices=['forwarding', 'direct'],
                    help='shaper on the router (forwarding) or on the sender itself (direct)')
    ap.add_argument('--client-grace', type=int, default=60,
                    help='seconds the client may take beyond --duration (connecting many flows)')
    ap.add_argument('--profile', action='store_true',
                    help="print each task's time (ansible.posix.profile_tasks) of the playbook")
    ap.add_argument('--keep', metavar='DIR', default=None,
                    help='copy the results directory to DIR before cleaning up')
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit('needs root (network namespaces)')

    if not 1 <= args.senders <= 200:
        sys.exit('--senders: 1 to 200')
    if args.senders > 1 and args.layout == 'direct':
        sys.exit('--senders N > 1 needs --layout forwarding (one bottleneck for all senders)')

    tag = uuid.uuid4().hex[:4]
    work = tempfile.mkdtemp(prefix='zd-bench-')
    senders = sender_names(args.senders)
    names = make_lab(tag, args.senders)
    try:
        inventory = os.path.join(work, 'inventory.yml')
        bin_dir = ', experiment_bin_dir: %s' % args.bin_dir if args.bin_dir else ''
        with open(inventory, 'w') as f:
            f.write('all:\n  vars:\n    ansible_connection: local\n'
                    '    ansible_python_interpreter: "{{ ansible_playbook_python }}"\n  hosts:\n'
                    + ''.join('    %s: {experiment_netns: %s%s}\n' % (host, names[host], bin_dir)
                              for host in senders)
                    + '    rtr: {experiment_netns: %s}\n'
                    '    rcv: {experiment_netns: %s, experiment_data_address: 10.98.2.1%s}\n'
                    % (names['rtr'], names['rcv'], bin_dir))
        extra = {
            'experiment_name': 'bench', 'experiment_tool': args.tool,
            'experiment_flows': args.flows, 'experiment_duration': args.duration,
            'experiment_threads': args.threads,
            'experiment_hosts': {'sender': senders[0] if args.senders == 1 else senders,
                                 'receiver': 'rcv', 'router': 'rtr'},
            'experiment_bottleneck': {
                'host_role': 'router' if args.layout == 'forwarding' else 'sender',
                'device': 'vr2' if args.layout == 'forwarding' else 'vs', 'netns': None,
                'tree': [
                    {'parent': 'root', 'handle': '1:', 'kind': 'tbf',
                     'options': {'rate': '100mbit', 'burst': 15000, 'latency': '10ms'}},
                    {'parent': '1:1', 'handle': '10:', 'kind': 'bfifo',
                     'options': {'limit': 100000}}]},
            'experiment_results_dir': os.path.join(work, 'results'),
            'experiment_report_enabled': False,
            'experiment_client_grace': args.client_grace,
        }
        venv_bin = os.path.dirname(sys.executable)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                   PATH=venv_bin + os.pathsep + os.environ.get('PATH', ''))
        if args.profile:
            env.update(ANSIBLE_CALLBACKS_ENABLED='ansible.posix.profile_tasks',
                       PROFILE_TASKS_TASK_OUTPUT_LIMIT='all', PROFILE_TASKS_SORT_ORDER='none')
        cost = task_cost(env, inventory, senders[0])
        started = time.time()
        proc = subprocess.run([os.path.join(venv_bin, 'ansible-playbook'),
                               os.path.join(ROOT, 'playbooks', 'experiment.yml'),
                               '-i', inventory, '-e', json.dumps(extra)],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        total = time.time() - started
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-2000:])
            sys.exit('ansible-playbook failed (rc=%d)' % proc.returncode)
        if args.profile:
            print(proc.stdout[proc.stdout.rfind('=' * 20):])
        with open('/proc/loadavg') as f:
            load = f.read().split()[0]
        goal = goal_overhead(args.senders)
        print('layout=%s tool=%s senders=%d duration=%ss load=%s playbook_total=%.1fs (incl. plan + '
              'metadata); one module task (ping) costs %.2fs here now'
              % (args.layout, args.tool, args.senders, args.duration, load, total, cost))
        for path in sorted(glob.glob(os.path.join(work, 'results', 'bench', '*', '*', '*', '*',
                                                  '*', 'run.json')),
                           key=lambda p: json.load(open(p))['flows']):
            run = json.load(open(path))
            result_path = os.path.join(os.path.dirname(path), 'result.json')
            result = json.load(open(result_path)) if os.path.exists(result_path) else {}
            # The harness's own time: the run's wall time minus the clients' own run time
            # (iperf2 with many flows takes far longer than -t to connect and finish).
            overhead = run['wall_s'] - (run.get('tool_wall_s') or args.duration)
            fraction = result.get('fraction_of_bottleneck')
            print('flows=%-6d senders=%d status=%s wall=%.1fs client=%ss overhead=%.2fs (=%.1f ping tasks) '
                  'ratio_to_goal(<=%.1fs)=%.2f '
                  'throughput=%s fraction=%s ratio_to_goal(>=0.95)=%s alive=%s aborted=%s '
                  'retrans=%s rto=%s bottleneck_drops=%s local_drops=%s%s'
                  % (run['flows'], args.senders, run['status'], run['wall_s'], run.get('tool_wall_s'),
                     overhead, overhead / cost if cost > 0 else float('nan'), goal, overhead / goal,
                     '%.1fMbit/s' % (result['throughput_bps'] / 1e6)
                     if result.get('throughput_bps') else None,
                     '%.3f' % fraction if fraction is not None else None,
                     '%.2f' % (fraction / GOAL_FRACTION) if fraction is not None else None,
                     result.get('flows_alive'), result.get('flows_aborted'),
                     result.get('retrans_segs'), result.get('rto_count'),
                     result.get('bottleneck_drops'), result.get('local_qdisc_drops'),
                     (' reason=%s' % run['reason']) if run['reason'] else ''))
            if run.get('phase_wall_s'):
                print('  module wall times per host role (start/client, stop): %s'
                      % run['phase_wall_s'])
            for sender in result.get('per_sender') or []:
                print('  sender %s -> %s: flows=%s throughput=%s alive=%s aborted=%s start_offset=%ss'
                      % (sender['sender'], sender['receiver'], sender['flows'],
                         '%.1fMbit/s' % (sender['throughput_bps'] / 1e6)
                         if sender.get('throughput_bps') else None,
                         sender.get('flows_alive'), sender.get('flows_aborted'),
                         sender.get('start_offset_s')))
            if run.get('start_at'):
                # run.json's `started` has whole seconds: the wait is known to about 1 s
                started_epoch = calendar.timegm(time.strptime(run['started'], '%Y-%m-%dT%H:%M:%SZ'))
                print('  synchronized start: start_spread=%ss, the clients start at %.1fs (+-1 s) after '
                      'the run started (bottleneck, servers, then experiment_start_delay: part of '
                      'the overhead)'
                      % (result.get('start_spread_s'), run['start_at'] - started_epoch))
    finally:
        if args.keep and os.path.isdir(os.path.join(work, 'results')):
            shutil.copytree(os.path.join(work, 'results'), args.keep, dirs_exist_ok=True)
        for ns in names.values():
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
