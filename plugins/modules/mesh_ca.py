#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mesh_ca
short_description: Keep the mesh's root CA and one intermediate CA per cluster
version_added: 0.1.0
description:
  - "Creates or adopts a root CA and issues one intermediate CA per cluster, in the directory
    layout of Istio's C(tools/certs): C(<dir>/root-cert.pem), C(<dir>/root-key.pem) and, per cluster,
    C(<dir>/<cluster>/{ca-cert.pem,ca-key.pem,root-cert.pem,cert-chain.pem})."
  - Every cluster's istiod signs workload certificates with its intermediate; all intermediates chain to
    the one root, which gives the whole mesh one trust domain for cross-cluster mTLS.
  - "The root is never re-issued by this module: it is created when missing, otherwise adopted (from O(dir))
    or taken as given (O(root_cert_path), O(root_key_path)) and validated. Given files are never written to."
  - An intermediate is issued when it is missing, and re-issued according to O(regenerate) when it expires
    within O(renew_before_days), no longer chains to the root, its key does not match, or its parameters changed.
  - Runs on the controller or wherever the CA material should live (typically C(localhost)).
    Private key files are written with mode C(0600), certificates C(0644), each atomically.
  - No private key ever appears in a result, a diff or a log.
  - "Two runs on the same O(dir) at once (two AWX jobs) take turns: each holds an exclusive lock on
    C(<dir>/.lock) from before it reads the directory until it has written it, so the second one adopts the root
    and intermediates the first one wrote. A run that had to wait says so in a warning; after O(lock_timeout)
    seconds it fails naming the directory and the last run that took the lock. The lock goes with the process
    that holds it: a C(.lock) file left behind never blocks."
author:
  - meshfed.istio contributors (@meshfed)
requirements:
  - cryptography >= 41.0.0
extends_documentation_fragment:
  - meshfed.istio.attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be created, re-issued or fixed and writes nothing, not even the lock file; it
      waits for a run that holds the lock (a shared lock on C(<dir>/.lock) when that file exists).
  diff_mode:
    support: full
    details: Shows, per file, certificate subjects, serials, expiry dates and SHA-256 fingerprints; keys only as sizes.
  idempotent:
    support: partial
    details: Fully idempotent except with O(regenerate=always), which re-issues every intermediate on every run.
options:
  dir:
    description: Directory that holds the CA material. Created when missing.
    type: path
    required: true
  clusters:
    description:
      - Names of the clusters that need an intermediate CA. Each must be a DNS-1123 label and unique.
      - The name goes into the intermediate's subject (C(L=<cluster>)) as in Istio's tools/certs.
    type: list
    elements: str
    default: []
  root_cert_path:
    description:
      - "Bring your own root: path of the organisation's root certificate (PEM). Never written to."
      - Without O(root_key_path), no intermediate can be issued; every cluster must then already have a valid
        intermediate in C(<dir>/<cluster>/ca-cert.pem) and C(ca-key.pem), which is validated against this root.
      - Its certificate is copied to C(<dir>/root-cert.pem) and into each cluster's files.
    type: path
  root_key_path:
    description:
      - "Bring your own root: path of the root's private key (PEM). Never written to and never copied."
      - Requires O(root_cert_path). The module checks that the key matches the certificate.
    type: path
  root_key_passphrase:
    description:
      - Passphrase of the root key. Used to read a given or existing root key, and to encrypt a root key this
        module generates. Intermediate keys are never encrypted (istiod must read them).
    type: str
  organization:
    description: Organisation (C(O=)) of the root and intermediate subjects.
    type: str
    default: Istio
  root_common_name:
    description: Common name of a generated root.
    type: str
    default: Root CA
  intermediate_common_name:
    description: Common name of the intermediates (their subject also carries C(L=<cluster>)).
    type: str
    default: Intermediate CA
  root_key_type:
    description:
      - Key type of a generated root.
      - The default C(rsa4096) is what Istio's tools/certs uses; a root lives long (O(root_validity_days)) and
        signs rarely, so a large RSA key costs nothing at run time and is understood by every TLS stack.
    type: str
    choices: [rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384]
    default: rsa4096
  key_type:
    description:
      - Key type of the intermediates.
      - The default C(rsa4096) matches Istio's tools/certs. C(ecdsa-p256) gives smaller and faster signatures
        for meshes that sign many workload certificates.
    type: str
    choices: [rsa2048, rsa3072, rsa4096, ecdsa-p256, ecdsa-p384]
    default: rsa4096
  root_validity_days:
    description: Validity of a generated root, in days.
    type: int
    default: 3650
  intermediate_validity_days:
    description:
      - Validity of an issued intermediate, in days. Must not be longer than O(root_validity_days).
      - When the root expires earlier than that, the intermediate ends with the root (with a warning).
    type: int
    default: 730
  renew_before_days:
    description: Re-issue an intermediate that expires within this many days (see O(regenerate)).
    type: int
    default: 30
  regenerate:
    description:
      - When to re-issue an existing intermediate. A missing one is always issued.
      - V(never) keeps every existing intermediate, with a warning when it has a problem.
      - V(fail) fails when an existing intermediate would need re-issuing.
      - V(partial_idempotence) re-issues when an intermediate expires within O(renew_before_days), does not chain
        to the root, does not match its key, or differs from the requested key type, subject or extensions;
        fails when it cannot be read.
      - V(full_idempotence) as V(partial_idempotence), and also replaces intermediates that cannot be read.
      - V(always) re-issues every intermediate on every run.
    type: str
    choices: [never, fail, partial_idempotence, full_idempotence, always]
    default: partial_idempotence
  lock_timeout:
    description:
      - How long, in seconds, to wait for another run that holds the lock of O(dir) before failing.
      - V(0) fails at once when the directory is locked.
    type: int
    default: 300
    version_added: 0.2.0
