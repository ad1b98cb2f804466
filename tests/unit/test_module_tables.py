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
