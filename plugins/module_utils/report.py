# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A results tree (docs/results-layout.md) -> runs.csv, report.md, report.html and PNG plots.

Runs are grouped by (variant, flows, mode); each figure is the mean over the repetitions that
succeeded, with the standard deviation and min-max. Failed runs are listed, never averaged.
A mode/baseline ratio is shown only where both sides have data and the baseline is not 0.

The report starts with metadata.json's ``notes`` and, when the experiment has a mode besides the
baseline, with that mode's effect: per flow count the figures zD is about side by side with
their ratio, runs that cannot show the effect (zd_checks: layout guard, queue never filled) or
whose client was stopped marked, and the kernels compared.

Plots need matplotlib (Agg backend) in the Python that runs this: the controller's, for the
experiment_report module. Entry point for a shell wrapper: ``main(argv)``, e.g.
``python -m ansible_collections.zerodrop.testbed.plugins.module_utils.report RESULTS_DIR``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import collections
import csv
import io
import json
import math
import os
import re
import sys

from ansible_collections.zerodrop.testbed.plugins.module_utils import run_record

# key in the flattened record, label, unit, scale applied before showing, format
METRICS = (
    ('throughput_bps', 'Throughput', 'Mbit/s', 1e-6, '%.1f'),
    ('fraction_of_bottleneck', 'Fraction of bottleneck rate', '', 1, '%.3f'),
    ('flows_alive', 'Flows alive at end', 'flows', 1, '%.0f'),
    ('flows_aborted', 'Flows aborted (TcpExtTCPAbortOnTimeout)', 'flows', 1, '%.0f'),
    ('flows_zero_bytes', 'Zero-byte flows', 'flows', 1, '%.0f'),
    ('jain_index', "Jain's fairness index", '', 1, '%.3f'),
    ('retrans_segs', 'Retransmitted segments (TcpRetransSegs)', 'segments', 1, '%.0f'),
    ('rto_count', 'RTOs (TcpExtTCPTimeouts)', 'timeouts', 1, '%.0f'),
    ('local_qdisc_drops', 'Sender-side qdisc drops', 'packets (skbs)', 1, '%.0f'),
    ('bottleneck_drops', 'Bottleneck qdisc drops', 'packets (skbs)', 1, '%.0f'),
    ('ecn_marks', 'ECN marks (RED marked)', 'packets', 1, '%.0f'),
    ('ecn_ce_pkts', 'CE packets received (IpExtInCEPkts)', 'packets', 1, '%.0f'),
    ('listen_overflows', 'Listen overflows', 'events', 1, '%.0f'),
    ('connect_failures', 'Failed connections (TcpAttemptFails: SYN timeouts, refused)',
     'connections', 1, '%.0f'),
    ('syn_retrans', 'SYN retransmissions (TcpExtTCPSynRetrans)', 'segments', 1, '%.0f'),
    ('connect_attempts', 'Connections attempted (TcpActiveOpens)', 'connections', 1, '%.0f'),
    ('flows_connected', 'Flows connected', 'flows', 1, '%.0f'),
    ('flows_stalled_connect', 'Flows stalled in SYN-SENT at the end', 'flows', 1, '%.0f'),
    ('backlog_max_bytes', 'Bottleneck backlog, max sampled', 'kB', 1e-3, '%.1f'),
)
METRIC = dict((m[0], m) for m in METRICS)
SUMMARY_COLUMNS = ('throughput_bps', 'fraction_of_bottleneck', 'flows_aborted', 'flows_zero_bytes',
                   'jain_index', 'retrans_segs', 'rto_count', 'local_qdisc_drops',
                   'bottleneck_drops', 'ecn_marks', 'connect_failures')
# The zD effect, in the order the first section shows it.
EFFECT_FIGURES = ('local_qdisc_drops', 'throughput_bps', 'fraction_of_bottleneck',
                  'connect_failures', 'flows_stalled_connect', 'rto_count', 'retrans_segs',
                  'flows_zero_bytes', 'flows_aborted', 'jain_index')
CPU_SHARES = ('busy', 'user', 'system', 'softirq', 'idle')
RTT_KEYS = ('p50', 'p90', 'p99', 'max', 'count')
RUN_COLUMNS = ('status', 'reason', 'mode', 'variant', 'flows', 'rep', 'tool', 'duration_s',
               'bottleneck_rate_bps', 'flows_started') + tuple(m[0] for m in METRICS) + (
                   'throughput_source', 'throughput_window_s', 'client_stopped', 'not_comparable')
