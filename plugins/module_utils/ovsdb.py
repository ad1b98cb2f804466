# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open vSwitch state as plain Python, and one ovs-vsctl transaction per task.

- ``read_argv``/``Snapshot.parse``: one ``ovs-vsctl --format=json list`` call for the Bridge, Port
  and Interface tables; OVSDB-typed values (``["uuid",..]``, ``["set",[..]]``, ``["map",[..]]``)
  become strings, ints, lists and dicts; a bridge's ports keyed by name, its own port kept apart.
- ``desired_bridge``/``desired_port`` and the planners check every input before anything changes
  (errors name the field and the fix).
- ``plan_bridge``/``plan_port``: the predicted state after, and the clauses of ONE transaction
  (``add-br``/``add-port``/``set``/``clear``/``remove``/``del-port`` joined by ``--``).
- ``problems``/``plan_restore``: what ovs-vswitchd refused after the commit, and the transaction
  that puts back the state from before (the database accepts types and devices that ovs-vswitchd
  then cannot open, so atomicity needs this second step).
- ``OvsClient``: runs all of it for a module through the collection's Runner.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re

from ansible_collections.zerodrop.testbed.plugins.module_utils.names import device_name
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import CommandError, Runner

# OVS interface types; "system" is a plain kernel device (the empty type in the database).
PORT_TYPES = ('system', 'internal', 'tap', 'patch', 'vxlan', 'gre', 'geneve', 'erspan',
              'ip6erspan', 'ip6gre', 'stt', 'bareudp', 'gtpu', 'srv6', 'dpdk', 'dpdkvhostuser',
              'dpdkvhostuserclient', 'afxdp', 'afxdp-nonpmd')
REQUIRED_OPTIONS = {'patch': 'peer', 'vxlan': 'remote_ip', 'gre': 'remote_ip',
                    'geneve': 'remote_ip', 'erspan': 'remote_ip', 'ip6erspan': 'remote_ip',
                    'ip6gre': 'remote_ip', 'stt': 'remote_ip'}
DATAPATH_TYPES = ('system', 'netdev')
FAIL_MODES = ('standalone', 'secure', 'unset')
OFPORT_MAX = 65279

# argument_spec pieces both modules share (their DOCUMENTATION repeats them).
PORT_ARGS = dict(
    type=dict(type='str', choices=list(PORT_TYPES)),
    tag=dict(type='int'),
    trunks=dict(type='list', elements='int'),
    options=dict(type='dict'),
    ofport_request=dict(type='int'),
    mtu_request=dict(type='int'),
    external_ids=dict(type='dict'),
    purge_external_ids=dict(type='bool', default=False),
)
CONNECTION_ARGS = dict(
    database=dict(type='str'),
    timeout=dict(type='int', default=30),
)

BRIDGE_COLUMNS = ('_uuid', 'name', 'datapath_type', 'fail_mode', 'stp_enable', 'other_config',
                  'external_ids', 'ports')
PORT_COLUMNS = ('_uuid', 'name', 'interfaces', 'tag', 'trunks', 'external_ids')
INTERFACE_COLUMNS = ('_uuid', 'name', 'type', 'options', 'ofport', 'ofport_request',
                     'mtu_request', 'error')


class OvsError(Exception):
    """Bad input or a state the modules refuse to touch; the message names the field and the fix."""


class Field(object):
    """One managed column: model key, table, column, kind (scalar|set|map)."""

    def __init__(self, key, table, column, kind='scalar'):
        self.key = key
        self.table = table
        self.column = column
        self.kind = kind


