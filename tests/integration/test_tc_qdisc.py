"""zerodrop.testbed.tc_qdisc and tc_qdisc_info against the real tc in network namespaces (veth)."""

import itertools
import os
import json
import subprocess
import sys
import uuid

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import tc

pytestmark = pytest.mark.root

SEED_TREE = [
    {'parent': 'root', 'handle': '1:1', 'kind': 'tbf',
     'options': {'rate': '100Mbit', 'burst': 15000, 'latency': '10us'}},
    {'parent': '1:1', 'handle': '10:1', 'kind': 'bfifo', 'options': {'limit': 100000}},
]


def sh(ns, *argv, check=True):
    return subprocess.run(['ip', 'netns', 'exec', ns] + list(argv), capture_output=True,
                          text=True, check=check)


def shape(ns, dev):
    """The qdiscs without statistics, as tc -d -r -j shows them: what 'unchanged' means."""
    out = sh(ns, 'tc', '-d', '-r', '-j', 'qdisc', 'show', 'dev', dev).stdout
    return [{k: q.get(k) for k in ('kind', 'handle', 'parent', 'root', 'options')}
            for q in json.loads(out or '[]')]


def kernel_has(kind, args):
    """Whether this kernel knows a qdisc kind (tried in a throw-away namespace)."""
    return subprocess.run(['unshare', '--net', 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', kind]
                          + args, capture_output=True, check=False).returncode == 0


def play(tasks):
    return '- hosts: localhost\n  gather_facts: false\n  tasks:\n' + tasks


def qdisc_task(name, args, extra=''):
    return ('    - name: %s\n      zerodrop.testbed.tc_qdisc: %s\n%s'
            % (name, json.dumps(args), extra))


@pytest.fixture
def dev(netns, veth):
    ns = netns('ztc')
    a, b = veth(ns)
    return ns, a, b


def test_seed_tree_created_idempotent_and_handmade_state_converged(dev, playbook):
    ns, a, b = dev
    # b is set up by hand with the seeds' own command lines (bfifo instead of red on this host)
    sh(ns, 'tc', 'qdisc', 'add', 'dev', b, 'root', 'handle', '1:1', 'tbf', 'rate', '100Mbit',
       'burst', '15000', 'latency', '10us')
    sh(ns, 'tc', 'qdisc', 'add', 'dev', b, 'parent', '1:1', 'handle', '10:1', 'bfifo',
       'limit', '100000')
    text = play(qdisc_task('on a', {'netns': ns, 'device': a, 'tree': SEED_TREE})
                + qdisc_task('on b', {'netns': ns, 'device': b, 'tree': SEED_TREE}))
    first = playbook(text)
    assert first.rc == 0, first
    assert first.result('on a')['changed'] is True
    assert first.result('on b')['changed'] is False, first.result('on b')
    assert shape(ns, a) == shape(ns, b)
    tbf, fifo = first.result('on a')['qdiscs']
    assert (tbf['kind'], tbf['handle'], tbf['parent']) == ('tbf', '1:', 'root')
    assert tbf['options']['rate'] == 12500000 and tbf['options']['burst'] == 15000
    assert tbf['options']['latency'] == 10
    assert (fifo['kind'], fifo['handle'], fifo['parent']) == ('bfifo', '10:', '1:1')
    assert fifo['options']['limit'] == 100000 and 'drops' in fifo['stats']

    again = playbook(text)
    assert again.rc == 0, again
    assert not again.changed, again
    assert again.result('on a')['commands'] == []


def test_check_mode_changes_nothing_and_diff_shows_the_tree(dev, playbook):
    ns, a = dev[:2]
    before = shape(ns, a)
    text = play(qdisc_task('tree', {'netns': ns, 'device': a, 'tree': SEED_TREE}))
    checked = playbook(text, check=True, diff=True)
    assert checked.rc == 0, checked
    res = checked.result('tree')
    assert res['changed'] is True and len(res['commands']) == 2
    assert shape(ns, a) == before, 'check mode changed tc state'
    assert [q['kind'] for q in res['diff']['after']['qdiscs']] == ['tbf', 'bfifo']
    assert res['diff']['before']['qdiscs'][0]['kind'] == 'noqueue'

    real = playbook(text, diff=True)
    assert real.rc == 0, real
    diff = real.result('tree')['diff']
    assert [q['kind'] for q in diff['before']['qdiscs']] == ['noqueue']
    assert [q['kind'] for q in diff['after']['qdiscs']] == ['tbf', 'bfifo']
    assert diff['after']['qdiscs'][0]['options']['rate'] == 12500000


def test_rate_change_detected_and_fifo_child_kept(dev, playbook):
    ns, a, b = dev
    # What the kernel does: changing a tbf sets its fifo child's limit to the tbf's limit.
    for d in (a, b):
        sh(ns, 'tc', 'qdisc', 'add', 'dev', d, 'root', 'handle', '1:', 'tbf', 'rate', '100mbit',
           'burst', '15000', 'latency', '10us')
        sh(ns, 'tc', 'qdisc', 'add', 'dev', d, 'parent', '1:1', 'handle', '10:', 'bfifo',
           'limit', '100000')
    sh(ns, 'tc', 'qdisc', 'change', 'dev', b, 'root', 'handle', '1:', 'tbf', 'rate', '200mbit',
       'burst', '15000', 'latency', '10us')
    assert shape(ns, b)[1]['options']['limit'] != 100000

    tree = json.loads(json.dumps(SEED_TREE))
    tree[0]['options']['rate'] = '200mbit'
    text = play(qdisc_task('tree', {'netns': ns, 'device': a, 'tree': tree}))
    run = playbook(text)
    assert run.rc == 0, run
    res = run.result('tree')
    assert res['changed'] is True
    assert [c[5:7] for c in res['commands']] == [['qdisc', 'change'], ['qdisc', 'change']], res
    tbf, fifo = shape(ns, a)
    assert tbf['options']['rate'] == 25000000 and fifo['options']['limit'] == 100000
    assert not playbook(text).changed


def test_kind_change_on_same_handle_then_absent(dev, playbook):
    ns, a = dev[:2]
    sh(ns, 'tc', 'qdisc', 'add', 'dev', a, 'root', 'handle', '1:', 'tbf', 'rate', '100mbit',
       'burst', '15000', 'latency', '10us')
    sh(ns, 'tc', 'qdisc', 'add', 'dev', a, 'parent', '1:1', 'handle', '10:', 'bfifo',
       'limit', '100000')
    # the plain tool refuses it
    refused = sh(ns, 'tc', 'qdisc', 'replace', 'dev', a, 'root', 'handle', '1:', 'htb',
                 check=False)
    assert refused.returncode != 0
    text = play(qdisc_task('htb', {'netns': ns, 'device': a, 'handle': '1:', 'kind': 'htb',
                                   'options': {'default': 10}}))
    run = playbook(text)
    assert run.rc == 0, run
    assert run.result('htb')['changed'] is True
    (root,) = shape(ns, a)
    assert (root['kind'], root['handle'], root['options']['default']) == ('htb', '1:', '0x10')
    assert not playbook(text).changed

    gone = play(qdisc_task('absent', {'netns': ns, 'device': a, 'state': 'absent'}))
    run = playbook(gone)
    assert run.rc == 0 and run.result('absent')['changed'] is True, run
    assert [(q['kind'], q['handle']) for q in shape(ns, a)] == [('noqueue', '0:')]
    again = playbook(gone)
    assert again.rc == 0 and not again.changed, again


def test_pfifo_limit_defaults_to_txqueuelen(dev, playbook):
    ns, a = dev[:2]
    text = play(qdisc_task('pfifo', {'netns': ns, 'device': a, 'handle': '1:', 'kind': 'pfifo'}))
    assert playbook(text).result('pfifo')['changed'] is True
    assert shape(ns, a)[0]['options']['limit'] == 1000
    sh(ns, 'ip', 'link', 'set', a, 'txqueuelen', '500')
    run = playbook(text)
    assert run.result('pfifo')['changed'] is True, run
    assert shape(ns, a)[0]['options']['limit'] == 500


def test_purge_restores_default_child_and_info_reads_stats(netns, playbook):
    one, two = netns('ztc'), netns('ztc')
    a, b = 'pa%s' % uuid.uuid4().hex[:6], 'pb%s' % uuid.uuid4().hex[:6]
    sh(one, 'ip', 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', two)
    sh(one, 'ip', 'addr', 'add', '10.213.0.1/24', 'dev', a)
    sh(two, 'ip', 'addr', 'add', '10.213.0.2/24', 'dev', b)
    sh(one, 'ip', 'link', 'set', a, 'up')
    sh(two, 'ip', 'link', 'set', b, 'up')

    def ping():
        return sh(one, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '10.213.0.2',
                  check=False).returncode == 0

    sh(one, 'tc', 'qdisc', 'add', 'dev', a, 'root', 'handle', '1:', 'tbf', 'rate', '100mbit',
       'burst', '15000', 'latency', '10ms')
    sh(one, 'tc', 'qdisc', 'add', 'dev', a, 'parent', '1:1', 'handle', '10:', 'bfifo',
       'limit', '100000')
    assert ping()
    # deleting the child by hand leaves the tbf with a noop qdisc: everything is dropped
    sh(one, 'tc', 'qdisc', 'del', 'dev', a, 'parent', '1:1')
    assert not ping()
    sh(one, 'tc', 'qdisc', 'add', 'dev', a, 'parent', '1:1', 'handle', '10:', 'bfifo',
       'limit', '100000')

    tbf_only = {'netns': one, 'device': a, 'handle': '1:', 'kind': 'tbf', 'purge': True,
                'options': {'rate': '100mbit', 'burst': 15000, 'latency': '10ms'}}
    text = play(qdisc_task('purge', tbf_only)
                + '    - name: info\n      zerodrop.testbed.tc_qdisc_info: %s\n'
                % json.dumps({'netns': one, 'device': a})
                + '    - name: all\n      zerodrop.testbed.tc_qdisc_info: %s\n'
                % json.dumps({'netns': one}))
    run = playbook(text)
    assert run.rc == 0, run
    assert run.result('purge')['changed'] is True
    assert [q['kind'] for q in shape(one, a)] == ['tbf']
    assert ping(), 'the tbf has no default bfifo after purge'

    after = playbook(text)
    assert not after.changed, after
    (root,) = after.result('info')['qdiscs']
    assert root['kind'] == 'tbf' and root['stats']['packets'] >= 2
    assert set(tc.STATS_KEYS) <= set(root['stats'])
    devices = after.result('all')['devices']
    assert devices[a][0]['options']['rate'] == 12500000 and devices['lo'][0]['default'] is True


def test_bad_input_fails_clearly_and_changes_nothing(dev, playbook):
    ns, a = dev[:2]
    sh(ns, 'tc', 'qdisc', 'add', 'dev', a, 'root', 'handle', '1:', 'tbf', 'rate', '100mbit',
       'burst', '15000', 'latency', '10us')
    sh(ns, 'tc', 'qdisc', 'add', 'dev', a, 'parent', '1:1', 'handle', '10:', 'bfifo',
       'limit', '100000')
    before = shape(ns, a)
    tbf = {'handle': '1:', 'kind': 'tbf', 'options': {'rate': '200mbit', 'burst': 15000,
                                                      'latency': '10us'}}
    red = {'parent': '1:1', 'handle': '10:', 'kind': 'red',
           'options': {'limit': 100000, 'min': 30000, 'max': 90000, 'avpkt': 1000, 'burst': 35,
                       'ecn': True, 'bandwidth': '100mbit'}}
    base = {'netns': ns, 'device': a}
    cases = {
        'malformed rate': (dict(base, kind='tbf', options={'rate': '100mbits', 'burst': 1,
                                                           'latency': '1ms'}),
                           ['options.rate', 'e.g. 100mbit']),
        'malformed size': (dict(base, kind='bfifo', options={'limit': 'lots'}),
                           ['options.limit', 'bfifo limit takes a size in bytes from 1']),
        'tbf without rate': (dict(base, kind='tbf', options={'burst': 15000, 'latency': '1ms'}),
                             ['options.rate is required']),
        'latency and limit': (dict(base, kind='tbf', options={'rate': '1mbit', 'burst': 15000,
                                                              'latency': '1ms', 'limit': 5000}),
                              ['exactly one of latency and limit']),
        'unknown option': (dict(base, kind='bfifo', options={'limt': 5}),
                           ['unknown option(s) limt']),
        'handle clash': (dict(base, tree=[tbf, dict(red, kind='bfifo', options={'limit': 5}),
                                          dict(red, parent='10:1', handle='1:', kind='pfifo',
                                               options={})]),
                         ['tree[2].handle', 'already used by tree[0]']),
        'parent not in tree': (dict(base, tree=[tbf, dict(red, parent='5:1', kind='bfifo',
                                                          options={'limit': 5})]),
                               ['tree[1].parent', '5:', 'neither earlier in the tree']),
        'unknown device': (dict(base, device='zz-nope', kind='pfifo'),
                           ["device 'zz-nope' not found in network namespace '%s'" % ns]),
        'unknown netns': (dict(base, netns='zz-no-such-ns', kind='pfifo'),
                          ["network namespace 'zz-no-such-ns' does not exist"]),
        'unknown kind': (dict(base, kind='sfq'), ['kind', 'sfq']),
    }
    if not kernel_has('red', ['limit', '100000', 'avpkt', '1000']):
        # a valid tbf change first, then a kind the kernel lacks: nothing may change at all
        cases['red missing'] = (dict(base, tree=[tbf, red]),
                                ["'red'", 'CONFIG_NET_SCH_RED', 'modprobe sch_red',
                                 'nothing was changed'])
    if not kernel_has('netem', []):
        cases['netem missing'] = (dict(base, kind='netem', options={'delay': '10ms'}),
                                  ["'netem'", 'CONFIG_NET_SCH_NETEM', 'modprobe sch_netem'])
    if not kernel_has('fq_codel', []):
        cases['fq_codel missing'] = (dict(base, kind='fq_codel'),
                                     ["'fq_codel'", 'CONFIG_NET_SCH_FQ_CODEL',
                                      'modprobe sch_fq_codel'])
    text = play(''.join(qdisc_task(name, args, '      ignore_errors: true\n')
                        for name, (args, unused) in cases.items()))
    run = playbook(text)
    for name, (unused, needles) in cases.items():
        res = run.result(name)
        assert res.get('failed') is True, (name, res)
        assert res.get('changed') is False, (name, res)
        for needle in needles:
            assert needle in res['msg'], (name, needle, res['msg'])
    assert shape(ns, a) == before


TBF_RATES = ['100mbit', '200mbit', '30mbit', '1mbit', '10gbit', '12345kbit', '40gbit']
TBF_BURSTS = ['1540', '15000', '32k', '1mb']
TBF_LIMITS = [{'latency': '10us'}, {'latency': '10ms'}, {'limit': '100000'},
              {'latency': '10ms', 'peakrate': '50gbit', 'mtu': 1540}]


def test_tbf_values_read_back_as_predicted(dev):
    """Every desired tbf compares equal to what the kernel reports, with and without -d -r,
    and a neighbouring burst is seen as a change."""
    ns, a = dev[:2]
    for rate, burst, limit in itertools.product(TBF_RATES, TBF_BURSTS, TBF_LIMITS):
        options = dict(rate=rate, burst=burst, **limit)
        entry = tc.desired_entry({'handle': '1:', 'kind': 'tbf', 'options': options}, 'tbf')
        sh(ns, 'tc', *tc.op_argv('replace', a, entry))
        full = tc.parse_show(sh(ns, 'tc', '-s', '-d', '-r', '-j', 'qdisc', 'show', 'dev', a).stdout)
        plain = tc.parse_show(sh(ns, 'tc', '-j', 'qdisc', 'show', 'dev', a).stdout)
        assert tc.compare(entry, full[0]) == {}, options
        assert tc.compare(entry, plain[0]) == {}, options
        bigger = dict(options, burst=tc.parse_size(burst) + 2000)
        other = tc.desired_entry({'handle': '1:', 'kind': 'tbf', 'options': bigger}, 'tbf')
        assert 'burst_ticks' in tc.compare(other, full[0]), options


def run_module(args, check, workdir):
    """The module itself (as Ansible runs it) with diff on; its JSON result."""
    path = os.path.join(workdir, 'args-%s.json' % uuid.uuid4().hex[:8])
    with open(path, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check,
                                               _ansible_diff=True)}, f)
    proc = subprocess.run([sys.executable, '-m', MODULE, path], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=False)
    return json.loads(proc.stdout[proc.stdout.index('{'):])


