"""module_utils/lab_vms.py and the filter zerodrop.testbed.lab_vms: the local lab's guests as
hypervisor_vms, from the local inventory's own variables, case by case, and every error."""

import copy
import json
import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.zerodrop.testbed.plugins.filter import hypervisor_model as model_filter
from ansible_collections.zerodrop.testbed.plugins.filter import lab_vms as lab_filter
from ansible_collections.zerodrop.testbed.plugins.module_utils import lab_vms
from ansible_collections.zerodrop.testbed.plugins.module_utils import tc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOCAL = os.path.join(ROOT, 'inventories', 'local')
with open(os.path.join(LOCAL, 'hosts.yml')) as hosts_file:
    VMS_GROUP = yaml.safe_load(hosts_file)['all']['children']['vms']['hosts']
with open(os.path.join(LOCAL, 'group_vars', 'all', 'lab.yml')) as lab_file:
    LAB = yaml.safe_load(lab_file)

# The vm_image fact and the zd kernel of the recorded hypervisor_model inputs (local*.json).
VM_IMAGE = {'base_image': '/var/cache/zerodrop/images/zt-guest/base.qcow2',
            'kernel': '/var/cache/zerodrop/images/zt-guest/vmlinuz',
            'initrd': '/var/cache/zerodrop/images/zt-guest/initrd.img',
            'append': 'root=/dev/vda1 console=ttyS0'}
ZD_KERNEL = {'zd': {'image': '/var/cache/k/zd-bzImage'}}


def recorded_input(name):
    """hypervisor_vms as site_hypervisor.yml's set_fact loop made it for the local lab."""
    with open(os.path.join(HERE, 'fixtures', 'hypervisor_model', name + '.json')) as f:
        return json.load(f)['vms']


def recorded_shapers(**renames):
    """tc_qdisc_info's devices of a host recorded with ``tc -s -d -r -j qdisc show`` (v1: a root
    tbf at 100mbit, t0: pfifo_fast, v0: noqueue), devices renamed as the lab names its ifbs."""
    with open(os.path.join(HERE, 'fixtures', 'tc', 'host-all-devices.json')) as f:
        devices = tc.by_device(tc.parse_show(json.load(f)))
    return dict((renames.get(name, name), qdiscs) for name, qdiscs in devices.items())


def hosts(**changes):
    """The vms group's host variables as hostvars gives them (a change of None drops the key)."""
    out = []
    for name, variables in VMS_GROUP.items():
        host = dict(variables, inventory_hostname=name)
        for key, value in changes.get(name.replace('-', '_'), {}).items():
            if value is None:
                host.pop(key, None)
            else:
                host[key] = value
        out.append(host)
    return out


def given(**changes):
    """The lab's variables of inventories/local with the vm_image fact, modes baseline and zd."""
    value = dict((name, LAB[name]) for name in lab_vms.REQUIRED if name in LAB)
    value.update(lab_modes=['baseline', 'zd'], vm_image=copy.deepcopy(VM_IMAGE), lab_kernels={},
                 shapers={})
    value.update(changes)
    return value


def build(host_vars=None, **changes):
    return lab_vms.build(hosts() if host_vars is None else host_vars, given(**changes))


def rates(vms):
    return dict((vm['name'], vm['nics'][0]['ingress']['rate']) for vm in vms)


# --- the guests -------------------------------------------------------------------------------

def test_local_lab_both_modes_auto_is_what_the_set_fact_loop_made():
    assert build(lab_kernels=ZD_KERNEL) == recorded_input('local')


def test_local_lab_baseline_at_a_fixed_rate_is_what_the_set_fact_loop_made():
    assert build(lab_modes=['baseline'], lab_bottleneck_rate='30mbit') == recorded_input('local30')


@pytest.mark.parametrize('modes, names', [
    (['baseline', 'zd'], ['zd-vm1', 'zd-vm2']),
    (['zd', 'baseline'], ['zd-vm1', 'zd-vm2']),
    (['baseline'], ['zd-vm1']),
    (['zd'], ['zd-vm2']),
    ([], []),
])
def test_only_the_modes_being_run_in_the_groups_order(modes, names):
    assert [vm['name'] for vm in build(lab_modes=modes)] == names


