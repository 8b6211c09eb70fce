# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_addon_manifests
short_description: The observability add-ons of the release's samples/addons one cluster gets, as manifests
version_added: 0.3.0
description:
  - Takes the documents of the release's add-on files (a mapping of file under C(samples/) to its documents) and
    whether the cluster is the one whose Kiali sees the mesh; returns C(files) (the add-on files the cluster gets,
    checked against O(files)) - C(addons/prometheus.yaml) on every cluster, C(addons/grafana.yaml),
    C(addons/kiali.yaml) and C(addons/jaeger.yaml) on the Kiali cluster - C(manifests) (their documents as the release
    writes them, the Prometheus ConfigMap O(configmap) with O(prometheus_data) when given, as
    M(meshfed.istio.prometheus_federation#filter) makes it) and C(kinds) (what to prune and remove).
  - With O(_input) empty, only C(files) and C(kinds) are returned - which files to read.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, kiali_cluster, files, configmap, prometheus_data
options:
  _input:
    description: The documents of the add-on files, by file (relative to C(samples/)).
    type: dict
    required: true
  kiali_cluster:
    description: Whether this cluster runs the Kiali that sees the mesh (and Grafana, Jaeger).
    type: bool
    required: true
  files:
    description: The paths of the files under the release's C(samples/) directory, relative to it.
    type: list
    elements: str
    required: true
  configmap:
    description: The name of the Prometheus ConfigMap.
    type: str
    default: prometheus
  prometheus_data:
    description: The data of that ConfigMap with the federation jobs; null for the release's.
    type: dict
"""

EXAMPLES = r"""
- name: Which add-on files this cluster gets
  ansible.builtin.set_fact:
    __files: "{{ {} | meshfed.istio.mesh_addon_manifests(true, __release_files) }}"
"""

RETURN = r"""
_value:
  description: The add-ons of the cluster.
  type: dict
  contains:
    files:
      description: The add-on files, relative to C(samples/).
      type: list
      elements: str
    manifests:
      description: Their documents, for M(meshfed.istio.owned_manifests).
      type: list
      elements: dict
    kinds:
      description: The kinds (C(apiVersion/Kind)) of the add-ons' objects.
      type: list
      elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import samples
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def mesh_addon_manifests(docs_by_file, kiali_cluster, files, configmap="prometheus", prometheus_data=None):
    try:
        wanted = samples.addon_files(bool(kiali_cluster), list(files or []))
    except MeshError as e:
        raise AnsibleFilterError("mesh_addon_manifests: %s" % e)
    return {"files": wanted, "kinds": list(samples.ADDON_KINDS),
            "manifests": samples.addon_manifests(dict(docs_by_file or {}), wanted, configmap, prometheus_data)}


class FilterModule(object):

    def filters(self):
        return {"mesh_addon_manifests": mesh_addon_manifests}
