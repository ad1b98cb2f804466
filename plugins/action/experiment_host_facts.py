# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodrop.testbed.experiment_host_facts, then the host's clock offset against the controller's:
the host's ``date +%s.%N`` over the task's connection, each reading between two of the
controller's clock, the tightest of a few. Read inside the module, the clock came seconds into a
window as long as the whole task on every host (11.7 s on TCG guests), which made every offset
unknown; one command over an open connection takes milliseconds to a tenth of a second."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

READINGS = 3


def offset_of(samples):
    """[(controller before, host clock text, controller after)] -> {offset_s, uncertainty_s} of
    the tightest reading that parses, or None (e.g. a ``date`` without %N)."""
    best = None
    for before, text, after in samples:
        try:
            clock = float(text.strip())
        except ValueError:
            continue
        if best is None or after - before < best[2] - best[0]:
            best = (before, clock, after)
    if best is None:
        return None
    before, clock, after = best
    return {'offset_s': round(clock - (before + after) / 2.0, 6),
            'uncertainty_s': round((after - before) / 2.0, 6)}


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        result = merge_hash(result, self._execute_module(task_vars=task_vars))
        self._remove_tmp_path(self._connection._shell.tmpdir)
        if result.get('failed'):
            return result
        samples = []
        for _reading in range(READINGS):
            before = time.time()
            out = self._low_level_execute_command('date +%s.%N')
            after = time.time()
            if out.get('rc') == 0:
                samples.append((before, out.get('stdout', ''), after))
        result['clock_offset'] = offset_of(samples)
        return result
