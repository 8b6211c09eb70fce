# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_topology
short_description: The mesh the play's hosts describe, as the roles derive it
version_added: 0.2.0
description:
  - Takes the play's hosts (in order, C(ansible_play_hosts_all)) and C(hostvars), and returns one dict per cluster
    (one inventory host each) with what the roles derive from the whole play; the one place where the inventory's
    mesh variables become clusters.
  - "Per cluster: C(host), C(cluster_name) (C(mesh_cluster_name), default the host name), C(mesh_id), C(network),
    C(context), C(kubeconfig) (C(mesh_id), C(mesh_network), C(mesh_context), C(mesh_kubeconfig); V('') when undefined),
    C(role) (C(mesh_cluster_role), default V(primary)), C(mesh_primary), C(gateway_address) (C(mesh_gateway_address),
    V('') when undefined), C(api_server) (C(mesh_api_server)), C(exports) (C(mesh_exports), default V([]))."
  - "Derived per cluster: C(primary), a remote cluster's primary (its C(mesh_primary), else the play's first primary;
    null for a primary); C(control_plane_cluster), the cluster name of the cluster whose istiod it uses;
    C(istiod_address), the address remote clusters reach a primary's istiod at (C(mesh_istiod_address), else the
    C(install_istio_gateway_address) fact, else V('')), the primary's for a remote cluster; C(uninstall_primary), the
    primary that holds a remote cluster's remote secret on uninstall (C(primary), else the first host of O(all_hosts)
    with C(mesh_cluster_role) primary and the same C(mesh_id)); C(served), the remote clusters whose primary it is;
    C(sources), per C(federate_clusters_mode), the hosts whose remote secret its istiod needs (V(multi_primary) every
    other host, V(primary_remote) every remote cluster of the play for a primary, V(service_entry) none)."
  - Check the clusters with P(meshfed.istio.topology_errors#filter) before relying on them.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, hostvars, all_hosts
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
  all_hosts:
    description:
      - The inventory's hosts (C(groups['all'])), searched for a remote cluster's uninstall primary when the play has
        no primary for it (C(--limit)). Default O(_input).
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: The clusters of the play, as the roles see them
  ansible.builtin.debug:
    msg: "{{ topology.by_host[inventory_hostname] }}"
  vars:
    topology: "{{ ansible_play_hosts_all | meshfed.istio.mesh_topology(hostvars, groups['all']) }}"

- name: Remote clusters served by this primary
  ansible.builtin.debug:
    msg: "{{ (ansible_play_hosts_all | meshfed.istio.mesh_topology(hostvars)).by_host[inventory_hostname].served }}"
"""

RETURN = r"""
_value:
  description: The topology.
  type: dict
  contains:
    clusters:
      description:
        - One dict per host of O(_input), in that order, with the keys the description lists (C(host), C(cluster_name),
          C(mesh_id), C(network), C(context), C(kubeconfig), C(role), C(mesh_primary), C(gateway_address),
          C(istiod_address), C(api_server), C(exports), C(primary), C(control_plane_cluster), C(uninstall_primary),
          C(served), C(sources)).
      type: list
      elements: dict
      sample:
        - host: cluster1
          cluster_name: cluster1
          mesh_id: mesh1
          network: network1
          context: cluster1
          kubeconfig: /home/me/.kube/config
          role: primary
          mesh_primary: null
          gateway_address: 192.0.2.11
          istiod_address: 192.0.2.11
          api_server: null
          exports: []
          primary: null
          control_plane_cluster: cluster1
          uninstall_primary: null
          served: [cluster2]
          sources: {multi_primary: [cluster2], primary_remote: [cluster2], service_entry: []}
    by_host:
      description: The same cluster dicts by host.
      type: dict
    hosts:
      description: The hosts, in order.
      type: list
      elements: str
    networks:
      description: The distinct networks, in order of first use.
      type: list
      elements: str
    multi_network:
      description: Whether the clusters span more than one network.
      type: bool
    primaries:
      description: Hosts of the clusters that run a control plane (C(mesh_cluster_role) not V(remote)).
      type: list
      elements: str
    remotes:
      description: Hosts of the remote clusters.
      type: list
      elements: str
    first_primary:
      description: The first primary of the play; null when it has none.
      type: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def mesh_topology(hosts, hostvars, all_hosts=None):
    tf.check_hostvars("mesh_topology", hostvars)
    return tf.call("mesh_topology", topology.mesh_topology, hosts, hostvars, all_hosts)


class FilterModule(object):

    def filters(self):
        return {"mesh_topology": mesh_topology}
