#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: remote_secret
short_description: Let one cluster's istiod discover another cluster (an Istio remote secret)
version_added: 0.1.0
description:
  - The native equivalent of C(istioctl create-remote-secret | kubectl apply), with the Python client.
  - In the O(source) cluster (the one to be discovered) it ensures a service account and a read-only
    ClusterRole and binding for it, and a token. That is a C(kubernetes.io/service-account-token) Secret that it
    creates and waits for (Kubernetes 1.24+ no longer creates one), or with O(token_mode=request) a
    TokenRequest token with an expiry, renewed O(renew_before) seconds before it expires.
  - In the O(target) cluster (whose istiod discovers) it writes Secret C(istio-remote-secret-<cluster_name>)
    labelled C(istio/multiCluster=true) and annotated C(networking.istio.io/cluster), holding a kubeconfig whose
    server is O(server), the address the target's istiod reaches the source's API server at.
  - The secret is rewritten only when the server, the CA or the token changed, or the token expires soon.
  - Before anything is written, O(server) is checked to answer as the source's API server (O(verify_server)).
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.reader_token
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Server, CA fingerprint and token expiry; never the token.
  idempotent:
    support: full
options:
  cluster_name:
    description: Mesh name of the source cluster (its C(values.global.multiCluster.clusterName)).
    type: str
    required: true
  source:
    description: Connection to the source cluster, the one to be discovered (same keys as M(meshfed.istio.cacerts)).
    type: dict
    default: {}
    suboptions: &auth
      kubeconfig:
        description: Path of the kubeconfig file.
        type: path
      context:
        description: Context of the kubeconfig.
        type: str
      host:
        description: API server URL (with O(source.api_key)).
        type: str
      api_key:
        description: Bearer token for O(source.host).
        type: str
      validate_certs:
        description: Whether to verify the API server's certificate.
        type: bool
      ca_cert:
        description: CA bundle to verify the API server with.
        type: path
  target:
    description: Connection to the target cluster, where the remote secret is written.
    type: dict
    default: {}
    suboptions: *auth
  server:
    description:
      - API server URL of the source cluster as the target's istiod reaches it. Defaults to the server of the
        O(source) connection, which is often an address only the controller can reach.
    type: str
  verify_server:
    description: Check that O(server) answers as an API server with the source's CA before writing anything.
    type: bool
    default: true
  namespace:
    description: Istio's namespace (the same in both clusters).
    type: str
    default: istio-system
  service_account:
    description: Reader service account in the source cluster.
    type: str
    default: meshfed-istio-reader
  variables:
    description:
      - The variables some options come from, as a mapping of option to variable, for messages. A refusal about an
        option then names the variable the user wrote, such as C(mesh_api_server of host cluster2) for O(server).
    type: dict
    default: {}
  state:
    description: Whether the remote secret should exist in the target (the source's reader is left in place).
    type: str
    choices: [present, absent]
    default: present
seealso:
  - name: Istio, multi-primary on different networks
    description: Where remote secrets fit.
    link: https://istio.io/latest/docs/setup/install/multicluster/multi-primary_multi-network/
"""

EXAMPLES = r"""
- name: Cluster1's istiod discovers cluster2
  meshfed.istio.remote_secret:
    cluster_name: cluster2
    source:
      kubeconfig: ~/.kube/config
      context: cluster2
    target:
      kubeconfig: ~/.kube/config
      context: cluster1
    server: https://cluster2-api.example.com:6443

- name: Short-lived, renewed tokens
  meshfed.istio.remote_secret:
    cluster_name: cluster2
    source: {context: cluster2}
    target: {context: cluster1}
    token_mode: request
    token_expiration: 86400
    renew_before: 21600
"""

RETURN = r"""
secret:
  description: The remote secret in the target cluster (never its token).
  returned: always
  type: dict
  contains:
    namespace:
      description: Namespace.
      type: str
    name:
      description: Name, C(istio-remote-secret-<cluster_name>).
      type: str
    cluster:
      description: The source cluster's name.
      type: str
    server:
      description: Server in the kubeconfig.
      type: str
    ca_sha256:
      description: Short SHA-256 of the CA in the kubeconfig.
      type: str
    token_expires:
      description: Expiry of the token, when it has one.
      type: str
reasons:
  description: Why the secret was (or would be) written.
  returned: when O(state=present)
  type: list
  elements: str
source_objects:
  description: Objects created or updated (or that would be) in the source cluster.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, remote_secret, remote_secret_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = dict(
        cluster_name=dict(type="str", required=True),
        source=dict(type="dict", default={}, options=client.connection_spec()),
        target=dict(type="dict", default={}, options=client.connection_spec()),
        server=dict(type="str"),
        verify_server=dict(type="bool", default=True),
        namespace=dict(type="str", default="istio-system"),
        service_account=dict(type="str", default="meshfed-istio-reader"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        variables=dict(type="dict", default={}),
    )
    spec.update(remote_secret.token_argument_spec())
    return spec


def main():
    run_module(argument_spec(), remote_secret_runner.run, connection="target")


if __name__ == "__main__":
    main()
