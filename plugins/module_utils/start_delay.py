# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long the next synchronized start waits: what the last run's slowest sender needed.

A run with several senders takes its ``start_at`` once the servers listen, ``delay`` seconds
ahead; each sender's client call reports when it was ready to wait (``ready_epoch``, taken to
the controller's clock with the sender's offset, as its ``start_at`` was). What a sender used of
the delay is
``delay - (start_at - ready_epoch)``; the next run waits the largest of these with a margin,
within ``MINIMUM_S`` and ``MAXIMUM_S``: shorter where the senders are quick, longer where they are
slow (QEMU guests under TCG took 4-9 s), whatever the first run's delay was.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MARGIN_FACTOR = 1.5
MARGIN_S = 0.25
MINIMUM_S = 0.5
MAXIMUM_S = 60.0


def used(delay, start_at, ready):
    """{sender: seconds of the delay its call used before it was ready}; None when unknown
    (no synchronized start, or a sender that reported no ``ready_epoch``)."""
    if delay is None or start_at is None or not ready:
        return None
    if any(value is None for value in ready.values()):
        return None
    return dict((host, round(delay - (start_at - value), 3)) for host, value in ready.items())


def next_delay(delay, start_at, ready, unknown):
    """The delay for the next run's start: the slowest sender's need with a margin, within
    [MINIMUM_S, MAXIMUM_S]; ``unknown`` when this run tells nothing (one sender, a client call
    that failed before it was ready)."""
    needs = used(delay, start_at, ready)
    if not needs:
        return unknown
    wanted = max(needs.values()) * MARGIN_FACTOR + MARGIN_S
    return round(min(MAXIMUM_S, max(MINIMUM_S, wanted)), 3)
