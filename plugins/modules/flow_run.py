#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: flow_run
short_description: One host's part of one many-flow experiment run (server, client or observer)
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Runs everything one host does in one run of an experiment and writes the raw files of
    docs/results-layout.md into O(run_dir) on that host, so that a run costs three tasks
    (start, client, stop) instead of one task per command.
  - "O(phase=start): applies O(sysctls), resets nstat (own C(NSTAT_HISTORY) in O(run_dir)),
    snapshots qdiscs and CPU, then forks a detached supervisor that starts the tool's server
    processes (O(role=server)) and samples qdiscs and established connections every
    O(interval) seconds. Returns once every server port listens; fails if a server exits first."
  - "O(phase=client): the same snapshots, then runs the client processes for O(duration) seconds
    (from O(start_at) when it is given) and samples meanwhile, also the sockets still in SYN-SENT. A client still running
    O(client_grace) seconds after the test (neper waits for every connection before its test
    starts, and a connection can stall in SYN-SENT for a minute) is stopped, and the run is
    recorded with what its flows did: RV(client_stopped) is true and the status stays V(ok)."
  - "O(phase=stop): asks the supervisor to stop, waits up to O(stop_grace) seconds for the
    servers to end on their own, stops the rest, writes the after files and reports the exit codes.
    A O(run_dir) without a run started by O(phase=start) (none yet, or already stopped) fails
    with nothing to stop and changes nothing (in check mode it is reported, not failed: the
    O(phase=start) of a check run starts nothing)."
  - Files written per host - C(server.txt) or C(client.txt) (tool stdout of every process, one
    after the other), C(server.err) or C(client.err) (stderr, when any), C(samples.csv) (neper
    server; the samples of all its processes, flow ids unique across them), C(nstat.txt) (increments
    since the reset, zeros included), C(tc_before.json), C(tc_during.jsonl), C(tc_after.json),
    C(cpu_before.txt), C(cpu_after.txt), C(established.txt), C(flows.txt) (each established
    connection's bytes), C(host.json) (kernel release, each device's txqueuelen, the client's
    route to the server), C(connecting.txt) (client - sockets in SYN-SENT), C(client_times.json)
    (when each client process started and exited or was stopped, on the clock of
    C(established.txt); O(start_at) and the Unix time the processes started), C(capture.pcap)
    (optional).
  - Tool processes run in their own session with RLIMIT_NOFILE raised to O(nofile) (default the
    hard limit); a flow is one file descriptor, so that limit caps the flows of one process.
  - More flows than one process holds (O(flows_per_process)) take several server and client
    processes, each on its own ports - neper process i on control port O(port) + 2i and data port
    O(port) + 2i + 1, iperf3 and iperf2 process i on O(port) + i; the flows are spread evenly.
    iperf3 takes at most 128 streams per process. Their outputs are concatenated in one file and
    the collection's parsers add them up.
