"""module_utils/hypervisor_model.py and the filter zerodrop.testbed.hypervisor_model: the
hypervisor role's model for typical inputs, its defaults (read from the role's argument spec),
and every validation error, case by case."""

import copy
import glob
import json
import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.zerodrop.testbed.plugins.filter import hypervisor_model as model_filter
from ansible_collections.zerodrop.testbed.plugins.module_utils import hypervisor_model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ROLE = os.path.join(ROOT, 'roles', 'hypervisor')
with open(os.path.join(ROLE, 'meta', 'argument_specs.yml')) as spec_file:
    OPTIONS = yaml.safe_load(spec_file)['argument_specs']['main']['options']
with open(os.path.join(ROLE, 'defaults', 'main.yml')) as defaults_file:
    ROLE_DEFAULTS = yaml.safe_load(defaults_file)
RECORDED = sorted(glob.glob(os.path.join(HERE, 'fixtures', 'hypervisor_model', '*.json')))

MAC = '52:54:00:12:34:57'
BRIDGES = [{'name': 'br0'}]


def nic(**changes):
    value = {'bridge': 'br0', 'mac': MAC}
    value.update(changes)
    return value


def vm(name='vm1', **changes):
    value = {'name': name, 'kernel': '/k', 'nics': [nic()]}
    value.update(changes)
    return value


def build(vms, bridges=None, options=None, **settings):
    return hypervisor_model.build(vms, BRIDGES if bridges is None else bridges,
                                  OPTIONS if options is None else options, settings)


def errors(vms, bridges=None, **settings):
    return build(vms, bridges, **settings)['errors']


# --- the model -------------------------------------------------------------------------------

@pytest.mark.parametrize('path', RECORDED, ids=[os.path.basename(p)[:-5] for p in RECORDED])
def test_model_is_what_the_jinja_template_made(path):
    """The inputs of the local lab, molecule, both inventories and an every-option case give
    the model recorded from model.json.j2 (the template this module replaced), plus nics_ingress:
    what the role's vars/main.yml derived from it (the shaped NICs of every VM, in order)."""
    with open(path) as f:
        recorded = json.load(f)
    model = build(recorded['vms'], recorded['bridges'], **recorded['settings'])
    assert model.pop('nics_ingress') == [nic for vm in recorded['model']['vms'] for nic in vm['nics']
                                         if nic['ingress']]
    assert model == recorded['model']


def test_typical_vm_model():
    model = build([{'name': 'zmhv-vm0', 'memory': 768, 'kernel': '/img/vmlinuz', 'initrd': '/img/initrd',
                    'append': 'console=ttyS0',
                    'disks': [{'path': '/d/vm0.qcow2', 'backing_file': '/img/base.qcow2',
                               'backing_format': 'qcow2'}],
                    'user_net': {'ssh_port': 22931},
                    'nics': [{'bridge': 'br0', 'mac': '52:54:00:93:00:02', 'tap': 'zmhv-tap0',
                              'qdisc': [{'parent': 'root', 'kind': 'pfifo'}]}]}],
                  hypervisor_rundir='/run/vms', hypervisor_logdir='/log', hypervisor_ssh_key='/key')
    assert model == {
        'errors': [],
        'nics_ingress': [],
        'bridges': [{'name': 'br0', 'type': 'ovs', 'addresses': [], 'routes': [], 'uplink': None,
                     'fail_mode': None, 'other_config': {}, 'external_ids': {},
                     'ports': ['zmhv-tap0']}],
        'vms': [{
            'name': 'zmhv-vm0', 'cpus': 1, 'memory': 768, 'machine': 'pc', 'cpu': None,
            'kernel': '/img/vmlinuz', 'initrd': '/img/initrd', 'append': 'console=ttyS0',
            'disks': [{'path': '/d/vm0.qcow2', 'format': 'qcow2', 'interface': 'virtio',
                       'cache': 'writeback', 'snapshot': False, 'backing_file': '/img/base.qcow2',
                       'backing_format': 'qcow2', 'size': None}],
            'snapshot': False, 'rng': True,
            'nics': [{'id': 'net0', 'bridge': 'br0', 'mac': '52:54:00:93:00:02', 'tap': 'zmhv-tap0',
                      'model': 'virtio-net-pci', 'vhost': False, 'vnet_hdr': False, 'sndbuf': None,
                      'qdisc': [{'parent': 'root', 'kind': 'pfifo'}], 'ingress': None}],
            'user_net': {'ssh_port': 22931, 'hostfwd': ['tcp:127.0.0.1:22931-:22'], 'mac': None,
                         'model': 'virtio-net-pci'},
            'vnc': None, 'extra_args': [],
            'pidfile': '/run/vms/zmhv-vm0.pid', 'qmp': '/run/vms/zmhv-vm0.qmp',
            'argv_file': '/run/vms/zmhv-vm0.argv.json', 'vnc_secret': '/run/vms/zmhv-vm0.vncpw',
            'serial_log': '/log/zmhv-vm0.serial.log', 'unit': 'zerodrop-vm-zmhv-vm0.service',
            'ssh': {'host': None, 'port': 22931, 'user': 'root', 'key': '/key', 'groups': ['vms'],
                    'wait': True}}]}


