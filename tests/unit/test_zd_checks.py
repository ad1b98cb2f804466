"""The layout guard, the queue-filled check and the kernel config comparison, on qdisc trees,
samples and configs recorded on this machine (fixtures/layout/README.md)."""

import json
import os

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import zd_checks
from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import tc_stats

import recorded

LAYOUT = os.path.join(recorded.FIXTURES, 'layout')
TINYCONFIG = os.path.join(recorded.FIXTURES, 'kernel_build', 'tinyconfig-6.1.192-x86_64.config')
AUTHORS_CONFIG = os.path.join(recorded.ROOT, '..', 'shared', 'sources', 'zD-authors-4.14.67.config')


def tree(name):
    with open(os.path.join(LAYOUT, name + '.json')) as f:
        return json.load(f)


def txqueuelen():
    with open(os.path.join(LAYOUT, 'link-v0.json')) as f:
        return json.load(f)[0]['txqlen']


def samples(directory):
    with open(os.path.join(LAYOUT, directory, 'tc_during.jsonl')) as f:
        return tc_stats.load_samples(f.read())


@pytest.mark.parametrize('name,branch', [
    ('4.14.67-vm-pfifo', 'vm-pfifo'),
    ('4.14.67-vm-tbf+', 'vm-tbf'),
    ('physical-pfifo', 'physical-pfifo'),
    ('4.14.67-physical-tbf', 'physical-tbf'),
    ('4.14.67-vanilla', None),
    ('6.18.44-fc-v1045', None),
    ('4.14.67-vm-pfifo-debug', None),
    (None, None),
])
def test_branch_of(name, branch):
    assert zd_checks.branch_of(name) == branch


@pytest.mark.parametrize('kernel,branch', [
    ({'preset': 'vm-pfifo', 'name': 'anything'}, 'vm-pfifo'),
    ({'preset': 'vanilla', 'name': 'x-vm-pfifo'}, None),
    ({'name': 'vm-tbf'}, 'vm-tbf'),
    ({'kernelrelease': '4.14.67-physical-pfifo'}, 'physical-pfifo'),
    ({}, None),
])
def test_kernel_branch(kernel, branch):
    assert zd_checks.kernel_branch(kernel) == branch


def test_recorded_txqueuelen_is_100():
    assert txqueuelen() == 100


@pytest.mark.parametrize('branch,name,ok,reason', [
    ('vm-pfifo', 'pfifo-limit-100', True, None),
    ('vm-pfifo', 'pfifo-limit-1000', False,
     'vm-pfifo pushes back only at a root pfifo whose limit equals the txqueuelen of v0 (100): '
     'found pfifo limit 1000'),
    ('vm-pfifo', 'tbf-default-child', False,
     'vm-pfifo pushes back only at a root pfifo whose limit equals the txqueuelen of v0 (100): '
     'found root tbf 1:'),
    ('vm-pfifo', 'bfifo-root', False,
     'vm-pfifo pushes back only at a root pfifo whose limit equals the txqueuelen of v0 (100): '
     'found root bfifo 1: limit 150000'),
    ('vm-pfifo', 'default', False,
     'vm-pfifo pushes back only at a root pfifo whose limit equals the txqueuelen of v0 (100): '
     'found root noqueue 0:'),
    ('vm-tbf', 'tbf-default-child', True, None),
    ('vm-tbf', 'tbf-bfifo-child', False,
     "vm-tbf pushes back only at a root tbf with its default bfifo child (no child of its own) "
     "on the sender's egress: found root tbf 1: with child bfifo 10: limit 100000"),
    ('vm-tbf', 'tbf-pfifo-child', False,
     "vm-tbf pushes back only at a root tbf with its default bfifo child (no child of its own) "
     "on the sender's egress: found root tbf 1: with child pfifo 10: limit 100"),
    ('vm-tbf', 'pfifo-limit-100', False,
     "vm-tbf pushes back only at a root tbf with its default bfifo child (no child of its own) "
     "on the sender's egress: found root pfifo 1: limit 100"),
    # physical-pfifo pushes back at the pfifo's own limit, whatever the txqueuelen
    ('physical-pfifo', 'pfifo-limit-1000', True, None),
    ('physical-pfifo', 'tbf-pfifo-child', False,
     'physical-pfifo pushes back only at a root pfifo: found root tbf 1: with child pfifo 10: '
     'limit 100'),
    ('physical-tbf', 'tbf-default-child', True, None),
    ('physical-tbf', 'tbf-bfifo-child', False,
     "physical-tbf pushes back only at a root tbf with its default bfifo child (no child of its "
     "own) on the hypervisor's tap: found root tbf 1: with child bfifo 10: limit 100000"),
])
def test_layout_check_on_recorded_trees(branch, name, ok, reason):
    result = zd_checks.layout_check(branch, tree(name), 'v0', txqueuelen())
    assert (result['ok'], result['reason']) == (ok, reason)
    assert result['branch'] == branch and result['device'] == 'v0'


