#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: remote_secret_prune
short_description: Remove the remote secrets this collection wrote for clusters no longer discovered
version_added: 0.2.0
description:
  - Lists, in one cluster, the Secrets labelled C(istio/multiCluster=true) and
    C(app.kubernetes.io/managed-by=meshfed.istio) (the remote secrets M(meshfed.istio.remote_secret) wrote), and
    deletes those whose C(networking.istio.io/cluster) annotation names a cluster not in O(keep).
  - Remote secrets written by anything else (C(istioctl create-remote-secret), another tool) are left alone.
  - Nothing of a secret's data is read into a result, a diff or a message.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The removed clusters and their Secrets' names.
  idempotent:
    support: full
options:
  keep:
    description: Cluster names whose remote secrets stay (the clusters this cluster's istiod discovers).
    type: list
    elements: str
    required: true
  namespace:
    description: Istio's namespace, where the remote secrets are.
    type: str
    default: istio-system
seealso:
  - module: meshfed.istio.remote_secret
"""

EXAMPLES = r"""
- name: Cluster1 discovers only cluster2 now
  meshfed.istio.remote_secret_prune:
    context: cluster1
    keep: [cluster2]
"""

RETURN = r"""
removed:
  description: Clusters whose remote secret was (or would be) removed.
  returned: always
  type: list
  elements: str
  sample: [cluster3]
kept:
  description: Clusters whose remote secret, written by this collection, stays.
  returned: always
  type: list
  elements: str
  sample: [cluster2]
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, remote_secret_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(
        keep=dict(type="list", elements="str", required=True, no_log=False),
        namespace=dict(type="str", default="istio-system"),
    )
    return spec


def main():
    run_module(argument_spec(), remote_secret_runner.run_prune)


if __name__ == "__main__":
    main()