def test_a_host_without_lab_vm_mode_is_baseline():
    vms = build(hosts(zd_vm2={'lab_vm_mode': None}), lab_modes=['baseline'])
    assert [vm['name'] for vm in vms] == ['zd-vm1', 'zd-vm2']


def test_a_host_of_a_mode_not_run_needs_none_of_its_variables():
    vms = build(hosts(zd_vm2={'lab_vm_mac': None, 'ansible_port': None}), lab_modes=['baseline'])
    assert [vm['name'] for vm in vms] == ['zd-vm1']


def test_built_kernel_is_booted_without_initrd_else_the_images_kernel():
    vm1, vm2 = build(lab_kernels=dict(ZD_KERNEL, baseline=None))
    assert (vm1['kernel'], vm1['initrd']) == (VM_IMAGE['kernel'], VM_IMAGE['initrd'])
    assert (vm2['kernel'], vm2['initrd']) == ('/var/cache/k/zd-bzImage', None)
    vm1, vm2 = build(lab_kernels={'baseline': {'image': '/k/vanilla', 'config': '/k/config'}})
    assert (vm1['kernel'], vm1['initrd']) == ('/k/vanilla', None)
    assert (vm2['kernel'], vm2['initrd']) == (VM_IMAGE['kernel'], VM_IMAGE['initrd'])
    assert vm1['append'] == vm2['append'] == VM_IMAGE['append']


def test_kernel_append_adds_words_for_the_guests_of_that_build_only():
    kernels = {'zd': {'image': '/k/tbf', 'name': 'vm-tbf'}, 'baseline': {'image': '/k/v', 'name': 'vanilla'}}
    vm1, vm2 = build(lab_kernels=kernels, lab_kernel_append={'vm-tbf': 'ipv6.disable=1'})
    assert vm1['append'] == VM_IMAGE['append']
    assert vm2['append'] == VM_IMAGE['append'] + ' ipv6.disable=1'
    vm1, vm2 = build(lab_kernel_append={'vm-tbf': ['ipv6.disable=1', 'quiet']},
                     lab_kernels={'zd': {'image': '/k/tbf', 'name': 'vm-tbf'}})
    assert vm2['append'] == VM_IMAGE['append'] + ' ipv6.disable=1 quiet'
    assert vm1['append'] == VM_IMAGE['append']


def test_auto_without_a_calibrated_shaper_is_the_open_rate():
    assert rates(build(lab_calibration_open_rate='2gbit')) == {'zd-vm1': '2gbit', 'zd-vm2': '2gbit'}


def test_auto_with_a_calibrated_shaper_keeps_its_rate():
    vms = build(shapers=recorded_shapers(v1='it-zd-vm2'))
    assert rates(vms) == {'zd-vm1': '1gbit', 'zd-vm2': '100000000bit'}


def test_auto_ignores_a_root_that_is_no_tbf_and_other_devices():
    vms = build(shapers=recorded_shapers(t0='it-zd-vm1', v1='t-zd-vm2'))
    assert rates(vms) == {'zd-vm1': '1gbit', 'zd-vm2': '1gbit'}


def test_auto_ignores_a_tbf_below_the_root():
    shaper = recorded_shapers()['v1'][0]
    below = dict(shaper, parent='1:1', handle='10:')
    assert rates(build(shapers={'it-zd-vm1': [recorded_shapers()['t0'][0], below]}))['zd-vm1'] == '1gbit'


def test_a_fixed_rate_ignores_the_shapers():
    vms = build(lab_bottleneck_rate='30mbit', shapers=recorded_shapers(v1='it-zd-vm2'))
    assert rates(vms) == {'zd-vm1': '30mbit', 'zd-vm2': '30mbit'}