def test_derived_names_and_ingress_defaults():
    model = build([vm(nics=[nic(ingress={'rate': '30mbit'}),
                            nic(mac='52:54:00:12:34:58', ingress={'rate': '1gbit', 'ifb': 'ifb7',
                                                                  'burst': '64k', 'limit': 1000})])])
    assert model['errors'] == []
    first, second = model['vms'][0]['nics']
    assert (first['id'], first['tap']) == ('net0', 't-vm1-0')
    assert first['ingress'] == {'ifb': 'it-vm1-0', 'rate': '30mbit', 'burst': '32k',
                                'limit': 2000000}
    assert (second['id'], second['tap']) == ('net1', 't-vm1-1')
    assert second['ingress'] == {'ifb': 'ifb7', 'rate': '1gbit', 'burst': '64k', 'limit': 1000}
    assert model['bridges'][0]['ports'] == ['t-vm1-0', 't-vm1-1']


def test_nics_ingress_are_the_shaped_nics_of_every_vm_in_order():
    model = build([vm('a', nics=[nic(), nic(mac='52:54:00:12:34:58', ingress={'rate': '30mbit'})]),
                   vm('b', nics=[nic(mac='52:54:00:12:34:59', tap='tb', ingress={'rate': '1gbit'})]),
                   vm('c', nics=[nic(mac='52:54:00:12:34:5a')])])
    assert model['errors'] == []
    assert [(n['tap'], n['ingress']['ifb'], n['ingress']['rate']) for n in model['nics_ingress']] == [
        ('t-a-1', 'it-a-1', '30mbit'), ('tb', 'itb', '1gbit')]
    assert model['nics_ingress'][0] == model['vms'][0]['nics'][1]


def test_mac_is_lower_cased_and_numbers_given_as_text_are_numbers():
    model = build([vm(cpus='2', memory='2048', nics=[nic(mac='52:54:00:AB:CD:EF')])])
    assert model['errors'] == []
    assert (model['vms'][0]['cpus'], model['vms'][0]['memory']) == (2, 2048)
    assert model['vms'][0]['nics'][0]['mac'] == '52:54:00:ab:cd:ef'