# (file stem, title, [(flattened key or prefix, panel title)], ylabel, scale, rate line)
PLOTS = (
    ('throughput', 'Throughput', [('throughput_bps', None)], 'Throughput (Mbit/s)', 1e-6, True),
    ('fraction_of_bottleneck', 'Fraction of the bottleneck rate', [('fraction_of_bottleneck', None)],
     'Throughput / bottleneck rate', 1, False),
    ('flows_aborted', 'Aborted flows (TcpExtTCPAbortOnTimeout)', [('flows_aborted', None)],
     'Flows aborted', 1, False),
    ('flows_zero_bytes', 'Flows that delivered zero bytes', [('flows_zero_bytes', None)],
     'Zero-byte flows', 1, False),
    ('jain_index', "Jain's fairness index over per-flow bytes", [('jain_index', None)],
     "Jain's index (1 = fair)", 1, False),
    ('retrans_segs', 'Retransmissions (TcpRetransSegs)', [('retrans_segs', None)],
     'Retransmitted segments', 1, False),
    ('rto_count', 'Retransmission timeouts (TcpExtTCPTimeouts)', [('rto_count', None)],
     'RTOs', 1, False),
    ('local_qdisc_drops', 'Sender-side (local) qdisc drops', [('local_qdisc_drops', None)],
     'Drops (packets/skbs)', 1, False),
    ('connect_failures', 'Failed connections (TcpAttemptFails)', [('connect_failures', None)],
     'Failed connections', 1, False),
    ('flows_stalled_connect', 'Flows stalled in SYN-SENT at the end of the test',
     [('flows_stalled_connect', None)], 'Flows', 1, False),
    ('ecn_marks', 'ECN marks (RED marked)', [('ecn_marks', None)], 'Marked packets', 1, False),
    ('cpu', 'CPU busy per host role (% of all CPUs)', [('cpu.', 'busy')], 'CPU busy (%)', 1, False),
    ('rtt', 'RTT percentiles', [('rtt_ms.p50', 'p50'), ('rtt_ms.p90', 'p90'), ('rtt_ms.p99', 'p99')],
     'RTT (ms)', 1, False),
)


# ---------------------------------------------------------------- collecting and aggregating

def find_runs(results_dir):
    """Run directories (those holding run.json), sorted."""
    found = []
    for path, dirs, files in os.walk(results_dir):
        dirs.sort()
        if 'run.json' in files:
            found.append(path)
            dirs[:] = []
    return found


def load_record(run_dir, refresh=False):
    """result.json when present (and not ``refresh``), otherwise normalised from the raw files."""
    path = os.path.join(run_dir, 'result.json')
    if not refresh and os.path.exists(path):
        try:
            with open(path) as f:
                return json.load(f)
        except ValueError:
            pass
    try:
        return run_record.normalise(run_dir)
    except Exception as e:  # a broken run is reported, not fatal for the whole report
        run = run_record.load_run(run_dir)
        return {'status': 'failed', 'reason': 'cannot normalise: %s' % e, 'mode': run.get('mode'),
                'variant': run.get('variant'), 'flows': run.get('flows'), 'rep': run.get('rep'),
                'problems': [str(e)]}


def load_metadata(results_dir):
    path = os.path.join(results_dir, 'metadata.json')
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def flatten(record):
    """Scalar figures of a record: top-level metrics, ``cpu.<role>.<share>``, ``rtt_ms.<key>``."""
    flat = dict((k, record.get(k)) for k in RUN_COLUMNS)
    if flat['connect_failures'] is None:  # result.json before the name changed
        flat['connect_failures'] = record.get('conn_failures')
    flat['not_comparable'] = '; '.join(record.get('not_comparable') or []) or None
    flat['notes'] = '; '.join(record.get('notes') or []) or None
    if record.get('throughput_source') == 'sampled':
        flat['throughput_window_s'] = (record.get('throughput_sampled') or {}).get('window_s')
    for role, shares in sorted((record.get('cpu') or {}).items()):
        for share in CPU_SHARES:
            flat['cpu.%s.%s' % (role, share)] = (shares or {}).get(share)
    for key in RTT_KEYS:
        flat['rtt_ms.%s' % key] = (record.get('rtt_ms') or {}).get(key)
    return flat


def stats(values):
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {'n': n, 'mean': mean, 'std': std, 'min': min(values), 'max': max(values)}


