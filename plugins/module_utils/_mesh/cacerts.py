# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""One cluster's CA files in Secret istio-system/cacerts.

Pure: ``desired_data`` (validate the four files as one coherent set),
``compare`` (what differs from a Secret's data), ``describe`` (diff-safe) and
``restart`` (whether the running istiods take new material by themselves).
cacerts_runner reads the files and talks to the API.
"""

from __future__ import annotations

import base64
import re

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


# istiod watches its plug-in CA files and reloads them: on by default in 1.18, always from 1.19
# (AUTO_RELOAD_PLUGIN_CERTS removed); older ones, or an unknown version, are restarted
HOT_RELOAD_SINCE = (1, 19)
MULTIROOT_ENV = "ISTIO_MULTIROOT_MESH"
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


def istiod_facts(deployment):
    """{name, version: (major, minor) or None, multiroot} of an istiod Deployment: the version from
    its discovery container's image tag, else its label operator.istio.io/version; multi-root
    support from that container's literal env ISTIO_MULTIROOT_MESH."""
    meta = deployment.get("metadata") or {}
    containers = ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    main = next((c for c in containers if c.get("name") == "discovery"), containers[0] if containers else {})
    image = str(main.get("image") or "")
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    version = None
    for text in (tag, str((meta.get("labels") or {}).get("operator.istio.io/version") or "")):
        m = _VERSION.match(text)
        if m:
            version = (int(m.group(1)), int(m.group(2)))
            break
    env = dict((e.get("name"), e.get("value")) for e in main.get("env") or [] if "value" in e)
    return {"name": meta.get("name"), "version": version,
            "multiroot": str(env.get(MULTIROOT_ENV, "")).lower() == "true"}


def _roots(pem):
    return set(c.public_bytes(ca.serialization.Encoding.DER) for c in ca.x509.load_pem_x509_certificates(pem))


def restart(current, desired, changed_keys, istiods):
    """(restart needed, why) for Secret data going from ``current`` to ``desired`` with istiods
    described by ``istiod_facts``.  istiod reloads its plug-in CA without restart when it started
    with a complete one (it watches the files only then), is 1.19 or later, and the root bundle is
    unchanged, or changed with multi-root support on and one bundle holding the other (the rotation's
    old -> old+new -> new); anything else needs the restart, and says why."""
    if not changed_keys:
        return False, None
    if not istiods:
        return False, "no istiod runs in the namespace: it reads the Secret when it starts"
    names = ", ".join(sorted(i["name"] for i in istiods))
    if any(k not in current for k in ca.CLUSTER_FILES):
        return True, ("istiod %s started without a complete plug-in CA in the Secret (a self-signed CA): it watches "
                      "the CA files only when it started with them" % names)
    old = [i["name"] for i in istiods if not i["version"] or i["version"] < HOT_RELOAD_SINCE]
    if old:
        return True, ("istiod %s: its Istio version is unknown or before %d.%d, which reloads plug-in certificates "
                      "only with AUTO_RELOAD_PLUGIN_CERTS" % ((", ".join(sorted(old)),) + HOT_RELOAD_SINCE))
    if current.get("root-cert.pem") != desired.get("root-cert.pem"):
        before, after = _roots(current["root-cert.pem"]), _roots(desired["root-cert.pem"])
        off = [i["name"] for i in istiods if not i["multiroot"]]
        if off:
            return True, ("the root changed and istiod %s runs without %s=true, so it refuses a new root until it "
                          "restarts; rotate roots with playbooks/rotate_root_ca.yml" % (", ".join(sorted(off)), MULTIROOT_ENV))
        if not (before <= after or after <= before):
            return True, ("the new root bundle neither holds nor is held by the current one, which istiod refuses "
                          "without a restart; rotate roots with playbooks/rotate_root_ca.yml")
        return False, "istiod %s reloads the root bundle by itself (multi-root support, one bundle holds the other)" % names
    return False, "istiod %s reloads a new intermediate by itself (Istio 1.19 or later), without a restart" % names
