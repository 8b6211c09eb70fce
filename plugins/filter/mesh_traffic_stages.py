# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_traffic_stages
short_description: The names of the stages of a staged rollout (a sample's, or your own), in order
version_added: 0.4.0
description:
  - Takes what P(meshfed.istio.mesh_traffic_stage#filter) takes - a sample name (C(bookinfo-reviews), C(helloworld),
    C(httpbin-global)) or a staged policy - and returns the names of its stages, in order; for example to check a
    stage variable or to loop over a whole rollout.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input
options:
  _input:
    description: A sample name or a staged policy (a mapping with C(policy) and C(stages)).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: The stage asked for is one of the sample's
  ansible.builtin.assert:
    that: reviews_stage in ('bookinfo-reviews' | meshfed.istio.mesh_traffic_stages)
    fail_msg: "reviews_stage: {{ reviews_stage }} is not one of {{ 'bookinfo-reviews' | meshfed.istio.mesh_traffic_stages }}"
"""

RETURN = r"""
_value:
  description: The stage names, in order.
  type: list
  elements: str
  sample: [all-v1, v2-10, v2-v3-50, all-v3, jason]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import traffic
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def mesh_traffic_stages(sample):
    try:
        staged = traffic.staged(sample)
    except MeshError as e:
        raise AnsibleFilterError("mesh_traffic_stages: %s" % e)
    if not isinstance(staged.get("stages"), list):
        raise AnsibleFilterError("mesh_traffic_stages: a staged policy is a mapping {policy, stages: [{name, ...}]}")
    return traffic.stage_names(staged)


class FilterModule(object):

    def filters(self):
        return {"mesh_traffic_stages": mesh_traffic_stages}
