# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodrop.testbed.flow_run: phase=stop of a host whose files are on the controller (local or
netns connection, no become) runs in the controller's own process; everything else runs the
module on the host. A module process less per run is a large part of the runner's overhead."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash
from ansible_collections.zerodrop.testbed.plugins.modules import flow_run

# Connections whose commands run on the controller's own file system.
ON_CONTROLLER = ('local', 'ansible.builtin.local', 'zerodrop.testbed.netns')


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        if self._task.args.get('phase') == 'stop' and self._on_controller():
            validation, params = self.validate_argument_spec(argument_spec=flow_run.ARGUMENT_SPEC)
            return merge_hash(result, flow_run.stop_on_controller(params, self._task.check_mode))
        result = merge_hash(result, self._execute_module(task_vars=task_vars))
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _on_controller(self):
        return (self._connection.transport in ON_CONTROLLER
                and not self._play_context.become)
