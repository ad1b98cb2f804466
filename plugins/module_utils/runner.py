# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One command runner for every module of the collection.

- argv lists only (never a shell string), run with LC_ALL=C so that parsers see stable text;
- optional execution inside a named network namespace (``ip netns exec NS ...``) and behind a
  command prefix (``unshare --net --``);
- an environment and a working directory for every command of a runner, or of one command;
- a log file that takes stdout and stderr of a long command (a kernel build) instead of memory;
- long-running processes started and stopped (``start``/``stop``), for tools that run while the
  module (or its detached helper) watches them;
- check-mode aware: commands that change state are recorded but not run in check mode;
- failures carry argv, rc, stdout and stderr.

With an AnsibleModule, short commands go through ``module.run_command`` (its logging, and the
recorded outputs of the module tables). Without one (``Runner(None)``), commands run with
``subprocess``: code in a process that outlives the module (flow_run's detached supervisor, the
sampler's thread) must not call the module, whose ``fail_json`` would print to a closed stdout
and exit the helper.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess

C_LOCALE = {'LC_ALL': 'C', 'LANG': 'C'}


class CommandError(Exception):
    """A command failed. ``result`` is the CommandResult."""

    def __init__(self, result, msg=None):
        self.result = result
        super(CommandError, self).__init__(msg or result.describe())


class CommandResult(object):
    def __init__(self, argv, rc, stdout, stderr, skipped=False):
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.skipped = skipped

    @property
    def ok(self):
        return self.rc == 0

    def describe(self):
        err = (self.stderr or self.stdout or '').strip()
        return "'%s' failed (rc=%s): %s" % (' '.join(self.argv), self.rc, err)

    def as_dict(self):
        return {'cmd': self.argv, 'rc': self.rc, 'stdout': self.stdout, 'stderr': self.stderr}


def netns_argv(argv, netns, ip_bin='ip'):
    """The argv that runs ``argv`` inside network namespace ``netns`` (unchanged when None)."""
    if not netns:
        return list(argv)
    return [ip_bin, 'netns', 'exec', netns] + list(argv)


class Runner(object):
    """Runs commands for one module invocation (or for one helper process: ``module=None``).

    ``changes`` records every state-changing command in order (run or, in check mode, planned),
    which modules return as ``commands`` so a user can see and replay what happened.
    ``env`` and ``cwd`` apply to every command (a command's own ``env``/``cwd`` add to them);
    ``prefix`` goes before every argv, inside the namespace.
    """

    def __init__(self, module, netns=None, env=None, cwd=None, prefix=None, check_mode=None):
        self.module = module
        self.netns = netns
        self.env = dict(env or {})
        self.cwd = cwd
        self.prefix = list(prefix or [])
        if check_mode is None:
            check_mode = bool(module is not None and module.check_mode)
        self.check_mode = check_mode
        self.changes = []
        self._bins = {}

    def bin(self, name):
        """Absolute path of a program, or fail the module naming the program and its package.
        Without a module: the path found in PATH, else the bare name (running it then fails
        with rc 127)."""
        if name not in self._bins:
            if self.module is not None:
                self._bins[name] = self.module.get_bin_path(name, required=True)
            else:
                self._bins[name] = shutil.which(name) or name
        return self._bins[name]

    def _resolved(self, argv):
        argv = list(argv)
        if argv and not os.path.isabs(argv[0]):
            argv[0] = self.bin(argv[0])
        return argv

    def argv(self, argv):
        """The full argv: prefix and namespace added, programs found."""
        full = self._resolved(argv)
        if self.prefix:
            full = self._resolved(self.prefix) + full
        if self.netns:
            return netns_argv(full, self.netns, self.bin('ip'))
        return full

    def _env(self, env):
        merged = dict(C_LOCALE)
        merged.update(self.env)
        merged.update(env or {})
        return merged

    def run(self, argv, changes=False, check_rc=True, data=None, env=None, cwd=None, log=None,
            timeout=None):
        """Run ``argv``. ``changes=True`` marks a state-changing command (skipped in check mode).
        ``log``: a file that gets a ``$ argv`` line and then the command's stdout and stderr
        (the result's are empty). ``timeout`` (seconds) ends a command that hangs: rc -9.

        Raises CommandError when ``check_rc`` and the command fails.
        """
        full = self.argv(argv)
        if changes:
            self.changes.append(full)
            if self.check_mode:
                return CommandResult(full, 0, '', '', skipped=True)
        cwd = cwd or self.cwd
        if self.module is not None and log is None and timeout is None:
            rc, out, err = self.module.run_command(
                full, check_rc=False, data=data, binary_data=data is not None,
                environ_update=self._env(env), cwd=cwd)
        else:
            rc, out, err = self._subprocess(full, data, self._env(env), cwd, log, timeout)
        result = CommandResult(full, rc, out, err)
        if check_rc and rc != 0:
            raise CommandError(result)
        return result

    def _subprocess(self, full, data, env, cwd, log, timeout):
        environ = dict(os.environ)
        environ.update(env)
        try:
            if log is not None:
                with open(log, 'wb') as f:
                    f.write(('$ %s\n' % ' '.join(shlex.quote(a) for a in full)).encode('utf-8'))
                    f.flush()
                    proc = subprocess.run(full, stdout=f, stderr=subprocess.STDOUT, env=environ,
                                          cwd=cwd, stdin=subprocess.DEVNULL, timeout=timeout,
                                          check=False)
                return proc.returncode, '', ''
            proc = subprocess.run(full, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=environ, cwd=cwd, timeout=timeout, check=False,
                                  universal_newlines=True,
                                  stdin=subprocess.DEVNULL if data is None else None)
            return proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as e:
            return -signal.SIGKILL, e.stdout or '', 'timed out after %ss' % timeout
        except OSError as e:
            return 127, '', '%s: %s' % (full[0], e.strerror or e)

    def json(self, argv, check_rc=True):
        """Run a read-only command that prints JSON and return it parsed (None for empty output)."""
        result = self.run(argv, check_rc=check_rc)
        text = result.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as e:
            raise CommandError(result, "'%s' printed no valid JSON (%s): %s"
                               % (' '.join(result.argv), e, text[:200]))

    def start(self, argv, stdout=None, stderr=None, env=None, cwd=None, new_session=False,
              nofile=None, changes=True):
        """Start a long-running ``argv`` and return its ``subprocess.Popen`` (None in check
        mode). ``stdout``/``stderr`` are paths (None: discarded); ``new_session`` puts it in a
        process group of its own (``stop(group=True)`` signals the group); ``nofile`` sets its
        soft RLIMIT_NOFILE. Raises OSError when it cannot be started."""
        full = self.argv(argv)
        if changes:
            self.changes.append(full)
            if self.check_mode:
                return None
        environ = dict(os.environ)
        environ.update(self._env(env))

        def child():
            if new_session:
                os.setsid()
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE,
                                   (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        out = open(stdout, 'w') if stdout else subprocess.DEVNULL
        try:
            err = open(stderr, 'w') if stderr else subprocess.DEVNULL
            try:
                return subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                        env=environ, cwd=cwd or self.cwd, close_fds=True,
                                        preexec_fn=child if new_session or nofile else None)
            finally:
                if stderr:
                    err.close()
        finally:
            if stdout:
                out.close()

    @staticmethod
    def stop(proc, sig=signal.SIGTERM, wait=10.0, group=False):
        """Send ``sig`` to a started process (its group with ``group``), wait up to ``wait`` s,
        then SIGKILL it. Returns its exit code (None: it is still running, ``wait`` was 0)."""
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except OSError:
            pass
        if not wait:
            return proc.poll()
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def fail(self, msg, error=None, **kwargs):
        """fail_json with the failing command's details and what was run so far."""
        if error is not None:
            kwargs.update(error.result.as_dict())
        kwargs.setdefault('commands', self.changes)
        self.module.fail_json(msg=msg, **kwargs)
