# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RTT samples from a header-only capture taken on the data sender.

A sample is the time from the first transmission of a data segment to the first ACK that covers
it; segments sent more than once give no sample (Karn), as in tcptrace. Sequence numbers compare
modulo 2^32, so a flow goes on giving samples after its sequence numbers wrap (every 4 GiB, 34 s
at 1 Gbit/s). Reads classic pcap (tcpdump -w) with Ethernet or Linux cooked (SLL, SLL2) framing,
IPv4 and IPv6.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import contextlib
import os
import signal
import struct
import time

from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner

SNAPLEN = 96
LINKTYPE_OFFSETS = {1: (12, 14), 113: (14, 16), 276: (0, 20)}  # ethertype offset, payload offset
PCAP_MAGIC_US = 0xa1b2c3d4
PCAP_MAGIC_NS = 0xa1b23c4d
TCP_FIN, TCP_SYN, TCP_ACK = 0x01, 0x02, 0x10
SEQ_MASK = 0xffffffff
SEQ_HALF = 1 << 31
# The largest window TCP can offer: 65535 << 14 (RFC 7323, section 2.3), just under 2^30 bytes.
MAX_WINDOW = 65535 << 14
# Outstanding segments kept per flow. All of them lie within one window (record_sent drops what
# is older), so a full 2^30-byte window fits in segments of 1 KiB on average: a sender's
# MSS-sized (1448 bytes and more) or GSO-sized segments always fit, and a flow of smaller ones
# that fills a whole 1 GiB window only loses the samples of its oldest segments. It bounds the
# memory of a flow whose ACKs the capture does not see at about 150 MB.
MAX_OUTSTANDING = 1 << 20
# tcpdump gets packets from the kernel a buffer at a time, each handed over at the latest 1 s
# (tcpdump's pcap_set_timeout) after its first packet; a SIGINT before that loses the buffer, so
# the last second of a run would be missing from the capture.
FLUSH_WAIT_S = 1.5


def start_capture(run_dir, netns, device, ports, runner=None):
    """Start tcpdump on ``device`` for ``ports``; ``runner`` (default a module-less one in
    ``netns``) records its argv. It runs until stop_capture, past the module's own commands."""
    path = os.path.join(run_dir, 'capture.pcap')
    expr = []
    for port in ports:
        expr += ['tcp', 'port', str(port), 'or']
    argv = ['tcpdump', '-i', device, '-s', str(SNAPLEN), '-n', '-U', '-w', path] + expr[:-1]
    err_path = os.path.join(run_dir, '.tcpdump.err')
    proc = (runner or Runner(None, netns=netns)).start(argv, stderr=err_path)
    # tcpdump says "listening on" once the capture is open.
    deadline = time.time() + 5
    while time.time() < deadline and proc.poll() is None:
        with open(err_path) as f:
            if 'listening on' in f.read():
                break
        time.sleep(0.05)
    return proc


def stop_capture(proc, run_dir):
    if proc.poll() is None:
        time.sleep(FLUSH_WAIT_S)
        Runner.stop(proc, signal.SIGINT, wait=10)
    path = os.path.join(run_dir, 'capture.pcap')
    if os.path.exists(path):
        with open(os.path.join(run_dir, 'rtt.txt'), 'w') as f:
            for sample in rtt_samples(path):
                f.write('%.3f\n' % sample)


def packets(path):
    """(time_s, linktype, frame bytes) of every packet of a classic pcap file."""
    with open(path, 'rb') as f:
        header = f.read(24)
        if len(header) < 24:
            return
        magic = struct.unpack('<I', header[:4])[0]
        if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            endian = '<'
        else:
            endian = '>'
            magic = struct.unpack('>I', header[:4])[0]
        if magic not in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            raise ValueError('%s is not a classic pcap file (magic 0x%08x); capture with '
                             'tcpdump -w, not pcapng' % (path, magic))
        nano = magic == PCAP_MAGIC_NS
        linktype = struct.unpack(endian + 'I', header[20:24])[0]
        rec = struct.Struct(endian + 'IIII')
        while True:
            head = f.read(16)
            if len(head) < 16:
                return
            sec, frac, incl = rec.unpack(head)[:3]
            data = f.read(incl)
            yield sec + frac / (1e9 if nano else 1e6), linktype, data