BRIDGE_FIELDS = (
    Field('datapath_type', 'Bridge', 'datapath_type'),
    Field('fail_mode', 'Bridge', 'fail_mode'),
    Field('stp', 'Bridge', 'stp_enable'),
    Field('other_config', 'Bridge', 'other_config', 'map'),
    Field('external_ids', 'Bridge', 'external_ids', 'map'),
)
PORT_FIELDS = (
    Field('tag', 'Port', 'tag'),
    Field('trunks', 'Port', 'trunks', 'set'),
    Field('external_ids', 'Port', 'external_ids', 'map'),
    Field('type', 'Interface', 'type'),
    Field('options', 'Interface', 'options', 'map'),
    Field('ofport_request', 'Interface', 'ofport_request'),
    Field('mtu_request', 'Interface', 'mtu_request'),
)
INTERFACE_KEYS = ('type', 'options', 'ofport_request', 'mtu_request')

NEW_BRIDGE = {'datapath_type': 'system', 'fail_mode': 'unset', 'stp': False,
              'other_config': {}, 'external_ids': {}}
NEW_PORT = {'type': 'system', 'tag': None, 'trunks': [], 'options': {}, 'ofport_request': None,
            'mtu_request': None, 'external_ids': {}}


# ---------------------------------------------------------------- reading -----------------------

def datum(value):
    """An OVSDB JSON value as plain Python: uuid -> str, set -> list, map -> dict."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, body = value
        if kind == 'set':
            return [datum(v) for v in body]
        if kind == 'map':
            return dict((datum(k), datum(v)) for k, v in body)
        if kind in ('uuid', 'named-uuid'):
            return body
    return value


def optional(value):
    """A 0..1 column: OVSDB prints an empty set for "none" and the bare atom for one value."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def as_list(value):
    """A 0..n column: a one-element set is printed as a bare atom."""
    return value if isinstance(value, list) else [value]


def read_argv():
    """ovs-vsctl arguments that list Bridge, Port and Interface in one call."""
    argv = ['--format=json']
    for table, columns in (('Bridge', BRIDGE_COLUMNS), ('Port', PORT_COLUMNS),
                           ('Interface', INTERFACE_COLUMNS)):
        if len(argv) > 1:
            argv.append('--')
        argv += ['--columns=' + ','.join(columns), 'list', table]
    return argv


def parse_tables(text):
    """The JSON documents ovs-vsctl prints one after another, as lists of row dicts."""
    decoder = json.JSONDecoder()
    tables = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        doc, end = decoder.raw_decode(text, pos)
        headings = doc['headings']
        tables.append([dict(zip(headings, (datum(v) for v in row))) for row in doc['data']])
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tables


class Snapshot(object):
    """Every bridge and port of one database, as the modules compare them.

    ``bridges[name]``: datapath_type ('system' for the empty default), fail_mode ('unset' when
    none), stp, other_config, external_ids, ports (by name, without the bridge's own port) and
    ``datapath``: whether ovs-vswitchd opened a datapath for it (see ``has_datapath``).
    ``ports[name]``: every port of every bridge, with ``bridge``, the settings of its interface
    of the same name, and the read-only ofport, error and interfaces.
    """

    def __init__(self, bridges, ports, interfaces):
        self.bridges = bridges
        self.ports = ports
        self.interfaces = interfaces

    @classmethod
    def parse(cls, text):
        tables = parse_tables(text)
        if len(tables) != 3:
            raise OvsError('ovs-vsctl printed %d tables instead of 3' % len(tables))
        bridge_rows, port_rows, iface_rows = tables
        ifaces = dict((row['_uuid'], row) for row in iface_rows)
        by_uuid = {}
        for row in port_rows:
            by_uuid[row['_uuid']] = _port_model(row, [ifaces[u] for u in as_list(row['interfaces'])
                                                      if u in ifaces])
        bridges = {}
        ports = {}
        for row in bridge_rows:
            dp_type = row['datapath_type'] or 'system'
            bridge = {'name': row['name'], 'datapath_type': dp_type,
                      'fail_mode': optional(row['fail_mode']) or 'unset',
                      'stp': bool(row['stp_enable']), 'other_config': row['other_config'],
                      'external_ids': row['external_ids'], 'ports': {}}
            for uuid in as_list(row['ports']):
                port = by_uuid.get(uuid)
                if port is None:
                    continue
                port['bridge'] = row['name']
                ports[port['name']] = port
                if port['name'] != row['name']:
                    bridge['ports'][port['name']] = port
            bridge['datapath'] = has_datapath(ports.get(row['name']))
            bridges[row['name']] = bridge
        interfaces = dict((row['name'], row) for row in iface_rows)
        return cls(bridges, ports, interfaces)


