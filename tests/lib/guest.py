"""Boot a Debian guest from the vm_image role's output under QEMU TCG, for tests.

``build_image()`` runs the role once per process (the role itself caches the image on disk);
``Guest(image, workdir).start()`` boots it on a private qcow2 overlay with user networking
(host port -> guest 22) and a serial log, ``wait_ssh()`` waits with a deadline and fails with the
serial log tail, ``ssh(cmd)`` runs a command, ``inventory()`` writes an Ansible inventory for it,
``stop()`` quits QEMU through QMP (then kills it).
"""

import json
import os
import shutil
import socket
import subprocess
import time

import yaml

from lib.playbook import ROOT, run_playbook

HERE = os.path.dirname(os.path.abspath(__file__))


def _test_image_vars():
    with open(os.path.join(HERE, 'guest-image.yml')) as f:
        variables = yaml.safe_load(f)
    cache = os.environ.get('ZERODROP_IMAGE_CACHE')
    if cache:
        variables['vm_image_cache_dir'] = cache
        variables['vm_image_ssh_key_path'] = os.path.join(cache, 'test-key', 'id_ed25519')
    return variables


TEST_IMAGE_VARS = _test_image_vars()
BUILD_PLAY = """
- name: Build the test guest image
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Build the image
      ansible.builtin.include_role:
        name: zerodrop.testbed.vm_image
    - name: Report the image
      ansible.builtin.debug:
        var: vm_image
"""
SSH_OPTIONS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
               '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10']

_built = {}
_running = set()


def build_image(extra_vars=None, workdir=None):
    """Run the vm_image role (once per process and set of variables) and return its fact."""
    variables = dict(TEST_IMAGE_VARS, **(extra_vars or {}))
    cache_key = json.dumps(variables, sort_keys=True)
    if cache_key not in _built:
        run = run_playbook(BUILD_PLAY, workdir=workdir, extra_vars=variables, timeout=3600)
        if run.rc != 0:
            raise RuntimeError('vm_image build failed: %r' % run)
        _built[cache_key] = (run.result('Report the image')['vm_image'], run)
    return _built[cache_key][0]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class GuestError(RuntimeError):
    pass


