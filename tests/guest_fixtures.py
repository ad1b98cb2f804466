"""Session fixtures for tests that need a real Debian guest (QEMU TCG, built by the vm_image role).

Import them in a conftest (``from guest_fixtures import guest_image, debian_guest``). The image is
built once and cached on disk by the role itself; the guest is booted once per session and is
booted again on use if a test stopped it (lib.guest.stop_all keeps one guest at a time).
"""

import os

import pytest

from lib.guest import Guest, build_image, qemu_available


def _skip_unless_possible():
    if os.geteuid() != 0:
        pytest.skip('building the guest image needs root (debootstrap)')
    if not qemu_available():
        pytest.skip('needs qemu-system-x86_64 and debootstrap')


@pytest.fixture(scope='session')
def guest_image(tmp_path_factory):
    """The vm_image fact of the test image (Debian bookworm with the test package profile)."""
    _skip_unless_possible()
    return build_image(workdir=str(tmp_path_factory.mktemp('vm-image')))


_shared = {}


@pytest.fixture(scope='session')
def debian_guest(guest_image, tmp_path_factory):
    """A booted guest that answers SSH: ``.ssh(cmd)``, ``.inventory()``, ``.port``, ``.key``."""
    # One guest per session even when these fixtures are imported by several modules.
    guest = _shared.get('guest')
    if guest is None:
        guest = _shared['guest'] = Guest(guest_image, str(tmp_path_factory.mktemp('guest')))
    try:
        guest.ensure()
    except Exception:
        guest.stop()
        raise
    yield guest
    guest.stop()


@pytest.fixture
def running_guest(debian_guest):
    """The session guest, booted again first if a previous test stopped it."""
    return debian_guest.ensure()
