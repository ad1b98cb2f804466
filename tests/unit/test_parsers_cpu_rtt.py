"""CPU (/proc/stat, mpstat) and RTT parsers on outputs recorded on this machine."""

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import ParseError, cpu, rtt

import recorded


def test_proc_stat_shares():
    shares = cpu.usage(recorded.fixture('cpu', 'cpu_before.txt'), recorded.fixture('cpu', 'cpu_after.txt'))
    # cpu lines: user 58087->58793, system 22212->22580, idle 210811->210813, iowait 1200->1209,
    # softirq 462->467, steal 4028->4130: 706 + 368 + 2 + 9 + 5 + 102 = 1192 ticks
    assert shares['user'] == pytest.approx(100.0 * 706 / 1192)
    assert shares['system'] == pytest.approx(100.0 * 368 / 1192)
    assert shares['softirq'] == pytest.approx(100.0 * 5 / 1192)
    assert shares['idle'] == pytest.approx(100.0 * 11 / 1192)
    assert shares['busy'] == pytest.approx(100.0 - shares['idle'])
    one = cpu.usage(recorded.fixture('cpu', 'cpu_before.txt'), recorded.fixture('cpu', 'cpu_after.txt'), 'cpu1')
    assert one['user'] == pytest.approx(100.0 * (33766 - 33350) / (416 + 121 + 2 + 5 + 4 + 48))


def test_swapped_snapshots_are_refused():
    with pytest.raises(ParseError, match='system, user went backwards.*user -706'):
        cpu.usage(recorded.fixture('cpu', 'cpu_after.txt'), recorded.fixture('cpu', 'cpu_before.txt'))


def test_mpstat_mean_of_rows():
    shares = cpu.mpstat_usage(recorded.text('d_neper_F4000', 'mpstat.txt'))
    # awk '$2=="all"{u+=$3; s+=$5; so+=$8; i+=$12+$6; n++}' over the 20 rows
    assert shares['user'] == pytest.approx(6.04)
    assert shares['system'] == pytest.approx(13.5965)
    assert shares['softirq'] == pytest.approx(10.545)
    assert shares['idle'] == pytest.approx(69.7955)
    assert len(cpu.parse_mpstat(recorded.text('d_neper_F4000', 'mpstat.txt'))) == 20


def test_mpstat_uses_its_average_row():
    text = ('Linux 6.18 (vm) \t11/22/26 \t_x86_64_\t(2 CPU)\n\n'
            '03:35:37     CPU    %usr   %nice    %sys %iowait    %irq   %soft  %steal  %guest  %gnice   %idle\n'
            '03:35:38     all   10.00    0.00   10.00    0.00    0.00    0.00    0.00    0.00    0.00   80.00\n'
            'Average:     all   20.00    0.00   30.00    0.00    0.00    5.00    0.00    0.00    0.00   45.00\n')
    shares = cpu.mpstat_usage(text)
    assert (shares['user'], shares['system'], shares['softirq'], shares['idle']) == (20.0, 30.0, 5.0, 45.0)


def test_bad_cpu_input():
    with pytest.raises(ParseError, match='no cpu lines'):
        cpu.parse_proc_stat('intr 1 2 3\n')
    with pytest.raises(ParseError, match='header'):
        cpu.parse_mpstat('all 1 2 3\n')


def test_rtt_percentiles_of_recorded_pings():
    samples = rtt.parse(recorded.fixture('rtt', 'rtt.txt'))
    summary = rtt.summary(samples)
    # ping's own summary line: 40 received, max 0.069 ms; sorted values 20/21: 0.040, 36/37: 0.048/0.052
    assert summary['count'] == 40 and summary['max'] == 0.069
    assert summary['p50'] == pytest.approx(0.040)
    assert summary['p90'] == pytest.approx(0.048 + 0.1 * (0.052 - 0.048))
    assert rtt.summary([]) is None


def test_rtt_bad_lines():
    assert rtt.parse('# rtt ms\n1.5\n\n2\n') == [1.5, 2.0]
    with pytest.raises(ParseError, match='line 2'):
        rtt.parse('1.0\nabc\n')
    with pytest.raises(ParseError, match='negative'):
        rtt.parse('-1\n')
