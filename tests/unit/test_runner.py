"""module_utils/runner.py: argv building, and the module-less runner running real programs
(env, cwd, a log file, timeouts, check mode, long-running processes)."""

import os
import signal
import time

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.runner import CommandError, Runner


def named(runner, *names):
    """Programs by name: argv tests do not depend on where this machine keeps them."""
    runner._bins.update((name, name) for name in names)
    return runner


def test_prefix_goes_inside_the_namespace():
    runner = named(Runner(None, netns='n1', prefix=['unshare', '--net', '--']), 'ip', 'unshare',
                   'sysctl')
    assert runner.argv(['sysctl', '-n', 'net.ipv4.tcp_ecn']) == [
        'ip', 'netns', 'exec', 'n1', 'unshare', '--net', '--', 'sysctl', '-n', 'net.ipv4.tcp_ecn']


def test_absolute_programs_are_kept():
    assert Runner(None).argv(['/bin/true', 'x']) == ['/bin/true', 'x']


def test_env_and_cwd_of_the_runner_and_of_a_command(tmp_path):
    runner = Runner(None, env={'ZD_A': 'runner'}, cwd=str(tmp_path))
    env = runner.run(['env'], env={'ZD_B': 'command'}).stdout.splitlines()
    assert {'ZD_A=runner', 'ZD_B=command', 'LC_ALL=C', 'LANG=C'} <= set(env)
    assert runner.run(['pwd']).stdout.strip() == str(tmp_path)
    assert runner.run(['pwd'], cwd='/').stdout.strip() == '/'


def test_stdin_data(tmp_path):
    assert Runner(None).run(['cat'], data='a\nb\n').stdout == 'a\nb\n'


def test_a_log_file_takes_the_output(tmp_path):
    log = str(tmp_path / 'build.log')
    result = Runner(None).run(['sh', '-c', 'echo out; echo err >&2; exit 3'], log=log,
                              check_rc=False)
    assert (result.rc, result.stdout, result.stderr) == (3, '', '')
    with open(log) as f:
        lines = f.read().splitlines()
    assert lines[0].startswith('$ ') and lines[0].endswith("sh -c 'echo out; echo err >&2; exit 3'")
    assert sorted(lines[1:]) == ['err', 'out']


def test_failure_raises_with_the_details():
    with pytest.raises(CommandError) as e:
        Runner(None).run(['sh', '-c', 'echo no >&2; exit 2'])
    assert e.value.result.rc == 2
    assert str(e.value).endswith("failed (rc=2): no")


def test_a_missing_program_is_rc_127():
    result = Runner(None).run(['zd-no-such-program'], check_rc=False)
    assert result.rc == 127 and 'zd-no-such-program' in result.stderr


def test_a_command_that_hangs_is_ended():
    result = Runner(None).run(['sleep', '10'], check_rc=False, timeout=0.2)
    assert result.rc == -signal.SIGKILL and 'timed out' in result.stderr


def test_check_mode_records_changes_and_runs_only_reads(tmp_path):
    runner = Runner(None, check_mode=True)
    made = str(tmp_path / 'made')
    assert runner.run(['touch', made], changes=True).skipped
    assert not os.path.exists(made)
    assert runner.run(['echo', 'read']).stdout == 'read\n'
    assert runner.start(['sleep', '10']) is None
    assert [argv[1:] for argv in runner.changes] == [[made], ['10']]


def test_start_and_stop_a_long_running_process_group(tmp_path):
    runner = Runner(None)
    out = str(tmp_path / 'out')
    proc = runner.start(['sh', '-c', 'echo started; exec sleep 30'], stdout=out,
                        new_session=True, nofile=256)
    assert os.getpgid(proc.pid) == proc.pid
    deadline = time.time() + 10
    while os.path.getsize(out) == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert Runner.stop(proc, signal.SIGTERM, wait=5, group=True) == -signal.SIGTERM
    with open(out) as f:
        assert f.read() == 'started\n'
    assert runner.changes[0][1:] == ['-c', 'echo started; exec sleep 30']


def test_the_nofile_limit_reaches_the_process(tmp_path):
    out = str(tmp_path / 'limit')
    proc = Runner(None).start(['sh', '-c', 'ulimit -n'], stdout=out, nofile=300, changes=False)
    assert proc.wait(10) == 0
    with open(out) as f:
        assert f.read().strip() == '300'