def _flows_key(value):
    try:
        return (0, int(value))
    except (TypeError, ValueError):
        return (1, str(value))


def order_modes(modes, baseline):
    modes = sorted(set(m for m in modes if m is not None))
    return ([baseline] if baseline in modes else []) + [m for m in modes if m != baseline]


class Results(object):
    """All runs of one results tree, flattened and grouped."""

    def __init__(self, results_dir, baseline_mode='baseline', refresh=False):
        self.results_dir = results_dir
        self.baseline = baseline_mode
        self.metadata = load_metadata(results_dir)
        self.runs = []
        for run_dir in find_runs(results_dir):
            record = load_record(run_dir, refresh)
            flat = flatten(record)
            flat['run_dir'] = os.path.relpath(run_dir, results_dir)
            flat['problems'] = '; '.join(record.get('problems') or [])
            flat['per_sender'] = record.get('per_sender') or []
            flat['idle_senders'] = record.get('idle_senders') or []
            flat['start_spread_s'] = record.get('start_spread_s')
            self.runs.append(flat)
        self.runs.sort(key=lambda r: (str(r['variant']), _flows_key(r['flows']), str(r['mode']),
                                      _flows_key(r['rep'])))
        self.modes = order_modes([r['mode'] for r in self.runs], baseline_mode)
        self.variants = sorted(set(str(r['variant']) for r in self.runs))
        self.keys = sorted(set(k for r in self.runs for k in r if k.startswith(('cpu.', 'rtt_ms.'))))

    def ok(self):
        return [r for r in self.runs if r['status'] == 'ok']

    def failed(self):
        return [r for r in self.runs if r['status'] != 'ok']

    def flows(self, variant):
        return sorted(set(r['flows'] for r in self.runs if str(r['variant']) == variant), key=_flows_key)

    def group(self, variant, flows, mode, key):
        runs = [r for r in self.ok() if str(r['variant']) == variant and r['flows'] == flows
                and r['mode'] == mode]
        return stats([r.get(key) for r in runs])

    def counts(self, variant, flows, mode):
        runs = [r for r in self.runs if str(r['variant']) == variant and r['flows'] == flows
                and r['mode'] == mode]
        return (sum(1 for r in runs if r['status'] == 'ok'), sum(1 for r in runs if r['status'] != 'ok'))

    def summary(self):
        """Per variant, flows and mode: runs ok/failed and mean/std of SUMMARY_COLUMNS; per other
        mode a ``ratio`` row against the baseline mode."""
        rows = []
        for variant in self.variants:
            for flows in self.flows(variant):
                means = {}
                for mode in self.modes:
                    ok, failed = self.counts(variant, flows, mode)
                    if not ok and not failed:
                        continue
                    row = {'variant': variant, 'flows': flows, 'mode': mode, 'runs_ok': ok,
                           'runs_failed': failed}
                    for key in SUMMARY_COLUMNS:
                        row[key] = self.group(variant, flows, mode, key)
                    means[mode] = row
                    rows.append(row)
                base = means.get(self.baseline)
                for mode in self.modes:
                    if base is None or mode == self.baseline or mode not in means:
                        continue
                    row = {'variant': variant, 'flows': flows, 'mode': '%s/%s' % (mode, self.baseline),
                           'ratio': True}
                    for key in SUMMARY_COLUMNS:
                        row[key] = ratio(means[mode][key], base[key] if base else None)
                    rows.append(row)
        return rows


def ratio(value, base):
    if not value or not base or base['mean'] == 0:
        return None
    return value['mean'] / base['mean']


# ---------------------------------------------------------------- formatting

def fmt_stat(key, value):
    if value is None:
        return '—'
    _k, _label, _unit, scale, form = METRIC[key]
    text = form % (value['mean'] * scale)
    if value['std'] is not None:
        text += ' ± ' + form % (value['std'] * scale)
    return text


def fmt_ratio(value):
    if value is None:
        return '—'
    return ('%.2f×' if value < 100 else '%.0f×') % value


def column_title(key):
    _k, label, unit, _s, _f = METRIC[key]
    return '%s (%s)' % (label, unit) if unit in ('Mbit/s', 'kB') else label


def slug(text):
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', str(text)) or 'default'


