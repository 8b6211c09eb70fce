# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_verify_clusters
short_description: The play's clusters as verify_mesh takes them, with what each must discover
version_added: 0.3.0
description:
  - Takes the play's hosts, C(hostvars) and the federation mode; returns one dict per cluster for
    O(meshfed.istio.verify_mesh#module:clusters).
  - C(discovers) are the cluster names whose remote secret that cluster's istiod needs under the mode (multi_primary
    every other cluster; primary_remote, for a primary, the remote clusters; service_entry none).
  - C(gateway_address) is C(mesh_gateway_address) (V('') means the gateway Service's LoadBalancer address),
    C(revision) is C(install_istio_revision), C(istiod) is C(verify_mesh_istiod) when the host sets it, and
    C(context) and C(kubeconfig) are C(mesh_context) and C(mesh_kubeconfig).
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, hostvars, mode
options:
  _input:
    description: The play's hosts, in order (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hostvars:
    description: The variables of every host (C(hostvars)).
    type: dict
    required: true
  mode:
    description: C(federate_clusters_mode) - V(multi_primary), V(primary_remote) or V(service_entry).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Verify the mesh the play's hosts make
  meshfed.istio.verify_mesh:
    mesh_id: mesh1
    clusters: "{{ ansible_play_hosts_all | meshfed.istio.mesh_verify_clusters(hostvars, 'multi_primary') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: One dict per cluster, in play order.
  type: list
  elements: dict
  sample:
    - name: cluster1
      host: cluster1
      network: network1
      role: primary
      discovers: [cluster2]
      gateway_address: 192.0.2.11
      revision: ''
      context: cluster1
      kubeconfig: /home/me/.kube/config
      istiod: {xds: 127.0.0.1:15010, debug: 127.0.0.1:15014, http: 127.0.0.1:8080}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def mesh_verify_clusters(hosts, hostvars, mode):
    tf.check_hostvars("mesh_verify_clusters", hostvars)
    return tf.call("mesh_verify_clusters", topology.verify_clusters, hosts, hostvars, mode)


class FilterModule(object):

    def filters(self):
        return {"mesh_verify_clusters": mesh_verify_clusters}