def test_layout_check_needs_the_txqueuelen_and_a_tree():
    result = zd_checks.layout_check('vm-pfifo', tree('pfifo-limit-100'), 'v0', None)
    assert not result['ok'] and 'txqueuelen of v0 (unknown)' in result['reason']
    result = zd_checks.layout_check('vm-pfifo', [], 'eth1', 100)
    assert result['reason'] == "no qdisc of eth1 (the sender's egress) was recorded"
    assert zd_checks.layout_check(None, tree('pfifo-limit-100'), 'v0', 100) is None
    assert zd_checks.layout_check('vanilla', tree('pfifo-limit-100'), 'v0', 100) is None


def test_layout_check_picks_the_device_from_an_all_devices_listing():
    # the runner's sender samples every device (`tc -s -j qdisc show`): vs is the tbf one
    with open(os.path.join(LAYOUT, 'direct_tbf_sender', 'tc_before.json')) as f:
        listing = json.load(f)
    assert set(q['dev'] for q in listing) >= {'lo', 'vs'}
    result = zd_checks.layout_check('vm-tbf', listing, 'vs', 100)
    assert result['ok'] and result['found'] == 'root tbf 2:'
    assert not zd_checks.layout_check('vm-pfifo', listing, 'lo', 1000)['ok']


def test_queue_never_filled_in_a_real_run_on_a_root_pfifo():
    # a veth does not stop its queue: 8 neper flows for 3 s left the root pfifo empty
    result = zd_checks.queue_check(samples('direct_pfifo_sender'), 'vs', 100, dropped=0)
    assert result == {'device': 'vs', 'qdisc': 'pfifo 1:', 'unit': 'packets', 'limit': 100,
                      'max_backlog': 0, 'dropped': 0, 'filled': False,
                      'reason': "not comparable: the sender's queue never filled (max backlog 0 "
                                "of limit 100 packets)"}


def test_queue_filled_in_a_real_run_on_a_root_tbf():
    # tbf rate 20mbit burst 32000 latency 50ms: tc -j prints no limit; the default child's is
    # rate x latency + burst = 2500000 x 0.05 + 32000, less tc's rounding of the burst
    result = zd_checks.queue_check(samples('direct_tbf_sender'), 'vs', 100, dropped=217)
    assert result['unit'] == 'bytes' and result['limit'] == 156997
    assert result['max_backlog'] == 152914 and result['filled'] and result['reason'] is None


def test_queue_filled_in_the_recorded_direct_layout():
    # d_neper_F4000: tbf + bfifo 100000 on the sender's veth, `show dev` output (no dev names)
    mid = json.loads(recorded.text('d_neper_F4000', 'tc_mid.json'))
    result = zd_checks.queue_check([(10.0, mid)], 'veth-snd')
    assert (result['qdisc'], result['unit'], result['limit'], result['max_backlog']) == (
        'bfifo 10:', 'bytes', 100000, 96896)
    assert result['filled']


