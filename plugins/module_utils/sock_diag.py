# -*- coding: utf-8 -*-
# Copyright: contributors to zerodrop.testbed
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TCP sockets of a network namespace read from the kernel's sock_diag netlink interface
(inet_diag with tcp_info): the counts and byte counters that ``ss -HtniO`` prints, without
formatting every socket as text. Over 40,000 sockets ss took 1 to 3.5 s per sample on one of
two cores while the experiment ran; the flows it measured shared those cores.

Linux only; :class:`Unavailable` when the kernel or the namespace cannot be reached (callers
fall back to ss)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import errno
import os
import socket
import struct
import threading

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
CLONE_NEWNET = 0x40000000

# include/net/tcp_states.h
STATES = {'established': 1, 'syn-sent': 2}

_NLMSGHDR = struct.Struct('=IHHII')
# struct inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (zeros)
_REQUEST = struct.Struct('=BBBxI48x')
_RTATTR = struct.Struct('=HH')
_PORTS = struct.Struct('>HH')
_U64 = struct.Struct('=Q')
# struct inet_diag_msg: 4 bytes of family/state/timer/retrans, the sockid (48), 5 x u32
_MSG_LEN = 72
# offsets in struct tcp_info (include/uapi/linux/tcp.h, Linux >= 4.1)
_BYTES_ACKED = 120
_BYTES_RECEIVED = 128
_BUFFER = 1 << 20


class Unavailable(Exception):
    pass


class DumpError(Unavailable):
    """The kernel answered a dump with an error (``errno``)."""

    def __init__(self, message, errno_value):
        super(DumpError, self).__init__(message)
        self.errno = errno_value


def _namespace_path(netns):
    for base in ('/run/netns', '/var/run/netns'):
        path = os.path.join(base, netns)
        if os.path.exists(path):
            return path
    raise Unavailable('no network namespace %s under /run/netns' % netns)


def _new_socket():
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)


def open_socket(netns=None):
    """A sock_diag netlink socket of ``netns`` (the caller's namespace when None). A socket
    stays in the namespace it was made in: it is made by a short-lived thread that enters the
    namespace, so that no thread of the caller (an Ansible worker, a supervisor) ever leaves
    its own."""
    if not netns:
        try:
            return _new_socket()
        except (OSError, AttributeError) as e:
            raise Unavailable('no sock_diag netlink socket: %s' % e)
    path = _namespace_path(netns)
    result = {}

    def enter_and_open():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            finally:
                os.close(fd)
            result['socket'] = _new_socket()
        except (OSError, AttributeError) as e:
            result['error'] = e

    # the thread ends inside the namespace: threads die with whatever namespace they were in
    thread = threading.Thread(target=enter_and_open)
    thread.start()
    thread.join()
    if 'socket' not in result:
        raise Unavailable('cannot open a sock_diag socket in network namespace %s: %s'
                          % (netns, result.get('error')))
    return result['socket']


def _address(family, raw, port):
    if family == socket.AF_INET:
        return '%s:%d' % (socket.inet_ntop(socket.AF_INET, raw[:4]), port)
    return '[%s]:%d' % (socket.inet_ntop(socket.AF_INET6, raw), port)


def parse(data, ports, sockets):
    """Append ``(local, peer, received, acked)`` to ``sockets`` for each inet_diag message of
    the netlink ``data`` that touches one of ``ports`` (any when empty). Returns True when the
    dump ended (NLMSG_DONE); raises DumpError when the kernel answered with an error."""
    offset = 0
    end = len(data)
    while offset + _NLMSGHDR.size <= end:
        length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
        if length < _NLMSGHDR.size:
            break
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            # both carry an int: 0, or minus an errno (NLMSG_ERROR: the request was refused, e.g.
            # no handler for its family; NLMSG_DONE: the dump failed, e.g. no such protocol)
            error = 0
            if length >= _NLMSGHDR.size + 4:
                error = -struct.unpack_from('=i', data, offset + _NLMSGHDR.size)[0]
            if error:
                raise DumpError('sock_diag dump failed: %s' % os.strerror(error), error)
            if kind == NLMSG_DONE:
                return True
        body = offset + _NLMSGHDR.size
        if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG_LEN:
            family = data[body]
            sport, dport = _PORTS.unpack_from(data, body + 4)
            if not ports or sport in ports or dport in ports:
                received = acked = 0
                attr = body + _MSG_LEN
                stop = offset + length
                while attr + _RTATTR.size <= stop:
                    attr_len, attr_type = _RTATTR.unpack_from(data, attr)
                    if attr_len < _RTATTR.size:
                        break
                    if attr_type == INET_DIAG_INFO and attr_len - _RTATTR.size >= _BYTES_RECEIVED + 8:
                        info = attr + _RTATTR.size
                        acked = _U64.unpack_from(data, info + _BYTES_ACKED)[0]
                        received = _U64.unpack_from(data, info + _BYTES_RECEIVED)[0]
                    attr += (attr_len + 3) & ~3
                sockets.append((_address(family, data[body + 8:body + 24], sport),
                                _address(family, data[body + 24:body + 40], dport),
                                received, acked))
        offset += (length + 3) & ~3
    return False


def dump(sock, state, ports=()):
    """``[(local, peer, bytes received, bytes acked)]`` of the TCP sockets (IPv4 and IPv6) in
    ``state`` (a key of STATES) that touch one of ``ports`` (any when empty)."""
    ports = frozenset(ports)
    sockets = []
    buf = bytearray(_BUFFER)
    for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
        request = _REQUEST.pack(family, socket.IPPROTO_TCP, 1 << (INET_DIAG_INFO - 1),
                                1 << STATES[state])
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(request), SOCK_DIAG_BY_FAMILY,
                                NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        sock.send(header + request)
        done = False
        while not done:
            size = sock.recv_into(buf)
            if size == 0:
                raise Unavailable('sock_diag socket closed during a dump')
            try:
                done = parse(memoryview(buf)[:size].tobytes(), ports, sockets)
            except DumpError as e:
                # a kernel without IPv6 (the zD authors' 4.14 config) has no handler for it,
                # and no IPv6 sockets either; the error ends that family's dump
                if family == socket.AF_INET6 and e.errno == errno.ENOENT:
                    break
                raise
    return sockets


class Reader(object):
    """One namespace's sock_diag socket, opened on first use and kept; once it could not be
    opened, or the kernel refused a dump (it will again), every dump raises Unavailable at once."""

    def __init__(self, netns=None):
        self.netns = netns
        self.sock = None
        self.failed = None

    def dump(self, state, ports=()):
        if self.failed:
            raise Unavailable(self.failed)
        if self.sock is None:
            try:
                self.sock = open_socket(self.netns)
            except Unavailable as e:
                self.failed = str(e)
                raise
        try:
            return dump(self.sock, state, ports)
        except DumpError as e:
            self.failed = str(e)
            self.close()
            raise
        except (OSError, Unavailable):
            self.close()
            raise

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
