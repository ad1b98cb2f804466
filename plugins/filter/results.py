# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that parse experiment outputs in users' own playbooks (documented in the .yml files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.zerodrop.testbed.plugins.module_utils.parsers import (
    ParseError, neper, neper_samples, nstat, tc_stats)


def _text(value, name):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    if isinstance(value, str):
        return value
    raise AnsibleFilterError('%s: expected text (e.g. the stdout of a command), got %s'
                             % (name, type(value).__name__))


def neper_kv(value, numbers=True):
    try:
        return neper.parse(_text(value, 'neper_kv'), numbers=numbers)
    except ParseError as e:
        raise AnsibleFilterError('neper_kv: %s' % e)


def neper_flows(value):
    try:
        return neper_samples.summary(_text(value, 'neper_flows'))
    except ParseError as e:
        raise AnsibleFilterError('neper_flows: %s' % e)


def nstat_counters(value, names=None):
    try:
        counters = nstat.parse(_text(value, 'nstat_counters'))
    except ParseError as e:
        raise AnsibleFilterError('nstat_counters: %s' % e)
    if names is None:
        return counters
    if isinstance(names, str):
        names = [names]
    return dict((n, counters.get(n, 0)) for n in names)


def jain_index(value):
    try:
        return neper_samples.jain_index(list(value))
    except (TypeError, ValueError) as e:
        raise AnsibleFilterError('jain_index: expects a list of numbers (per-flow bytes or rates): %s' % e)


def tc_qdisc_stats(value, before=None, dev=None):
    try:
        after = tc_stats.parse(value, dev)
        if before is None:
            return after
        return tc_stats.delta(tc_stats.parse(before, dev), after)
    except ParseError as e:
        raise AnsibleFilterError('tc_qdisc_stats: %s' % e)


class FilterModule(object):
    def filters(self):
        return {
            'neper_kv': neper_kv,
            'neper_flows': neper_flows,
            'nstat_counters': nstat_counters,
            'jain_index': jain_index,
            'tc_qdisc_stats': tc_qdisc_stats,
        }
