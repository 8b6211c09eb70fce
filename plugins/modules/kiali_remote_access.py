#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kiali_remote_access
short_description: Let one Kiali see other clusters of the mesh, read-only
version_added: 0.3.0
description:
  - The native equivalent of Kiali's C(kiali-prepare-remote-cluster.sh) (view-only) for the Kiali of Istio's
    C(samples/addons/kiali.yaml), for every remote cluster at once.
  - In each remote cluster of O(remotes) it ensures a service account, a ClusterRole that only gets, lists and
    watches what Kiali shows (never Secrets, no port-forward, no proxy, no write) and its binding, and a token.
    The token is that of a C(kubernetes.io/service-account-token) Secret, or with O(token_mode=request) a
    TokenRequest token renewed O(renew_before) seconds before it expires, as M(meshfed.istio.remote_secret) does.
  - In the Kiali cluster (the connection options) it writes, per remote cluster, the Secret
    C(kiali-remote-cluster-secret-<name>) in O(namespace), labelled C(kiali.io/multiCluster=true) and annotated
    C(kiali.io/cluster), holding one kubeconfig under the cluster's name (the file name Kiali takes as the
    cluster's name, so it must be the Istio cluster name); a Secret is rewritten only when the server, the CA or the
    token changed, or the token expires soon.
  - It mounts each Secret read-only at C(/kiali-remote-cluster-secrets/<secret name>) in the Kiali Deployment and
    sets the pod template annotation C(meshfed.istio/kiali-remote-secrets-sha256), a hash of the Secrets' data
    (never the data), with a server-side apply of its own field manager (C(meshfed-istio-kiali)); so Kiali is
    restarted when, and only when, a remote Secret or the set of remote clusters changed.
  - Kiali remote Secrets this module wrote for clusters no longer in O(remotes) are removed (with their mounts).
  - O(state=absent) removes the Secrets, the mounts and the annotation it wrote, and the reader objects in each
    cluster of O(remotes).
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
  - meshfed.istio.reader_token
attributes:
  check_mode:
    support: full
    details:
      - Reads both sides and predicts the changes with a server-side dry run of the Deployment; writes nothing.
      - A token that would have to be made first makes the hash annotation show as V(<new>).
  diff_mode:
    support: full
    details: Per cluster the server, CA fingerprint and token expiry (never the token); the Deployment's remote volumes,
      mounts and hash.
  idempotent:
    support: full
options:
  cluster_name:
    description: Istio cluster name of the Kiali cluster, to refuse it as one of its own remotes.
    type: str
  namespace:
    description: Kiali's namespace, where its Deployment is and the remote Secrets are written.
    type: str
    default: istio-system
  deployment:
    description: Name of the Kiali Deployment.
    type: str
    default: kiali
  container:
    description: Name of the Kiali container in O(deployment).
    type: str
    default: kiali
  remotes:
    description:
      - The clusters Kiali should see besides its own. Each is reached with its own connection options.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Istio cluster name (C(values.global.multiCluster.clusterName)); names the Secret, its data key and a volume,
            so a DNS-1123 label of at most 35 characters.
        type: str
        required: true
      server:
        description:
          - API server URL of this cluster as Kiali's pod reaches it. Defaults to the server of this cluster's
            connection, which is often an address only the controller can reach.
        type: str
      kubeconfig:
        description: Path of the kubeconfig file.
        type: path
      context:
        description: Context of the kubeconfig.
        type: str
      host:
        description: API server URL (with O(remotes[].api_key)).
        type: str
      api_key:
        description: Bearer token for O(remotes[].host).
        type: str
      validate_certs:
        description: Whether to verify the API server's certificate.
        type: bool
      ca_cert:
        description: CA bundle to verify the API server with.
        type: path
  remote_namespace:
    description: Namespace of the reader service account (and its token Secret) in each remote cluster; must exist.
    type: str
    default: istio-system
  service_account:
    description: Reader service account in each remote cluster; its ClusterRole and binding are C(<name>-<namespace>).
    type: str
    default: kiali-remote-reader
  verify_server:
    description: Check that each remote's O(remotes[].server) answers as its API server before writing anything.
    type: bool
    default: true
  variables:
    description:
      - The variables some options come from, as a mapping of option to variable, for messages.
    type: dict
    default: {}
  state:
    description: Whether Kiali should see the remote clusters.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Kiali also needs one Prometheus holding every cluster's metrics; see P(meshfed.istio.prometheus_federation#filter).
  - The reader cannot port-forward, so the Envoy tabs of workloads in remote clusters stay empty.