MODULE = 'ansible_collections.zerodrop.testbed.plugins.modules.tc_qdisc'
COLLECTIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), '.collections')
TBF_10MS = ['tbf', 'rate', '100mbit', 'burst', '15000', 'latency', '10ms']
# name: (commands that set the device up by hand, module args), derived fields in the diff
PREDICTED = {
    'tbf latency change resets its fifo child': (
        [['link', 'set', '{dev}', 'up'],
         ['qdisc', 'add', 'dev', '{dev}', 'root', 'handle', '1:'] + TBF_10MS,
         ['qdisc', 'add', 'dev', '{dev}', 'parent', '1:1', 'handle', '10:', 'bfifo', 'limit',
          '100000']],
        {'handle': '1:', 'kind': 'tbf',
         'options': {'rate': '100mbit', 'burst': 15000, 'latency': '1ms'}}),
    'tbf with peakrate, latency and limit derived': (
        [], {'handle': '1:', 'kind': 'tbf', 'options': {'rate': '30mbit', 'burst': '32k',
                                                        'latency': '5ms', 'peakrate': '1gbit',
                                                        'mtu': 1540}}),
    'tree rate change and a listed fifo child': (
        [['qdisc', 'add', 'dev', '{dev}', 'root', 'handle', '1:'] + TBF_10MS,
         ['qdisc', 'add', 'dev', '{dev}', 'parent', '1:1', 'handle', '10:', 'pfifo', 'limit',
          '50']],
        {'tree': [{'handle': '1:', 'kind': 'tbf',
                   'options': {'rate': '200mbit', 'burst': 15000, 'latency': '10ms'}},
                  {'parent': '1:1', 'handle': '10:', 'kind': 'pfifo', 'options': {'limit': 50}}]}),
    'pfifo and bfifo limits from txqueuelen and mtu': (
        [['link', 'set', '{dev}', 'txqueuelen', '77', 'mtu', '9000']],
        {'tree': [{'handle': '1:', 'kind': 'tbf',
                   'options': {'rate': '1gbit', 'burst': '64k', 'limit': 500000}},
                  {'parent': '1:1', 'handle': '10:', 'kind': 'bfifo'}]}),
    'pfifo without limit': (
        [['link', 'set', '{dev}', 'txqueuelen', '321']], {'handle': '5:', 'kind': 'pfifo'}),
    'tbf replaced by htb with direct_qlen from txqueuelen': (
        [['link', 'set', '{dev}', 'txqueuelen', '66'],
         ['qdisc', 'add', 'dev', '{dev}', 'root', 'handle', '1:'] + TBF_10MS],
        {'handle': '1:', 'kind': 'htb', 'options': {'default': '1f'}}),
    'root deleted: the default qdisc comes back': (
        [['qdisc', 'add', 'dev', '{dev}', 'root', 'handle', '1:'] + TBF_10MS,
         ['qdisc', 'add', 'dev', '{dev}', 'ingress']],
        {'state': 'absent'}),
    'purge of a tbf child': (
        [['qdisc', 'add', 'dev', '{dev}', 'root', 'handle', '1:'] + TBF_10MS,
         ['qdisc', 'add', 'dev', '{dev}', 'parent', '1:1', 'handle', '10:', 'bfifo', 'limit',
          '100000']],
        {'handle': '1:', 'kind': 'tbf', 'purge': True,
         'options': {'rate': '100mbit', 'burst': 15000, 'latency': '10ms'}}),
    'ingress replaced by clsact, pfifo_fast root': (
        [['qdisc', 'add', 'dev', '{dev}', 'ingress']],
        {'tree': [{'handle': '2:', 'kind': 'pfifo_fast'}, {'kind': 'clsact'}]}),
}


@pytest.mark.parametrize('name', sorted(PREDICTED))
def test_check_mode_diff_is_what_the_real_run_does(name, netns, veth, tmp_path):
    """Check mode predicts the read-back: derived fields (a tbf's limit and latency, fifo limits
    a tbf change resets, defaults from txqueuelen and mtu, the default root after a delete)."""
    ns = netns('ztp')
    dev = veth(ns)[0]
    setup, args = PREDICTED[name]
    for argv in setup:
        tool = 'tc' if argv[0] == 'qdisc' else 'ip'
        sh(ns, tool, *[a.format(dev=dev) for a in argv])
    args = dict(args, netns=ns, device=dev)
    before = shape(ns, dev)
    checked = run_module(args, True, str(tmp_path))
    assert not checked.get('failed'), checked
    assert shape(ns, dev) == before, 'check mode changed the device'
    real = run_module(args, False, str(tmp_path))
    assert not real.get('failed') and not real.get('warnings'), real
    assert checked['changed'] is real['changed'] is True
    assert checked['commands'] == real['commands']
    assert checked['diff'] == real['diff'], (checked['diff'], real['diff'])
