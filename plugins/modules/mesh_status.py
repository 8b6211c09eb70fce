#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mesh_status
short_description: What one cluster holds of the mesh (read-only)
version_added: 0.2.0
description:
  - Reads, in one cluster, what install_istio recorded (ConfigMap C(meshfed-cluster-info)), which clusters its
    istiod discovers (the C(networking.istio.io/cluster) annotations of the Secrets labelled
    C(istio/multiCluster=true)), and the C(.global) VIPs (ConfigMap C(meshfed-global-vips)).
  - Of the remote secrets only that annotation is read into the result; never their data. Changes nothing.
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
  namespace:
    description: Istio's namespace.
    type: str
    default: istio-system
"""

EXAMPLES = r"""
- name: What cluster1 knows
  meshfed.istio.mesh_status:
    context: cluster1
  register: status
"""

RETURN = r"""
cluster_info:
  description: The data of ConfigMap C(meshfed-cluster-info) ({} when absent).
  returned: always
  type: dict
  sample: {meshID: mesh1, clusterName: cluster1, network: network1, istioVersion: 1.31.0}
discovers:
  description: The clusters whose remote secret this cluster holds.
  returned: always
  type: list
  elements: str
  sample: [cluster2]
vips:
  description: The C(.global) host -> VIP map ({} when absent).
  returned: always
  type: dict
  sample: {httpbin.bar.global: 240.240.12.34}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, federation_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(namespace=dict(type="str", default="istio-system"))
    return spec


def main():
    run_module(argument_spec(), federation_runner.run_mesh_status)


if __name__ == "__main__":
    main()
