#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: verify_mesh
short_description: Prove, link by link, that the mesh would carry traffic, from what the real istiods send their proxies
version_added: 0.3.0
description:
  - Reads every cluster of the mesh once and checks, with a reason in plain words for each check, what follows.
  - Per cluster, the API server answers; istiod is Ready (its version and revision); the injection webhook injects a
    dry-run Pod in a namespace labelled for injection; C(istio-ca-root-cert) holds exactly the mesh's roots;
    C(cacerts) chains to them; days left on the intermediate and the root (warned under O(warn_days)).
  - Per ordered pair of clusters (A discovers B), A holds B's remote secret; its token lists B's Services and cannot
    write (SelfSubjectAccessReview); A's istiod reports B synced (C(/debug/clusterz)) and, across networks, knows B's
    network gateway at B's address (C(/debug/networkz)).
  - Data plane, from istiod's xDS (port 15010) as a sidecar of the service's namespace sees it, for every Service of B
    with ready endpoints and every C(.global) entry A imports from B, A's sidecars get B's endpoints directly (same
    network) or B's gateway on 15443 with mTLS and the SNI C(outbound_.<port>_._.<host>) (other network); B's
    east-west gateway, as istiod configures it, has a filter chain for that SNI whose backend has B's endpoints.
    Route weights a sidecar receives (VirtualService splits) are reported, and a destination without endpoints fails.
  - A live request is not sent; it is reported as not run, with the reason (simulated pods in the sandbox).
  - A cluster that does not answer is reported as failed checks; the rest of the mesh is still verified.
  - Changes nothing (a dry-run Pod is all it submits). No secret is returned, printed or written; a remote secret's
    token is used in memory only.
  - Writes a Markdown report, a JSON document and a picture of the mesh (Graphviz SVG, with its DOT source) to
    O(report_dir) when given.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