def _port_model(row, ifaces):
    names = sorted(i['name'] for i in ifaces)
    own = [i for i in ifaces if i['name'] == row['name']] or (ifaces if len(ifaces) == 1 else [])
    port = {'name': row['name'], 'bridge': None, 'tag': optional(row['tag']),
            'trunks': sorted(as_list(row['trunks'])), 'external_ids': row['external_ids'],
            'interfaces': names}
    if own:
        iface = own[0]
        port.update({'type': iface['type'] or 'system', 'options': iface['options'],
                     'ofport_request': optional(iface['ofport_request']),
                     'mtu_request': optional(iface['mtu_request']),
                     'ofport': optional(iface['ofport']), 'error': optional(iface['error'])})
    else:
        port.update(dict((k, None) for k in INTERFACE_KEYS + ('ofport', 'error')))
    return port


def has_datapath(own_port):
    """Whether a bridge has a datapath, from its own internal port.

    ovs-vswitchd gives that port the OpenFlow number 65534 (LOCAL) once the bridge's datapath is
    open. A bridge whose datapath it cannot open (datapath_type system without the openvswitch
    kernel module: what a plain ``ovs-vsctl add-br`` leaves there) keeps an empty ofport, and the
    port's error column stays empty too, so the ofport is what tells.
    """
    return own_port is not None and own_port.get('ofport') not in (None, -1)


def no_datapath_warning(bridge):
    """A warning for a bridge (Snapshot model) that ovs-vswitchd runs without a datapath."""
    if bridge is None or bridge.get('datapath', True):
        return None
    name = bridge['name']
    if bridge['datapath_type'] == 'system':
        return ('bridge %s exists but has no datapath: ovs-vswitchd cannot open the kernel '
                '(system) datapath, which needs the openvswitch kernel module, so its ports '
                'forward nothing. Set datapath_type: netdev (the userspace datapath, no module '
                'needed), or load the module (modprobe openvswitch)' % name)
    return ('bridge %s exists but ovs-vswitchd has not set it up (its own port has no OpenFlow '
            'port): is ovs-vswitchd running and connected to this database? See its log'
            % name)


def managed(port):
    """The settings of a port the modules manage (no ofport, error, bridge, interfaces)."""
    return dict((f.key, copy.deepcopy(port[f.key])) for f in PORT_FIELDS)


def bridge_view(bridge, full=True):
    """A bridge for ``bridge``/``diff`` return values; ``full=False`` drops read-only port data."""
    if bridge is None:
        return {}
    view = dict((f.key, copy.deepcopy(bridge[f.key])) for f in BRIDGE_FIELDS)
    view['name'] = bridge['name']
    view['ports'] = dict((name, port_view(p, full)) for name, p in bridge['ports'].items())
    return view


def port_view(port, full=True):
    if port is None:
        return {}
    view = managed(port)
    view['name'] = port['name']
    view['bridge'] = port.get('bridge')
    if full:
        for key in ('ofport', 'error', 'interfaces'):
            view[key] = port.get(key)
    return view


# ---------------------------------------------------------------- input -------------------------

