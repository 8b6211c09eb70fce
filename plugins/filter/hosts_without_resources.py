# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: hosts_without_resources
short_description: The hosts whose registered k8s_info result found nothing
version_added: 0.2.0
description:
  - Takes a list of hosts, C(hostvars) and the name of the variable each host registered a
    M(kubernetes.core.k8s_info) result in; returns, in order, the hosts whose result lists no C(resources) (it found
    nothing, was skipped, or did not run there).
  - For one check over the whole play, such as "every cluster has this Service", that names every host at fault.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, hostvars, result
options:
  _input:
    description: The hosts (usually C(ansible_play_hosts_all)).
    type: list
    elements: str
    required: true
  hostvars:
    description: The variables of every host (C(hostvars)).
    type: dict
    required: true
  result:
    description: Name of the variable holding each host's registered M(kubernetes.core.k8s_info) result.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Read the egress gateway Service on each cluster
  kubernetes.core.k8s_info:
    kind: Service
    namespace: istio-system
    name: istio-egressgateway
  register: egress

- name: Every cluster has one
  ansible.builtin.assert:
    that: missing | length == 0
    fail_msg: "no egress gateway on {{ missing | join(', ') }}"
  vars:
    missing: "{{ ansible_play_hosts_all | meshfed.istio.hosts_without_resources(hostvars, 'egress') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The hosts whose result lists no resources, in the order of O(_input).
  type: list
  elements: str
  sample: [cluster1, cluster2]
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology
from ansible_collections.meshfed.istio.plugins.plugin_utils import topology_filters as tf


def hosts_without_resources(hosts, hostvars, result):
    tf.check_hostvars("hosts_without_resources", hostvars)
    tf.check_registered("hosts_without_resources", "result", result)
    hosts = tf.call("hosts_without_resources", topology.host_list, hosts)
    return topology.hosts_without_resources(hosts, topology.host_values(hosts, hostvars, result))


class FilterModule(object):

    def filters(self):
        return {"hosts_without_resources": hosts_without_resources}
