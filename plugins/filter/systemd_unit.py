# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Values written into systemd unit files, quoted and escaped as systemd reads them
(systemd.syntax(7), systemd.service(7) "Command lines", systemd.unit(7) "Specifiers").

A word that needs no quoting is written as it is, so that a unit of plain paths reads as by hand.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

PLAIN = re.compile(r'[A-Za-z0-9_@%+=:,./$-]+\Z')
# ExecStart= prefixes (systemd.service(7) table 1): only read before the first word's quote.
EXEC_PREFIXES = '@-:+!|'
C_ESCAPES = {'\\': '\\\\', '"': '\\"', '\n': '\\n', '\t': '\\t', '\r': '\\r'}


def _control(text):
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _word(text):
    """``text`` as one word of a space-separated setting: bare when plain, in single quotes
    when that is enough, else in double quotes with C escapes."""
    if PLAIN.match(text):
        return text
    if "'" not in text and '\\' not in text and not _control(text):
        return "'%s'" % text
    escaped = ''.join(C_ESCAPES.get(c, '\\x%02x' % ord(c) if _control(c) else c) for c in text)
    return '"%s"' % escaped


def _text(value, name):
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise AnsibleFilterError('%s: expected text or a number, got %r' % (name, value))
    return str(value)


def systemd_exec(argv):
    """An ``Exec*=`` command line from ``argv``: every argument arrives at the process as it is
    (``$`` and ``%`` escaped as ``$$`` and ``%%``)."""
    if isinstance(argv, (str, bytes)) or not argv:
        raise AnsibleFilterError('systemd_exec: expected a non-empty list of arguments, got %r'
                                 % (argv,))
    words = [_text(a, 'systemd_exec') for a in argv]
    executable = words[0]
    # systemd refuses these in the executable's name, and expands no variable there.
    if _control(executable) or any(c in executable for c in '"\'\\$'):
        raise AnsibleFilterError('systemd_exec: the executable %r contains a quote, a backslash, a '
                                 '$ or a control character, which systemd refuses in a command '
                                 'name' % executable)
    first = _word(executable.replace('%', '%%'))
    if first[0] in EXEC_PREFIXES:
        first = '"%s"' % first
    rest = [_word(w.replace('%', '%%').replace('$', '$$')) for w in words[1:]]
    return ' '.join([first] + rest)


def systemd_environment(variables):
    """An ``Environment=`` value from a dict: ``"NAME=value"`` words (values are not expanded
    there: only ``%`` is escaped)."""
    if not isinstance(variables, dict):
        raise AnsibleFilterError('systemd_environment: expected a dict of variables, got %r'
                                 % (variables,))
    words = []
    for name, value in variables.items():
        if not re.match(r'[A-Za-z_][A-Za-z0-9_]*\Z', str(name)):
            raise AnsibleFilterError('systemd_environment: %r is not a variable name' % (name,))
        assignment = '%s=%s' % (name, _text(value, 'systemd_environment'))
        words.append(_word(assignment.replace('%', '%%')))
    return ' '.join(words)


def systemd_value(value):
    """A setting's whole value (``Description=``, ``PIDFile=``): ``%`` escaped; a control
    character, which no unit file line can hold, refused."""
    text = _text(value, 'systemd_value')
    if _control(text):
        raise AnsibleFilterError('systemd_value: %r contains a control character (a newline?), '
                                 'which a unit file setting cannot hold' % text)
    if text != text.strip():
        raise AnsibleFilterError('systemd_value: %r starts or ends with white space, which systemd '
                                 'strips' % text)
    return text.replace('%', '%%')


class FilterModule(object):
    def filters(self):
        return {
            'systemd_exec': systemd_exec,
            'systemd_environment': systemd_environment,
            'systemd_value': systemd_value,
        }