def test_a_fifo_that_dropped_was_full_whatever_the_samples_say():
    result = zd_checks.queue_check(samples('direct_pfifo_sender'), 'vs', 100, dropped=3)
    assert result['filled'] and result['max_backlog'] == 0


@pytest.mark.parametrize('name,expected', [
    ('pfifo-limit-100', ('pfifo', 'packets', 100)),
    ('bfifo-root', ('bfifo', 'bytes', 150000)),
    ('tbf-bfifo-child', ('bfifo', 'bytes', 100000)),
    ('tbf-pfifo-child', ('pfifo', 'packets', 100)),
    ('tbf-default-child', ('tbf', 'bytes', 220267)),
    ('default', None),
])
def test_queue_of_recorded_trees(name, expected):
    found = zd_checks.queue_of(tree(name), txqueuelen())
    assert (found[0]['kind'], found[1], found[2]) == expected if expected else found is None


def test_queue_of_pfifo_fast_is_the_txqueuelen():
    with open(os.path.join(recorded.FIXTURES, 'tc', 'host-tap-default.json')) as f:
        found = zd_checks.queue_of(json.load(f), 1000)
    assert (found[0]['kind'], found[1], found[2]) == ('pfifo_fast', 'packets', 1000)


@pytest.mark.parametrize('fixture,limit', [
    ('host-tbf-limit-only.json', 100000),  # tc -d prints the limit
    ('host-seed-tbf-bfifo.json', 15125),   # and it is what rate x lat + burst gives
])
def test_tbf_limit_from_recorded_detail_output(fixture, limit):
    with open(os.path.join(recorded.FIXTURES, 'tc', fixture)) as f:
        options = json.load(f)[0]['options']
    assert zd_checks._tbf_limit(options) == limit
    derived = dict(options)
    del derived['limit']
    if 'lat' in options:
        assert zd_checks._tbf_limit(derived) == limit


def read(path):
    with open(path) as f:
        return zd_checks.parse_config(f.read())


def test_configs_identical_apart_from_localversion():
    base = read(TINYCONFIG)
    named = dict(base, CONFIG_LOCALVERSION='"-vm-pfifo"')
    result = zd_checks.compare_configs(base, named)
    assert result['identical_apart_from_localversion'] is True and result['differing'] == []
    assert result['hash_a'] == result['hash_b']
    assert result['localversion'] == [base.get('CONFIG_LOCALVERSION'), '"-vm-pfifo"']
    # "is not set" and absent are the same configuration
    unset = [s for s, v in base.items() if v == 'n'][0]
    trimmed = dict((s, v) for s, v in base.items() if s != unset)
    assert zd_checks.compare_configs(base, trimmed)['identical_apart_from_localversion']


def test_configs_that_differ_list_their_symbols():
    base = read(TINYCONFIG)
    assert (base['CONFIG_NET_SCH_TBF'], base['CONFIG_PRINTK']) == ('y', 'y')
    changed = dict(base, CONFIG_NET_SCH_TBF='m', CONFIG_PRINTK='n', CONFIG_NET_CLS='y')
    result = zd_checks.compare_configs(base, changed)
    assert result['identical_apart_from_localversion'] is False
    assert result['differing'] == [
        {'symbol': 'CONFIG_NET_CLS', 'a': None, 'b': 'y'},
        {'symbol': 'CONFIG_NET_SCH_TBF', 'a': 'y', 'b': 'm'},
        {'symbol': 'CONFIG_PRINTK', 'a': 'y', 'b': None},
    ]
    assert result['hash_a'] != result['hash_b']


def test_two_real_configs_differ():
    if not os.path.exists(AUTHORS_CONFIG):
        pytest.skip('no ../shared/sources/zD-authors-4.14.67.config next to this clone')
    result = zd_checks.compare_configs(read(TINYCONFIG), read(AUTHORS_CONFIG))
    symbols = [d['symbol'] for d in result['differing']]
    assert not result['identical_apart_from_localversion'] and len(symbols) > 100
    assert 'CONFIG_LOCALVERSION' not in symbols and symbols == sorted(symbols)
