"""module_utils/units.py: tc's units, checked against tables and against the real tc."""

import json
import shutil
import subprocess

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import units

RATES = [('100Mbit', 12500000), ('100mbit', 12500000), ('200Mbit', 25000000), ('1gbit', 125000000),
         ('10Gbit', 1250000000), ('30mbit', 3750000), ('12345kbit', 1543125), ('1kibit', 128),
         ('1mibit', 131072), ('8bit', 1), ('8', 1), (8000, 1000), ('1Bps', 1), ('1KBps', 1000),
         ('1MiBps', 1048576), ('1.5mbit', 187500), ('12500000bps', 12500000), ('40gbit', 5000000000)]
SIZES = [('15000', 15000), (15000, 15000), ('15000b', 15000), ('32k', 32768), ('32kb', 32768),
         ('1m', 1048576), ('1mb', 1048576), ('1g', 1073741824), ('8kbit', 1024), ('1mbit', 131072),
         ('100K', 102400)]
TIMES = [('10us', 10), ('10', 10), (10, 10), ('10ms', 10000), ('1s', 1000000), ('1.5ms', 1500),
         ('2sec', 2000000), ('10usecs', 10), ('2500ns', 2)]


@pytest.mark.parametrize('text,value', RATES)
def test_parse_rate(text, value):
    assert units.parse_rate(text) == value


@pytest.mark.parametrize('text,value', SIZES)
def test_parse_size(text, value):
    assert units.parse_size(text) == value


@pytest.mark.parametrize('text,value', TIMES)
def test_parse_time(text, value):
    assert units.parse_time(text) == value


@pytest.mark.parametrize('text,value', [('10us', 10000), ('2500ns', 2500), ('1ms', 1000000)])
def test_parse_time_ns(text, value):
    assert units.parse_time_ns(text) == value


@pytest.mark.parametrize('text,value', [('1%', 1.0), ('0.5%', 0.5), (2, 2.0), ('30', 30.0)])
def test_parse_percent(text, value):
    assert units.parse_percent(text) == value


@pytest.mark.parametrize('func,text', [
    (units.parse_rate, '100mbits'), (units.parse_rate, 'fast'), (units.parse_rate, True),
    (units.parse_size, '15 kilo'), (units.parse_size, ''), (units.parse_time, '1 fortnight'),
    (units.parse_time, '10m'), (units.parse_percent, 'half')])
def test_malformed_values_raise(func, text):
    with pytest.raises(units.UnitError):
        func(text)


@pytest.mark.parametrize('func,value,text', [
    (units.tc_rate_arg, 12500000, '12500000bps'), (units.tc_size_arg, 15000, '15000b'),
    (units.tc_time_arg, 10, '10us'), (units.human_rate, 12500000, '100Mbit'),
    (units.human_rate, 125000000, '1Gbit'), (units.human_rate, 1543125, '12345Kbit'),
    (units.human_rate, 1, '8bit')])
def test_formatting(func, value, text):
    assert func(value) == text


@pytest.mark.root
def test_units_match_the_real_tc():
    """What tc itself stores for each value (tbf rate, bfifo limit) in a throw-away namespace."""
    if not shutil.which('unshare'):
        pytest.skip('unshare is missing')
    lines = []
    for text, unused in RATES:
        lines += ['qdisc add dev lo root tbf rate %s burst 15000 limit 15000' % text,
                  'qdisc show dev lo', 'qdisc del dev lo root']
    for text, unused in SIZES:
        lines += ['qdisc add dev lo root bfifo limit %s' % text, 'qdisc show dev lo',
                  'qdisc del dev lo root']
    proc = subprocess.run(['unshare', '--net', 'tc', '-j', '-batch', '-'], input='\n'.join(lines),
                          capture_output=True, text=True, check=True)
    shown = [json.loads(line)[0]['options'] for line in proc.stdout.split('\n') if line.strip()]
    assert [o['rate'] for o in shown[:len(RATES)]] == [units.parse_rate(t) for t, unused in RATES]
    assert [o['limit'] for o in shown[len(RATES):]] == [units.parse_size(t) for t, unused in SIZES]
