# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One command runner for every module of the collection.

- argv lists only (never a shell string), run with LC_ALL=C so that parsers see stable text;
- optional execution inside a named network namespace (``ip netns exec NS ...``);
- check-mode aware: commands that change state are recorded but not run in check mode;
- failures carry argv, rc, stdout and stderr.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os


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
    """Runs commands for one module invocation.

    ``changes`` records every state-changing command in order (run or, in check mode, planned),
    which modules return as ``commands`` so a user can see and replay what happened.
    """

    def __init__(self, module, netns=None):
        self.module = module
        self.netns = netns
        self.changes = []
        self._bins = {}

    def bin(self, name):
        """Absolute path of a program, or fail the module naming the program and its package."""
        if name not in self._bins:
            self._bins[name] = self.module.get_bin_path(name, required=True)
        return self._bins[name]

    def argv(self, argv):
        argv = list(argv)
        if not os.path.isabs(argv[0]):
            argv[0] = self.bin(argv[0])
        if self.netns:
            return netns_argv(argv, self.netns, self.bin('ip'))
        return argv

    def run(self, argv, changes=False, check_rc=True, data=None):
        """Run ``argv``. ``changes=True`` marks a state-changing command (skipped in check mode).

        Raises CommandError when ``check_rc`` and the command fails.
        """
        full = self.argv(argv)
        if changes:
            self.changes.append(full)
            if self.module.check_mode:
                return CommandResult(full, 0, '', '', skipped=True)
        rc, out, err = self.module.run_command(
            full, check_rc=False, data=data, binary_data=data is not None,
            environ_update={'LC_ALL': 'C', 'LANG': 'C'})
        result = CommandResult(full, rc, out, err)
        if check_rc and rc != 0:
            raise CommandError(result)
        return result

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

    def fail(self, msg, error=None, **kwargs):
        """fail_json with the failing command's details and what was run so far."""
        if error is not None:
            kwargs.update(error.result.as_dict())
        kwargs.setdefault('commands', self.changes)
        self.module.fail_json(msg=msg, **kwargs)
