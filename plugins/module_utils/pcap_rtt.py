# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RTT samples from a header-only capture taken on the data sender.

A sample is the time from the first transmission of a data segment to the first ACK that covers
it; segments sent more than once give no sample (Karn), as in tcptrace. Reads classic pcap
(tcpdump -w) with Ethernet or Linux cooked (SLL) framing, IPv4 and IPv6.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import struct
import subprocess
import time

from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import netns_argv

SNAPLEN = 96
LINKTYPE_OFFSETS = {1: (12, 14), 113: (14, 16), 276: (0, 20)}  # ethertype offset, payload offset


def start_capture(run_dir, netns, device, ports):
    path = os.path.join(run_dir, 'capture.pcap')
    expr = []
    for port in ports:
        expr += ['tcp', 'port', str(port), 'or']
    argv = ['tcpdump', '-i', device, '-s', str(SNAPLEN), '-n', '-U', '-w', path] + expr[:-1]
    err = open(os.path.join(run_dir, '.tcpdump.err'), 'w')
    proc = subprocess.Popen(netns_argv(argv, netns), stdout=subprocess.DEVNULL, stderr=err)
    # tcpdump says "listening on" once the capture is open.
    deadline = time.time() + 5
    while time.time() < deadline and proc.poll() is None:
        with open(err.name) as f:
            if 'listening on' in f.read():
                break
        time.sleep(0.05)
    return proc


def stop_capture(proc, run_dir):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
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
        if magic in (0xa1b2c3d4, 0xa1b23c4d):
            endian = '<'
        else:
            endian = '>'
            magic = struct.unpack('>I', header[:4])[0]
        nano = magic == 0xa1b23c4d
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
    if linktype == 276:
        ethertype = struct.unpack('>H', frame[0:2])[0]
    else:
        ethertype = struct.unpack('>H', frame[et_off:et_off + 2])[0]
    if ethertype == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0f) * 4
        if frame[off + 9] != 6:
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


def rtt_samples(path):
    """RTT samples in milliseconds, in capture order."""
    pending = {}   # flow -> list of [end_seq, t_sent, retransmitted], ascending end_seq
    highest = {}   # flow -> highest end_seq sent
    samples = []
    for t, linktype, frame in packets(path):
        seg = tcp_segment(linktype, frame)
        if seg is None:
            continue
        src, dst, sport, dport, seq, ack, flags, length = seg
        flow = (src, sport, dst, dport)
        syn_fin = 1 if flags & 0x03 else 0
        if length or syn_fin:
            end = seq + length + syn_fin
            queue = pending.setdefault(flow, [])
            if flow in highest and end <= highest[flow]:
                for item in queue:
                    if seq < item[0] <= end:
                        item[2] = True
            else:
                highest[flow] = end
                queue.append([end, t, False])
        if flags & 0x10:
            reverse = (dst, dport, src, sport)
            queue = pending.get(reverse)
            newest = None
            while queue and queue[0][0] <= ack:
                newest = queue.pop(0)
            if newest is not None and not newest[2]:
                samples.append((t - newest[1]) * 1000.0)
    return samples
