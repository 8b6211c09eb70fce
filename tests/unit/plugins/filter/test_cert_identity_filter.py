# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mesh_cert_identity: a workload chain's identity, and with a root bundle whether the chain leads to
it (what onboard_vm waits for after a root change), on real certificates."""

from __future__ import annotations

import datetime

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.meshfed.istio.plugins.filter.mesh_cert_identity import mesh_cert_identity
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca

NOW = datetime.datetime.now(datetime.timezone.utc)
SPIFFE = "spiffe://cluster.local/ns/vm-apps/sa/hello-vm"


def mesh(cluster="c1"):
    params = ca.Params(root_key_type="ecdsa-p256", key_type="ecdsa-p256")
    files = ca.reconcile(ca.Existing(), [cluster], params, NOW)["files"]
    return files["root-cert.pem"], files["%s/ca-cert.pem" % cluster], ca.load_key(files["%s/ca-key.pem" % cluster], "key")


def leaf(inter_pem, inter_key):
    inter = ca.load_cert(inter_pem, "intermediate")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(inter.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(minutes=1))
            .not_valid_after(NOW + datetime.timedelta(hours=24))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SPIFFE)]), critical=True)
            .sign(inter_key, ca.hashes.SHA256()))
    return ca.cert_pem(cert)


def test_identity_and_whether_the_chain_leads_to_the_root():
    root, inter, inter_key = mesh()
    other_root = mesh()[0]
    chain = (leaf(inter, inter_key) + inter).decode()
    out = mesh_cert_identity(chain)
    assert out["uris"] == [SPIFFE] and "chains_to_root" not in out
    assert mesh_cert_identity(chain, root.decode())["chains_to_root"] is True
    assert mesh_cert_identity(chain, other_root.decode())["chains_to_root"] is False
    # a bundle holding the old and the new root (a rotation's middle phases) trusts it too
    assert mesh_cert_identity(chain, (other_root + root).decode())["chains_to_root"] is True
    with pytest.raises(AnsibleFilterError, match="mesh_cert_identity: "):
        mesh_cert_identity("not a certificate")
