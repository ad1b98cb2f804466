"""nstat parser on the recorded sender/receiver counters (figures read with grep)."""

import json

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError, nstat

import recorded


def test_recorded_counters():
    counters = nstat.parse(recorded.text('d_neper_F4000', 'nstat_snd.txt'))
    assert len(counters) == 393  # grep -vc '^#' nstat_snd.txt
    assert counters['TcpExtTCPAbortOnTimeout'] == 3735
    assert counters['TcpRetransSegs'] == 1
    assert counters['TcpActiveOpens'] == 4001
    assert counters['TcpExtListenOverflows'] == 0
    receiver = nstat.parse(recorded.text('r_iperf2_P1000', 'nstat_rcv.txt'))
    assert receiver['TcpPassiveOpens'] == 1000 and receiver['TcpExtTCPTimeouts'] == 98


def test_json_form_and_helpers():
    text = json.dumps({'kernel': {'TcpRetransSegs': 7, 'TcpExtTCPTimeouts': 0}})
    assert nstat.parse(text) == {'TcpRetransSegs': 7, 'TcpExtTCPTimeouts': 0}
    assert nstat.nonzero(nstat.parse(text)) == {'TcpRetransSegs': 7}
    assert nstat.delta({'A': 5, 'B': 1}, {'A': 8, 'C': 2}) == {'A': 3, 'C': 2}


def test_garbage_is_refused():
    with pytest.raises(ParseError, match='line 2'):
        nstat.parse('#kernel\nTcpRetransSegs lots 0.0\n')
