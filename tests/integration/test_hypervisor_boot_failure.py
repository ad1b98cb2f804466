"""A guest whose kernel panics at boot: the hypervisor role says so from its serial log.

zD's vm-tbf kernel can panic during boot (roles/kernel_build/README.md); the lab then waited for an
SSH banner until hypervisor_ssh_timeout and failed with a bare timeout. Booted here: the test
image's own kernel without its disk and initrd, which panics a few seconds in ("Unable to mount
root fs"), under TCG with user networking only (no bridge, no OVS).
"""

import os

import pytest

from lib.guest import free_port
from lib.hypervisor_role import ROLE_PLAY, TEARDOWN_PLAY, base_vars

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_a_panicked_guest_is_reported_with_its_serial_log(playbook, guest_image, tmp_path):
    name = 'ztpanic%d' % os.getpid()
    variables = dict(base_vars(tmp_path), **{
        'hypervisor_service_manager': 'none',
        'hypervisor_bridges': [],
        'hypervisor_ssh_timeout': 30,
        # A panicked kernel ignores ACPI power-down: no need to wait the default minute for it.
        'hypervisor_vm_stop_timeout': 5,
        'hypervisor_vms': [{'name': name, 'memory': 256, 'kernel': guest_image['kernel'],
                            'append': 'console=ttyS0 root=/dev/vda panic=0',
                            'user_net': {'ssh_port': free_port()}, 'ssh': {'wait': True}}],
    })
    try:
        run = playbook(ROLE_PLAY, extra_vars=variables)
        assert run.failed, run
        # The wait itself fails first (rescued), then the report.
        assert [f[0] for f in run.failures()] == ["zerodrop.testbed.hypervisor : Wait for each VM's SSH banner",
                                                  'zerodrop.testbed.hypervisor : Report the VMs without SSH'], run
        msg = run.failures()[-1][2]
        serial_log = str(tmp_path / 'log' / (name + '.serial.log'))
        assert 'hypervisor_ssh_timeout=30' in msg
        assert '%s (its kernel panicked, %s)' % (name, serial_log) in msg
        assert 'Unable to mount root fs' in msg
    finally:
        down = playbook(TEARDOWN_PLAY, extra_vars=variables)
    assert down.rc == 0, down
    assert not os.path.exists(str(tmp_path / 'run' / (name + '.pid')))
