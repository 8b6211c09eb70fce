#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: exported_services
short_description: List the Services a cluster exports to the mesh, with their ports and version labels
version_added: 0.1.0
description:
  - Reads, in one cluster, the Services chosen by O(exports) (namespace, and optionally a label selector and names)
    and, for each, its ports and the distinct sets of the O(label_keys) labels of the Pods it selects (for
    versioned subsets on the C(.global) endpoints), and its selector and ports as the Services of those label
    sets need them (see M(meshfed.istio.global_service_entries)).
  - Services labelled C(meshfed.istio/global-subset-of) (the label sets' Services that
    M(meshfed.istio.global_service_entries) writes) are never exported.
  - One LIST of Services per export entry and one LIST of Pods per namespace, whatever the number of Services.
  - Changes nothing.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  exports:
    description: What to export.
    type: list
    elements: dict
    default: []
    suboptions:
      namespace:
        description: Namespace of the Services.
        type: str
        required: true
      label_selector:
        description: Label selector of the Services (for example C(mesh-export=true)); all Services when omitted.
        type: str
      names:
        description: Only these Services.
        type: list
        elements: str
  label_keys:
    description: Pod labels copied onto the endpoints.
    type: list
    elements: str
    default: [version]
  info_namespace:
    description: Namespace of ConfigMap C(meshfed-cluster-info), read for RV(cluster_info).
    type: str
    default: istio-system
  global_form:
    description:
      - Form of the C(.global) model the exports are for. V(legacy), the literal Istio 1.6 form, needs istiocoredns
        and is refused when the Istio version recorded in C(meshfed-cluster-info) is 1.8.6 or newer.
    type: str
    choices: [current, legacy]
    default: current
"""

EXAMPLES = r"""
- name: What cluster2 exports
  meshfed.istio.exported_services:
    context: cluster2
    exports:
      - namespace: bar
        names: [httpbin]
      - namespace: sample
        label_selector: mesh-export=true
  register: exported
"""

RETURN = r"""
cluster_info:
  description: What M(meshfed.istio.istioctl_install)'s role recorded in ConfigMap C(meshfed-cluster-info)
    (meshID, clusterName, network, gatewayAddress, revision, istioVersion); empty when absent.
  returned: always
  type: dict
services:
  description: The exported Services.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    namespace:
      description: Namespace.
      type: str
    selector:
      description: The Service's selector (empty when it has none).
      type: dict
    ports:
      description: Ports (name, port, app_protocol, target_port, protocol), as the Service has them.
      type: list
      elements: dict
    label_sets:
      description: Distinct sets of the O(label_keys) labels of the selected Pods.
      type: list
      elements: dict
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, federation_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def main():
    spec = client.auth_argument_spec()
    spec.update(
        exports=dict(type="list", elements="dict", default=[], options=dict(
            namespace=dict(type="str", required=True),
            label_selector=dict(type="str"),
            names=dict(type="list", elements="str"),
        )),
        label_keys=dict(type="list", elements="str", default=["version"], no_log=False),
        info_namespace=dict(type="str", default="istio-system"),
        global_form=dict(type="str", default="current", choices=["current", "legacy"]),
    )
    run_module(spec, federation_runner.run_exported_services)


if __name__ == "__main__":
    main()
