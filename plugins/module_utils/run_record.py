# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run directory (docs/results-layout.md) -> the normalised record of result.json.

Which side a host role is on comes from its files: a role with ``client.txt`` sends, a role with
``server.txt`` receives (tcp_stream, iperf3 and iperf2 all write from client to server); roles
without either fall back to their names (``sender*``, ``receiver*``). A figure whose inputs were
not captured is None, never 0; a file that cannot be parsed is named in ``problems``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import (
    ParseError, cpu, iperf2, iperf3, neper, neper_samples, nstat, rtt, tc_stats)
from ansible_collections.zerodrop.testbed.plugins.module_utils import units, zd_checks

RECORD_KEYS = (
    'status', 'reason', 'mode', 'variant', 'flows', 'rep', 'tool', 'duration_s', 'throughput_bps',
    'bottleneck_rate_bps', 'fraction_of_bottleneck', 'flows_started', 'flows_alive',
    'flows_aborted', 'flows_zero_bytes', 'jain_index', 'retrans_segs', 'rto_count',
    'local_qdisc_drops', 'bottleneck_drops', 'ecn_marks', 'ecn_ce_pkts', 'listen_overflows',
    'connect_attempts', 'connect_failures', 'syn_retrans', 'flows_connected',
    'flows_stalled_connect', 'client_stopped', 'cpu', 'rtt_ms', 'backlog_max_bytes', 'notes',
    'zd_branch', 'layout_check', 'queue_check', 'not_comparable', 'per_sender', 'start_spread_s')

TOOLS = ('neper', 'iperf3', 'iperf2')
# root qdiscs that limit a rate: where run.json does not say, the one device with such a root
# is taken as the bottleneck
SHAPERS = ('tbf', 'htb', 'hfsc', 'cake', 'cbq')


def _read(path):
    with open(path) as f:
        return f.read()


def _sum(values):
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def detect_tool(text):
    stripped = text.lstrip()
    if stripped.startswith('{'):
        return 'iperf3'
    if neper.KEY_VALUE.search(text) and ('VERSION=' in text or 'num_flows=' in text):
        return 'neper'
    return 'iperf2'


def _tool_summary(tool, text):
    if tool == 'neper':
        return neper.summary(text)
    if tool == 'iperf3':
        return iperf3.summary(text)
    return iperf2.summary(text)


def _established_lines(text):
    """established.txt's lines ``t count [bytes_received bytes_acked [read_s]
    [port:count[:received:acked] ...]]`` -> ``(t, count[, bytes_received, bytes_acked[, read_s]]),
    {port: count}, {port: (received, acked)}`` for each (samplers before sock_diag wrote neither
    read_s nor each port's bytes)."""
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        try:
            numbers = [f for f in fields if ':' not in f]
            pairs = [[int(x) for x in f.split(':')] for f in fields[len(numbers):]]
            if len(numbers) not in (2, 4, 5) or (pairs and len(numbers) < 4) or \
                    numbers != fields[:len(numbers)] or any(len(p) not in (2, 4) for p in pairs):
                raise ValueError(line)
            point = (float(numbers[0]),) + tuple(int(x) for x in numbers[1:4]) + \
                tuple(float(x) for x in numbers[4:])
            yield (point, dict((p[0], p[1]) for p in pairs),
                   dict((p[0], (p[2], p[3])) for p in pairs if len(p) == 4))
        except ValueError:
            raise ParseError('established: line %d is not "t count [bytes_received bytes_acked '
                             '[read_s] [port:count[:received:acked] ...]]": %r' % (number, line))


def _established(text):
    """established.txt -> tuples ``(t, count[, bytes_received, bytes_acked[, read_s]])``."""
    return [point for point, _counts, _bytes in _established_lines(text)]


def _client_times(text):
    """client_times.json -> ``{'started_s': float, 'exited_s': [float or None, ...],
    'ports': [int, ...]}`` (ports: each process's data port, when known), with ``start_at`` and
    ``started_epoch`` (Unix epoch seconds) when the client wrote them."""
    try:
        times = json.loads(text)
        exited = times['exited_s']
        if not isinstance(exited, list) or not all(t is None or isinstance(t, (int, float))
                                                   for t in exited):
            raise ValueError(exited)
        ports = times.get('ports') or []
        if not isinstance(ports, list) or not all(isinstance(p, int) for p in ports):
            raise ValueError(ports)
        stopped = times.get('stopped_s')
        found = {'started_s': float(times['started_s']), 'exited_s': exited, 'ports': ports,
                 'stopped_s': None if stopped is None else float(stopped)}
        for key in ('start_at', 'started_epoch'):
            if times.get(key) is not None:
                found[key] = float(times[key])
        return found
    except (ValueError, KeyError, TypeError) as e:
        raise ParseError('client_times: not {"started_s": seconds, "exited_s": [seconds or '
                         'null, ...], "ports": [port, ...], "stopped_s": seconds or null}: %s' % e)


