"""zerodrop.testbed.netns connection: real playbooks whose hosts are network namespaces."""

import hashlib
import os
import subprocess

import pytest

pytestmark = pytest.mark.root


def _inventory(tmp_path, hosts):
    lines = ['all:', '  hosts:']
    for host, netns in hosts.items():
        lines.append('    %s: {ansible_netns_name: %s}' % (host, netns))
    lines += ['  vars:',
              '    ansible_connection: zerodrop.testbed.netns',
              '    ansible_python_interpreter: "{{ ansible_playbook_python }}"']
    path = tmp_path / 'netns-inventory.yml'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def _host_sysctl(name):
    with open('/proc/sys/' + name.replace('.', '/')) as f:
        return f.read().strip()


def _ns_sysctl(ns, name):
    return subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', name], check=True,
                          capture_output=True, text=True).stdout.strip()


def _links(stdout):
    return sorted(line.split(':')[1].strip().split('@')[0] for line in stdout.splitlines() if line)


@pytest.fixture
def lab(netns, veth, tmp_path):
    """Two namespace hosts; 'one' has a veth pair, 'two' only lo."""
    one, two = netns('zc1'), netns('zc2')
    devs = veth(one)
    inventory = _inventory(tmp_path, {'one': one, 'two': two})
    return {'one': one, 'two': two, 'devs': sorted(devs), 'inventory': inventory}


def test_raw_and_modules_run_inside_the_namespace(playbook, lab, tmp_path):
    run = playbook('''
- hosts: all
  gather_facts: false
  become: true  # the controller's user already: skipped, no sudo needed
  tasks:
    - name: raw plain
      ansible.builtin.raw: ip -o link
    - name: raw chained with semicolon
      ansible.builtin.raw: "true; ip -o link"
    - name: raw chained with and
      ansible.builtin.raw: "true && ip -o link"
    - name: raw piped
      ansible.builtin.raw: "ip -o link | cat"
    - name: command
      ansible.builtin.command: ip -o link
      changed_when: false
    - name: shell with a pipe and a subshell
      ansible.builtin.shell: "(ip -o link; true) | cat"
      changed_when: false
    - name: facts
      ansible.builtin.setup:
        gather_subset: [network]
''', inventory=lab['inventory'])
    assert run.rc == 0, run
    host_links = subprocess.run(['ip', '-o', 'link'], capture_output=True, text=True,
                                check=True).stdout
    expected = {'one': sorted(['lo'] + lab['devs']), 'two': ['lo']}
    for task in ('raw plain', 'raw chained with semicolon', 'raw chained with and', 'raw piped',
                 'command', 'shell with a pipe and a subshell'):
        results = run.results(task)
        assert len(results) == 2
        for host, result in zip(('one', 'two'), results):
            assert _links(result['stdout']) == expected[host], (task, host, result['stdout'])
    assert _links(host_links) != expected['two']
    facts = run.results('facts')
    assert sorted(facts[0]['ansible_facts']['ansible_interfaces']) == expected['one']
    assert facts[1]['ansible_facts']['ansible_interfaces'] == ['lo']


def test_copy_and_fetch(playbook, lab, tmp_path):
    dest = tmp_path / 'copied.txt'
    run = playbook('''
- hosts: one
  gather_facts: false
  tasks:
    - name: copy
      ansible.builtin.copy:
        content: "written through the namespace\\n"
        dest: "{{ dest }}"
        mode: "0644"
    - name: copy again
      ansible.builtin.copy:
        content: "written through the namespace\\n"
        dest: "{{ dest }}"
        mode: "0644"
    - name: template
      ansible.builtin.template:
        src: "{{ template }}"
        dest: "{{ dest }}.j2out"
        mode: "0644"
    - name: fetch
      ansible.builtin.fetch:
        src: "{{ dest }}"
        dest: "{{ fetched }}/"
        flat: true
''', inventory=lab['inventory'], extra_vars={
        'dest': str(dest), 'fetched': str(tmp_path / 'fetched'),
        'template': str(_write(tmp_path / 't.j2', 'ns={{ ansible_netns_name }}\n'))})
    assert run.rc == 0, run
    assert run.result('copy')['changed'] is True
    assert run.result('copy again')['changed'] is False
    assert dest.read_text() == 'written through the namespace\n'
    assert (tmp_path / 'copied.txt.j2out').read_text() == 'ns=%s\n' % lab['one']
    assert (tmp_path / 'fetched' / 'copied.txt').read_text() == dest.read_text()


def _write(path, text):
    path.write_text(text)
    return path


def test_sysctl_changes_the_namespace_not_the_host(playbook, lab, tmp_path):
    conf = tmp_path / 'one.sysctl.conf'
    host_before = _host_sysctl('net.ipv4.ip_forward')
    etc_before = _digest('/etc/sysctl.conf')
    two_before = _ns_sysctl(lab['two'], 'net.ipv4.ip_forward')
    target = '0' if _ns_sysctl(lab['one'], 'net.ipv4.ip_forward') == '1' else '1'
    run = playbook('''
- hosts: one
  gather_facts: false
  tasks:
    - name: sysctl
      ansible.posix.sysctl:
        name: net.ipv4.ip_forward
        value: "{{ target }}"
        sysctl_set: true
        sysctl_file: "{{ conf }}"
    - name: sysctl again
      ansible.posix.sysctl:
        name: net.ipv4.ip_forward
        value: "{{ target }}"
        sysctl_set: true
        sysctl_file: "{{ conf }}"
''', inventory=lab['inventory'], extra_vars={'target': target, 'conf': str(conf)})
    assert run.rc == 0, run
    assert run.result('sysctl')['changed'] is True
    assert run.result('sysctl again')['changed'] is False
    assert _ns_sysctl(lab['one'], 'net.ipv4.ip_forward') == target
    assert _ns_sysctl(lab['two'], 'net.ipv4.ip_forward') == two_before
    assert _host_sysctl('net.ipv4.ip_forward') == host_before
    assert _digest('/etc/sysctl.conf') == etc_before
    assert 'net.ipv4.ip_forward=%s' % target in conf.read_text()


def _digest(path):
    if not os.path.exists(path):
        return None
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_missing_namespace_fails_clearly(playbook, lab, tmp_path):
    inventory = _inventory(tmp_path, {'ghost': 'zc-does-not-exist'})
    run = playbook('''
- hosts: ghost
  gather_facts: false
  tasks:
    - name: raw
      ansible.builtin.raw: "true"
''', inventory=inventory)
    assert run.rc != 0
    result = run.result('raw')
    assert result.get('unreachable') is True
    assert "network namespace 'zc-does-not-exist' does not exist" in result['msg']
    assert lab['one'] in result['msg']  # lists the existing namespaces
