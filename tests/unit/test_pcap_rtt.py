"""RTT samples of pcap_rtt from captures written here byte by byte in the classic pcap format
that tcpdump -w writes (and tcpdump -r reads back, checked below), so that each test knows the
exact samples: the normal case with Karn's rule, sequence numbers that wrap at 2^32, and the
bound on the segments a flow keeps outstanding; and from a real capture of a flow whose sequence
numbers wrap (fixtures/pcap_rtt/README.md)."""

import gc
import os
import re
import struct
import subprocess
import time
import warnings

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import pcap_rtt

FIN, SYN, ACK = 0x01, 0x02, 0x10
CLIENT4, SERVER4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
CLIENT6 = bytes.fromhex('fd000000000000000000000000000001')
SERVER6 = bytes.fromhex('fd000000000000000000000000000002')
CLIENT_PORT, SERVER_PORT = 40000, 5201
# Linux's options on a data segment: NOP, NOP, timestamps (doff 8 words).
TCP_OPTIONS = bytes([1, 1, 8, 10]) + bytes(8)
MSS = 1448
FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'pcap_rtt')
# A pcap time as a double (seconds since 1970) is exact to about 0.24 us.
APPROX = dict(abs=1e-3)


def tcp_header(sport, dport, seq, ack, flags):
    return (struct.pack('>HHIIBBHHH', sport, dport, seq, ack, (20 + len(TCP_OPTIONS)) // 4 << 4,
                        flags, 65535, 0, 0) + TCP_OPTIONS)


def ethernet_ipv4(src, dst, sport, dport, seq, ack, flags, payload_len):
    tcp = tcp_header(sport, dport, seq, ack, flags)
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp) + payload_len, 0, 0x4000, 64, 6, 0,
                     src, dst)
    return bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + struct.pack('>H', 0x0800) + ip + tcp


def sll2_ipv6(src, dst, sport, dport, seq, ack, flags, payload_len):
    """Linux cooked v2 framing (tcpdump -i any) of an IPv6 segment."""
    tcp = tcp_header(sport, dport, seq, ack, flags)
    ip = struct.pack('>IHBB16s16s', 6 << 28, len(tcp) + payload_len, 6, 64, src, dst)
    sll2 = struct.pack('>HHIHBB8s', 0x86dd, 0, 2, 1, 4, 6, bytes(8))
    return sll2 + ip + tcp


FRAMINGS = {'ethernet_ipv4': (1, ethernet_ipv4, CLIENT4, SERVER4),
            'sll2_ipv6': (276, sll2_ipv6, CLIENT6, SERVER6)}


class Capture(object):
    """A conversation between a client (the data sender) and a server, written as a pcap file
    truncated to 96 bytes a packet like tcpdump -s 96. Times are in microseconds."""

    def __init__(self, framing='ethernet_ipv4', nanoseconds=False):
        self.linktype, self.frame, self.client, self.server = FRAMINGS[framing]
        self.nanoseconds = nanoseconds
        self.records = []

    def client_sends(self, t_us, seq, ack=0, flags=ACK, length=0):
        self._add(t_us, self.client, self.server, CLIENT_PORT, SERVER_PORT, seq, ack, flags,
                  length)

    def server_sends(self, t_us, seq, ack=0, flags=ACK, length=0):
        self._add(t_us, self.server, self.client, SERVER_PORT, CLIENT_PORT, seq, ack, flags,
                  length)

    def _add(self, t_us, src, dst, sport, dport, seq, ack, flags, length):
        frame = self.frame(src, dst, sport, dport, seq & 0xffffffff, ack & 0xffffffff, flags,
                           length)
        self.records.append((t_us, frame[:pcap_rtt.SNAPLEN], len(frame) + length))

    def write(self, path):
        magic = pcap_rtt.PCAP_MAGIC_NS if self.nanoseconds else pcap_rtt.PCAP_MAGIC_US
        with open(path, 'wb') as f:
            f.write(struct.pack('<IHHiIII', magic, 2, 4, 0, 0, pcap_rtt.SNAPLEN, self.linktype))
            for t_us, data, orig_len in self.records:
                sec, us = divmod(t_us, 1000000)
                frac = us * 1000 if self.nanoseconds else us
                f.write(struct.pack('<IIII', 1700000000 + sec, frac, len(data), orig_len))
                f.write(data)
        return path


def tcpdump_lines(path):
    return subprocess.run(['tcpdump', '-r', path, '-n', '-S', '-tt'], capture_output=True,
                          text=True, check=True).stdout.splitlines()


