# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No module of the collection ends in a traceback.

Every module's ``main()`` runs its work inside ``Guard``::

    with Guard(module, runner) as guard:
        guard.doing('create the results directory', root)
        os.makedirs(root)

An exception that escapes becomes ``fail_json`` naming the operation, the path and the cause,
with what was changed so far (``commands``, from the runner, and ``guard.made``) and a
``changed`` that tells the truth. The traceback stays available as ``exception`` (shown with
``-vvv``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback


def describe(error):
    """One line for an exception: an OSError names its path and errno text."""
    if isinstance(error, EnvironmentError) and getattr(error, 'strerror', None):
        paths = [p for p in (getattr(error, 'filename', None), getattr(error, 'filename2', None))
                 if p]
        where = ' (%s)' % ' -> '.join(str(p) for p in paths) if paths else ''
        return '%s%s' % (error.strerror, where)
    text = str(error) or error.__class__.__name__
    return '%s: %s' % (error.__class__.__name__, text)


class Guard(object):
    """Context manager turning an unexpected exception into a clean module failure."""

    def __init__(self, module, runner=None):
        self.module = module
        self.runner = runner
        self.operation = 'run %s' % getattr(module, '_name', 'the module')
        self.path = None
        self.made = []

    def doing(self, operation, path=None):
        """Name what happens next (and on which path), for the message if it fails."""
        self.operation = operation
        self.path = path

    def record(self, change):
        """Note a change made without the runner (a file written, a directory made)."""
        self.made.append(change)

    def changes(self):
        done = list(self.runner.changes) if self.runner is not None else []
        return done + list(self.made)

    def __enter__(self):
        return self

    def __exit__(self, etype, error, tb):
        if etype is None or issubclass(etype, (SystemExit, KeyboardInterrupt)):
            return False
        cause = describe(error)
        where = ''
        if self.path and str(self.path) not in cause:
            where = ' %s' % self.path
        changes = self.changes()
        changed = bool(changes) and not self.module.check_mode
        msg = 'could not %s%s: %s' % (self.operation, where, cause)
        if changed:
            msg += ' (changes made before this failure are listed in commands; they stay)'
        self.module.fail_json(msg=msg, changed=changed, commands=changes,
                              exception=''.join(traceback.format_exception(etype, error, tb)))
        return True