def test_values_pass_through_as_the_inventory_gives_them():
    vm1 = build(lab_vm_memory='2048', lab_vm_cpus=2, lab_tap_sndbuf=65536, lab_vm_dir='/d',
                lab_bridge='br9')[0]
    assert (vm1['memory'], vm1['cpus']) == ('2048', 2)
    assert vm1['disks'] == [{'path': '/d/zd-vm1.qcow2', 'backing_file': VM_IMAGE['base_image'],
                             'backing_format': 'qcow2'}]
    assert vm1['nics'] == [{'bridge': 'br9', 'mac': '52:54:00:7a:00:11', 'tap': 't-zd-vm1',
                            'sndbuf': 65536, 'ingress': {'ifb': 'it-zd-vm1', 'rate': '1gbit'}}]
    assert vm1['user_net'] == {'ssh_port': 2231}


def test_the_hypervisor_model_takes_the_guests_and_shapes_each():
    bridges = [{'name': LAB['lab_bridge'], 'type': LAB['lab_bridge_type'],
                'addresses': [LAB['lab_bridge_address']]}]
    model = model_filter.model(build(shapers=recorded_shapers(v1='it-zd-vm2')), bridges)
    assert model['errors'] == []
    assert [(n['tap'], n['ingress']) for n in model['nics_ingress']] == [
        ('t-zd-vm1', {'ifb': 'it-zd-vm1', 'rate': '1gbit', 'burst': '32k', 'limit': 2000000}),
        ('t-zd-vm2', {'ifb': 'it-zd-vm2', 'rate': '100000000bit', 'burst': '32k', 'limit': 2000000})]


def test_filter_is_lab_vms_and_takes_the_variables_by_name():
    assert lab_filter.FilterModule().filters() == {'lab_vms': lab_filter.vms}
    assert lab_filter.vms(hosts(), **given(lab_kernels=ZD_KERNEL)) == recorded_input('local')
    assert lab_filter.vms(hosts(), **dict((k, v) for k, v in given(lab_modes=['zd']).items()
                                          if k not in ('lab_kernels', 'shapers')))[0]['name'] == 'zd-vm2'


# --- every error ------------------------------------------------------------------------------

