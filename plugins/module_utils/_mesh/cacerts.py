# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""One cluster's CA files in Secret istio-system/cacerts.

Pure: ``desired_data`` (validate the four files as one coherent set),
``compare`` (what differs from a Secret's data) and ``describe`` (diff-safe).
cacerts_runner reads the files and talks to the API.
"""

from __future__ import annotations

import base64

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError


def desired_data(data):
    """Validate that the four files belong together; return them unchanged."""
    cert = ca.load_cert(data["ca-cert.pem"], "ca-cert.pem")
    key = ca.load_key(data["ca-key.pem"], "ca-key.pem")
    root = ca.load_cert(data["root-cert.pem"], "root-cert.pem")
    if not ca.same_public_key(cert, key):
        raise CAError("src: ca-key.pem does not match ca-cert.pem", field="src")
    if not ca.issued_by(cert, root):
        raise CAError("src: ca-cert.pem is not signed by root-cert.pem", field="src")
    try:
        chain = ca.x509.load_pem_x509_certificates(data["cert-chain.pem"])
    except ValueError as e:
        raise CAError("src: cert-chain.pem is not PEM: %s" % e, field="src")
    if not chain or chain[0] != cert:
        raise CAError("src: cert-chain.pem does not start with ca-cert.pem", field="src")
    if chain[-1] != root:
        raise CAError("src: cert-chain.pem does not end with root-cert.pem", field="src")
    return dict(data)


def decode(secret_data):
    return dict((k, base64.b64decode(v)) for k, v in (secret_data or {}).items())


def compare(current, desired):
    """Keys whose content differs (added, changed or extra) between two {key: bytes}."""
    return sorted(k for k in set(current) | set(desired) if current.get(k) != desired.get(k))


def describe(data):
    return dict((k, ca.describe(k, v)) for k, v in sorted(data.items()))


def encode(data):
    return dict((k, base64.b64encode(v).decode()) for k, v in data.items())
