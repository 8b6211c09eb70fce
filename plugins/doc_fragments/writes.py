# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """The options of the modules that write a set of objects with server-side apply, in parallel."""

    DOCUMENTATION = r"""
options:
  field_manager:
    description: Field manager of the server-side applies.
    type: str
    default: meshfed.istio
  workers:
    description: Number of API calls made in parallel.
    type: int
    default: 8
"""
