"""Scale bench: 4 senders x 10,000 neper flows = 40,000 flows through one bottleneck, 20 s.

Runs playbooks/netns_lab.yml with the many-sender layout (netns_lab_senders=4, one receiver):
four sender namespaces -> the router, whose egress towards the receiver carries the seed tree
(`tbf rate 100mbit burst 15000 latency 10ms` + `bfifo limit 100000`) -> one receiver namespace,
which serves each sender's 10,000 flows with neper server processes of their own (more than one
process: 40,000 flows exceed the 20,000 file limit of one). neper is the real tcp_stream, built
from the archive in ../shared/sources (or --bin-dir). The clients connect with
--async-connect (--blocking-connect: neper's default), so that the 40,000 flows send at once:
a neper client connects its flows one after the other and sends nothing until all are
connected, and with the bottleneck already full of the other senders' data its SYNs are lost
and retried for up to a minute (measured: two of four senders sent nothing during the run's
window). Prints, against the goals:
  every flow recorded: flows started / connected / alive of the run = 40,000
  goodput / bottleneck rate   goal >= 0.95 (ratio = fraction / 0.95): result.json's figure and
    the receiver's sampled bytes over the stretch in which every flow was up, each sender's
    share of it (the bytes the receiver took in on its ports over that stretch), and the
    ceiling that headers set: 1448 bytes of payload in each 1514-byte frame the tbf counts
    (MTU 1500, TCP timestamps), 0.956 of its rate
  aborted flows (TcpExtTCPAbortOnTimeout) and flows that delivered zero bytes
  the harness's own cost: ansible-playbook and everything it starts that is not a tool process
    (Ansible's workers, modules, the detached flow_run supervisors and samplers, ip/tc/ss):
    peak RSS, the sum over those processes of VmRSS sampled from /proc every --sample-interval
    seconds (pages shared by Ansible's forked workers count in each: the sum of their PSS, which
    divides shared pages among their sharers, and the largest single process are printed too), and CPU seconds, getrusage(RUSAGE_CHILDREN) of
    this script (made a child subreaper, so that the detached supervisors are reaped here and
    counted) minus the CPU of the tool processes (tcp_stream, iperf3, iperf: utime + stime of
    each, the last /proc sample before it exited, so up to one interval per process is missed).
Needs root and the whole machine (the sender, router and receiver all share its CPUs).

  python3 bench/flow_scale.py [--senders 4] [--flows-per-sender 10000] [--duration 20]
      [--bin-dir DIR] [--client-grace 600] [--qdisc-limit 100000] [--probe-interval 1]
      [--blocking-connect] [--client-arg ARG ...] [--keep DIR]
"""

import argparse
import ctypes
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = os.path.join(os.path.dirname(ROOT), 'shared', 'sources')
GOAL_FRACTION = 0.95
# TCP payload per Ethernet frame at MTU 1500 with timestamps, as the tbf counts frames (14 + 1500)
HEADER_CEILING = 1448.0 / 1514
TOOLS = ('tcp_stream', 'iperf3', 'iperf')
PR_SET_CHILD_SUBREAPER = 36
TICK = os.sysconf('SC_CLK_TCK')
PAGE = os.sysconf('SC_PAGE_SIZE')


def build_neper(work):
    """tcp_stream built from the newest neper archive of ../shared/sources; its directory."""
    archives = sorted(glob.glob(os.path.join(SOURCES, 'neper-*.tar.gz')))
    if not archives:
        sys.exit('no neper archive in %s: give --bin-dir' % os.path.normpath(SOURCES))
    subprocess.run(['tar', 'xzf', archives[-1], '-C', work], check=True)
    top = os.path.join(work, 'neper')
    subprocess.run(['make', '-C', top, 'tcp_stream'], check=True, capture_output=True)
    return top


