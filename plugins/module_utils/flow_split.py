# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the flows of one port block are split over tool processes.

A flow is one file descriptor, so one process holds at most its RLIMIT_NOFILE less what it needs
for itself; iperf3 also takes at most 128 streams per process. More flows take more processes,
each on its own ports: neper process i uses control port ``port + 2i`` and data port
``port + 2i + 1``, iperf3 and iperf2 process i uses ``port + i`` for both. Server and client
compute the same split from the same (tool, port, flows, per_process), so they agree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Descriptors a tool process needs besides its flows: measured with neper's tcp_stream, 7 + 3
# per thread on the server (epoll, listen and event fds) and fewer on the client; 256 leaves
# room for 80 threads and for iperf's own files.
NOFILE_MARGIN = 256
IPERF3_MAX_STREAMS = 128
PORTS_PER_PROCESS = {'neper': 2, 'iperf3': 1, 'iperf2': 1}


def per_process_cap(tool, nofile):
    """Flows one ``tool`` process can hold with RLIMIT_NOFILE ``nofile`` (0 when none)."""
    cap = max(0, nofile - NOFILE_MARGIN)
    if tool == 'iperf3':
        cap = min(cap, IPERF3_MAX_STREAMS)
    return cap


def processes(tool, flows, per_process):
    """How many processes ``flows`` take with at most ``per_process`` each."""
    if per_process < 1:
        raise ValueError('per_process must be at least 1 (got %s)' % per_process)
    if tool == 'iperf3':
        per_process = min(per_process, IPERF3_MAX_STREAMS)
    return max(1, -(-flows // per_process))


def split(tool, port, flows, per_process):
    """``[{'port': control/first port, 'data_port': int, 'flows': int}]``, one per process, the
    flows spread as evenly as possible (the first processes take one more)."""
    count = processes(tool, flows, per_process)
    step = PORTS_PER_PROCESS[tool]
    found = []
    for i in range(count):
        first = port + step * i
        found.append({'port': first, 'data_port': first + step - 1,
                      'flows': flows // count + (1 if i < flows % count else 0)})
    return found


def span(tool, flows, per_process):
    """How many consecutive ports from the block's ``port`` the split uses."""
    return PORTS_PER_PROCESS[tool] * processes(tool, flows, per_process)
