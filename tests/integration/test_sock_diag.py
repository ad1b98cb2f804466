"""module_utils/sock_diag against ss on real sockets in a namespace made by the test."""

import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import flow_probe, sock_diag

pytestmark = pytest.mark.root

PORT = 5999
# A server on 127.0.0.1 and ::1 that reads what it is sent, and 40 clients that send 1000 * i
# bytes each (and one over IPv6): every connection stays open until the test kills it.
TRAFFIC = r'''
import socket, sys, threading, time
port = int(sys.argv[1])
conns = []
def serve(family, address):
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    s.listen(128)
    while True:
        c, _ = s.accept()
        conns.append(c)
        threading.Thread(target=lambda c=c: [c.recv(1 << 20) for _ in range(4)], daemon=True).start()
for family, address in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
    threading.Thread(target=serve, args=(family, address), daemon=True).start()
time.sleep(0.3)
clients = []
for i in range(40):
    c = socket.create_connection(('127.0.0.1', port))
    c.sendall(b'x' * (1000 * i))
    clients.append(c)
c = socket.create_connection(('::1', port))
c.sendall(b'y' * 777)
clients.append(c)
print('ready', flush=True)
time.sleep(120)
'''
# Nonblocking connects to an address behind a veth whose peer answers nothing: SYN-SENT.
CONNECTING = r'''
import socket, sys, time
held = []
for _ in range(7):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
    except BlockingIOError:
        pass
    held.append(s)
print('ready', flush=True)
time.sleep(120)
'''


def _start(ns, script, *args):
    proc = subprocess.Popen(['ip', 'netns', 'exec', ns, sys.executable, '-c', script] + list(args),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'ready'
    return proc


@pytest.fixture
def traffic(netns):
    ns = netns('zt-diag')
    proc = _start(ns, TRAFFIC, str(PORT))
    time.sleep(0.3)  # the server reads what was sent
    yield ns
    proc.kill()
    proc.wait()


def _ss(ns):
    out = subprocess.run(['ip', 'netns', 'exec', ns, 'ss', '-HtniO', 'state', 'established',
                          '(', 'sport', '=', ':%d' % PORT, 'or', 'dport', '=', ':%d' % PORT, ')'],
                         check=True, capture_output=True, text=True).stdout
    return flow_probe.parse_connections(out, [PORT])


def test_established_connections_and_bytes_match_ss(traffic):
    reader = sock_diag.Reader(traffic)
    try:
        diag = flow_probe.connections(traffic, [PORT], reader)
    finally:
        reader.close()
    ss = _ss(traffic)
    # 41 connections, each seen from both ends
    assert diag[0] == ss[0] == 82
    assert diag[:4] == ss[:4]
    assert diag[4] == ss[4]
    # the bytes are the ones sent: received on the server's end, acked (+1 for the SYN) on the client's
    sent = sum(1000 * i for i in range(40)) + 777
    assert diag[1] == sent and diag[2] == sent + 41
    assert any(local.startswith('[::1]:') for local, _peer in diag[4])
    assert flow_probe.established(traffic, [PORT]) == 82
    assert flow_probe.connections(traffic, [PORT + 1])[0] == 0


def test_the_caller_stays_in_its_own_namespace(traffic):
    before = os.readlink('/proc/thread-self/ns/net')
    assert flow_probe.connections(traffic, [PORT])[0] == 82
    assert os.readlink('/proc/thread-self/ns/net') == before
    # the test's connections are in the namespace, not here
    assert flow_probe.connections(None, [PORT])[0] == 0


def test_sockets_in_syn_sent_are_counted(netns, veth):
    ns = netns('zt-diag')
    a, _b = veth(ns)
    subprocess.run(['ip', '-n', ns, 'addr', 'add', '10.251.0.1/24', 'dev', a], check=True)
    proc = _start(ns, CONNECTING, '10.251.0.2', str(PORT))
    try:
        assert flow_probe.syn_sent(ns, [PORT]) == 7
        assert flow_probe.syn_sent(ns, [PORT + 1]) == 0
        ss = subprocess.run(['ip', 'netns', 'exec', ns, 'ss', '-Htn', 'state', 'syn-sent'],
                            check=True, capture_output=True, text=True).stdout
        assert ss.count('\n') == 7
    finally:
        proc.kill()
        proc.wait()


def test_a_missing_namespace_is_unavailable_and_the_reader_says_so_once():
    reader = sock_diag.Reader('zt-diag-never-made')
    with pytest.raises(sock_diag.Unavailable, match='no network namespace zt-diag-never-made'):
        reader.dump('established')
    with pytest.raises(sock_diag.Unavailable, match='zt-diag-never-made'):
        reader.dump('established')
    # flow_probe falls back to ss, which fails there too: no figures rather than zeros
    assert flow_probe.connections('zt-diag-never-made', [PORT]) is None


def test_a_reader_keeps_its_socket_across_threads(traffic):
    reader = sock_diag.Reader(traffic)
    found = []
    try:
        for attempt in range(2):
            thread = threading.Thread(target=lambda: found.append(len(reader.dump('established', [PORT]))),
                                      name='dump-%d' % attempt)
            thread.start()
            thread.join()
    finally:
        reader.close()
    assert found == [82, 82]