def ovs_string(value):
    """A map value as OVS stores it (YAML true -> 'true', 5 -> '5')."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def string_map(value, field):
    if value is None:
        return None
    result = {}
    for key, item in value.items():
        if item is None:
            raise OvsError('%s.%s has no value: give it a string, or leave the key out'
                           % (field, key))
        result[str(key)] = ovs_string(item)
    return result


# Port types that are a Linux device of the port's name (the others, patch ports, tunnels and
# DPDK ports, live in ovs-vswitchd only).
DEVICE_TYPES = ('system', 'internal', 'tap', 'afxdp', 'afxdp-nonpmd')


def check_ifname(name, field, port_type='system'):
    """A bridge or port name: Linux device rules (names.device_name) where it is a device."""
    if port_type in DEVICE_TYPES:
        problem = device_name(field, name)
    elif not name:
        problem = '%s is empty: give the port a name' % field
    elif name.startswith('-') or re.search(r'\s', name):
        problem = ('%s %r starts with "-" or contains whitespace: choose another name'
                   % (field, name))
    else:
        problem = None
    if problem:
        raise OvsError(problem)


def desired_port(params, field):
    """Module parameters of one port -> the settings it asks for (unset ones left out).

    ``field`` is how errors name this port: ``ports[2]`` in ovs_bridge, empty in ovs_port.
    """
    prefix = field + '.' if field else ''
    name = params.get('name')
    check_ifname(name, prefix + 'name', params.get('type') or 'system')
    want = {}
    for key in ('type', 'tag', 'ofport_request', 'mtu_request'):
        if params.get(key) is not None:
            want[key] = params[key]
    if params.get('trunks') is not None:
        want['trunks'] = sorted(set(params['trunks']))
    for key in ('options', 'external_ids'):
        if params.get(key) is not None:
            want[key] = string_map(params[key], prefix + key)
    tag = want.get('tag')
    if tag is not None and not 0 <= tag <= 4095:
        raise OvsError('%stag %d is not a VLAN id: use 0..4095' % (prefix, tag))
    for vid in want.get('trunks', []):
        if not 0 <= vid <= 4095:
            raise OvsError('%strunks contains %d, which is not a VLAN id: use values in 0..4095'
                           % (prefix, vid))
    ofport = want.get('ofport_request')
    if ofport is not None and not 1 <= ofport <= OFPORT_MAX:
        raise OvsError('%sofport_request %d is out of range: OpenFlow port numbers are 1..%d'
                       % (prefix, ofport, OFPORT_MAX))
    mtu = want.get('mtu_request')
    if mtu is not None and not 68 <= mtu <= 65535:
        raise OvsError('%smtu_request %d is out of range: use 68..65535' % (prefix, mtu))
    return {'name': name, 'want': want,
            'purge_external_ids': bool(params.get('purge_external_ids')), 'field': field}


def desired_bridge(params):
    check_ifname(params['name'], 'name')
    want = {}
    for key in ('datapath_type', 'fail_mode', 'stp'):
        if params.get(key) is not None:
            want[key] = params[key]
    for key in ('other_config', 'external_ids'):
        if params.get(key) is not None:
            want[key] = string_map(params[key], key)
    return want


# ---------------------------------------------------------------- planning ----------------------

class Transaction(object):
    """Clauses of one ovs-vsctl run; ``argv`` joins them with ``--``."""

    def __init__(self):
        self.clauses = []
        self.verify = []  # ports whose interface ovs-vswitchd must accept after the commit

    def add(self, *words):
        self.clauses.append([str(w) for w in words])

    def argv(self):
        out = []
        for clause in self.clauses:
            if out:
                out.append('--')
            out.extend(clause)
        return out

    def touched(self):
        """(bridges, ports) named by the clauses, for verification and rollback."""
        bridges, ports = [], []
        for clause in self.clauses:
            verb = clause[0]
            if verb in ('add-br', 'del-br'):
                names, name = bridges, clause[1]
            elif verb in ('add-port', 'del-port'):
                names, name = ports, clause[2]
            else:  # set/clear/remove TABLE RECORD ...
                names, name = (bridges if clause[1] == 'Bridge' else ports), clause[2]
            if name not in names:
                names.append(name)
        return bridges, ports

    def __bool__(self):
        return bool(self.clauses)

    __nonzero__ = __bool__


_BARE = re.compile(r'^[A-Za-z0-9_.+/@-]+$')


def quote(value):
    """A string as ovs-vsctl reads it in ``col=value`` and ``col:key=value``."""
    if _BARE.match(value):
        return value
    return json.dumps(value, ensure_ascii=False)


def encode(field, value):
    if field.key == 'type' and value == 'system':
        return '""'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, list):
        return '[%s]' % ','.join(str(v) for v in value)
    if isinstance(value, int):
        return str(value)
    return quote(value)


def _is_unset(field, value):
    return value is None or value == [] or (field.key == 'fail_mode' and value == 'unset')


def field_clauses(txn, fields, record, current, target):
    """Clauses turning ``current`` into ``target`` for the columns in ``fields`` of ``record``."""
    sets = {}
    clears = {}
    removes = []
    for field in fields:
        old, new = current.get(field.key), target.get(field.key)
        if field.kind == 'map':
            old = old or {}
            new = new or {}
            for key in sorted(new):
                if old.get(key) != new[key]:
                    sets.setdefault(field.table, []).append(
                        '%s:%s=%s' % (field.column, quote(key), quote(new[key])))
            gone = sorted(k for k in old if k not in new)
            if gone:
                removes.append([field.table, field.column, gone])
        elif old != new:
            if _is_unset(field, new):
                clears.setdefault(field.table, []).append(field.column)
            else:
                sets.setdefault(field.table, []).append(
                    '%s=%s' % (field.column, encode(field, new)))
    for table in ('Bridge', 'Port', 'Interface'):
        if table in sets:
            txn.add('set', table, record, *sets[table])
        if table in clears:
            txn.add('clear', table, record, *clears[table])
    for table, column, keys in removes:
        txn.add('remove', table, record, column, *[quote(k) for k in keys])


def predict(fields, current, want, purge=()):
    """``current`` with ``want`` applied: maps merge unless their key is in ``purge``."""
    after = copy.deepcopy(current)
    for field in fields:
        if field.key not in want:
            continue
        value = copy.deepcopy(want[field.key])
        if field.kind == 'map' and field.key not in purge:
            merged = dict(after.get(field.key) or {})
            merged.update(value)
            value = merged
        after[field.key] = value
    return after


def _port_target(current, spec):
    # Interface options are replaced whole: a leftover tunnel key would silently change traffic.
    purge = ['options']
    if spec['purge_external_ids']:
        purge.append('external_ids')
    return predict(PORT_FIELDS, current, spec['want'], purge)


def check_port_target(spec, target, bridge):
    """The settings a port ends up with must make sense as a whole."""
    field = spec['field']
    prefix = field + '.' if field else ''
    needed = REQUIRED_OPTIONS.get(target['type'])
    if needed and needed not in (target['options'] or {}):
        raise OvsError('%soptions.%s is missing: a %s port needs it (e.g. options: {%s: ...}) '
                       'on bridge %s' % (prefix, needed, target['type'], needed, bridge))


def _plan_one_port(txn, snap, bridge, spec, move, move_option, ports_after):
    """Add one port's clauses to ``txn``; return its predicted model."""
    name = spec['name']
    prefix = spec['field'] + '.' if spec['field'] else ''
    if name == bridge:
        raise OvsError('%sname %r is the internal port OVS gives bridge %s itself; leave it '
                       'out of the ports' % (prefix, name, bridge))
    if name in snap.bridges:
        raise OvsError('%sname %r is the name of bridge %s (every bridge owns a port of its '
                       'own name): choose another port name' % (prefix, name, name))
    iface = snap.interfaces.get(name)
    current = snap.ports.get(name)
    if current is None and iface is not None:
        raise OvsError('%sname %r is already an interface of another port (a bond member): '
                       'choose another name or remove it from that bond first' % (prefix, name))
    if current is not None and current['type'] is None and \
            set(spec['want']) & set(INTERFACE_KEYS):
        raise OvsError('%sname %r is a bond of %s; type, options, ofport_request and '
                       'mtu_request can only be managed on single-interface ports'
                       % (prefix, name, ', '.join(current['interfaces'])))
    moving = current is not None and current['bridge'] not in (None, bridge)
    where = spec['field'] + ': ' if spec['field'] else ''
    if moving and not move:
        raise OvsError('%sport %s is on bridge %s, not on bridge %s: set %s: true to move it '
                       '(in the same transaction), or remove it from %s first'
                       % (where, name, current['bridge'], bridge, move_option,
                          current['bridge']))
    if moving and current['type'] is None:
        raise OvsError('%sport %s on bridge %s is a bond of %s: bonds are not moved; remove it '
                       'there first' % (where, name, current['bridge'],
                                        ', '.join(current['interfaces'])))
    if current is None or moving:
        base = managed(current) if moving else dict(NEW_PORT)
        target = _port_target(base, spec)
        check_port_target(spec, target, bridge)
        if moving:
            txn.add('del-port', current['bridge'], name)
        txn.add('add-port', bridge, name)
        field_clauses(txn, PORT_FIELDS, name, NEW_PORT, target)
        txn.verify.append(name)
    else:
        base = managed(current)
        target = _port_target(base, spec)
        check_port_target(spec, target, bridge)
        before = len(txn.clauses)
        field_clauses(txn, PORT_FIELDS, name, base, target)
        if any(c[1] == 'Interface' for c in txn.clauses[before:]):
            txn.verify.append(name)
    after = dict(target, name=name, bridge=bridge)
    for key in ('ofport', 'error', 'interfaces'):
        after[key] = None if (current is None or moving) else current[key]
    ports_after[name] = after
    return after