def _short(value, limit=120):
    if value is None:
        return '—'
    if isinstance(value, dict) and 'kind' in value:  # a qdisc as tc -j prints it
        text = ' '.join(str(value[k]) for k in ('dev', 'kind', 'handle') if value.get(k))
        text += ' root' if value.get('root') else ' parent %s' % value.get('parent', '?')
        options = value.get('options') or {}
        if options:
            text += ' (%s)' % ' '.join('%s %s' % (k, v) for k, v in sorted(options.items()))
    elif isinstance(value, dict):
        text = ', '.join('%s=%s' % (k, _short(v, limit)) for k, v in sorted(value.items()))
    elif isinstance(value, (list, tuple)):
        text = '; '.join(_short(v, limit) for v in value)
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + '…'


def metadata_tables(metadata, modes):
    """Side-by-side facts per mode: ``metadata['modes'][mode]['hosts'][role][field]``.
    Returns (tables, rest): tables are (title, header, rows); rest is the other metadata."""
    per_mode = metadata.get('modes') or {}
    tables = []
    roles = sorted(set(role for m in per_mode.values() for role in (m or {}).get('hosts', {})))
    for role in roles:
        fields = sorted(set(f for m in per_mode.values()
                            for f in ((m or {}).get('hosts', {}).get(role) or {})))
        rows = []
        for field in fields:
            rows.append([field] + [_short(((per_mode.get(mode) or {}).get('hosts', {}).get(role) or {})
                                          .get(field, '—'), 300) for mode in modes])
        tables.append(('Host role `%s`' % role, ['field'] + list(modes), rows))
    rest = dict((k, _trimmed(v)) for k, v in metadata.items() if k not in ('modes', 'notes'))
    return tables, rest


def _trimmed(value, limit=20):
    """Long lists (the run list of the plan) shortened for the report; metadata.json has them all."""
    if isinstance(value, dict):
        return dict((k, _trimmed(v, limit)) for k, v in value.items())
    if isinstance(value, list) and len(value) > limit:
        return [_trimmed(v, limit) for v in value[:3]] + ['... %d items in all, see metadata.json' % len(value)]
    if isinstance(value, list):
        return [_trimmed(v, limit) for v in value]
    return value


# ---------------------------------------------------------------- plots

def _plot(results, variant, spec):
    """One PNG (bytes) for one PLOTS entry and variant, or None when there is nothing to show."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    stem, title, panels, ylabel, scale, rate_line = spec
    if panels[0][0] == 'cpu.':
        roles = sorted(set(k.split('.')[1] for k in results.keys if k.startswith('cpu.')))
        panels = [('cpu.%s.%s' % (role, panels[0][1]), role) for role in roles]
    flows = results.flows(variant)
    modes = results.modes
    data = [[[results.group(variant, f, m, key) for f in flows] for m in modes] for key, _t in panels]
    if not any(v for panel in data for mode in panel for v in mode):
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.8, 4.2), squeeze=False)
    width = 0.8 / max(len(modes), 1)
    hatches = ('', '//', '..', 'xx', '\\\\', 'oo')
    for ax, (key, panel_title), panel in zip(axes[0], panels, data):
        for i, (mode, values) in enumerate(zip(modes, panel)):
            xs = [j - 0.4 + width * (i + 0.5) for j in range(len(flows))]
            heights = [v['mean'] * scale if v else 0 for v in values]
            errs = [[(v['mean'] - v['min']) * scale if v else 0 for v in values],
                    [(v['max'] - v['mean']) * scale if v else 0 for v in values]]
            bars = ax.bar(xs, heights, width, yerr=errs, capsize=4, label=mode, color='C%d' % i,
                          hatch=hatches[i % len(hatches)], edgecolor='black', linewidth=0.6)
            labels = [('%.3g' if h < 1000 else '%.0f') % h if v else '' for h, v in zip(heights, values)]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=2)
            for x, v in zip(xs, values):
                if v is None:
                    ax.annotate('no data', (x, 0), ha='center', va='bottom', rotation=90, fontsize=7)
        if rate_line:
            rates = [r['bottleneck_rate_bps'] for r in results.ok()
                     if str(r['variant']) == variant and r['bottleneck_rate_bps']]
            if rates:
                ax.axhline(max(rates) * scale, color='grey', linestyle='--', linewidth=1,
                           label='bottleneck rate')
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.2 * (high - low))  # room for the legend above the bars
        ax.set_xticks(range(len(flows)))
        ax.set_xticklabels([str(f) for f in flows])
        ax.set_xlabel('Flows')
        ax.set_ylabel(ylabel)
        if panel_title:
            ax.set_title(panel_title, fontsize=10)
        ax.grid(axis='y', alpha=0.3)
        ax.set_axisbelow(True)
    axes[0][0].legend(fontsize=8, loc='upper center', ncol=len(modes) + 1, framealpha=0.9)
    fig.suptitle('%s (variant: %s)' % (title, variant), fontsize=11)
    fig.text(0.99, 0.01, 'bars: mean over successful repetitions; whiskers: min-max',
             ha='right', va='bottom', fontsize=7, color='grey')
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out = io.BytesIO()
    fig.savefig(out, format='png', dpi=100, metadata={'Software': None})
    plt.close(fig)
    return out.getvalue()


def plots(results):
    """``{relative path: (title, png bytes)}`` for every variant and plot with data, in order."""
    made = collections.OrderedDict()
    for variant in results.variants:
        for spec in PLOTS:
            png = _plot(results, variant, spec)
            if png is not None:
                made['plots/%s/%s.png' % (slug(variant), spec[0])] = (
                    '%s (variant %s)' % (spec[1], variant), png)
    return made


# ---------------------------------------------------------------- documents

def runs_csv(results):
    columns = list(RUN_COLUMNS) + results.keys + ['run_dir', 'problems']
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(columns)
    for run in results.runs:
        writer.writerow(['' if run.get(c) is None else
                         ('%.6g' % run[c] if isinstance(run[c], float) else run[c]) for c in columns])
    return out.getvalue()


def flags(results):
    """Runs to be read with care, in run order: ``[(mark, run, [why, ...])]`` - those that cannot
    show zD's effect (result.json not_comparable) and those whose client was stopped."""
    found = []
    for run in results.runs:
        why = [run['not_comparable']] if run.get('not_comparable') else []
        if run.get('client_stopped'):
            why.append(run.get('notes') or 'the client was stopped at the end of the test')
        if why:
            found.append((_mark(len(found)), run, why))
    return found


