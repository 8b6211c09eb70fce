# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_cert_identity
short_description: Whom a workload certificate is for (its SPIFFE identity), who issued it, until when
version_added: 0.4.0
description:
  - Reads the first certificate of a PEM chain (for example the C(cert-chain.pem) the Istio agent of a VM writes) and
    returns its URI SANs, subject, issuer, serial, validity, SHA-256 fingerprint and key type. Never key material.
  - With O(root), also whether the chain leads to one of those roots (each certificate signed by the next, the last by
    a root of O(root), all valid now) - for example to wait until an agent holds a certificate of the mesh root it was
    just given rather than one it got before a root rotation.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, root
options:
  _input:
    description: A PEM certificate or chain.
    type: str
    required: true
  root:
    description: A PEM bundle of trusted roots; when given, RV(_value.chains_to_root) says whether the chain leads to one.
    type: str
requirements:
  - cryptography
"""

EXAMPLES = r"""
- name: Show the VM's identity
  ansible.builtin.debug:
    msg: "{{ (cert.content | b64decode | meshfed.istio.mesh_cert_identity).uris }}"
"""

RETURN = r"""
_value:
  description: The certificate's identity.
  type: dict
  sample:
    uris: [spiffe://cluster.local/ns/vm-apps/sa/hello-vm]
    subject: ""
    issuer: O=meshfed,CN=Intermediate CA cluster2
    serial: 5e1f
    not_before: "2026-11-29T10:00:00Z"
    not_after: "2026-11-30T10:00:00Z"
    fingerprint_sha256: "AB:CD:..."
    key_type: ecdsa-p256
    chains_to_root: true
"""

import datetime

from ansible.errors import AnsibleFilterError

try:
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, rotation
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError
except ImportError:  # pragma: no cover - cryptography missing
    ca = None


def mesh_cert_identity(pem, root=None):
    if ca is None or not ca.HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError("mesh_cert_identity needs the Python library cryptography on the controller")
    try:
        out = ca.identity(pem)
        if root is not None:
            now = datetime.datetime.now(datetime.timezone.utc)
            out["chains_to_root"] = rotation.verify_chain([pem], root.encode("utf-8") if isinstance(root, str) else root,
                                                          now) is not None
        return out
    except MeshError as e:
        raise AnsibleFilterError("mesh_cert_identity: %s" % e)


class FilterModule(object):

    def filters(self):
        return {"mesh_cert_identity": mesh_cert_identity}