def tcp_segment(linktype, frame):
    """(src, dst, sport, dport, seq, ack, flags, payload_len) or None."""
    if linktype not in LINKTYPE_OFFSETS:
        return None
    et_off, off = LINKTYPE_OFFSETS[linktype]
    if len(frame) < off:
        return None
    ethertype = struct.unpack('>H', frame[et_off:et_off + 2])[0]
    if ethertype == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0f) * 4
        if frame[off + 9] != 6 or ihl < 20:
            return None
        total = struct.unpack('>H', frame[off + 2:off + 4])[0]
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        tcp = off + ihl
        ip_payload = total - ihl
    elif ethertype == 0x86dd and len(frame) >= off + 40:
        if frame[off + 6] != 6:
            return None
        ip_payload = struct.unpack('>H', frame[off + 4:off + 6])[0]
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        tcp = off + 40
    else:
        return None
    if len(frame) < tcp + 14:
        return None
    sport, dport, seq, ack = struct.unpack('>HHII', frame[tcp:tcp + 12])
    doff = (frame[tcp + 12] >> 4) * 4
    flags = frame[tcp + 13]
    return src, dst, sport, dport, seq, ack, flags, max(0, ip_payload - doff)


def seq_add(seq, n):
    return (seq + n) & SEQ_MASK


def seq_before(a, b):
    """a comes before b in the 32-bit sequence space (RFC 1982 serial number arithmetic)."""
    return 0 < ((b - a) & SEQ_MASK) < SEQ_HALF


def seq_at_or_before(a, b):
    return a == b or seq_before(a, b)


def new_outstanding():
    return collections.deque(maxlen=MAX_OUTSTANDING)


def record_sent(queue, highest, flow, seq, end, t):
    """Note a segment covering (seq, end] sent at t in the flow's queue of outstanding segments."""
    top = highest.get(flow)
    if top is not None and seq_before(seq, top):
        # Some of it was sent before: the segments it overlaps give no sample (Karn).
        for item in queue:
            if seq_before(seq, item[0]):
                item[2] = True
                if seq_at_or_before(end, item[0]):
                    break
    if top is None or seq_before(top, end):
        highest[flow] = end
        # Data more than a window behind what is sent now has been acknowledged, whether the
        # capture saw that ACK or not: dropping it keeps every queue within 2^30 bytes of
        # sequence space, where seq_before orders its items.
        acked_by_now = seq_add(end, -MAX_WINDOW)
        while queue and seq_at_or_before(queue[0][0], acked_by_now):
            queue.popleft()
        queue.append([end, t, False])


def rtt_samples(path):
    """RTT samples in milliseconds, in capture order."""
    pending = {}   # flow -> deque of [end_seq, t_sent, retransmitted], ascending end_seq
    highest = {}   # flow -> highest end_seq sent
    samples = []
    with contextlib.closing(packets(path)) as capture:
        for t, linktype, frame in capture:
            seg = tcp_segment(linktype, frame)
            if seg is None:
                continue
            src, dst, sport, dport, seq, ack, flags, length = seg
            flow = (src, sport, dst, dport)
            syn_fin = 1 if flags & (TCP_SYN | TCP_FIN) else 0
            if length or syn_fin:
                end = seq_add(seq, length + syn_fin)
                if flags & TCP_SYN and highest.get(flow) != end:
                    # A new connection on the same addresses and ports: a new sequence space.
                    pending.pop(flow, None)
                    highest.pop(flow, None)
                queue = pending.get(flow)
                if queue is None:
                    queue = pending[flow] = new_outstanding()
                record_sent(queue, highest, flow, seq, end, t)
            if flags & TCP_ACK:
                queue = pending.get((dst, dport, src, sport))
                newest = None
                while queue and seq_at_or_before(queue[0][0], ack):
                    newest = queue.popleft()
                if newest is not None and not newest[2]:
                    samples.append((t - newest[1]) * 1000.0)
    return samples