def handshake(capture, client_isn, server_isn):
    """SYN at 0 ms, SYN/ACK at 20 ms, ACK at 20.2 ms: samples 20.0 (SYN) and 0.2 (SYN/ACK)."""
    capture.client_sends(0, client_isn, flags=SYN)
    capture.server_sends(20000, server_isn, client_isn + 1, flags=SYN | ACK)
    capture.client_sends(20200, client_isn + 1, server_isn + 1)
    return client_isn + 1, server_isn + 1


def test_normal_transfer_gives_one_sample_per_ack_and_none_for_retransmitted_data(tmp_path):
    capture = Capture()
    seq, server_seq = handshake(capture, 1000, 5000)
    capture.client_sends(21000, seq, server_seq, length=MSS)
    capture.client_sends(21500, seq + MSS, server_seq, length=MSS)
    capture.client_sends(22000, seq + 2 * MSS, server_seq, length=MSS)
    # A delayed ACK covers two segments: one sample, from the newer one (21.5 ms).
    capture.server_sends(32500, server_seq, seq + 2 * MSS)
    # The third segment is retransmitted, so its ACK is ambiguous (Karn): no sample.
    capture.client_sends(40000, seq + 2 * MSS, server_seq, length=MSS)
    capture.server_sends(55000, server_seq, seq + 3 * MSS)
    # A GSO segment of four MSS whose first MSS is retransmitted: no sample for it either.
    seq += 3 * MSS
    capture.client_sends(56000, seq, server_seq, length=4 * MSS)
    capture.client_sends(70000, seq, server_seq, length=MSS)
    capture.server_sends(86000, server_seq, seq + 4 * MSS)
    seq += 4 * MSS
    capture.client_sends(87000, seq, server_seq, length=MSS)
    capture.server_sends(99500, server_seq, seq + MSS)
    # A duplicate ACK covers nothing new: no sample.
    capture.server_sends(99600, server_seq, seq + MSS)
    capture.client_sends(100000, seq + MSS, server_seq, flags=FIN | ACK)
    capture.server_sends(101000, server_seq, seq + MSS + 1, flags=FIN | ACK)
    capture.client_sends(101300, seq + MSS + 1, server_seq + 1)
    path = capture.write(str(tmp_path / 'normal.pcap'))

    assert len(tcpdump_lines(path)) == len(capture.records)
    expected = [20.0, 0.2, 11.0, 12.5, 1.0, 0.3]
    assert pcap_rtt.rtt_samples(path) == pytest.approx(expected, **APPROX)


WRAP_CASES = {
    # (client ISN, server ISN)
    'data_wraps_inside_a_segment': (2 ** 32 - 5000, 77),
    'a_segment_ends_at_2^32': (2 ** 32 - 1 - 3 * MSS, 77),
    'syn_ends_at_2^32': (2 ** 32 - 1, 77),
    'both_directions_wrap': (2 ** 32 - 5000, 2 ** 32 - 1),
    'half_way_round': (2 ** 31 - 5000, 2 ** 31 - 1),
    'no_wrap': (1000, 77),
}


def wrapping_transfer(client_isn, server_isn, framing='ethernet_ipv4'):
    """Ten segments in pairs; the ACK of pair i comes 20 + i ms after its second segment, and
    the second segment of pair 3 is retransmitted. The samples do not depend on the ISNs."""
    capture = Capture(framing, nanoseconds=True)
    seq, server_seq = handshake(capture, client_isn, server_isn)
    for pair in range(5):
        t_us = 21000 + pair * 30000
        capture.client_sends(t_us, seq, server_seq, length=MSS)
        capture.client_sends(t_us + 500, seq + MSS, server_seq, length=MSS)
        if pair == 3:
            capture.client_sends(t_us + 5000, seq + MSS, server_seq, length=MSS)
        capture.server_sends(t_us + 500 + (20 + pair) * 1000, server_seq, seq + 2 * MSS)
        seq += 2 * MSS
    expected = [20.0, 0.2, 20.0, 21.0, 22.0, 24.0]
    return capture, expected