def _check_ofports(ports, bridge, specs):
    """Two ports asking for one OpenFlow number, or one already taken: ovs-vswitchd would hand
    out another number silently."""
    owner = {}
    for port in ports.values():
        request = port.get('ofport_request')
        if request is not None:
            if request in owner:
                raise OvsError('ofport_request %d is asked for by ports %s and %s on bridge %s: '
                               'give each port its own number'
                               % (request, owner[request], port['name'], bridge))
            owner[request] = port['name']
    for name in specs:
        request = ports[name].get('ofport_request')
        for other in ports.values():
            if other['name'] != name and other.get('ofport') == request and \
                    other.get('ofport_request') is None and request is not None:
                raise OvsError('ofport_request %d of port %s is already the OpenFlow port of %s '
                               'on bridge %s: choose another number, or give %s an '
                               'ofport_request of its own' % (request, name, other['name'],
                                                              bridge, other['name']))


def plan_bridge(snap, name, state, want, purge_other_config=False, purge_external_ids=False,
                ports=None, purge_ports=False, move_ports=False):
    """(Transaction, predicted bridge model or None) for the ovs_bridge module."""
    txn = Transaction()
    current = snap.bridges.get(name)
    if state == 'absent':
        if current is not None:
            txn.add('del-br', name)
        return txn, None
    if current is None and name in snap.ports:
        raise OvsError('name %r is already a port of bridge %s: choose another bridge name or '
                       'remove that port first' % (name, snap.ports[name]['bridge']))
    if current is None and name in snap.interfaces:
        raise OvsError('name %r is already an interface (a bond member): choose another bridge '
                       'name' % name)
    seen = {}
    for spec in ports or []:
        if spec['name'] in seen:
            raise OvsError('%s.name %r is listed twice (%s and %s): list each port once'
                           % (spec['field'], spec['name'], seen[spec['name']], spec['field']))
        seen[spec['name']] = spec['field']
    purge = []
    if purge_other_config:
        purge.append('other_config')
    if purge_external_ids:
        purge.append('external_ids')
    if current is None:
        base = dict(NEW_BRIDGE, name=name, ports={})
        txn.add('add-br', name)
        txn.verify.append(name)
    else:
        base = current
    after = predict(BRIDGE_FIELDS, base, want, purge)
    field_clauses(txn, BRIDGE_FIELDS, name, base, after)
    ports_after = dict((n, dict(p)) for n, p in base['ports'].items())
    if ports is not None:
        if purge_ports:
            listed = set(seen)
            for port_name in sorted(base['ports']):
                if port_name not in listed:
                    txn.add('del-port', name, port_name)
                    del ports_after[port_name]
        for spec in ports:
            _plan_one_port(txn, snap, name, spec, move_ports, 'move_ports', ports_after)
        _check_ofports(ports_after, name, seen)
    after['ports'] = ports_after
    after['name'] = name
    return txn, after


