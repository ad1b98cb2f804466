"""module_utils/sysctl_live: read all first, write what differs, roll back on a refusal.

The outputs are recorded from sysctl 4.0.2 (procps, Debian 12) in a fresh network namespace
(`ip netns exec NS sysctl ...`); the runner is the real Runner with only its subprocess call
replaced by a replay of those outputs.
"""

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils import sysctl_live
from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import Runner

NS = ['ip', 'netns', 'exec', 'ns1']
RECORDED = {
    ('sysctl', '-n', 'net.ipv4.tcp_ecn'): (0, '2\n', ''),
    ('sysctl', '-n', 'net.core.somaxconn'): (0, '4096\n', ''),
    ('sysctl', '-n', 'net.ipv4.ip_local_port_range'): (0, '32768\t60999\n', ''),
    ('sysctl', '-n', 'net.ipv4.no_such_sysctl'): (
        1, '', 'sysctl: cannot stat /proc/sys/net/ipv4/no_such_sysctl: No such file or directory\n'),
    ('sysctl', '-q', '-w', 'net.core.somaxconn=1000'): (0, '', ''),
    ('sysctl', '-q', '-w', 'net.core.somaxconn=4096'): (0, '', ''),
    ('sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=40000 50000'): (0, '', ''),
    ('sysctl', '-q', '-w', 'net.ipv4.tcp_ecn=lots'): (
        1, '', 'sysctl: setting key "net.ipv4.tcp_ecn": Invalid argument\n'),
}


class Replay(Runner):
    """The real Runner, in namespace ns1, its commands answered from RECORDED."""

    def __init__(self, check_mode=False, refuse_restore=False):
        Runner.__init__(self, None, netns='ns1', check_mode=check_mode)
        self._bins = {'ip': 'ip', 'sysctl': 'sysctl'}
        self.ran = []
        self.refuse_restore = refuse_restore

    def _subprocess(self, full, data, env, cwd, log, timeout):
        assert full[:4] == NS
        self.ran.append(full[4:])
        if self.refuse_restore and full[4:] == ['sysctl', '-q', '-w', 'net.core.somaxconn=4096']:
            return 1, '', 'sysctl: permission denied on key "net.core.somaxconn"\n'
        return RECORDED[tuple(full[4:])]


def test_text_normalizes_like_the_kernel_prints():
    assert sysctl_live.text(True) == '1'
    assert sysctl_live.text(False) == '0'
    assert sysctl_live.text([40000, 50000]) == '40000 50000'
    assert sysctl_live.text('32768\t60999\n') == '32768 60999'
    assert sysctl_live.text(1000) == '1000'


def test_read_collapses_whitespace_and_gives_none_for_an_unknown_key():
    runner = Replay()
    assert sysctl_live.read_all(runner, ['net.ipv4.ip_local_port_range',
                                         'net.ipv4.no_such_sysctl']) == {
        'net.ipv4.ip_local_port_range': '32768 60999', 'net.ipv4.no_such_sysctl': None}
    assert runner.changes == []


