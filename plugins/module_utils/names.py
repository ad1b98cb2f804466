# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks for user strings that become a path component or a device name.

Each check returns an error message naming the field and the fix, or None; modules collect the
messages of all their fields and fail before changing anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# IFNAMSIZ is 16 with the terminating NUL.
DEVICE_MAX = 15
COMPONENT_MAX = 255
COMPONENT_SAFE = re.compile(r'^[A-Za-z0-9._+:=,-]+$')


def path_component(field, value, pattern=COMPONENT_SAFE,
                   allowed='letters, digits and . _ + : = , -'):
    """``value`` as one directory or file name: no ``/``, not ``.`` or ``..``, no leading
    ``-``, at most 255 bytes, only ``allowed`` characters."""
    text = '' if value is None else str(value)
    if not text:
        return '%s is empty: give a name made of %s' % (field, allowed)
    if text in ('.', '..'):
        return ('%s %r would name the directory itself or its parent: give a name made of %s'
                % (field, text, allowed))
    if '/' in text:
        return '%s %r contains "/": give one name, not a path' % (field, text)
    if text.startswith('-'):
        return '%s %r starts with "-" (it would read as an option): rename it' % (field, text)
    size = len(text.encode('utf-8'))
    if size > COMPONENT_MAX:
        return '%s is %d bytes long: a name has at most %d' % (field, size, COMPONENT_MAX)
    if not pattern.match(text):
        return '%s %r: use %s only' % (field, text, allowed)
    return None


def device_name(field, value):
    """``value`` as a network device name: 1-15 characters, no ``/``, whitespace or ``:``,
    not ``.``/``..``, no leading ``-``."""
    text = '' if value is None else str(value)
    if not 1 <= len(text) <= DEVICE_MAX:
        return ('%s %r must be 1-%d characters (the kernel\'s IFNAMSIZ); shorten it'
                % (field, text, DEVICE_MAX))
    if len(text.encode('utf-8')) > DEVICE_MAX:
        return ('%s %r is %d bytes in UTF-8: the kernel takes at most %d (IFNAMSIZ); use ASCII '
                'or shorten it' % (field, text, len(text.encode('utf-8')), DEVICE_MAX))
    if text in ('.', '..') or text.startswith('-'):
        return '%s %r is not a usable device name: rename it' % (field, text)
    bad = sorted(set(c for c in text if c in '/:' or c.isspace()))
    if bad:
        return ('%s %r contains %s, which a device name cannot: use letters, digits, . _ -'
                % (field, text, ' '.join(repr(c) for c in bad)))
    return None


def errors(*messages):
    """The messages that are not None."""
    return [m for m in messages if m]
