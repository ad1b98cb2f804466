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

import glob
import hashlib
import os
import platform
import re

SYMBOL_RE = re.compile(r'^[A-Za-z0-9_]+$')
_SET_RE = re.compile(r'^(CONFIG_[A-Za-z0-9_]+)=(.*)$')
_UNSET_RE = re.compile(r'^# (CONFIG_[A-Za-z0-9_]+) is not set\s*$')
_NUMBER_RE = re.compile(r'^(-?[0-9]+|0[xX][0-9a-fA-F]+)$')


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


# ---- Kconfig: what the tree's Kconfig files say about each symbol ----

# SUBARCH of the kernel's top Makefile (from `uname -m`), then its ARCH -> SRCARCH rules.
_SUBARCH = ((r'i.86|x86_64', 'x86'), (r'sun4u', 'sparc64'), (r'aarch64.*', 'arm64'),
            (r'arm.*|sa110', 'arm'), (r's390x', 's390'), (r'parisc64', 'parisc'),
            (r'ppc.*', 'powerpc'), (r'mips.*', 'mips'), (r'sh[234].*', 'sh'),
            (r'riscv.*', 'riscv'), (r'loongarch.*', 'loongarch'))
_SRCARCH = {'i386': 'x86', 'x86_64': 'x86', 'sparc32': 'sparc', 'sparc64': 'sparc',
            'sh64': 'sh', 'tilepro': 'tile', 'tilegx': 'tile'}
_TYPES = {'bool': 'bool', 'boolean': 'bool', 'tristate': 'tristate', 'string': 'string',
          'hex': 'hex', 'int': 'int', 'def_bool': 'bool', 'def_tristate': 'tristate'}
_SOURCE_KINDS = {'source': (False, False), 'rsource': (True, False), 'osource': (False, True),
                 'orsource': (True, True)}
_VARIABLE_RE = re.compile(r'\$\(([A-Za-z0-9_]+)\)|\$([A-Za-z0-9_]+)')
_TOKEN_RE = re.compile(r'\s*(?:(&&|\|\||!=|<=|>=|[!=<>()])|"((?:[^"\\]|\\.)*)"'
                       r"|'((?:[^'\\]|\\.)*)'|(\$\()|([A-Za-z0-9_.+\-/]+))")
_TRISTATE = {'n': 0, 'm': 1, 'y': 2}
_SHOWN_SELECTORS = 8


def make_arch(arch=None):
    """The ARCH make uses: the given one, else this machine's SUBARCH (the top Makefile's)."""
    if arch:
        return arch
    machine = platform.machine()
    for pattern, subarch in _SUBARCH:
        if re.match('^(?:%s)$' % pattern, machine):
            return subarch
    return machine


def kconfig_arch(arch=None):
    """Kconfig's SRCARCH for a make ARCH value, or for this machine as the top Makefile does."""
    arch = make_arch(arch)
    return _SRCARCH.get(arch, arch)


class KconfigSymbol(object):
    """One symbol over all its definitions.

    ``definitions`` holds, per ``config``/``menuconfig`` entry, its file, its dependencies (own
    ``depends on`` lines plus the conditions of the enclosing ``if``, ``menu`` and ``choice``
    blocks) and the conditions of its prompts (``''`` for an unconditional prompt).
    ``selected_by``/``implied_by`` list ``(symbol, condition)`` of every ``select``/``imply``;
    ``env`` names the environment variable of an ``option env=`` symbol (4.14's ARCH, SRCARCH).
    """

    __slots__ = ('name', 'type', 'definitions', 'defaults', 'selected_by', 'implied_by', 'env')

    def __init__(self, name):
        self.name = name
        self.env = None
        self.type = None
        self.definitions = []
        self.defaults = 0
        self.selected_by = []
        self.implied_by = []

    @property
    def has_prompt(self):
        return any(d['prompts'] for d in self.definitions)