def test_user_net_enabled_and_ssh_defaults():
    model = build([vm('a', user_net={}), vm('b', user_net={'enabled': True}, nics=[]),
                   vm('c', user_net={'ssh_port': 2230, 'enabled': False}, nics=[],
                      ssh={'user': 'u', 'groups': ['g'], 'wait': 'no'})],
                  hypervisor_ssh_user='ops', hypervisor_vm_groups=['lab'], hypervisor_wait_ssh=True)
    a, b, c = model['vms']
    assert model['errors'] == []
    assert a['user_net'] is None and a['ssh']['port'] == 22
    assert b['user_net'] == {'ssh_port': None, 'hostfwd': [], 'mac': None, 'model': 'virtio-net-pci'}
    assert (b['ssh']['user'], b['ssh']['groups'], b['ssh']['wait']) == ('ops', ['lab'], True)
    assert c['user_net'] is None
    assert c['ssh'] == {'host': None, 'port': 2230, 'user': 'u', 'key': '', 'groups': ['g'],
                        'wait': False}


def test_vnc_password_stays_out_of_the_model():
    model = build([vm(vnc={'display': 3, 'password': 'hunter2'})])
    assert model['errors'] == []
    assert model['vms'][0]['vnc'] == {'display': 3}
    assert 'hunter2' not in json.dumps(model)


def test_defaults_are_read_from_the_argument_spec():
    options = copy.deepcopy(OPTIONS)
    vm_options = options['hypervisor_vms']['options']
    vm_options['memory']['default'] = 333
    vm_options['nics']['options']['ingress']['options']['burst']['default'] = '99k'
    vm_options['disks']['options']['cache']['default'] = 'none'
    options['hypervisor_bridges']['options']['type']['default'] = 'linux'
    options['hypervisor_rundir']['default'] = '/elsewhere'
    model = build([vm(disks=['/d.img'], nics=[nic(ingress={'rate': '1mbit'})])], options=options)
    assert model['errors'] == []
    assert model['vms'][0]['memory'] == 333
    assert model['vms'][0]['nics'][0]['ingress']['burst'] == '99k'
    assert model['vms'][0]['disks'][0]['cache'] == 'none'
    assert model['bridges'][0]['type'] == 'linux'
    assert model['vms'][0]['pidfile'] == '/elsewhere/vm1.pid'


def test_role_defaults_and_argument_spec_state_the_same_values():
    stated = dict((name, option['default']) for name, option in OPTIONS.items()
                  if 'default' in option)
    assert sorted(stated) == sorted(ROLE_DEFAULTS)
    assert stated == ROLE_DEFAULTS


def test_filter_reads_the_role_spec_and_takes_role_variables():
    vms = [vm(nics=[nic(ingress={'rate': '30mbit'})])]
    assert (model_filter.model(vms, BRIDGES, hypervisor_rundir='/r')
            == hypervisor_model.build(vms, BRIDGES, OPTIONS, {'hypervisor_rundir': '/r'}))
    assert model_filter.model([], None) == {'vms': [], 'bridges': [], 'errors': [],
                                            'nics_ingress': []}


def test_filter_refuses_an_unknown_setting():
    with pytest.raises(AnsibleFilterError, match='unknown settings hypervisor_rundri'):
        model_filter.model([], [], hypervisor_rundri='/r')


# --- every error -----------------------------------------------------------------------------

