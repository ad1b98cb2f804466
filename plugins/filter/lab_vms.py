# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: lab_vms
author: zerodrop.testbed contributors (@zerodrop)
version_added: 0.1.0
short_description: The local lab's guests as the hypervisor role's hypervisor_vms
description:
  - One VM per host of group C(vms) whose C(lab_vm_mode) (default C(baseline)) is one of
    I(lab_modes), in the group's order.
  - Each VM boots the mode's built kernel (I(lab_kernels)) or else the image's kernel and initrd,
    has a copy-on-write disk C(<lab_vm_dir>/<host>.qcow2) over the image, SSH forwarded from the
    host's C(ansible_port), and one NIC on I(lab_bridge) with the host's C(lab_vm_mac), tap
    C(t-<host>) and its ingress shaped on ifb C(it-<host>).
  - The shaper's rate is I(lab_bottleneck_rate); with C(auto), the rate of the root tbf a
    calibration left on C(it-<host>) (found in I(shapers)), else I(lab_calibration_open_rate).
  - Bad input fails naming every variable at fault and the fix.
options:
  _input:
    description:
      - The variables of each host of group C(vms), as C(hostvars) holds them; see EXAMPLES.
      - Read from each are C(inventory_hostname), C(lab_vm_mode), C(ansible_port) and C(lab_vm_mac).
    type: list
    elements: dict
    required: true
  lab_modes:
    description: The modes being run (C(baseline), C(zd)).
    type: list
    elements: str
    required: true
  lab_kernels:
    description: The kernel_build artifacts per mode (C(image) is booted); a mode not in it boots the image's kernel.
    type: dict
    default: {}
  lab_kernel_append:
    description:
      - Words added to the kernel command line of the guests booted on a built kernel, by the build's C(name)
        (its preset), for example C(vm-tbf) mapped to C(ipv6.disable=1 sysctl.net.core.default_qdisc=noqueue).
    type: dict
    default: {}
  vm_image:
    description: The fact of the C(zerodrop.testbed.vm_image) role (C(kernel), C(initrd), C(append), C(base_image)).
    type: dict
    required: true
  lab_vm_dir:
    description: Directory of the guests' disks.
    type: str
    required: true
  lab_vm_memory:
    description: Memory of each guest in MiB.
    type: int
    required: true
  lab_vm_cpus:
    description: Virtual CPUs of each guest.
    type: int
    required: true
  lab_bridge:
    description: The bridge the guests' NICs are on.
    type: str
    required: true
  lab_tap_sndbuf:
    description: QEMU's send buffer of each tap in bytes.
    type: int
    required: true
  lab_bottleneck_rate:
    description: The rate of each guest's ingress shaper, or C(auto) (calibrated).
    type: str
    required: true
  lab_calibration_open_rate:
    description: The rate of a shaper with C(auto) that no calibration has set yet.
    type: str
    required: true
  shapers:
    description:
      - The qdiscs of the hypervisor's devices as C(zerodrop.testbed.tc_qdisc_info) returns them
        without a device (its C(devices)); read with I(lab_bottleneck_rate) C(auto) only.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Read the shapers a calibration left
  zerodrop.testbed.tc_qdisc_info:
  register: lab__qdiscs

- name: One guest per host of group vms of the modes being run
  ansible.builtin.set_fact:
    hypervisor_vms: >-
      {{ groups['vms'] | map('extract', hostvars) | list
         | zerodrop.testbed.lab_vms(lab_modes=lab_modes, lab_kernels=lab_kernels | default({}),
             vm_image=vm_image, lab_vm_dir=lab_vm_dir, lab_vm_memory=lab_vm_memory,
             lab_vm_cpus=lab_vm_cpus, lab_bridge=lab_bridge, lab_tap_sndbuf=lab_tap_sndbuf,
             lab_bottleneck_rate=lab_bottleneck_rate,
             lab_calibration_open_rate=lab_calibration_open_rate,
             shapers=lab__qdiscs.devices | default({})) }}
"""

RETURN = r"""
_value:
  description: The guests, as the role C(zerodrop.testbed.hypervisor) takes them in I(hypervisor_vms).
  type: list
  elements: dict
  sample:
    - name: zd-vm1
      memory: 1024
      cpus: 1
      kernel: /var/cache/zerodrop/images/zt-guest/vmlinuz
      initrd: /var/cache/zerodrop/images/zt-guest/initrd.img
      append: root=/dev/vda1 console=ttyS0
      disks: [{path: /var/lib/zerodrop/lab/zd-vm1.qcow2, backing_file: /var/cache/zerodrop/images/zt-guest/base.qcow2,
               backing_format: qcow2}]
      user_net: {ssh_port: 2231}
      nics: [{bridge: br-zd, mac: "52:54:00:7a:00:11", tap: t-zd-vm1, sndbuf: 32768,
              ingress: {ifb: it-zd-vm1, rate: 1gbit}}]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.zerodrop.testbed.plugins.module_utils import lab_vms


def vms(hosts, **given):
    try:
        return lab_vms.build(hosts, given)
    except ValueError as e:
        raise AnsibleFilterError('lab_vms: %s' % e)


class FilterModule(object):
    def filters(self):
        return {'lab_vms': vms}
