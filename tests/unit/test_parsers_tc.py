"""tc -s -j qdisc statistics on the recorded bottleneck snapshots (values read from the JSON)."""

import json

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError, tc_stats

import recorded


def _delta(run):
    return tc_stats.delta(tc_stats.parse(recorded.text(run, 'tc_before.json')),
                          tc_stats.parse(recorded.text(run, 'tc_after.json')))


def test_parse_flattens_counters():
    tbf, fifo = tc_stats.parse(recorded.text('d_neper_F4000', 'tc_after.json'), dev='veth-snd')
    assert (tbf['kind'], tbf['handle'], tbf['root'], tbf['dev']) == ('tbf', '1:', True, 'veth-snd')
    assert (fifo['kind'], fifo['parent'], fifo['root']) == ('bfifo', '1:1', False)
    assert tbf['drops'] == 273997 and tbf['overlimits'] == 711953 and tbf['marked'] is None


def test_delta_and_root_only_totals():
    deltas = _delta('d_neper_F4000')
    totals = tc_stats.totals(deltas)
    # tbf and its bfifo child both report the same 273997 drops: counted once
    assert totals['drops'] == 273997
    assert totals['bytes'] == 253569626 - 516
    assert totals['packets'] == 177175 - 6
    assert totals['backlog'] == 0 and not any(q['reset'] for q in deltas)
    assert tc_stats.totals(_delta('r_neper_F100'))['drops'] == 18767


def test_backlog_max_from_samples():
    mid = json.loads(recorded.text('d_neper_F4000', 'tc_mid.json'))
    lines = '\n'.join(json.dumps({'t': t, 'qdiscs': q}) for t, q in ((1.0, []), (10.0, mid)))
    samples = tc_stats.parse_samples(lines)
    assert tc_stats.backlog_max(samples) == 96896
    assert tc_stats.backlog_max([]) is None


def test_red_counters_and_recreated_qdisc():
    before = [{'kind': 'tbf', 'handle': '1:', 'root': True, 'drops': 5, 'bytes': 100, 'packets': 2},
              {'kind': 'red', 'handle': '10:', 'parent': '1:1', 'drops': 5, 'marked': 3, 'early': 1,
               'pdrop': 0, 'other': 0}]
    after = [{'kind': 'tbf', 'handle': '1:', 'root': True, 'drops': 9, 'bytes': 900, 'packets': 9},
             {'kind': 'red', 'handle': '10:', 'parent': '1:1', 'drops': 9, 'marked': 10, 'early': 4,
              'pdrop': 0, 'other': 0}]
    totals = tc_stats.totals(tc_stats.delta(tc_stats.parse(before), tc_stats.parse(after)))
    assert (totals['drops'], totals['marked'], totals['early']) == (4, 7, 3)
    recreated = tc_stats.delta(tc_stats.parse(after), tc_stats.parse(before))
    assert recreated[0]['reset'] and recreated[0]['drops'] == 5


def test_same_handle_on_several_devices_without_dev():
    # outputs of several `show dev X` joined: no dev field, same handle once per device
    one = {'kind': 'pfifo', 'handle': '1:', 'root': True, 'drops': 1}
    two = {'kind': 'pfifo', 'handle': '1:', 'root': True, 'drops': 10}
    later = [dict(one, drops=3), dict(two, drops=30)]
    assert [q['drops'] for q in tc_stats.delta(tc_stats.parse([one, two]), tc_stats.parse(later))] == [2, 20]


def test_bad_input():
    with pytest.raises(ParseError, match='tc -s -j qdisc show'):
        tc_stats.parse('qdisc tbf 1: root refcnt 3 rate 100Mbit')
    with pytest.raises(ParseError, match='line 1'):
        tc_stats.parse_samples('{"qdiscs": []}\n')
