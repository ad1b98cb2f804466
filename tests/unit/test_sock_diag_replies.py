"""module_utils/sock_diag on the kernel's own replies, recorded by fixtures/sock_diag/record.py
(tests/integration/test_sock_diag.py reads live sockets)."""

import errno
import os
import socket

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import sock_diag

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'sock_diag')


def _reply(name):
    with open(os.path.join(FIXTURES, name + '.hex')) as f:
        return [bytes.fromhex(line) for line in f.read().split()]


class Replay(object):
    """A netlink socket that answers each request with the next recorded reply."""

    def __init__(self, *replies):
        self.replies = [list(reply) for reply in replies]
        self.requests = []
        self.pending = []
        self.closed = False

    def send(self, data):
        self.requests.append(data)
        self.pending = self.replies.pop(0)
        return len(data)

    def close(self):
        self.closed = True

    def recv_into(self, buf):
        chunk = self.pending.pop(0)
        buf[:len(chunk)] = chunk
        return len(chunk)


def test_a_recorded_dump_gives_both_ends_of_both_connections_and_their_bytes():
    sockets = []
    done = False
    for chunk in _reply('inet_established'):
        done = sock_diag.parse(chunk, frozenset([5999]), sockets)
    assert done
    # the server's ends received what was sent; the clients' had it acked (+1: their SYN)
    assert sorted(sockets) == [('127.0.0.1:58208', '127.0.0.1:5999', 0, 1001),
                               ('127.0.0.1:58220', '127.0.0.1:5999', 0, 2501),
                               ('127.0.0.1:5999', '127.0.0.1:58208', 1000, 0),
                               ('127.0.0.1:5999', '127.0.0.1:58220', 2500, 0)]
    # sockets on other ports are left out
    others = []
    assert sock_diag.parse(b''.join(_reply('inet_established')), frozenset([6000]), others) is True
    assert others == []


def test_a_family_without_a_handler_is_refused_with_enoent():
    with pytest.raises(sock_diag.DumpError) as caught:
        sock_diag.parse(_reply('no_handler')[0], frozenset(), [])
    assert caught.value.errno == errno.ENOENT


def test_a_dump_that_fails_ends_with_its_error():
    with pytest.raises(sock_diag.DumpError) as caught:
        sock_diag.parse(_reply('no_protocol')[0], frozenset(), [])
    assert caught.value.errno == errno.ENOENT


def test_a_kernel_without_ipv6_has_no_ipv6_sockets():
    # AF_INET answers with the recorded dump, AF_INET6 as a kernel without IPv6 does
    sock = Replay(_reply('inet_established'), _reply('no_handler'))
    sockets = sock_diag.dump(sock, 'established', [5999])
    assert len(sockets) == 4
    assert [r[16] for r in sock.requests] == [socket.AF_INET, socket.AF_INET6]


def test_a_kernel_without_tcp_diag_is_unavailable():
    # AF_INET refused as well: there is nothing to read (flow_probe then runs ss)
    with pytest.raises(sock_diag.Unavailable):
        sock_diag.dump(Replay(_reply('no_handler')), 'established', [5999])


def test_a_reader_whose_dump_the_kernel_refused_does_not_ask_again():
    # every sample would otherwise reopen the socket and be refused again before running ss
    reader = sock_diag.Reader()
    reader.sock = replay = Replay(_reply('no_handler'))
    with pytest.raises(sock_diag.DumpError):
        reader.dump('established', [5999])
    assert reader.sock is None and replay.closed
    with pytest.raises(sock_diag.Unavailable, match='sock_diag dump failed'):
        reader.dump('established', [5999])
    assert len(replay.requests) == 1
