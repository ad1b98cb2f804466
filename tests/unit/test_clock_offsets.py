"""Clock offsets of the experiment's hosts: the action of experiment_host_facts reads a host's
clock between two of the controller's and keeps the tightest reading; experiment_plan prefers it
to the clock read inside the module against one window around the whole task."""

import pytest

from ansible_collections.zerodrop.testbed.plugins.action.experiment_host_facts import offset_of
from ansible_collections.zerodrop.testbed.plugins.modules.experiment_plan import clock_offsets


def test_the_tightest_reading_gives_the_offset():
    samples = [(100.0, '98.9\n', 100.4),      # 0.4 s round trip
               (101.0, '99.46\n', 101.1),     # 0.1 s: this one
               (102.0, '100.6\n', 102.2)]
    assert offset_of(samples) == {'offset_s': pytest.approx(-1.59), 'uncertainty_s': pytest.approx(0.05)}


@pytest.mark.parametrize('samples', [[], [(1.0, '1764000000.N\n', 1.1)], [(1.0, '', 1.1)]])
def test_no_usable_reading_gives_none(samples):
    # busybox's date prints a literal N for %N
    assert offset_of(samples) is None


def test_a_measured_offset_replaces_the_windows():
    # the window around an 11.7 s task on TCG guests: every offset within its uncertainty
    window = clock_offsets({'vm1': 1003.15, 'rcv': 1000.2}, 994.15, 1005.85,
                           {'vm1': {'offset_s': -1.583, 'uncertainty_s': 0.041}, 'rcv': None})
    assert window['vm1'] == {'offset_s': -1.583, 'uncertainty_s': 0.041}
    assert window['rcv'] == {'offset_s': pytest.approx(0.2), 'uncertainty_s': pytest.approx(5.85)}
    assert clock_offsets({}, None, None, {'vm1': {'offset_s': 0.5, 'uncertainty_s': 0.1}}) == {
        'vm1': {'offset_s': 0.5, 'uncertainty_s': 0.1}}
