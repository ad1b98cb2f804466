# -*- coding: utf-8 -*-
# Copyright: zerodrop.testbed contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers for the raw outputs of an experiment run, one module per format.

Every parser takes text (what the tool printed or wrote) and returns plain dicts/lists, so the
same code serves the modules, the filter plugins and the report. Bad input raises ParseError
with a message that names the format and the line.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ParseError(ValueError):
    """The text is not in the format the parser reads."""
