# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: prometheus_federation
short_description: The Prometheus ConfigMap's data with one federation job per other cluster
version_added: 0.3.0
description:
  - Takes the Prometheus ConfigMap of Istio's C(samples/addons/prometheus.yaml) (as M(kubernetes.core.k8s_info) or the
    manifest gives it) and the other clusters' Prometheus addresses; returns the ConfigMap's C(data) whose
    C(prometheus.yml) has one scrape job per cluster, as Istio's multi-cluster monitoring guide writes it -
    C(federate-<cluster>) scraping C(/federate) with C(honor_labels), C(match[]) C({job="kubernetes-pods"}) and the
    label C(cluster) (the Istio cluster name, as Kiali groups by it).
  - Jobs named C(federate-*) with C(metrics_path /federate) are this filter's; they are replaced, and removed when
    their cluster is no longer given. Every other job and key is kept. When nothing changes, the text is returned as it
    was (not reformatted), so applying the result reports no change.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, targets
options:
  _input:
    description: The Prometheus ConfigMap (a dict with C(data.prometheus.yml)).
    type: dict
    required: true
  targets:
    description:
      - One dict per other cluster - C(cluster) (its Istio cluster name), C(address) (C(host:port) of its Prometheus as
        the Kiali cluster's Prometheus reaches it) and optional C(scheme) (V(http) or V(https), default V(http)).
    type: list
    elements: dict
    required: true
  interval:
    description: Scrape interval of the federation jobs.
    type: str
    default: 15s
"""

EXAMPLES = r"""
- name: Read the Prometheus configuration Kiali uses
  kubernetes.core.k8s_info:
    kind: ConfigMap
    namespace: istio-system
    name: prometheus
  register: __prometheus

- name: Federate cluster2's Prometheus into it
  kubernetes.core.k8s:
    state: present
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: prometheus, namespace: istio-system}
      data: "{{ __prometheus.resources[0] | meshfed.istio.prometheus_federation(__targets) }}"
  vars:
    __targets: [{cluster: cluster2, address: "prometheus.cluster2.example.com:9090"}]
"""

RETURN = r"""
_value:
  description: The ConfigMap's data, C(prometheus.yml) with the federation jobs.
  type: dict
"""

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import kiali
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def prometheus_federation(configmap, targets, interval="15s"):
    if not isinstance(configmap, dict):
        raise AnsibleFilterError("prometheus_federation: expected the Prometheus ConfigMap (a dict), got %s"
                                 % type(configmap).__name__)
    if not isinstance(targets, list):
        raise AnsibleFilterError("prometheus_federation: targets must be a list, got %s" % type(targets).__name__)
    try:
        # plain values: YAML does not represent the template engine's own string types
        configmap, targets, interval = json.loads(json.dumps([configmap, targets, interval]))
        return kiali.federated_configmap_data(configmap, targets, interval)
    except MeshError as e:
        raise AnsibleFilterError("prometheus_federation: %s" % e)


class FilterModule(object):

    def filters(self):
        return {"prometheus_federation": prometheus_federation}