ERRORS = [
    ('required variable missing', {}, {'lab_bridge': None},
     'lab_bridge is not set: give it in the inventory'),
    ('unknown variable', {}, {'lab_bridge_typo': 'x'},
     'unknown variables lab_bridge_typo; lab_vms reads lab_modes, '),
    ('lab_modes a string', {}, {'lab_modes': 'zd'},
     "lab_modes must be a list of modes like [baseline, zd], got 'zd'"),
    ('lab_kernels not a dict', {}, {'lab_kernels': ['zd']}, "lab_kernels must be a dict, got ['zd']"),
    ('vm_image not a dict', {}, {'vm_image': '/img'}, "vm_image must be a dict, got '/img'"),
    ('shapers not a dict', {}, {'shapers': []}, 'shapers must be a dict, got []'),
    ('lab_kernel_append not a dict', {}, {'lab_kernel_append': 'ipv6.disable=1'},
     "lab_kernel_append must be a dict, got 'ipv6.disable=1'"),
    ('lab_vm_dir empty', {}, {'lab_vm_dir': ''}, "lab_vm_dir must be a non-empty string, got ''"),
    ('lab_bridge not a string', {}, {'lab_bridge': 3}, 'lab_bridge must be a non-empty string, got 3'),
    ('lab_vm_memory 0', {}, {'lab_vm_memory': 0},
     'lab_vm_memory 0 is not a size in MiB (e.g. 1024): give a whole number of at least 1'),
    ('lab_vm_cpus text', {}, {'lab_vm_cpus': 'two'},
     "lab_vm_cpus 'two' is not a number of virtual CPUs (e.g. 1): give a whole number"),
    ('lab_tap_sndbuf negative', {}, {'lab_tap_sndbuf': -1},
     'lab_tap_sndbuf -1 is not a tap send buffer in bytes (e.g. 32768)'),
    ('lab_bottleneck_rate no rate', {}, {'lab_bottleneck_rate': 'fast'},
     "lab_bottleneck_rate: 'fast' is not a rate; give auto or a rate like 30mbit"),
    ('lab_bottleneck_rate unknown unit', {}, {'lab_bottleneck_rate': '30mb'},
     "lab_bottleneck_rate: '30mb' is not a rate: unknown unit 'mb'"),
    ('open rate bad with auto', {}, {'lab_calibration_open_rate': 'open'},
     "lab_calibration_open_rate: 'open' is not a rate; give a rate like 1gbit"),
    ('hosts not a list', 'zd-vm1', {},
     "the vms group's hosts must be a list of their variables (groups['vms'] | map('extract', "
     "hostvars) | list), got 'zd-vm1'"),
    ('a host without inventory_hostname', [{'lab_vm_mode': 'zd'}], {},
     "hosts[0] is no host's variables ({'lab_vm_mode': 'zd'}): pass groups['vms']"),
    ('lab_vm_mode not a string', {'zd_vm2': {'lab_vm_mode': ['zd']}}, {},
     "zd-vm2: lab_vm_mode ['zd'] is not a mode name: give one of baseline, zd"),
    ('ansible_port missing', {'zd_vm1': {'ansible_port': None}}, {},
     'zd-vm1: ansible_port is not set: give every host of group vms the port forwarded to its SSH'),
    ('ansible_port out of range', {'zd_vm2': {'ansible_port': 70000}}, {},
     'zd-vm2: ansible_port 70000 is not a TCP port: give the port forwarded to its SSH (1-65535)'),
    ('lab_vm_mac missing', {'zd_vm2': {'lab_vm_mac': None}}, {},
     'zd-vm2: lab_vm_mac is not set: give every host of group vms a MAC of its own in the inventory'),
    ('built kernel without image', {}, {'lab_kernels': {'zd': {'config': '/c'}}},
     'lab_kernels.zd has no image (the kernel_build artifacts of mode zd): build the kernel again'),
    ('vm_image without initrd', {}, {'vm_image': dict(VM_IMAGE, initrd='')},
     'zd-vm1 (mode baseline, no built kernel in lab_kernels): vm_image has no initrd: run the '
     'zerodrop.testbed.vm_image role first'),
    ('vm_image without base_image', {}, {'vm_image': {'kernel': '/k', 'initrd': '/i', 'append': ''}},
     'vm_image has no base_image or append: run the zerodrop.testbed.vm_image role first'),
    ('calibrated tbf without a rate', {}, {'shapers': {'it-zd-vm1': [
        {'kind': 'tbf', 'parent': 'root', 'options': {'rate': '1gbit'}}]}},
     "shapers: the tbf of a device has no rate in bytes/s ('1gbit'): pass "
     "zerodrop.testbed.tc_qdisc_info's devices"),
]


@pytest.mark.parametrize('host_changes, changes, message', [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_error(host_changes, changes, message):
    if isinstance(host_changes, dict):
        host_vars = hosts(**host_changes)
    else:
        host_vars = host_changes
    variables = given(**changes)
    for name, value in changes.items():
        if value is None:
            variables.pop(name)
    with pytest.raises(ValueError) as raised:
        lab_vms.build(host_vars, variables)
    assert message in str(raised.value)


def test_every_error_of_the_guests_is_listed_at_once():
    with pytest.raises(ValueError) as raised:
        build(hosts(zd_vm1={'lab_vm_mac': None}, zd_vm2={'ansible_port': 'ssh'}))
    assert str(raised.value) == (
        'zd-vm1: lab_vm_mac is not set: give every host of group vms a MAC of its own in the '
        "inventory; zd-vm2: ansible_port 'ssh' is not a TCP port: give the port forwarded to its "
        'SSH (1-65535)')


def test_bad_open_rate_is_no_error_at_a_fixed_rate():
    assert rates(build(lab_bottleneck_rate='30mbit', lab_calibration_open_rate='open'))['zd-vm1'] == '30mbit'


def test_filter_error_names_the_filter():
    with pytest.raises(AnsibleFilterError, match='^lab_vms: lab_modes must be a list'):
        lab_filter.vms(hosts(), **given(lab_modes='zd'))
