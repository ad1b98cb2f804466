# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one host does during one experiment run, shared by the ``flow_run`` module.

The raw files follow docs/results-layout.md. Commands run through a module-less Runner
(``Runner(None)``): the server side and the samplers run in a detached supervisor process (or a
thread) that outlives the module, where ``AnsibleModule.run_command`` must not be called. The
sysctls of a run are set by the module itself, with module_utils/sysctl_live.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import resource
import signal
import threading
import time

from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_split
from ansible_collections.zerodrop.testbed.plugins.module_utils import sock_diag
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner

TOOLS = ('neper', 'iperf3', 'iperf2')
DEFAULT_PORTS = {'neper': 12866, 'iperf3': 5201, 'iperf2': 5001}
BINARIES = {'neper': 'tcp_stream', 'iperf3': 'iperf3', 'iperf2': 'iperf'}
# Searched after the PATH when no bin_dir is given: where the collection's neper role installs
# (its neper_prefix, /opt/neper, + bin).
FALLBACK_DIRS = {'neper': ('/opt/neper/bin',)}


class ProbeError(Exception):
    pass


def run(argv, netns=None, env=None, timeout=60):
    """Run a short read-only command; returns (rc, stdout, stderr)."""
    result = Runner(None, netns=netns, env=env).run(argv, check_rc=False, timeout=timeout)
    return result.rc, result.stdout, result.stderr


