# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_traffic_stage
short_description: The traffic policy of one stage of a staged rollout (a sample's, or your own)
version_added: 0.4.0
description:
  - Takes a staged policy - a base policy and named stages - and returns the policy of one stage, in the shape
    M(meshfed.istio.traffic_policy) takes in O(meshfed.istio.traffic_policy#module:policies) (or, for a C(.global)
    host, P(meshfed.istio.mesh_global_routes#filter)).
  - "A stage sets only the routes (C(routes), C(blue_green) or C(canary)); everything else comes from the base
    policy. So moving from one stage to another changes the VirtualService alone, never the DestinationRule: a stage
    that sets anything else is refused."
  - "The samples, by name:
    C(bookinfo-reviews) - C(reviews.bookinfo.svc.cluster.local), subsets v1, v2, v3; stages C(all-v1), C(v2-10)
    (90/10 v1/v2), C(v2-v3-50) (50/50 v2/v3), C(all-v3), C(jason) (the end-user jason to v2, everyone else to v3).
    C(helloworld) - C(helloworld.sample.svc.cluster.local), subsets v1, v2 (multi-primary - v1 in one cluster, v2 in
    another); stages C(all-v1), C(v2-10), C(v2-50), C(all-v2).
    C(httpbin-global) - C(httpbin.bar.global), subsets v1, v2 as the federation names them; stages C(all-v1),
    C(v2-10), C(all-v2)."
  - Fails naming the stage, or the sample, when either is unknown.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, stage
options:
  _input:
    description:
      - A sample name (C(bookinfo-reviews), C(helloworld), C(httpbin-global)) or a staged policy - a mapping with
        C(policy) (a traffic policy) and C(stages) (a list of mappings with C(name) and one of C(routes),
        C(blue_green), C(canary)).
    type: raw
    required: true
  stage:
    description: The name of the stage.
    type: str
    required: true
  namespace:
    description:
      - Moves a named sample to this namespace - its C(namespace) and its host (C(<service>.<namespace>.svc.cluster.local)).
        Not for C(httpbin-global), nor for a staged policy of your own (set it there).
    type: str
"""

EXAMPLES = r"""
- name: Reviews at the stage one variable selects
  meshfed.istio.traffic_policy:
    context: cluster1
    policies:
      - "{{ 'bookinfo-reviews' | meshfed.istio.mesh_traffic_stage(reviews_stage | default('all-v1')) }}"

- name: A staged rollout of your own
  meshfed.istio.traffic_policy:
    context: cluster1
    policies:
      - "{{ ratings_rollout | meshfed.istio.mesh_traffic_stage(ratings_stage) }}"
  vars:
    ratings_stage: half
    ratings_rollout:
      policy:
        host: ratings.shop.svc.cluster.local
        namespace: shop
        subsets: {v1: {version: v1}, v2: {version: v2}}
      stages:
        - {name: old, blue_green: {active: v1}}
        - {name: half, canary: {stable: v1, canary: v2, percent: 50}}
        - {name: new, blue_green: {active: v2}}

- name: The bookinfo sample deployed in namespace shop
  ansible.builtin.debug:
    msg: "{{ 'bookinfo-reviews' | meshfed.istio.mesh_traffic_stage('jason', namespace='shop') }}"
"""

RETURN = r"""
_value:
  description: The policy of the stage - the base policy with the stage's routes.
  type: dict
  sample:
    host: reviews.bookinfo.svc.cluster.local
    namespace: bookinfo
    subsets: {v1: {version: v1}, v2: {version: v2}, v3: {version: v3}}
    canary: {stable: v1, canary: v2, percent: 10}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import traffic
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def mesh_traffic_stage(sample, stage, namespace=None):
    try:
        return traffic.stage_policy(traffic.staged(sample, namespace), stage)
    except MeshError as e:
        raise AnsibleFilterError("mesh_traffic_stage: %s" % e)


class FilterModule(object):

    def filters(self):
        return {"mesh_traffic_stage": mesh_traffic_stage}
