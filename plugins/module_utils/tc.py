# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tc qdiscs as data: typed options per kind, argv building, read-back parsing and planning.

Shared by the tc_qdisc and tc_qdisc_info modules. The state is read with
``tc -s -d -r -j qdisc show dev DEV`` (``-r`` adds tbf's exact ``limit`` and its buffer in kernel
ticks, ``-d`` adds RED's derived ewma/probability/Scell_log).

A desired qdisc and a qdisc read back compare through two views per kind:
- ``expected(options)``: what the kernel will report for the options, computed the way iproute2
  6.1 and the kernel convert them (tbf burst becomes a buffer time in 64 ns ticks, RED's avpkt and
  burst become an EWMA weight, fq_codel times are stored in 1024 ns units, ...);
- ``observed(json_options)``: the same fields taken from ``tc -j``.
Only fields present in both views are compared: a value the kernel does not report (RED's
bandwidth beyond Scell_log, tbf peakrate beyond its minburst ticks) cannot be compared.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

from ansible_collections.zerodrop.testbed.plugins.module_utils.units import (
    UnitError, parse_percent, parse_rate, parse_size, parse_time, tc_rate_arg, tc_size_arg,
    tc_time_arg)

READ_ARGV = ['tc', '-s', '-d', '-r', '-j', 'qdisc', 'show', 'dev']

# Kernel PSCHED_SHIFT is 6: qdisc times travel as 64 ns ticks. iproute2 converts microseconds to
# ticks with tick_in_usec = t2us / us2t from /proc/net/psched (1000 / 64 = 15.625), truncating
# to an unsigned int at every step.
PSCHED_SHIFT = 6
TICKS_PER_US = 15.625
U32 = 0xffffffff

STATS_KEYS = ('bytes', 'packets', 'drops', 'overlimits', 'requeues', 'backlog', 'qlen')
_ENTRY_KEYS = ('kind', 'handle', 'dev', 'parent', 'root', 'refcnt', 'options') + STATS_KEYS


class TcError(ValueError):
    """Bad input: the message names the field and the fix."""


# --- iproute2 / kernel arithmetic ---------------------------------------------------------------

def _uint(value):
    """C conversion of a non-negative double to unsigned int (truncation, 32 bits)."""
    return int(value) & U32


def time2tick(us):
    return _uint(_uint(us) * TICKS_PER_US)


def tick2time(ticks):
    return _uint(ticks / TICKS_PER_US)


def ratecfg(rate):
    """mult and shift of the kernel's psched_ratecfg_precompute__()."""
    factor, shift, mult = 10 ** 9, 0, 1
    if rate <= 0:
        return mult, shift
    while True:
        mult = (factor // rate) & U32
        if mult & (1 << 31) or factor & (1 << 63):
            return mult, shift
        factor <<= 1
        shift += 1


def l2t_ns(rate, length):
    """Nanoseconds to send ``length`` bytes at ``rate`` bytes/s (psched_l2t_ns)."""
    mult, shift = ratecfg(rate)
    return (length * mult) >> shift


def bytes_ticks(rate, length):
    """Kernel ticks a tbf reports for a burst of ``length`` bytes at ``rate`` (a u32 in the dump)."""
    return (l2t_ns(rate, length) >> PSCHED_SHIFT) & U32


def xmitsize(rate, ticks):
    """Bytes tc prints for ``ticks`` at ``rate`` (tc_calc_xmitsize)."""
    return _uint(rate * tick2time(ticks) / 1e6)


def burst_for_ticks(rate, ticks):
    """Smallest burst in bytes that a tbf stores as ``ticks`` (inverse of bytes_ticks)."""
    mult, shift = ratecfg(rate)
    guess = max(1, ((ticks << PSCHED_SHIFT) << shift) // max(mult, 1))
    for candidate in range(max(1, guess - 2), guess + 64):
        if bytes_ticks(rate, candidate) >= ticks:
            return candidate
    return guess


def g(value):
    """A float as tc -j prints it (C's %g: 6 significant digits)."""
    return float('%g' % value)


def sprint_size(size):
    """A size as tc's sprint_size() prints it: '32Kb' when within 16 bytes of whole KiB."""
    if size >= 1024 * 1024 and abs(1024 * 1024 * round(size / 1048576.0) - size) < 1024:
        return '%gMb' % round(size / 1048576.0)
    if size >= 1024 and abs(1024 * round(size / 1024.0) - size) < 16:
        return '%gKb' % round(size / 1024.0)
    return '%db' % size


# Link-layer header bytes by `ip -j link` link_type, for the kernel's psched_mtu() (mtu plus
# hard_header_len), which sets fifo and fq_codel defaults.
HARD_HEADER = {'ether': 14, 'loopback': 14, 'none': 0}
PFIFO_FAST_PRIOMAP = (1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)


def psched_mtu(device):
    """mtu + hard_header_len of a device (``ip -j link show`` entry), or None when unknown."""
    device = device or {}
    header = HARD_HEADER.get(device.get('link_type'))
    if device.get('mtu') is None or header is None:
        return None
    return int(device['mtu']) + header


# --- handles ------------------------------------------------------------------------------------

_ID = re.compile(r'^\s*([0-9a-fA-F]{1,4})?\s*:\s*([0-9a-fA-F]{0,4})\s*$')


def parse_handle(value, field):
    """'1:', '1:1' (tc drops the minor), '1' or 10 -> '1:' ; hex as in tc."""
    text = str(value).strip()
    if re.match(r'^[0-9a-fA-F]{1,4}$', text):
        text += ':'
    m = _ID.match(text)
    if not m or not m.group(1) or int(m.group(1), 16) == 0:
        raise TcError("%s: '%s' is not a qdisc handle: use MAJOR: with MAJOR a hex number "
                      "1-ffff, e.g. '1:' or '10:'" % (field, value))
    return '%x:' % int(m.group(1), 16)


def parse_parent(value, field):
    """'root', 'ingress', 'clsact' or a class id 'MAJOR:MINOR' (hex), normalised as tc prints."""
    text = str(value).strip().lower()
    if text in ('root', 'ingress', 'clsact'):
        return text
    m = _ID.match(text)
    if not m or not m.group(1):
        raise TcError("%s: '%s' is not a parent: use root, ingress, clsact or a class id such "
                      "as '1:1'" % (field, value))
    major, minor = int(m.group(1), 16), int(m.group(2) or '0', 16)
    return '%x:%x' % (major, minor) if minor else '%x:' % major


def parent_major(parent):
    """The handle ('1:') of the qdisc owning class ``parent``, or None for root/ingress/clsact."""
    if parent in ('root', 'ingress', 'clsact'):
        return None
    return parent.split(':')[0] + ':'


# --- kinds --------------------------------------------------------------------------------------

class Opt(object):
    """One option of a kind: its type, the range the kernel takes, what it counts, an example.

    ``high`` None means no upper bound below what the type itself allows.
    """

    def __init__(self, typ, low=None, high=None, what=None, example=None):
        self.typ = typ
        self.low = low
        self.high = high
        self.what = what
        self.example = example

    def takes(self):
        """What the option takes, for messages: its type and its range."""
        low, high = self.low, self.high
        if self.typ == 'int':
            what = ' of %s' % self.what if self.what else ''
            if low == 1:
                text = 'a positive whole number%s (1 to %d)' % (what, high)
            else:
                text = 'a whole number%s from %d to %d' % (what, low, high)
            return '%s, e.g. %s' % (text, self.example or 1000)
        if self.typ == 'size':
            return ('a size in bytes from %d to %d, e.g. %s'
                    % (low, high, self.example or '15000, 32k or 1mb'))
        if self.typ == 'time':
            return ('a time from %dus to %dus (about %d minutes), e.g. %s'
                    % (low, high, high // 60000000, self.example or '10us, 10ms or 1s'))
        if self.typ == 'rate':
            text = 'a rate of at least 8bit (1 byte/s)' if low else 'a rate (0 for none)'
            if high is not None:
                text += ' and at most %dbps (bytes/s)' % high
            return '%s, e.g. %s' % (text, self.example or '100mbit, 1gbit or 12500000bps')
        if self.typ == 'percent':
            return 'a percentage from 0 to 100, e.g. 0.5% or 1'
        if self.typ == 'fraction':
            return 'a probability from 0 to 1 as tc takes it, e.g. 0.02 (or 2%)'
        if self.typ == 'hex':
            return ('a class minor in hex from %x to %x as tc takes it, e.g. 10 for class 1:10'
                    % (low, high))
        return 'true or false'


# The kernel's limits per type (32-bit fields); kinds narrow them where the kernel does.
_TYPE_RANGE = {'int': (0, U32), 'size': (0, U32), 'time': (0, U32), 'rate': (0, None),
               'percent': (0, 100), 'fraction': (0, 1), 'hex': (0, 0xffff), 'bool': (None, None)}


def opt(typ, low=None, high=None, what=None, example=None):
    default_low, default_high = _TYPE_RANGE[typ]
    return Opt(typ, default_low if low is None else low,
               default_high if high is None else high, what, example)


def _parse(value, typ):
    """The value in the kernel's unit; UnitError says what is wrong with its form."""
    if typ == 'rate':
        return parse_rate(value)
    if typ == 'size':
        return parse_size(value)
    if typ == 'time':
        return parse_time(value)
    if typ == 'percent':
        return parse_percent(value)
    if typ == 'fraction':
        text = str(value).strip()
        try:
            return parse_percent(text) / 100.0 if text.endswith('%') else float(text)
        except ValueError:
            raise UnitError("'%s' is not a probability" % (value,))
    if typ == 'int':
        if isinstance(value, bool) or not re.match(r'^\s*[-+]?[0-9]+\s*$', str(value)):
            raise UnitError("'%s' is not a whole number" % (value,))
        return int(value)
    if typ == 'bool':
        if isinstance(value, bool):
            return value
        if str(value).lower() in ('yes', 'true', 'on', '1'):
            return True
        if str(value).lower() in ('no', 'false', 'off', '0'):
            return False
        raise UnitError("'%s' is not a boolean" % (value,))
    if typ == 'hex':
        if isinstance(value, bool) or not re.match(r'^\s*(0x)?[0-9a-fA-F]+\s*$', str(value)):
            raise UnitError("'%s' is not a hex number" % (value,))
        return int(str(value).strip(), 16)
    raise AssertionError(typ)


def _conv(field, value, spec, owner=None):
    """``value`` converted and checked against ``spec`` (an Opt); TcError names the field, the
    problem and the range the option takes."""
    what = '%s %s' % (owner, field.rsplit('.', 1)[-1]) if owner else field.rsplit('.', 1)[-1]
    shown = value if isinstance(value, (int, float)) else "'%s'" % value
    if spec.typ != 'bool' and str(value).strip().startswith('-'):
        raise TcError('%s: %s is negative; the %s takes %s' % (field, shown, what, spec.takes()))
    try:
        out = _parse(value, spec.typ)
    except (UnitError, ValueError) as e:
        raise TcError('%s: %s; the %s takes %s' % (field, e, what, spec.takes()))
    if spec.typ == 'bool':
        return out
    if spec.low is not None and out < spec.low:
        problem = 'is below %s' % (('%x' if spec.typ == 'hex' else '%s') % spec.low)
        unit = {'rate': 'bytes/s', 'size': 'bytes', 'time': 'us'}.get(spec.typ)
        if unit and out >= 0 and out != value:
            problem += ' (%s %s)' % (out, unit)
        raise TcError('%s: %s %s; the %s takes %s' % (field, shown, problem, what, spec.takes()))
    if spec.high is not None and out > spec.high:
        raise TcError('%s: %s is too large; the %s takes %s'
                      % (field, shown, what, spec.takes()))
    return out


class Kind(object):
    """A qdisc kind. ``spec`` maps option name -> type; subclasses add defaults and checks."""
    name = None
    spec = {}
    config = None          # CONFIG_NET_SCH_* that provides the kind
    module = None          # kernel module to load
    can_change = True      # the kernel implements 'tc qdisc change' for it
    parent_keyword = None  # ingress/clsact: the tc keyword that is both parent and kind

    def normalise(self, options, field):
        """Typed options with tc's defaults applied; TcError names the bad field."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.spec))
        if unknown:
            raise TcError("%s: unknown option(s) %s for kind %s; %s knows: %s"
                          % (field, ', '.join(unknown), self.name, self.name,
                             ', '.join(sorted(self.spec)) or 'no options'))
        out = {}
        for key, spec in self.spec.items():
            if options.get(key) is not None:
                out[key] = _conv('%s.%s' % (field, key), options[key], spec, self.name)
        return self.complete(out, field)

    def complete(self, opts, field):
        return opts

    def args(self, opts):
        return []

    def expected(self, opts, device):
        return {}

    def observed(self, raw):
        return {}

    def public(self, raw):
        """Options as returned to users: tc's JSON with our units and names."""
        return dict(raw or {})

    def predicted_raw(self, opts, device, old_raw):
        """tc's JSON options for this qdisc after an add (``old_raw`` None) or a change (the
        options read before it), or None where they cannot be known without the kernel."""
        return {}

    def predict(self, opts, device, old_raw=None):
        """(public options, raw options) the read-back will show, or (None, None)."""
        raw = self.predicted_raw(opts, device, old_raw)
        if raw is None:
            return None, None
        return self.public(raw), raw

    def needs_recreate(self, opts, raw):
        return False

    def resolve(self, opts, device):
        """Options completed with what depends on the device (``ip -j link show`` entry)."""
        return opts

    # What a change of this qdisc does to the qdiscs below it.
    resets_children = None  # 'fifo': fifo children get the parent's limit; 'all': replaced


class Pfifo(Kind):
    name = 'pfifo'
    spec = {'limit': opt('int', 1, what='packets', example=1000)}

    def args(self, opts):
        return ['limit', str(opts['limit'])] if 'limit' in opts else []

    def resolve(self, opts, device):
        # Without a limit the kernel takes the device's txqueuelen; it is set explicitly so that
        # 'tc qdisc change' (which does nothing without options) follows a new txqueuelen too.
        if 'limit' not in opts and self.name == 'pfifo' and (device or {}).get('txqlen') is not None:
            return dict(opts, limit=max(int(device['txqlen']), 1))
        return opts

    def expected(self, opts, device):
        return {'limit': opts['limit']} if 'limit' in opts else {}

    def observed(self, raw):
        return {'limit': raw['limit']} if 'limit' in raw else {}

    def predicted_raw(self, opts, device, old_raw):
        if 'limit' in opts:
            return {'limit': opts['limit']}
        # fifo_init() without options: txqueuelen packets, times psched_mtu() bytes for bfifo
        txqlen = (device or {}).get('txqlen')
        if txqlen is None:
            return None
        if self.name == 'pfifo':
            return {'limit': int(txqlen)}
        mtu = psched_mtu(device)
        return None if mtu is None else {'limit': int(txqlen) * mtu}


class Bfifo(Pfifo):
    name = 'bfifo'
    spec = {'limit': opt('size', 1, example='100000 or 64k')}

    def args(self, opts):
        return ['limit', tc_size_arg(opts['limit'])] if 'limit' in opts else []


class PfifoFast(Kind):
    name = 'pfifo_fast'
    spec = {}
    can_change = False

    def predicted_raw(self, opts, device, old_raw):
        return {'bands': 3, 'priomap': list(PFIFO_FAST_PRIOMAP), 'multiqueue': False}


class Ingress(Kind):
    name = 'ingress'
    config = 'NET_SCH_INGRESS'
    module = 'sch_ingress'
    can_change = False
    parent_keyword = 'ingress'


class Clsact(Ingress):
    name = 'clsact'
    parent_keyword = 'clsact'


class Tbf(Kind):
    name = 'tbf'
    config = 'NET_SCH_TBF'
    module = 'sch_tbf'
    spec = {'rate': opt('rate', 1), 'burst': opt('size', 1, example='15000 or 32k'),
            'latency': opt('time', example='10ms'), 'limit': opt('size', 1, example='100000'),
            'peakrate': opt('rate', 1), 'mtu': opt('size', 1, example='1540')}
    resets_children = 'fifo'

    def complete(self, opts, field):
        if not opts.get('rate'):
            raise TcError("%s.rate is required for tbf (e.g. rate: 100mbit)" % field)
        if not opts.get('burst'):
            raise TcError("%s.burst is required for tbf (e.g. burst: 15000)" % field)
        if ('latency' in opts) == ('limit' in opts):
            raise TcError("%s: tbf needs exactly one of latency and limit (e.g. latency: 10ms),"
                          " not %s" % (field, 'both' if 'limit' in opts else 'neither'))
        if 'peakrate' in opts:
            if not opts.get('mtu'):
                raise TcError("%s.mtu is required with peakrate (e.g. mtu: 1540)" % field)
            if opts['peakrate'] <= opts['rate']:
                raise TcError("%s.peakrate must be greater than rate" % field)
        elif 'mtu' in opts:
            raise TcError("%s.mtu only applies with peakrate: remove it or set peakrate" % field)
        return opts

    def args(self, opts):
        out = ['rate', tc_rate_arg(opts['rate']), 'burst', tc_size_arg(opts['burst'])]
        if 'latency' in opts:
            out += ['latency', tc_time_arg(opts['latency'])]
        else:
            out += ['limit', tc_size_arg(opts['limit'])]
        if 'peakrate' in opts:
            out += ['peakrate', tc_rate_arg(opts['peakrate']), 'mtu', tc_size_arg(opts['mtu'])]
        return out

    def limit_of(self, opts):
        """The byte limit tc computes from latency (q_tbf.c), or the given limit."""
        if 'limit' in opts:
            return opts['limit']
        lim = opts['rate'] * float(opts['latency']) / 1e6 + opts['burst']
        if 'peakrate' in opts:
            lim = min(lim, opts['peakrate'] * float(opts['latency']) / 1e6 + opts['mtu'])
        return _uint(lim)

    def expected(self, opts, device):
        rate = opts['rate']
        ticks = bytes_ticks(rate, opts['burst'])
        exp = {'rate': rate, 'burst_ticks': ticks, 'burst': xmitsize(rate, ticks),
               'limit': self.limit_of(opts),
               'mtu_ticks': bytes_ticks(opts['peakrate'], opts['mtu']) if 'peakrate' in opts else 0}
        # What tc prints as 'lat' (q_tbf.c), for read-backs without -r (no exact limit).
        lat = 1e6 * (exp['limit'] / float(rate)) - tick2time(ticks)
        if 'peakrate' in opts:
            lat = max(lat, 1e6 * (exp['limit'] / float(opts['peakrate']))
                      - tick2time(exp['mtu_ticks']))
        if lat >= 0:
            exp['lat'] = int(lat)
        return exp

    def observed(self, raw):
        obs = {}
        if 'rate' in raw:
            obs['rate'] = raw['rate']
        if 'burst_raw' in raw:
            obs['burst_ticks'] = int(raw['burst_raw'], 16)
            obs['mtu_ticks'] = int(raw['mtu_raw'], 16) if 'mtu_raw' in raw else 0
        elif 'burst' in raw:
            obs['burst'] = _size_value(raw['burst'])
        if 'limit' in raw:
            obs['limit'] = raw['limit']
        elif 'lat' in raw:
            obs['lat'] = raw['lat']
        return obs

    def public(self, raw):
        out = {'rate': raw.get('rate'), 'burst': _size_value(raw.get('burst'))}
        if 'burst_raw' in raw and raw.get('rate'):
            # -d prints the burst rounded ('32Kb'): the ticks give the exact value
            out['burst'] = xmitsize(raw['rate'], int(raw['burst_raw'], 16))
        if 'lat' in raw:
            out['latency'] = raw['lat']
        if 'limit' in raw:
            out['limit'] = raw['limit']
        if 'minburst' in raw or 'mtu' in raw:
            out['minburst'] = _size_value(raw.get('minburst', raw.get('mtu')))
        return out

    def predicted_raw(self, opts, device, old_raw):
        exp = self.expected(opts, device)
        raw = {'rate': exp['rate'], 'burst': '%s/1' % sprint_size(exp['burst']), 'mpu': 0,
               'burst_raw': '%x' % exp['burst_ticks'], 'limit': exp['limit']}
        if 'peakrate' in opts:
            raw.update({'peakrate': opts['peakrate'], 'mtu_raw': '%x' % exp['mtu_ticks'],
                        'mtu': '%s/1' % sprint_size(xmitsize(opts['peakrate'],
                                                             exp['mtu_ticks']))})
        if 'lat' in exp:
            raw['lat'] = exp['lat']
        return raw

    def args_from_raw(self, raw):
        """tc arguments that recreate a tbf read back with -r (None when not possible)."""
        if 'burst_raw' not in raw or 'limit' not in raw or 'mtu_raw' in raw:
            return None
        rate = raw['rate']
        return ['rate', tc_rate_arg(rate),
                'burst', tc_size_arg(burst_for_ticks(rate, int(raw['burst_raw'], 16))),
                'limit', tc_size_arg(raw['limit'])]


class Red(Kind):
    name = 'red'
    config = 'NET_SCH_RED'
    module = 'sch_red'
    # min, max and burst 0 mean what tc derives when they are left out
    spec = {'limit': opt('size', 1, example='100000'), 'min': opt('size', example='30000'),
            'max': opt('size', example='90000'), 'avpkt': opt('size', 1, example='1000'),
            'burst': opt('int', what='packets (0: derived from min, max and avpkt)',
                         example=35),
            'probability': opt('fraction'), 'bandwidth': opt('rate', 1, U32),
            'ecn': opt('bool'), 'harddrop': opt('bool'), 'adaptive': opt('bool')}
    resets_children = 'all'

    def complete(self, opts, field):
        for key, example in (('limit', 'limit: 100000'), ('avpkt', 'avpkt: 1000')):
            if not opts.get(key):
                raise TcError("%s.%s is required for red (e.g. %s)" % (field, key, example))
        # Defaults as q_red.c computes them (Sally Floyd's recommendations).
        if not opts.get('max'):
            opts['max'] = opts['min'] * 3 if opts.get('min') else opts['limit'] // 4
        if not opts.get('min'):
            opts['min'] = opts['max'] // 3
        if opts['max'] < opts['min']:
            raise TcError("%s: red max (%d) must not be below min (%d)"
                          % (field, opts['max'], opts['min']))
        if not opts.get('burst'):
            opts['burst'] = (2 * opts['min'] + opts['max']) // (3 * opts['avpkt'])
        opts.setdefault('bandwidth', parse_rate('10mbit'))
        opts.setdefault('probability', 0.02)
        for flag in ('ecn', 'harddrop', 'adaptive'):
            opts.setdefault(flag, False)
        try:
            wlog = red_ewma(opts['min'], opts['burst'], opts['avpkt'])
            plog = red_plog(opts['min'], opts['max'], opts['probability'])
            scell = red_scell_log(wlog, opts['avpkt'], opts['bandwidth'])
        except ValueError as e:
            raise TcError('%s: %s' % (field, e))
        opts['_derived'] = {'ewma': wlog, 'Plog': plog, 'Scell_log': scell}
        return opts

    def args(self, opts):
        out = ['limit', tc_size_arg(opts['limit']), 'min', tc_size_arg(opts['min']),
               'max', tc_size_arg(opts['max']), 'avpkt', tc_size_arg(opts['avpkt']),
               'burst', str(opts['burst']), 'probability', '%r' % opts['probability'],
               'bandwidth', tc_rate_arg(opts['bandwidth'])]
        return out + [flag for flag in ('ecn', 'harddrop', 'adaptive') if opts[flag]]

    def expected(self, opts, device):
        exp = {'limit': opts['limit'], 'min': opts['min'], 'max': opts['max'],
               'ecn': opts['ecn'], 'harddrop': opts['harddrop'], 'adaptive': opts['adaptive'],
               'nodrop': False, 'ewma': opts['_derived']['ewma'],
               'Scell_log': opts['_derived']['Scell_log']}
        max_p = _uint(opts['probability'] * 2.0 ** 32)
        if not opts['adaptive']:  # adaptive RED moves max_P at run time
            if max_p:
                exp['probability'] = g(max_p / 2.0 ** 32)
            else:
                exp['Plog'] = opts['_derived']['Plog']
        return exp

    def predicted_raw(self, opts, device, old_raw):
        raw = dict((k, v) for k, v in self.expected(opts, device).items())
        # tc prints the fields in this order; probability or Plog as expected() chose
        order = ('limit', 'min', 'max', 'ecn', 'harddrop', 'adaptive', 'nodrop', 'ewma',
                 'probability', 'Plog', 'Scell_log')
        if opts['adaptive']:
            raw['probability'] = g(_uint(opts['probability'] * 2.0 ** 32) / 2.0 ** 32)
        return dict((k, raw[k]) for k in order if k in raw)

    def observed(self, raw):
        keys = ('limit', 'min', 'max', 'ecn', 'harddrop', 'adaptive', 'nodrop', 'ewma',
                'Scell_log', 'Plog')
        obs = dict((k, raw[k]) for k in keys if k in raw)
        if 'probability' in raw:
            obs['probability'] = g(raw['probability'])
        return obs


def red_ewma(qmin, burst, avpkt):
    """tc_red_eval_ewma(): the EWMA weight log (Wlog) for min, burst and avpkt."""
    a = float(burst) + 1 - float(qmin) / avpkt
    if a < 1.0:
        raise ValueError('red burst %d is too small for min %d and avpkt %d: try burst %d'
                         % (burst, qmin, avpkt, 1 + qmin // avpkt))
    w = 0.5
    for wlog in range(1, 32):
        if a <= (1 - math.pow(1 - w, burst)) / w:
            return wlog
        w /= 2
    raise ValueError('red burst %d is too large: no EWMA weight fits' % burst)


def red_plog(qmin, qmax, prob):
    """tc_red_eval_P()."""
    i = qmax - qmin
    if not i:
        return 0
    prob /= i
    for n in range(32):
        if prob > 1.0:
            return n
        prob *= 2
    raise ValueError('red probability %r is too small for min/max' % prob)


def red_scell_log(wlog, avpkt, bandwidth):
    """tc_red_eval_idle_damping(): the cell log of the idle damping table."""
    xmit_time = time2tick(1e6 * (float(avpkt) / float(bandwidth)))
    if not xmit_time:
        raise ValueError('red avpkt %d is too small for bandwidth %d bytes/s' % (avpkt, bandwidth))
    lw = -math.log(1.0 - 1.0 / (1 << wlog)) / xmit_time
    maxtime = 31 / lw
    for clog in range(32):
        if maxtime / (1 << clog) < 512:
            return clog
    raise ValueError('red: no idle damping table fits avpkt %d and bandwidth %d'
                     % (avpkt, bandwidth))


class Netem(Kind):
    name = 'netem'
    config = 'NET_SCH_NETEM'
    module = 'sch_netem'
    spec = {'delay': opt('time', example='10ms'), 'jitter': opt('time', example='1ms'),
            'loss': opt('percent'), 'rate': opt('rate'),
            'limit': opt('int', 1, what='packets', example=1000)}

    def complete(self, opts, field):
        if opts.get('jitter') and not opts.get('delay'):
            raise TcError("%s.jitter needs a delay (e.g. delay: 10ms, jitter: 1ms)" % field)
        opts.setdefault('limit', 1000)
        return opts

    def args(self, opts):
        out = ['limit', str(opts['limit'])]
        if opts.get('delay'):
            out += ['delay', tc_time_arg(opts['delay'])]
            if opts.get('jitter'):
                out.append(tc_time_arg(opts['jitter']))
        if opts.get('loss'):
            out += ['loss', 'random', '%r%%' % opts['loss']]
        if opts.get('rate'):
            out += ['rate', tc_rate_arg(opts['rate'])]
        return out

    def expected(self, opts, device):
        def seconds(us):
            return g(tick2time(time2tick(us or 0)) / 1e6)
        loss = _uint(round(opts.get('loss', 0) / 100.0 * U32))
        return {'limit': opts['limit'], 'delay': seconds(opts.get('delay')),
                'jitter': seconds(opts.get('jitter')) if opts.get('delay') else 0.0,
                'loss': g(float(loss) / U32), 'rate': opts.get('rate') or 0}

    def observed(self, raw):
        delay = raw.get('delay') or {}
        return {'limit': raw.get('limit'), 'delay': g(delay.get('delay', 0)),
                'jitter': g(delay.get('jitter', 0)),
                'loss': g((raw.get('loss-random') or {}).get('loss', 0)),
                'rate': (raw.get('rate') or {}).get('rate', 0)}

    def predicted_raw(self, opts, device, old_raw):
        exp = self.expected(opts, device)
        raw = {'limit': exp['limit']}
        if exp['delay']:
            raw['delay'] = {'delay': exp['delay'], 'jitter': exp['jitter'], 'correlation': 0}
        if exp['loss']:
            raw['loss-random'] = {'loss': exp['loss'], 'correlation': 0}
        if exp['rate']:
            raw['rate'] = {'rate': exp['rate'], 'packetoverhead': 0, 'cellsize': 0,
                           'celloverhead': 0}
        raw.update({'ecn': False, 'gap': 0})
        return raw

    def needs_recreate(self, opts, raw):
        # 'tc qdisc change' cannot switch a netem rate off (tc sends no rate attribute then)
        return bool((raw.get('rate') or {}).get('rate')) and not opts.get('rate')

    def public(self, raw):
        obs = self.observed(raw)
        out = dict(raw)
        out.pop('delay', None)
        out.pop('loss-random', None)
        out.update({'delay': int(round(obs['delay'] * 1e6)), 'jitter': int(round(obs['jitter'] * 1e6)),
                    'loss': g(obs['loss'] * 100), 'rate': obs['rate']})
        return out


def codel_us(us):
    """A codel time as the kernel stores it (1024 ns units) and reports it back, in us."""
    return ((us * 1000) >> 10 << 10) // 1000


class FqCodel(Kind):
    name = 'fq_codel'
    config = 'NET_SCH_FQ_CODEL'
    module = 'sch_fq_codel'
    spec = {'limit': opt('int', 1, what='packets', example=10240),
            'target': opt('time', example='5ms'), 'interval': opt('time', 1, example='100ms'),
            'ecn': opt('bool')}

    def complete(self, opts, field):
        # The kernel's defaults, sent explicitly so that 'change' resets what is not given.
        opts.setdefault('limit', 10240)
        opts.setdefault('target', 5000)
        opts.setdefault('interval', 100000)
        opts.setdefault('ecn', True)
        return opts

    def args(self, opts):
        return ['limit', str(opts['limit']), 'target', tc_time_arg(opts['target']),
                'interval', tc_time_arg(opts['interval']), 'ecn' if opts['ecn'] else 'noecn']

    def expected(self, opts, device):
        return {'limit': opts['limit'], 'target': codel_us(opts['target']),
                'interval': codel_us(opts['interval']), 'ecn': opts['ecn']}

    def observed(self, raw):
        return {'limit': raw.get('limit'), 'target': raw.get('target'),
                'interval': raw.get('interval'), 'ecn': bool(raw.get('ecn', False))}

    def predicted_raw(self, opts, device, old_raw):
        # flows, quantum, memory_limit and drop_batch are not set by this module: a change
        # keeps them, a new qdisc gets the kernel's defaults (quantum: psched_mtu()).
        if old_raw is not None:
            fixed = dict((k, old_raw[k]) for k in ('flows', 'quantum', 'memory_limit',
                                                   'drop_batch') if k in old_raw)
        else:
            fixed = {'flows': 1024, 'memory_limit': 32 << 20, 'drop_batch': 64}
            mtu = psched_mtu(device)
            if mtu is None:
                return None
            fixed['quantum'] = mtu
        exp = self.expected(opts, device)
        raw = {'limit': exp['limit'], 'flows': fixed.get('flows'), 'quantum': fixed.get('quantum'),
               'target': exp['target'], 'interval': exp['interval'],
               'memory_limit': fixed.get('memory_limit')}
        if exp['ecn']:
            raw['ecn'] = True
        raw['drop_batch'] = fixed.get('drop_batch')
        return dict((k, v) for k, v in raw.items() if v is not None)


class Htb(Kind):
    name = 'htb'
    config = 'NET_SCH_HTB'
    module = 'sch_htb'
    spec = {'default': opt('hex'), 'r2q': opt('int', 1, example=10),
            'direct_qlen': opt('int', what='packets', example=1000)}
    can_change = False  # the kernel has no 'change' for the htb qdisc: it is recreated

    def complete(self, opts, field):
        opts.setdefault('default', 0)
        opts.setdefault('r2q', 10)
        return opts

    def args(self, opts):
        out = ['default', '%x' % opts['default'], 'r2q', str(opts['r2q'])]
        if 'direct_qlen' in opts:
            out += ['direct_qlen', str(opts['direct_qlen'])]
        return out

    def expected(self, opts, device):
        exp = {'default': opts['default'], 'r2q': opts['r2q']}
        if 'direct_qlen' in opts:
            exp['direct_qlen'] = opts['direct_qlen']
        return exp

    def observed(self, raw):
        obs = {'r2q': raw.get('r2q'), 'direct_qlen': raw.get('direct_qlen')}
        obs['default'] = int(str(raw.get('default', '0')), 16)
        return obs

    def public(self, raw):
        out = dict(raw)
        if 'default' in out:
            out['default'] = '%x' % int(str(out['default']), 16)
        return out

    def predicted_raw(self, opts, device, old_raw):
        qlen = opts.get('direct_qlen', (device or {}).get('txqlen'))
        if qlen is None:
            return None
        version = (old_raw or {}).get('ver', '3.17')
        return {'r2q': opts['r2q'], 'default': '%#x' % opts['default'],
                'direct_packets_stat': 0, 'ver': version, 'direct_qlen': int(qlen)}


KINDS = dict((k.name, k) for k in (Pfifo(), Bfifo(), PfifoFast(), Tbf(), Red(), Netem(),
                                   FqCodel(), Htb(), Ingress(), Clsact()))


def _size_value(value):
    """tc -d prints tbf burst as '15000b/1'; plain -j as 15000."""
    if value is None or isinstance(value, int):
        return value
    return parse_size(str(value).split('/', 1)[0])


def kind_error_message(kind):
    """What to do when the kernel says 'Specified qdisc kind is unknown'."""
    model = KINDS.get(kind)
    if model is not None and model.config:
        return ("the kernel has no '%s' qdisc: build it with CONFIG_%s=y or =m and load the "
                "module ('modprobe %s')" % (kind, model.config, model.module))
    return ("the kernel has no '%s' qdisc: enable its CONFIG_NET_SCH_* option and load the "
            "module ('modprobe sch_%s')" % (kind, kind))


# --- desired state ------------------------------------------------------------------------------

def desired_entry(spec, field, need_kind=True):
    """Normalise one qdisc given by a user: parent, handle, kind, options."""
    kind = spec.get('kind')
    parent = spec.get('parent')
    if kind in ('ingress', 'clsact'):
        if parent not in (None, kind):
            raise TcError("%s.parent: a %s qdisc sits at parent %s, not %s"
                          % (field, kind, kind, parent))
        parent = kind
    parent = parse_parent(parent if parent is not None else 'root', '%s.parent' % field)
    if parent in ('ingress', 'clsact') and kind is None and need_kind:
        kind = parent
    handle = spec.get('handle')
    if parent in ('ingress', 'clsact'):
        if handle is not None and parse_handle(handle, '%s.handle' % field) != 'ffff:':
            raise TcError("%s.handle: %s qdiscs always have handle ffff:" % (field, parent))
        handle = 'ffff:'
    elif handle is not None:
        handle = parse_handle(handle, '%s.handle' % field)
    if kind is None:
        if need_kind:
            raise TcError("%s.kind is required (one of %s)" % (field, ', '.join(sorted(KINDS))))
        return {'parent': parent, 'handle': handle, 'kind': None, 'options': {}}
    if kind not in KINDS:
        raise TcError("%s.kind: '%s' is not a qdisc kind this module models; use one of %s "
                      "(or a command task for other kinds)" % (field, kind, ', '.join(sorted(KINDS))))
    if parent in ('ingress', 'clsact') and kind != parent:
        raise TcError("%s.kind: only a %s qdisc can sit at parent %s" % (field, parent, parent))
    options = spec.get('options') or {}
    if not isinstance(options, dict):
        raise TcError("%s.options must be a dictionary, e.g. {rate: 100mbit}" % field)
    if not need_kind:
        return {'parent': parent, 'handle': handle, 'kind': kind, 'options': {}}
    return {'parent': parent, 'handle': handle, 'kind': kind,
            'options': KINDS[kind].normalise(options, '%s.options' % field)}


def check_tree(entries, current, field='tree'):
    """Handle clashes and parents: each parent must come earlier in the tree or exist already."""
    handles, slots = {}, {}
    current_handles = set(q['handle'] for q in current)
    for i, entry in enumerate(entries):
        where = '%s[%d]' % (field, i)
        if entry['parent'] in slots:
            raise TcError("%s.parent: %s is also the parent of %s; a parent slot holds one qdisc"
                          % (where, entry['parent'], slots[entry['parent']]))
        slots[entry['parent']] = where
        major = parent_major(entry['parent'])
        if major is not None and major not in handles and major not in current_handles:
            raise TcError("%s.parent: %s belongs to qdisc %s, which is neither earlier in the "
                          "tree nor on the device (list parents before children)"
                          % (where, entry['parent'], major))
        if major is not None and major == entry['handle']:
            raise TcError("%s.handle: %s cannot be its own parent" % (where, entry['handle']))
        if entry['handle'] is not None and entry['parent'] not in ('ingress', 'clsact'):
            if entry['handle'] in handles:
                raise TcError("%s.handle: %s is already used by %s; give every qdisc its own "
                              "handle" % (where, entry['handle'], handles[entry['handle']]))
            handles[entry['handle']] = where
    # A handle taken on the device outside the part of the tree this task may replace.
    reach = set(slot_key(e['parent']) for e in entries)
    below = set(q['handle'] for q in current if slot_key(q['parent']) in reach and not q['default'])
    grown = True
    while grown:
        more = set(q['handle'] for q in current if parent_major(q['parent']) in below)
        grown = not more <= below
        below |= more
    for i, entry in enumerate(entries):
        for q in current:
            if q['handle'] == entry['handle'] and not q['default'] and q['handle'] not in below:
                raise TcError("%s[%d].handle: %s is already used on the device by the %s at "
                              "parent %s; choose another handle"
                              % (field, i, q['handle'], q['kind'], q['parent']))


# --- read back ----------------------------------------------------------------------------------

def parse_show(data):
    """``tc -s -d -r -j qdisc show dev X`` output (list, JSON text or None) -> normalised qdiscs.

    Every qdisc: kind, handle, parent ('root', 'ingress', 'clsact' or a class id), default (the
    kernel's own root with handle 0:), options (our names and units), stats, xstats
    (kind-specific counters, e.g. RED marked/early/pdrop/other) and raw (tc's options).
    """
    if data is None:
        return []
    if not isinstance(data, list):
        text = data.strip()
        data = json.loads(text) if text else []
    out = []
    for item in data:
        kind = item.get('kind')
        if item.get('root'):
            parent = 'root'
        elif kind in ('ingress', 'clsact'):
            parent = kind
        else:
            parent = parse_parent(item.get('parent', 'root'), 'parent')
        raw = item.get('options') or {}
        model = KINDS.get(kind)
        entry = {
            'device': item.get('dev'),
            'kind': kind,
            'handle': item.get('handle'),
            'parent': parent,
            'default': item.get('handle') == '0:',
            'options': model.public(raw) if model else dict(raw),
            'stats': dict((k, item[k]) for k in STATS_KEYS if k in item),
            'xstats': dict((k, v) for k, v in item.items() if k not in _ENTRY_KEYS),
            'raw': raw,
        }
        out.append(entry)
    return out


def public_tree(qdiscs, stats=True):
    """Qdiscs as returned by the modules (without tc's raw options)."""
    keys = ('kind', 'handle', 'parent', 'default', 'options') + (('stats', 'xstats') if stats else ())
    return [dict((k, q.get(k)) for k in keys) for q in qdiscs]


def by_device(qdiscs):
    """Qdiscs of ``tc qdisc show`` without a device, grouped: {device: [qdisc, ...]}."""
    out = {}
    for q in qdiscs:
        out.setdefault(q['device'], []).append(q)
    return dict((dev, public_tree(items)) for dev, items in out.items())


def compare(entry, current, device=None):
    """Fields that differ between a desired entry and a qdisc read back: {field: (want, have)}."""
    model = KINDS[entry['kind']]
    want = model.expected(entry['options'], device)
    have = model.observed(current['raw'])
    return dict((k, (want[k], have[k])) for k in sorted(set(want) & set(have))
                if want[k] != have[k])


# --- planning -----------------------------------------------------------------------------------

def slot_key(parent):
    """ingress and clsact share the one ingress slot of a device (ffff:fff1)."""
    return 'ingress' if parent == 'clsact' else parent


def slot_argv(parent):
    if parent in ('root', 'ingress', 'clsact'):
        return [parent]
    return ['parent', parent]


def op_argv(action, device, entry, handle=None):
    """``qdisc ACTION dev DEV ...`` (without the leading 'tc') for one qdisc."""
    argv = ['qdisc', action, 'dev', device]
    model = KINDS[entry['kind']] if entry.get('kind') else None
    if model is not None and model.parent_keyword:
        return argv + [model.parent_keyword]
    argv += slot_argv(entry['parent'])
    if action == 'del':
        return argv
    handle = handle or entry.get('handle')
    if handle:
        argv += ['handle', handle]
    return argv + [entry['kind']] + model.args(entry['options'])


class Op(object):
    """One tc command: ``argv`` without the leading 'tc' (a line of ``tc -batch``)."""

    def __init__(self, action, device, entry, handle=None, why='', argv=None):
        self.action = action
        self.entry = entry
        self.why = why
        self.argv = argv or op_argv(action, device, entry, handle)

    def __repr__(self):
        return 'Op(%s)' % ' '.join(self.argv)


def plan(device, desired, current, state='present', purge=False, device_info=None):
    """The tc operations that turn ``current`` into ``desired``, in order, and warnings."""
    ops, warnings = [], []
    if state == 'present':
        desired = [dict(e, options=KINDS[e['kind']].resolve(e['options'], device_info))
                   for e in desired]
    by_slot = dict((slot_key(q['parent']), q) for q in current if not q['default'])
    by_handle = dict((q['handle'], q) for q in current)

    if state == 'absent':
        gone = set()
        for entry in desired:
            have = by_slot.get(slot_key(entry['parent']))
            if have is None or parent_major(entry['parent']) in gone:
                continue
            if entry['handle'] not in (None, have['handle']):
                continue
            if entry['kind'] not in (None, have['kind']):
                continue
            ops.append(Op('del', device, {'parent': entry['parent'], 'kind': have['kind']},
                          why='absent'))
            gone.add(have['handle'])
            owner = by_handle.get(parent_major(entry['parent']))
            if owner is not None and owner['kind'] == 'tbf' and owner['handle'] not in gone:
                _restore_tbf(ops, warnings, device, owner)
        return ops, warnings

    fresh = set()     # handles created by this plan: nothing is below them yet
    changed = {}      # handle -> kind of qdiscs changed in place
    kept = {}         # desired handle (or the one read back) -> current qdisc kept in place
    for entry in desired:
        model = KINDS[entry['kind']]
        major = parent_major(entry['parent'])
        have = None if major in fresh else by_slot.get(slot_key(entry['parent']))
        handle = entry['handle']
        if have is None:
            ops.append(Op('add', device, entry, why='missing'))
            fresh.add(handle)
            continue
        if have['kind'] != entry['kind'] or (handle is not None and have['handle'] != handle):
            ops.append(Op('del', device, {'parent': entry['parent'], 'kind': have['kind']},
                          why='%s %s is in the way' % (have['kind'], have['handle'])))
            ops.append(Op('add', device, entry, why='replaces %s %s' % (have['kind'], have['handle'])))
            fresh.add(handle)
            continue
        kept[have['handle']] = have
        diff = compare(entry, have, device_info)
        if diff:
            why = ', '.join('%s %s -> %s' % (k, v[1], v[0]) for k, v in sorted(diff.items()))
            if model.can_change and not model.needs_recreate(entry['options'], have['raw']):
                ops.append(Op('change', device, entry, handle=have['handle'], why=why))
                changed[have['handle']] = model
                if model.resets_children == 'all':
                    fresh.add(have['handle'])
            else:
                ops.append(Op('del', device, {'parent': entry['parent'], 'kind': have['kind']},
                              why='%s cannot be changed in place' % entry['kind']))
                ops.append(Op('add', device, entry, handle=have['handle'], why=why))
                fresh.add(have['handle'])
                kept.pop(have['handle'])
            continue
        parent_model = changed.get(major)
        if parent_model is not None and parent_model.resets_children == 'fifo' \
                and entry['kind'] in ('pfifo', 'bfifo'):
            ops.append(Op('change', device, entry, handle=have['handle'],
                          why='the change of %s resets its fifo child' % major))

    if purge:
        wanted_slots = set(slot_key(e['parent']) for e in desired)
        for q in current:
            major = parent_major(q['parent'])
            if q['default'] or slot_key(q['parent']) in wanted_slots or major not in kept:
                continue
            ops.append(Op('del', device, {'parent': q['parent'], 'kind': q['kind']},
                          why='not in the tree (purge)'))
            owner = kept[major]
            if owner['kind'] == 'tbf':
                wanted = [e for e in desired if e['kind'] == 'tbf'
                          and e['handle'] in (None, owner['handle']) and e['parent'] == owner['parent']]
                if wanted:
                    ops.append(Op('change', device, wanted[0], handle=owner['handle'],
                                  why='gives tbf %s back its default bfifo' % owner['handle']))
                else:
                    _restore_tbf(ops, warnings, device, owner)
    return ops, warnings


def _restore_tbf(ops, warnings, device, tbf):
    """After its child is deleted a tbf holds a noop qdisc (drops everything): changing the tbf
    again makes the kernel attach its default bfifo."""
    args = KINDS['tbf'].args_from_raw(tbf['raw'])
    if args is None:
        warnings.append('tbf %s has no child qdisc now (it drops every packet): apply the tbf '
                        'again to give it its default bfifo' % tbf['handle'])
        return
    argv = ['qdisc', 'change', 'dev', device] + slot_argv(tbf['parent']) + \
        ['handle', tbf['handle'], 'tbf'] + args
    ops.append(Op('change', device, tbf, argv=argv,
                  why='gives tbf %s back its default bfifo' % tbf['handle']))


def kind_of_failed_op(ops, stderr):
    """The op that made ``tc -batch`` fail ('Command failed -:N'), or None."""
    m = re.search(r'Command failed -:(\d+)', stderr or '')
    if m and 0 < int(m.group(1)) <= len(ops):
        return ops[int(m.group(1)) - 1]
    return ops[0] if len(ops) == 1 else None


def explain_failure(ops, stderr):
    """A message for a failed tc call that names the qdisc and what to do."""
    op = kind_of_failed_op(ops, stderr)
    text = (stderr or '').strip()
    if 'Specified qdisc kind is unknown' in text or 'Unknown qdisc' in text:
        kind = op.entry.get('kind') if op is not None else None
        if kind:
            return kind_error_message(kind)
    where = (' (%s)' % ' '.join(['tc'] + op.argv)) if op is not None else ''
    return 'tc failed%s: %s' % (where, text)


# --- prediction (check mode) --------------------------------------------------------------------

# Drivers that set IFF_NO_QUEUE: without a root qdisc of its own such a device has noqueue.
NOQUEUE_DRIVERS = ('veth', 'dummy', 'bridge', 'bond', 'team', 'vlan', 'macvlan', 'ipvlan', 'vrf',
                   'vxlan', 'geneve', 'wireguard')


def default_root(device_info, default_qdisc='pfifo_fast'):
    """The qdisc the kernel attaches as root when a device's own root qdisc is deleted."""
    device_info = device_info or {}
    kind = default_qdisc or 'pfifo_fast'
    if device_info.get('link_type') == 'loopback' or \
            (device_info.get('linkinfo') or {}).get('info_kind') in NOQUEUE_DRIVERS:
        kind = 'noqueue'
    elif (device_info.get('num_tx_queues') or 1) > 1:
        kind = 'mq'
    options = {}
    model = KINDS.get(kind)
    if model is not None:
        complete = model.complete(dict(), 'default')
        options = model.predict(complete, device_info)[0] or {}
    return {'kind': kind, 'handle': '0:', 'parent': 'root', 'default': True, 'options': options,
            'raw': {}}


def _with_descendants(qdiscs, tops):
    """``tops`` and every qdisc below them (by identity: default qdiscs share handle 0:)."""
    gone = [q for q in qdiscs if any(q is t for t in tops)]
    grown = True
    while grown:
        handles = set(q['handle'] for q in gone if q['handle'])
        more = [q for q in qdiscs if parent_major(q['parent']) in handles
                and not any(q is g for g in gone)]
        gone += more
        grown = bool(more)
    return gone


def _without(qdiscs, gone):
    return [q for q in qdiscs if not any(q is g for g in gone)]


def simulate(before, ops, device_info=None, default_qdisc='pfifo_fast'):
    """The qdiscs as they will read back after ``ops``: check mode's predicted diff.

    Options are predicted the way the kernel derives them (a tbf's limit from its latency, red's
    ewma/Scell_log, fifo and fq_codel defaults from the device); a qdisc changed in place keeps
    its position; the kernel's side effects are applied (a tbf change sets its fifo children's
    limit to its own, a red change replaces its children by an invisible bfifo, a deleted root
    gives the device its default qdisc back). A handle the kernel picks itself stays None.
    """
    after = [dict(q) for q in before]
    for op in ops:
        slot = slot_key(op.entry.get('parent', 'root'))
        in_slot = [q for q in after if slot_key(q['parent']) == slot]
        if op.action == 'del':
            after = _without(after, _with_descendants(after, in_slot))
            continue
        model = KINDS[op.entry['kind']]
        old = in_slot[0] if in_slot else None
        if 'raw' in op.entry:
            # the tbf re-applied from its own read-back values: its options stay
            options, raw = dict(op.entry['options']), op.entry['raw']
        else:
            same = old is not None and op.action == 'change' and old['kind'] == model.name
            options, raw = model.predict(op.entry['options'], device_info,
                                         old.get('raw') if same else None)
            if options is None:
                options, raw = dict(old['options']) if same else {}, None
        handle = op.entry.get('handle') or (old['handle'] if old and op.action == 'change'
                                            else None)
        new = {'kind': model.name, 'handle': handle, 'parent': op.entry['parent'],
               'default': False, 'options': options, 'raw': raw or {}}
        if op.action == 'add' and old is not None:
            after = _without(after, _with_descendants(after, in_slot))
            old = None
        if old is not None:
            after = [new if q is old else q for q in after]
        else:
            after.append(new)
        if op.action == 'change' and model.resets_children == 'all':
            after = _without(after, _with_descendants(after, [new])[1:])
        elif op.action == 'change' and model.resets_children == 'fifo' and raw:
            for i, q in enumerate(after):
                if parent_major(q['parent']) == handle and q['kind'] in ('pfifo', 'bfifo'):
                    after[i] = dict(q, options=dict(q['options'], limit=raw['limit']),
                                    raw=dict(q.get('raw') or {}, limit=raw['limit']))
    if not any(q['parent'] == 'root' for q in after):
        after.insert(0, default_root(device_info, default_qdisc))
    return tree_order(after)


def tree_order(qdiscs):
    """Qdiscs parents before children: the root tree, then the ingress/clsact one, each child
    after its parent in class and handle order (the kernel lists them in hash order)."""
    def number(text):
        try:
            return int(text, 16)
        except (TypeError, ValueError):
            return -1

    def key(q):
        major, dummy, minor = q['parent'].partition(':')
        return (number(major), number(minor), number((q['handle'] or '').rstrip(':')))

    out, placed = [], set()

    def place(q):
        placed.add(id(q))
        out.append(q)
        if q['handle'] in (None, '0:'):
            return
        for child in sorted((c for c in qdiscs if id(c) not in placed
                             and parent_major(c['parent']) == q['handle']), key=key):
            place(child)

    for top in ('root', 'ingress', 'clsact'):
        for q in qdiscs:
            if q['parent'] == top and id(q) not in placed:
                place(q)
    for q in sorted((q for q in qdiscs if id(q) not in placed), key=key):
        place(q)
    return out


# --- ingress redirect to an ifb -----------------------------------------------------------------
# A device's ingress traffic cannot be queued; shaping it means redirecting it to an ifb device
# whose root qdisc does the shaping. The redirect is an ingress qdisc plus a u32 filter matching
# every packet with the action `mirred egress redirect dev IFB`.

FILTER_READ_ARGV = ['tc', '-j', 'filter', 'show', 'ingress', 'dev']
REDIRECT_PREF = 49152  # the preference the kernel gives the first filter of a block


def redirect_argv(device, target, pref):
    """``filter add ...`` (without the leading 'tc') of the match-all redirect to ``target``."""
    return ['filter', 'add', 'dev', device, 'ingress', 'protocol', 'all', 'pref', str(pref),
            'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev',
            target]


def parse_filters(data):
    """Redirecting filters of ``tc -j filter show ingress dev DEV`` (parsed JSON or its text):
    [{pref, protocol, kind, match_all, direction, to}], one per mirred redirect action."""
    if isinstance(data, str):
        text = data.strip()
        data = json.loads(text) if text else []
    out = []
    for item in data or []:
        options = item.get('options') or {}
        match = options.get('match')
        if item.get('kind') == 'matchall':
            match_all = True
        else:
            match_all = (item.get('kind') == 'u32' and isinstance(match, dict)
                         and str(match.get('mask')) == '0' and str(match.get('value')) == '0')
        for action in options.get('actions') or []:
            if action.get('kind') != 'mirred' or action.get('mirred_action') != 'redirect':
                continue
            out.append({'pref': item.get('pref'), 'protocol': item.get('protocol'),
                        'kind': item.get('kind'), 'match_all': match_all,
                        'direction': action.get('direction'), 'to': action.get('to_dev')})
    return sorted(out, key=lambda f: (f['pref'] or 0, f['to'] or ''))


def is_wanted_redirect(entry, target):
    return (entry['to'] == target and entry['match_all'] and entry['direction'] == 'egress'
            and entry['protocol'] == 'all')


def ingress_kind(qdiscs):
    """'ingress' or 'clsact' when the device has one (parsed ``parse_show`` list), else None."""
    for q in qdiscs:
        if q['parent'] in ('ingress', 'clsact') or q['kind'] in ('ingress', 'clsact'):
            return q['kind']
    return None


def filter_prefs(data):
    """The preferences of every filter in ``tc -j filter show`` output, redirecting or not."""
    if isinstance(data, str):
        text = data.strip()
        data = json.loads(text) if text else []
    return sorted(set(item.get('pref') for item in data or [] if item.get('pref') is not None))


def plan_redirect(device, target, qdiscs, filters, state='present', pref=REDIRECT_PREF,
                  prefs=None):
    """The tc operations for the redirect and the state they lead to.

    ``qdiscs`` from ``parse_show``, ``filters`` from ``parse_filters``, ``prefs`` from
    ``filter_prefs`` (the ingress qdisc is only deleted when no filter at all is left). Returns
    (ops, after) with ops a list of (argv without 'tc', reason) and after
    {'ingress': kind or None, 'redirects': [...]} as it will read back.
    """
    ops = []
    ingress = ingress_kind(qdiscs)
    redirects = [dict(f) for f in filters]
    if state == 'present':
        if ingress is None:
            ops.append((['qdisc', 'add', 'dev', device, 'ingress'], 'no ingress qdisc'))
            ingress = 'ingress'
        have = [f for f in redirects if is_wanted_redirect(f, target)]
        stray = sorted(set(f['pref'] for f in redirects if not is_wanted_redirect(f, target)))
        for stray_pref in stray:
            others = sorted(set(f['to'] for f in redirects if f['pref'] == stray_pref))
            ops.append((['filter', 'del', 'dev', device, 'ingress', 'pref', str(stray_pref)],
                        'the filter at pref %s redirects elsewhere or not every packet (to %s)'
                        % (stray_pref, ', '.join(str(o) for o in others))))
        redirects = [f for f in redirects if f['pref'] not in stray]
        if not [f for f in have if f['pref'] not in stray]:
            ops.append((redirect_argv(device, target, pref),
                        'no filter redirects the ingress of %s to %s' % (device, target)))
            redirects.append({'pref': pref, 'protocol': 'all', 'kind': 'u32', 'match_all': True,
                              'direction': 'egress', 'to': target})
    else:
        gone = sorted(set(f['pref'] for f in redirects if f['to'] == target))
        for gone_pref in gone:
            ops.append((['filter', 'del', 'dev', device, 'ingress', 'pref', str(gone_pref)],
                        'the filter at pref %s redirects to %s' % (gone_pref, target)))
        redirects = [f for f in redirects if f['pref'] not in gone]
        left = set(prefs if prefs is not None else (f['pref'] for f in filters)) - set(gone)
        if gone and not left and ingress == 'ingress':
            ops.append((['qdisc', 'del', 'dev', device, 'ingress'],
                        'the ingress qdisc holds no redirect any more'))
            ingress = None
    redirects.sort(key=lambda f: (f['pref'] or 0, f['to'] or ''))
    return ops, {'ingress': ingress, 'redirects': redirects}
