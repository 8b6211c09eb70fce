# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_vm_plan
short_description: The inventory's VMs, checked, and what each cluster holds for them
version_added: 0.4.0
description:
  - Takes the hosts of C(mesh_vms), the hosts of C(mesh_clusters) and C(hostvars); returns C(vms) (one dict per VM
    host), C(clusters) (per cluster that a VM names - its namespaces, service accounts, WorkloadGroups,
    WorkloadEntries and Services) and C(errors) (every problem of the VMs' C(onboard_vm_*) variables, each naming
    the VM and the variable).
  - A VM joins the network of its cluster unless C(onboard_vm_network) names another one (multi-network).
  - VMs of one WorkloadGroup (same cluster, namespace and C(onboard_vm_app)) must agree on service account,
    ports, network and labels.
  - VMs with C(onboard_vm_state=absent) keep their namespaces in the pruning scope, so their WorkloadEntry (and
    their group, once no VM uses it) goes.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, cluster_hosts, hostvars
options:
  _input:
    description: The VM hosts (C(groups['mesh_vms'])).
    type: list
    elements: str
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
"""

EXAMPLES = r"""
- name: Check the VMs of the inventory
  ansible.builtin.assert:
    that: __plan.errors | length == 0
    fail_msg: "{{ __plan.errors | join('; ') }}"
  vars:
    __plan: "{{ groups['mesh_vms'] | meshfed.istio.mesh_vm_plan(groups['mesh_clusters'], hostvars) }}"
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    vms:
      description: Per VM host - host, cluster_host, cluster, app, namespace, service_account, network, cluster_network,
        multi_network, address, autoregister, ports, labels, state, service, locality.
      type: dict
    clusters:
      description: Per cluster named by a VM - host, cluster, context, kubeconfig, network, namespaces (the pruning
        scope), create_namespaces, service_accounts, workload_groups, workload_entries, services, vms.
      type: list
      elements: dict
    errors:
      description: Messages, each naming the VM host and the variable.
      type: list
      elements: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import vms
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def mesh_vm_plan(vm_hosts, cluster_hosts, hostvars):
    tf.check_hostvars("mesh_vm_plan", hostvars)
    return tf.call("mesh_vm_plan", vms.vm_plan, vm_hosts, cluster_hosts, hostvars)


class FilterModule(object):

    def filters(self):
        return {"mesh_vm_plan": mesh_vm_plan}
