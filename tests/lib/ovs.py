"""Private Open vSwitch daemons for tests: own run directory, netdev datapath, no kernel module."""

import json
import os
import subprocess
import time

SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema'
# Columns ovs-vswitchd keeps updating by itself: left out of dumps compared before/after.
VOLATILE = {'statistics', 'status', 'rstp_statistics', 'rstp_status', 'link_resets',
            'link_state', 'admin_state', 'link_speed', 'duplex', 'mtu', 'mac_in_use', 'ifindex',
            'lacp_current'}


class PrivateOVS(object):
    def __init__(self, rundir):
        self.rundir = rundir
        self.db = os.path.join(rundir, 'conf.db')
        self.sock = os.path.join(rundir, 'db.sock')
        self.database = 'unix:' + self.sock

    def _p(self, name):
        return os.path.join(self.rundir, name)

    def start(self):
        os.makedirs(self.rundir, exist_ok=True)
        env = dict(os.environ, OVS_RUNDIR=self.rundir, OVS_LOGDIR=self.rundir,
                   OVS_DBDIR=self.rundir)
        self.env = env
        subprocess.run(['ovsdb-tool', 'create', self.db, SCHEMA], check=True, env=env)
        subprocess.run(['ovsdb-server', self.db, '--remote=punix:' + self.sock,
                        '--pidfile=' + self._p('ovsdb-server.pid'),
                        '--unixctl=' + self._p('ovsdb-server.ctl'),
                        '--log-file=' + self._p('ovsdb-server.log'), '--detach'],
                       check=True, env=env)
        self.vsctl('--no-wait', 'init')
        subprocess.run(['ovs-vswitchd', self.database,
                        '--pidfile=' + self._p('ovs-vswitchd.pid'),
                        '--unixctl=' + self._p('ovs-vswitchd.ctl'),
                        '--log-file=' + self._p('ovs-vswitchd.log'), '--detach'],
                       check=True, env=env)
        for dummy in range(50):
            if os.path.exists(self._p('ovs-vswitchd.ctl')):
                break
            time.sleep(0.1)

    def vsctl(self, *args, check=True):
        return subprocess.run(['ovs-vsctl', '--db=' + self.database] + list(args), check=check,
                              capture_output=True, text=True, timeout=60)

    def dump(self):
        """Every row of Bridge, Port and Interface, all columns but the volatile ones."""
        state = {}
        for table in ('Bridge', 'Port', 'Interface'):
            doc = json.loads(self.vsctl('--format=json', 'list', table).stdout)
            rows = [dict((h, v) for h, v in zip(doc['headings'], row) if h not in VOLATILE)
                    for row in doc['data']]
            state[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
        return state

    def stop(self):
        # Bridges first, so that netdev ports (taps) vswitchd created in the kernel go away too.
        out = self.vsctl('list-br', check=False).stdout.split()
        for br in out:
            self.vsctl('--if-exists', 'del-br', br, check=False)
        for daemon in ('ovs-vswitchd', 'ovsdb-server'):
            # --cleanup also deletes the datapath's own device (ovs-netdev), which a second
            # netdev-datapath vswitchd in this namespace would otherwise collide with.
            subprocess.run(['ovs-appctl', '-t', self._p(daemon + '.ctl'), 'exit']
                           + (['--cleanup'] if daemon == 'ovs-vswitchd' else []),
                           capture_output=True, timeout=30, check=False)
