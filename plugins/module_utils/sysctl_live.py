# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live sysctls (``sysctl -n`` / ``sysctl -w``, in a network namespace or not), all or none.

``apply`` reads every key first (a key the kernel does not have fails before anything is
written), writes only the values that differ, and when the kernel refuses a value writes the
old values of the keys it already changed back. Values compare as ``text`` makes them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

# A sysctl key as sysctl(8) takes it: dotted (or slashed) names, never an option or a path out of
# /proc/sys.
KEY = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$')


class SysctlError(Exception):
    """A sysctl could not be set. ``left``: keys this call changed and could not restore;
    ``restored``: keys it changed and restored."""

    def __init__(self, msg, left=(), restored=()):
        Exception.__init__(self, msg)
        self.left = list(left)
        self.restored = list(restored)


def text(value):
    """A sysctl value as it is written and read back: true/false as 1/0, a list of numbers
    space-separated, whitespace runs as one space."""
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, (list, tuple)):
        return ' '.join(text(v) for v in value)
    return ' '.join(str(value).split())


def key_problem(field, key):
    """Why ``key`` is not a sysctl key, naming ``field`` and the fix, or None."""
    name = '' if key is None else str(key)
    if not KEY.match(name) or '' in re.split(r'[./]', name):
        return ('%s: %r is not a sysctl key: give a name like net.ipv4.tcp_ecn (letters, digits, '
                '_ - : separated by . or /)' % (field, name))
    return None


def value_problem(field, key, value):
    """Why ``value`` cannot be written to ``key`` (naming ``field``.key and the fix), or None."""
    if value is None or isinstance(value, dict) or (
            isinstance(value, (list, tuple)) and
            any(isinstance(v, (list, tuple, dict)) or v is None for v in value)):
        return ('%s.%s: give a number or a word (or a list of numbers), not %s'
                % (field, key, 'nothing' if value is None else json.dumps(value, default=str)))
    if '\n' in str(value):
        return '%s.%s: a value is one line' % (field, key)
    if text(value) == '':
        return '%s.%s: give a value, not an empty string' % (field, key)
    return None


def read_argv(key):
    return ['sysctl', '-n', key]


def write_argv(key, value):
    return ['sysctl', '-q', '-w', '%s=%s' % (key, text(value))]


def read(runner, key):
    """The value of ``key`` as ``text`` gives it, or None when sysctl cannot read it."""
    result = runner.run(read_argv(key), check_rc=False)
    return text(result.stdout) if result.rc == 0 else None


def read_all(runner, keys):
    return dict((key, read(runner, key)) for key in sorted(keys))


def where(netns):
    return 'network namespace %s' % netns if netns else 'this host'


def differing(current, wanted):
    """``[(key, old, new)]`` of the ``wanted`` values that ``current`` does not have, by key."""
    return [(key, current.get(key), text(value)) for key, value in sorted(wanted.items())
            if current.get(key) != text(value)]


def apply(runner, wanted, field='sysctls'):
    """Set ``wanted`` ({key: value}) with ``runner`` (its namespace), all or none; returns
    ``[(key, old, new)]`` of the keys whose value changed (would change, in check mode).

    Raises SysctlError, naming ``field``, for a key the kernel does not have (nothing written)
    or a value it refuses (the keys written before it restored)."""
    current = read_all(runner, wanted or {})
    unknown = sorted(key for key, value in current.items() if value is None)
    if unknown:
        raise SysctlError('%s: %s is not a sysctl of %s: check the name (sysctl -a lists them)'
                          % (field, ', '.join(unknown), where(runner.netns)))
    changes = differing(current, wanted or {})
    written = []
    for key, old, new in changes:
        result = runner.run(write_argv(key, new), changes=True, check_rc=False)
        if result.rc != 0:
            left = [k for k, o, n in reversed(written)
                    if runner.run(write_argv(k, o), changes=True, check_rc=False).rc != 0]
            restored = [k for k, o, n in written if k not in left]
            raise SysctlError(
                '%s: %s=%s was refused (%s): give a value the kernel accepts%s'
                % (field, key, new, (result.stderr or result.stdout).strip() or 'rc=%d' % result.rc,
                   '; could not restore %s' % ', '.join(left) if left else
                   (' (%s restored)' % ', '.join(restored) if restored else '')),
                left, restored)
        written.append((key, old, new))
    return changes