def plan_port(snap, bridge, spec, state, move=False):
    """(Transaction, predicted port model or None) for the ovs_port module."""
    txn = Transaction()
    name = spec['name']
    current = snap.ports.get(name)
    if state == 'absent':
        if current is not None and current['bridge'] is not None and \
                bridge in (None, current['bridge']):
            if name in snap.bridges:
                raise OvsError('name %r is the internal port of bridge %s: remove the bridge '
                               'with ovs_bridge state=absent instead' % (name, name))
            txn.add('del-port', current['bridge'], name)
        # A port left alone on another bridge is reported as it is.
        return txn, (None if txn else current)
    if bridge is None:
        raise OvsError('bridge is required with state=present: name the bridge the port '
                       'belongs to')
    if bridge not in snap.bridges:
        raise OvsError('bridge %s does not exist: create it first (zerodrop.testbed.ovs_bridge)'
                       % bridge)
    ports_after = dict((n, dict(p)) for n, p in snap.bridges[bridge]['ports'].items())
    after = _plan_one_port(txn, snap, bridge, spec, move, 'move', ports_after)
    _check_ofports(ports_after, bridge, [name])
    return txn, after


# ---------------------------------------------------------------- after the commit --------------

def _broken(port):
    return port.get('error') or port.get('ofport') in (None, -1)