seealso:
  - module: meshfed.istio.cacerts
  - name: Istio, plug in CA certificates
    description: How istiod uses the cacerts Secret.
    link: https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/
"""

EXAMPLES = r"""
- name: One root and an intermediate for each of two clusters
  meshfed.istio.mesh_ca:
    dir: "{{ playbook_dir }}/ca"
    clusters: [cluster1, cluster2]
  delegate_to: localhost

- name: Organisation's own root (cert and key stay where they are)
  meshfed.istio.mesh_ca:
    dir: /srv/mesh-ca
    clusters: "{{ groups['mesh_clusters'] }}"
    root_cert_path: /etc/pki/mesh/root.pem
    root_key_path: /etc/pki/mesh/root.key
    root_key_passphrase: "{{ vault_mesh_root_passphrase }}"
    key_type: ecdsa-p256

- name: Root certificate only, intermediates made elsewhere and put in /srv/mesh-ca/<cluster>/
  meshfed.istio.mesh_ca:
    dir: /srv/mesh-ca
    clusters: [east, west]
    root_cert_path: /etc/pki/mesh/root.pem

- name: Fail instead of re-issuing (for a change-controlled run)
  meshfed.istio.mesh_ca:
    dir: /srv/mesh-ca
    clusters: [east, west]
    regenerate: fail
"""

RETURN = r"""
dir:
  description: The CA directory.
  returned: always
  type: str
  sample: /srv/mesh-ca
changed_files:
  description: Files written (or, in check mode, that would be written), including permission fixes.
  returned: always
  type: list
  elements: str
  sample: [/srv/mesh-ca/cluster1/ca-cert.pem]
root:
  description: The root CA.
  returned: always
  type: dict
  contains:
    action:
      description: V(created) by this run, V(adopted) from O(dir), or V(provided) by O(root_cert_path).
      type: str
      sample: created
    subject:
      description: Subject (RFC 4514).
      type: str
      sample: CN=Root CA,O=Istio
    issuer:
      description: Issuer (RFC 4514).
      type: str
      sample: CN=Root CA,O=Istio
    serial:
      description: Serial number, hexadecimal.
      type: str
      sample: 3f2a9c
    not_before:
      description: Start of validity, UTC.
      type: str
      sample: '2026-11-21T13:40:00Z'
    not_after:
      description: End of validity, UTC.
      type: str
      sample: '2036-11-19T13:45:00Z'
    fingerprint_sha256:
      description: SHA-256 fingerprint of the DER certificate.
      type: str
      sample: 'AB:CD:...'
    key_type:
      description: Key type.
      type: str
      sample: rsa4096
    cert_path:
      description: Path of C(<dir>/root-cert.pem).
      type: str
    key_path:
      description: Path of the root key, when there is one.
      type: str
    source_cert_path:
      description: O(root_cert_path), when given.
      type: str
clusters:
  description: Per cluster name, its intermediate CA.
  returned: always
  type: dict
  contains:
    action:
      description: V(created), V(reissued) or V(kept).
      type: str
      sample: kept
    reasons:
      description: Why it was (or would be) re-issued.
      type: list
      elements: str
      sample: ['expires on 2026-12-01, within renew_before_days (30)']
    subject:
      description: Subject (RFC 4514).
      type: str
      sample: L=cluster1,CN=Intermediate CA,O=Istio
    serial:
      description: Serial number, hexadecimal.
      type: str
    not_after:
      description: End of validity, UTC.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint.
      type: str
    dir:
      description: The cluster's directory, C(<dir>/<cluster>).
      type: str
    ca_cert_path:
      description: Path of C(ca-cert.pem).
      type: str
    ca_key_path:
      description: Path of C(ca-key.pem).
      type: str
    root_cert_path:
      description: Path of the cluster's C(root-cert.pem).
      type: str
    cert_chain_path:
      description: Path of C(cert-chain.pem).
      type: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, mesh_ca_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    return dict(
        dir=dict(type="path", required=True),
        clusters=dict(type="list", elements="str", default=[]),
        root_cert_path=dict(type="path"),
        root_key_path=dict(type="path", no_log=False),
        root_key_passphrase=dict(type="str", no_log=True),
        organization=dict(type="str", default="Istio"),
        root_common_name=dict(type="str", default="Root CA"),
        intermediate_common_name=dict(type="str", default="Intermediate CA"),
        root_key_type=dict(type="str", default="rsa4096", choices=list(ca.KEY_TYPES)),
        key_type=dict(type="str", default="rsa4096", choices=list(ca.KEY_TYPES)),
        root_validity_days=dict(type="int", default=3650),
        intermediate_validity_days=dict(type="int", default=730),
        renew_before_days=dict(type="int", default=30),
        regenerate=dict(type="str", default="partial_idempotence", choices=list(ca.REGENERATE_POLICIES)),
        lock_timeout=dict(type="int", default=300),
    )


def main():
    run_module(argument_spec(), mesh_ca_runner.run, connection=None, libraries=("cryptography",),
               required_by={"root_key_path": "root_cert_path"})


if __name__ == "__main__":
    main()
