# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_sample_manifests
short_description: Everything Istio's samples make on one cluster, as manifests of the release
version_added: 0.3.0
description:
  - Takes the documents of the release's sample files (a mapping of file under C(samples/) to its documents, read
    with C(lookup('ansible.builtin.file', path) | ansible.builtin.from_yaml_all)) and one cluster of the plan of
    M(meshfed.istio.mesh_samples_plan#filter); returns C(manifests) - the sample namespaces (with the injection
    label) that do not exist or are the samples' already, and each app's documents - of its versioned workloads
    (helloworld-*, bookinfo's reviews-*) only the versions asked for, in the app's namespace, with O(registry) each
    container image taken from that registry (what precedes the image's last path segment replaced), and, with
    O(ingress_host), bookinfo's Gateway and VirtualService of the release serving that host.
  - Namespaces that exist and are not the samples' are returned in C(labelled) - they get the injection label only,
    and stay when the samples are removed.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, cluster, namespaces, owner, registry, ingress_host
options:
  _input:
    description: The documents of each file the cluster's apps need, by file (relative to C(samples/)).
    type: dict
    required: true
  cluster:
    description: One entry of C(clusters) in the plan of M(meshfed.istio.mesh_samples_plan#filter).
    type: dict
    required: true
  namespaces:
    description: The cluster's namespaces, name to labels.
    type: dict
    required: true
  owner:
    description: The owner label value of the samples' objects.
    type: str
    required: true
  registry:
    description: An image registry (and path) to take every image from, for clusters without access to the public
      registries; empty for the release's images.
    type: str
  ingress_host:
    description: The host bookinfo's Gateway and VirtualService (of the release's
      C(samples/bookinfo/networking/bookinfo-gateway.yaml), which O(_input) must hold) serve; empty for none.
    type: str
"""

EXAMPLES = r"""
- name: What the samples make on this cluster
  ansible.builtin.set_fact:
    __samples: "{{ __docs | meshfed.istio.mesh_sample_manifests(__cluster, __namespaces, 'deploy-samples') }}"
"""

RETURN = r"""
_value:
  description: The manifests and the namespaces only labelled.
  type: dict
  contains:
    manifests:
      description: The manifests, for M(meshfed.istio.owned_manifests).
      type: list
      elements: dict
    labelled:
      description: Existing namespaces that are not the samples' - name and the injection labels to set.
      type: list
      elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import samples
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def mesh_sample_manifests(docs_by_file, cluster, namespaces, owner, registry=None, ingress_host=None):
    if not isinstance(cluster, dict) or not isinstance(cluster.get("apps"), list):
        raise AnsibleFilterError("mesh_sample_manifests: cluster must be an entry of mesh_samples_plan's clusters, got %r"
                                 % (cluster,))
    try:
        return samples.cluster_manifests(cluster, dict(docs_by_file or {}), dict(namespaces or {}), owner,
                                         registry or None, ingress_host or None)
    except MeshError as e:
        raise AnsibleFilterError("mesh_sample_manifests: %s" % e)


class FilterModule(object):

    def filters(self):
        return {"mesh_sample_manifests": mesh_sample_manifests}
