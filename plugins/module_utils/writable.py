# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks, made before anything is written, that a directory or a file can be written, and
``replace_file``, which replaces a file whole or not at all.

Each check returns an error message naming the field, the path and the fix, or None. ``os.access``
answers for root too: an immutable (``chattr +i``) directory or a read-only mount is refused.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile


def nearest_existing(path):
    """``path`` or its closest ancestor that exists."""
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    return existing


def _not_writable(field, path, where):
    return ('%s %s: %s is not writable (read-only, immutable or no permission): give a '
            'writable directory' % (field, path, where))


def directory_problem(field, path):
    """Why the directory ``path`` cannot be created (with its parents) and written into."""
    if os.path.lexists(path) and not os.path.isdir(path):
        return '%s %s is not a directory (a file is there): give a directory path' % (field, path)
    existing = nearest_existing(path)
    if not os.path.isdir(existing):
        return ('%s %s: %s is not a directory (a file is there): give a directory path'
                % (field, path, existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        return _not_writable(field, path, existing)
    return None


def file_problem(field, path, example='result.json'):
    """Why the file ``path`` cannot be written (replaced through a file next to it)."""
    if os.path.isdir(path):
        return ('%s %s is a directory: give the path of the file to write, e.g. %s'
                % (field, path, os.path.join(path, example)))
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(parent) and not os.path.isdir(parent):
        return ('%s %s: %s is not a directory (a file is there): give another path'
                % (field, path, parent))
    if not os.path.isdir(parent):
        return ('%s %s: the directory %s does not exist: create it or give another path'
                % (field, path, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        return _not_writable(field, path, parent)
    if os.path.lexists(path) and not os.access(path, os.W_OK):
        return ('%s %s is not writable (read-only, immutable or no permission): give another '
                'path' % (field, path))
    return None


def replace_file(path, content):
    """Write ``content`` to ``path`` through a file next to it, renamed over it; the file keeps
    its mode (a new one gets the umask's)."""
    if os.path.exists(path):
        mode = os.stat(path).st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path),
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
