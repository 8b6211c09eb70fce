# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the topology filters share: checking their arguments and turning the pure code's
TopologyError into an AnsibleFilterError that names the filter."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import TopologyError


def check_hostvars(name, hostvars):
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError("%s: hostvars must be a mapping (hostvars), got %s" % (name, type(hostvars).__name__))


def check_registered(name, argument, value):
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError("%s: %s must be the name of a registered variable, got %r" % (name, argument, value))


def call(name, fn, *args):
    """``fn(*args)``, a TopologyError becoming the filter's error."""
    try:
        return fn(*args)
    except TopologyError as e:
        raise AnsibleFilterError("%s: %s" % (name, e))
