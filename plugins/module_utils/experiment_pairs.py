# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who sends to whom in a run with several senders and receivers, and on which ports.

``experiment_flows`` is the run's total: it is split across the senders by weight (largest
remainder, ties to the earlier sender), each sender is paired with one receiver (round robin, or
the explicit ``experiment_pairing``), and every pair gets its own block of server ports on its
receiver, laid out one after the other from the base port with ``flow_split.span`` so that no two
blocks on one receiver overlap. Every function raises ValueError naming the variable and the fix.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

ROLES_REQUIRED = ('sender', 'receiver')
PORT_MAX = 65535


def as_list(value):
    """A host role's value (one name or a list of names) -> the list, unchecked."""
    return [value] if isinstance(value, str) else value


def host_list(field, value):
    """A host role's value (one name or a list of names) -> list of names."""
    names = as_list(value)
    if not isinstance(names, list) or not names:
        raise ValueError('%s must be an inventory host name or a non-empty list of them (got %r)'
                         % (field, value))
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError('%s: %r is not an inventory host name' % (field, name))
    twice = sorted(set(n for n in names if names.count(n) > 1))
    if twice:
        raise ValueError('%s lists %s more than once: list each host once (a sender\'s share of '
                         'the flows is set with experiment_sender_weights)' % (field, ', '.join(twice)))
    return list(names)


def run_hosts(hosts, mode_hosts, mode):
    """experiment_hosts with the mode's overrides -> ``{role: [host, ...]}``."""
    merged = dict((role, host_list('experiment_hosts.%s' % role, value))
                  for role, value in (hosts or {}).items())
    for role, value in ((mode_hosts or {}).get(mode) or {}).items():
        merged[role] = host_list('experiment_mode_hosts.%s.%s' % (mode, role), value)
    for role in ROLES_REQUIRED:
        if role not in merged:
            raise ValueError('experiment_hosts.%s is missing: map it to an inventory host or a list '
                             'of them' % role)
    return merged


def check_known(field, names, inventory):
    """ValueError for a host of ``names`` that is not in ``inventory``."""
    unknown = [n for n in names if n not in set(inventory)]
    if unknown:
        raise ValueError('%s: %s %s not in the inventory: use inventory host names (%s)'
                         % (field, ', '.join(unknown), 'is' if len(unknown) == 1 else 'are',
                            ', '.join(sorted(inventory))))


def check_all(hosts, mode_hosts, modes, weights=None, pairing=None, inventory=None):
    """Every mode's host roles, checked -> ``{mode: {role: [host, ...]}}``."""
    found = dict((mode, run_hosts(hosts, mode_hosts, mode)) for mode in modes)
    if inventory is not None:
        for role, value in sorted((hosts or {}).items()):
            check_known('experiment_hosts.%s' % role, host_list('experiment_hosts.%s' % role, value),
                        inventory)
        for mode in modes:
            for role, value in sorted(((mode_hosts or {}).get(mode) or {}).items()):
                field = 'experiment_mode_hosts.%s.%s' % (mode, role)
                check_known(field, host_list(field, value), inventory)
    senders = set(h for roles in found.values() for h in roles['sender'])
    receivers = set(h for roles in found.values() for h in roles['receiver'])
    check_weights(weights, senders)
    check_pairing(pairing, senders, receivers)
    return found


def check_weights(weights, senders_anywhere):
    """ValueError for a weight that is not above 0, or of a host that is never a sender."""
    for host, weight in sorted((weights or {}).items()):
        if host not in senders_anywhere:
            raise ValueError('experiment_sender_weights.%s: %s is not a sender of any mode (senders: '
                             '%s): weigh senders only' % (host, host, ', '.join(sorted(senders_anywhere))))
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise ValueError('experiment_sender_weights.%s is %r: give a number above 0 (a sender with '
                             'no flows is left out of experiment_hosts.sender instead)' % (host, weight))