options:
  phase:
    description: Which part of the run to do (see the description).
    type: str
    required: true
    choices: [start, client, stop]
  role:
    description:
      - With O(phase=start), V(server) starts the tool's servers, V(observer) only samples
        (a router or a host whose qdisc is the bottleneck).
    type: str
    default: server
    choices: [server, observer]
  run_dir:
    description:
      - Directory on the target host for this host's raw files (created, with its parents, by
        O(phase=start) and O(phase=client); never by O(phase=stop)).
    type: path
    required: true
  netns:
    description: Network namespace to run everything in (none for the host's own namespace); it must exist.
    type: str
  tool:
    description: The traffic tool.
    type: str
    default: neper
    choices: [neper, iperf3, iperf2]
  bin_dir:
    description:
      - Directory holding the tool's binary (C(tcp_stream), C(iperf3), C(iperf)); only this
        directory is searched when it is set.
      - Unset, the PATH is searched, and for neper then C(/opt/neper/bin), where the collection's
        C(neper) role installs it (its C(neper_prefix) + C(/bin)).
    type: path
  flows:
    description: Number of TCP flows (at least 1).
    type: int
    default: 1
  threads:
    description:
      - Threads per tool process (neper only; at least 1). A process with fewer flows than
        O(threads) runs one thread per flow.
    type: int
    default: 1
  duration:
    description: Test length in seconds (at least 1).
    type: int
    default: 10
  buffer:
    description: Write size in bytes (neper C(-B), iperf C(-l)), at least 1; tool default when unset.
    type: int
  cc:
    description: Congestion control set per socket by the client (none keeps the default).
    type: str
  port:
    description:
      - First port of the tool (neper control port, data port is the next one; several processes
        use the ports after it, see the description). Default 12866 (neper), 5201 (iperf3), 5001
        (iperf2).
      - Every port the run uses must be at most 65535.
    type: int
  flows_per_process:
    description:
      - At most this many flows per tool process; more flows take more processes.
      - V(0) is what one process can hold on this host - the RLIMIT_NOFILE the processes get
        (O(nofile), default the hard limit) less 256 descriptors a process needs for itself,
        and at most 128 for iperf3. A larger value is refused.
      - The server and the client of a pair must split alike - give both the same non-zero value
        when their hosts' limits may differ.
    type: int
    default: 0
  servers:
    description:
      - With O(phase=start) and O(role=server), the port blocks this receiver serves, one per
        sender; each block is split into processes as O(flows) from O(port) would be, and the
        blocks' ports must not overlap. Empty - one block from O(port) and O(flows).
      - Ignored with O(role=observer), which samples every connection; refused with other phases.
    type: list
    elements: dict
    default: []
    suboptions:
      port:
        description: First port of the block (as O(port)).
        type: int
        required: true
      flows:
        description: Flows of the block (at least 1).
        type: int
        required: true
      name:
        description: The sender this block serves (returned in RV(processes)).
        type: str
  start_at:
    description:
      - With O(phase=client), the Unix time (seconds, this host's clock) at which the client
        processes start, after the files of before the run are written; several senders given
        one O(start_at) start together. Already past, they start at once and RV(note) says how
        late. At most 600 s ahead (a wrong clock otherwise).
      - Unset, they start as soon as the host is ready.
    type: float
  server_address:
    description: Address the client connects to. Required with O(phase=client).
    type: str
  server_args:
    description: Extra arguments for every server process.
    type: list
    elements: str
    default: []
  client_args:
    description: Extra arguments for every client process.
    type: list
    elements: str
    default: []
  devices:
    description: Devices whose qdiscs are recorded (they must exist in O(netns)); all devices when empty.
    type: list
    elements: str
    default: []
  sample_tc:
    description: Sample the qdiscs during the run (C(tc_during.jsonl)).
    type: bool
    default: true
  interval:
    description: Seconds between samples (above 0).
    type: float
    default: 1.0
  sysctls:
    description:
      - Sysctls set (C(sysctl -w), in O(netns)) before the run, e.g. C(net.ipv4.tcp_ecn).
      - All or none - every key is read first (an unknown key fails before anything is set), and
        a value the kernel refuses restores the ones set before it.
    type: dict
    default: {}
  nofile:
    description: RLIMIT_NOFILE of the tool processes (not negative); default (0) the hard limit.
    type: int
    default: 0
  server_wait:
    description: Seconds O(phase=start) waits for the servers to listen (above 0).
    type: float
    default: 20
  client_grace:
    description:
      - Seconds past O(duration) before a client still running is stopped (SIGINT, SIGTERM,
        SIGKILL); the run is then recorded with what its flows did (RV(client_stopped)), not failed.
      - Above 0 - neper connects its flows before its test starts.
    type: float
    default: 30
  client_stopped:
    description:
      - With O(phase=stop), the client of this run was stopped (RV(client_stopped) of its
        O(phase=client)) - servers that then end with an error or must be stopped do not fail the
        run; their exit is noted in RV(note).
    type: bool
    default: false
  stop_grace:
    description: Seconds O(phase=stop) lets servers end on their own before stopping them (0 or more).
    type: float
    default: 5
  capture_device:
    description:
      - With O(phase=client), record the TCP headers of the test traffic on this device
        (C(tcpdump -s 96)) into C(capture.pcap) and their RTT samples into C(rtt.txt).
    type: str
attributes:
  action:
    support: full
    description:
      - With the C(local) or the C(zerodrop.testbed.netns) connection (no become), every phase runs
        in the controller's own process (its action plugin), with the connection's namespace as
        O(netns) when the task gives none - the same phases, commands and files without a module
        process per host and phase, which was most of a run's overhead with many senders on one
        machine. Other connections run the module on the host.
  check_mode:
    support: full
    description: Reports the commands it would run and runs nothing (nor waits for O(start_at)).
extends_documentation_fragment:
  - zerodrop.testbed.attributes.linux_no_diff
notes:
  - Needs iproute2 (C(ss), C(tc), C(nstat), C(ip), C(ip netns exec)) and root for other namespaces.
    The samplers read the sockets' tcp_info with a sock_diag netlink dump (in another namespace
    from a short-lived thread that enters it), and run C(ss) only where that cannot be done.
  - Bad parameters (a number out of range, a missing namespace or device, an unknown sysctl, a
    O(run_dir) that is a file or cannot be written) and a tool that is not found fail before
    anything is changed - no directory made, no sysctl set - with the field and the fix in
    RV(reason).
  - A run that fails once started (a tool exits non-zero, a server does not come up) fails the
    task with the reason in RV(reason); the raw files made so far stay, and the task reports
    changed.
  - neper's tcp_stream connects its flows one after the other and starts its test only when all
    are connected; C(--async-connect) in O(client_args) lets it start with the connections that
    completed.
'''

EXAMPLES = r'''
- name: Start the receiver's neper server and samplers (tcp_stream from the PATH or /opt/neper/bin)
  zerodrop.testbed.flow_run:
    phase: start
    run_dir: /var/tmp/zd/run1/receiver
    netns: rcv
    flows: 1000
    threads: 2
    duration: 20

- name: Run the client
  zerodrop.testbed.flow_run:
    phase: client
    run_dir: /var/tmp/zd/run1/sender
    netns: snd
    flows: 1000
    threads: 2
    duration: 20
    buffer: 1024
    cc: cubic
    server_address: 10.99.0.130

- name: A receiver serving two senders, each on a port block of its own
  zerodrop.testbed.flow_run:
    phase: start
    run_dir: /var/tmp/zd/run2/receiver
    netns: rcv
    flows_per_process: 10000
    servers:
      - {port: 12866, flows: 30000, name: snd1}
      - {port: 12900, flows: 10000, name: snd2}
    duration: 20

- name: The first sender's client, started at an instant shared with the other sender
  zerodrop.testbed.flow_run:
    phase: client
    run_dir: /var/tmp/zd/run2/sender-snd1
    netns: snd1
    flows: 30000
    flows_per_process: 10000
    port: 12866
    duration: 20
    server_address: 10.99.0.130
    start_at: "{{ experiment_start_at }}"

- name: Stop the receiver's side and collect its files
  zerodrop.testbed.flow_run:
    phase: stop
    run_dir: /var/tmp/zd/run1/receiver
'''

RETURN = r'''
status:
  description: V(ok) or V(failed).
  returned: always
  type: str
  sample: ok
reason:
  description: Why the run failed on this host, or null.
  returned: always
  type: str
  sample: "neper server did not start: tcp_stream not found in PATH (/usr/bin:/bin) or /opt/neper/bin, and bin_dir is not set"
client_stopped:
  description: With O(phase=client), whether the client was still running O(client_grace) seconds after the test and was stopped.
  returned: with O(phase=client)
  type: bool
  sample: true
note:
  description: What was unusual but not a failure (the client stopped, with its connections then; a server's exit after that), or null.
  returned: always
  type: str
  sample: "client still running 30.0 s after the 20 s test: stopped (1 socket in SYN-SENT, 999 connections established)"
exit_codes:
  description: Exit codes of the tool processes (null for a process still running).
  returned: when a phase ran tool processes
  type: list
  elements: int
  sample: [0]
commands:
  description:
    - The commands of the run, in order - the sysctl writes (C(sysctl -q -w), restores of a
      refused set included), C(tcpdump) with O(capture_device), then the tool command lines.
    - In check mode, the sysctl writes and tool command lines that would run.
  returned: always
  type: list
  elements: list
processes:
  description:
    - The tool processes of this host (planned, in check mode) - per process its first (control)
      port, its data port, its flows, the O(servers) name of its block (null without O(servers))
      and its threads (neper).
  returned: with O(phase=client), and O(phase=start) with O(role=server)
  type: list
  elements: dict
  sample: [{port: 12866, data_port: 12867, flows: 20, name: snd1, threads: 2}]
started_epoch:
  description: Unix time at which the client processes were started (null in check mode).
  returned: with O(phase=client)
  type: float
  sample: 1764642002.003
ready_epoch:
  description:
    - Unix time (this host's clock) at which the client was ready to start - its files of before
      the run written, samplers and capture set up - and began to wait for O(start_at) (null in
      check mode). M(zerodrop.testbed.experiment_record) derives the next run's start delay from it.
  returned: with O(phase=client)
  type: float
  sample: 1764642000.871
start_late_s:
  description: Seconds the start came after O(start_at) (0 when on time; null without O(start_at) or in check mode).
  returned: with O(phase=client)
  type: float
  sample: 0.002
tool_wall_s:
  description: Seconds the client processes ran (first start to last exit).
  returned: with O(phase=client)
  type: float
  sample: 20.4
nofile:
  description: RLIMIT_NOFILE given to the tool processes.
  returned: always
  type: int
  sample: 20000
flows_per_process:
  description: At most this many flows per tool process - O(flows_per_process), or what one process can hold here when it is 0.
  returned: when the parameters are accepted
  type: int
  sample: 19744
wall_s:
  description: Seconds the phase took.
  returned: always
  type: float
  sample: 21.3
files:
  description: Raw files now in O(run_dir).
  returned: always
  type: list
  elements: str
  sample: [client.txt, nstat.txt]
'''

import json
import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_probe as fp
from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_split
from ansible_collections.zerodrop.testbed.plugins.module_utils import pcap_rtt
from ansible_collections.zerodrop.testbed.plugins.module_utils import sysctl_live
from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard, describe
from ansible_collections.zerodrop.testbed.plugins.module_utils.names import device_name, errors, \
    path_component
from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import neper_samples
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner
from ansible_collections.zerodrop.testbed.plugins.module_utils.writable import directory_problem

STOP_FILE = '.stop'
STATE_FILE = '.probe.json'
PIDS_FILE = '.server.pids'
# A start_at further ahead than this is a wrong clock or a typo, not a synchronized start.
MAX_START_AHEAD_S = 600
# How often the supervisor looks for the stop file and the stop phase for its result: the stop
# of every run waits for both, so this is part of every run's overhead.
POLL_S = 0.02


def params_of(params):
    p = dict(params)
    if p['port'] is None:
        p['port'] = fp.DEFAULT_PORTS[p['tool']]
    p['binary'], p['searched'] = fp.find_tool(p['tool'], p['bin_dir'])
    return p


def missing_tool(p, side):
    """Why ``side`` (server or client) cannot start, or None when the tool was found."""
    if p['binary']:
        return None
    return '%s %s did not start: %s' % (p['tool'], side, fp.tool_not_found(p['tool'], p['searched']))


def number_problems(p):
    """Every number out of its range, each naming the field and the fix."""
    problems = []
    for key in ('flows', 'threads', 'duration'):
        if p[key] < 1:
            problems.append('%s must be a whole number of at least 1 (got %s)' % (key, p[key]))
    for key in ('interval', 'server_wait', 'client_grace'):
        if not p[key] > 0:
            problems.append('%s must be a number of seconds above 0 (got %s)' % (key, p[key]))
    if not p['stop_grace'] >= 0:
        problems.append('stop_grace must be 0 seconds or more (got %s)' % p['stop_grace'])
    if p['nofile'] < 0:
        problems.append('nofile must be 0 (the hard limit) or a positive limit (got %d)'
                        % p['nofile'])
    if p['buffer'] is not None and p['buffer'] < 1:
        problems.append('buffer must be at least 1 byte, or unset for the tool\'s default '
                        '(got %d)' % p['buffer'])
    if not 0 < p['port'] < 65536:
        problems.append('port must be between 1 and 65535 (got %s)' % p['port'])
    cap = per_process_problems(p, problems)
    if cap and not p.get('servers') and 0 < p['port'] < 65536 and p['flows'] >= 1:
        last = p['port'] + flow_split.span(p['tool'], p['flows'], cap) - 1
        if last > 65535:
            problems.append('port %d leaves no room: %s with %d flows uses ports up to %d, above '
                            '65535; give a lower port' % (p['port'], p['tool'], p['flows'], last))
    if cap and p.get('servers'):
        problems.extend(servers_problems(p, cap))
    return problems


def per_process_problems(p, problems):
    """Check flows_per_process against what one process can hold here (adding to ``problems``);
    returns the flows per process, or None when there is no valid figure."""
    wanted = p.get('flows_per_process') or 0
    if wanted < 0:
        problems.append('flows_per_process must be 0 (what one process can hold here) or a '
                        'positive number of flows (got %d)' % wanted)
        return None
    if p['nofile'] < 0:
        return None
    nofile = fp.nofile_limit(p['nofile'])
    cap = flow_split.per_process_cap(p['tool'], nofile)
    limit = 'RLIMIT_NOFILE %d (%s) less %d descriptors the process needs for itself%s' % (
        nofile, 'nofile' if p['nofile'] else 'the hard limit', flow_split.NOFILE_MARGIN,
        ', and iperf3 takes at most %d streams' % flow_split.IPERF3_MAX_STREAMS
        if p['tool'] == 'iperf3' else '')
    if cap < 1:
        problems.append('nofile leaves a %s process no descriptors for flows: %s; give a larger '
                        'nofile, or 0 for the hard limit' % (p['tool'], limit))
        return None
    if wanted > cap:
        problems.append('flows_per_process %d is above what one %s process can hold here, %d (%s); '
                        'give at most %d, or 0 for that' % (wanted, p['tool'], cap, limit, cap))
        return None
    return wanted or cap


def servers_problems(p, cap):
    """Each servers[i] in range, its ports below 65536 and apart from every other block's."""
    if p['phase'] != 'start':
        return ['servers is only for phase=start (the receiver\'s port blocks); a client uses '
                'port and flows']
    problems = []
    ranges = []
    for i, block in enumerate(p['servers']):
        port, flows = block.get('port'), block.get('flows')
        bad = False
        if not isinstance(port, int) or not 0 < port < 65536:
            problems.append('servers[%d].port must be between 1 and 65535 (got %s)' % (i, port))
            bad = True
        if not isinstance(flows, int) or flows < 1:
            problems.append('servers[%d].flows must be a whole number of at least 1 (got %s)'
                            % (i, flows))
            bad = True
        if bad:
            continue
        last = port + flow_split.span(p['tool'], flows, cap) - 1
        if last > 65535:
            problems.append('servers[%d] port %d leaves no room: %s with %d flows uses ports up to '
                            '%d, above 65535; give a lower port' % (i, port, p['tool'], flows, last))
            continue
        for j, first_j, last_j in ranges:
            if port <= last_j and first_j <= last:
                problems.append('servers[%d] uses ports %d-%d, which overlap servers[%d]\'s %d-%d: '
                                'give each block ports of its own' % (i, port, last, j, first_j, last_j))
        ranges.append((i, port, last))
    return problems


def start_at_problems(p, now):
    """start_at only with phase=client, a Unix time at most MAX_START_AHEAD_S ahead of ``now``."""
    if p.get('start_at') is None:
        return []
    if p['phase'] != 'client':
        return ['start_at is only for phase=client (when the client processes start)']
    if not p['start_at'] > 0:
        return ['start_at must be a Unix time in seconds (got %s)' % p['start_at']]
    ahead = p['start_at'] - now
    if ahead > MAX_START_AHEAD_S:
        return ['start_at %s is %.0f s ahead of this host\'s clock (more than %d): give a time a '
                'few seconds ahead, and check the clock of this host' % (
                    p['start_at'], ahead, MAX_START_AHEAD_S)]
    return []


def problems_of(p):
    """Everything wrong with the parameters, found before anything is run or changed."""
    problems = number_problems(p)
    if p['phase'] == 'client' and not p['server_address']:
        problems.append('server_address is required with phase=client: the address of the '
                        'receiver as the client reaches it')
    problems.extend(start_at_problems(p, time.time()))
    if p['netns'] is not None:
        problems.extend(errors(path_component('netns', p['netns'])))
    problems.extend(errors(*[device_name('devices[%d]' % i, dev)
                             for i, dev in enumerate(p['devices'])]))
    if p['capture_device'] is not None:
        problems.extend(errors(device_name('capture_device', p['capture_device'])))
    problems.extend(errors(*[sysctl_live.key_problem('sysctls', key) or
                             sysctl_live.value_problem('sysctls', key, value)
                             for key, value in sorted(p['sysctls'].items())]))
    if not p['run_dir']:
        problems.append('run_dir is empty: give the directory for this host\'s raw files')
    return problems


def environment_problems(p):
    """What the host lacks for these parameters (read-only checks, after the static ones)."""
    if p['netns'] is not None and not fp.netns_exists(p['netns']):
        return ['netns %s does not exist (ip netns list): create it first or unset netns'
                % p['netns']]
    wanted = list(p['devices'])
    if p['capture_device'] and p['phase'] == 'client':
        wanted.append(p['capture_device'])
    if not wanted or p['phase'] == 'stop':
        return []
    present = fp.link_names(p['netns'])
    where = 'network namespace %s' % p['netns'] if p['netns'] else 'the root network namespace'
    if present is None:
        return ['cannot list the devices of %s (ip -j link show)' % where]
    return ['%s %s does not exist in %s: give a device that does'
            % ('capture_device' if dev == p['capture_device'] and dev not in p['devices']
               else 'devices', dev, where)
            for dev in wanted if dev not in present]


def listing(run_dir):
    return sorted(f for f in os.listdir(run_dir) if not f.startswith('.'))


def clean(run_dir):
    """Remove the working files (dot files): only the raw files stay."""
    for name in os.listdir(run_dir):
        if name.startswith('.'):
            os.unlink(os.path.join(run_dir, name))


def read_stop(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (IOError, OSError):
        return None


def pid_alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (IOError, OSError, IndexError):
        return False


def set_sysctls(guard, p):
    """Set the sysctls (all or none; in check mode only read and planned). A refused one leaves
    nothing changed (sysctl_live.SysctlError)."""
    guard.doing('set the sysctls')
    sysctl_live.apply(guard.runner, p['sysctls'])


def prepare(guard, p, run_dir):
    """Set the sysctls, then make run_dir and clear an earlier run's working files."""
    set_sysctls(guard, p)
    if not os.path.isdir(run_dir):
        guard.doing('create run_dir', run_dir)
        os.makedirs(run_dir)
        guard.record('mkdir %s' % run_dir)
    guard.doing('clear the working files of an earlier run in run_dir', run_dir)
    clean(run_dir)


# ---- phase=start: the detached supervisor ----------------------------------------------------

def supervise(p, run_dir):
    """Runs in the detached child: servers + sampler until asked to stop; never returns."""
    stop = {'now': False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    state = {'status': 'ok', 'reason': None, 'note': None, 'exit_codes': []}
    servers = None
    sampler = fp.Sampler(run_dir, p['netns'], p['devices'],
                         fp.data_ports(p) if p['role'] == 'server' else [],
                         p['interval'], p['sample_tc'])
    try:
        if p['role'] == 'server':
            servers = fp.Processes(run_dir, 'server', fp.nofile_limit(p['nofile']))
            servers.start(fp.server_commands(p, run_dir), p['netns'])
            fp.write(os.path.join(run_dir, PIDS_FILE),
                     ' '.join(str(x.pid) for x in servers.procs))
        sampler.start()
        # Never outlive a controller that went away.
        deadline = time.time() + p['server_wait'] + p['duration'] + p['client_grace'] + 600
        stop_path = os.path.join(run_dir, STOP_FILE)
        while not stop['now'] and not os.path.exists(stop_path) and time.time() < deadline:
            if servers:
                servers.running()  # reaps
            time.sleep(POLL_S)
        if servers:
            # neper and iperf3 -1 end on their own once they have printed their results;
            # iperf2's server never does: it is done when its connections are.
            until = time.time() + p['stop_grace']
            while servers.running() and time.time() < until:
                if p['tool'] == 'iperf2' and not fp.established(p['netns'], fp.data_ports(p)):
                    break
                time.sleep(0.1)  # each look at iperf2's connections is a sock_diag dump (or ss)
            servers.stop()
        sampler.stop()
        fp.after(run_dir, p['netns'], p['devices'])
        if servers:
            state['exit_codes'] = servers.collect()
            if p['tool'] == 'neper':
                merge_samples(p, run_dir)
            peer_stopped = read_stop(stop_path) == 'client_stopped'
            # iperf2's server never ends on its own: being stopped is its normal end.
            state['reason'] = servers.failure(state['exit_codes'], allow_stopped=p['tool'] == 'iperf2',
                                              peer_stopped=peer_stopped)
            if peer_stopped and any(rc not in (0, None) for rc in state['exit_codes']):
                state['note'] = 'server exit codes %s after the client was stopped' % (
                    ','.join(str(rc) for rc in state['exit_codes']))
    except Exception as e:  # the supervisor must always leave its state file
        state['reason'] = 'supervisor error: %s' % e
    if state['reason']:
        state['status'] = 'failed'
    fp.write_json(os.path.join(run_dir, STATE_FILE), state)
    os._exit(0)


def merge_samples(p, run_dir):
    """The neper servers' own samples files -> samples.csv, flow ids unique across processes."""
    parts = []
    offset = 0
    for i, proc in enumerate(fp.plan(p)):
        parts.append((fp.samples_part(run_dir, i), offset))
        offset += proc['flows']
    present = [part for part in parts if os.path.exists(part[0])]
    target = os.path.join(run_dir, 'samples.csv')
    if len(parts) == 1 and present:
        os.rename(present[0][0], target)
    elif present:
        neper_samples.merge(present, target)


def detach(p, run_dir):
    """Fork the supervisor with no inherited descriptors, so that Ansible does not wait for it."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        path = os.path.join(run_dir, '.supervisor.pid')
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.01)
        with open(path) as f:
            return int(f.read())
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, 65536)
    fp.write(os.path.join(run_dir, '.supervisor.pid'), str(os.getpid()))
    supervise(p, run_dir)


def phase_start(module, guard, p, run_dir):
    commands = fp.server_commands(p, run_dir) if p['role'] == 'server' else []
    missing = missing_tool(p, 'server') if p['role'] == 'server' else None
    if missing:
        return {'changed': False, 'status': 'failed', 'reason': missing, 'commands': commands}
    if module.check_mode:
        set_sysctls(guard, p)
        result = {'changed': True, 'status': 'ok', 'reason': None,
                  'commands': guard.runner.changes + commands}
        if p['role'] == 'server':
            result['processes'] = fp.plan(p)
        return result
    prepare(guard, p, run_dir)
    guard.doing('write the files of before the run into run_dir', run_dir)
    fp.before(run_dir, p['netns'], p['devices'])
    guard.doing('start the supervisor of the servers and samplers', run_dir)
    pid = detach(p, run_dir)
    result = {'changed': True, 'commands': guard.runner.changes + commands, 'supervisor_pid': pid,
              'status': 'ok', 'reason': None}
    if p['role'] == 'server':
        result['processes'] = fp.plan(p)
    if p['role'] != 'server':
        return result
    deadline = time.time() + p['server_wait']
    ports = fp.server_ports(p)
    while True:
        pids_path = os.path.join(run_dir, PIDS_FILE)
        pids = None
        if os.path.exists(pids_path):
            with open(pids_path) as f:
                pids = [int(x) for x in f.read().split()]
            if fp.listening(p['netns'], ports, pids):
                return result
        state_path = os.path.join(run_dir, STATE_FILE)
        dead = pids is not None and not all(pid_alive(x) for x in pids)
        if dead or time.time() > deadline or os.path.exists(state_path):
            stopped = stop_supervisor(run_dir, 10)
            why = stopped.get('reason') or ('a server exited before listening' if dead else
                                            'servers not listening on %s after %ss'
                                            % (ports, p['server_wait']))
            result.update(status='failed', reason=why, exit_codes=stopped.get('exit_codes'))
            return result
        time.sleep(0.1)


def stop_supervisor(run_dir, wait, why=''):
    state_path = os.path.join(run_dir, STATE_FILE)
    if not os.path.exists(os.path.join(run_dir, '.supervisor.pid')):
        return {'status': 'failed', 'reason': 'no supervisor in %s: phase=start did not run'
                % run_dir}
    fp.write(os.path.join(run_dir, STOP_FILE), why)
    deadline = time.time() + wait
    while not os.path.exists(state_path):
        with open(os.path.join(run_dir, '.supervisor.pid')) as f:
            pid = int(f.read())
        if time.time() > deadline or not pid_alive(pid):
            if os.path.exists(state_path):
                break
            return {'status': 'failed', 'reason': 'supervisor %d ended without a result' % pid}
        time.sleep(POLL_S)
    with open(state_path) as f:
        return json.load(f)


def phase_stop(module, guard, p, run_dir):
    if not os.path.exists(os.path.join(run_dir, '.supervisor.pid')):
        why = ('nothing to stop: run_dir %s holds no run started by phase=start (%s); give the '
               'run_dir of the phase=start call' % (
                   run_dir, 'it does not exist' if not os.path.isdir(run_dir) else
                   'it has no supervisor: never started, or already stopped'))
        if module.check_mode:
            # a phase=start of the same check run started nothing either
            return {'changed': False, 'status': 'ok', 'reason': None, 'commands': [], 'note': why}
        return {'changed': False, 'status': 'failed', 'reason': why, 'commands': []}
    if module.check_mode:
        return {'changed': True, 'status': 'ok', 'reason': None, 'commands': []}
    guard.doing('stop the supervisor of the run', run_dir)
    state = stop_supervisor(run_dir, p['stop_grace'] + 60,
                            'client_stopped' if p['client_stopped'] else '')
    if state['status'] == 'ok' or os.path.exists(os.path.join(run_dir, STATE_FILE)):
        clean(run_dir)
    state['changed'] = True
    state['commands'] = []
    return state


# ---- phase=client ------------------------------------------------------------------------------

def phase_client(module, guard, p, run_dir):
    commands = fp.client_commands(p)
    missing = missing_tool(p, 'client')
    if missing:
        return {'changed': False, 'status': 'failed', 'reason': missing, 'commands': commands,
                'client_stopped': False, 'note': None}
    if module.check_mode:
        set_sysctls(guard, p)
        note = None
        if p['start_at'] is not None:
            note = 'would start the client processes at %s (%.3f s from now)' % (
                p['start_at'], p['start_at'] - time.time())
        return {'changed': True, 'status': 'ok', 'reason': None,
                'commands': guard.runner.changes + commands, 'client_stopped': False, 'note': note,
                'processes': fp.plan(p), 'started_epoch': None, 'start_late_s': None,
                'ready_epoch': None}
    prepare(guard, p, run_dir)
    guard.doing('write the files of before the run into run_dir', run_dir)
    fp.before(run_dir, p['netns'], p['devices'], p['server_address'])
    guard.doing('run the client', run_dir)
    capture = None
    if p['capture_device']:
        capture = pcap_rtt.start_capture(run_dir, p['netns'], p['capture_device'],
                                         fp.data_ports(p), guard.runner)
    sampler = fp.Sampler(run_dir, p['netns'], p['devices'], fp.data_ports(p), p['interval'],
                         p['sample_tc'], connecting=True)
    clients = fp.Processes(run_dir, 'client', fp.nofile_limit(p['nofile']))
    reason = note = stopped_s = late_note = ready = None
    try:
        ready = round(time.time(), 3)
        late_note = wait_until(guard, p['start_at'])
        sampler.start()
        clients.start(commands, p['netns'])
        if not clients.wait(time.time() + p['duration'] + p['client_grace']):
            stopped_s = round(time.time() - sampler.t0, 3)
            note = stopped_note(p, sampler.last)
            clients.stop(grace=1.0)
    except fp.ProbeError as e:
        reason = str(e)
    except BaseException:
        # the guard reports it; no client, sampler or tcpdump outlives the module
        clients.stop(grace=1.0)
        raise
    finally:
        sampler.stop()
        if capture:
            pcap_rtt.stop_capture(capture, run_dir)
    fp.after(run_dir, p['netns'], p['devices'])
    rcs = clients.collect()
    times = clients.times(sampler.t0)
    started_epoch = round(clients.started, 3) if clients.started else None
    late = None
    if p['start_at'] is not None and started_epoch is not None:
        late = round(max(0.0, clients.started - p['start_at']), 3)
    if times:
        times['ports'] = fp.data_ports(p)
        times['stopped_s'] = stopped_s
        times['start_at'] = p['start_at']
        times['started_epoch'] = started_epoch
        fp.write_json(os.path.join(run_dir, 'client_times.json'), times)
    reason = reason or clients.failure(rcs, allow_stopped=stopped_s is not None)
    clean(run_dir)
    return {'changed': True, 'status': 'failed' if reason else 'ok', 'reason': reason,
            'exit_codes': rcs, 'commands': guard.runner.changes + commands,
            'tool_wall_s': clients.wall_s(), 'processes': fp.plan(p),
            'started_epoch': started_epoch, 'start_late_s': late, 'ready_epoch': ready,
            'client_stopped': stopped_s is not None,
            'note': '; '.join(n for n in (late_note, note) if n) or None}


def wait_until(guard, start_at):
    """Sleep until ``start_at`` (Unix time); when it is already past, say how late we are."""
    if start_at is None:
        return None
    guard.doing('wait for start_at %s' % start_at)
    ahead = start_at - time.time()
    if ahead > 0:
        time.sleep(ahead)
        return None
    return 'start_at %s was %.3f s past when the client was ready: started at once' % (
        start_at, -ahead)


def stopped_note(p, last):
    """What the client's connections were doing when it was stopped (the last sample)."""
    last = last or {}
    seen = []
    if last.get('syn_sent') is not None:
        seen.append('%d socket(s) in SYN-SENT' % last['syn_sent'])
    if last.get('established') is not None:
        seen.append('%d connection(s) established' % last['established'])
    return 'client still running %s s after the %s s test: stopped%s' % (
        p['client_grace'], p['duration'], (' (%s)' % ', '.join(seen)) if seen else '')


ARGUMENT_SPEC = dict(
    phase=dict(type='str', required=True, choices=['start', 'client', 'stop']),
    role=dict(type='str', default='server', choices=['server', 'observer']),
    run_dir=dict(type='path', required=True),
    netns=dict(type='str'),
    tool=dict(type='str', default='neper', choices=list(fp.TOOLS)),
    bin_dir=dict(type='path'),
    flows=dict(type='int', default=1),
    threads=dict(type='int', default=1),
    duration=dict(type='int', default=10),
    buffer=dict(type='int'),
    cc=dict(type='str'),
    port=dict(type='int'),
    server_address=dict(type='str'),
    server_args=dict(type='list', elements='str', default=[]),
    client_args=dict(type='list', elements='str', default=[]),
    devices=dict(type='list', elements='str', default=[]),
    sample_tc=dict(type='bool', default=True),
    interval=dict(type='float', default=1.0),
    sysctls=dict(type='dict', default={}),
    nofile=dict(type='int', default=0),
    server_wait=dict(type='float', default=20),
    client_grace=dict(type='float', default=30),
    client_stopped=dict(type='bool', default=False),
    stop_grace=dict(type='float', default=5),
    capture_device=dict(type='str'),
    flows_per_process=dict(type='int', default=0),
    servers=dict(type='list', elements='dict', default=[], options=dict(
        port=dict(type='int', required=True),
        flows=dict(type='int', required=True),
        name=dict(type='str'),
    )),
    start_at=dict(type='float'),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    result = outcome(module, Runner(module), module.params)
    if result['status'] != 'ok':
        module.fail_json(msg=result['reason'], **result)
    module.exit_json(**result)


def outcome(module, runner, params):
    """Check the parameters and the host, run the phase: the result (``status`` failed with a
    ``reason`` when it did not go). ``runner`` gets the namespace here; an unexpected exception
    ends in ``module.fail_json`` (Guard)."""
    p = params_of(params)
    problems = problems_of(p)
    if problems:
        return {'changed': False, 'status': 'failed', 'reason': '; '.join(problems)}
    runner.netns = p['netns']
    run_dir = p['run_dir']
    started = time.time()
    with Guard(module, runner) as guard:
        guard.doing('check the host for the run')
        problems = environment_problems(p)
        if p['phase'] != 'stop':
            problems.extend(errors(directory_problem('run_dir', run_dir)))
        if problems:
            return {'changed': False, 'status': 'failed', 'reason': '; '.join(problems)}
        phases = {'start': phase_start, 'client': phase_client, 'stop': phase_stop}
        try:
            result = phases[p['phase']](module, guard, p, run_dir)
        except sysctl_live.SysctlError as e:
            # apply restored what it had set; e.left is what it could not
            result = {'changed': bool(e.left), 'status': 'failed', 'reason': str(e),
                      'commands': guard.runner.changes}
        except fp.ProbeError as e:
            result = {'changed': True, 'status': 'failed', 'reason': str(e), 'commands': []}
        guard.doing('list the files of run_dir', run_dir)
        return completed(p, result, started)


def completed(p, result, started):
    """What every phase's result has besides its own."""
    result.setdefault('note', None)
    result['nofile'] = fp.nofile_limit(p['nofile'])
    result['flows_per_process'] = fp.per_process(p)
    result['wall_s'] = round(time.time() - started, 3)
    result['files'] = listing(p['run_dir']) if os.path.isdir(p['run_dir']) else []
    return result


class _Failed(Exception):
    def __init__(self, result):
        super(_Failed, self).__init__(result.get('msg'))
        self.result = result


class _OnController(object):
    """What the phases need of a module, in the controller's own process."""
    _name = 'zerodrop.testbed.flow_run'

    def __init__(self, check_mode):
        self.check_mode = check_mode

    def fail_json(self, **result):
        raise _Failed(result)


def on_controller(params, check_mode):
    """One call in the controller's own process (plugins/action/flow_run.py), for a host whose
    commands and run_dir are the controller's (local or netns connection): the same phases as the
    module, without a module process per host and phase, which is much of the runner's overhead
    with many hosts on one machine. Returns the module's result; a failure has ``failed`` and
    ``msg``."""
    here = _OnController(check_mode)
    try:
        result = outcome(here, Runner(None, check_mode=check_mode), params)
    except _Failed as e:
        result = dict(e.result, status='failed', reason=e.result.get('msg'))
    except Exception as e:  # never a traceback, as in the module
        result = {'changed': False, 'status': 'failed', 'commands': [],
                  'reason': 'flow_run phase=%s failed: %s' % (params.get('phase'), describe(e))}
    # the result a module's JSON would have given (no tuples, no objects)
    result = json.loads(json.dumps(result))
    if result['status'] != 'ok':
        result.update(failed=True, msg=result['reason'])
    return result


if __name__ == '__main__':
    main()
