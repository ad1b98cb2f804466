"""The synchronized start's delay (module_utils/start_delay): what each sender used of it, the
next run's delay, and how experiment_record records both."""

import json

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import start_delay
from ansible_collections.zerodrop.testbed.plugins.modules import experiment_record

START_AT = 1000.0

# (delay, ready epochs, maximum) -> (used per sender, next delay)
CASES = [
    # 8 local senders on 2 cores: the slowest was ready 2.1 s after start_at was taken
    (3.0, {'a': 999.1, 'b': 998.5}, 3.0, {'a': 2.1, 'b': 1.5}, 3.0),
    (3.0, {'a': 997.8, 'b': 997.6}, 3.0, {'a': 0.8, 'b': 0.6}, 1.45),
    # a fast lab: never below the minimum
    (1.0, {'a': 999.05}, 3.0, {'a': 0.05}, 0.5),
    # a sender that was late (ready after start_at): the next delay grows, up to the maximum
    (0.5, {'a': 1000.4, 'b': 999.8}, 3.0, {'a': 0.9, 'b': 0.3}, 1.6),
    (0.5, {'a': 1002.0}, 3.0, {'a': 2.5}, 3.0),
    # a maximum below the minimum wins
    (0.2, {'a': 999.9}, 0.2, {'a': 0.1}, 0.2),
]


@pytest.mark.parametrize('delay,ready,maximum,used,expected', CASES)
def test_next_delay_is_the_slowest_senders_need_with_a_margin(delay, ready, maximum, used,
                                                             expected):
    assert start_delay.used(delay, START_AT, ready) == used
    assert start_delay.next_delay(delay, START_AT, ready, maximum) == pytest.approx(expected)


@pytest.mark.parametrize('delay,start_at,ready', [
    (None, None, {'a': 1.0}),          # one sender: no synchronized start
    (3.0, START_AT, {}),               # no sender
    (3.0, START_AT, {'a': 998.0, 'b': None}),  # a client call that failed before it was ready
])
def test_without_every_senders_readiness_the_next_delay_is_the_maximum(delay, start_at, ready):
    assert start_delay.used(delay, start_at, ready) is None
    assert start_delay.next_delay(delay, start_at, ready, 3.0) == 3.0


def params(tmp_path, **kw):
    p = dict((k, None) for k in experiment_record.ARGUMENT_SPEC)
    p.update(path=str(tmp_path / 'run'), experiment='e', bottleneck={}, outcomes={}, errors=[],
             started=990.0, play_hosts=['s1', 's2', 'r'], recover_tasks='', start_spread_max=0.5,
             clock_offsets={}, normalise=False, kernel={},
             run={'index': 1, 'mode': 'baseline', 'variant': 'default', 'flows': 20, 'rep': 1,
                  'params': {'duration': 5}},
             hosts={'sender': ['s1', 's2'], 'receiver': ['r']})
    ok = {'status': 'ok', 'reason': None}
    p['phases'] = {'start': {'r': ok}, 'client': {'s1': dict(ok, ready_epoch=997.2),
                                                   's2': dict(ok, ready_epoch=998.0)}}
    p.update(kw)
    return p


def test_record_writes_the_delay_and_returns_the_next_one(tmp_path):
    result = experiment_record.execute(params(tmp_path, start_at=START_AT, start_delay=3.0,
                                              start_delay_max=3.0), False)
    # s2 was ready 2 s before start_at: it used 1.0 s of the 3 s
    assert result['next_start_delay'] == pytest.approx(1.0 * 1.5 + 0.25)
    with open(str(tmp_path / 'run' / 'run.json')) as f:
        run = json.load(f)
    assert run['start_delay_s'] == 3.0
    assert run['start_delay_used_s'] == {'s1': 0.2, 's2': 1.0}


def test_record_without_a_synchronized_start_returns_the_maximum(tmp_path):
    result = experiment_record.execute(params(tmp_path, start_delay_max=3.0), False)
    assert result['next_start_delay'] == 3.0
    assert result['record']['start_delay_s'] is None
    assert result['record']['start_delay_used_s'] is None


def test_record_refuses_a_negative_delay_and_writes_nothing(tmp_path):
    result = experiment_record.execute(params(tmp_path, start_at=START_AT, start_delay=-1.0), False)
    assert result['failed'] and 'start_delay must be 0 seconds or more' in result['msg']
    assert not (tmp_path / 'run').exists()
