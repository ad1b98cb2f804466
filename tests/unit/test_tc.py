"""module_utils/tc.py: parsing of recorded tc -j output, normalisation, argv building, planning.

Fixtures are real outputs (tests/unit/fixtures/tc/README.md says how each was made)."""

import os

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import tc

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'tc')

# tc command lines that made each fixture (after the ones of the line before, on device v0)
SEED = [{'parent': 'root', 'handle': '1:1', 'kind': 'tbf',
         'options': {'rate': '100Mbit', 'burst': 15000, 'latency': '10us'}},
        {'parent': '1:1', 'handle': '10:1', 'kind': 'bfifo', 'options': {'limit': 100000}}]


def load(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return tc.parse_show(f.read())


def entries(tree, present=True):
    return [tc.desired_entry(item, 'tree[%d]' % i, need_kind=present) for i, item in enumerate(tree)]


# --- parsing ------------------------------------------------------------------------------------

PARSED = [
    # fixture, [(kind, handle, parent, default)], options of the first qdisc
    ('host-seed-tbf-bfifo.json',  # tc qdisc add ... root handle 1:1 tbf rate 100Mbit burst 15000
                                  # latency 10us; ... parent 1:1 handle 10:1 bfifo limit 100000
     [('tbf', '1:', 'root', False), ('bfifo', '10:', '1:1', False)],
     {'rate': 12500000, 'burst': 15000, 'latency': 10, 'limit': 15125}),
    ('host-seed-tbf-bfifo-plain.json',
     [('tbf', '1:', 'root', False), ('bfifo', '10:', '1:1', False)],
     {'rate': 12500000, 'burst': 15000, 'latency': 10}),
    ('host-tbf-changed-child-reset.json',  # tc qdisc change ... tbf rate 200Mbit ...
     [('tbf', '1:', 'root', False), ('bfifo', '10:', '1:1', False)],
     {'rate': 25000000, 'burst': 15000, 'latency': 10, 'limit': 15250}),
    ('host-veth-default.json', [('noqueue', '0:', 'root', True)], {}),
    ('host-tap-default.json', [('pfifo_fast', '0:', 'root', True)], None),
    ('host-tbf-peakrate.json',  # tbf rate 100mbit burst 32k latency 10ms peakrate 200mbit mtu 1540
     [('tbf', '1:', 'root', False)],
     {'rate': 12500000, 'burst': 32762, 'latency': 10000, 'limit': 157768, 'minburst': 1525}),
    ('host-tbf-limit-only.json',  # tbf rate 1mbit burst 1mb limit 100000 (negative latency)
     [('tbf', '1:', 'root', False)], {'rate': 125000, 'burst': 1048576, 'limit': 100000}),
    ('host-htb-clsact.json',  # htb default 10; clsact
     [('htb', '1:', 'root', False), ('clsact', 'ffff:', 'clsact', False)], None),
    ('host-pfifo-auto-handle-ingress.json',  # root pfifo; ingress
     [('pfifo', '8004:', 'root', False), ('ingress', 'ffff:', 'ingress', False)], {'limit': 1000}),
    ('labfacts-guest-red-plain.json', [('red', '10:', '1:1', False)],
     {'limit': 100000, 'min': 30000, 'max': 90000, 'ecn': True, 'harddrop': False,
      'adaptive': False, 'nodrop': False}),
]


@pytest.mark.parametrize('name,shape,options', PARSED, ids=[p[0] for p in PARSED])
def test_parse_show(name, shape, options):
    qdiscs = load(name)
    assert [(q['kind'], q['handle'], q['parent'], q['default']) for q in qdiscs] == shape
    if options is not None:
        assert qdiscs[0]['options'] == options


def test_parse_show_statistics_and_all_devices():
    qdiscs = load('host-all-devices.json')
    devices = tc.by_device(qdiscs)
    assert [q['kind'] for q in devices['v1']] == ['tbf', 'pfifo']
    assert devices['t0'][0]['default'] is True
    stats = devices['v1'][0]['stats']
    assert set(stats) == set(tc.STATS_KEYS) and stats['drops'] == 0
    assert devices['v1'][0]['xstats'] == {}


def test_parse_recorded_run_statistics():
    """The snapshots recorded mid-run by the experiments area (tc -s -j, no -d -r)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared',
                        'recorded', 'd_neper_F4000', 'tc_mid.json')
    if not os.path.exists(path):
        pytest.skip('the lab copy of the recorded runs is not next to this clone')
    with open(path) as f:
        tbf, fifo = tc.parse_show(f.read())
    assert tbf['stats']['drops'] == 253495 and tbf['stats']['backlog'] == 96896
    assert fifo['stats']['qlen'] == 58 and tbf['options']['latency'] == 10000
    assert tc.compare(entries(SEED)[0], tbf) == {'lat': (10, 10000)}


# --- handles and units --------------------------------------------------------------------------

@pytest.mark.parametrize('value,handle', [('1:', '1:'), ('1:1', '1:'), ('1', '1:'), (10, '10:'),
                                          ('0a:', 'a:'), ('FFFF:', 'ffff:'), ('10:1', '10:')])
def test_parse_handle(value, handle):
    assert tc.parse_handle(value, 'handle') == handle


@pytest.mark.parametrize('value', ['0:', ':1', 'x:', '10000:', 'root', ''])
def test_parse_handle_rejects(value):
    with pytest.raises(tc.TcError, match="handle: '.*' is not a qdisc handle"):
        tc.parse_handle(value, 'handle')


@pytest.mark.parametrize('value,parent', [('root', 'root'), ('ROOT', 'root'), ('ingress', 'ingress'),
                                          ('1:1', '1:1'), ('1:0a', '1:a'), ('01:10', '1:10'),
                                          ('1:', '1:')])
def test_parse_parent(value, parent):
    assert tc.parse_parent(value, 'parent') == parent


# --- normalisation and argv ---------------------------------------------------------------------

ARGV = [
    ({'handle': '1:1', 'kind': 'tbf', 'options': {'rate': '100Mbit', 'burst': 15000, 'latency': '10us'}},
     'qdisc add dev X root handle 1: tbf rate 12500000bps burst 15000b latency 10us'),
    ({'parent': '1:1', 'handle': '10:1', 'kind': 'bfifo', 'options': {'limit': '100k'}},
     'qdisc add dev X parent 1:1 handle 10: bfifo limit 102400b'),
    ({'kind': 'pfifo', 'options': {'limit': 1000}}, 'qdisc add dev X root pfifo limit 1000'),
    ({'parent': '1:1', 'handle': '10:', 'kind': 'red',
      'options': {'limit': 100000, 'min': 30000, 'max': 90000, 'avpkt': 1000, 'burst': 35,
                  'ecn': True, 'bandwidth': '100Mbit'}},
     'qdisc add dev X parent 1:1 handle 10: red limit 100000b min 30000b max 90000b avpkt 1000b '
     'burst 35 probability 0.02 bandwidth 12500000bps ecn'),
    ({'kind': 'red', 'options': {'limit': 100000, 'avpkt': 1000, 'probability': '5%'}},
     'qdisc add dev X root red limit 100000b min 8333b max 25000b avpkt 1000b burst 13 '
     'probability 0.05 bandwidth 1250000bps'),
    ({'kind': 'netem', 'options': {'delay': '10ms', 'jitter': '1ms', 'loss': '1%', 'rate': '50mbit'}},
     'qdisc add dev X root netem limit 1000 delay 10000us 1000us loss random 1.0% rate 6250000bps'),
    ({'kind': 'fq_codel'},
     'qdisc add dev X root fq_codel limit 10240 target 5000us interval 100000us ecn'),
    ({'kind': 'fq_codel', 'options': {'ecn': False, 'target': '10ms'}},
     'qdisc add dev X root fq_codel limit 10240 target 10000us interval 100000us noecn'),
    ({'handle': '1:', 'kind': 'htb', 'options': {'default': 10}},
     'qdisc add dev X root handle 1: htb default 10 r2q 10'),
    ({'kind': 'ingress'}, 'qdisc add dev X ingress'),
    ({'parent': 'clsact', 'kind': 'clsact'}, 'qdisc add dev X clsact'),
]


@pytest.mark.parametrize('spec,line', ARGV, ids=[a[1][20:50] for a in ARGV])
def test_argv(spec, line):
    assert ' '.join(tc.op_argv('add', 'X', tc.desired_entry(spec, 'q'))) == line


BAD = [
    ({'kind': 'tbf', 'options': {'rate': '100mbits', 'burst': 1, 'latency': '1ms'}},
     r"q.options.rate: '100mbits' is not a rate.*e\.g\. 100mbit"),
    ({'kind': 'tbf', 'options': {'burst': 1, 'latency': '1ms'}}, r'q.options.rate is required'),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'latency': '1ms'}}, r'q.options.burst is required'),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'burst': 1, 'latency': '1ms', 'limit': 1}},
     r'exactly one of latency and limit.*not both'),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'burst': 1}}, r'not neither'),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'burst': 1, 'limit': 1, 'peakrate': '2mbit'}},
     r'q.options.mtu is required with peakrate'),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'burst': 1, 'limit': 1, 'peakrate': '1mbit',
                                 'mtu': 1500}}, r'peakrate must be greater than rate'),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'burst': 1, 'latency': '1 fortnight'}},
     r'q.options.latency.*the tbf latency takes a time from 0us.*e\.g\. 10ms'),
    ({'kind': 'bfifo', 'options': {'limt': 5}}, r'unknown option\(s\) limt for kind bfifo'),
    ({'kind': 'pfifo', 'options': {'limit': '10k'}},
     r"q.options.limit: '10k' is not a whole number; the pfifo limit takes a positive whole "
     r"number of packets \(1 to 4294967295\)"),
    ({'kind': 'pfifo', 'options': {'limit': -5}},
     r'q.options.limit: -5 is negative; the pfifo limit takes a positive whole number of packets'),
    ({'kind': 'pfifo', 'options': {'limit': 0}}, r'q.options.limit: 0 is below 1; the pfifo'),
    ({'kind': 'pfifo', 'options': {'limit': 2 ** 32}}, r'is too large; the pfifo limit takes'),
    ({'kind': 'bfifo', 'options': {'limit': '-1k'}},
     r"'-1k' is negative; the bfifo limit takes a size in bytes from 1 to 4294967295"),
    ({'kind': 'tbf', 'options': {'rate': '4bit', 'burst': 1, 'latency': '1ms'}},
     r"q.options.rate: '4bit' is below 1 \(0 bytes/s\); the tbf rate takes a rate of at least "
     r"8bit"),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'burst': '5g', 'latency': '1ms'}},
     r"q.options.burst: '5g' is too large; the tbf burst takes a size in bytes from 1"),
    ({'kind': 'tbf', 'options': {'rate': '1mbit', 'burst': 1, 'latency': '-1ms'}},
     r"q.options.latency: '-1ms' is negative; the tbf latency takes a time from 0us"),
    ({'kind': 'red', 'options': {'limit': 1000, 'avpkt': 1000, 'bandwidth': '100gbit'}},
     r'q.options.bandwidth: .* is too large; the red bandwidth takes a rate .* at most '
     r'4294967295bps'),
    ({'kind': 'netem', 'options': {'delay': -10}},
     r'q.options.delay: -10 is negative; the netem delay takes a time'),
    ({'kind': 'htb', 'options': {'default': '12345'}},
     r"q.options.default: '12345' is too large; the htb default takes a class minor in hex "
     r"from 0 to ffff"),
    ({'kind': 'htb', 'options': {'r2q': 0}}, r'q.options.r2q: 0 is below 1; the htb r2q takes'),
    ({'kind': 'fq_codel', 'options': {'ecn': 'maybe'}},
     r"q.options.ecn: 'maybe' is not a boolean; the fq_codel ecn takes true or false"),
    ({'kind': 'red', 'options': {'limit': 1000}}, r'q.options.avpkt is required for red'),
    ({'kind': 'red', 'options': {'limit': 100000, 'avpkt': 1000, 'min': 50000, 'max': 40000}},
     r'max \(40000\) must not be below min'),
    ({'kind': 'red', 'options': {'limit': 100000, 'avpkt': 1000, 'min': 30000, 'burst': 5}},
     r'burst 5 is too small.*try burst 31'),
    ({'kind': 'red', 'options': {'limit': 100000, 'avpkt': 1000, 'probability': 2}},
     r'q.options.probability: 2 is too large; the red probability takes a probability from 0 '
     r'to 1'),
    ({'kind': 'netem', 'options': {'jitter': '1ms'}}, r'jitter needs a delay'),
    ({'kind': 'netem', 'options': {'loss': '120%'}},
     r"q.options.loss: '120%' is too large; the netem loss takes a percentage from 0 to 100"),
    ({'kind': 'sfq'}, r"q.kind: 'sfq' is not a qdisc kind this module models"),
    ({'kind': 'tbf', 'handle': 'x'}, r"q.handle: 'x' is not a qdisc handle"),
    ({'kind': 'ingress', 'parent': '1:1'}, r'a ingress qdisc sits at parent ingress'),
    ({'kind': 'pfifo', 'parent': 'ingress'}, r'only a ingress qdisc can sit at parent ingress'),
    ({'kind': 'pfifo', 'options': [1]}, r'q.options must be a dictionary'),
    ({}, r'q.kind is required'),
]


@pytest.mark.parametrize('spec,message', BAD)
def test_bad_input(spec, message):
    with pytest.raises(tc.TcError, match=message):
        tc.desired_entry(spec, 'q')


TREE_BAD = [
    ([{'kind': 'tbf', 'handle': '1:', 'options': SEED[0]['options']},
      {'kind': 'pfifo', 'parent': '1:1', 'handle': '1:'}], r'tree\[1\].handle: 1: cannot be its own'),
    ([{'kind': 'tbf', 'handle': '1:', 'options': SEED[0]['options']},
      {'kind': 'pfifo', 'parent': '1:1', 'handle': '10:'},
      {'kind': 'pfifo', 'parent': '10:1', 'handle': '1:'}], r'tree\[2\].handle: 1: is already used by tree\[0\]'),
    ([{'kind': 'pfifo', 'parent': '5:1', 'handle': '10:'}], r"tree\[0\].parent: 5:1 belongs to qdisc 5:"),
    ([{'kind': 'pfifo', 'handle': '1:'}, {'kind': 'bfifo', 'handle': '2:'}],
     r'tree\[1\].parent: root is also the parent of tree\[0\]'),
]


@pytest.mark.parametrize('tree,message', TREE_BAD)
def test_tree_checks(tree, message):
    with pytest.raises(tc.TcError, match=message):
        tc.check_tree(entries(tree), load('host-veth-default.json'))


def test_child_of_a_qdisc_on_the_device_is_accepted():
    tc.check_tree(entries([{'kind': 'pfifo', 'parent': '1:1', 'handle': '20:'}]),
                  load('host-seed-tbf-bfifo.json'))


# --- kernel arithmetic --------------------------------------------------------------------------

@pytest.mark.parametrize('rate,burst,ticks,printed', [
    # from host-*.json and a grid run on this host (tests/integration checks many more)
    (12500000, 15000, 0x493e, 15000),
    (12500000, 32768, 0xa000, 32762),
    (125000, 1048576, 131072000, 1048576),
    (1250000000, 15000, 187, 13750),
    (3750000, 15000, 62499, 14996),
])
def test_tbf_burst_ticks(rate, burst, ticks, printed):
    assert tc.bytes_ticks(rate, burst) == ticks
    assert tc.xmitsize(rate, ticks) == printed
    assert tc.bytes_ticks(rate, tc.burst_for_ticks(rate, ticks)) == ticks


@pytest.mark.parametrize('qmin,qmax,burst,avpkt,bandwidth,ewma,scell', [
    (30000, 90000, 35, 1000, 12500000, 3, 10),   # the seeds' RED at 100Mbit
    (30000, 90000, 35, 1000, 25000000, 3, 9),    # the load balancer's 200Mbit
])
def test_red_derived_values(qmin, qmax, burst, avpkt, bandwidth, ewma, scell):
    assert tc.red_ewma(qmin, burst, avpkt) == ewma
    assert tc.red_scell_log(ewma, avpkt, bandwidth) == scell


@pytest.mark.parametrize('us,back', [(5000, 4999), (100000, 99999), (10000, 9999), (1024, 1024)])
def test_codel_time_rounding(us, back):
    assert tc.codel_us(us) == back


# --- comparison and planning --------------------------------------------------------------------

def test_seed_tree_matches_its_own_recording():
    current = load('host-seed-tbf-bfifo.json')
    ops, warnings = tc.plan('v0', entries(SEED), current)
    assert (ops, warnings) == ([], [])
    plain = load('host-seed-tbf-bfifo-plain.json')
    assert tc.plan('v0', entries(SEED), plain) == ([], [])


def test_seed_red_matches_the_guest_line_without_details():
    red = entries([dict(SEED[1], kind='red', options={
        'limit': 100000, 'min': 30000, 'max': 90000, 'avpkt': 1000, 'burst': 35, 'ecn': True,
        'bandwidth': '100Mbit'})])[0]
    (current,) = load('labfacts-guest-red-plain.json')
    assert tc.compare(red, current) == {}
    red['options']['ecn'] = False
    assert tc.compare(red, current) == {'ecn': (False, True)}


def _plan(fixture, tree, **kwargs):
    ops = tc.plan('v0', entries(tree, kwargs.get('state', 'present') == 'present'),
                  load(fixture), **kwargs)[0]
    return [' '.join(op.argv) for op in ops]


def test_plan_rate_change_resets_fifo_child():
    tree = [dict(SEED[0], options=dict(SEED[0]['options'], rate='200mbit')), SEED[1]]
    assert _plan('host-seed-tbf-bfifo.json', tree) == [
        'qdisc change dev v0 root handle 1: tbf rate 25000000bps burst 15000b latency 10us',
        'qdisc change dev v0 parent 1:1 handle 10: bfifo limit 100000b']


def test_plan_repairs_a_fifo_child_reset_by_hand():
    tree = [dict(SEED[0], options=dict(SEED[0]['options'], rate='200mbit')), SEED[1]]
    assert _plan('host-tbf-changed-child-reset.json', tree) == [
        'qdisc change dev v0 parent 1:1 handle 10: bfifo limit 100000b']


def test_plan_kind_change_deletes_then_adds():
    tree = [{'handle': '1:', 'kind': 'htb', 'options': {'default': 10}}]
    assert _plan('host-seed-tbf-bfifo.json', tree) == [
        'qdisc del dev v0 root', 'qdisc add dev v0 root handle 1: htb default 10 r2q 10']


def test_plan_child_of_recreated_parent_is_added():
    tree = [{'handle': '2:', 'kind': 'tbf', 'options': SEED[0]['options']},
            {'parent': '2:1', 'handle': '10:', 'kind': 'bfifo', 'options': {'limit': 100000}}]
    assert _plan('host-seed-tbf-bfifo.json', tree) == [
        'qdisc del dev v0 root',
        'qdisc add dev v0 root handle 2: tbf rate 12500000bps burst 15000b latency 10us',
        'qdisc add dev v0 parent 2:1 handle 10: bfifo limit 100000b']


def test_plan_htb_option_change_recreates():
    assert _plan('host-htb-clsact.json', [{'handle': '1:', 'kind': 'htb', 'options': {'default': 20}}]) \
        == ['qdisc del dev v0 root', 'qdisc add dev v0 root handle 1: htb default 20 r2q 10']
    assert _plan('host-htb-clsact.json', [{'handle': '1:', 'kind': 'htb', 'options': {'default': '10'}}]) == []


def test_plan_ingress_and_clsact_share_a_slot():
    assert _plan('host-htb-clsact.json', [{'kind': 'clsact'}]) == []
    assert _plan('host-htb-clsact.json', [{'kind': 'ingress'}]) == [
        'qdisc del dev v0 clsact', 'qdisc add dev v0 ingress']


def test_plan_pfifo_limit_follows_txqueuelen():
    ops = tc.plan('v0', entries([{'kind': 'pfifo'}]), load('host-pfifo-auto-handle-ingress.json'),
                  device_info={'txqlen': 1000})[0]
    assert ops == []
    ops = tc.plan('v0', entries([{'kind': 'pfifo'}]), load('host-pfifo-auto-handle-ingress.json'),
                  device_info={'txqlen': 500})[0]
    assert [' '.join(op.argv) for op in ops] == ['qdisc change dev v0 root handle 8004: pfifo limit 500']


def test_plan_purge_restores_default_child():
    tree = [SEED[0]]
    assert _plan('host-seed-tbf-bfifo.json', tree) == []
    assert _plan('host-seed-tbf-bfifo.json', tree, purge=True) == [
        'qdisc del dev v0 parent 1:1',
        'qdisc change dev v0 root handle 1: tbf rate 12500000bps burst 15000b latency 10us']


def test_plan_absent():
    assert _plan('host-seed-tbf-bfifo.json', [{}], state='absent') == ['qdisc del dev v0 root']
    assert _plan('host-veth-default.json', [{}], state='absent') == []
    assert _plan('host-seed-tbf-bfifo.json', [{'kind': 'htb'}], state='absent') == []
    # a tbf's child: the tbf is changed again (from its read-back values) to get its bfifo back
    assert _plan('host-seed-tbf-bfifo.json', [{'parent': '1:1'}], state='absent') == [
        'qdisc del dev v0 parent 1:1',
        'qdisc change dev v0 root handle 1: tbf rate 12500000bps burst 15000b limit 15125b']


def test_kind_error_messages():
    with open(os.path.join(FIXTURES, 'host-unknown-kind.stderr')) as f:
        stderr = f.read().splitlines()[-1] + '\nCommand failed -:2\n'
    ops = tc.plan('v0', entries([SEED[0], dict(SEED[1], kind='red', options={
        'limit': 100000, 'avpkt': 1000})]), load('host-veth-default.json'))[0]
    msg = tc.explain_failure(ops, stderr)
    assert "no 'red' qdisc" in msg and 'CONFIG_NET_SCH_RED' in msg and 'modprobe sch_red' in msg
    assert 'modprobe sch_netem' in tc.kind_error_message('netem')
    assert 'CONFIG_NET_SCH_FQ_CODEL' in tc.kind_error_message('fq_codel')


def test_handle_taken_elsewhere_on_the_device():
    v1 = [q for q in load('host-all-devices.json') if q['device'] == 'v1']  # tbf 1:, pfifo 10:
    with pytest.raises(tc.TcError, match=r'tree\[0\].handle: 1: is already used on the device '
                                         r'by the tbf at parent root'):
        tc.check_tree(entries([{'parent': '10:1', 'handle': '1:', 'kind': 'pfifo'}]), v1)
    # replacing the root may reuse the handles below it
    tc.check_tree(entries([{'handle': '10:', 'kind': 'pfifo'}]), v1)


# --- kinds this host lacks, recorded in a guest ------------------------------------------------

def _grid():
    with open(os.path.join(FIXTURES, 'guest-kinds-grid.jsonl')) as f:
        return [__import__('json').loads(line) for line in f if line.strip()]


GRID = _grid()
NUDGE = {'red': ('max', 95000), 'netem': ('delay', '2ms'), 'fq_codel': ('target', '3ms')}


@pytest.mark.parametrize('case', GRID, ids=['%s-%d' % (c['kind'], i) for i, c in enumerate(GRID)])
def test_guest_kinds_read_back_as_predicted(case):
    """Re-applying the same options converges; a different value is a change."""
    (current,) = tc.parse_show(case['show'])
    entry = tc.desired_entry({'handle': '1:', 'kind': case['kind'], 'options': case['options']}, 'q')
    assert tc.compare(entry, current) == {}
    key, value = NUDGE[case['kind']]
    other = dict(case['options'], **{key: value})
    if other != case['options']:
        changed = tc.desired_entry({'handle': '1:', 'kind': case['kind'], 'options': other}, 'q')
        assert tc.compare(changed, current) != {}


def test_guest_seed_tree_with_red_converges():
    tree = [SEED[0], dict(SEED[1], kind='red', options={
        'limit': 100000, 'min': 30000, 'max': 90000, 'avpkt': 1000, 'burst': 35, 'ecn': True,
        'bandwidth': '100Mbit'})]
    for name in ('guest-seed-tbf-red.json', 'guest-seed-tbf-red-plain.json'):
        assert tc.plan('tcq0', entries(tree), load(name)) == ([], []), name
    tbf, red = load('guest-seed-tbf-red.json')
    assert red['options']['ewma'] == 3 and red['options']['Scell_log'] == 10
    assert red['xstats'] == {'marked': 0, 'early': 0, 'pdrop': 0, 'other': 0}
    # the load balancer's 200Mbit bandwidth gives another Scell_log: seen as a change
    tree[1]['options']['bandwidth'] = '200Mbit'
    ops = tc.plan('tcq0', entries(tree), load('guest-seed-tbf-red.json'))[0]
    assert [op.action for op in ops] == ['change'] and 'Scell_log 10 -> 9' in ops[0].why


# --- check mode's prediction --------------------------------------------------------------------

GUEST_TCQ0 = {'mtu': 1500, 'txqlen': 1000, 'link_type': 'ether'}  # the guest's tcq0 (veth)


@pytest.mark.parametrize('case', GRID, ids=['%s-%d' % (c['kind'], i) for i, c in enumerate(GRID)])
def test_guest_kinds_predicted_as_read_back(case):
    """A new red/netem/fq_codel qdisc is predicted as the guest kernel reported it."""
    (current,) = tc.parse_show(case['show'])
    entry = tc.desired_entry({'handle': '1:', 'kind': case['kind'], 'options': case['options']}, 'q')
    public, raw = tc.KINDS[case['kind']].predict(entry['options'], GUEST_TCQ0)
    assert public == current['options']
    assert tc.KINDS[case['kind']].public(raw) == current['options']


@pytest.mark.parametrize('name,spec', [
    ('host-seed-tbf-bfifo.json', SEED[0]),
    ('host-tbf-peakrate.json', {'kind': 'tbf', 'options': {
        'rate': '100mbit', 'burst': '32k', 'latency': '10ms', 'peakrate': '200mbit', 'mtu': 1540}}),
    ('host-tbf-limit-only.json', {'kind': 'tbf', 'options': {
        'rate': '1mbit', 'burst': '1mb', 'limit': 100000}}),
    ('host-htb-clsact.json', {'kind': 'htb', 'options': {'default': 10}}),
])
def test_host_kinds_predicted_as_read_back(name, spec):
    current = load(name)[0]
    entry = tc.desired_entry(spec, 'q')
    public = tc.KINDS[entry['kind']].predict(entry['options'], {'txqlen': 1000})[0]
    assert public == current['options']


def _simulated(fixture, tree, device=None, **kwargs):
    ops = tc.plan('v0', entries(tree, kwargs.get('state', 'present') == 'present'),
                  load(fixture), device_info=device, **kwargs)[0]
    return [(q['kind'], q['handle'], q['parent'], q['options'])
            for q in tc.simulate(load(fixture), ops, device)]


def test_simulate_tbf_change_sets_its_fifo_child_limit():
    """host-tbf-changed-child-reset.json is what the kernel made of this change."""
    tree = [dict(SEED[0], options=dict(SEED[0]['options'], rate='200mbit'))]
    expected = [(q['kind'], q['handle'], q['parent'], q['options'])
                for q in load('host-tbf-changed-child-reset.json')]
    assert _simulated('host-seed-tbf-bfifo.json', tree) == expected
    # listed in the task, the child gets its own limit back right after
    assert _simulated('host-seed-tbf-bfifo.json', tree + [SEED[1]])[1][3] == {'limit': 100000}


def test_simulate_red_change_drops_its_children():
    tree = [SEED[0], {'parent': '1:1', 'handle': '10:', 'kind': 'red', 'options': {
        'limit': 100000, 'min': 30000, 'max': 90000, 'avpkt': 1000, 'burst': 35, 'ecn': True,
        'bandwidth': '200Mbit'}}]
    before = load('guest-seed-tbf-red.json') + [
        dict(load('host-seed-tbf-bfifo.json')[1], handle='20:', parent='10:1')]
    ops = tc.plan('tcq0', entries(tree), before)[0]
    after = tc.simulate(before, ops, GUEST_TCQ0)
    assert [(q['kind'], q['handle']) for q in after] == [('tbf', '1:'), ('red', '10:')]
    assert after[1]['options']['Scell_log'] == 9


def test_simulate_absent_gives_the_default_root_back():
    veth = {'link_type': 'ether', 'linkinfo': {'info_kind': 'veth'}, 'mtu': 1500, 'txqlen': 1000}
    assert _simulated('host-seed-tbf-bfifo.json', [{}], veth, state='absent') == [
        ('noqueue', '0:', 'root', {})]
    tap = {'link_type': 'ether', 'linkinfo': {'info_kind': 'tun'}, 'num_tx_queues': 1}
    ((kind, handle, parent, options),) = _simulated('host-seed-tbf-bfifo.json', [{}], tap,
                                                    state='absent')
    assert (kind, handle, options) == ('pfifo_fast', '0:', load('host-tap-default.json')[0]['options'])


def test_tree_order_puts_parents_first():
    qdiscs = load('host-pfifo-auto-handle-ingress.json')[::-1] + load('host-seed-tbf-bfifo.json')[::-1]
    ordered = [(q['kind'], q['parent']) for q in tc.tree_order(qdiscs)]
    assert ordered == [('pfifo', 'root'), ('tbf', 'root'), ('bfifo', '1:1'), ('ingress', 'ingress')]


# --- ingress redirect ---------------------------------------------------------------------------

def filter_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


REDIRECT_TO_IFB0 = {'pref': 49152, 'protocol': 'all', 'kind': 'u32', 'match_all': True,
                    'direction': 'egress', 'to': 'ifb0'}


def test_parse_filters_keeps_one_entry_per_redirect_action():
    assert tc.parse_filters(filter_fixture('host-filter-none.json')) == []
    assert tc.parse_filters(filter_fixture('host-filter-redirect.json')) == [REDIRECT_TO_IFB0]
    mixed = tc.parse_filters(filter_fixture('host-filter-mixed.json'))
    assert mixed == [{'pref': 10, 'protocol': 'ip', 'kind': 'u32', 'match_all': False,
                      'direction': 'egress', 'to': 'ifb1'}, REDIRECT_TO_IFB0]
    assert tc.filter_prefs(filter_fixture('host-filter-mixed.json')) == [10, 12, 49152]


def test_plan_redirect_from_nothing_adds_qdisc_and_filter():
    ops, after = tc.plan_redirect('v0', 'ifb0', load('host-veth-default.json'), [])
    assert [op[0] for op in ops] == [
        ['qdisc', 'add', 'dev', 'v0', 'ingress'],
        ['filter', 'add', 'dev', 'v0', 'ingress', 'protocol', 'all', 'pref', '49152', 'u32',
         'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', 'ifb0']]
    assert after == {'ingress': 'ingress', 'redirects': [REDIRECT_TO_IFB0]}


def test_plan_redirect_already_there_is_nothing_to_do():
    qdiscs = load('host-pfifo-auto-handle-ingress.json')
    filters = tc.parse_filters(filter_fixture('host-filter-redirect.json'))
    ops, after = tc.plan_redirect('v0', 'ifb0', qdiscs, filters)
    assert ops == [] and after == {'ingress': 'ingress', 'redirects': filters}


def test_plan_redirect_on_clsact_keeps_clsact():
    ops, after = tc.plan_redirect('v0', 'ifb0', load('host-htb-clsact.json'), [])
    assert [op[0][:2] for op in ops] == [['filter', 'add']]
    assert after['ingress'] == 'clsact'


def test_plan_redirect_deletes_a_partial_redirect_elsewhere():
    qdiscs = load('host-pfifo-auto-handle-ingress.json')
    data = filter_fixture('host-filter-mixed.json')
    ops, after = tc.plan_redirect('v0', 'ifb0', qdiscs, tc.parse_filters(data),
                                  prefs=tc.filter_prefs(data))
    assert [op[0] for op in ops] == [['filter', 'del', 'dev', 'v0', 'ingress', 'pref', '10']]
    assert 'to ifb1' in ops[0][1]
    assert after['redirects'] == [REDIRECT_TO_IFB0]


def test_plan_redirect_absent_keeps_the_qdisc_while_other_filters_remain():
    qdiscs = load('host-pfifo-auto-handle-ingress.json')
    data = filter_fixture('host-filter-mixed.json')
    ops, after = tc.plan_redirect('v0', 'ifb0', qdiscs, tc.parse_filters(data), state='absent',
                                  prefs=tc.filter_prefs(data))
    assert [op[0] for op in ops] == [['filter', 'del', 'dev', 'v0', 'ingress', 'pref', '49152']]
    assert after['ingress'] == 'ingress' and [f['to'] for f in after['redirects']] == ['ifb1']


def test_plan_redirect_absent_deletes_the_emptied_ingress_qdisc():
    qdiscs = load('host-pfifo-auto-handle-ingress.json')
    data = filter_fixture('host-filter-redirect.json')
    ops, after = tc.plan_redirect('v0', 'ifb0', qdiscs, tc.parse_filters(data), state='absent',
                                  prefs=tc.filter_prefs(data))
    assert [op[0] for op in ops] == [
        ['filter', 'del', 'dev', 'v0', 'ingress', 'pref', '49152'],
        ['qdisc', 'del', 'dev', 'v0', 'ingress']]
    assert after == {'ingress': None, 'redirects': []}
    assert tc.plan_redirect('v0', 'ifb0', load('host-veth-default.json'), [],
                            state='absent') == ([], {'ingress': None, 'redirects': []})
