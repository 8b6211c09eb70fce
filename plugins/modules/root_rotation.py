#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: root_rotation
short_description: One step of a zero-downtime root CA rotation across every cluster of the mesh
version_added: 0.2.0
description:
  - "Rotates the mesh's root CA (the one M(meshfed.istio.mesh_ca) keeps in O(dir)) without restarting istiod, in
    the order that Istio accepts: phase 2 appends the new root to the C(root-cert.pem) bundle of every cluster's
    Secret C(istio-system/cacerts) (old+new); phase 3 gives every cluster an intermediate issued by the new root
    (bundle old+new+new, so that istiod pushes it); phase 4 leaves the new root alone."
  - "Each phase starts on a cluster only when every cluster has completed the one before, as observed there:
    every C(istio-ca-root-cert) ConfigMap holds the phase's roots, and in phase 3 a workload certificate that the
    cluster's istiod signs on its port 15012 chains to the new root, and O(proxy_wait_seconds) have passed."
  - "Runs once, on the controller, for every cluster. One call observes every cluster in parallel, writes what the
    plan allows (at most one phase), records the state in C(<dir>/rotation.json) and returns. Call it until
    RV(done) (the role entry point C(meshfed.istio.install_istio) C(rotate_root) and C(playbooks/rotate_root_ca.yml)
    do). A call after an interruption resumes from what the clusters show."
  - "When every cluster is at phase 4, the CA directory becomes what the clusters run: C(root-cert.pem) the new
    root (C(root-key.pem) its key when this module generated it), each cluster's files its new intermediate; the
    old root's and intermediates' files are kept under C(<dir>/retired/<start time>/). M(meshfed.istio.mesh_ca)
    refuses to run while a rotation is in progress."
  - istiod must run with C(ISTIO_MULTIROOT_MESH=true) (C(install_istio_multiroot)); the module refuses, naming the
    cluster, before any change when it does not.
  - No private key and no token is ever returned, shown in a diff or logged.
author:
  - meshfed.istio contributors (@meshfed)
requirements:
  - cryptography >= 41.0.0
  - grpcio
  - protobuf
  - kubernetes >= 24.2.0
extends_documentation_fragment:
  - meshfed.istio.attributes
attributes:
  check_mode:
    support: full
    details: Observes every cluster (reads, and asks each istiod for a workload certificate) and reports each
      cluster's phase and what the next run would do; writes nothing (neither Secrets nor files).
  diff_mode:
    support: full
    details: Per cluster, the subjects, serials, SHA-256 fingerprints and expiry of the bundles and intermediate
      before and after; the CA directory's files at completion. Never key material.
  idempotent:
    support: full
    details: A call that finds nothing to write changes nothing; a call after completion changes nothing.