LONG = 'averyveryverylongname'
W = 'hypervisor_vms[0] (vm1): '
ERRORS = [
    # bridges
    ('bridge-name-too-long', [vm(nics=[])], [{'name': 'a-very-long-bridge'}],
     ["hypervisor_bridges[0] (a-very-long-bridge): name 'a-very-long-bridge' must be 1-15 "
      "characters (the kernel's IFNAMSIZ); shorten it"]),
    ('bridge-name-space', [vm(nics=[])], [{'name': 'br 0'}],
     ["hypervisor_bridges[0] (br 0): name 'br 0' contains ' ', which a device name cannot: use "
      "letters, digits, . _ -"]),
    ('bridge-name-slash', [vm(nics=[])], [{'name': 'br/0'}],
     ["hypervisor_bridges[0] (br/0): name 'br/0' contains '/', which a device name cannot: use "
      "letters, digits, . _ -"]),
    ('bridge-name-comma', [vm(nics=[])], [{'name': 'br,0'}],
     ["hypervisor_bridges[0] (br,0): name 'br,0': use letters, digits and . _ - only, starting "
      "with a letter or digit"]),
    ('bridge-name-dash', [vm(nics=[])], [{'name': '-br'}],
     ["hypervisor_bridges[0] (-br): name '-br' is not a usable device name: rename it"]),
    ('bridge-twice', [vm()], [{'name': 'br0'}, {'name': 'br0', 'type': 'linux'}],
     ['hypervisor_bridges[0] (br0): bridge name is defined more than once; rename one']),
    ('bridge-type', [vm()], [{'name': 'br0', 'type': 'vxlan'}],
     ["hypervisor_bridges[0] (br0): type 'vxlan' must be one of ovs, linux"]),
    ('bridge-uplink', [vm()], [{'name': 'br0', 'uplink': 'eth 1'}],
     ["hypervisor_bridges[0] (br0): uplink 'eth 1' contains ' ', which a device name cannot: use "
      "letters, digits, . _ -"]),
    ('bridge-not-a-dict', [vm(nics=[])], ['br0'],
     ["hypervisor_bridges[0] (None): a bridge is a dict {name, type, addresses, ...}, got 'br0'"]),
    ('bridge-unknown-key', [vm()], [{'name': 'br0', 'ports': ['x']}],
     ["hypervisor_bridges[0] (br0): unknown key 'ports'; known: addresses, external_ids, "
      "fail_mode, name, other_config, routes, type, uplink"]),
    # VM names
    ('vm-name-missing', [{'kernel': '/k'}], None,
     ['hypervisor_vms[0] (?): name is required and must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$']),
    ('vm-name-dot-dot', [vm('..', nics=[])], None,
     ['hypervisor_vms[0] (..): name is required and must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$']),
    ('vm-name-dash', [vm('-x', nics=[])], None,
     ['hypervisor_vms[0] (-x): name is required and must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$']),
    ('vm-name-trailing-newline', [vm('vm1\n', nics=[])], None,
     ['hypervisor_vms[0] (vm1\n): name is required and must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$']),
    ('vm-name-twice', [vm(nics=[nic(tap='ta')]), vm(nics=[nic(mac='52:54:00:12:34:58', tap='tb')])],
     None, [W + 'VM name is used more than once; rename one']),
    ('vm-not-a-dict', ['vm1'], None,
     ["hypervisor_vms[0] (?): a VM is a dict {name, memory, nics, ...}, got 'vm1'"]),
    ('vm-unknown-key', [vm(mem=512)], None,
     [W + "unknown key 'mem'; known: append, cpu, cpus, disks, extra_args, initrd, kernel, "
      "machine, memory, name, nics, rng, snapshot, ssh, user_net, vnc"]),
    ('qmp-socket-path-too-long', [vm()], None,
     [W + 'its QMP socket %s/vm1.qmp is 109 bytes long, a UNIX socket path at most 107: shorten '
      'hypervisor_rundir or the VM name' % ('/' + 'r' * 100)]),
    # numbers
    ('cpus-zero', [vm(cpus=0)], None,
     [W + 'cpus 0 is not a number of virtual CPUs: give a whole number of at least 1']),
    ('cpus-text', [vm(cpus='two')], None,
     [W + "cpus 'two' is not a number of virtual CPUs: give a whole number of at least 1"]),
    ('cpus-boolean', [vm(cpus=True)], None,
     [W + 'cpus True is not a number of virtual CPUs: give a whole number of at least 1']),
    ('memory-negative', [vm(memory=-512)], None,
     [W + 'memory -512 is not a size in MiB: give a whole number of at least 1 (e.g. 1024)']),
    ('memory-fraction', [vm(memory=1.5)], None,
     [W + 'memory 1.5 is not a size in MiB: give a whole number of at least 1 (e.g. 1024)']),
    # boot and disks
    ('no-kernel-no-disk', [vm(kernel=None)], None,
     [W + 'give a kernel (kernel/initrd/append) or at least one disk']),
    ('disk-path-comma', [vm(disks=['/img/a,b.qcow2'])], None,
     [W + 'disks[0].path must not contain a comma (QEMU option syntax)']),
    ('disk-dict-path-comma', [vm(disks=[{'path': '/img/a,file=/etc/shadow'}])], None,
     [W + 'disks[0].path must not contain a comma (QEMU option syntax)']),
    ('disk-path-missing', [vm(disks=[{'format': 'raw'}])], None,
     [W + 'disks[0].path is required: the image file of the disk']),
    ('disk-format-comma', [vm(disks=[{'path': '/d', 'format': 'raw,readonly=on'}])], None,
     [W + "disks[0].format 'raw,readonly=on' must not contain a comma (QEMU option syntax)"]),
    ('disk-unknown-key', [vm(disks=[{'path': '/d', 'sise': '1G'}])], None,
     [W + "disks[0]: unknown key 'sise'; known: backing_file, backing_format, cache, format, "
      "interface, path, size, snapshot"]),
    ('snapshot-not-boolean', [vm(snapshot='maybe')], None,
     [W + "snapshot 'maybe' is not a boolean: use true or false"]),
    # NICs
    ('nic-bridge-unknown', [vm(nics=[nic(bridge='nosuchbridge')])], None,
     [W + 'nics[0]: bridge "nosuchbridge" is not in hypervisor_bridges; add it there or fix the '
      'name']),
    ('nic-bridge-missing', [vm(nics=[{'mac': MAC}])], None,
     [W + 'nics[0]: bridge "" is not in hypervisor_bridges; add it there or fix the name']),
    ('mac-short', [vm(nics=[nic(mac='52:54:00:12:34')])], None,
     [W + 'nics[0]: mac "52:54:00:12:34" is not a MAC address like 52:54:00:12:34:57']),
    ('mac-missing', [vm(nics=[{'bridge': 'br0'}])], None,
     [W + 'nics[0]: mac "" is not a MAC address like 52:54:00:12:34:57']),
    ('mac-multicast', [vm(nics=[nic(mac='53:54:00:12:34:01')])], None,
     [W + "nics[0]: mac 53:54:00:12:34:01 is a multicast address; use an even first octet "
      "(52:54:00:... is QEMU's)"]),
    ('mac-broadcast', [vm(nics=[nic(mac='FF:FF:FF:FF:FF:FF')])], None,
     [W + "nics[0]: mac ff:ff:ff:ff:ff:ff is a multicast address; use an even first octet "
      "(52:54:00:... is QEMU's)"]),
    ('mac-null', [vm(nics=[nic(mac='00:00:00:00:00:00')])], None,
     [W + 'nics[0]: mac 00:00:00:00:00:00 is the null address, which no NIC may have; use a '
      'unicast address like 52:54:00:12:34:57']),
    ('tap-too-long', [vm(nics=[nic(tap='a-very-long-tap-name')])], None,
     [W + "nics[0].tap 'a-very-long-tap-name' must be 1-15 characters (the kernel's IFNAMSIZ); "
      "shorten it"]),
    ('tap-qemu-option', [vm(nics=[nic(tap='t,vhost=on')])], None,
     [W + "nics[0].tap 't,vhost=on': use letters, digits and . _ - only, starting with a letter "
      "or digit"]),
    ('tap-colon', [vm(nics=[nic(tap='t:1')])], None,
     [W + "nics[0].tap 't:1' contains ':', which a device name cannot: use letters, digits, . _ -"]),
    ('tap-default-too-long', [vm(LONG)], None,
     ["hypervisor_vms[0] (%s): nics[0].tap is not set and its default (t-VM-INDEX) "
      "'t-%s-0' is no device name (1-15 characters: letters, digits and . _ -): set nics[0].tap"
      % (LONG, LONG)]),
    ('nic-not-a-dict', [vm(nics=['br0'])], None,
     [W + "nics[0]: a NIC is a dict {bridge, mac, tap, ...}, got 'br0'",
      W + 'nics[0]: bridge "" is not in hypervisor_bridges; add it there or fix the name',
      W + 'nics[0]: mac "" is not a MAC address like 52:54:00:12:34:57']),
    ('nic-unknown-key', [vm(nics=[nic(ifname='x')])], None,
     [W + "nics[0]: unknown key 'ifname'; known: bridge, ingress, mac, model, qdisc, sndbuf, tap, "
      "vhost, vnet_hdr"]),
    ('vhost-not-boolean', [vm(nics=[nic(vhost='sometimes')])], None,
     [W + "nics[0]: vhost 'sometimes' is not a boolean: use true or false"]),
    ('sndbuf-zero', [vm(nics=[nic(sndbuf=0)])], None,
     [W + 'nics[0]: sndbuf 0 is not a buffer size in bytes: give a whole number of at least 1']),
    # ingress
    ('ifb-too-long', [vm(nics=[nic(ingress={'rate': '1mbit', 'ifb': 'ifb-much-too-long'})])], None,
     [W + "nics[0].ingress.ifb 'ifb-much-too-long' must be 1-15 characters (the kernel's "
      "IFNAMSIZ); shorten it"]),
    ('ifb-default-too-long', [vm(nics=[nic(tap='fifteen-chars-1', ingress={'rate': '1mbit'})])],
     None,
     [W + "nics[0].ingress.ifb is not set and its default (i + the tap name) 'ififteen-chars-1' "
      "is no device name (1-15 characters: letters, digits and . _ -): set nics[0].ingress.ifb"]),
    ('ingress-rate-missing', [vm(nics=[nic(ingress={'burst': '32k'})])], None,
     [W + 'nics[0]: ingress.rate is required (e.g. 30mbit)']),
    ('ingress-rate-not-a-rate', [vm(nics=[nic(ingress={'rate': 'fast'})])], None,
     [W + "nics[0]: ingress.rate: 'fast' is not a rate; give a rate like 30mbit"]),
    ('ingress-rate-unit', [vm(nics=[nic(ingress={'rate': '30mbits'})])], None,
     [W + "nics[0]: ingress.rate: '30mbits' is not a rate: unknown unit 'mbits' (tc knows: bit, "
      "bps, gbit, gbps, gibit, gibps, kbit, kbps, kibit, kibps, mbit, mbps, mibit, mibps, tbit, "
      "tbps, tibit, tibps); give a rate like 30mbit"]),
    ('ingress-burst', [vm(nics=[nic(ingress={'rate': '1mbit', 'burst': 'lots'})])], None,
     [W + "nics[0]: ingress.burst: 'lots' is not a size; give a size like 32k"]),
    ('ingress-limit', [vm(nics=[nic(ingress={'rate': '1mbit', 'limit': -1})])], None,
     [W + 'nics[0]: ingress.limit -1 is not a queue limit in bytes: give a whole number of at '
      'least 1']),
    ('ingress-not-a-dict', [vm(nics=[nic(ingress='30mbit')])], None,
     [W + "nics[0]: ingress must be a dict {rate, burst, limit, ifb}, got '30mbit'",
      W + 'nics[0]: ingress.rate is required (e.g. 30mbit)']),
    ('ingress-unknown-key', [vm(nics=[nic(ingress={'rate': '1mbit', 'ceil': '2mbit'})])], None,
     [W + "nics[0]: ingress: unknown key 'ceil'; known: burst, ifb, limit, rate"]),
    # user_net
    ('user-net-mac', [vm(user_net={'mac': '52:54:00'})], None,
     [W + 'user_net.mac "52:54:00" is not a MAC address like 52:54:00:12:34:57']),
    ('user-net-mac-multicast', [vm(user_net={'mac': '01:00:5e:00:00:01'})], None,
     [W + "user_net.mac 01:00:5e:00:00:01 is a multicast address; use an even first octet "
      "(52:54:00:... is QEMU's)"]),
    ('user-net-mac-null', [vm(user_net={'mac': '00:00:00:00:00:00'})], None,
     [W + 'user_net.mac 00:00:00:00:00:00 is the null address, which no NIC may have; use a '
      'unicast address like 52:54:00:12:34:57']),
    ('ssh-port-too-big', [vm(user_net={'ssh_port': 70000})], None,
     [W + 'user_net.ssh_port 70000 is not a TCP port: give a number from 1 to 65535']),
    ('ssh-port-negative', [vm(user_net={'ssh_port': -22})], None,
     [W + 'user_net.ssh_port -22 is not a TCP port: give a number from 1 to 65535']),
    ('ssh-port-text', [vm(user_net={'ssh_port': 'ssh'})], None,
     [W + "user_net.ssh_port 'ssh' is not a TCP port: give a number from 1 to 65535"]),
    ('user-net-not-a-dict', [vm(user_net='on')], None,
     [W + "user_net must be a dict {ssh_port, hostfwd, mac, model}, got 'on'"]),
    ('ssh-not-a-dict', [vm(ssh='root@10.0.0.1')], None,
     [W + "ssh must be a dict {host, port, user, key, groups, wait}, got 'root@10.0.0.1'"]),
    ('ssh-unknown-key', [vm(ssh={'hostname': 'x'})], None,
     [W + "ssh: unknown key 'hostname'; known: groups, host, key, port, user, wait"]),
    # vnc
    ('vnc-password-missing', [vm(vnc={'display': 1})], None,
     [W + 'vnc.password is required, 1-8 characters (VNC limit)']),
    ('vnc-password-empty', [vm(vnc={'password': ''})], None,
     [W + 'vnc.password is required, 1-8 characters (VNC limit)']),
    ('vnc-password-too-long', [vm(vnc={'password': '123456789'})], None,
     [W + 'vnc.password is required, 1-8 characters (VNC limit)']),
    ('vnc-display-negative', [vm(vnc={'password': 'pw', 'display': -1})], None,
     [W + 'vnc.display -1 is not a display number: give a whole number from 0 to 59635 (the port '
      'is 5900 + display)']),
    ('vnc-display-too-big', [vm(vnc={'password': 'pw', 'display': 60000})], None,
     [W + 'vnc.display 60000 is not a display number: give a whole number from 0 to 59635 (the '
      'port is 5900 + display)']),
    ('vnc-unknown-key', [vm(vnc={'password': 'pw', 'port': 5901})], None,
     [W + "vnc: unknown key 'port'; known: display, password"]),
    # what must be unique across VMs
    ('mac-twice', [vm('server1', nics=[nic(tap='tap0')]), vm('lb', nics=[nic(tap='tap1')])], None,
     ['MAC 52:54:00:12:34:57 is used by more than one NIC: server1 nics[0], lb nics[0]. Give every '
      'NIC its own MAC or ARP breaks']),
    ('mac-twice-with-user-net', [vm(user_net={'mac': MAC.upper()})], None,
     ['MAC 52:54:00:12:34:57 is used by more than one NIC: vm1 nics[0], vm1 user_net. Give every '
      'NIC its own MAC or ARP breaks']),
    ('tap-twice', [vm('a', nics=[nic(tap='tap0')]),
                   vm('b', nics=[nic(tap='tap0', mac='52:54:00:12:34:58')])], None,
     ['device name tap0 is used more than once: a nics[0].tap, b nics[0].tap. Set distinct '
      'nics[].tap / ingress.ifb names']),
    ('tap-is-an-ifb', [vm(nics=[nic(tap='tap0', ingress={'rate': '1mbit', 'ifb': 'tap0'})])], None,
     ['device name tap0 is used more than once: vm1 nics[0].tap, vm1 nics[0].ingress.ifb. Set '
      'distinct nics[].tap / ingress.ifb names']),
    ('tap-is-a-bridge', [vm(nics=[nic(tap='br0')])], None,
     ['device name br0 is used more than once: vm1 nics[0].tap, a bridge. Set distinct nics[].tap '
      '/ ingress.ifb names']),
    ('ssh-port-twice', [vm('a', nics=[], user_net={'ssh_port': 2222}),
                        vm('b', nics=[], user_net={'ssh_port': '2222'})], None,
     ['user_net.ssh_port 2222 is used by a, b; give each VM its own port']),
    ('vnc-display-twice', [vm('a', nics=[], vnc={'password': 'x'}),
                           vm('b', nics=[], vnc={'password': 'y', 'display': 0})], None,
     ['vnc.display 0 is used by a, b; give each VM its own display']),
    # the lists themselves
    ('vms-not-a-list', {'name': 'vm1'}, None,
     ["hypervisor_vms must be a list of VMs, got {'name': 'vm1'}"]),
    ('bridges-not-a-list', [], 'br0', ["hypervisor_bridges must be a list of bridges, got 'br0'"]),
]


