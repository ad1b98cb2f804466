"""module_utils/iplink.py on recorded ip -j output (tests/unit/fixtures/iplink/README.md)."""

import json
import os

from ansible_collections.zerodrop.testbed.plugins.module_utils import iplink

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'iplink')


def recorded(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


LINKS = iplink.parse_links(recorded('host-bridge-tap-ifb.json'))
ROUTES = iplink.parse_routes(recorded('host-bridge-tap-ifb-route4.json'), 'inet')


def test_parse_links_reads_kind_master_queue_mtu_state_and_global_addresses():
    assert sorted(LINKS) == ['br0', 'ifb0', 'lo', 'tap0']
    tap, ifb, br = LINKS['tap0'], LINKS['ifb0'], LINKS['br0']
    assert (tap['kind'], tap['master'], tap['txqueuelen'], tap['up']) == ('tun', 'br0', 77, True)
    assert (ifb['kind'], ifb['mtu'], ifb['up']) == ('ifb', 9000, False)
    assert (br['kind'], br['addresses']) == ('bridge', ['10.250.90.1/24'])
    assert LINKS['lo']['addresses'] == []  # 127.0.0.1 has host scope


def test_parse_routes_and_route_present():
    assert iplink.public_routes(ROUTES) == [
        {'to': '10.250.90.0/24', 'via': None, 'dev': 'br0'},
        {'to': '10.250.91.0/24', 'via': '10.250.90.2', 'dev': 'br0'}]
    assert iplink.route_present({'to': '10.250.91.0/24', 'via': '10.250.90.2', 'dev': 'br0'},
                                ROUTES)
    assert not iplink.route_present({'to': '10.250.91.0/24', 'via': '10.250.90.3'}, ROUTES)
    assert not iplink.route_present({'to': '10.250.92.0/24', 'dev': 'br0'}, ROUTES)
    assert iplink.route_args('replace', {'to': 'fd00::/64', 'via': 'fd00::1', 'dev': 'br0'}) \
        == ['-6', 'route', 'replace', 'fd00::/64', 'via', 'fd00::1', 'dev', 'br0']
    assert iplink.normal_to('10.0.0.7/32') == '10.0.0.7'


def test_plan_device_as_recorded_is_nothing_to_do():
    for device in ({'name': 'tap0', 'kind': 'tap', 'master': 'br0', 'up': True, 'txqueuelen': 77},
                   {'name': 'ifb0', 'kind': 'ifb', 'mtu': 9000},
                   {'name': 'br0', 'kind': 'bridge', 'up': True,
                    'addresses': ['10.250.90.1/24']}):
        ops, after = iplink.plan_device(device, LINKS[device['name']])
        assert ops == [] and after == LINKS[device['name']], device['name']


def test_plan_device_creates_then_sets_in_order():
    ops, after = iplink.plan_device({'name': 'tap1', 'kind': 'tap', 'master': 'br0', 'up': True,
                                     'mtu': 1400, 'txqueuelen': 10,
                                     'addresses': ['10.0.0.1/24']}, None)
    assert [argv for argv, why in ops] == [
        ['tuntap', 'add', 'dev', 'tap1', 'mode', 'tap'],
        ['link', 'set', 'dev', 'tap1', 'mtu', '1400'],
        ['link', 'set', 'dev', 'tap1', 'txqueuelen', '10'],
        ['link', 'set', 'dev', 'tap1', 'master', 'br0'],
        ['addr', 'add', '10.0.0.1/24', 'dev', 'tap1'],
        ['link', 'set', 'dev', 'tap1', 'up']]
    assert after['kind'] == 'tun' and after['master'] == 'br0' and after['up'] is True
    assert iplink.create_argv({'name': 'v0', 'kind': 'veth', 'peer': 'v1'}) == \
        ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']


def test_plan_device_detaches_and_brings_down():
    ops, after = iplink.plan_device({'name': 'tap0', 'kind': 'existing', 'master': '',
                                     'up': False}, LINKS['tap0'])
    assert [argv for argv, why in ops] == [['link', 'set', 'dev', 'tap0', 'nomaster'],
                                           ['link', 'set', 'dev', 'tap0', 'down']]
    assert after['master'] is None and after['up'] is False