class KconfigIndex(object):
    """Symbols defined by the Kconfig files one architecture reads (see ``kconfig_index``)."""

    def __init__(self, arch, variables=None):
        self.arch = arch
        self.variables = variables or {'SRCARCH': arch, 'ARCH': arch, 'HEADER_ARCH': arch}
        self.symbols = {}
        self.warnings = []

    @staticmethod
    def _bare(name):
        return name[len('CONFIG_'):] if name.startswith('CONFIG_') else name

    def __contains__(self, name):
        return self._bare(name) in self.symbols

    def __iter__(self):
        return iter(self.symbols)

    def __len__(self):
        return len(self.symbols)

    def get(self, name):
        return self.symbols.get(self._bare(name))


def _indent(line):
    width = 0
    for char in line:
        if char == '\t':
            width = (width & ~7) + 8
        elif char == ' ':
            width += 1
        else:
            break
    return width


def _strip_comment(line):
    if '#' not in line:
        return line
    quote = None
    escaped = False
    for pos, char in enumerate(line):
        if escaped:
            escaped = False
        elif char == '\\':
            escaped = True
        elif quote:
            if char == quote:
                quote = None
        elif char in '"\'':
            quote = char
        elif char == '#':
            return line[:pos]
    return line


def _prompt_condition(text):
    """``'"Foo" if BAR'`` -> ``'BAR'``; ``'"Foo"'`` -> ``''``; not a prompt -> None."""
    if not text or text[0] not in '"\'':
        return None
    quote = text[0]
    pos = 1
    while pos < len(text):
        if text[pos] == '\\':
            pos += 2
            continue
        if text[pos] == quote:
            break
        pos += 1
    return _condition(text[pos + 1:])


def _condition(text):
    text = ' '.join(text.split())
    if text == 'if' or text.startswith(('if ', 'if(', 'if!')):
        return text[2:].strip()
    return ''