class Sampler(object):
    """Samples /proc: the processes below `root` (this script), split into tool processes and
    the harness (all others but this script)."""

    def __init__(self, interval):
        self.interval = interval
        self.tool_cpu = {}        # pid -> last utime + stime seen, in seconds
        self.peak_rss = 0         # bytes, sum over the harness processes at one sample
        self.peak_pss = 0         # the same with shared pages divided among their sharers
        self.peak_rss_one = (0, '')
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    @staticmethod
    def processes():
        """{pid: (ppid, comm, cpu seconds, rss bytes)} of every process readable now."""
        found = {}
        for name in os.listdir('/proc'):
            if not name.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % name) as f:
                    stat = f.read()
                with open('/proc/%s/statm' % name) as f:
                    rss = int(f.read().split()[1]) * PAGE
            except (OSError, IndexError, ValueError):
                continue
            comm = stat[stat.index('(') + 1:stat.rindex(')')]
            fields = stat[stat.rindex(')') + 2:].split()
            found[int(name)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / TICK, rss)
        return found

    @staticmethod
    def pss(pid):
        try:
            with open('/proc/%d/smaps_rollup' % pid) as f:
                for line in f:
                    if line.startswith('Pss:'):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return 0

    def sample(self):
        procs = self.processes()
        children = {}
        for pid, info in procs.items():
            children.setdefault(info[0], []).append(pid)
        below, todo = [], list(children.get(os.getpid(), []))
        while todo:
            pid = todo.pop()
            below.append(pid)
            todo.extend(children.get(pid, []))
        rss = pss = 0
        for pid in below:
            dummy, comm, cpu, size = procs[pid]
            if comm in TOOLS:
                self.tool_cpu[pid] = max(cpu, self.tool_cpu.get(pid, 0.0))
            else:
                rss += size
                pss += self.pss(pid)
                if size > self.peak_rss_one[0]:
                    self.peak_rss_one = (size, comm)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        self.samples += 1

    def loop(self):
        while not self.stop.is_set():
            started = time.time()
            self.sample()
            self.stop.wait(max(0.0, self.interval - (time.time() - started)))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def reap_orphans(timeout):
    """Wait for the descendants that were reparented to this script (the detached supervisors)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            pid, dummy = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            time.sleep(0.2)
    return False


def cpu_of(usage):
    return usage.ru_utime + usage.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--senders', type=int, default=4)
    ap.add_argument('--flows-per-sender', type=int, default=10000)
    ap.add_argument('--duration', type=int, default=20)
    ap.add_argument('--threads', type=int, default=2, help='neper threads per process')
    ap.add_argument('--bin-dir', default=None, help='where tcp_stream is (default: build it)')
    ap.add_argument('--client-grace', type=int, default=600,
                    help='seconds the clients may take beyond --duration (connecting the flows)')
    ap.add_argument('--sample-interval', type=float, default=0.1,
                    help="seconds between samples of the harness's own memory and CPU")
    ap.add_argument('--probe-interval', type=float, default=1.0,
                    help='experiment_sample_interval: seconds between the hosts\' samples of '
                         'qdiscs and connections (one sock_diag dump of every flow\'s socket each)')
    ap.add_argument('--qdisc-limit', type=int, default=100000,
                    help="bytes of the bottleneck's bfifo (default: the seed's 100000)")
    ap.add_argument('--blocking-connect', action='store_true',
                    help="neper's default: each client connects its flows one after the other "
                         "and sends once all are connected (without it: --async-connect)")
    ap.add_argument('--client-arg', dest='client_args', action='append', default=[],
                    metavar='ARG', help='experiment_client_args: one more argument for every '
                    'neper client (repeat the option for several)')
    ap.add_argument('--keep', metavar='DIR', default=None,
                    help='copy the results directory to DIR before cleaning up')
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit('needs root (network namespaces)')
    if not 2 <= args.senders <= 253:
        sys.exit('--senders: 2 to 253 (the many-sender layout of the namespace lab)')

    work = tempfile.mkdtemp(prefix='zd-flowscale-')
    prefix = 'zf%s-' % uuid.uuid4().hex[:4]
    bin_dir = args.bin_dir or build_neper(work)
    flows = args.senders * args.flows_per_sender
    results = os.path.join(work, 'results')
    venv_bin = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               PATH=venv_bin + os.pathsep + os.environ.get('PATH', ''))
    extra = {
        'netns_lab_prefix': prefix, 'netns_lab_senders': args.senders, 'netns_lab_receivers': 1,
        'netns_lab_run': ['forwarding'], 'netns_lab_name': 'flowscale',
        'netns_lab_layouts': {'forwarding': {
            'tool': 'neper',
            'bottleneck': {'host_role': 'router', 'device': 'to-rcv', 'netns': None,
                           'tree': '{{ netns_lab_tree }}'}}},
        'experiment_bin_dir': bin_dir,
        'experiment_flows': [flows], 'experiment_duration': args.duration,
        'experiment_threads': args.threads, 'experiment_repetitions': 1,
        'experiment_client_grace': args.client_grace,
        'experiment_sample_interval': args.probe_interval,
        'experiment_client_args': ([] if args.blocking_connect else ['--async-connect']) + args.client_args,
        'experiment_qdisc_limit': args.qdisc_limit,
        # neper listens with a backlog of 65535, which must not exceed somaxconn (4096 in a new
        # namespace); the SYN backlog lets the flows' SYNs wait instead of being dropped.
        'experiment_sysctls': {'net.core.somaxconn': 65535, 'net.ipv4.tcp_max_syn_backlog': 65535},
        'experiment_results_dir': results,
    }
    playbook = os.path.join(ROOT, 'playbooks', 'netns_lab.yml')
    inventory = os.path.join(ROOT, 'inventories', 'netns')
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit('prctl(PR_SET_CHILD_SUBREAPER): %s' % os.strerror(ctypes.get_errno()))
    try:
        before = cpu_of(resource.getrusage(resource.RUSAGE_CHILDREN))
        started = time.time()
        with Sampler(args.sample_interval) as sampler:
            proc = subprocess.run([os.path.join(venv_bin, 'ansible-playbook'), playbook,
                                   '-i', inventory, '-e', json.dumps(extra)],
                                  cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            total = time.time() - started
            reaped = reap_orphans(60)
        harness_cpu = (cpu_of(resource.getrusage(resource.RUSAGE_CHILDREN)) - before
                       - sum(sampler.tool_cpu.values()))
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-2000:])
            sys.exit('ansible-playbook failed (rc=%d)' % proc.returncode)
        with open('/proc/loadavg') as f:
            load = f.read().split()[0]
        paths = glob.glob(os.path.join(results, 'flowscale-forwarding', '*', '*', '*', '*', '*',
                                       'result.json'))
        if len(paths) != 1:
            sys.exit('expected one result.json under %s, found %d' % (results, len(paths)))
        result = json.load(open(paths[0]))
        run = json.load(open(os.path.join(os.path.dirname(paths[0]), 'run.json')))
        fraction = result.get('fraction_of_bottleneck')
        print('senders=%d flows=%d (%d a sender) tool=neper duration=%ss bottleneck=tbf 100mbit + '
              'bfifo %d B on the router; load=%s playbook_total=%.1fs (build, run, report) '
              'run_wall=%.1fs client=%ss'
              % (args.senders, flows, args.flows_per_sender, args.duration, args.qdisc_limit, load, total,
                 run['wall_s'], run.get('tool_wall_s')))
        print('status=%s%s flows_started=%s flows_connected=%s flows_alive=%s (of %d) '
              'throughput_source=%s'
              % (result['status'], (' reason=%s' % result['reason']) if result.get('reason') else '',
                 result.get('flows_started'), result.get('flows_connected'),
                 result.get('flows_alive'), flows, result.get('throughput_source')))
        print('goodput=%s fraction_of_bottleneck=%s ratio_to_goal(>=0.95)=%s (result.json, source %s)'
              % ('%.1fMbit/s' % (result['throughput_bps'] / 1e6) if result.get('throughput_bps')
                 else None, '%.3f' % fraction if fraction is not None else None,
                 '%.2f' % (fraction / GOAL_FRACTION) if fraction is not None else None,
                 result.get('throughput_source')))
        # The receiver's per-flow samples over the stretch in which every flow was up: the
        # figure that does not depend on the neper processes' own (staggered) test windows.
        sampled = result.get('throughput_sampled') or {}
        if sampled.get('bps'):
            rate = result.get('bottleneck_rate_bps') or run.get('bottleneck_rate_bps')
            print('sampled goodput=%.1fMbit/s over %.1fs with %s connections up: fraction_of_bottleneck=%.3f '
                  'ratio_to_goal(>=0.95)=%.2f'
                  % (sampled['bps'] / 1e6, sampled.get('window_s') or 0, sampled.get('connections'),
                     sampled['bps'] / rate, sampled['bps'] / rate / GOAL_FRACTION))
            print('header ceiling=%.3f of the bottleneck (1448 of 1514 bytes): sampled goodput / ceiling=%.3f'
                  % (HEADER_CEILING, sampled['bps'] / rate / HEADER_CEILING))
            shares = [e.get('throughput_bps') for e in result.get('per_sender') or []]
            if shares and None not in shares:
                print('senders\' shares of it: %s (sum %.1fMbit/s)'
                      % (' '.join('%.1f' % (v / 1e6) for v in shares), sum(shares) / 1e6))
        for problem in result.get('problems') or []:
            print('result.json problem: %s' % problem)
        for note in result.get('notes') or []:
            print('result.json note: %s' % note)
        recorded = result.get('flow_bytes') or {}
        if recorded.get('total_bytes') and run.get('tool_wall_s'):
            # every byte the flows delivered over the clients' whole run (connecting included):
            # a floor that needs no overlap of the processes' own test windows
            rate = result.get('bottleneck_rate_bps') or run.get('bottleneck_rate_bps')
            average = recorded['total_bytes'] * 8.0 / run['tool_wall_s']
            print('average goodput over the clients\' %.1fs=%.1fMbit/s fraction_of_bottleneck=%.3f'
                  % (run['tool_wall_s'], average / 1e6, average / rate))
        print('flows_aborted=%s flows_zero_bytes=%s flows_stalled_connect=%s connect_failures=%s '
              'retrans=%s rto=%s bottleneck_drops=%s jain=%s start_spread=%ss'
              % (result.get('flows_aborted'), result.get('flows_zero_bytes'),
                 result.get('flows_stalled_connect'), result.get('connect_failures'),
                 result.get('retrans_segs'), result.get('rto_count'),
                 result.get('bottleneck_drops'), result.get('jain_index'),
                 result.get('start_spread_s')))
        print('flows recorded with their bytes=%s (of %d): total %s bytes, median %s, min %s, max %s'
              % (recorded.get('flows'), flows, recorded.get('total_bytes'),
                 recorded.get('median_bytes'), recorded.get('min_bytes'), recorded.get('max_bytes')))
        for receiver in result.get('receivers') or []:
            server = result['per_host'].get(receiver, {}).get('server') or {}
            print('%s: neper server processes=%s' % (receiver, server.get('processes')))
        for sender in result.get('per_sender') or []:
            print('  sender %s -> %s: flows=%s throughput=%s alive=%s aborted=%s zero_bytes=%s '
                  'start_offset=%ss'
                  % (sender['sender'], sender['receiver'], sender['flows'],
                     '%.1fMbit/s' % (sender['throughput_bps'] / 1e6)
                     if sender.get('throughput_bps') else None, sender.get('flows_alive'),
                     sender.get('flows_aborted'), sender.get('flows_zero_bytes'),
                     sender.get('start_offset_s')))
        print('harness (ansible-playbook and its non-tool descendants): peak RSS %.0f MiB (sum, '
              'PSS %.0f MiB; %d samples every %.1fs; largest single process %.0f MiB, %s), CPU %.1f s '
              '(user+sys; the tool processes took %.1f s, %d of them)%s'
              % (sampler.peak_rss / 2 ** 20, sampler.peak_pss / 2 ** 20, sampler.samples,
                 args.sample_interval,
                 sampler.peak_rss_one[0] / 2 ** 20, sampler.peak_rss_one[1], harness_cpu,
                 sum(sampler.tool_cpu.values()), len(sampler.tool_cpu),
                 '' if reaped else '; a detached process was still running after 60 s, its CPU '
                 'is not counted'))
    finally:
        subprocess.run([os.path.join(venv_bin, 'ansible-playbook'), playbook, '-i', inventory,
                        '--tags', 'teardown', '-e', json.dumps({'netns_lab_prefix': prefix})],
                       cwd=ROOT, env=env, capture_output=True, check=False)
        if args.keep and os.path.isdir(results):
            shutil.copytree(results, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