def write(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.rename(tmp, path)


def write_json(path, data):
    write(path, json.dumps(data, indent=1, sort_keys=True) + '\n')


# ---- snapshots -------------------------------------------------------------------------------

def nstat_history(run_dir):
    return os.path.join(run_dir, '.nstat_history')


def nstat_reset(run_dir, netns):
    rc, out, err = run(['nstat', '-n'], netns, env={'NSTAT_HISTORY': nstat_history(run_dir)})
    if rc != 0:
        raise ProbeError('nstat -n failed: %s' % err.strip())


def nstat_read(run_dir, netns):
    # Increments since nstat_reset (`-a` would print absolute counters), zeros included.
    rc, out, err = run(['nstat', '-z'], netns, env={'NSTAT_HISTORY': nstat_history(run_dir)})
    write(os.path.join(run_dir, 'nstat.txt'), out if rc == 0 else '')


def tc_qdiscs(netns, devices):
    """``tc -s -j qdisc show`` for every device (or only ``devices``) as one list."""
    found = []
    for dev in devices or [None]:
        argv = ['tc', '-s', '-j', 'qdisc', 'show'] + (['dev', dev] if dev else [])
        rc, out, err = run(argv, netns)
        if rc == 0 and out.strip():
            found.extend(json.loads(out))
    return found


def tc_snapshot(run_dir, name, netns, devices):
    write_json(os.path.join(run_dir, name), tc_qdiscs(netns, devices))


def cpu_snapshot(run_dir, name):
    with open('/proc/stat') as f:
        lines = [line for line in f if line.startswith('cpu')]
    write(os.path.join(run_dir, name), ''.join(lines))


def _ss_established(netns, ports, options):
    argv = ['ss', options, 'state', 'established']
    if ports:
        terms = []
        for port in ports:
            terms += ['sport', '=', ':%d' % port, 'or', 'dport', '=', ':%d' % port, 'or']
        argv += ['('] + terms[:-1] + [')']
    rc, out, err = run(argv, netns)
    return out if rc == 0 else None


def _diag(netns, state, ports, reader):
    """sock_diag's sockets (see sock_diag.dump), from ``reader`` or a socket opened for this
    call; None when sock_diag cannot be used (then ss is)."""
    own = reader is None
    reader = reader or sock_diag.Reader(netns)
    try:
        return reader.dump(state, ports)
    except (OSError, sock_diag.Unavailable):
        return None
    finally:
        if own:
            reader.close()


def established(netns, ports, reader=None):
    """How many established TCP connections touch one of ``ports`` (all when empty)."""
    sockets = _diag(netns, 'established', ports, reader)
    if sockets is not None:
        return len(sockets)
    out = _ss_established(netns, ports, '-Htn')
    return None if out is None else out.count('\n')


_SS_BYTES = re.compile(r'\bbytes_(received|acked):(\d+)')


def _port(address):
    port = address.rsplit(':', 1)[-1]
    return int(port) if port.isdigit() else None


def parse_ss(out):
    """``ss -HtniO state established`` output -> ``[(local, peer, bytes received, bytes
    acked)]`` (tcp_info, one line per socket with -O)."""
    sockets = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mine = {'received': 0, 'acked': 0}
        for name, value in _SS_BYTES.findall(line):
            mine[name] = int(value)
        sockets.append((fields[2], fields[3], mine['received'], mine['acked']))
    return sockets


def summarize_connections(sockets, ports):
    """``[(local, peer, received, acked)]`` -> ``(count, bytes received, bytes acked,
    {port: (count, bytes received, bytes acked)}, {(local, peer): (bytes received, bytes
    acked)})``: the bytes summed over the connections, the count and bytes split by which of
    ``ports`` they touch, and each connection's own bytes."""
    totals = {'received': 0, 'acked': 0}
    by_port = dict((port, [0, 0, 0]) for port in ports)
    each = {}
    for local, peer, received, acked in sockets:
        totals['received'] += received
        totals['acked'] += acked
        each[(local, peer)] = (received, acked)
        local_port, peer_port = _port(local), _port(peer)
        port = local_port if local_port in by_port else peer_port
        if port in by_port:
            sums = by_port[port]
            sums[0] += 1
            sums[1] += received
            sums[2] += acked
    by_port = dict((port, tuple(sums)) for port, sums in by_port.items())
    return len(sockets), totals['received'], totals['acked'], by_port, each


def parse_connections(out, ports):
    """summarize_connections of ``ss -HtniO state established`` output."""
    return summarize_connections(parse_ss(out), ports)


def connections(netns, ports, reader=None):
    """Established TCP connections touching one of ``ports`` (all when empty), read with
    sock_diag, else with ss: see summarize_connections; None when both fail."""
    sockets = _diag(netns, 'established', ports, reader)
    if sockets is not None:
        return summarize_connections(sockets, ports)
    out = _ss_established(netns, ports, '-HtniO')
    return None if out is None else parse_connections(out, ports)


def syn_sent(netns, ports, reader=None):
    """How many TCP sockets wait in SYN-SENT for one of ``ports`` (all when empty)."""
    sockets = _diag(netns, 'syn-sent', (), reader)
    if sockets is not None:
        wanted = set(ports)
        return len([s for s in sockets if not wanted or _port(s[1]) in wanted])
    argv = ['ss', '-Htn', 'state', 'syn-sent']
    if ports:
        terms = []
        for port in ports:
            terms += ['dport', '=', ':%d' % port, 'or']
        argv += ['('] + terms[:-1] + [')']
    rc, out, err = run(argv, netns)
    return out.count('\n') if rc == 0 else None


def listening(netns, ports, pids):
    """Whether every port in ``ports`` has a listening socket of one of ``pids``."""
    rc, out, err = run(['ss', '-Htlnp'], netns)
    found = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        port = fields[3].rsplit(':', 1)[-1]
        owners = set(int(x) for x in re.findall(r'pid=(\d+)', line))
        if port.isdigit() and owners & set(pids):
            found.add(int(port))
    return set(ports) <= found


def netns_exists(name):
    return os.path.exists(os.path.join('/run/netns', name))


def link_names(netns):
    """Names of the devices in ``netns`` (None when ``ip`` cannot list them)."""
    rc, out, err = run(['ip', '-j', 'link', 'show'], netns)
    try:
        return set(link['ifname'] for link in json.loads(out) if link.get('ifname')) \
            if rc == 0 and out.strip() else None
    except ValueError:
        return None


# ---- the tools ---------------------------------------------------------------------------------

def find_tool(tool, bin_dir, path=None, fallback=None):
    """``(path of the tool's binary or None, where it was looked for)``: only ``bin_dir`` when it
    is given, else the PATH (``path``, default the environment's) and then ``fallback`` (default
    FALLBACK_DIRS of the tool). ``where`` is ``{'bin_dir': dir}`` or ``{'path': [dirs],
    'fallback': [dirs]}``."""
    if bin_dir:
        where = {'bin_dir': bin_dir}
        dirs = [bin_dir]
    else:
        path = os.environ.get('PATH', '') if path is None else path
        where = {'path': [d for d in path.split(os.pathsep) if d],
                 'fallback': list(FALLBACK_DIRS.get(tool, ()) if fallback is None else fallback)}
        dirs = where['path'] + where['fallback']
    for directory in dirs:
        candidate = os.path.join(directory, BINARIES[tool])
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate, where
    return None, where


def tool_not_found(tool, where):
    """Why ``find_tool`` found nothing, naming bin_dir and the PATH."""
    name = BINARIES[tool]
    if 'bin_dir' in where:
        return '%s not found in bin_dir %s%s (the PATH is not searched when bin_dir is set)' % (
            name, where['bin_dir'], '' if os.path.isdir(where['bin_dir']) else
            ', which does not exist')
    return '%s not found in PATH (%s)%s, and bin_dir is not set' % (
        name, ':'.join(where['path']) or 'empty', ''.join(' or %s' % d for d in where['fallback']))


def tool_binary(tool, bin_dir):
    """The binary to run: what find_tool finds, else its bare name (left to the PATH)."""
    found, _dirs = find_tool(tool, bin_dir)
    return found or (os.path.join(bin_dir, BINARIES[tool]) if bin_dir else BINARIES[tool])


def link_snapshot(netns):
    """``{device: {txqueuelen, mtu, qdisc}}`` from ``ip -j link show`` (empty when it fails)."""
    rc, out, err = run(['ip', '-j', 'link', 'show'], netns)
    try:
        links = json.loads(out) if rc == 0 and out.strip() else []
    except ValueError:
        links = []
    return dict((link['ifname'], {'txqueuelen': link.get('txqlen'), 'mtu': link.get('mtu'),
                                  'qdisc': link.get('qdisc')})
                for link in links if link.get('ifname'))


def egress_route(netns, address):
    """``ip -j route get ADDRESS`` -> ``{dev, src}`` of the route (None when it fails)."""
    rc, out, err = run(['ip', '-j', 'route', 'get', address], netns)
    try:
        routes = json.loads(out) if rc == 0 and out.strip() else []
    except ValueError:
        routes = []
    if not routes:
        return None
    return {'dev': routes[0].get('dev'), 'src': routes[0].get('prefsrc')}


def host_snapshot(run_dir, netns, server_address=None):
    """host.json: the kernel release, every device's txqueuelen, and the route to the server."""
    data = {'kernelrelease': os.uname()[2], 'devices': link_snapshot(netns)}
    if server_address:
        data['egress'] = egress_route(netns, server_address)
    write_json(os.path.join(run_dir, 'host.json'), data)


def per_process(p):
    """Flows per tool process: ``flows_per_process`` when given, else what one process can hold
    with the RLIMIT_NOFILE the tool processes get here."""
    return p.get('flows_per_process') or flow_split.per_process_cap(
        p['tool'], nofile_limit(p.get('nofile') or 0))


def blocks(p):
    """The port blocks of the run: ``servers`` (phase=start), else one from port and flows."""
    if p.get('servers'):
        return [{'port': b['port'], 'flows': b['flows'], 'name': b.get('name')}
                for b in p['servers']]
    return [{'port': p['port'], 'flows': p['flows'], 'name': None}]


def plan(p):
    """Every tool process of the run, in order: each block split by flow_split, with the block's
    ``name`` and neper's ``threads`` (at most the process's flows)."""
    found = []
    for block in blocks(p):
        for proc in flow_split.split(p['tool'], block['port'], block['flows'], per_process(p)):
            proc['name'] = block['name']
            proc['threads'] = min(p['threads'], proc['flows'])
            found.append(proc)
    return found


def samples_part(run_dir, i):
    """The ``--all-samples`` file of neper server process ``i`` (merged into samples.csv)."""
    return os.path.join(run_dir, '.samples.%d.csv' % i)


def server_commands(p, run_dir):
    """Command lines of the server processes of one run."""
    binary = p.get('binary') or tool_binary(p['tool'], p.get('bin_dir'))
    procs = plan(p)
    cmds = []
    for i, proc in enumerate(procs):
        port = proc['port']
        if p['tool'] == 'neper':
            argv = [binary, '-F', str(proc['flows']), '-T', str(proc['threads']),
                    '-l', str(p['duration']), '-C', str(port), '-P', str(proc['data_port']),
                    '--listen-backlog', '65535', '--nolog',
                    '--all-samples=%s' % samples_part(run_dir, i)]
        elif p['tool'] == 'iperf3':
            argv = [binary, '-s', '-1', '-J', '-p', str(port)] + iperf3_interval(procs)
        else:
            argv = [binary, '-s', '-e', '-p', str(port)]
        cmds.append(argv + p['server_args'])
    return cmds


def iperf3_interval(procs):
    """``-i 0`` when iperf3 runs several processes: their per-stream interval reports grow with
    flows x seconds (about 7 kB per flow in a 20 s test), and the receiver's samples of
    established.txt give the aggregate over time instead."""
    return ['-i', '0'] if len(procs) > 1 else []


def server_ports(p):
    """The port each tool process listens on first (neper's control ports)."""
    return [proc['port'] for proc in plan(p)]


def data_ports(p):
    return [proc['data_port'] for proc in plan(p)]


def client_commands(p):
    binary = p.get('binary') or tool_binary(p['tool'], p.get('bin_dir'))
    addr, cc = p['server_address'], p.get('cc')
    procs = plan(p)
    cmds = []
    for proc in procs:
        port = proc['port']
        if p['tool'] == 'neper':
            argv = [binary, '-c', '-H', addr, '-F', str(proc['flows']), '-T', str(proc['threads']),
                    '-l', str(p['duration']), '-C', str(port), '-P', str(proc['data_port']),
                    '--nolog']
            if p.get('buffer'):
                argv += ['-B', str(p['buffer'])]
            if cc:
                argv += ['--congestion-control', cc]
        elif p['tool'] == 'iperf3':
            argv = [binary, '-c', addr, '-p', str(port), '-P', str(proc['flows']),
                    '-t', str(p['duration']), '-J'] + iperf3_interval(procs)
            if p.get('buffer'):
                argv += ['-l', str(p['buffer'])]
            if cc:
                argv += ['-C', cc]
        else:
            argv = [binary, '-c', addr, '-p', str(port), '-P', str(proc['flows']),
                    '-t', str(p['duration']), '-e']
            if p.get('buffer'):
                argv += ['-l', str(p['buffer'])]
            if cc:
                argv += ['-Z', cc]
        cmds.append(argv + p['client_args'])
    return cmds


# ---- processes ---------------------------------------------------------------------------------

def nofile_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted:
        return min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    return hard if hard != resource.RLIM_INFINITY else soft


class Processes(object):
    """Tool processes of one side; stdout of all goes to one file (concatenated in order)."""

    def __init__(self, run_dir, name, nofile):
        self.run_dir = run_dir
        self.name = name
        self.nofile = nofile
        self.procs = []
        self.outputs = []
        self.stopped_by_us = False
        self.started = None
        self.exited = {}

    def start(self, commands, netns):
        self.started = time.time()
        runner = Runner(None, netns=netns)
        for i, argv in enumerate(commands):
            out = os.path.join(self.run_dir, '.%s.%d.out' % (self.name, i))
            err = os.path.join(self.run_dir, '.%s.%d.err' % (self.name, i))
            self.outputs.append((out, err))
            try:
                self.procs.append(runner.start(argv, stdout=out, stderr=err, cwd=self.run_dir,
                                               new_session=True, nofile=self.nofile))
            except OSError as e:
                raise ProbeError('cannot start %s: %s' % (argv[0], e))
        write(os.path.join(self.run_dir, '.%s.argv' % self.name),
              ''.join(' '.join(argv) + '\n' for argv in commands))

    def running(self):
        now = time.time()
        alive = []
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                alive.append(proc)
            elif i not in self.exited:
                self.exited[i] = now
        return alive

    def wall_s(self):
        """Seconds from the first start to the last exit (so far)."""
        if not self.procs:
            return None
        ended = max(self.exited.values()) if len(self.exited) == len(self.procs) else time.time()
        return round(ended - self.started, 3)

    def times(self, t0):
        """Start and per-process exit times in seconds since ``t0`` (None: never seen to exit)."""
        if not self.procs:
            return None
        return {'started_s': round(self.started - t0, 3),
                'exited_s': [round(self.exited[i] - t0, 3) if i in self.exited else None
                             for i in range(len(self.procs))]}

    def wait(self, deadline):
        # often: the client phase returns, and its exit times are taken, this late at most
        while self.running() and time.time() < deadline:
            time.sleep(0.02)
        return not self.running()

    def stop(self, grace=3.0):
        """SIGINT (iperf prints its summary), then SIGTERM, then SIGKILL, each to the group."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            alive = self.running()
            if not alive:
                break
            self.stopped_by_us = True
            for p in alive:
                try:
                    os.killpg(p.pid, sig)
                except OSError:
                    pass
            self.wait(time.time() + wait)

    def collect(self):
        """Write NAME.txt (stdout) and NAME.err (stderr, when any); return the exit codes."""
        outs, errs = [], []
        for out, err in self.outputs:
            with open(out) as f:
                outs.append(f.read())
            with open(err) as f:
                errs.append(f.read())
            os.unlink(out)
            os.unlink(err)
        write(os.path.join(self.run_dir, self.name + '.txt'), ''.join(outs))
        if any(e.strip() for e in errs):
            write(os.path.join(self.run_dir, self.name + '.err'), ''.join(errs))
        self.stderr = ''.join(errs)
        self.stdout = ''.join(outs)
        return [p.returncode for p in self.procs]

    def failure(self, rcs, allow_stopped, peer_stopped=False):
        """Reason of failure from exit codes, or None. ``peer_stopped``: the other side (the
        client) was stopped, so any exit of these processes is its consequence, not a failure."""
        if peer_stopped:
            return None
        bad = [rc for rc in rcs if rc not in (0, None)]
        if self.stopped_by_us and allow_stopped:
            # Stopped on purpose after the test (iperf2 2.1.8 even aborts on SIGINT with many
            # flows, "corrupted double-linked list", after printing its reports).
            bad = []
        # iperf3 -J reports its error in the JSON on stdout, and may exit 0 all the same when
        # a stream fails in mid-test.
        errors = re.findall(r'"error":\s*"([^"]*)"', self.stdout)
        if not bad and errors and not (self.stopped_by_us and allow_stopped):
            return ('%s stopped the test: %s (iperf3 ends every stream when one fails, e.g. '
                    'when the kernel aborts a flow after repeated timeouts; neper and iperf2 '
                    'keep the other flows going)' % (self.name, '; '.join(sorted(set(errors)))))
        if not bad:
            return None
        tail = ' '.join(self.stderr.strip().splitlines()[-3:] + errors)
        return '%s exited rc=%s%s' % (self.name, ','.join(str(rc) for rc in rcs),
                                      (': ' + tail) if tail else '')


# ---- sampling ------------------------------------------------------------------------------------

class Sampler(object):
    """Samples qdiscs and established connections every ``interval`` s until stopped; with
    ``connecting``, also the sockets still in SYN-SENT (connecting.txt). Each established
    connection's bytes are kept and written to flows.txt at the end."""

    def __init__(self, run_dir, netns, devices, ports, interval=1.0, sample_tc=True,
                 connecting=False):
        self.run_dir = run_dir
        self.netns = netns
        self.devices = devices
        self.ports = ports
        self.interval = interval
        self.sample_tc = sample_tc
        self.connecting = connecting
        self.event = threading.Event()
        self.thread = None
        self.t0 = None
        self.flows = {}
        self.last = None
        self.diag = sock_diag.Reader(netns)

    def sample_once(self, tc_file, est_file, syn_file):
        # self.last is read by another thread (the client's stop note): built here, set once
        last = {}
        if self.sample_tc:
            t = round(time.time() - self.t0, 3)
            tc_file.write(json.dumps({'t': t, 'qdiscs': tc_qdiscs(self.netns, self.devices)},
                                     sort_keys=True) + '\n')
            tc_file.flush()
        # Throughput comes from differences of these byte counts over as little as a second:
        # stamp them with the middle of the read, which takes tens of ms with many sockets
        # (seconds with ss, the fallback).
        before = time.time()
        found = connections(self.netns, self.ports, self.diag)
        after = time.time()
        t = round((before + after) / 2 - self.t0, 3)
        if found is not None:
            count, received, acked, by_port, each = found
            # several tool processes, one port each: their counts and bytes, to tell apart
            ports = ''.join(' %d:%d:%d:%d' % ((port,) + sums) for port, sums in sorted(by_port.items())) \
                if len(by_port) > 1 else ''
            est_file.write('%s %d %d %d %.3f%s\n' % (t, count, received, acked, after - before, ports))
            est_file.flush()
            for key, (conn_received, conn_acked) in each.items():
                seen = self.flows.setdefault(key, [t, t, 0, 0])
                seen[1:] = [t, conn_received, conn_acked]
            last.update(t=t, established=count)
        if syn_file is not None:
            waiting = syn_sent(self.netns, self.ports, self.diag)
            if waiting is not None:
                t = round(time.time() - self.t0, 3)
                syn_file.write('%s %d\n' % (t, waiting))
                syn_file.flush()
                last['syn_sent'] = waiting
        if last:
            self.last = last

    def loop(self):
        syn_path = os.path.join(self.run_dir, 'connecting.txt')
        with open(os.path.join(self.run_dir, 'tc_during.jsonl'), 'w') as tc_file, \
                open(os.path.join(self.run_dir, 'established.txt'), 'w') as est_file, \
                open(syn_path if self.connecting else os.devnull, 'w') as syn_file:
            while True:
                start = time.time()
                self.sample_once(tc_file, est_file, syn_file if self.connecting else None)
                if self.event.wait(max(0.0, self.interval - (time.time() - start))):
                    break
        self.diag.close()
        if not self.sample_tc:
            os.unlink(os.path.join(self.run_dir, 'tc_during.jsonl'))
        self.write_flows()

    def write_flows(self):
        lines = ['# local peer first_seen_s last_seen_s bytes_received bytes_acked\n']
        lines += ['%s %s %s %s %d %d\n' % ((local, peer) + tuple(seen))
                  for (local, peer), seen in sorted(self.flows.items())]
        write(os.path.join(self.run_dir, 'flows.txt'), ''.join(lines))

    def start(self, t0=None):
        self.t0 = t0 or time.time()
        self.thread = threading.Thread(target=self.loop)
        self.thread.daemon = True
        self.thread.start()

    def stop(self):
        self.event.set()
        if self.thread:
            self.thread.join(30)


def before(run_dir, netns, devices, server_address=None):
    """The files of before the run (the module sets the sysctls earlier, with sysctl_live)."""
    host_snapshot(run_dir, netns, server_address)
    nstat_reset(run_dir, netns)
    tc_snapshot(run_dir, 'tc_before.json', netns, devices)
    cpu_snapshot(run_dir, 'cpu_before.txt')


def after(run_dir, netns, devices):
    nstat_read(run_dir, netns)
    tc_snapshot(run_dir, 'tc_after.json', netns, devices)
    cpu_snapshot(run_dir, 'cpu_after.txt')