class _KconfigReader(object):
    """One pass over the Kconfig files reached from ``$srctree/Kconfig`` through ``source``."""

    def __init__(self, srctree, arch=None):
        self.srctree = srctree
        srcarch = kconfig_arch(arch)
        self.index = KconfigIndex(srcarch, {'SRCARCH': srcarch, 'ARCH': make_arch(arch),
                                            'HEADER_ARCH': srcarch})
        self.variables = self.index.variables
        self.blocks = []
        self.block_count = 0
        self.chain = []
        self.selects = []

    def run(self):
        self.read(os.path.join(self.srctree, 'Kconfig'), optional=False)
        for kind, target, selector, condition in self.selects:
            sym = self.index.symbols.get(target)
            if sym is not None:
                getattr(sym, kind).append((selector, condition))
        return self.index

    def read(self, path, optional):
        real = os.path.realpath(path)
        if real in self.chain:
            self.index.warnings.append('%s sources itself' % path)
            return
        try:
            with open(path, 'r', errors='replace') as f:
                text = f.read()
        except (IOError, OSError) as e:
            if not optional:
                self.index.warnings.append('cannot read %s: %s' % (path, e))
            return
        self.chain.append(real)
        try:
            self.parse(text, path)
        finally:
            self.chain.pop()

    def source(self, kind, arg, current):
        relative, optional = _SOURCE_KINDS[kind]
        arg = arg.strip()
        if arg[:1] in '"\'' and arg.endswith(arg[0]) and len(arg) > 1:
            arg = arg[1:-1]

        def expand(m):
            name = m.group(1) or m.group(2)
            return self.variables.get(name, os.environ.get(name, m.group(0)))
        arg = _VARIABLE_RE.sub(expand, arg)
        if '$' in arg:
            self.index.warnings.append('%s: cannot expand source "%s"' % (current, arg))
            return
        path = os.path.join(os.path.dirname(current) if relative else self.srctree, arg)
        if any(c in arg for c in '*?['):
            for match in sorted(glob.glob(path)):
                self.read(match, optional=True)
        else:
            self.read(path, optional)

    def choice(self):
        """Identity of the innermost enclosing choice, or None."""
        for block in reversed(self.blocks):
            if block['kind'] == 'choice':
                return block['id']
        return None

    def conditions(self):
        found = []
        for block in self.blocks:
            found.extend(block['conditions'])
        return found

    def parse(self, text, path):
        entry = None
        help_indent = None
        pending = ''
        rel = os.path.relpath(path, self.srctree)
        for raw in text.split('\n'):
            if help_indent is not None:
                if not raw.strip():
                    continue
                width = _indent(raw)
                if width > 0 and width >= help_indent:
                    if help_indent == 0:
                        help_indent = width
                    continue
                help_indent = None
            if raw.endswith('\\'):
                pending += raw[:-1] + ' '
                continue
            line = _strip_comment(pending + raw).strip()
            pending = ''
            if not line:
                continue
            words = line.split(None, 1)
            keyword = words[0]
            rest = words[1].strip() if len(words) > 1 else ''
            if keyword in ('config', 'menuconfig'):
                sym = self.index.symbols.get(rest)
                if sym is None:
                    sym = self.index.symbols[rest] = KconfigSymbol(rest)
                entry = {'symbol': sym, 'file': rel, 'depends': self.conditions(),
                         'prompts': [], 'choice': self.choice()}
                sym.definitions.append(entry)
            elif keyword in ('menu', 'choice'):
                self.block_count += 1
                entry = {'kind': keyword, 'conditions': [], 'id': self.block_count}
                self.blocks.append(entry)
            elif keyword == 'if':
                entry = None
                self.blocks.append({'kind': 'if', 'conditions': [' '.join(rest.split())]})
            elif keyword in ('endmenu', 'endchoice', 'endif'):
                entry = None
                if self.blocks:
                    self.blocks.pop()
            elif keyword in ('comment', 'mainmenu'):
                entry = {'kind': keyword, 'conditions': []}
            elif keyword in _SOURCE_KINDS:
                entry = None
                self.source(keyword, rest, path)
            elif keyword in ('help', '---help---'):
                help_indent = 0
            elif entry is None:
                continue
            elif keyword == 'depends' and rest.startswith('on'):
                expr = ' '.join(rest[2:].split())
                entry['depends' if 'symbol' in entry else 'conditions'].append(expr)
            elif 'symbol' not in entry:
                continue
            elif keyword in _TYPES:
                sym = entry['symbol']
                sym.type = sym.type or _TYPES[keyword]
                if keyword.startswith('def_'):
                    sym.defaults += 1
                else:
                    prompt = _prompt_condition(rest)
                    if prompt is not None:
                        entry['prompts'].append(prompt)
            elif keyword == 'prompt':
                prompt = _prompt_condition(rest)
                entry['prompts'].append(prompt if prompt is not None else '')
            elif keyword == 'default':
                entry['symbol'].defaults += 1
            elif keyword == 'option' and rest.startswith('env='):
                entry['symbol'].env = rest[len('env='):].strip('"\'')
            elif keyword in ('select', 'imply') and rest:
                target = rest.split(None, 1)
                condition = _condition(target[1]) if len(target) > 1 else ''
                self.selects.append(('selected_by' if keyword == 'select' else 'implied_by',
                                     target[0], entry['symbol'].name, condition))


def kconfig_index(srctree, arch=None):
    """Index of the symbols a kernel tree defines for one architecture.

    Reads ``Kconfig`` at the top of ``srctree`` and every file it sources, once, as kconfig
    does for ``arch`` (a make ``ARCH`` value; this machine's by default): the symbols of other
    architectures are not in it. Each symbol has its type, whether it has a prompt (so whether
    a .config can set it), its dependencies and what selects or implies it. Nothing is cached.
    """
    return _KconfigReader(os.path.abspath(srctree), arch).run()