seealso:
  - name: Kiali, multi-cluster
    description: How Kiali reads remote clusters.
    link: https://kiali.io/docs/configuration/multi-cluster/
  - module: meshfed.istio.remote_secret
"""

EXAMPLES = r"""
- name: The Kiali of cluster1 sees cluster2 and cluster3
  meshfed.istio.kiali_remote_access:
    kubeconfig: ~/.kube/config
    context: cluster1
    cluster_name: cluster1
    remotes:
      - name: cluster2
        context: cluster2
        server: https://cluster2-api.example.com:6443
      - name: cluster3
        context: cluster3
        server: https://cluster3-api.example.com:6443

- name: Short-lived tokens, renewed a day before they expire
  meshfed.istio.kiali_remote_access:
    context: cluster1
    remotes: [{name: cluster2, context: cluster2}]
    token_mode: request
    token_expiration: 604800
    renew_before: 86400

- name: Kiali sees its own cluster only again
  meshfed.istio.kiali_remote_access:
    context: cluster1
    remotes: [{name: cluster2, context: cluster2}]
    state: absent
"""

RETURN = r"""
clusters:
  description: Each remote cluster Kiali sees (never its token).
  returned: when O(state=present)
  type: list
  elements: dict
  contains:
    cluster:
      description: The cluster's name.
      type: str
    secret:
      description: Name of its Secret in O(namespace).
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
      description: Why the Secret was (or would be) written; empty when it stays.
      type: list
      elements: str
    remote_objects:
      description: Objects created or updated (or that would be) in this cluster.
      type: list
      elements: str
  sample:
    - cluster: cluster2
      secret: kiali-remote-cluster-secret-cluster2
      server: https://cluster2-api.example.com:6443
      ca_sha256: 3f1c0a9d2b7e4c51
      token_expires: null
      reasons: []
      remote_objects: []
removed:
  description: Kiali remote Secrets removed (or that would be), of clusters no longer in O(remotes), or all with O(state=absent).
  returned: always
  type: list
  elements: str
  sample: [kiali-remote-cluster-secret-cluster3]
remote_objects:
  description: Per remote cluster, the reader objects created, updated or (O(state=absent)) deleted, or that would be.
  returned: always
  type: dict
  sample: {cluster2: ["ServiceAccount istio-system/kiali-remote-reader"]}
secrets_sha256:
  description: The hash the Deployment's pod template carries; null when none, or unknown yet in check mode.
  returned: always
  type: str
  sample: 0d5c3e2f6a1b4c7d8e9f00112233445566778899aabbccddeeff001122334455
restarted:
  description: Whether the Deployment's pod template changed (or would), which restarts Kiali.
  returned: always
  type: bool
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, kiali_runner, remote_secret
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    remote = dict(name=dict(type="str", required=True), server=dict(type="str"))
    remote.update(client.connection_spec())
    spec = client.auth_argument_spec()
    spec.update(
        cluster_name=dict(type="str"),
        namespace=dict(type="str", default="istio-system"),
        deployment=dict(type="str", default="kiali"),
        container=dict(type="str", default="kiali"),
        remotes=dict(type="list", elements="dict", default=[], options=remote),
        remote_namespace=dict(type="str", default="istio-system"),
        service_account=dict(type="str", default="kiali-remote-reader"),
        verify_server=dict(type="bool", default=True),
        variables=dict(type="dict", default={}),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    spec.update(remote_secret.token_argument_spec())
    return spec


def main():
    run_module(argument_spec(), kiali_runner.run, name_option="cluster_name")


if __name__ == "__main__":
    main()
