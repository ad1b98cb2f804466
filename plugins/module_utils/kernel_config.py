# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel .config handling: symbol/value normalisation, fragment parsing and rendering,
verification of requested symbols against a final .config, and a stable config hash.

Values are kept in their .config spelling: ``y``, ``m``, ``n`` (for ``# CONFIG_X is not set``),
numbers as written (``100``, ``0x1000``) and strings with their double quotes (``"-zd"``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re

SYMBOL_RE = re.compile(r'^[A-Za-z0-9_]+$')
_SET_RE = re.compile(r'^(CONFIG_[A-Za-z0-9_]+)=(.*)$')
_UNSET_RE = re.compile(r'^# (CONFIG_[A-Za-z0-9_]+) is not set\s*$')
_NUMBER_RE = re.compile(r'^(-?[0-9]+|0[xX][0-9a-fA-F]+)$')
_KCONFIG_DEF_RE = re.compile(r'^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$')


class ConfigError(ValueError):
    """Bad user input: a symbol name or value that cannot go into a .config."""


def normalize_symbol(name):
    """``'NET_SCH_TBF'`` or ``'CONFIG_NET_SCH_TBF'`` -> ``'CONFIG_NET_SCH_TBF'``."""
    if not isinstance(name, str):
        raise ConfigError('config symbol %r is not a string' % (name,))
    bare = name.strip()
    if bare.startswith('CONFIG_'):
        bare = bare[len('CONFIG_'):]
    if not bare or not SYMBOL_RE.match(bare):
        raise ConfigError("config symbol %r is not a Kconfig symbol name (letters, digits, '_'; "
                          "with or without the CONFIG_ prefix)" % (name,))
    return 'CONFIG_' + bare


def normalize_value(value, symbol='?'):
    """A user value (YAML may give bool/int) in .config spelling.

    True/False -> y/n; y/m/n (any case) stay; numbers stay; anything else becomes a quoted string
    (already quoted strings are kept as they are).
    """
    if isinstance(value, bool):
        return 'y' if value else 'n'
    if isinstance(value, int):
        return str(value)
    if value is None:
        raise ConfigError('config symbol %s has no value: use y, m, n, a number or a string'
                          % symbol)
    if not isinstance(value, str):
        raise ConfigError('config symbol %s: value %r is not y, m, n, a number or a string'
                          % (symbol, value))
    text = value.strip()
    if text.lower() in ('y', 'm', 'n'):
        return text.lower()
    if _NUMBER_RE.match(text):
        return text
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text
    if '\n' in value:
        raise ConfigError('config symbol %s: value must be a single line' % symbol)
    return '"%s"' % value.replace('\\', '\\\\').replace('"', '\\"')


def normalize_dict(config):
    """A user dict {symbol: value} -> ordered {CONFIG_SYMBOL: value}; raises ConfigError."""
    out = {}
    for key, value in (config or {}).items():
        sym = normalize_symbol(key)
        out[sym] = normalize_value(value, sym)
    return out


def parse_config(text):
    """.config or fragment text -> {CONFIG_X: value}; later lines win, like merge_config.sh."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        m = _SET_RE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
            continue
        m = _UNSET_RE.match(line)
        if m:
            out[m.group(1)] = 'n'
    return out


def read_config(path):
    with open(path, 'r', errors='replace') as f:
        return parse_config(f.read())


def render_fragment(config):
    """{CONFIG_X: value} -> fragment text (``n`` as ``# CONFIG_X is not set``)."""
    lines = []
    for sym, value in config.items():
        if value == 'n':
            lines.append('# %s is not set' % sym)
        else:
            lines.append('%s=%s' % (sym, value))
    return '\n'.join(lines) + '\n'


def merge(*configs):
    """Merge dicts in order (later wins), as merge_config.sh does with fragment files."""
    out = {}
    for config in configs:
        out.update(config or {})
    return out


def _same(wanted, got):
    if wanted == 'n':
        return got in (None, 'n')
    if got is None:
        return False
    if wanted.startswith('"') or got.startswith('"'):
        return wanted.strip('"') == got.strip('"')
    if _NUMBER_RE.match(wanted) and _NUMBER_RE.match(got):
        return int(wanted, 0) == int(got, 0)
    return wanted == got


def verify(requested, final):
    """Requested symbols whose value in the final config differs.

    Returns a list of {'symbol', 'wanted', 'got'} (got is None when the symbol is absent from
    the final .config, i.e. invisible because of its dependencies or unknown to this kernel).
    """
    unmet = []
    for sym, wanted in requested.items():
        got = final.get(sym)
        if not _same(wanted, got):
            unmet.append({'symbol': sym, 'wanted': wanted, 'got': got})
    return unmet


def config_hash(config):
    """sha256 of a parsed .config, independent of comments, order and the generator header."""
    h = hashlib.sha256()
    for sym in sorted(config):
        h.update(('%s=%s\n' % (sym, config[sym])).encode('utf-8'))
    return h.hexdigest()


def kconfig_symbols(srctree):
    """Every symbol defined by the tree's Kconfig files (without the CONFIG_ prefix)."""
    found = set()
    for top, dirs, files in os.walk(srctree):
        dirs[:] = [d for d in dirs if not d.startswith('.')]
        for name in files:
            if not name.startswith('Kconfig'):
                continue
            try:
                with open(os.path.join(top, name), 'r', errors='replace') as f:
                    for line in f:
                        m = _KCONFIG_DEF_RE.match(line)
                        if m:
                            found.add(m.group(1))
            except (IOError, OSError):
                continue
    return found


def describe_unmet(unmet, known=None):
    """One line per unmet symbol: 'CONFIG_X: wanted y, got not set (unknown to this kernel)'."""
    lines = []
    for item in unmet:
        got = item['got']
        shown = 'absent' if got is None else got
        text = '%s: wanted %s, got %s' % (item['symbol'], item['wanted'], shown)
        if known is not None:
            if item['symbol'][len('CONFIG_'):] not in known:
                text += ' (unknown to this kernel: no Kconfig defines it)'
            elif got is None or got == 'n':
                text += ' (dropped by olddefconfig: a dependency is not met)'
        lines.append(text)
    return lines
