# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: topology_errors
short_description: Problems of the mesh topology an inventory describes
version_added: 0.1.0
description:
  - Takes one dict per cluster (C(host), C(mesh_id), C(cluster_name), C(network), C(context), C(kubeconfig)), such as
    the C(clusters) of P(meshfed.istio.mesh_topology#filter), and returns the list of problems, each naming the
    inventory host and the field; empty when usable.
  - Checks that every cluster has a name (a DNS-1123 label), a network, a mesh ID and a context; that no two
    clusters share a name or a context; and that all share one mesh ID.
author:
  - meshfed.istio contributors (@meshfed)
options:
  _input:
    description: The clusters.
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse a bad inventory before any change
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ (ansible_play_hosts_all | meshfed.istio.mesh_topology(hostvars)).clusters | meshfed.istio.topology_errors }}"
"""

RETURN = r"""
_value:
  description: The problems found, each naming the host and the field.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology


def topology_errors(clusters):
    if not isinstance(clusters, list) or not all(isinstance(c, dict) for c in clusters):
        raise AnsibleFilterError("topology_errors: expects a list of dicts, got %s" % type(clusters).__name__)
    return topology.topology_errors(clusters)


class FilterModule(object):

    def filters(self):
        return {"topology_errors": topology_errors}