def problems(before, after, names):
    """What ovs-vswitchd refused among ``names`` (ports and bridges this transaction set up)."""
    found = []
    for name in names:
        port = after.ports.get(name)
        if port is None or port['type'] is None:
            continue
        old = before.ports.get(name)
        if old is not None and old['bridge'] == port['bridge'] and _broken(old):
            continue  # broken before this task: not this transaction's doing
        if port['type'] == 'patch' and (port['options'] or {}).get('peer') not in after.ports:
            continue  # its peer comes with a later task (the other bridge)
        if port.get('error'):
            found.append('%s: %s' % (name, port['error']))
        elif port.get('ofport') in (None, -1):
            hint = ''
            owner = after.bridges.get(port['bridge'])
            if owner is not None and owner['datapath_type'] == 'system' and \
                    not owner['datapath']:
                where = '' if port['bridge'] == name else ': bridge %s has no datapath' % \
                    port['bridge']
                hint = (' (%sdatapath_type system needs the openvswitch kernel module; without '
                        'it use datapath_type: netdev)'
                        % (where[2:] + '; ' if where else ''))
            found.append('%s: ovs-vswitchd gave it no OpenFlow port%s' % (name, hint))
        elif port.get('ofport_request') is not None and port['ofport'] != port['ofport_request']:
            found.append('%s: got OpenFlow port %s instead of ofport_request %s'
                         % (name, port['ofport'], port['ofport_request']))
    return found


def plan_restore(before, after, bridges, ports):
    """The transaction that gives ``bridges`` and ``ports`` back the settings of ``before``."""
    txn = Transaction()
    deleted = set()
    for name in bridges:
        old, new = before.bridges.get(name), after.bridges.get(name)
        if old is None and new is not None:
            txn.add('del-br', name)
            deleted.add(name)
        elif old is not None and new is not None:
            field_clauses(txn, BRIDGE_FIELDS, name, new, old)
    for name in ports:
        old, new = before.ports.get(name), after.ports.get(name)
        if old is not None and new is not None and old['bridge'] == new['bridge']:
            if old['type'] is not None:
                field_clauses(txn, PORT_FIELDS, name, managed(new), managed(old))
            continue
        if new is not None and new['bridge'] not in deleted:
            txn.add('del-port', new['bridge'], name)
        if old is not None and old['bridge'] in after.bridges and old['bridge'] not in deleted:
            txn.add('add-port', old['bridge'], name)
            field_clauses(txn, PORT_FIELDS, name, NEW_PORT, managed(old))
    return txn