def _mark(index):
    letters = 'abcdefghijklmnopqrstuvwxyz'
    return letters[index % 26] * (index // 26 + 1)


def _marks(marked, variant, flows, mode):
    names = [mark for mark, run, _why in marked if str(run['variant']) == variant
             and run['flows'] == flows and run['mode'] == mode]
    return (' (flagged: %s)' % ', '.join(names)) if names else ''


def effect_rows(results, mode, variant, marked):
    """Per flow count: the runs, then each of EFFECT_FIGURES for the baseline and ``mode`` side
    by side with their ratio."""
    base = results.baseline
    rows = []
    for flows in results.flows(variant):
        counts = [results.counts(variant, flows, m) for m in (base, mode)]
        if not any(ok or failed for ok, failed in counts):
            continue
        rows.append([str(flows), 'runs ok/failed'] + [
            '%d/%d%s' % (ok, failed, _marks(marked, variant, flows, m))
            for (ok, failed), m in zip(counts, (base, mode))] + [''])
        for key in EFFECT_FIGURES:
            values = [results.group(variant, flows, m, key) for m in (base, mode)]
            rows.append([str(flows), column_title(key), fmt_stat(key, values[0]),
                         fmt_stat(key, values[1]), fmt_ratio(ratio(values[1], values[0]))])
    return rows


def _short_hash(value):
    return value[:12] if value else '—'


def kernel_blocks(metadata, modes, baseline):
    """The kernels of the modes and whether their configs differ only in LOCALVERSION."""
    kernels = metadata.get('kernels') or {}
    if not kernels:
        return [('p', 'Kernels: not recorded (metadata.json has no kernels).')]
    header = ['mode', 'kernel', 'zD branch', 'release', 'commit', 'config sha256',
              'without LOCALVERSION', 'from']
    rows = []
    for mode in modes:
        k = kernels.get(mode) or {}
        rows.append([str(mode), str(k.get('name') or k.get('preset') or '—'),
                     str(k.get('branch') or '—'), str(k.get('kernelrelease') or '—'),
                     _short_hash(k.get('commit')), _short_hash(k.get('config_sha256')),
                     _short_hash(k.get('config_sha256_without_localversion')),
                     str(k.get('source') or '—')])
    blocks = [('table', header, rows)]
    for mode, comparison in sorted((metadata.get('kernel_comparison') or {}).items()):
        if mode not in modes:
            continue
        same = comparison.get('identical_apart_from_localversion')
        if same is None:
            text = 'unknown (%s)' % (comparison.get('reason') or 'no config files')
        elif same:
            text = 'yes'
        else:
            differing = comparison.get('differing') or []
            text = 'no, %d symbol(s) differ: %s' % (len(differing), ', '.join(
                '%s (%s %s, %s %s)' % (d['symbol'], baseline, d['a'] or 'not set', mode,
                                       d['b'] or 'not set') for d in differing[:30]))
            if len(differing) > 30:
                text += ', ... (all in metadata.json)'
        blocks.append(('p', 'Configs of %s and %s identical apart from LOCALVERSION: %s.'
                       % (baseline, mode, text)))
    return blocks


def effect_sections(results, marked):
    """One section per mode besides the baseline: its effect, then the kernels."""
    out = []
    others = [m for m in results.modes if m != results.baseline]
    if results.baseline not in results.modes:
        return out
    for mode in others:
        blocks = [('p', 'Per flow count, %s against %s: means over the successful repetitions '
                        'and the ratio %s/%s. Flagged runs are listed under the table.'
                   % (mode, results.baseline, mode, results.baseline))]
        for variant in results.variants:
            if len(results.variants) > 1:
                blocks.append(('p', 'Variant %s' % variant))
            blocks.append(('table', ['flows', 'figure', results.baseline, mode,
                                     '%s/%s' % (mode, results.baseline)],
                           effect_rows(results, mode, variant, marked)))
        for mark, run, why in marked:
            if run['mode'] in (mode, results.baseline):
                blocks.append(('p', '%s: %s, %s flows, variant %s, rep %s: %s' % (
                    mark, run['mode'], run['flows'], run['variant'], run['rep'], '; '.join(why))))
        blocks += kernel_blocks(results.metadata, [results.baseline, mode], results.baseline)
        out.append(('Effect of %s against %s' % (mode, results.baseline), blocks))
    return out


PER_SENDER_COLUMNS = ('throughput_bps', 'flows_alive', 'flows_aborted', 'flows_zero_bytes', 'jain_index',
                      'retrans_segs', 'rto_count', 'local_qdisc_drops')


def per_sender_section(results):
    """Every sender of the runs that had more than one: its pair, its own figures and how long
    after the first sender it started; None when no run had several senders."""
    several = [r for r in results.runs if len(r.get('per_sender') or []) > 1]
    if not several:
        return None
    header = (['mode', 'variant', 'flows', 'rep', 'sender', 'receiver', 'its flows']
              + [column_title(k) for k in PER_SENDER_COLUMNS] + ['start offset (s)'])
    rows = []
    for run in several:
        for entry in run['per_sender']:
            rows.append([str(run['mode']), str(run['variant']), str(run['flows']), str(run['rep']),
                         str(entry.get('sender') or entry.get('dir')), str(entry.get('receiver') or '—'),
                         '—' if entry.get('flows') is None else str(entry['flows'])]
                        + [fmt_stat(k, stats([entry.get(k)])) for k in PER_SENDER_COLUMNS]
                        + ['—' if entry.get('start_offset_s') is None else '%.3f' % entry['start_offset_s']])
    spreads = ['%s/%s/%s/%s: %s' % (r['mode'], r['variant'], r['flows'], r['rep'],
                                    '—' if r.get('start_spread_s') is None else '%.3f s' % r['start_spread_s'])
               for r in several]
    blocks = [
        ('p', 'Runs with several senders, each sender\'s own figures (the summary above is the '
              'whole run: its Jain index is over every flow of the run; where its throughput is '
              'sampled, each sender\'s is its share of it, over the same window). Start offset: '
              'seconds after the first sender started, clock offsets corrected. Start spread per '
              'run: %s.' % '; '.join(spreads)),
        ('table', header, rows)]
    idle = ['%s/%s/%s/%s: %s' % (r['mode'], r['variant'], r['flows'], r['rep'], ', '.join(r['idle_senders']))
            for r in several if r.get('idle_senders')]
    if idle:
        blocks.append(('p', 'Senders with connections up that sent nothing during the window of '
                            'their run\'s throughput, which is then the other senders\' (runs.csv, '
                            'notes): %s.' % '; '.join(idle)))
    return ('Per sender', blocks)


def sections(results, images):
    """The report as (heading, blocks); blocks are ('p', text), ('table', header, rows),
    ('img', path, title) or ('pre', text). Rendered to Markdown and to HTML."""
    ok, failed = results.ok(), results.failed()
    experiment = results.metadata.get('experiment') or os.path.basename(
        os.path.normpath(results.results_dir))
    baseline_only = results.modes == [results.baseline]
    notes = [('p', str(note)) for note in results.metadata.get('notes') or []]
    if baseline_only and not notes:
        notes = [('p', 'Baseline only: no other mode ran, and no reason was recorded '
                       '(experiment_notes).')]
    marked = flags(results)
    out = [('Experiment report: %s%s' % (experiment, ' (baseline only)' if baseline_only else ''),
            notes + [
        ('p', '%d runs: %d ok, %d failed, %d flagged. Modes: %s (baseline: %s). Variants: %s.' % (
            len(results.runs), len(ok), len(failed), len(marked),
            ', '.join(map(str, results.modes)) or 'none', results.baseline,
            ', '.join(results.variants) or 'none')),
        ('p', 'Figures are means over the successful repetitions, ± the sample standard deviation '
              'when there are two or more; "—" means not captured or not computable. A ratio is '
              'shown only where both modes have data. Every run is in runs.csv.')])]
    out += effect_sections(results, marked)
    summary = results.summary()
    for variant in results.variants:
        header = ['flows', 'mode', 'runs ok/failed'] + [column_title(k) for k in SUMMARY_COLUMNS]
        rows = []
        for row in summary:
            if row['variant'] != variant:
                continue
            if row.get('ratio'):
                rows.append([str(row['flows']), row['mode'], ''] +
                            [fmt_ratio(row[k]) for k in SUMMARY_COLUMNS])
            else:
                rows.append([str(row['flows']), row['mode'], '%d/%d' % (row['runs_ok'], row['runs_failed'])]
                            + [fmt_stat(k, row[k]) for k in SUMMARY_COLUMNS])
        out.append(('Summary, variant %s' % variant, [('table', header, rows)]))
    per_sender = per_sender_section(results)
    if per_sender:
        out.append(per_sender)
    sampled = [r for r in ok if r.get('throughput_source') == 'sampled']
    if sampled:
        windows = [r['throughput_window_s'] for r in sampled]
        tools = '/'.join(sorted(set('%s' % r.get('tool') for r in sampled)))
        out[0][1].append(('p', '%d of the successful runs ran several %s processes (on one host, '
                               'or one per sender), which time their tests from their own connections: their '
                               'throughput is the receiver\'s sampled bytes over the stretch in '
                               'which every flow was up (%s s of tests of %s s; runs.csv, '
                               'throughput_window_s), not the sum of the processes\' reports.' % (
                                   len(sampled), tools, '%.1f-%.1f' % (min(windows), max(windows)),
                                   '/'.join(sorted(set('%s' % r['duration_s'] for r in sampled))))))
    if failed:
        out.append(('Failed runs', [('table', ['mode', 'variant', 'flows', 'rep', 'reason', 'run directory'],
                                     [[str(r['mode']), str(r['variant']), str(r['flows']), str(r['rep']),
                                       str(r['reason'] or 'no reason recorded'), r['run_dir']]
                                      for r in failed])]))
    else:
        out.append(('Failed runs', [('p', 'None.')]))
    if marked:
        out.append(('Flagged runs', [('table', ['mark', 'mode', 'variant', 'flows', 'rep', 'why',
                                                'run directory'],
                                      [[mark, str(r['mode']), str(r['variant']), str(r['flows']),
                                        str(r['rep']), '; '.join(why), r['run_dir']]
                                       for mark, r, why in marked])]))
    problems = [r for r in results.runs if r['problems']]
    if problems:
        out.append(('Input problems', [('table', ['run directory', 'problems'],
                                        [[r['run_dir'], r['problems']] for r in problems])]))
    blocks = [('img', path, title) for path, (title, _png) in images.items()]
    out.append(('Plots', blocks or [('p', 'No successful run with data to plot.')]))
    blocks = []
    tables, rest = metadata_tables(results.metadata, results.modes)
    for title, header, rows in tables:
        blocks.append(('p', title))
        blocks.append(('table', header, rows))
    if rest:
        blocks.append(('pre', json.dumps(rest, indent=1, sort_keys=True)))
    out.append(('Setup (metadata.json)', blocks or [('p', 'No metadata.json in the results directory.')]))
    return out


def _md_cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def render_markdown(parts):
    lines = []
    for level, (heading, blocks) in enumerate(parts):
        lines += ['%s %s' % ('#' if level == 0 else '##', heading), '']
        for block in blocks:
            if block[0] == 'p':
                lines += [block[1], '']
            elif block[0] == 'table':
                lines.append('| ' + ' | '.join(_md_cell(h) for h in block[1]) + ' |')
                lines.append('|' + '---|' * len(block[1]))
                lines += ['| ' + ' | '.join(_md_cell(c) for c in row) + ' |' for row in block[2]]
                lines.append('')
            elif block[0] == 'img':
                lines += ['![%s](%s)' % (block[2], block[1]), '']
            elif block[0] == 'pre':
                lines += ['```json', block[1], '```', '']
    return '\n'.join(lines)


def _esc(text):
    return (str(text).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace('"', '&quot;'))


STYLE = ('body{font-family:sans-serif;margin:2em;max-width:100em}'
         'table{border-collapse:collapse;margin:1em 0;font-size:90%}'
         'td,th{border:1px solid #bbb;padding:.25em .5em;text-align:right}'
         'td:nth-child(-n+2),th{text-align:left}img{max-width:100%;display:block;margin:1em 0}'
         'pre{background:#f4f4f4;padding:1em;overflow:auto}')


def render_html(parts):
    html = ['<!DOCTYPE html>', '<html><head><meta charset="utf-8">',
            '<title>%s</title>' % _esc(parts[0][0]), '<style>%s</style></head><body>' % STYLE]
    for level, (heading, blocks) in enumerate(parts):
        html.append('<h%d>%s</h%d>' % (1 if level == 0 else 2, _esc(heading), 1 if level == 0 else 2))
        for block in blocks:
            if block[0] == 'p':
                html.append('<p>%s</p>' % _esc(block[1]))
            elif block[0] == 'table':
                html.append('<table><tr>%s</tr>' % ''.join('<th>%s</th>' % _esc(h) for h in block[1]))
                html += ['<tr>%s</tr>' % ''.join('<td>%s</td>' % _esc(c) for c in row) for row in block[2]]
                html.append('</table>')
            elif block[0] == 'img':
                html.append('<img src="%s" alt="%s">' % (_esc(block[1]), _esc(block[2])))
            elif block[0] == 'pre':
                html.append('<pre>%s</pre>' % _esc(block[1]))
    html.append('</body></html>')
    return '\n'.join(html) + '\n'


def build(results_dir, baseline_mode='baseline', refresh=False):
    """Everything the report consists of: ``(files {relative path: bytes}, Results)``."""
    results = Results(results_dir, baseline_mode, refresh)
    images = plots(results)
    parts = sections(results, images)
    files = dict((path, png) for path, (_title, png) in images.items())
    files['runs.csv'] = runs_csv(results).encode('utf-8')
    files['report.md'] = render_markdown(parts).encode('utf-8')
    files['report.html'] = render_html(parts).encode('utf-8')
    return files, results


def write(dest, files, check=False):
    """Write the files that differ from what is on disk; return the relative paths that changed."""
    changed = []
    for rel, content in sorted(files.items()):
        path = os.path.join(dest, rel)
        if os.path.exists(path):
            with open(path, 'rb') as f:
                if f.read() == content:
                    continue
        changed.append(rel)
        if not check:
            if not os.path.isdir(os.path.dirname(path)):
                os.makedirs(os.path.dirname(path))
            with open(path + '.tmp', 'wb') as f:
                f.write(content)
            os.rename(path + '.tmp', path)
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='report', description='Write report.md, report.html, runs.csv and plots/ for a '
        'results directory (results/<experiment>/<timestamp>).')
    parser.add_argument('results_dir')
    parser.add_argument('--dest', help='where to write (default: RESULTS_DIR)')
    parser.add_argument('--baseline-mode', default='baseline',
                        help='mode the others are compared with (default: baseline)')
    parser.add_argument('--refresh', action='store_true',
                        help='normalise every run from its raw files even if result.json exists')
    args = parser.parse_args(argv)
    if not os.path.isdir(args.results_dir):
        parser.error('results_dir %s is not a directory' % args.results_dir)
    files, results = build(args.results_dir, args.baseline_mode, args.refresh)
    if not results.runs:
        sys.stderr.write('no run.json under %s: nothing to report\n' % args.results_dir)
        return 1
    dest = args.dest or args.results_dir
    changed = write(dest, files)
    for rel in sorted(files):
        sys.stdout.write('%s %s\n' % ('written  ' if rel in changed else 'unchanged', os.path.join(dest, rel)))
    sys.stdout.write('%d runs, %d failed\n' % (len(results.runs), len(results.failed())))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