attributes:
  check_mode:
    support: full
    details: It only reads the mesh, so check mode verifies it the same way; the report files are not written.
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - kubernetes (Python client)
  - grpcio and xds-protos (to read istiod's xDS)
  - graphviz (Python package) and Graphviz's C(dot) for the picture; without C(dot) only its DOT source is written
options:
  mesh_id:
    description: The mesh ID every cluster's istiod was installed with.
    type: str
    required: true
  clusters:
    description:
      - Every cluster of the mesh (the C(mesh_topology) filter's clusters, as the C(verify_mesh) role passes them).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The cluster's name in the mesh (C(mesh_cluster_name)).
        type: str
        required: true
      host:
        description: Its inventory host, for messages.
        type: str
      network:
        description: Its network (C(mesh_network)).
        type: str
        required: true
      role:
        description: C(primary), or C(remote) for a cluster whose control plane runs in another cluster.
        type: str
        default: primary
        choices: [primary, remote]
      control_plane:
        description: For a remote cluster, the cluster whose istiod it uses.
        type: str
      discovers:
        description: The clusters this cluster's istiod must discover (whose remote secrets it holds).
        type: list
        elements: str
        default: []
      gateway_address:
        description:
          - The east-west gateway address the inventory gives (C(mesh_gateway_address)). Empty means the gateway
            Service's LoadBalancer address.
        type: str
        default: ''
      revision:
        description: The control plane revision, for the report.
        type: str
        default: ''
      istiod:
        description:
          - Where this cluster's istiod answers, as C(host:port) each, for an istiod reached otherwise (an istiod outside
            the cluster, a forward made elsewhere).
          - Omitted (or for the ports omitted), the module forwards local ports to a Ready istiod Pod
            (C(app=istiod), C(istio.io/rev=<revision>)) through the API server, as C(kubectl port-forward) does, for
            the run only; no port is exposed. The credentials need C(get) and C(create) on C(pods/portforward) in
            C(istio-system).
        type: dict
        suboptions:
          xds:
            description: istiod's plaintext xDS port (15010 in the pod).
            type: str
          debug:
            description: istiod's monitoring port with C(/debug/*) and C(/version) (15014 in the pod).
            type: str
          http:
            description: istiod's readiness port with C(/ready) (8080 in the pod).
            type: str
      kubeconfig:
        description: Path of the kubeconfig to reach this cluster with.
        type: path
      context:
        description: Its context in that kubeconfig.
        type: str
  root_cert:
    description:
      - The mesh's root bundle (PEM), for example C(<install_istio_ca_dir>/root-cert.pem). Without it the trust checks
        against the mesh root are reported as not run.
    type: path
  warn_days:
    description: A root or intermediate CA expiring in fewer days than this is a warning.
    type: int
    default: 30
  exclude_namespaces:
    description: Namespaces whose Services are not checked across clusters.
    type: list
    elements: str
    default: [kube-system, kube-public, kube-node-lease, istio-system]
  timeout:
    description: Seconds to wait for one answer (an API call, a debug endpoint, an xDS conversation).
    type: int
    default: 30
  parallel:
    description: Clusters read at once.
    type: int
    default: 4
  report_dir:
    description: Directory for the report files (created when missing). Omitted means no files.
    type: path
  report_name:
    description: Base name of the report files (C(<report_name>.md), C(.json), C(.dot), C(.svg)).
    type: str
    default: mesh-verify
"""

EXAMPLES = r"""
- name: Verify the sandbox mesh and write the report
  meshfed.istio.verify_mesh:
    mesh_id: mesh1
    root_cert: /srv/mesh-ca/root-cert.pem
    report_dir: /tmp/mesh-report
    clusters:
      - name: cluster1
        network: network1
        discovers: [cluster2]
        context: cluster1
      - name: cluster2
        network: network2
        discovers: [cluster1]
        context: cluster2
        # an istiod outside the cluster: its ports as they are reached
        istiod: {xds: 127.0.0.1:15110, debug: 127.0.0.1:15114, http: 127.0.0.1:8180}
  register: verified

- name: Fail on a broken link
  ansible.builtin.assert:
    that: verified.ok
    fail_msg: "{{ verified.failures }}"
"""

RETURN = r"""
ok:
  description: No check failed.
  returned: always
  type: bool
summary:
  description: How many checks passed, failed, warned and were not run.
  returned: always
  type: dict
  sample: {pass: 26, fail: 1, warn: 0, not_run: 4}
failures:
  description: The reason of every failed check.
  returned: always
  type: list
  elements: str
  sample: ["cluster1 → cluster2: helloworld.sample:5000: cluster1's istiod sends cluster2's pod IPs (10.102.0.5:5000) across networks"]
verification:
  description:
    - The whole result, C(schema) C(meshfed.istio/verify/v1) - C(mesh_id), C(ok), C(clusters), C(vms), C(summary),
      C(seconds) and C(checks), each with C(id), C(kind), C(subject), C(source), C(target), C(service), C(status)
      (C(pass), C(fail), C(warn), C(not_run)), C(reason) and C(details).
  returned: always
  type: dict
report:
  description: The files written (C(markdown), C(json), C(dot), C(picture)) and C(picture_error) when the picture could not
    be rendered; absent without O(report_dir).
  returned: when report_dir is given
  type: dict
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    return dict(
        mesh_id=dict(type="str", required=True),
        clusters=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            host=dict(type="str"),
            network=dict(type="str", required=True),
            role=dict(type="str", default="primary", choices=["primary", "remote"]),
            control_plane=dict(type="str"),
            discovers=dict(type="list", elements="str", default=[]),
            gateway_address=dict(type="str", default=""),
            revision=dict(type="str", default=""),
            istiod=dict(type="dict", options=dict(
                xds=dict(type="str"),
                debug=dict(type="str"),
                http=dict(type="str"),
            )),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
        )),
        root_cert=dict(type="path"),
        warn_days=dict(type="int", default=30),
        exclude_namespaces=dict(type="list", elements="str",
                                default=["kube-system", "kube-public", "kube-node-lease", "istio-system"]),
        timeout=dict(type="int", default=30),
        parallel=dict(type="int", default=4),
        report_dir=dict(type="path"),
        report_name=dict(type="str", default="mesh-verify"),
    )


def main():
    run_module(argument_spec(), verify_runner.run, connection=None,
               libraries=("kubernetes", "cryptography", "grpcio and xds-protos"))


if __name__ == "__main__":
    main()