def _columns(text, name, header, types):
    """Whitespace-separated lines of ``len(types)`` fields ('#' comments skipped) -> tuples."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
            continue
        try:
            if len(fields) != len(types):
                raise ValueError(line)
            found.append(tuple(kind(field) for kind, field in zip(types, fields)))
        except ValueError:
            raise ParseError('%s: line %d is not "%s": %r' % (name, number, header, line))
    return found


def _flows(text):
    """flows.txt -> ``[(local, peer, first_seen_s, last_seen_s, bytes_received, bytes_acked)]``."""
    return _columns(text, 'flows', 'local peer first_seen_s last_seen_s bytes_received '
                    'bytes_acked', (str, str, float, float, int, int))


def _connecting(text):
    """connecting.txt -> ``[(t, sockets in SYN-SENT)]``."""
    return _columns(text, 'connecting', 't count', (float, int))


def _host_json(text):
    """host.json -> ``{'kernelrelease', 'devices': {dev: {txqueuelen, mtu, qdisc}}, 'egress'}``."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get('devices', {}), dict):
            raise ValueError('not an object with "devices"')
        return data
    except (ValueError, TypeError) as e:
        raise ParseError('host: not {"kernelrelease": ..., "devices": {...}}: %s' % e)


def read_host(path, tool=None):
    """Everything one host role left, parsed: ``(host dict, problems)``."""
    host = {}
    problems = []
    role = os.path.basename(path)

    def attempt(name, func):
        full = os.path.join(path, name)
        if not os.path.exists(full):
            return None
        try:
            return func(_read(full))
        except (ParseError, ValueError, KeyError, TypeError, IOError, OSError) as e:
            problems.append('%s/%s: %s' % (role, name, e))
            return None

    for side in ('client', 'server'):
        name = '%s.txt' % side
        summary = attempt(name, lambda text: _tool_summary(tool or detect_tool(text), text))
        if summary is not None:
            summary['tool'] = tool or detect_tool(_read(os.path.join(path, name)))
            host[side] = summary
    samples = attempt('samples.csv', lambda text: list(neper_samples.flow_bytes(text).values()))
    if samples is not None:
        host['samples_flow_bytes'] = samples
    counters = attempt('nstat.txt', nstat.parse)
    if counters is not None:
        host['nstat'] = nstat.nonzero(counters)
        host['_nstat_names'] = set(counters)

    def parse_before(text):
        host['_tc_before'] = tc_stats.load(text)
        return tc_stats.parse(host['_tc_before'])

    before = attempt('tc_before.json', parse_before)
    after = attempt('tc_after.json', tc_stats.parse)
    if after is not None:
        deltas = tc_stats.delta(before or [], after)
        devices = sorted(set(q['dev'] for q in deltas))
        host['qdisc'] = {
            'shaped_devices': sorted(set(q['dev'] for q in after if q['root'] and q['kind'] in SHAPERS)),
            'total': tc_stats.totals(deltas),
            'devices': dict((d, tc_stats.totals(deltas, [d])) for d in devices),
            'reset': [tc_stats.key(q) for q in deltas if q['reset']],
        }
        if before is None:
            problems.append('%s/tc_before.json: missing; qdisc counters are totals since creation' % role)
    raw_during = attempt('tc_during.jsonl', tc_stats.load_samples)
    if raw_during:
        host['_tc_samples'] = raw_during
    during = [(t, tc_stats.parse(qdiscs)) for t, qdiscs in raw_during or []]
    if during:
        devices = sorted(set(q['dev'] for _t, qs in during for q in qs))
        host['backlog_max_bytes'] = dict((d, tc_stats.backlog_max(during, [d])) for d in devices)
    if os.path.exists(os.path.join(path, 'cpu_after.txt')):
        host['cpu'] = attempt('cpu_after.txt', lambda after_text: cpu.usage(
            _read(os.path.join(path, 'cpu_before.txt')), after_text))
    elif os.path.exists(os.path.join(path, 'mpstat.txt')):
        host['cpu'] = attempt('mpstat.txt', cpu.mpstat_usage)
    lines = attempt('established.txt', lambda text: list(_established_lines(text)))
    if lines:
        host['established'] = [point for point, _counts, _bytes in lines]
        by_port = [(point[0], counts) for point, counts, _bytes in lines if counts]
        if by_port:
            host['established_by_port'] = by_port
        bytes_by_port = [(point[0], sums) for point, _counts, sums in lines if sums]
        if bytes_by_port:
            host['bytes_by_port'] = bytes_by_port
    for key, name, parse in (('client_times', 'client_times.json', _client_times),
                             ('flows', 'flows.txt', _flows),
                             ('connecting', 'connecting.txt', _connecting),
                             ('host', 'host.json', _host_json)):
        value = attempt(name, parse)
        if value is not None:
            host[key] = value
    samples_ms = attempt('rtt.txt', rtt.parse)
    if samples_ms is not None:
        host['rtt_samples'] = samples_ms
    return host, problems


def _sides(hosts):
    senders = [r for r, h in hosts.items() if 'client' in h]
    receivers = [r for r, h in hosts.items() if 'server' in h]
    if not senders:
        senders = [r for r in hosts if r.startswith('sender')]
    if not receivers:
        receivers = [r for r in hosts if r.startswith('receiver')]
    return sorted(senders), sorted(receivers)


def _counter(hosts, roles, name):
    return _sum([hosts[r]['nstat'].get(name, 0) for r in roles if 'nstat' in hosts[r]])


