# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_problems
short_description: Every problem of the desired state of the mesh, before any change
version_added: 0.2.0
description:
  - One validation of the whole desired state of the play's hosts, run by the roles once, before their first change
    in any cluster. Returns the list of problems, each naming the inventory host and the variable the user wrote;
    empty when the state is usable.
  - "Checks the inventory variables of every host: what P(meshfed.istio.topology_errors#filter) checks (names,
    networks, mesh ID, contexts), the syntax of C(mesh_network) and C(mesh_id) (label values), C(mesh_gateway_address)
    and C(mesh_istiod_address) (an IP address or a DNS name), C(mesh_api_server) (an https URL) and C(mesh_exports)
    (namespace, Service names, label selector)."
  - "Checks the role variables each host gathered into the fact named O(fact): what Ansible's type conversion would
    let through (a string for a list, a boolean for a weight), VIP ranges, label keys, weighted routes (integers
    adding up to 100), token lifetimes, Istio versions, revision and namespace names."
  - And what involves several hosts, such as two networks sharing one gateway address, or a remote cluster whose
    C(federate_clusters_mode) is not C(primary_remote).
author:
  - meshfed.istio contributors (@meshfed)
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
  fact:
    description: Name of the fact in which each host gathered its role variables (a mapping of variable to value).
    type: str
"""

EXAMPLES = r"""
- name: Gather the role variables this host sees (defaults, group and host variables, extra vars)
  ansible.builtin.set_fact:
    __desired:
      federate_clusters_vip_cidr: "{{ federate_clusters_vip_cidr }}"
      federate_clusters_global_routes: "{{ federate_clusters_global_routes }}"

- name: Refuse a bad desired state before any change
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ ansible_play_hosts_all | meshfed.istio.mesh_problems(hostvars, '__desired') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The problems found, each naming the host and the variable.
  type: list
  elements: str
  sample:
    - "host cluster2: federate_clusters_vip_cidr: '240.240.0.0/33' is not a valid CIDR: ..."
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import desired
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def mesh_problems(hosts, hostvars, fact=None):
    tf.check_hostvars("mesh_problems", hostvars)
    if fact is not None:
        tf.check_registered("mesh_problems", "fact", fact)
    return tf.call("mesh_problems", desired.mesh_problems, hosts, hostvars, fact)


class FilterModule(object):

    def filters(self):
        return {"mesh_problems": mesh_problems}