def kconfig_symbols(srctree, arch=None):
    """Every symbol defined by the tree's Kconfig files (without the CONFIG_ prefix)."""
    return set(kconfig_index(srctree, arch))


class _Unevaluable(Exception):
    pass


class _Evaluator(object):
    """Kconfig expressions on a final .config: n=0, m=1, y=2."""

    def __init__(self, index, final):
        self.index = index
        self.final = final
        self.toks = []
        self.pos = 0

    def tokens(self, text):
        found = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m or m.end() == pos or m.group(4):
                raise _Unevaluable(text)
            if m.group(1):
                found.append(('op', m.group(1)))
            elif m.group(2) is not None or m.group(3) is not None:
                found.append(('const', m.group(2) if m.group(2) is not None else m.group(3)))
            else:
                found.append(('sym', m.group(5)))
            pos = m.end()
            while pos < len(text) and text[pos] in ' \t':
                pos += 1
        return found

    def value(self, text):
        self.toks = self.tokens(text)
        self.pos = 0
        result = self.expr_or()
        if self.pos != len(self.toks):
            raise _Unevaluable(text)
        return result

    def peek(self):
        return self.toks[self.pos] if self.pos < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def expr_or(self):
        result = self.expr_and()
        while self.peek() == ('op', '||'):
            self.take()
            result = max(result, self.expr_and())
        return result

    def expr_and(self):
        result = self.expr_not()
        while self.peek() == ('op', '&&'):
            self.take()
            result = min(result, self.expr_not())
        return result

    def expr_not(self):
        if self.peek() == ('op', '!'):
            self.take()
            return 2 - self.expr_not()
        if self.peek() == ('op', '('):
            self.take()
            result = self.expr_or()
            if self.take() != ('op', ')'):
                raise _Unevaluable('unbalanced parentheses')
            return result
        kind, left = self.take()
        if kind not in ('sym', 'const'):
            raise _Unevaluable('expected a symbol')
        kind_op, op = self.peek()
        if kind_op == 'op' and op in ('=', '!=', '<', '>', '<=', '>='):
            self.take()
            rkind, right = self.take()
            if rkind not in ('sym', 'const'):
                raise _Unevaluable('expected a symbol after %s' % op)
            return self.compare(self.text(kind, left), op, self.text(rkind, right))
        if kind == 'const':
            return _TRISTATE.get(left, 0)
        return self.tristate(left)

    def tristate(self, name):
        if name in _TRISTATE:
            return _TRISTATE[name]
        return _TRISTATE.get(self.final.get('CONFIG_' + name), 0)

    def text(self, kind, name):
        if kind == 'const' or name in _TRISTATE:
            return name
        sym = self.index.get(name)
        if sym is None:
            return name
        if sym.env:
            return self.index.variables.get(sym.env, os.environ.get(sym.env, ''))
        got = self.final.get('CONFIG_' + name)
        if got is None:
            return 'n' if sym.type in ('bool', 'tristate') else ''
        return got[1:-1] if got.startswith('"') and got.endswith('"') else got

    @staticmethod
    def compare(left, op, right):
        try:
            left, right = int(left, 0), int(right, 0)
        except ValueError:
            pass
        if isinstance(left, int) != isinstance(right, int):
            left, right = str(left), str(right)
        result = {'=': left == right, '!=': left != right, '<': left < right,
                  '>': left > right, '<=': left <= right, '>=': left >= right}[op]
        return 2 if result else 0

    def check(self, text):
        """The expression's value, or None when it cannot be evaluated here (macros, syntax)."""
        try:
            return self.value(text)
        except (_Unevaluable, IndexError, TypeError):
            return None


