#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: istioctl_install
short_description: Install, upgrade (by revision) or uninstall Istio on one cluster with istioctl
version_added: 0.1.0
description:
  - Renders an IstioOperator from its options (profile, revision, mesh ID, cluster name, network, gateways,
    C(values) and C(meshConfig) overrides), asks C(istioctl manifest generate) for the objects it means, and
    compares each with the cluster through a server-side-apply dry run, so the API server's own defaulting
    decides what differs. C(istioctl install) runs only when something differs; a second run reports no change.
  - Objects of an earlier install of the same revision that the rendering no longer contains (a gateway that
    was switched off) also count as a difference; C(istioctl install) prunes them.
  - Fields istiod manages itself at run time (webhook C(caBundle), the validating webhook's C(failurePolicy))
    are not compared.
  - Canary upgrades install a new O(revision) beside the old one; O(state=absent) removes one revision, or
    everything with O(purge=true).
  - Checks that C(istioctl) is the requested O(istio_version) and that the cluster's Kubernetes version is one
    that Istio supports, before any change.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
attributes:
  check_mode:
    support: full
    details: Never runs an install or uninstall; reports whether one would run and which objects differ.
  diff_mode:
    support: full
    details: Per object, the differing fields before and after (Secret values hidden).
  idempotent:
    support: full
options:
  istioctl:
    description: Path of the C(istioctl) binary (or its name on E(PATH)).
    type: path
    default: istioctl
  istio_version:
    description:
      - Istio version the install must be. C(1.31) accepts any 1.31 build of C(istioctl), C(1.31.2) only that one.
      - When omitted, whatever C(istioctl) is, is installed.
    type: str
  state:
    description: Whether the revision should be installed.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description: With O(state=absent), remove every revision and the cluster-wide resources, as C(istioctl uninstall --purge).
    type: bool
    default: false
  revision:
    description: Control-plane revision. Empty means the default revision. A new revision installs beside the old one (canary upgrade).
    type: str
    default: ''
  profile:
    description: Installation profile (C(default), C(minimal), C(remote), C(empty), ...).
    type: str
    default: default
  mesh_id:
    description: Mesh ID (C(values.global.meshID)); the same on every cluster of one mesh.
    type: str
  cluster_name:
    description: This cluster's name in the mesh (C(values.global.multiCluster.clusterName)).
    type: str
  network:
    description: This cluster's network (C(values.global.network)).
    type: str
  mesh_networks:
    description:
      - "Istio's mesh networks configuration, C({networks: {<network>: {endpoints: [...], gateways: [...]}}}),
        rendered as C(values.global.meshNetworks) (the C(meshNetworks) key of the C(istio) ConfigMap)."
      - It is how istiod learns the address of another network's east-west gateway that has no
        LoadBalancer address (for example given with C(mesh_gateway_address)); gateways with one are
        found from their Service. The C(mesh_networks) of the P(meshfed.istio.mesh_topology#filter)
        filter computes it from the inventory.
      - Empty means none.
    type: dict
    default: {}
  components:
    description: Gateways to install.
    type: dict
    default: {}
    suboptions:
      ingress_gateway:
        description: The ingress gateway C(istio-ingressgateway). Omitted means the profile decides.
        type: bool
      egress_gateway:
        description: The egress gateway C(istio-egressgateway). Omitted means the profile decides.
        type: bool
      eastwest_gateway:
        description:
          - The east-west gateway C(istio-eastwestgateway) for multi-network meshes, as Istio's
            gen-eastwest-gateway.sh makes it (network label, C(ISTIO_META_ROUTER_MODE=sni-dnat),
            C(ISTIO_META_REQUESTED_NETWORK_VIEW), ports 15021, 15443, 15012, 15017), fully rendered
            so that it does not depend on the sidecar injector.
        type: bool
        default: false
      eastwest_service_type:
        description:
          - The type of the east-west gateway's Service. Omitted means the chart's, C(LoadBalancer).
          - C(NodePort) (or C(ClusterIP)) for a gateway that other networks reach through an address the
            cluster does not give it; that address then reaches istiod through O(mesh_networks).
        type: str
        choices: [LoadBalancer, NodePort, ClusterIP]
  values:
    description: Helm values merged into the IstioOperator's C(spec.values).
    type: dict
    default: {}
  mesh_config:
    description: The IstioOperator's C(spec.meshConfig).
    type: dict
    default: {}
  multi_root:
    description:
      - Multi-root trust, for a root CA rotation or merging meshes. istiod accepts a new root bundle in
        Secret C(istio-system/cacerts) without a restart when it adds roots to the current bundle or drops roots
        from it (C(values.pilot.env.ISTIO_MULTIROOT_MESH=true)), and pushes the bundle to the proxies, which take it
        at once (C(meshConfig.defaultConfig.proxyMetadata.PROXY_CONFIG_XDS_AGENT=true)).
      - Off, istiod refuses a changed root bundle ("Multi root is disabled") and reloads new intermediates only.
      - O(values) and O(mesh_config) are merged over these settings.
    type: bool
    default: false
  hub:
    description: Image registry (C(spec.hub)).
    type: str
  tag:
    description: Image tag (C(spec.tag)).
    type: str
  iop_overlay:
    description: Any other IstioOperator fields, merged last into the rendered IstioOperator.
    type: dict
    default: {}
  readiness_timeout:
    description:
      - Seconds C(istioctl install) waits for the control plane and gateways to be ready, and, with
        O(state=absent), seconds to wait until the removed objects are gone (the error names what is left).
    type: int
    default: 300
notes:
  - Only O(kubeconfig) and O(context) are passed to C(istioctl); O(host) and O(api_key) serve the comparison only.
requirements:
  - istioctl of the Istio version to install
seealso:
  - module: meshfed.istio.cacerts
  - name: Istio, install multi-primary on different networks
    description: The topology the gateway options build.
    link: https://istio.io/latest/docs/setup/install/multicluster/multi-primary_multi-network/
"""

EXAMPLES = r"""
- name: Istio on cluster1, network1, with an east-west gateway
  meshfed.istio.istioctl_install:
    istioctl: /opt/istio-1.31/bin/istioctl
    istio_version: "1.31"
    kubeconfig: ~/.kube/config
    context: cluster1
    mesh_id: mesh1
    cluster_name: cluster1
    network: network1
    components:
      eastwest_gateway: true

- name: Canary upgrade - a second control plane beside the first
  meshfed.istio.istioctl_install:
    istioctl: /opt/istio-1.32/bin/istioctl
    context: cluster1
    revision: 1-32
    mesh_id: mesh1
    cluster_name: cluster1
    network: network1

- name: Remove the old revision once workloads moved
  meshfed.istio.istioctl_install:
    istioctl: /opt/istio-1.31/bin/istioctl
    context: cluster1
    state: absent
"""

RETURN = r"""
version:
  description: Version of the istioctl used.
  returned: always
  type: str
  sample: 1.31.2
kubernetes_version:
  description: The cluster's Kubernetes version.
  returned: always
  type: str
  sample: v1.36.3
revision:
  description: The revision (C(default) for the default one).
  returned: always
  type: str
  sample: default
objects:
  description: Objects that differ (or would be removed), with what would happen to each.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: Kind.
      type: str
    namespace:
      description: Namespace (null for cluster-scoped objects).
      type: str
    name:
      description: Name.
      type: str
    action:
      description: V(create), V(update), V(prune) or V(delete).
      type: str
    fields:
      description: Differing fields of an V(update).
      type: list
      elements: str
iop:
  description: The rendered IstioOperator.
  returned: when O(state=present)
  type: dict
output:
  description: What istioctl printed, when it ran.
  returned: when istioctl install or uninstall ran
  type: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, istioctl_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(
        istioctl=dict(type="path", default="istioctl"),
        istio_version=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        purge=dict(type="bool", default=False),
        revision=dict(type="str", default=""),
        profile=dict(type="str", default="default"),
        mesh_id=dict(type="str"),
        cluster_name=dict(type="str"),
        network=dict(type="str"),
        mesh_networks=dict(type="dict", default={}),
        components=dict(type="dict", default={}, options=dict(
            ingress_gateway=dict(type="bool"),
            egress_gateway=dict(type="bool"),
            eastwest_gateway=dict(type="bool", default=False),
            eastwest_service_type=dict(type="str", choices=["LoadBalancer", "NodePort", "ClusterIP"]),
        )),
        values=dict(type="dict", default={}),
        mesh_config=dict(type="dict", default={}),
        multi_root=dict(type="bool", default=False),
        hub=dict(type="str"),
        tag=dict(type="str"),
        iop_overlay=dict(type="dict", default={}),
        readiness_timeout=dict(type="int", default=300),
    )
    return spec


def main():
    run_module(argument_spec(), istioctl_runner.run, run_commands=True)


if __name__ == "__main__":
    main()