def test_only_the_differing_values_are_written_and_returned():
    runner = Replay()
    changed = sysctl_live.apply(runner, {'net.ipv4.tcp_ecn': 2, 'net.core.somaxconn': 1000,
                                         'net.ipv4.ip_local_port_range': [40000, 50000]})
    assert changed == [('net.core.somaxconn', '4096', '1000'),
                       ('net.ipv4.ip_local_port_range', '32768 60999', '40000 50000')]
    assert runner.changes == [NS + ['sysctl', '-q', '-w', 'net.core.somaxconn=1000'],
                              NS + ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=40000 50000']]


def test_same_values_written_nothing():
    runner = Replay()
    assert sysctl_live.apply(runner, {'net.ipv4.tcp_ecn': '2',
                                      'net.ipv4.ip_local_port_range': '32768   60999'}) == []
    assert runner.changes == []
    assert all(argv[1] == '-n' for argv in runner.ran)


def test_check_mode_plans_the_writes_and_runs_none():
    runner = Replay(check_mode=True)
    changed = sysctl_live.apply(runner, {'net.core.somaxconn': 1000})
    assert changed == [('net.core.somaxconn', '4096', '1000')]
    assert runner.changes == [NS + ['sysctl', '-q', '-w', 'net.core.somaxconn=1000']]
    assert runner.ran == [['sysctl', '-n', 'net.core.somaxconn']]


def test_an_unknown_key_fails_before_anything_is_written():
    runner = Replay()
    with pytest.raises(sysctl_live.SysctlError) as e:
        sysctl_live.apply(runner, {'net.core.somaxconn': 1000, 'net.ipv4.no_such_sysctl': 1})
    assert str(e.value) == ('sysctls: net.ipv4.no_such_sysctl is not a sysctl of network '
                            'namespace ns1: check the name (sysctl -a lists them)')
    assert runner.changes == [] and e.value.left == []


def test_a_refused_value_restores_the_keys_written_before_it():
    runner = Replay()
    with pytest.raises(sysctl_live.SysctlError) as e:
        sysctl_live.apply(runner, {'net.core.somaxconn': 1000, 'net.ipv4.tcp_ecn': 'lots'})
    assert str(e.value) == ('sysctls: net.ipv4.tcp_ecn=lots was refused (sysctl: setting key '
                            '"net.ipv4.tcp_ecn": Invalid argument): give a value the kernel '
                            'accepts (net.core.somaxconn restored)')
    assert e.value.left == [] and e.value.restored == ['net.core.somaxconn']
    assert runner.changes[-1] == NS + ['sysctl', '-q', '-w', 'net.core.somaxconn=4096']


def test_a_restore_that_fails_is_named():
    runner = Replay(refuse_restore=True)
    with pytest.raises(sysctl_live.SysctlError) as e:
        sysctl_live.apply(runner, {'net.core.somaxconn': 1000, 'net.ipv4.tcp_ecn': 'lots'},
                          field='sysctl')
    assert str(e.value).endswith('; could not restore net.core.somaxconn')
    assert str(e.value).startswith('sysctl: net.ipv4.tcp_ecn=lots was refused')
    assert e.value.left == ['net.core.somaxconn']


@pytest.mark.parametrize('key', ['net.ipv4.tcp_ecn', 'net.core.somaxconn', 'net/ipv4/tcp_ecn',
                                 'net.ipv4.conf.eth0/100.rp_filter', 'net.ipv4.conf.br-lan.forwarding'])
def test_sysctl_keys_as_sysctl_takes_them(key):
    assert sysctl_live.key_problem('sysctls', key) is None


@pytest.mark.parametrize('key', ['-a', '', 'net..ipv4', 'net/../../etc/passwd', 'net.ipv4.',
                                 'net.ipv4.tcp_ecn=1', 'net ipv4', '.net'])
def test_sysctl_keys_that_are_options_paths_or_broken_are_refused(key):
    assert sysctl_live.key_problem('sysctls', key) == (
        "sysctls: %r is not a sysctl key: give a name like net.ipv4.tcp_ecn (letters, digits, "
        "_ - : separated by . or /)" % key)


@pytest.mark.parametrize('value, problem', [
    (None, 'sysctls.k: give a number or a word (or a list of numbers), not nothing'),
    ({'a': 1}, 'sysctls.k: give a number or a word (or a list of numbers), not {"a": 1}'),
    ([1, [2]], 'sysctls.k: give a number or a word (or a list of numbers), not [1, [2]]'),
    ('1\n2', 'sysctls.k: a value is one line'),
    ('  ', 'sysctls.k: give a value, not an empty string'),
])
def test_values_that_cannot_be_written(value, problem):
    assert sysctl_live.value_problem('sysctls', 'k', value) == problem


@pytest.mark.parametrize('value', [1, '1024 65535', [1024, 65535], True, 'cubic'])
def test_values_that_can(value):
    assert sysctl_live.value_problem('sysctls', 'k', value) is None
