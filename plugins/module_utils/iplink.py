# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network devices and routes as data, read with ``ip -j`` and turned into ``ip`` argv.

Shared by the modules that manage links (netns_host). Reading goes through a Runner so every
command is recorded; argv lists are without namespace prefix (the caller adds ``-n NS``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress


def family(address):
    """'inet' or 'inet6' for an ipaddress address, network or interface."""
    return 'inet6' if address.version == 6 else 'inet'


def route_family(route):
    """'inet' or 'inet6' for a requested route (a default route takes its gateway's family)."""
    if route['to'] != 'default':
        return family(ipaddress.ip_network(route['to'], strict=False))
    if route.get('via'):
        return family(ipaddress.ip_address(route['via']))
    return 'inet'


def netns_flag(netns):
    """``ip``'s namespace option, empty for the root namespace."""
    return ['-n', netns] if netns else []


def parse_links(entries):
    """``ip -d -j addr show`` entries as {name: {addresses, mtu, up, master, kind, txqueuelen,
    min_mtu, max_mtu}}; addresses are the global ones as 'ADDR/PREFIX', sorted."""
    links = {}
    for entry in entries or []:
        addrs = sorted('%s/%s' % (a['local'], a['prefixlen']) for a in entry.get('addr_info', [])
                       if a.get('scope') == 'global')
        links[entry['ifname']] = {
            'addresses': addrs, 'mtu': entry.get('mtu'),
            'up': 'UP' in entry.get('flags', []), 'master': entry.get('master'),
            'kind': (entry.get('linkinfo') or {}).get('info_kind'),
            'txqueuelen': entry.get('txqlen'),
            'min_mtu': entry.get('min_mtu'), 'max_mtu': entry.get('max_mtu')}
    return links


def read_links(runner, netns=None):
    """The devices of a namespace (None: the runner's own), parsed by ``parse_links``."""
    return parse_links(runner.json(['ip', '-d', '-j'] + netns_flag(netns) + ['addr', 'show']))


def parse_routes(entries, fam):
    """``ip -j -4|-6 route show`` entries as [{to, via, dev, family, protocol}]."""
    return [{'to': r.get('dst'), 'via': r.get('gateway'), 'dev': r.get('dev'), 'family': fam,
             'protocol': r.get('protocol')} for r in entries or []]


def read_routes(runner, netns=None):
    """Routes of the main table, both families, parsed by ``parse_routes``."""
    routes = []
    for flag, fam in (('-4', 'inet'), ('-6', 'inet6')):
        routes += parse_routes(
            runner.json(['ip', '-j', flag] + netns_flag(netns) + ['route', 'show']), fam)
    return routes


def public_routes(routes):
    return [dict((k, r[k]) for k in ('to', 'via', 'dev')) for r in routes]


def route_args(verb, route, fam=None):
    """``route VERB TO [via VIA] [dev DEV]`` (with ``-6`` for IPv6), without the leading 'ip'."""
    fam = fam or route_family(route)
    argv = (['-6'] if fam == 'inet6' else []) + ['route', verb, route['to']]
    if route.get('via'):
        argv += ['via', route['via']]
    if route.get('dev'):
        argv += ['dev', route['dev']]
    return argv


def normal_to(to):
    """A route destination as ``ip -j route`` prints it (a host route without its prefix)."""
    if to == 'default':
        return to
    to = str(ipaddress.ip_network(to, strict=False))
    if to.endswith('/32') or to.endswith('/128'):
        to = to.rsplit('/', 1)[0]
    return to


def route_present(route, current):
    """Whether ``route`` (its via and dev where given) is among the routes read back."""
    to = normal_to(route['to'])
    fam = route_family(route)
    for r in current:
        if r['to'] == to and r.get('family', fam) == fam \
                and (not route.get('via') or r['via'] == route['via']) \
                and (not route.get('dev') or r['dev'] == route['dev']):
            return True
    return False


# How ``ip -d -j`` names each kind a module can create (a tap is a tun device in tap mode).
INFO_KIND = {'tap': 'tun', 'ifb': 'ifb', 'bridge': 'bridge', 'veth': 'veth'}


def create_argv(device):
    """``ip`` argv (without 'ip') that creates ``device`` ({name, kind, peer})."""
    name, kind = device['name'], device['kind']
    if kind == 'tap':
        return ['tuntap', 'add', 'dev', name, 'mode', 'tap']
    if kind == 'veth':
        return ['link', 'add', name, 'type', 'veth', 'peer', 'name', device['peer']]
    return ['link', 'add', name, 'type', kind]


def plan_device(device, current):
    """(argv without 'ip', reason) that make ``device`` as asked, given ``current`` (its
    ``parse_links`` entry or None), and the state it will read back as."""
    name = device['name']
    ops = []
    if current is None:
        ops.append((create_argv(device), 'missing'))
        current = {'addresses': [], 'mtu': None, 'up': False, 'master': None,
                   'kind': INFO_KIND.get(device['kind']), 'txqueuelen': None}
    after = dict(current)
    if device.get('mtu') is not None and current['mtu'] != device['mtu']:
        ops.append((['link', 'set', 'dev', name, 'mtu', str(device['mtu'])],
                    'mtu %s -> %s' % (current['mtu'], device['mtu'])))
        after['mtu'] = device['mtu']
    if device.get('txqueuelen') is not None and current['txqueuelen'] != device['txqueuelen']:
        ops.append((['link', 'set', 'dev', name, 'txqueuelen', str(device['txqueuelen'])],
                    'txqueuelen %s -> %s' % (current['txqueuelen'], device['txqueuelen'])))
        after['txqueuelen'] = device['txqueuelen']
    master = device.get('master')
    if master is not None and (current['master'] or '') != master:
        ops.append((['link', 'set', 'dev', name] + (['master', master] if master
                                                    else ['nomaster']),
                    'master %s -> %s' % (current['master'], master or None)))
        after['master'] = master or None
    want = sorted(str(ipaddress.ip_interface(a)) for a in device.get('addresses') or [])
    for addr in want:
        if addr not in current['addresses']:
            ops.append((['addr', 'add', addr, 'dev', name], 'address %s missing' % addr))
    after['addresses'] = sorted(set(current['addresses']) | set(want))
    if device.get('up') is not None and current['up'] != device['up']:
        ops.append((['link', 'set', 'dev', name, 'up' if device['up'] else 'down'],
                    'up %s -> %s' % (current['up'], device['up'])))
        after['up'] = device['up']
    return ops, after