@pytest.mark.parametrize('case', sorted(WRAP_CASES))
def test_sequence_numbers_that_wrap_at_2_32_keep_giving_samples(tmp_path, case):
    client_isn, server_isn = WRAP_CASES[case]
    capture, expected = wrapping_transfer(client_isn, server_isn)
    path = capture.write(str(tmp_path / 'wrap.pcap'))

    # The file is what tcpdump reads, with the sequence numbers written (-S: absolute).
    lines = tcpdump_lines(path)
    assert len(lines) == len(capture.records)
    assert 'seq %d,' % client_isn in lines[0]
    last_data = (client_isn + 1 + 9 * MSS) % 2 ** 32
    assert any('seq %d:%d,' % (last_data, (last_data + MSS) % 2 ** 32) in line for line in lines)
    assert pcap_rtt.rtt_samples(path) == pytest.approx(expected, **APPROX)


def unwrap(seq, reference):
    """The 64-bit sequence number nearest to ``reference`` whose low 32 bits are ``seq``."""
    offset = (seq - reference) % 2 ** 32
    return reference + offset - (2 ** 32 if offset >= 2 ** 31 else 0)


def tcpdump_samples(path, receiver):
    """(samples, how many of them come from ACKs past the wrap) of the data sent to
    ``receiver``, computed on tcpdump's own reading of the capture with sequence numbers made
    64-bit: a cross-check of pcap_rtt's parser and of its sequence arithmetic."""
    sent = []  # [start, end, t, retransmitted] on the 64-bit sequence numbers
    highest = None
    samples, past_wrap = [], 0
    for line in tcpdump_lines(path):
        t = float(line.split()[0])
        data = re.search(r' > %s: .* seq (\d+):(\d+),' % re.escape(receiver), line)
        ack = re.search(r' %s > .* ack (\d+),' % re.escape(receiver), line)
        if data:
            if highest is None:
                highest = int(data.group(1))
            start = unwrap(int(data.group(1)), highest)
            end = start + (int(data.group(2)) - int(data.group(1))) % 2 ** 32
            for item in sent:
                if item[1] > start and item[0] < end:
                    item[3] = True
            if end > highest:
                sent.append([max(start, highest), end, t, False])
                highest = end
        elif ack and highest is not None:
            acked = unwrap(int(ack.group(1)), highest)
            covered = [item for item in sent if item[1] <= acked]
            sent = [item for item in sent if item[1] > acked]
            if covered and not covered[-1][3]:
                samples.append((t - covered[-1][2]) * 1000)
                past_wrap += acked >= 2 ** 32
    return samples, past_wrap


def test_a_recorded_flow_whose_sequence_numbers_wrap_gives_samples_on_both_sides():
    path = os.path.join(FIXTURES, 'iperf3_wrap.pcap')
    expected, past_wrap = tcpdump_samples(path, '10.253.2.2.5334')
    assert len(expected) > 150 and past_wrap > 80
    assert pcap_rtt.rtt_samples(path) == pytest.approx(expected, **APPROX)


def test_wrap_in_linux_cooked_ipv6_framing(tmp_path):
    capture, expected = wrapping_transfer(2 ** 32 - 5000, 2 ** 32 - 1, framing='sll2_ipv6')
    path = capture.write(str(tmp_path / 'wrap6.pcap'))
    assert len(tcpdump_lines(path)) == len(capture.records)
    assert pcap_rtt.rtt_samples(path) == pytest.approx(expected, **APPROX)


def test_a_new_connection_on_the_same_ports_starts_a_new_sequence_space(tmp_path):
    capture, expected = wrapping_transfer(1000, 77)
    # Its ISN lies before the first connection's: without a new sequence space all its data
    # would count as retransmitted.
    later = wrapping_transfer(500, 99)[0]
    offset_us = capture.records[-1][0] + 1000000
    capture.records += [(t_us + offset_us, data, orig) for t_us, data, orig in later.records]
    path = capture.write(str(tmp_path / 'reuse.pcap'))
    assert pcap_rtt.rtt_samples(path) == pytest.approx(expected + expected, **APPROX)


def test_outstanding_segments_are_bounded_by_count(tmp_path, monkeypatch):
    assert pcap_rtt.new_outstanding().maxlen == pcap_rtt.MAX_OUTSTANDING == 2 ** 20
    monkeypatch.setattr(pcap_rtt, 'MAX_OUTSTANDING', 4)
    capture = Capture()
    seq = 2 ** 32 - 3 * MSS
    for i in range(10):
        capture.client_sends(1000 * i, seq + i * MSS, 1, length=MSS)
    # Segments 0-5 were dropped for the newest 4: their ACK finds nothing to sample.
    capture.server_sends(20000, 1, seq + 5 * MSS)
    capture.server_sends(27500, 1, seq + 8 * MSS)
    capture.server_sends(29000, 1, seq + 10 * MSS)
    path = capture.write(str(tmp_path / 'count.pcap'))
    assert pcap_rtt.rtt_samples(path) == pytest.approx([20.5, 20.0], **APPROX)
    monkeypatch.undo()
    assert pcap_rtt.rtt_samples(path) == pytest.approx([16.0, 20.5, 20.0], **APPROX)