options:
  dir:
    description: The mesh CA directory (M(meshfed.istio.mesh_ca)'s O(meshfed.istio.mesh_ca#module:dir)).
    type: path
    required: true
  clusters:
    description: Every cluster whose istiod uses the mesh CA (the primaries). The same list on every call.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Cluster name, as in O(dir) (C(<dir>/<name>)).
        type: str
        required: true
      kubeconfig:
        description: Kubeconfig file (default C(~/.kube/config)).
        type: path
      context:
        description: Kubeconfig context.
        type: str
      istiod_address:
        description: Where the controller reaches istiod's CA (its secure gRPC port) to check workload certificates.
        type: str
        default: istiod.istio-system.svc:15012
      istiod_target_name:
        description: Name checked in istiod's serving certificate.
        type: str
        default: istiod.istio-system.svc
      multiroot:
        description:
          - Whether istiod runs with C(ISTIO_MULTIROOT_MESH=true), for an istiod that runs outside the cluster
            (no C(app=istiod) Deployment in C(istio-system) to read it from). Ignored when that Deployment exists.
        type: bool
  new_root_cert_path:
    description:
      - The new root certificate (PEM), brought by the user. Without it a root is generated with the key type of the
        current root (or O(root_key_type)) and kept in C(<dir>/rotation/) until the rotation completes.
      - "Checked before any change: one CA certificate (basicConstraints CA, keyUsage keyCertSign), valid now, not the
        current root."
    type: path
  new_root_key_path:
    description:
      - Its private key (PEM). Needed for phase 3 (issuing the intermediates); checked to match. Never copied.
    type: path
  new_root_key_passphrase:
    description: Passphrase of O(new_root_key_path).
    type: str
  new_rotation:
    description: Start another rotation when the one recorded in C(<dir>/rotation.json) completed (its record is
      kept under C(<dir>/retired/)). Without it, a call after completion only reports.
    type: bool
    default: false
  until_phase:
    description:
      - Write no further than this phase (2, 3 or 4); RV(done) is true once every cluster completed it. For a
        production mesh, stop at 3 and wait for the proxies before 4 (see the role's README).
    type: int
    default: 4
  proxy_wait_seconds:
    description:
      - Phase 3 completes on a cluster only this many seconds after its new intermediate was written, for proxies
        that get no push (without C(PROXY_CONFIG_XDS_AGENT), VMs, gateways) and take the new root at their next
        certificate renewal. Recorded when the rotation starts.
    type: int
    default: 0
  probe_namespace:
    description: Namespace of the ServiceAccount whose token asks each istiod for a workload certificate.
    type: str
    default: istio-system
  probe_service_account:
    description: That ServiceAccount. The certificate and its key are thrown away.
    type: str
    default: default
  workers:
    description: Clusters observed at once.
    type: int
    default: 4
  organization:
    description: Organisation of a generated root and of the new intermediates.
    type: str
    default: Istio
  root_common_name:
    description: Common name of a generated root (the date is added when it equals the current root's).
    type: str
    default: Root CA
  intermediate_common_name:
    description: Common name of the new intermediates.
    type: str
    default: Intermediate CA
  root_key_type:
    description: Key type of a generated root; default that of the current root.
    type: str
    choices: [rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384]
  key_type:
    description: Key type of the new intermediates; default that of the current ones.
    type: str
    choices: [rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384]
  root_validity_days:
    description: Validity of a generated root.
    type: int
    default: 3650
  intermediate_validity_days:
    description: Validity of the new intermediates.
    type: int
    default: 730
  lock_timeout:
    description: Seconds to wait for another run that holds the lock of O(dir).
    type: int
    default: 300
  variables:
    description: Maps options to the role variables they come from, so that refusals name the variable.
    type: dict
seealso:
  - module: meshfed.istio.mesh_ca
  - module: meshfed.istio.cacerts
notes:
  - Istio before 1.30 compares root bundles byte by byte; the module only appends, never re-encodes or reorders.
"""

EXAMPLES = r"""
- name: Rotate the mesh root, one step
  meshfed.istio.root_rotation:
    dir: ~/.meshfed/mesh1/ca
    clusters:
      - name: cluster1
        context: cluster1
      - name: cluster2
        context: cluster2
  register: rotation
  delegate_to: localhost
  run_once: true

- name: Rotate to a root brought by the organisation, to phase 3 only, retrying until every cluster is there
  meshfed.istio.root_rotation:
    dir: ~/.meshfed/mesh1/ca
    clusters: "{{ mesh_rotation_clusters }}"
    new_root_cert_path: /secure/new-root-cert.pem
    new_root_key_path: /secure/new-root-key.pem
    until_phase: 3
    proxy_wait_seconds: 43200
  register: rotation
  until: rotation is failed or rotation.done
  retries: 60
  delay: 10
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
phase:
  description: The mesh's phase, the lowest phase every cluster completed (0 to 4).
  returned: always
  type: int
  sample: 2
phase_name:
  description: Its name.
  returned: always
  type: str
  sample: trust bundle old+new
done:
  description: True when every cluster completed O(until_phase) (and nothing was written by this call).
  returned: always
  type: bool
completed:
  description: True when the rotation is complete (phase 4 everywhere, CA directory updated).
  returned: always
  type: bool
until_phase:
  description: O(until_phase).
  returned: always
  type: int
started:
  description: True when this call started the rotation (no state was recorded).
  returned: always
  type: bool
dir:
  description: O(dir).
  returned: always
  type: str
state_path:
  description: The state file, C(<dir>/rotation.json).
  returned: always
  type: str
new_root:
  description: Subject, issuer, serial, SHA-256 fingerprint and validity of the new root.
  returned: always
  type: dict
new_root_source:
  description: C(provided) or C(generated).
  returned: always
  type: str
old_roots:
  description: The same for every root of the old bundle.
  returned: always
  type: list
  elements: dict
clusters:
  description: Per cluster.
  returned: always
  type: dict
  contains:
    phase:
      description: The phase this cluster completed.
      type: int
    phase_name:
      description: Its name.
      type: str
    secret_stage:
      description: What its cacerts Secret held when observed (0 old bundle, 2 old+new, 3 old+new+new, 4 new).
      type: int
    action:
      description: What this call did or the next one does (write_bundle, wait_bundle, issue_intermediate,
        wait_workloads, write_new_root, wait_new_root, wait_others, done).
      type: str
    waits_for:
      description: What it waits for, in words.
      type: str
    pending:
      description: What is not there yet.
      type: list
      elements: str
    workload_root:
      description: Which root the workload certificate its istiod signed chains to (old, new, both), or null.
      type: str
    multiroot:
      description: Whether istiod runs with ISTIO_MULTIROOT_MESH=true (null when unknown).
      type: bool
    wrote_stage:
      description: The stage this call wrote into its Secret.
      type: int
      returned: when written
    probe_error:
      description: Why no workload certificate could be had from its istiod.
      type: str
      returned: when the request failed
  sample: {"cluster1": {"phase": 2, "action": "issue_intermediate", "secret_stage": 2, "wrote_stage": 3}}
changed_files:
  description: Files of O(dir) written (or that would be).
  returned: always
  type: list
  elements: str
finalized:
  description: True when this call made the CA directory equal to the rotated clusters.
  returned: always
  type: bool
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, rotation_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    return dict(
        dir=dict(type="path", required=True),
        clusters=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            kubeconfig=dict(type="path"),
            context=dict(type="str"),
            istiod_address=dict(type="str", default=rotation_runner.DEFAULT_ISTIOD_ADDRESS),
            istiod_target_name=dict(type="str", default="istiod.istio-system.svc"),
            multiroot=dict(type="bool"),
        )),
        new_root_cert_path=dict(type="path"),
        new_root_key_path=dict(type="path", no_log=False),
        new_root_key_passphrase=dict(type="str", no_log=True),
        new_rotation=dict(type="bool", default=False),
        until_phase=dict(type="int", default=4),
        proxy_wait_seconds=dict(type="int", default=0),
        probe_namespace=dict(type="str", default="istio-system"),
        probe_service_account=dict(type="str", default="default"),
        workers=dict(type="int", default=4),
        organization=dict(type="str", default="Istio"),
        root_common_name=dict(type="str", default="Root CA"),
        intermediate_common_name=dict(type="str", default="Intermediate CA"),
        root_key_type=dict(type="str", choices=list(ca.KEY_TYPES)),
        key_type=dict(type="str", choices=list(ca.KEY_TYPES)),
        root_validity_days=dict(type="int", default=3650),
        intermediate_validity_days=dict(type="int", default=730),
        lock_timeout=dict(type="int", default=300),
        variables=dict(type="dict"),
    )


def main():
    run_module(argument_spec(), rotation_runner.run, connection=None,
               libraries=("kubernetes", "cryptography", "grpcio and protobuf"),
               required_by={"new_root_key_path": "new_root_cert_path"})


if __name__ == "__main__":
    main()
