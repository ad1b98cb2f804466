"""Every case of tests/unit/module_tables/*.yml: the module runs exactly the recorded commands,
in order, and returns the expected result (module_table.py describes the format)."""

import os

import pytest

from module_table import load, mismatches, run_case, tables

CASES = [pytest.param(load(path), case, id='%s:%s' % (os.path.basename(path)[:-4], case['name']))
         for path in tables() for case in load(path)['cases']]


@pytest.mark.parametrize('table, case', CASES)
def test_module_table(table, case, tmp_path):
    result, served = run_case(table, case, str(tmp_path))
    assert not served.errors, '\n'.join(served.errors)
    assert not served.missing(), 'commands not run: %s' % [c['argv'] for c in served.missing()]
    problems = mismatches(case['result'], result)
    assert not problems, '\n'.join(problems) + '\nwhole result: %r' % result


def _tc_case(name):
    table = load(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'module_tables',
                              'tc_qdisc.yml'))
    return table, [case for case in table['cases'] if case['name'] == name][0]


def test_a_command_that_differs_from_the_table_fails(tmp_path):
    table, case = _tc_case('add tbf root')
    case['commands'][-1]['argv'] = case['commands'][-1]['argv'][:-1]
    dummy, served = run_case(table, case, str(tmp_path))
    assert served.errors and 'differs' in served.errors[0]


def test_a_command_the_table_lacks_fails(tmp_path):
    table, case = _tc_case('add tbf root')
    del case['commands'][-1]
    dummy, served = run_case(table, case, str(tmp_path))
    assert served.errors and 'unexpected command' in served.errors[0]


def test_a_recorded_command_not_run_is_reported(tmp_path):
    table, case = _tc_case('tbf already there is unchanged')
    case['commands'].append(dict(case['commands'][-1]))
    dummy, served = run_case(table, case, str(tmp_path))
    assert not served.errors and len(served.missing()) == 1