# ---------------------------------------------------------------- running -----------------------

NO_DATABASE = ('cannot reach the Open vSwitch database at %s (%s). Start Open vSwitch '
               '(systemctl start openvswitch-switch), or, on a host without the openvswitch '
               'kernel module, start private daemons: ovsdb-tool create RUN/conf.db '
               '/usr/share/openvswitch/vswitch.ovsschema; ovsdb-server RUN/conf.db '
               '--remote=punix:RUN/db.sock --detach; ovs-vsctl --db=unix:RUN/db.sock --no-wait '
               'init; ovs-vswitchd unix:RUN/db.sock --detach; then pass database: '
               'unix:RUN/db.sock and use datapath_type: netdev')


class OvsClient(object):
    """ovs-vsctl for one module run: read a Snapshot, apply one Transaction, undo what
    ovs-vswitchd refused."""

    def __init__(self, module):
        self.module = module
        self.runner = Runner(module)
        self.database = module.params['database']
        self.timeout = module.params['timeout']
        self.rolled_back = False

    def fail(self, msg, error=None):
        self.runner.fail(msg, error=error, rolled_back=self.rolled_back)

    def prefix(self):
        path = self.module.get_bin_path('ovs-vsctl')
        if not path:
            self.fail('ovs-vsctl was not found: install Open vSwitch (Debian/Ubuntu: apt-get '
                      'install openvswitch-switch; Fedora/RHEL: dnf install openvswitch)')
        if self.database and self.database.startswith('unix:') and \
                not os.path.exists(self.database[5:]):
            self.fail(NO_DATABASE % (self.database, 'the socket does not exist'))
        if self.timeout < 1:
            self.fail('timeout %d is too small: give the seconds ovs-vsctl may wait (e.g. 30)'
                      % self.timeout)
        argv = [path, '--timeout=%d' % self.timeout]
        if self.database:
            argv.append('--db=' + self.database)
        return argv

    def read(self):
        argv = self.prefix() + read_argv()
        try:
            result = self.runner.run(argv)
        except CommandError as e:
            if 'database connection failed' in e.result.stderr:
                self.fail(NO_DATABASE % (self.database or 'the default socket',
                                         e.result.stderr.strip()), error=e)
            self.fail('reading the Open vSwitch database failed: %s' % e, error=e)
        try:
            return Snapshot.parse(result.stdout)
        except (ValueError, KeyError, OvsError) as e:
            self.fail('cannot parse ovs-vsctl JSON output (%s): %s' % (e, result.stdout[:300]))

    def _run(self, txn, what):
        try:
            self.runner.run(self.prefix() + txn.argv(), changes=True)
        except CommandError as e:
            err = e.result.stderr.strip()
            if e.result.rc in (-14, 142) or 'timeout' in err.lower():
                self.fail('%s: ovs-vsctl gave up after %d s (is ovs-vswitchd running? raise '
                          'timeout if it is slow): %s' % (what, self.timeout, err), error=e)
            self.fail('%s failed; ovs-vsctl ran it as one transaction, so it changed nothing: '
                      '%s' % (what, err), error=e)

    def apply(self, txn, before):
        """Run ``txn``; return the Snapshot after it (None in check mode)."""
        self._run(txn, 'the change')
        if self.module.check_mode:
            return None
        after = self.read()
        refused = problems(before, after, txn.verify)
        if refused:
            bridges, ports = txn.touched()
            undo = plan_restore(before, after, bridges, ports)
            if undo:
                self._run(undo, 'undoing the change ovs-vswitchd refused (%s)'
                          % '; '.join(refused))
            self.rolled_back = True
            self.fail('ovs-vswitchd refused the change, which was undone (the database is as '
                      'before this task): %s' % '; '.join(refused))
        return after