def _counter_if_known(hosts, roles, name):
    """_counter, but None when no role's nstat has that counter at all (older kernels)."""
    known = [r for r in roles if name in hosts[r].get('_nstat_names', ())]
    return _counter(hosts, known, name) if known else None


def _bottleneck_rate(run):
    if run.get('bottleneck_rate_bps'):
        return float(run['bottleneck_rate_bps'])
    rate = ((run.get('params') or {}).get('bottleneck') or {}).get('rate')
    if rate:
        try:
            return float(units.parse_rate(rate) * 8)
        except ValueError:
            return None
    return None


def _throughput(tool, hosts, senders, receivers, duration):
    servers = [hosts[r]['server'] for r in receivers if 'server' in hosts[r]]
    clients = [hosts[r]['client'] for r in senders if 'client' in hosts[r]]
    if tool == 'iperf2':
        received = _sum([s['bytes'] for s in servers])
        seconds = max([c['seconds'] for c in clients if c['seconds']] or [duration or 0]) or None
        return received * 8.0 / seconds if received is not None and seconds else None
    value = _sum([s['throughput_bps'] for s in servers])
    if value is None:
        echoed = [c['throughput_bps'] for c in clients if c['throughput_bps'] is not None]
        value = max(echoed) if echoed else None
    return value


# A sample read in at most this long, or in at most SLOW_READ_FACTOR times the plateau's median
# read, is sharp enough to end a window (see _sampled_window).
SHARP_READ_S = 0.05
SLOW_READ_FACTOR = 1.5


def _sharp_ends(stretch, limit):
    """``stretch`` from its first to its last sample read in at most ``limit`` s (samples
    without a read time count as sharp); [] when fewer than two are."""
    sharp = [i for i, p in enumerate(stretch) if len(p) < 5 or p[4] <= limit]
    if len(sharp) < 2:
        return []
    return stretch[sharp[0]:sharp[-1] + 1]


