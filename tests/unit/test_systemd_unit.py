"""The filters systemd_exec, systemd_environment and systemd_value (plugins/filter/systemd_unit.py).

What systemd itself reads from their output is checked in
tests/integration/test_hypervisor_role.py::test_units_quote_paths_and_arguments (systemd --test).
"""

import shlex

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.zerodrop.testbed.plugins.filter.systemd_unit import (
    systemd_environment, systemd_exec, systemd_value)


@pytest.mark.parametrize('argv,line', [
    (['ovsdb-server', '/run/zerodrop/ovs/conf.db', '--remote=punix:/run/zerodrop/ovs/db.sock',
      '--no-chdir'],
     'ovsdb-server /run/zerodrop/ovs/conf.db --remote=punix:/run/zerodrop/ovs/db.sock --no-chdir'),
    (['/usr/bin/python3', '/usr/local/lib/zerodrop/qmp_stop.py', 60],
     '/usr/bin/python3 /usr/local/lib/zerodrop/qmp_stop.py 60'),
    (['qemu', '-append', 'root=/dev/vda console=ttyS0'], "qemu -append 'root=/dev/vda console=ttyS0'"),
    (['qemu', ''], "qemu ''"),
    (['qemu', '$HOME', '50%', 'a $b'], "qemu $$HOME 50%% 'a $$b'"),
    (['qemu', "it's"], 'qemu "it\'s"'),
    (['qemu', 'q"x', 'back\\slash', 'tab\there', 'new\nline', 'bell\x07'],
     'qemu \'q"x\' "back\\\\slash" "tab\\there" "new\\nline" "bell\\x07"'),
    (['qemu', ';', 'semi;colon'], "qemu ';' 'semi;colon'"),
    (['/opt/my tools/run'], "'/opt/my tools/run'"),
    (['-dash-first'], '"-dash-first"'),
    (['/opt/50%/run'], '/opt/50%%/run'),
])
def test_systemd_exec(argv, line):
    assert systemd_exec(argv) == line


def test_systemd_exec_matches_shell_quoting_where_systemd_agrees():
    """For arguments without $, %, quotes or backslashes the line is what shlex.quote gives, so
    units written before these filters existed do not change."""
    argv = ['qemu-system-x86_64', '-name', 'vm1', '-qmp', 'unix:/run/vms/vm1.qmp,server=on,wait=off',
            '-append', 'root=/dev/vda1 console=ttyS0 net.ifnames=0', '-drive',
            'file=/var/lib/zerodrop/lab/zd-vm1.qcow2,format=qcow2,if=virtio,cache=writeback']
    assert systemd_exec(argv) == ' '.join(shlex.quote(a) for a in argv)


@pytest.mark.parametrize('executable', ['/opt/"x"/run', "/opt/it's", '/opt/a\\b', '/opt/$x',
                                        '/opt/a\nb'])
def test_systemd_exec_refuses_what_systemd_refuses_in_a_command_name(executable):
    with pytest.raises(AnsibleFilterError, match='systemd refuses in a command name'):
        systemd_exec([executable, 'arg'])


@pytest.mark.parametrize('value', [[], 'qemu -m 1', None])
def test_systemd_exec_wants_a_list(value):
    with pytest.raises(AnsibleFilterError, match='non-empty list'):
        systemd_exec(value)


def test_systemd_exec_refuses_a_dict_argument():
    with pytest.raises(AnsibleFilterError, match='expected text or a number'):
        systemd_exec(['qemu', {'a': 1}])


def test_systemd_environment():
    assert (systemd_environment({'OVS_RUNDIR': '/run/zerodrop/ovs', 'N': 5})
            == 'OVS_RUNDIR=/run/zerodrop/ovs N=5')
    assert (systemd_environment({'A': '/run/my ovs', 'B': '50%', 'C': '$x', 'D': 'q"x'})
            == "'A=/run/my ovs' B=50%% C=$x 'D=q\"x'")


@pytest.mark.parametrize('variables,message', [
    ({'1A': 'x'}, "'1A' is not a variable name"),
    ({'A B': 'x'}, "'A B' is not a variable name"),
    (['A=1'], 'expected a dict'),
    ({'A': None}, 'expected text or a number'),
])
def test_systemd_environment_refuses(variables, message):
    with pytest.raises(AnsibleFilterError, match=message):
        systemd_environment(variables)


def test_systemd_value():
    assert systemd_value('/run/zerodrop/vms/vm1.pid') == '/run/zerodrop/vms/vm1.pid'
    assert systemd_value("/run/my vms $x 'q'/50%.pid") == "/run/my vms $x 'q'/50%%.pid"


@pytest.mark.parametrize('value,message', [
    ('/run/a\nExecStartPre=/bin/evil', 'contains a control character'),
    ('/run/a\tb', 'contains a control character'),
    (' /run/a', 'white space'),
    ('/run/a ', 'white space'),
    (None, 'expected text'),
])
def test_systemd_value_refuses(value, message):
    with pytest.raises(AnsibleFilterError, match=message):
        systemd_value(value)
