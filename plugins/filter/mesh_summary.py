# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_summary
short_description: The lines of a short summary of the mesh
version_added: 0.2.0
description:
  - Takes the play's hosts, C(hostvars), the result of M(meshfed.istio.mesh_ca) (run read-only) and the name of the
    variable each host registered the result of M(meshfed.istio.mesh_status) in; returns the lines of the summary
    C(playbooks/site.yml) prints.
  - "First line: C(mesh <mesh_id>: root CA <subject>, sha256 <fingerprint>) (the C(mesh_id) of the first host)."
  - "Then one line per host: C(<host> (<network>): Istio <version>, revision <revision>, east-west gateway <address or
    none>, intermediate serial <serial>; discovers: <cluster names or none>), followed, when the host's
    C(federate_clusters_mode) is V(service_entry), by C(; .global hosts (host=VIP): <host=VIP, ... or none>), else,
    when it discovers other clusters, by C( (every Service, by its cluster.local name))."
  - What a cluster's status does not say shows as C(?).
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, hostvars, ca, status
options:
  _input:
    description: The play's hosts, in order (C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hostvars:
    description: The variables of every host (C(hostvars)); C(federate_clusters_mode) defaults to V(multi_primary).
    type: dict
    required: true
  ca:
    description: The result of M(meshfed.istio.mesh_ca) (C(root.subject), C(root.fingerprint_sha256),
      C(clusters[<cluster name>].serial)).
    type: dict
    required: true
  status:
    description: Name of the variable holding each host's registered M(meshfed.istio.mesh_status) result
      (C(cluster_info), C(discovers), C(vips)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Read the mesh CA (read-only)
  meshfed.istio.mesh_ca:
    dir: "{{ install_istio_ca_dir }}"
    clusters: "{{ (ansible_play_hosts_all | meshfed.istio.mesh_topology(hostvars)).clusters
                  | map(attribute='cluster_name') | list }}"
  check_mode: true
  delegate_to: localhost
  run_once: true
  register: summary_ca

- name: Read what install_istio and federate_clusters left on each cluster
  meshfed.istio.mesh_status:
    kubeconfig: "{{ mesh_kubeconfig | default(omit) }}"
    context: "{{ mesh_context }}"
  register: summary_status

- name: Mesh summary
  ansible.builtin.debug:
    msg: "{{ ansible_play_hosts_all | meshfed.istio.mesh_summary(hostvars, summary_ca, 'summary_status') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The header, then one line per host.
  type: list
  elements: str
  sample:
    - "mesh mesh1: root CA CN=Root CA,O=Istio, sha256 3A:5F:..."
    - "cluster1 (network1): Istio 1.31.0, revision default, east-west gateway 192.0.2.11, intermediate serial 4A:1B:...;
      discovers: cluster2 (every Service, by its cluster.local name)"
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def mesh_summary(hosts, hostvars, ca, status):
    tf.check_hostvars("mesh_summary", hostvars)
    if not isinstance(ca, Mapping):
        raise AnsibleFilterError("mesh_summary: ca must be the result of meshfed.istio.mesh_ca, got %s"
                                 % type(ca).__name__)
    tf.check_registered("mesh_summary", "status", status)
    clusters = tf.call("mesh_summary", topology.play_clusters, hosts, hostvars)
    hosts = [c["host"] for c in clusters]
    return topology.mesh_summary(clusters, ca, topology.host_values(hosts, hostvars, status),
                                 topology.host_values(hosts, hostvars, "federate_clusters_mode"))


class FilterModule(object):

    def filters(self):
        return {"mesh_summary": mesh_summary}