def test_a_flow_keeps_at_most_a_window_of_segments_whose_acks_the_capture_missed(tmp_path):
    """More than 2^31 bytes sent with no ACK in the capture: what is more than a window behind
    is dropped, so the queue stays small and the ACKs that come later still order against it."""
    segment = 65000  # GSO-sized, as a capture on the sender sees them
    count = 2 ** 31 // segment + 20
    sent = count * segment
    queue, highest, flow = pcap_rtt.new_outstanding(), {}, 'flow'
    seq = 2 ** 32 - 7 * segment
    for i in range(count):
        pcap_rtt.record_sent(queue, highest, flow, (seq + i * segment) % 2 ** 32,
                             (seq + (i + 1) * segment) % 2 ** 32, float(i))
        assert len(queue) <= pcap_rtt.MAX_WINDOW // segment + 1
    assert highest[flow] == (seq + sent) % 2 ** 32
    assert [item[1] for item in queue] == [float(i) for i in range(count - len(queue), count)]

    capture = Capture()
    for i in range(count):
        capture.client_sends(10 * i, seq + i * segment, 1, length=segment)
    end_us = 10 * count
    capture.server_sends(end_us + 3000, 1, seq + (count - 1) * segment)
    capture.server_sends(end_us + 5000, 1, seq + count * segment)
    path = capture.write(str(tmp_path / 'no_acks.pcap'))
    assert os.path.getsize(path) < 4 * 10 ** 6
    assert pcap_rtt.rtt_samples(path) == pytest.approx([3.02, 5.01], **APPROX)


def test_a_file_that_is_not_classic_pcap_is_refused_by_name(tmp_path):
    path = tmp_path / 'capture.pcapng'
    path.write_bytes(bytes.fromhex('0a0d0d0a') + bytes(40))
    with pytest.raises(ValueError, match='capture.pcapng is not a classic pcap file'):
        pcap_rtt.rtt_samples(str(path))


def test_an_empty_capture_and_truncated_frames_give_no_samples(tmp_path):
    empty = tmp_path / 'empty.pcap'
    empty.write_bytes(b'')
    assert pcap_rtt.rtt_samples(str(empty)) == []
    capture = Capture()
    capture.records.append((0, bytes(10), 60))
    capture.records.append((1, ethernet_ipv4(CLIENT4, SERVER4, 1, 2, 3, 4, ACK, 0)[:40], 66))
    assert pcap_rtt.rtt_samples(capture.write(str(tmp_path / 'short.pcap'))) == []


@pytest.mark.root
def test_a_capture_in_a_namespace_closes_its_files_and_keeps_the_last_packets(tmp_path, netns):
    """flow_run's path: start_capture, a transfer, stop_capture right after it writes rtt.txt.
    start_capture leaves no file open (an unclosed one gives a ResourceWarning once collected),
    and the transfer's packets, all within tcpdump's last buffer, are in the capture."""
    ns = netns('zt-pcap')
    run_dir = str(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ResourceWarning)
        capture = pcap_rtt.start_capture(run_dir, ns, 'lo', [5336])
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    assert capture.poll() is None, (tmp_path / '.tcpdump.err').read_text()
    server = subprocess.Popen(['ip', 'netns', 'exec', ns, 'iperf3', '-s', '-1', '-p', '5336'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for unused in range(50):
            client = subprocess.run(['ip', 'netns', 'exec', ns, 'iperf3', '-c', '127.0.0.1',
                                     '-p', '5336', '-n', '20M'], capture_output=True, text=True,
                                    check=False)
            if client.returncode == 0 or 'Connection refused' not in client.stderr:
                break
            time.sleep(0.1)
        assert client.returncode == 0, client.stderr
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    pcap_rtt.stop_capture(capture, run_dir)
    assert capture.returncode is not None
    with open(os.path.join(run_dir, 'rtt.txt')) as f:
        samples = [float(line) for line in f]
    assert len(samples) > 20 and all(0 <= s < 100 for s in samples)
    assert samples == pytest.approx(pcap_rtt.rtt_samples(os.path.join(run_dir, 'capture.pcap')),
                                    abs=0.0005)
