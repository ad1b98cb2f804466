"""Plays and variables that run the hypervisor role on this machine inside a test's tmp_path."""

ROLE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the hypervisor role
      ansible.builtin.include_role:
        name: zerodrop.testbed.hypervisor
"""

TEARDOWN_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Tear down
      ansible.builtin.include_role:
        name: zerodrop.testbed.hypervisor
        tasks_from: teardown.yml
"""


def base_vars(tmp_path):
    """Every file and directory of the role under tmp_path; no packages installed; TCG."""
    return {
        'hypervisor_install_packages': False,
        'hypervisor_state_file': str(tmp_path / 'state.json'),
        'hypervisor_rundir': str(tmp_path / 'run'),
        'hypervisor_logdir': str(tmp_path / 'log'),
        'hypervisor_tap_scripts_dir': str(tmp_path / 'scripts'),
        'hypervisor_helper_dir': str(tmp_path / 'lib'),
        'hypervisor_accel': 'tcg',
    }
