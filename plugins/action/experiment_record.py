# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodrop.testbed.experiment_record in the controller's own process: results live on the
controller, and one module process less per run is a large part of the runner's overhead."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.zerodrop.testbed.plugins.modules import experiment_record


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        validation, params = self.validate_argument_spec(
            argument_spec=experiment_record.ARGUMENT_SPEC)
        result.update(experiment_record.execute(params, self._task.check_mode))
        return result