def _value_problem(sym, wanted):
    kind = sym.type
    if kind == 'bool' and wanted not in ('y', 'n'):
        if wanted == 'm':
            return 'CONFIG_%s is a bool: it cannot be m; ask for y or n' % sym.name
        return 'the value %s is not y or n: CONFIG_%s is a bool' % (wanted, sym.name)
    if kind == 'tristate' and wanted not in ('y', 'm', 'n'):
        return 'the value %s is not y, m or n: CONFIG_%s is a tristate' % (wanted, sym.name)
    if kind == 'int' and not re.match(r'^-?[0-9]+$', wanted):
        return 'the value %s is not a decimal number: CONFIG_%s is an int' % (wanted, sym.name)
    if kind == 'hex' and not re.match(r'^(0[xX])?[0-9a-fA-F]+$', wanted):
        return ('the value %s is not a hexadecimal number such as 0x1000: CONFIG_%s is a hex'
                % (wanted, sym.name))
    if kind == 'string' and not wanted.startswith('"'):
        return 'CONFIG_%s is a string: give the value in double quotes' % sym.name
    return None


_TYPE_FIX = {
    'bool': 'give y or n',
    'tristate': 'give y, m or n',
    'int': 'give a decimal number, e.g. 100',
    'hex': 'give a hexadecimal number, e.g. 0x1000',
    'string': 'give it in double quotes, e.g. \'"-zd"\'',
}


def check_values(requested, index):
    """Requested values that cannot fit their symbol, known before any make.

    ``requested`` is {CONFIG_X: value in .config spelling}; ``index`` a ``KconfigIndex``.
    Returns one line per misfit: the symbol, the value as given, its type and the fix.
    Unknown symbols and ``n`` (not set, which any symbol can be) are left to the verification.
    """
    lines = []
    for name, wanted in requested.items():
        sym = index.get(name)
        if sym is None or sym.type is None or wanted == 'n' or not _value_problem(sym, wanted):
            continue
        shown = wanted
        if sym.type != 'string' and len(wanted) >= 2 and wanted[0] == wanted[-1] == '"':
            shown = wanted[1:-1]
        article = 'an' if sym.type == 'int' else 'a'
        if sym.type == 'bool' and wanted == 'm':
            why = 'CONFIG_%s is a bool, which cannot be m' % sym.name
        elif sym.type == 'string':
            why = '%s reads as %s, and CONFIG_%s is a string' % (
                shown, 'a number' if _NUMBER_RE.match(wanted) else 'a tristate value',
                sym.name)
        else:
            why = '%r is not a value of CONFIG_%s, %s %s' % (shown, sym.name, article, sym.type)
        lines.append('%s: %s: %s' % (name, why, _TYPE_FIX[sym.type]))
    return lines


def _names(pairs):
    shown = []
    for name, condition in pairs:
        text = '%s if %s' % (name, condition) if condition else name
        if text not in shown:
            shown.append(text)
    if len(shown) > _SHOWN_SELECTORS:
        rest = len(shown) - _SHOWN_SELECTORS
        shown = shown[:_SHOWN_SELECTORS] + ['and %d more' % rest]
    return ', '.join(shown)


def _are(terms, value):
    return '%s %s %s here' % (', '.join(terms), 'is' if len(terms) == 1 else 'are', value)


def _unique(items):
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _not_set(sym):
    if sym.selected_by or sym.implied_by:
        how = []
        if sym.selected_by:
            how.append('selected, by %s' % _names(sym.selected_by))
        if sym.implied_by:
            how.append('implied, by %s' % _names(sym.implied_by))
        lead = 'by its default or when' if sym.defaults else 'only when'
        return 'no prompt: it is set %s %s; ask for one of those' % (lead, ' or '.join(how))
    if sym.defaults:
        return ('no prompt and nothing selects it: its value comes from its default alone, '
                'whose conditions are not met here')
    return 'no prompt and nothing selects it: no configuration can set it'