@pytest.mark.parametrize('case,vms,bridges,expected', ERRORS, ids=[c[0] for c in ERRORS])
def test_error(case, vms, bridges, expected):
    settings = {'hypervisor_rundir': '/' + 'r' * 100} if case == 'qmp-socket-path-too-long' else {}
    assert errors(vms, bridges, **settings) == expected


def test_every_error_of_one_input_is_listed():
    bad_nic = nic(mac='01:00:00:00:00:00', tap='t x', bridge='nope')
    found = errors([vm('bad', cpus=0, memory=-1, nics=[bad_nic])], [{'name': 'br0'}, {'name': 'br0'}])
    assert found == [
        'hypervisor_bridges[0] (br0): bridge name is defined more than once; rename one',
        'hypervisor_vms[0] (bad): cpus 0 is not a number of virtual CPUs: give a whole number of '
        'at least 1',
        'hypervisor_vms[0] (bad): memory -1 is not a size in MiB: give a whole number of at least '
        '1 (e.g. 1024)',
        'hypervisor_vms[0] (bad): nics[0]: bridge "nope" is not in hypervisor_bridges; add it '
        'there or fix the name',
        "hypervisor_vms[0] (bad): nics[0]: mac 01:00:00:00:00:00 is a multicast address; use an "
        "even first octet (52:54:00:... is QEMU's)",
        "hypervisor_vms[0] (bad): nics[0].tap 't x' contains ' ', which a device name cannot: use "
        "letters, digits, . _ -"]


