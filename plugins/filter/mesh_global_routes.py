# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_global_routes
short_description: The value of federate_clusters_global_routes from traffic policies of .global hosts
version_added: 0.4.0
description:
  - Takes traffic policies of C(<service>.<namespace>.global) hosts, in the shape of
    O(meshfed.istio.traffic_policy#module:policies), and returns the C(federate_clusters_global_routes) mapping
    (host to subset to weight) the role M(meshfed.istio.federate_clusters) routes them with.
  - "Why not objects of their own: the DestinationRule and VirtualService of a C(.global) host belong to the
    federation (M(meshfed.istio.global_service_entries), owner C(meshfed-global)), which makes one subset per
    exported label set (C(version=v2) becomes C(v2)) and the ISTIO_MUTUAL its gateways need.
    M(meshfed.istio.traffic_policy) refuses C(.global) hosts for that reason."
  - "So a policy here is weights over those subsets: C(host), C(subsets) named as the federation names them, and
    one default route - C(routes) with one route without C(match), C(blue_green) or C(canary). Weights are integers
    that sum to 100; zero weights are left out. C(name), C(namespace), C(traffic_policy), C(gateways), C(hosts),
    C(port) and C(export_to) are refused."
  - Fails naming the policy (its index and host) and the key at fault.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input
options:
  _input:
    description: The traffic policies of C(.global) hosts (a list of mappings).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: The federation routes httpbin.bar.global by the stage chosen
  ansible.builtin.include_role:
    name: meshfed.istio.federate_clusters
  vars:
    federate_clusters_global_routes: "{{ [httpbin_policy] | meshfed.istio.mesh_global_routes }}"
    httpbin_policy: "{{ 'httpbin-global' | meshfed.istio.mesh_traffic_stage(httpbin_stage | default('v2-10')) }}"
"""

RETURN = r"""
_value:
  description: Host to subset to weight (only weights above 0), hosts sorted.
  type: dict
  sample: {httpbin.bar.global: {v1: 90, v2: 10}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import traffic
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def mesh_global_routes(policies):
    if not isinstance(policies, list):
        raise AnsibleFilterError("mesh_global_routes: expects a list of traffic policies, got %s"
                                 % type(policies).__name__)
    try:
        return traffic.global_routes(policies)
    except MeshError as e:
        raise AnsibleFilterError("mesh_global_routes: %s" % e)


class FilterModule(object):

    def filters(self):
        return {"mesh_global_routes": mesh_global_routes}
