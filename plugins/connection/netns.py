# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
name: netns
short_description: Run tasks inside a network namespace of the controller's machine
version_added: 0.1.0
author:
  - zerodrop.testbed contributors (@zerodrop)
description:
  - Runs every task of a host inside a named network namespace (C(ip netns add NAME)) of the
    machine that runs ansible-playbook, so that a namespace can stand in for a lab machine
    (sender, receiver, router) and be driven like one.
  - Every command runs as C(ip netns exec NAME /bin/sh -c COMMAND). The whole command string is
    run by a shell that is already inside the namespace, so C(ansible.builtin.raw) commands that
    chain with C(;), C(&&), C(||) or pipes never reach the root namespace.
  - Python modules run through the same wrapper, so C(ansible.builtin.command),
    C(ansible.builtin.shell), C(ansible.builtin.copy), C(ansible.builtin.template),
    C(ansible.builtin.fetch), C(ansible.builtin.setup) and C(ansible.posix.sysctl) see the
    namespace's devices, addresses, routes and C(net.*) sysctls.
  - Files are copied through the namespace's view of the file system (C(cat) inside
    C(ip netns exec)), so a file under C(/etc) that C(/etc/netns/NAME/) overrides lands where the
    namespace sees it.
options:
  netns_name:
    description:
      - Name of the network namespace (as C(ip netns list) shows it).
      - Defaults to the host's address (C(ansible_host), else the inventory host name).
    type: str
    vars:
      - name: ansible_netns_name
  remote_addr:
    description: The host's address; the namespace name when O(netns_name) is not set.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  ip_executable:
    description: The C(ip) program (iproute2) that enters the namespace.
    type: str
    default: ip
    vars:
      - name: ansible_netns_ip_executable
  netns_run_dir:
    description: Where iproute2 keeps the named namespaces (its C(NETNS_RUN_DIR)).
    type: path
    default: /run/netns
    vars:
      - name: ansible_netns_run_dir
extends_documentation_fragment:
  - connection_pipelining
notes:
  - Runs as the user that runs ansible-playbook, which must be root (C(ip netns exec) needs
    CAP_SYS_ADMIN). Privilege escalation is not needed; C(become) to that same user is skipped
    (no sudo needed), and become methods that prompt for a password are not supported.
  - C(ip netns exec) also bind-mounts every file of C(/etc/netns/NAME/) over C(/etc) and
    remounts C(/sys) for the namespace; the rest of the file system is the host's.
  - B(Sysctls.) C(net.*) sysctls are per namespace and C(ansible.posix.sysctl) sets them inside
    it, but by default it also writes C(/etc/sysctl.conf), which is the B(host's) file (the host
    would apply the value at its next boot). For a namespace use
    O(ansible.posix.sysctl#module:sysctl_set=true) with a namespace-specific
    O(ansible.posix.sysctl#module:sysctl_file) (e.g. C(/etc/netns/NAME.sysctl.conf)), or
    M(zerodrop.testbed.netns_host) with its C(sysctls) option, which writes no file.
    A file C(/etc/netns/NAME/sysctl.conf) does not help, because the module replaces the file
    by renaming, which a bind mount refuses.
seealso:
  - module: zerodrop.testbed.netns_host
'''

EXAMPLES = r'''
# inventory.yml: two namespaces of the controller as hosts
# all:
#   children:
#     lab_netns:
#       hosts:
#         zd-snd: {}
#         zd-rcv: {ansible_netns_name: receiver}
#       vars:
#         ansible_connection: zerodrop.testbed.netns
#         ansible_python_interpreter: /usr/bin/python3

- name: Receiver side of an experiment, inside its namespace
  hosts: zd-rcv
  gather_facts: false
  tasks:
    - name: Interfaces of the namespace only
      ansible.builtin.command: ip -j addr show
      register: rcv_addrs
      changed_when: false

    - name: Forwarding inside the namespace, recorded in a namespace-specific file
      ansible.posix.sysctl:
        name: net.ipv4.ip_forward
        value: "1"
        sysctl_set: true
        sysctl_file: /etc/netns/receiver.sysctl.conf
'''

import getpass
import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()


class Connection(ConnectionBase):
    """Local execution, wrapped in ``ip netns exec NAME``."""

    transport = 'zerodrop.testbed.netns'
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._netns = None
        # Tasks run as the controller's user; action plugins then skip becoming that same user
        # (become: true as root needs no sudo).
        self.default_user = getpass.getuser()

    @property
    def netns(self):
        if self._netns is None:
            self._netns = self.get_option('netns_name') or self.get_option('remote_addr') or \
                self._play_context.remote_addr
        return self._netns

    def _existing(self):
        try:
            return sorted(os.listdir(self.get_option('netns_run_dir')))
        except OSError:
            return []

    def _connect(self):
        if not self._connected:
            name = self.netns
            if not name or '/' in name or not os.path.exists(
                    os.path.join(self.get_option('netns_run_dir'), name)):
                existing = self._existing()
                raise AnsibleConnectionFailure(
                    "network namespace '%s' does not exist (existing: %s). Create it first "
                    "(ip netns add %s, or zerodrop.testbed.netns_host), or set ansible_netns_name "
                    "to an existing one" % (name, ', '.join(existing) or 'none', name))
            display.vvv(u'ESTABLISH NETNS CONNECTION TO %s' % name, host=name)
            self._connected = True
        return self

    def _wrap(self, argv):
        return [self.get_option('ip_executable'), 'netns', 'exec', self.netns] + list(argv)

    def _shell_argv(self, cmd):
        # /bin/sh -c receives the whole string: separators and pipes are parsed inside the netns.
        return self._wrap(['/bin/sh', '-c', to_text(cmd, errors='surrogate_or_strict')])

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = self._shell_argv(cmd)
        display.vvv(u'EXEC %s' % ' '.join(shlex.quote(a) for a in argv), host=self.netns)
        try:
            proc = subprocess.Popen([to_bytes(a, errors='surrogate_or_strict') for a in argv],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        except OSError as e:
            raise AnsibleConnectionFailure('cannot run %s: %s' % (argv[0], to_native(e)))
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        display.vvv(u'PUT %s TO %s' % (in_path, out_path), host=self.netns)
        if not os.path.exists(to_bytes(in_path, errors='surrogate_or_strict')):
            raise AnsibleFileNotFound('file or module does not exist: %s' % to_native(in_path))
        with open(to_bytes(in_path, errors='surrogate_or_strict'), 'rb') as src:
            proc = subprocess.Popen(self._shell_argv('cat > %s' % shlex.quote(out_path)),
                                    stdin=src, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            stderr = proc.communicate()[1]
        if proc.returncode != 0:
            raise AnsibleError('failed to transfer %s to %s in network namespace %s: %s'
                               % (in_path, out_path, self.netns, to_native(stderr).strip()))

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        display.vvv(u'FETCH %s TO %s' % (in_path, out_path), host=self.netns)
        with open(to_bytes(out_path, errors='surrogate_or_strict'), 'wb') as dest:
            proc = subprocess.Popen(self._shell_argv('cat < %s' % shlex.quote(in_path)),
                                    stdin=subprocess.DEVNULL, stdout=dest, stderr=subprocess.PIPE)
            stderr = proc.communicate()[1]
        if proc.returncode != 0:
            raise AnsibleFileNotFound('failed to fetch %s from network namespace %s: %s'
                                      % (in_path, self.netns, to_native(stderr).strip()))

    def reset(self):
        pass

    def close(self):
        self._connected = False