def _visibility(sym, ev):
    """(false dependencies, false prompt conditions, unevaluable dependencies) of the
    definitions that have a prompt."""
    false_deps, hidden, unknown = [], [], []
    for definition in sym.definitions:
        if not definition['prompts']:
            continue
        for expr in definition['depends']:
            value = ev.check(expr) if ev else None
            if value == 0:
                false_deps.append(expr)
            elif value is None:
                unknown.append(expr)
        conditions = [c for c in definition['prompts'] if c]
        if ev and conditions and len(conditions) == len(definition['prompts']):
            hidden.extend(c for c in conditions if ev.check(c) == 0)
    return _unique(false_deps), _unique(hidden), _unique(unknown)


def _hidden(conditions):
    return 'its prompt is hidden: %s %s' % (
        'its condition' if len(conditions) == 1 else 'its conditions', _are(conditions, 'n'))


def _dropped(sym, ev):
    """Why a symbol with a prompt ended up n."""
    false_deps, hidden, unknown = _visibility(sym, ev)
    if false_deps:
        return 'dropped by olddefconfig: a dependency is not met: %s' % _are(false_deps, 'n')
    if hidden:
        return 'dropped by olddefconfig: %s' % _hidden(hidden)
    if unknown:
        return ('dropped by olddefconfig: a dependency is not met; it depends on %s'
                % ' && '.join(unknown))
    choices = set(d['choice'] for d in sym.definitions if d['choice'] is not None)
    if ev and choices:
        chosen = sorted(other.name for other in ev.index.symbols.values()
                        if other is not sym and ev.tristate(other.name) == 2
                        and any(d['choice'] in choices for d in other.definitions))
        if chosen:
            return ('dropped by olddefconfig: %s, another member of its choice, is y; ask for '
                    'that one as n' % ', '.join(chosen))
    return 'dropped by olddefconfig: a dependency is not met'


def _explain(item, index, final):
    name, wanted, got = item['symbol'], item['wanted'], item['got']
    if name[len('CONFIG_'):] not in index:
        return 'unknown to this kernel: no Kconfig defines it'
    sym = index.get(name) if isinstance(index, KconfigIndex) else None
    if sym is None:
        return ('dropped by olddefconfig: a dependency is not met'
                if got is None or got == 'n' else None)
    problem = _value_problem(sym, wanted)
    if problem:
        return problem
    ev = _Evaluator(index, final) if final is not None else None
    if (ev and wanted == 'm' and sym.type == 'tristate'
            and final.get('CONFIG_MODULES') != 'y'):
        return ('m needs loadable modules and CONFIG_MODULES is not y in this config; ask for '
                'y, or for MODULES: y as well')
    if wanted in ('y', 'm') and got in (None, 'n'):
        if not sym.has_prompt:
            return _not_set(sym)
        return _dropped(sym, ev)
    if ev is None:
        return None
    if wanted == 'y' and got == 'm':
        limits = [expr for d in sym.definitions for expr in d['depends'] if ev.check(expr) == 1]
        if limits:
            return 'limited to m by a dependency: %s' % _are(_unique(limits), 'm')
        return None
    if wanted == 'n' and got in ('y', 'm'):
        forcing = [(selector, condition) for selector, condition in sym.selected_by
                   if ev.tristate(selector) and (not condition or ev.check(condition))]
        if forcing:
            return 'selected by %s, on here; turn those off too' % _names(forcing)
        if not sym.has_prompt:
            return 'no prompt: its default sets it'
        hidden = _visibility(sym, ev)[1]
        if hidden:
            return '%s, so its default sets it' % _hidden(hidden)
    return None


def describe_unmet(unmet, known=None, final=None):
    """One line per unmet symbol: 'CONFIG_X: wanted y, got absent (why)'.

    ``known`` is a ``KconfigIndex`` (or, with less to say, a set of symbol names); ``final`` the
    parsed final .config, against which dependencies are evaluated.
    """
    lines = []
    for item in unmet:
        got = item['got']
        shown = 'absent' if got is None else got
        text = '%s: wanted %s, got %s' % (item['symbol'], item['wanted'], shown)
        if known is not None:
            why = _explain(item, known, final)
            if why:
                text += ' (%s)' % why
        lines.append(text)
    return lines
