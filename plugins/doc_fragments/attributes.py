# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options: {}
'''

    # The experiment runner's modules: they read hosts and write results, there is no state to
    # show a diff of. Each module describes its own check mode.
    LINUX_NO_DIFF = r'''
options: {}
attributes:
  diff_mode:
    support: none
    description: Nothing to compare.
  platform:
    support: full
    platforms: posix
    description: Linux with iproute2.
'''
