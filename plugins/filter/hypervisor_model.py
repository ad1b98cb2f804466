# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: hypervisor_model
author: zerodrop.testbed contributors (@zerodrop)
version_added: 0.1.0
short_description: The hypervisor role's data model and its validation errors
description:
  - Turns I(hypervisor_vms) and I(hypervisor_bridges) into the model the role
    C(zerodrop.testbed.hypervisor) works from, every default filled in from the role's argument spec
    (C(ansible-doc -t role zerodrop.testbed.hypervisor) shows them), with the derived device names,
    paths, ports and every validation error.
  - It never fails on bad input; the errors are listed in C(errors), so that a caller reports all
    of them at once. VNC passwords are not part of the model.
options:
  _input:
    description: The VMs (I(hypervisor_vms) of the role).
    type: list
    elements: dict
    required: true
  bridges:
    description: The bridges (I(hypervisor_bridges) of the role).
    type: list
    elements: dict
    default: []
  settings:
    description:
      - The role variables the model reads, as keyword arguments named like them
        (C(hypervisor_rundir), C(hypervisor_logdir), C(hypervisor_hostfwd_address), C(hypervisor_vm_rng),
        C(hypervisor_ssh_user), C(hypervisor_ssh_key), C(hypervisor_vm_groups), C(hypervisor_wait_ssh)) and the
        role's paths it checks (C(hypervisor_ovs_rundir), C(hypervisor_helper_dir),
        C(hypervisor_tap_scripts_dir), C(hypervisor_unit_dir), C(hypervisor_state_file)).
      - One not given takes the role's default.
    type: dict
"""

EXAMPLES = r"""
- name: Build the model and fail listing every error
  vars:
    model: >-
      {{ hypervisor_vms | zerodrop.testbed.hypervisor_model(hypervisor_bridges,
           hypervisor_rundir='/run/zerodrop/vms') }}
  ansible.builtin.assert:
    that: model.errors | length == 0
    fail_msg: "{{ model.errors }}"
"""

RETURN = r"""
_value:
  description: The model.
  type: dict
  contains:
    vms:
      description:
        - One dict per VM with every option of I(hypervisor_vms) (defaults filled in; C(vnc) holds
          only C(display)) and C(pidfile), C(qmp), C(argv_file), C(vnc_secret), C(serial_log), C(unit).
        - Each NIC has C(id) (net0, net1, ...), its C(tap) and C(ingress) (C(ifb), C(rate), C(burst),
          C(limit)) or null.
      type: list
      elements: dict
    bridges:
      description: One dict per bridge, defaults filled in, with C(ports) (the taps on it).
      type: list
      elements: dict
    nics_ingress:
      description: The NICs of every VM, in order, whose ingress is shaped (an ifb with a tbf and a redirect).
      type: list
      elements: dict
    errors:
      description: Every validation error, naming the VM or bridge, the field and the fix.
      type: list
      elements: str
      sample: ['hypervisor_vms[0] (vm1): cpus 0 is not a number of virtual CPUs: give a whole number of at least 1']
"""

import os

import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.zerodrop.testbed.plugins.module_utils import hypervisor_model

# The collection's own role: its argument spec is where the defaults are stated.
ARGUMENT_SPECS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'roles',
                              'hypervisor', 'meta', 'argument_specs.yml')
_OPTIONS = []


def role_options():
    """The options of the role's main entry point (read once per process)."""
    if not _OPTIONS:
        with open(ARGUMENT_SPECS) as f:
            _OPTIONS.append(yaml.safe_load(f)['argument_specs']['main']['options'])
    return _OPTIONS[0]


def model(vms, bridges=None, **settings):
    try:
        return hypervisor_model.build(vms, [] if bridges is None else bridges, role_options(),
                                      settings)
    except ValueError as e:
        raise AnsibleFilterError('hypervisor_model: %s' % e)


class FilterModule(object):
    def filters(self):
        return {'hypervisor_model': model}