def _sampled_window(points, column=2):
    """(bit/s, seconds, most connections, (first t, last t)) from the bytes received (``column``
    3: acked) over the longest stretch of samples in which no connection closed (the count never
    fell) and the count stayed within 1 % of its maximum (every flow up but the last stragglers
    still connecting); None without such a stretch of two samples. A connection's bytes leave the
    sum when it closes, so no stretch may span a closure; one that opens within it brings only
    bytes received within it.

    A stretch begins and ends at samples that were read quickly (read_s, established.txt's fifth
    column, at most SHARP_READ_S or SLOW_READ_FACTOR times the median of the samples near the
    maximum): a read over 40,000 sockets while they were still connecting took up to 1.8 s (0.2 s
    later), and while the rate climbs, the bytes of a slow read stamped with its middle are too
    few for that instant (measured: 96.4 Mbit/s of a tbf that passes at most 95.6 in payload)."""
    points = [p for p in points if len(p) >= 4]
    if not points:
        return None
    top = max(p[1] for p in points)
    floor = top - top // 100
    reads = sorted(p[4] for p in points if len(p) >= 5 and p[1] >= floor)
    limit = max(SHARP_READ_S, SLOW_READ_FACTOR * reads[(len(reads) - 1) // 2]) if reads else None
    best = []
    stretch = []
    for point in points:
        if point[1] < floor:
            stretch = []
            continue
        if stretch and (point[1] < stretch[-1][1] or point[column] < stretch[-1][column]):
            stretch = []
        stretch.append(point)
        candidate = _sharp_ends(stretch, limit) if limit is not None else stretch
        if len(candidate) >= 2 and (len(best) < 2 or
                                    candidate[-1][0] - candidate[0][0] > best[-1][0] - best[0][0]):
            best = list(candidate)
    if len(best) < 2 or best[-1][0] <= best[0][0]:
        return None
    seconds = best[-1][0] - best[0][0]
    return (best[-1][column] - best[0][column]) * 8.0 / seconds, seconds, top, (best[0][0], best[-1][0])


def _sampled_throughput(hosts, receivers):
    """The receiving roles' sampled throughput (see _sampled_window), summed, as
    ``{'bps', 'window_s', 'connections', 'window'}`` (window: first and last t, on the
    receivers' sampling clocks); None when a role has no usable stretch."""
    windows = [_sampled_window(hosts[r].get('established') or []) for r in receivers]
    if not windows or None in windows:
        return None
    return {'bps': sum(w[0] for w in windows), 'window_s': round(min(w[1] for w in windows), 3),
            'connections': sum(w[2] for w in windows),
            'window': [min(w[3][0] for w in windows), max(w[3][1] for w in windows)]}


def _per_flow(tool, hosts, receivers, senders):
    """Received bytes of every flow the receiving side saw, and the zero-byte threshold."""
    flows = []
    seen = False
    for role in receivers:
        host = hosts[role]
        if host.get('samples_flow_bytes'):
            flows.extend(host['samples_flow_bytes'])
            seen = True
        elif 'server' in host and 'per_flow_bytes' in host['server']:
            flows.extend(host['server']['per_flow_bytes'])
            seen = True
        elif tool == 'neper' and 'flows' in host:
            # neper writes no samples when its client is stopped: the sampler's own bytes
            flows.extend(flow[4] for flow in host['flows'])
            seen = True
        elif 'samples_flow_bytes' in host:
            seen = True
    if not seen and tool == 'iperf3':
        for role in senders:
            if 'client' in hosts[role]:
                flows.extend(hosts[role]['client']['per_flow_bytes'])
                seen = True
    threshold = iperf2.HEADER_BYTES if tool == 'iperf2' else 0
    return (flows if seen else None), threshold


def _last_before(points, end):
    """The last of ``(t, count)`` points taken half a second or more before ``end`` (at the very
    end the tools are already closing their connections); the first when none was."""
    within = [p for p in points if end is None or p[0] <= end - 0.5]
    return within[-1] if within else points[0]


def _test_end(points, exited, duration):
    """When a client's test ended on the sampling clock of its ``(t, count)`` points: when it
    exited, or ``duration`` after its connections were up (the tools time their tests from
    there; a client can linger long after, iperf2 with flows stuck in timeouts), whichever came
    first. The connections count as up from the sample before the count first reached its
    maximum, so that this end is never later than the real one."""
    ends = [exited] if exited is not None else []
    if duration is not None:
        top = max(count for _t, count in points)
        first = [count for _t, count in points].index(top)
        ends.append(points[max(first - 1, 0)][0] + duration)
    return min(ends) if ends else None


def _alive_by_process(host, duration):
    """Connections established at the end of each client process's own test, summed, when the
    sampler split its counts by port and client_times.json says which process used which port
    and when it exited: several iperf3 processes each time their test from their own last
    connection, so their ends can be seconds apart. None without those files."""
    times = host.get('client_times') or {}
    by_port = host.get('established_by_port')
    ports = times.get('ports') or []
    if not by_port or len(ports) != len(times.get('exited_s', [])):
        return None
    total = 0
    for port, exited in zip(ports, times['exited_s']):
        points = [(t, counts.get(port, 0)) for t, counts in by_port]
        total += _last_before(points, _test_end(points, exited, duration))[1]
    return total


def _alive(hosts, roles, duration):
    """Established connections at the end of the test (see _test_end), summed over roles."""
    counts = []
    for role in roles:
        host = hosts[role]
        if not host.get('established'):
            continue
        count = _alive_by_process(host, duration)
        if count is None:
            points = [p[:2] for p in host['established']]
            exits = [t for t in (host.get('client_times') or {}).get('exited_s', [])
                     if t is not None]
            end = _test_end(points, min(exits) if exits else None, duration)
            count = _last_before(points, end)[1]
        counts.append(count)
    return _sum(counts)


def _client_end(host):
    """When the client stopped or its first process exited (sampling clock), or None."""
    times = host.get('client_times') or {}
    if times.get('stopped_s') is not None:
        return times['stopped_s']
    exits = [t for t in times.get('exited_s', []) if t is not None]
    return min(exits) if exits else None


def _stalled_connect(hosts, roles):
    """Sockets in SYN-SENT at the senders' last sample half a second or more before the client
    ended (connecting.txt), summed; None without samples."""
    counts = []
    for role in roles:
        points = hosts[role].get('connecting')
        if points:
            counts.append(_last_before(points, _client_end(hosts[role]))[1])
    return _sum(counts)


def _connected(hosts, roles, tool):
    """Data connections the senders saw established at least once (flows.txt), less iperf3's
    control connections; None without flows.txt."""
    counts = []
    for role in roles:
        host = hosts[role]
        if 'flows' not in host:
            continue
        count = len(host['flows'])
        if tool == 'iperf3':
            count = max(count - (_processes(hosts, [role], 'client') or 0), 0)
        counts.append(count)
    return _sum(counts)


def _several_processes(hosts, roles):
    """Whether a host of ``roles`` ran more than one tool process on one side."""
    return any((hosts[r][side].get('processes') or 1) > 1
               for r in roles for side in ('client', 'server') if side in hosts[r])


def _processes(hosts, roles, side):
    """How many tool processes ran on ``side`` (client or server) of ``roles``; one when unsaid."""
    return _sum([hosts[r][side].get('processes') or 1 for r in roles if side in hosts[r]])


def device_name(names, device):
    """``device`` itself, or '' when the host's tc output came from ``show dev X`` (no names)."""
    names = list(names)
    if device in names:
        return device
    if names == ['']:
        return ''
    return None


def _qdisc_drops(hosts, roles, device=None):
    values = []
    for role in roles:
        q = hosts.get(role, {}).get('qdisc')
        if q is None:
            continue
        if device is None:
            values.append(q['total']['drops'])
        elif device_name(q['devices'], device) is not None:
            values.append(q['devices'][device_name(q['devices'], device)]['drops'])
    return _sum(values)


def _role_dirs(hosts, role):
    """The host directories of a host role: ``role`` itself (one host), else ``role-<host>``
    for each of its hosts (experiment_pairs.role_dir)."""
    if role in hosts:
        return [role]
    return sorted(d for d in hosts if d.startswith(role + '-'))


def _find_bottleneck(run, hosts):
    """(host role, device, how it was found) of the bottleneck qdisc, or Nones."""
    for spec in (run.get('bottleneck'), (run.get('params') or {}).get('bottleneck')):
        if isinstance(spec, dict) and spec.get('host_role') and spec.get('device'):
            return spec['host_role'], spec['device'], 'run.json'
    shaped = [(role, dev) for role, h in sorted(hosts.items())
              for dev in (h.get('qdisc') or {}).get('shaped_devices', [])]
    if len(shaped) == 1:
        return shaped[0][0], shaped[0][1], 'the only rate-limiting root qdisc'
    return None, None, None


def _sender_egress(run, hosts, senders):
    """``(role, device)`` the sender's traffic leaves by: its route to the server (host.json),
    else the bottleneck's device when the bottleneck is a sender's; Nones when unknown."""
    for role in senders:
        egress = (hosts[role].get('host') or {}).get('egress') or {}
        if egress.get('dev'):
            return role, egress['dev']
    role, device, _source = _find_bottleneck(run, hosts)
    mine = [d for d in (_role_dirs(hosts, role) if role is not None else []) if d in senders]
    if mine:
        return mine[0], device
    return None, None


def _txqueuelen(host, device):
    devices = (host.get('host') or {}).get('devices') or {}
    return (devices.get(device) or {}).get('txqueuelen')


def _zd_guard(run, hosts, senders):
    """``(zD branch, layout check, queue check, not-comparable reasons)`` of a run (see
    zd_checks): the branch from run.json (``zd_branch``), else from the senders' kernel release.
    Every sender is checked; the checks returned are the first failing sender's (else the first
    sender's), and each failing sender gives its reason (named when there are several)."""
    if 'zd_branch' in run:
        branch = run['zd_branch']
    else:
        releases = [(hosts[r].get('host') or {}).get('kernelrelease') for r in senders]
        branch = next((zd_checks.branch_of(r) for r in releases if zd_checks.branch_of(r)), None)
    checks = [_zd_checks(run, hosts, [s], branch) for s in senders] or \
        [_zd_checks(run, hosts, [], branch)]
    reasons = []
    for sender, (layout, queue) in zip(senders, checks):
        who = 'sender %s: ' % sender if len(senders) > 1 else ''
        found = []
        if layout and not layout['ok']:
            # a physical branch's tree is the hypervisor's, the same for every sender
            found.append('not comparable: the bottleneck tree cannot engage zD\'s %s branch: %s%s'
                         % (branch, '' if branch.startswith('physical') else who, layout['reason']))
        if queue and not queue['filled']:
            found.append(queue['reason'].replace('not comparable: ', 'not comparable: ' + who, 1)
                         if who else queue['reason'])
        reasons.extend(r for r in found if r not in reasons)
    layout = next((lay for lay, _q in checks if lay and not lay['ok']), checks[0][0])
    queue = next((q for _lay, q in checks if q and not q['filled']), checks[0][1])
    return branch, layout, queue, reasons


def _zd_checks(run, hosts, senders, branch):
    """``(layout check, queue check)`` of the senders' egress (the first one known; a sender is
    checked alone)."""
    s_role, s_dev = _sender_egress(run, hosts, senders)
    layout = None
    if branch:
        role, device = s_role, s_dev
        if branch.startswith('physical'):
            role, device, _source = _find_bottleneck(run, hosts)
            if role in senders:
                role = device = None
        if role is None or role not in hosts:
            layout = {'branch': branch, 'device': device, 'ok': False, 'found': None,
                      'reason': '%s acts on %s, and no such device is known for this run'
                                % (branch, "the hypervisor's tap" if branch.startswith('physical')
                                   else "the sender's egress")}
        else:
            tree = hosts[role].get('_tc_before') or next(
                (qdiscs for _t, qdiscs in hosts[role].get('_tc_samples') or []), [])
            layout = zd_checks.layout_check(branch, tree, device,
                                            _txqueuelen(hosts[role], device))
    queue = None
    if s_role is not None and hosts[s_role].get('_tc_samples'):
        qdisc = hosts[s_role].get('qdisc') or {}
        name = device_name(qdisc.get('devices', {}), s_dev)
        dropped = qdisc['devices'][name]['drops'] if name is not None else None
        queue = zd_checks.queue_check(hosts[s_role]['_tc_samples'], s_dev,
                                      _txqueuelen(hosts[s_role], s_dev), dropped)
    return layout, queue


def _pairs(run, senders, receivers):
    """run.json's pairs as ``(sender name, receiver name, sender dir, receiver dir, flows)``;
    without them (a run of one sender), each sender with the only receiver."""
    pairs = [(p.get('sender'), p.get('receiver'), p.get('sender_dir'), p.get('receiver_dir'), p.get('flows'))
             for p in run.get('pairs') or [] if isinstance(p, dict) and p.get('sender_dir')]
    if pairs:
        return pairs
    names = run.get('hosts') or {}
    sender = names.get('sender') if isinstance(names.get('sender'), str) else None
    receiver = names.get('receiver') if isinstance(names.get('receiver'), str) else None
    return [(sender, receiver, s, receivers[0] if len(receivers) == 1 else None,
             run.get('flows') if len(senders) == 1 else None) for s in senders]


def _start_times(run, hosts, pairs):
    """Each sender's start on the controller's clock: its client's ``started_epoch`` less its
    clock offset, where the offset is larger than its uncertainty (a smaller one cannot be told
    from none); None where unknown."""
    offsets = run.get('clock_offsets') or {}
    found = {}
    for sender, _receiver, s_dir, _r_dir, _flows in pairs:
        epoch = (hosts.get(s_dir, {}).get('client_times') or {}).get('started_epoch')
        if epoch is None:
            found[s_dir] = None
            continue
        clock = offsets.get(sender) or {}
        offset = clock.get('offset_s') or 0.0
        if abs(offset) <= (clock.get('uncertainty_s') or 0.0):
            offset = 0.0
        found[s_dir] = epoch - offset
    return found


def _receiver_share(hosts, s_dir, r_dir):
    """The bit/s the receiver took in on the sender's data ports (client_times.json) over the
    receiver's sampled window, the one of the run's own figure, so that the senders' shares add
    up to it; None when the receiver's samples have no bytes per port (one port, or a sampler
    that wrote only counts) or the sender's ports are unknown."""
    receiver = hosts.get(r_dir) or {}
    ports = (hosts[s_dir].get('client_times') or {}).get('ports') or []
    window = _sampled_window(receiver.get('established') or [])
    samples = dict(receiver.get('bytes_by_port') or [])
    if not ports or window is None:
        return None
    first, last = window[3]
    if first not in samples or last not in samples or \
            any(port not in samples[first] or port not in samples[last] for port in ports):
        return None
    received = sum(samples[last][port][0] - samples[first][port][0] for port in ports)
    return received * 8.0 / (last - first)


def _per_sender(run, tool, hosts, pairs, duration, starts, run_sampled):
    """One entry per pair: the sender's figures from its own output and, when its receiver
    serves no other pair, from the receiver's too. When the run's throughput is sampled
    (``run_sampled``), so is each sender's, over the receiver's window where it can
    (_receiver_share), else over the sender's own: its processes' own rates cover windows of
    their own (measured: one sender's neper reported 95.5 Mbit/s of a 100 Mbit/s bottleneck it
    shared with three others)."""
    served = {}
    for _s, _r, _sd, r_dir, _f in pairs:
        served[r_dir] = served.get(r_dir, 0) + 1
    known = [t for t in starts.values() if t is not None]
    entries = []
    for sender, receiver, s_dir, r_dir, flows in pairs:
        if s_dir not in hosts:
            continue
        alone = r_dir in hosts and served.get(r_dir) == 1
        sub = dict((d, hosts[d]) for d in (s_dir, r_dir) if d in hosts)
        receivers = [r_dir] if alone else []
        throughput = _throughput(tool, sub, [s_dir], receivers, duration)
        client = hosts[s_dir].get('client') or {}
        if throughput is None and tool == 'iperf2' and client.get('bytes') is not None and client.get('seconds'):
            throughput = client['bytes'] * 8.0 / client['seconds']
        source = 'tool' if throughput is not None else None
        share = _receiver_share(hosts, s_dir, r_dir) if run_sampled else None
        window = _sampled_window(hosts[s_dir].get('established') or [], column=3) \
            if share is None and (run_sampled or _several_processes(sub, list(sub))) else None
        if share is not None:
            throughput, source = share, 'sampled'
        elif window:
            # as for the run's figure: processes' own rates need not cover one window (without
            # a usable stretch the processes' own rates stay, as the run's problems say)
            throughput, source = window[0], 'sampled'
        per_flow, threshold = _per_flow(tool, sub, receivers, [s_dir])
        if per_flow is None and tool in ('iperf2', 'neper'):
            if tool == 'iperf2' and 'per_flow_bytes' in client:
                per_flow = client['per_flow_bytes']
            elif 'flows' in hosts[s_dir]:
                # the kernel counts the SYN as one byte acked
                per_flow = [max(flow[5] - 1, 0) for flow in hosts[s_dir]['flows']]
        summary = neper_samples.summarize_flows(per_flow, threshold) if per_flow is not None else None
        alive = _alive(hosts, [s_dir], duration)
        if alive is not None and tool == 'iperf3':
            alive = max(alive - (_processes(hosts, [s_dir], 'client') or 0), 0)
        start = starts.get(s_dir)
        entries.append({
            'sender': sender, 'receiver': receiver, 'dir': s_dir, 'receiver_dir': r_dir,
            'flows': flows, 'throughput_bps': throughput, 'throughput_source': source,
            'flows_alive': alive,
            'flows_aborted': _counter(hosts, [s_dir], 'TcpExtTCPAbortOnTimeout'),
            'flows_zero_bytes': summary['zero_bytes'] if summary else None,
            'jain_index': summary['jain_index'] if summary else None,
            'retrans_segs': _counter(hosts, [s_dir], 'TcpRetransSegs'),
            'rto_count': _counter(hosts, [s_dir], 'TcpExtTCPTimeouts'),
            'local_qdisc_drops': _qdisc_drops(hosts, [s_dir]),
            'start_offset_s': round(start - min(known), 6) if start is not None and known else None,
        })
    return entries


def build(run, hosts, problems):
    """The record from run.json's content and the parsed hosts."""
    params = run.get('params') or {}
    senders, receivers = _sides(hosts)
    tool = params.get('tool')
    if tool == 'iperf':
        tool = 'iperf2'
    if tool not in TOOLS:
        found = [h[s]['tool'] for h in hosts.values() for s in ('server', 'client') if s in h]
        tool = found[0] if found else tool
    duration = params.get('duration')
    rate = _bottleneck_rate(run)
    throughput = _throughput(tool, hosts, senders, receivers, duration)
    throughput_source = 'tool' if throughput is not None else None
    sampled = _sampled_throughput(hosts, receivers)
    flows, threshold = _per_flow(tool, hosts, receivers, senders)
    flow_summary = neper_samples.summarize_flows(flows, threshold) if flows is not None else None
    b_role, b_dev, b_source = _find_bottleneck(run, hosts)
    stopped = bool(run.get('client_stopped')) or any(
        (hosts[r].get('client_times') or {}).get('stopped_s') is not None for r in senders)
    notes = list(run.get('notes') or [])
    if stopped:
        # the tool's own figure covers a test that never ended as planned
        if sampled is not None:
            throughput, throughput_source = sampled['bps'], 'sampled'
        else:
            throughput, throughput_source = None, None
            problems = problems + ['the client was stopped and the receiver\'s samples have no '
                                   'stretch with the connections up: no throughput']
    elif _several_processes(hosts, senders + receivers):
        # Each process times its own test from its own start (neper's once all its flows are
        # connected): their windows need not overlap, so the sum of their rates may overstate
        # what was delivered at once (measured: 2.1 times the bottleneck with 2000 neper flows
        # in 2 processes).
        if sampled is not None:
            throughput, throughput_source = sampled['bps'], 'sampled'
        else:
            problems = problems + ['%s ran several processes whose test windows need not '
                                   'overlap, and the receiver\'s samples have no stretch with '
                                   'every connection up: throughput is the sum of their own '
                                   'rates and may overstate the aggregate' % tool]

    started = flow_summary['flows'] if flow_summary else None
    if not started:
        clients = [hosts[r]['client'] for r in senders if 'client' in hosts[r]]
        started = _sum([c.get('streams') or c.get('connect_total') for c in clients]) or started
    aborted = _counter(hosts, senders, 'TcpExtTCPAbortOnTimeout')
    # established.txt counts what ss saw on the data ports; each iperf3 process keeps one
    # control connection there, which is not a flow.
    alive = _alive(hosts, senders, duration)
    if alive is not None and tool == 'iperf3':
        alive = max(alive - (_processes(hosts, senders, 'client') or 0), 0)
    if alive is None:
        alive = _alive(hosts, receivers, duration)
        if alive is not None and tool == 'iperf3':
            alive = max(alive - (_processes(hosts, receivers, 'server') or 0), 0)
    if alive is None and started is not None and aborted is not None:
        alive = started - aborted

    connect_failures = _counter(hosts, senders, 'TcpAttemptFails')
    if connect_failures is None:
        connect_failures = _sum([hosts[r]['client'].get('connect_errors') for r in senders
                                 if 'client' in hosts[r]])

    reds = [h['qdisc']['total']['marked'] for h in hosts.values() if 'qdisc' in h]
    if b_role is not None and b_dev is not None:
        # a role with several hosts (several senders) has a directory per host: role-<host>
        b_dirs = _role_dirs(hosts, b_role)
        bottleneck_drops = _qdisc_drops(hosts, b_dirs, b_dev)
        found = [(hosts[d].get('backlog_max_bytes') or {}) for d in b_dirs]
        found = [b.get(device_name(b, b_dev)) for b in found]
        found = [v for v in found if v is not None]
        backlog = max(found) if found else None
    else:
        bottleneck_drops = None
        backlogs = [v for h in hosts.values() for v in (h.get('backlog_max_bytes') or {}).values()]
        backlog = max(backlogs) if backlogs else None

    branch, layout, queue, not_comparable = _zd_guard(run, hosts, senders)
    connected = _connected(hosts, senders, tool)
    if stopped and connected == 0:
        not_comparable.append('not comparable: the client was stopped before any flow connected')

    pairs = _pairs(run, senders, receivers)
    starts = _start_times(run, hosts, pairs)
    known_starts = [t for t in starts.values() if t is not None]
    spread = round(max(known_starts) - min(known_starts), 6) if len(known_starts) > 1 else None
    spread_max = run.get('start_spread_max_s')
    if spread is not None and spread_max is not None and spread > spread_max:
        not_comparable.append('not comparable: the senders started %.3f s apart (clock offsets '
                              'corrected), more than experiment_start_spread_max (%s s)'
                              % (spread, spread_max))

    rtt_samples = [s for h in hosts.values() for s in h.get('rtt_samples', [])]
    has_rtt = any('rtt_samples' in h for h in hosts.values())

    record = {
        'status': run.get('status', 'failed'),
        'reason': run.get('reason'),
        'mode': run.get('mode'),
        'variant': run.get('variant', 'default'),
        'flows': run.get('flows'),
        'rep': run.get('rep'),
        'tool': tool,
        'duration_s': duration,
        'throughput_bps': throughput,
        'bottleneck_rate_bps': rate,
        'fraction_of_bottleneck': throughput / rate if throughput is not None and rate else None,
        'flows_started': started,
        'flows_alive': alive,
        'flows_aborted': aborted,
        'flows_zero_bytes': flow_summary['zero_bytes'] if flow_summary else None,
        'jain_index': flow_summary['jain_index'] if flow_summary else None,
        'retrans_segs': _counter(hosts, senders, 'TcpRetransSegs'),
        'rto_count': _counter(hosts, senders, 'TcpExtTCPTimeouts'),
        'local_qdisc_drops': _qdisc_drops(hosts, senders),
        'bottleneck_drops': bottleneck_drops,
        'ecn_marks': _sum(reds),
        'ecn_ce_pkts': _counter(hosts, receivers, 'IpExtInCEPkts'),
        'listen_overflows': _counter(hosts, receivers, 'TcpExtListenOverflows'),
        'connect_attempts': _counter(hosts, senders, 'TcpActiveOpens'),
        'connect_failures': connect_failures,
        'syn_retrans': _counter_if_known(hosts, senders, 'TcpExtTCPSynRetrans'),
        'flows_connected': connected,
        'flows_stalled_connect': _stalled_connect(hosts, senders),
        'client_stopped': stopped,
        'notes': notes,
        'zd_branch': branch,
        'kernel': run.get('kernel'),
        'layout_check': layout,
        'queue_check': queue,
        'not_comparable': not_comparable,
        'cpu': dict((r, h['cpu']) for r, h in sorted(hosts.items()) if h.get('cpu')) or None,
        'rtt_ms': rtt.summary(rtt_samples) if has_rtt else None,
        'backlog_max_bytes': backlog,
        'bottleneck': {'host_role': b_role, 'device': b_dev, 'source': b_source} if b_role is not None else None,
        'senders': senders,
        'receivers': receivers,
        'flow_bytes': flow_summary,
        'throughput_source': throughput_source,
        'throughput_sampled': sampled,
        'problems': problems,
    }
    record['per_sender'] = _per_sender(run, tool, hosts, pairs, duration, starts,
                                       throughput_source == 'sampled')
    idle = [e['sender'] or e['dir'] for e in record['per_sender']
            if e['throughput_source'] == 'sampled' and e['throughput_bps'] == 0]
    if not (sampled and len(idle) < len(record['per_sender'])):
        idle = []
    record['idle_senders'] = idle
    if idle:
        first, last = sampled['window']
        notes.append('%s sent nothing that reached the receiver from %.1f to %.1f s, the window '
                     'of the run\'s throughput, with %d connections up: the run\'s figure is '
                     'the other senders\'%s' % (
                         ', '.join(idle), first, last, sampled['connections'],
                         ' (neper sends only once all flows of its process are connected; '
                         '--async-connect in experiment_client_args starts with those that are)'
                         if tool == 'neper' else ''))
    record['start_spread_s'] = spread
    record['start_at'] = run.get('start_at')
    record['qdisc_drops_by_host'] = dict((role, h['qdisc']['total']['drops'])
                                         for role, h in sorted(hosts.items()) if 'qdisc' in h) or None
    record['per_host'] = dict((role, _raw(host)) for role, host in sorted(hosts.items()))
    return record


def _raw(host):
    """What a host contributed, without the bulky per-flow and per-sample lists."""
    raw = {}
    for key, value in host.items():
        if key in ('samples_flow_bytes', 'rtt_samples') or key.startswith('_'):
            continue
        if key == 'flows':
            value = {'connections': len(value), 'bytes_received': sum(f[4] for f in value),
                     'bytes_acked': sum(f[5] for f in value)}
        if key == 'connecting':
            value = {'samples': len(value), 'max': max([c for _t, c in value] or [0]),
                     'last': list(value[-1]) if value else None}
        if key in ('client', 'server'):
            value = dict((k, v) for k, v in value.items() if k != 'per_flow_bytes')
        if key == 'established':
            value = {'samples': len(value), 'first': list(value[0]), 'last': list(value[-1]),
                     'max': max(p[1] for p in value)}
        if key in ('established_by_port', 'bytes_by_port'):
            value = {'samples': len(value), 'ports': sorted(set(p for _t, c in value for p in c))}
        raw[key] = value
    return raw


def load_run(run_dir):
    """run.json's content; a missing or broken run.json yields a failed run naming the cause."""
    path = os.path.join(run_dir, 'run.json')
    try:
        with open(path) as f:
            run = json.load(f)
    except (IOError, OSError, ValueError) as e:
        return {'status': 'failed', 'reason': 'run.json unreadable: %s' % e}
    if not isinstance(run, dict):
        return {'status': 'failed', 'reason': 'run.json is not a JSON object'}
    return run


def normalise(run_dir):
    """Parse every host role under ``run_dir`` -> the record (a dict, see RECORD_KEYS)."""
    if not os.path.isdir(run_dir):
        raise ParseError('run_dir %s is not a directory' % run_dir)
    run = load_run(run_dir)
    tool = (run.get('params') or {}).get('tool')
    tool = 'iperf2' if tool == 'iperf' else tool
    hosts = {}
    problems = []
    for name in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, name)
        if os.path.isdir(path):
            hosts[name], found = read_host(path, tool if tool in TOOLS else None)
            problems.extend(found)
    return build(run, hosts, problems)


def dumps(record):
    return json.dumps(record, indent=1, sort_keys=True) + '\n'
