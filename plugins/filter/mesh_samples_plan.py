# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_samples_plan
short_description: Where Istio's samples go, checked, and what each cluster holds for them
version_added: 0.3.0
description:
  - Takes C(deploy_samples_placement) (a mapping of cluster host to a list of apps, or null for the seeds' placement),
    the hosts of C(mesh_clusters), C(hostvars) and the files under the Istio release's C(samples/) directory; returns
    C(clusters) (per cluster host - its namespaces with the injection label of its Istio and its apps, each with
    the release's manifest file) and C(summary), or C(errors) (the first problem, naming the cluster host and the
    variable).
  - An app is C(curl) (or C(sleep), which became C(curl) in Istio 1.24; the release's file decides), C(httpbin),
    C(helloworld) (versions v1, v2) or C(bookinfo) (versions v1, v2, v3 of reviews); given by name, or as a mapping
    with C(app), C(namespace) and C(versions).
  - The seeds' placement - the first cluster gets curl in foo, helloworld v1 and curl in sample, bookinfo in
    bookinfo; the second httpbin in bar, helloworld v2 and curl in sample; a single cluster gets both.
  - A namespace is labelled C(istio.io/rev=<install_istio_revision>) when the cluster has a revision, else
    C(istio-injection=enabled).
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, cluster_hosts, hostvars, files, traffic
options:
  _input:
    description: The placement (C(deploy_samples_placement)), or null for the seeds'.
    type: dict
    required: true
  cluster_hosts:
    description: The cluster hosts (C(groups['mesh_clusters'])).
    type: list
    elements: str
    required: true
  hostvars:
    description: The variables of every host (C(hostvars)).
    type: dict
    required: true
  files:
    description: The paths of the files under the release's C(samples/) directory, relative to it.
    type: list
    elements: str
    required: true
  traffic:
    description:
      - C(deploy_samples_traffic) - staged sample (C(bookinfo-reviews), C(helloworld)) to its stage (see
        M(meshfed.istio.mesh_traffic_stages#filter)); each cluster running the sample's app gets its policy, in the
        app's namespace.
    type: dict
"""

EXAMPLES = r"""
- name: Check where the samples go
  ansible.builtin.assert:
    that: __plan.errors | length == 0
    fail_msg: "{{ __plan.errors | join('; ') }}"
  vars:
    __plan: "{{ deploy_samples_placement | meshfed.istio.mesh_samples_plan(groups['mesh_clusters'], hostvars, __files) }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    clusters:
      description: Per cluster host with samples - host, cluster, revision, namespaces (name, labels), apps (app,
        name, namespace, versions, file), files (every release file it needs), traffic (policies for
        M(meshfed.istio.traffic_policy)).
      type: list
      elements: dict
    summary:
      description: One line per cluster, its apps and where they run.
      type: list
      elements: str
    kinds:
      description: The kinds (C(apiVersion/Kind)) of the objects samples make - what is pruned and removed.
      type: list
      elements: str
    errors:
      description: The first problem, naming the cluster host and the variable; empty when the placement is fine.
      type: list
      elements: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import samples
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def mesh_samples_plan(placement, cluster_hosts, hostvars, files, traffic=None):
    tf.check_hostvars("mesh_samples_plan", hostvars)
    try:
        plan = samples.samples_plan(placement, cluster_hosts, hostvars, files, traffic)
    except MeshError as e:
        return {"clusters": [], "summary": [], "errors": [str(e)], "kinds": list(samples.KINDS)}
    return dict(plan, errors=[], kinds=list(samples.KINDS))


class FilterModule(object):

    def filters(self):
        return {"mesh_samples_plan": mesh_samples_plan}
