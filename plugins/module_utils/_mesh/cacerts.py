# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""One cluster's CA files in Secret istio-system/cacerts.

Pure part: ``desired_data`` (validate the four files as one coherent set) and
``compare`` (what differs from a Secret's data).  ``run`` talks to the API.
"""

from __future__ import annotations

import base64
import os

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, files, kube
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

MANAGED_BY = kube.MANAGED_BY
ISTIOD_SELECTOR = "app=istiod"


def read_src(src):
    """The four files of a cluster directory; error naming the missing one."""
    files.check_dir(src, field="src")
    data = {}
    for name in ca.CLUSTER_FILES:
        content = files.read_optional(os.path.join(src, name), field="src")
        if content is None:
            raise CAError("src: %s is missing %s" % (src, name), field="src")
        data[name] = content
    return data


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


def run(api, params, check_mode, want_diff):
    core = kube.k8s_client.CoreV1Api(api)
    apps = kube.k8s_client.AppsV1Api(api)
    ns, name = params["namespace"], params["name"]
    what = "Secret %s/%s" % (ns, name)
    result = {"changed": False, "namespace_created": False, "restart_required": False,
              "secret": {"namespace": ns, "name": name}}

    try:
        existing = core.read_namespaced_secret(name, ns)
    except kube.ApiException as e:
        if not kube.is_not_found(e):
            raise kube.api_error(e, "reading " + what)
        existing = None
    current = decode(existing.data) if existing is not None else {}

    if params["state"] == "absent":
        if existing is not None:
            result["changed"] = True
            if want_diff:
                result["diff"] = {"before": describe(current), "after": {}}
            if not check_mode:
                try:
                    core.delete_namespaced_secret(name, ns)
                except kube.ApiException as e:
                    if not kube.is_not_found(e):
                        raise kube.api_error(e, "deleting " + what)
        return result

    desired = desired_data(read_src(params["src"]))
    changed_keys = compare(current, desired)
    labels = (existing.metadata.labels or {}) if existing is not None else {}
    label_missing = any(labels.get(k) != v for k, v in MANAGED_BY.items())
    wrong_type = existing is not None and (existing.type or "Opaque") != "Opaque"
    result["changed"] = bool(changed_keys) or label_missing or wrong_type
    result["changed_keys"] = changed_keys
    cert = ca.load_cert(desired["ca-cert.pem"], "ca-cert.pem")
    root = ca.load_cert(desired["root-cert.pem"], "root-cert.pem")
    result["secret"].update(keys=sorted(desired), ca_cert=ca.summary(cert), root_cert=ca.summary(root))

    try:
        istiods = apps.list_namespaced_deployment(ns, label_selector=ISTIOD_SELECTOR).items
    except kube.ApiException as e:
        if not kube.is_not_found(e):
            raise kube.api_error(e, "listing istiod Deployments in namespace %s" % ns)
        istiods = []
    result["istiod_deployments"] = sorted(d.metadata.name for d in istiods)
    # istiod reads plugged-in CA material when it starts: an istiod that runs
    # (or a Secret it may already have read) must be restarted to use new material.
    result["restart_required"] = bool(changed_keys) and (existing is not None or bool(istiods))
    if want_diff and result["changed"]:
        result["diff"] = {"before": describe(current) if existing is not None else {},
                          "after": describe(desired)}
    if not result["changed"] or check_mode:
        if check_mode and result["changed"]:
            result["namespace_created"] = not _namespace_exists(core, ns)
        return result

    result["namespace_created"] = _ensure_namespace(core, ns)
    body = kube.k8s_client.V1Secret(
        metadata=kube.k8s_client.V1ObjectMeta(name=name, namespace=ns, labels=dict(labels, **MANAGED_BY)),
        type="Opaque",
        data=dict((k, base64.b64encode(v).decode()) for k, v in desired.items()))
    try:
        if existing is None:
            core.create_namespaced_secret(ns, body)
        elif wrong_type:
            core.delete_namespaced_secret(name, ns)
            core.create_namespaced_secret(ns, body)
        else:
            body.metadata.resource_version = existing.metadata.resource_version
            body.metadata.annotations = existing.metadata.annotations
            core.replace_namespaced_secret(name, ns, body)
    except kube.ApiException as e:
        raise kube.api_error(e, "writing " + what)
    return result


def _namespace_exists(core, ns):
    try:
        core.read_namespace(ns)
        return True
    except kube.ApiException as e:
        if kube.is_not_found(e):
            return False
        raise kube.api_error(e, "reading Namespace %s" % ns)


def _ensure_namespace(core, ns):
    if _namespace_exists(core, ns):
        return False
    try:
        core.create_namespace(kube.k8s_client.V1Namespace(metadata=kube.k8s_client.V1ObjectMeta(name=ns)))
    except kube.ApiException as e:
        if e.status != 409:
            raise kube.api_error(e, "creating Namespace %s" % ns)
        return False
    return True
