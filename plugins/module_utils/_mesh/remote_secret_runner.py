# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Remote secrets (I/O): the reader and its token in the source cluster, the secret in
the target cluster (meshfed.istio.remote_secret), and the removal of the ones no longer
wanted (meshfed.istio.remote_secret_prune).  No result, diff or message carries a token.
"""

from __future__ import annotations

import base64
import datetime

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names, remote_secret as rs
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, RemoteSecretError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None


def _object_name(obj):
    meta = obj["metadata"]
    return "%s %s" % (obj["kind"], "%s/%s" % (meta["namespace"], meta["name"]) if meta.get("namespace") else meta["name"])


def ensure_reader(source, namespace, service_account, check_mode, rules=None, field="namespace"):
    """Service account and its read-only ClusterRole(+Binding) in the source cluster (with
    ``rules``, default istiod's).  Returns the names of what was (or would be) created or
    updated.  In check mode, a namespace that does not exist yet (install_istio creates it
    first in a real run) means every object would be created."""
    objects = rs.reader_objects(namespace, service_account, rules)
    if not source.namespace_exists(namespace):
        if check_mode:
            return [_object_name(obj) for obj in objects]
        raise RemoteSecretError("source: namespace %s does not exist in %s (install Istio first)"
                                % (namespace, source.name), field=field)
    touched = []
    for obj in objects:
        meta = obj["metadata"]
        live = source.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if live is not None and (obj["kind"] != "ClusterRole" or not rs.rules_differ(live.get("rules"), obj["rules"])):
            continue
        touched.append(_object_name(obj))
        if not check_mode:
            source.create_or_replace(obj, live)
    return touched


def legacy_token(source, namespace, service_account, check_mode, timeout):
    """(ca, token, created) from a kubernetes.io/service-account-token Secret, made
    and waited for when missing (Kubernetes 1.24+ no longer makes one by itself)."""
    name = rs.token_secret_name(service_account)
    secret = source.get("v1", "Secret", name, namespace)
    created = secret is None
    if created:
        if check_mode:
            return None, None, created
        source.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                       "metadata": {"name": name, "namespace": namespace, "labels": names.managed_labels(),
                                    "annotations": {"kubernetes.io/service-account.name": service_account}}})
    filled = {}

    def pending():
        data = (source.get("v1", "Secret", name, namespace) or {}).get("data") or {}
        if data.get("token") and data.get("ca.crt"):
            filled.update(data)
            return []
        return ["token and ca.crt of Secret %s/%s (is kube-controller-manager's service-account token controller "
                "running, with --service-account-private-key-file and --root-ca-file?)" % (namespace, name)]
    source.wait("waiting for the token controller", pending, timeout, interval=0.5)
    return base64.b64decode(filled["ca.crt"]), base64.b64decode(filled["token"]).decode(), created


def source_ca(source):
    ca = source.ca_cert()
    if not ca:
        raise RemoteSecretError("source: the connection to the source cluster names no CA certificate; the remote "
                                "secret needs one (give source.ca_cert or a kubeconfig with certificate-authority)",
                                field="source")
    return ca


def current_of(existing, cluster_name):
    """(server, ca, token) of an existing remote secret, (None, None, None) when unreadable."""
    raw = ((existing or {}).get("data") or {}).get(cluster_name)
    return rs.parse_kubeconfig(base64.b64decode(raw).decode()) if raw else (None, None, None)


def plan_secret(params, source, namespace, existing, current, server, now, check_mode, label_reasons):
    """The token of the reader ``params["service_account"]`` in ``namespace`` of the source
    cluster, and why the secret holding it (``existing``, whose kubeconfig reads as
    ``current``) must be rewritten.  ``params`` has token_mode, token_expiration,
    renew_before and token_timeout (remote_secret's options); ``label_reasons()`` says what
    is wrong with the existing secret's labels.

    A requested token is kept while it is valid beyond renew_before and issued for the
    same lifetime; else a new one is requested (none in check mode).  Returns (ca, token,
    token expiry, reasons, whether a token Secret was made); the token is None in check
    mode when one would have to be made first."""
    sa = params["service_account"]
    created = False
    lifetime = []
    if params["token_mode"] == "secret":
        ca, token, created = legacy_token(source, namespace, sa, check_mode, params["token_timeout"])
    else:
        ca = source_ca(source)
        token = None
        lifetime = rs.lifetime_reasons(existing, params["token_expiration"])
        if current is not None and current[2] and current[1] == ca and current[0] == server and not lifetime:
            exp = rs.token_expiry(current[2])
            if exp is not None and exp > now + datetime.timedelta(seconds=params["renew_before"]):
                token = current[2]  # still valid: keep it, no rewrite
        if token is None and not check_mode:
            token = source.create_token(namespace, sa, expiration=params["token_expiration"])

    if token is None:
        # check mode, and a token would have to be made first
        return ca, None, None, ["a new token is needed"] if current is not None else ["missing"], created
    token_until = rs.token_expiry(token)
    reasons = rs.rewrite_reasons(current, server, ca, token_until, now, params["renew_before"])
    reasons += lifetime
    reasons += rs.token_reasons(params["token_mode"], current[2] if current else None, token)
    if existing is not None:
        reasons += label_reasons()
    return ca, token, token_until, reasons, created


def remove_reader(source, namespace, service_account, check_mode, rules=None):
    """Delete the reader ``ensure_reader`` made (and its token Secret); the names of what was
    (or would be) deleted."""
    objects = rs.reader_objects(namespace, service_account, rules)
    objects.append({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": rs.token_secret_name(service_account), "namespace": namespace}})
    gone = []
    for obj in reversed(objects):
        meta = obj["metadata"]
        live = source.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if live is None or not names.is_managed(live):
            continue
        gone.append(_object_name(obj))
        if not check_mode:
            source.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
    return gone


def run(params, target, check_mode, diff, now=None):
    """Runner of meshfed.istio.remote_secret; ``target`` is the cluster that gets the secret."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name, ns = params["cluster_name"], params["namespace"]
    sec_name = rs.secret_name(name)
    result = {"changed": False, "secret": {"namespace": ns, "name": sec_name, "cluster": name}, "source_objects": []}
    existing = target.get("v1", "Secret", sec_name, ns)
    current = current_of(existing, name) if existing is not None else None

    if params["state"] == "absent":
        if existing is not None:
            result["changed"] = True
            if diff:
                result["diff"] = {"before": rs.describe(*current), "after": {}}
            if not check_mode:
                target.delete("v1", "Secret", sec_name, ns)
        return result

    source = target.connect(params["source"], name)
    server = params.get("server") or source.host
    sa = params["service_account"]
    if params["verify_server"]:
        try:
            source.probe(server)
        except ClusterError as e:
            raise RemoteSecretError("server: %s" % e, field="server")
    result["source_objects"] = ensure_reader(source, ns, sa, check_mode)
    ca, token, token_until, reasons, created = plan_secret(params, source, ns, existing, current, server, now,
                                                           check_mode, lambda: rs.label_reasons(existing, name))
    if created:
        result["source_objects"].append("Secret %s/%s" % (ns, rs.token_secret_name(sa)))
    result["reasons"] = reasons
    result["changed"] = bool(reasons) or bool(result["source_objects"])
    result["secret"].update(server=server, ca_sha256=rs.fingerprint(ca) if ca else None,
                            token_expires=token_until.strftime("%Y-%m-%dT%H:%M:%SZ") if token_until else None)
    if diff and result["changed"]:
        result["diff"] = {"before": dict(rs.describe(*current) if current else {}, source_objects=[]),
                          "after": dict(rs.describe(server, ca, token) if token else {"server": server},
                                        source_objects=result["source_objects"])}
    if not reasons or check_mode:
        return result

    kubeconfig = yaml.safe_dump(rs.build_kubeconfig(name, server, ca, token), default_flow_style=False)
    target.create_or_replace(rs.secret_manifest(
        name, ns, kubeconfig, params["token_expiration"] if params["token_mode"] == "request" else None), existing)
    return result


def run_prune(params, target, check_mode, diff):
    """Runner of meshfed.istio.remote_secret_prune: remove the remote secrets this collection
    wrote for clusters not in ``keep``."""
    ns = params["namespace"]
    secrets = target.list("v1", "Secret", namespace=ns, label_selector="%s=true,%s=%s" % (
        rs.MULTICLUSTER_LABEL, names.MANAGED_BY_LABEL, names.MANAGED_BY), required=True)
    ours = rs.written_by_us(secrets)
    removed = rs.stale(ours, params["keep"])
    result = {"changed": bool(removed), "removed": removed, "kept": sorted(set(ours) - set(removed))}
    if diff and removed:
        result["diff"] = {"before": dict((c, "Secret %s/%s" % (ns, ours[c])) for c in removed),
                          "after": {}}
    if not check_mode:
        for cluster in removed:
            target.delete("v1", "Secret", ours[cluster], ns)
    return result