def split_flows(total, senders, weights=None):
    """``total`` flows over ``senders`` by weight -> flows per sender, in sender order."""
    weights = weights or {}
    shares = [float(weights.get(s, 1)) for s in senders]
    whole = sum(shares)
    exact = [total * w / whole for w in shares]
    counts = [int(x) for x in exact]
    order = sorted(range(len(senders)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:total - sum(counts)]:
        counts[i] += 1
    empty = [s for s, n in zip(senders, counts) if n == 0]
    if empty:
        raise ValueError('experiment_flows: %d flows over %d senders leave %s with no flow: give '
                         'experiment_flows of at least %d, or raise %s in experiment_sender_weights'
                         % (total, len(senders), ', '.join(empty), len(senders), ', '.join(empty)))
    return counts


def pair(senders, receivers, pairing=None):
    """Each sender's receiver: ``pairing[sender]`` where given, else round robin by position."""
    pairing = pairing or {}
    found = []
    for i, sender in enumerate(senders):
        receiver = pairing.get(sender)
        if receiver is None:
            receiver = receivers[i % len(receivers)]
        elif receiver not in receivers:
            raise ValueError('experiment_pairing.%s: %s is not a receiver of this run (receivers: %s): '
                             'pair it with one of them' % (sender, receiver, ', '.join(receivers)))
        found.append(receiver)
    return found


def check_pairing(pairing, senders_anywhere, receivers_anywhere):
    for sender, receiver in sorted((pairing or {}).items()):
        if sender not in senders_anywhere:
            raise ValueError('experiment_pairing.%s: %s is not a sender of any mode (senders: %s): '
                             'pair senders only' % (sender, sender, ', '.join(sorted(senders_anywhere))))
        if receiver not in receivers_anywhere:
            raise ValueError('experiment_pairing.%s: %s is not a receiver of any mode (receivers: %s): '
                             'pair it with one of them' % (sender, receiver,
                                                           ', '.join(sorted(receivers_anywhere))))


def role_dir(role, host, count):
    """A host's directory in a run: the role's name when the role has one host, else
    ``<role>-<inventory_hostname>``."""
    return role if count == 1 else '%s-%s' % (role, host)


def host_dirs(roles):
    """``{host: directory}``; a host that plays several roles writes into its sender's, else
    its receiver's, else its first role's directory."""
    dirs = {}
    order = [r for r in ROLES_REQUIRED if r in roles] + sorted(r for r in roles if r not in ROLES_REQUIRED)
    for role in order:
        for host in roles[role]:
            dirs.setdefault(host, role_dir(role, host, len(roles[role])))
    return dirs


def layout(roles, total, tool, base_port, per_process, span, weights=None, pairing=None):
    """The run's pairs: ``[{sender, receiver, flows, port, sender_dir, receiver_dir}]`` in sender
    order. ``span(tool, flows, per_process)`` is how many consecutive ports a pair uses."""
    senders, receivers = roles['sender'], roles['receiver']
    counts = split_flows(total, senders, weights)
    partners = pair(senders, receivers, pairing)
    dirs = host_dirs(roles)
    cursor = dict((r, base_port) for r in receivers)
    pairs = []
    for sender, receiver, flows in zip(senders, partners, counts):
        port = cursor[receiver]
        # without a known file limit (a plan made only to check the values) one process a pair
        cursor[receiver] = port + span(tool, flows, per_process or flows)
        if cursor[receiver] - 1 > PORT_MAX:
            raise ValueError('experiment_port: the port blocks of %s\'s pairs run past %d (from %d): '
                             'give a lower experiment_port, a larger experiment_flows_per_process, or '
                             'more receivers' % (receiver, PORT_MAX, base_port))
        pairs.append({'sender': sender, 'receiver': receiver, 'flows': flows, 'port': port,
                      'sender_dir': dirs[sender], 'receiver_dir': dirs[receiver]})
    return pairs


def flows_per_process(given, tool, hosts, nofile, cap):
    """``given`` when set, else the smallest ``cap(tool, nofile)`` over ``hosts`` whose
    RLIMIT_NOFILE hard limit is known (``nofile``: host -> limit); None when none is known."""
    if given:
        return given
    caps = [(cap(tool, int(nofile[h])), h) for h in hosts if nofile.get(h)]
    if not caps:
        return None
    smallest, host = min(caps)
    if smallest < 1:
        raise ValueError('experiment_flows_per_process: %s\'s file limit (RLIMIT_NOFILE hard %s) leaves no '
                         'room for a flow in one %s process: raise its limit, or set '
                         'experiment_flows_per_process' % (host, nofile[host], tool))
    return smallest
