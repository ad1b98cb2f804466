"""module_utils.guard: an exception escaping a module's work becomes a clean failure."""

import errno

import pytest

from ansible_collections.zerodrop.testbed.plugins.module_utils.guard import Guard, describe


class Module(object):
    """What Guard uses of AnsibleModule: check_mode, _name and fail_json (which exits)."""

    def __init__(self, check_mode=False):
        self.check_mode = check_mode
        self._name = 'zerodrop.testbed.example'
        self.failed = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise SystemExit(1)


class Runner(object):
    def __init__(self, changes):
        self.changes = changes


def test_an_os_error_names_the_operation_the_path_and_the_cause():
    module = Module()
    with pytest.raises(SystemExit):
        with Guard(module) as guard:
            guard.doing('create the results directory', '/srv/r')
            raise OSError(errno.EPERM, 'Operation not permitted', '/srv/r')
    assert module.failed['msg'] == ('could not create the results directory: Operation not '
                                    'permitted (/srv/r)')
    assert module.failed['changed'] is False and module.failed['commands'] == []
    assert 'Traceback' in module.failed['exception']


def test_changes_made_before_the_failure_are_listed_and_changed_is_true():
    module = Module()
    with pytest.raises(SystemExit):
        with Guard(module, Runner([['ip', 'link', 'add', 'x']])) as guard:
            guard.record('wrote /tmp/f')
            guard.doing('read the devices', 'ns1')
            raise ValueError('bad JSON')
    assert module.failed['msg'] == ('could not read the devices ns1: ValueError: bad JSON '
                                    '(changes made before this failure are listed in commands; '
                                    'they stay)')
    assert module.failed['changed'] is True
    assert module.failed['commands'] == [['ip', 'link', 'add', 'x'], 'wrote /tmp/f']


def test_check_mode_changed_nothing_even_with_planned_commands():
    module = Module(check_mode=True)
    with pytest.raises(SystemExit):
        with Guard(module, Runner([['tc', 'qdisc', 'add']])):
            raise KeyError('kind')
    assert module.failed['changed'] is False
    assert module.failed['msg'].startswith('could not run zerodrop.testbed.example: KeyError')


def test_a_module_exit_passes_through_untouched():
    module = Module()
    with pytest.raises(SystemExit):
        with Guard(module):
            raise SystemExit(0)
    assert module.failed is None


def test_describe_names_both_paths_of_a_rename():
    error = OSError(errno.EXDEV, 'Invalid cross-device link', '/a', None, '/b')  # as os.rename raises
    assert describe(error) == 'Invalid cross-device link (/a -> /b)'
