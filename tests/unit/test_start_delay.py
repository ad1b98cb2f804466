"""The synchronized start's delay (module_utils/start_delay): what each sender used of it, the
next run's delay, and how experiment_record records both."""

import json

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import start_delay
from ansible_collections.zerodrop.testbed.plugins.modules import experiment_record

START_AT = 1000.0

# (delay, ready epochs) -> (used per sender, next delay)
CASES = [
    # 4 senders in namespaces on 2 cores (bench/experiment_overhead.py)
    (3.0, {'a': 998.221, 'b': 998.504}, {'a': 1.221, 'b': 1.504}, 2.506),
    # a fast lab: never below the minimum
    (1.0, {'a': 999.05}, {'a': 0.05}, 0.5),
    # QEMU guests under TCG, late for a 3 s delay: the next one covers them
    (3.0, {'a': 1004.667, 'b': 1005.536}, {'a': 7.667, 'b': 8.536}, 13.054),
    # a sender whose clock is far off or that hung: never more than the maximum
    (3.0, {'a': 1100.0}, {'a': 103.0}, 60.0),
]


@pytest.mark.parametrize('delay,ready,used,expected', CASES)
def test_next_delay_is_the_slowest_senders_need_with_a_margin(delay, ready, used, expected):
    assert start_delay.used(delay, START_AT, ready) == used
    assert start_delay.next_delay(delay, START_AT, ready, 3.0) == pytest.approx(expected)


@pytest.mark.parametrize('delay,start_at,ready', [
    (None, None, {'a': 1.0}),          # one sender: no synchronized start
    (3.0, START_AT, {}),               # no sender
    (3.0, START_AT, {'a': 998.0, 'b': None}),  # a client call that failed before it was ready
])
def test_without_every_senders_readiness_the_next_delay_is_the_default(delay, start_at, ready):
    assert start_delay.used(delay, start_at, ready) is None
    assert start_delay.next_delay(delay, start_at, ready, 7.0) == 7.0


def params(tmp_path, **kw):
    p = dict((k, None) for k in experiment_record.ARGUMENT_SPEC)
    p.update(path=str(tmp_path / 'run'), experiment='e', bottleneck={}, outcomes={}, errors=[],
             started=990.0, play_hosts=['s1', 's2', 'r'], recover_tasks='', start_spread_max=0.5,
             clock_offsets={}, normalise=False, kernel={},
             run={'index': 1, 'mode': 'baseline', 'variant': 'default', 'flows': 20, 'rep': 1,
                  'params': {'duration': 5}},
             hosts={'sender': ['s1', 's2'], 'receiver': ['r']})
    ok = {'status': 'ok', 'reason': None}
    clients = {'s1': dict(ok, ready_epoch=997.2), 's2': dict(ok, ready_epoch=998.0)}
    p['phases'] = {'start': {'r': ok}, 'client': clients}
    p.update(kw)
    return p


def test_record_writes_the_delay_and_returns_the_next_one(tmp_path):
    result = experiment_record.execute(params(tmp_path, start_at=START_AT, start_delay=3.0), False)
    # s2 was ready 2 s before start_at: it used 1.0 s of the 3 s
    assert result['next_start_delay'] == pytest.approx(1.0 * 1.5 + 0.25)
    with open(str(tmp_path / 'run' / 'run.json')) as f:
        run = json.load(f)
    assert run['start_delay_s'] == 3.0
    assert run['start_delay_used_s'] == {'s1': 0.2, 's2': 1.0}


def test_record_without_a_synchronized_start_returns_the_default(tmp_path):
    result = experiment_record.execute(params(tmp_path, start_delay_default=3.0), False)
    assert result['next_start_delay'] == 3.0
    assert result['record']['start_delay_s'] is None
    assert result['record']['start_delay_used_s'] is None


def test_record_refuses_a_negative_delay_and_writes_nothing(tmp_path):
    result = experiment_record.execute(params(tmp_path, start_at=START_AT, start_delay=-1.0), False)
    assert result['failed'] and 'start_delay must be 0 seconds or more' in result['msg']
    assert not (tmp_path / 'run').exists()


def test_a_senders_clock_offset_is_taken_off_its_readiness(tmp_path):
    # s2's clock runs 1.6 s behind the controller's (a TCG guest): its start_at was 998.4 on its
    # clock, and its ready_epoch 997.0 is 998.6 on the controller's: it used 1.6 s of the 3
    offsets = {'s2': {'offset_s': -1.6, 'uncertainty_s': 0.05},
               's1': {'offset_s': 0.01, 'uncertainty_s': 0.05}}
    p = params(tmp_path, start_at=START_AT, start_delay=3.0, clock_offsets=offsets)
    p['phases']['client']['s2']['ready_epoch'] = 997.0
    result = experiment_record.execute(p, False)
    assert result['record']['start_delay_used_s'] == {'s1': 0.2, 's2': 1.6}