class Guest(object):
    """One QEMU TCG guest booted from a vm_image fact (a dict with base_image, kernel, initrd...).

    ``from_disk`` boots through the disk's own boot loader (an image made with vm_image_boot=grub)
    instead of -kernel/-initrd; a reboot in the guest then goes through GRUB again.
    """

    def __init__(self, image, workdir, memory=1024, cpus=1, drives=(), accel=None, from_disk=False):
        self.image = image
        self.from_disk = from_disk
        self.workdir = workdir
        self.memory = memory
        self.cpus = cpus
        self.drives = list(drives)
        self.accel = accel or os.environ.get('ZERODROP_QEMU_ACCEL', 'tcg,tb-size=256')
        self.port = None
        self.proc = None
        self.overlay = os.path.join(workdir, 'overlay.qcow2')
        self.serial_log = os.path.join(workdir, 'serial.log')
        self.qmp_path = os.path.join(workdir, 'qmp.sock')
        self.key = image['ssh_private_key']

    def argv(self):
        argv = ['qemu-system-x86_64', '-accel', self.accel, '-m', str(self.memory),
                '-smp', str(self.cpus), '-nodefaults', '-display', 'none']
        if not self.from_disk:
            argv += ['-kernel', self.image['kernel'], '-append', self.image['append']]
            if self.image.get('initrd'):
                argv += ['-initrd', self.image['initrd']]
        argv += ['-drive', 'file=%s,if=virtio,format=qcow2,cache=unsafe' % self.overlay,
                 '-netdev', 'user,id=n0,hostfwd=tcp:127.0.0.1:%d-:22' % self.port,
                 '-device', 'virtio-net-pci,netdev=n0',
                 # 4.14 guests wait minutes for entropy before sshd starts without it.
                 '-object', 'rng-random,id=rng0,filename=/dev/urandom',
                 '-device', 'virtio-rng-pci,rng=rng0',
                 '-serial', 'file:%s' % self.serial_log,
                 '-qmp', 'unix:%s,server=on,wait=off' % self.qmp_path]
        for drive in self.drives:
            argv += ['-drive', 'file=%s,if=virtio,format=%s' % (drive['path'], drive.get('format', 'qcow2'))]
        return argv

    def start(self):
        if self.running():
            return self
        os.makedirs(self.workdir, exist_ok=True)
        _running.add(self)
        for path in (self.overlay, self.serial_log, self.qmp_path):
            if os.path.exists(path):
                os.unlink(path)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', self.image['format'],
                        '-b', self.image['base_image'], self.overlay], check=True)
        # A port picked free can be taken before QEMU binds it: try a few. A restarted guest
        # keeps its port so inventories written earlier stay valid.
        for attempt in range(5):
            if self.port is None or attempt > 0:
                self.port = free_port()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                out = self.proc.communicate(timeout=3)[0].decode(errors='replace')
            except subprocess.TimeoutExpired:
                return self
            if 'host forwarding' not in out:
                raise GuestError('qemu exited (%s): %s' % (self.proc.returncode, out))
        raise GuestError('qemu could not bind a host port for SSH')

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def serial_tail(self, lines=40):
        try:
            with open(self.serial_log, errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return '(no serial log)'

    def panicked(self):
        try:
            with open(self.serial_log, 'rb') as f:
                return b'Kernel panic - not syncing' in f.read()
        except OSError:
            return False

    def ssh_argv(self, command):
        return (['ssh', '-p', str(self.port), '-i', self.key] + SSH_OPTIONS
                + ['root@127.0.0.1', command])

    def ssh(self, command, check=True, timeout=300):
        """Run a shell command line in the guest; returns the CompletedProcess."""
        proc = subprocess.run(self.ssh_argv(command), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise GuestError('guest command %r failed (%d): %s%s'
                             % (command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def wait_ssh(self, deadline=900):
        """Wait until SSH runs a command; generous because TCG boots take 25-60 s and more under load."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if not self.running():
                raise GuestError('qemu exited (%s) during boot; serial log:\n%s'
                                 % (self.proc.returncode, self.serial_tail()))
            if self.panicked():
                raise GuestError('the guest kernel panicked during boot; serial log:\n%s'
                                 % self.serial_tail(60))
            try:
                if self.ssh('true', check=False, timeout=30).returncode == 0:
                    return self
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise GuestError('no SSH on 127.0.0.1:%d after %d s; serial log:\n%s'
                         % (self.port, deadline, self.serial_tail()))

    def inventory(self, path=None, name='guest'):
        """Write an Ansible inventory (YAML is JSON) for this guest and return its path."""
        path = path or os.path.join(self.workdir, 'inventory.json')
        host = {
            'ansible_host': '127.0.0.1',
            'ansible_port': self.port,
            'ansible_user': 'root',
            'ansible_ssh_private_key_file': self.key,
            'ansible_python_interpreter': '/usr/bin/python3',
            'ansible_ssh_common_args': ' '.join(SSH_OPTIONS[:6]),
        }
        with open(path, 'w') as f:
            json.dump({'all': {'hosts': {name: host}}}, f, indent=2)
        return path

    def _qmp_quit(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.qmp_path)
            reader = s.makefile('r')
            reader.readline()
            for command in ('qmp_capabilities', 'quit'):
                s.sendall(json.dumps({'execute': command}).encode() + b'\n')
                reader.readline()

    def ensure(self, deadline=900):
        """Boot again if something stopped the guest (see stop_all); returns self once SSH answers."""
        if not self.running():
            self.start().wait_ssh(deadline)
        return self

    def stop(self):
        _running.discard(self)
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self._qmp_quit()
                self.proc.wait(timeout=20)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


def stop_all():
    """Stop every guest this process started (keeps the host to one guest at a time)."""
    for guest in list(_running):
        guest.stop()


def qemu_available():
    return shutil.which('qemu-system-x86_64') is not None and shutil.which('debootstrap') is not None


__all__ = ['Guest', 'GuestError', 'build_image', 'free_port', 'qemu_available', 'stop_all', 'ROOT', 'TEST_IMAGE_VARS']
