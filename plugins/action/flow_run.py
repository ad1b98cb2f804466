# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""zerodrop.testbed.flow_run: a host whose commands run on the controller itself runs the phase
in the controller's own process (no module process per host and phase: with many senders on
one machine, those processes were most of a run's overhead):
- with the local connection;
- with the netns connection, whose namespace becomes the phase's ``netns`` when the task gives
  none (the module would run inside it; here its commands do, through ``ip netns exec``, and
  run_dir is the same directory);
both without become. Everything else runs the module on the host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash
from ansible_collections.zerodrop.testbed.plugins.modules import flow_run

LOCAL = ('local', 'ansible.builtin.local')
NETNS = 'zerodrop.testbed.netns'


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        if self._in_this_process():
            validation, params = self.validate_argument_spec(argument_spec=flow_run.ARGUMENT_SPEC)
            if self._connection.transport == NETNS and not params.get('netns'):
                params = dict(params, netns=self._connection.netns)
            return merge_hash(result, flow_run.on_controller(params, self._task.check_mode))
        result = merge_hash(result, self._execute_module(task_vars=task_vars))
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _in_this_process(self):
        return (self._connection.transport in LOCAL + (NETNS,)
                and not self._play_context.become)
