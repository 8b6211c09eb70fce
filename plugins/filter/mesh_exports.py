# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_exports
short_description: Every Service the clusters of the play export, with cluster, network and gateway
version_added: 0.2.0
description:
  - Takes the play's hosts and C(hostvars), and the name of the variable each host registered the result of
    M(meshfed.istio.exported_services) in; returns every exported Service as
    M(meshfed.istio.global_service_entries) takes them in its O(meshfed.istio.global_service_entries#module:exports).
  - Each Service of that result gets C(cluster) (the host's C(mesh_cluster_name), default its host name),
    C(network) (C(mesh_network)) and C(gateway) (C(mesh_gateway_address), else the C(gatewayAddress) install_istio
    recorded in ConfigMap C(meshfed-cluster-info), else V('')).
  - A host without that variable, or whose task was skipped, exports nothing. Every cluster imports this same list,
    its own exports included (they make its local entries).
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, hostvars, result
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
  result:
    description: Name of the variable holding each host's registered M(meshfed.istio.exported_services) result.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Services this cluster exports
  meshfed.istio.exported_services:
    exports: "{{ mesh_exports | default([]) }}"
  register: exported

- name: Every cluster's .global entries for what the others export
  meshfed.istio.global_service_entries:
    cluster_name: "{{ mesh_cluster_name }}"
    exports: "{{ ansible_play_hosts_all | meshfed.istio.mesh_exports(hostvars, 'exported') }}"
"""

RETURN = r"""
_value:
  description: The exported Services (each as M(meshfed.istio.exported_services) returns it) with where they run.
  type: list
  elements: dict
  sample:
    - name: httpbin
      namespace: bar
      ports: [{name: http, port: 8000}]
      label_sets: [{version: v1}]
      cluster: cluster2
      network: network2
      gateway: 192.0.2.12
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def mesh_exports(hosts, hostvars, result):
    tf.check_hostvars("mesh_exports", hostvars)
    tf.check_registered("mesh_exports", "result", result)
    clusters = tf.call("mesh_exports", topology.play_clusters, hosts, hostvars)
    return topology.mesh_exports(clusters, topology.host_values(hosts, hostvars, result))


class FilterModule(object):

    def filters(self):
        return {"mesh_exports": mesh_exports}
