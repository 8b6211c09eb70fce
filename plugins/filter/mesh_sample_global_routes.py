# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_sample_global_routes
short_description: The routes the federation writes for .global hosts, with those of the samples' stages
version_added: 0.4.0
description:
  - Takes C(federate_clusters_global_routes) (host to subset to weight) and C(deploy_samples_traffic) (staged sample
    to stage), and returns the routes of C(.global) hosts the role M(meshfed.istio.federate_clusters) writes - the
    given ones, and those of the staged C(.global) samples at their stage.
  - "So one variable selects the stage of every sample: C(deploy_samples_traffic: {httpbin-global: v2-10}) routes
    C(httpbin.bar.global) 90/10 over the federation's subsets C(v1) and C(v2), as C(bookinfo-reviews: v2-10) routes
    bookinfo's reviews. The C(.global) host's DestinationRule and VirtualService are the federation's
    (M(meshfed.istio.global_service_entries)), so the federation writes this route, not M(meshfed.istio.deploy_samples)."
  - Staged samples of other hosts (C(bookinfo-reviews), C(helloworld)) add nothing here.
  - Fails naming the variable at fault; a host routed by both variables is refused.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, stages
options:
  _input:
    description: C(federate_clusters_global_routes), a mapping of C(.global) host to a mapping of subset to weight.
    type: dict
    required: true
  stages:
    description: C(deploy_samples_traffic), a mapping of staged sample to stage (V(httpbin-global) is the C(.global) one).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The routes federate_clusters writes
  ansible.builtin.debug:
    msg: "{{ federate_clusters_global_routes | meshfed.istio.mesh_sample_global_routes(deploy_samples_traffic | default({})) }}"
  vars:
    federate_clusters_global_routes: {}
    deploy_samples_traffic: {httpbin-global: v2-10}
# -> {"httpbin.bar.global": {"v1": 90, "v2": 10}}
"""

RETURN = r"""
_value:
  description: Host to subset to weight (weights above 0 only).
  type: dict
  sample: {httpbin.bar.global: {v1: 90, v2: 10}}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import samples
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def mesh_sample_global_routes(routes, stages):
    try:
        return samples.global_routes(stages, routes)
    except MeshError as e:
        raise AnsibleFilterError("mesh_sample_global_routes: %s" % e)


class FilterModule(object):

    def filters(self):
        return {"mesh_sample_global_routes": mesh_sample_global_routes}
