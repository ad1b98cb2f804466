"""Apply the seeds' tbf tree to many devices, then re-apply it: tc_qdisc vs the command loop.

Baseline "command loop": what labs write today, two `ansible.builtin.command: tc qdisc replace`
tasks (root tbf, child) looped over the devices; it reports every task changed on every run.
Candidate: one zerodrop.testbed.tc_qdisc task (the whole tree, one tc -batch) looped over the
devices. Both run on N veth devices in a namespace made (and deleted) here, with a bfifo child
(this host has no red). Prints wall times, changed counts and candidate/baseline ratios.

Usage (root): bench/tc_trees.py [--devices 64]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

TBF = 'rate 100mbit burst 15000 latency 10us'
CHILD = 'bfifo limit 100000'

MODULE_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Tree per device
      zerodrop.testbed.tc_qdisc:
        netns: "{{ ns }}"
        device: "{{ item }}"
        tree:
          - {handle: "1:", kind: tbf, options: {rate: 100mbit, burst: 15000, latency: 10us}}
          - {parent: "1:1", handle: "10:", kind: bfifo, options: {limit: 100000}}
      loop: "{{ devices }}"
"""

COMMAND_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Root tbf per device
      ansible.builtin.command:
        cmd: "ip netns exec {{ ns }} tc qdisc replace dev {{ item }} root handle 1: tbf %s"
      loop: "{{ devices }}"
      changed_when: true
    - name: Child per device
      ansible.builtin.command:
        cmd: "ip netns exec {{ ns }} tc qdisc replace dev {{ item }} parent 1:1 handle 10: %s"
      loop: "{{ devices }}"
      changed_when: true
""" % (TBF, CHILD)


def run_play(text, extra):
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as f:
        f.write(text)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_STDOUT_CALLBACK='ansible.posix.json',
               PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    argv = [os.path.join(BIN, 'ansible-playbook'), f.name, '-i',
            os.path.join(ROOT, 'tests', 'inventory', 'localhost.yml'), '-e', json.dumps(extra)]
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - start
    os.unlink(f.name)
    if proc.returncode != 0:
        sys.exit('playbook failed:\n%s\n%s' % (proc.stdout[-3000:], proc.stderr[-3000:]))
    data = json.loads(proc.stdout[proc.stdout.index('{'):])
    changed = sum(1 for play in data['plays'] for task in play['tasks']
                  for host in task['hosts'].values()
                  for item in host.get('results', [host]) if item.get('changed'))
    return elapsed, changed


def ip(*args):
    subprocess.run(['ip'] + list(args), check=True, capture_output=True)


def reset(ns, devices):
    lines = ''.join('qdisc del dev %s root\n' % d for d in devices)
    subprocess.run(['ip', 'netns', 'exec', ns, 'tc', '-force', '-batch', '-'], input=lines,
                   text=True, capture_output=True, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--devices', type=int, default=64)
    args = parser.parse_args()
    ns = 'zdbench-%s' % uuid.uuid4().hex[:6]
    devices = ['b%d' % i for i in range(args.devices)]
    ip('netns', 'add', ns)
    try:
        batch = ''.join('link add %s type veth peer name p%s\nlink set %s up\n' % (d, d[1:], d)
                        for d in devices)
        subprocess.run(['ip', '-n', ns, '-batch', '-'], input=batch, text=True, check=True)
        extra = {'ns': ns, 'devices': devices}
        rows = {}
        for name, play in (('command loop (baseline)', COMMAND_PLAY), ('tc_qdisc loop', MODULE_PLAY)):
            reset(ns, devices)
            rows[name] = (run_play(play, extra), run_play(play, extra))
        print('%d devices, tbf %s + %s child' % (args.devices, TBF, CHILD))
        print('%-26s %12s %9s %12s %9s' % ('', 'apply s', 'changed', 're-apply s', 'changed'))
        for name, ((t1, c1), (t2, c2)) in rows.items():
            print('%-26s %12.1f %9d %12.1f %9d' % (name, t1, c1, t2, c2))
        b1, b2 = (run[0] for run in rows['command loop (baseline)'])
        m1, m2 = (run[0] for run in rows['tc_qdisc loop'])
        print('ratio tc_qdisc/baseline: apply %.2f, re-apply %.2f (below 1 is faster)'
              % (m1 / b1, m2 / b2))
    finally:
        ip('netns', 'del', ns)


if __name__ == '__main__':
    main()