@pytest.mark.parametrize('name,value,expected', [
    ('hypervisor_rundir', '/run/vms\nExecStartPre=/bin/evil',
     "hypervisor_rundir '/run/vms\\nExecStartPre=/bin/evil' contains '\\n', which a unit file or "
     "script cannot hold: choose another path"),
    ('hypervisor_logdir', '/var/log/a,b',
     "hypervisor_logdir '/var/log/a,b' contains a comma, which splits QEMU options: choose another "
     "path"),
    ('hypervisor_ovs_rundir', '/run/ovs\r', "hypervisor_ovs_rundir '/run/ovs\\r' contains '\\r', "
     "which a unit file or script cannot hold: choose another path"),
    ('hypervisor_unit_dir', '', "hypervisor_unit_dir must be a path, got ''"),
    ('hypervisor_state_file', None, 'hypervisor_state_file must be a path, got None'),
])
def test_role_paths_are_checked(name, value, expected):
    assert errors([], **{name: value}) == [expected]


def test_paths_with_spaces_and_shell_characters_are_accepted():
    """Every place the role writes them quotes them; only what cannot be quoted is refused."""
    model = build([vm()], hypervisor_rundir="/srv/my vms/$(x)'", hypervisor_ovs_rundir='/run/o v s',
                  hypervisor_tap_scripts_dir='/etc/zero drop;true')
    assert model['errors'] == []
    assert model['vms'][0]['pidfile'] == "/srv/my vms/$(x)'/vm1.pid"
