# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Istio remote secrets, natively (what `istioctl create-remote-secret` makes).

Pure part: the reader RBAC, the kubeconfig inside the secret, reading it back,
token expiry, and the decision whether the secret must be rewritten.
``run`` talks to the two clusters.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import time

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import kube
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

MULTICLUSTER_LABEL = "istio/multiCluster"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"
MANAGED_BY = kube.MANAGED_BY
READ = ["get", "list", "watch"]

# What istiod reads in a remote cluster, read-only.  Istio's own
# istio-reader-clusterrole also lets the reader create and delete MCS
# ServiceExports (only used with the MCS feature, off by default); this role
# does not.  TokenReview and SubjectAccessReview "create" are reviews, not
# objects: istiod needs them to authenticate that cluster's workloads when it is
# their control plane (primary-remote).
READER_RULES = [
    {"apiGroups": ["config.istio.io", "security.istio.io", "networking.istio.io", "authentication.istio.io",
                   "rbac.istio.io", "telemetry.istio.io", "extensions.istio.io"],
     "resources": ["*"], "verbs": READ},
    {"apiGroups": [""], "resources": ["endpoints", "pods", "services", "nodes", "replicationcontrollers",
                                      "namespaces", "secrets", "configmaps"], "verbs": READ},
    {"apiGroups": ["networking.x-k8s.io", "gateway.networking.k8s.io"], "resources": ["gateways"], "verbs": READ},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
    {"apiGroups": ["multicluster.x-k8s.io"], "resources": ["serviceexports", "serviceimports"], "verbs": READ},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": READ},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]


class RemoteSecretError(MeshError):
    """Bad input or a cluster that cannot serve a remote secret."""


def secret_name(cluster_name):
    return "istio-remote-secret-%s" % cluster_name


def token_secret_name(service_account):
    return "%s-token" % service_account


def reader_role_name(service_account, namespace):
    return "%s-%s" % (service_account, namespace)


def build_kubeconfig(cluster_name, server, ca_data, token):
    """The kubeconfig Istio expects in a remote secret (one cluster, one context)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_data).decode()}}],
        "users": [{"name": cluster_name, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
    }


def parse_kubeconfig(text):
    """(server, ca bytes, token) of a remote secret's kubeconfig; Nones when unusable."""
    try:
        cfg = yaml.safe_load(text) or {}
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg.get("contexts", []) if c.get("name") == ctx_name)
        cluster = next(c["cluster"] for c in cfg.get("clusters", []) if c.get("name") == ctx.get("cluster"))
        user = next(u["user"] for u in cfg.get("users", []) if u.get("name") == ctx.get("user"))
        ca = base64.b64decode(cluster.get("certificate-authority-data") or "")
        return cluster.get("server"), ca, user.get("token")
    except (ValueError, TypeError, KeyError, AttributeError, StopIteration, yaml.YAMLError):
        return None, None, None


def token_expiry(token):
    """Expiry of a JWT (its 'exp' claim, not verified), or None when it has none."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload.encode())).get("exp")
    except (AttributeError, IndexError, ValueError, TypeError):
        return None
    if exp is None:
        return None
    return datetime.datetime.fromtimestamp(int(exp), tz=datetime.timezone.utc)


def fingerprint(data):
    return hashlib.sha256(data or b"").hexdigest()[:16]


def rewrite_reasons(current, server, ca, token_valid_until, now, renew_before):
    """Why the remote secret must be (re)written; [] when it is good as it is.

    ``current`` is (server, ca, token) read from the existing secret (or None)."""
    if current is None:
        return ["missing"]
    cur_server, cur_ca, cur_token = current
    reasons = []
    if cur_server != server:
        reasons.append("server is %s, wanted %s" % (cur_server, server))
    if cur_ca != ca:
        reasons.append("CA changed")
    if not cur_token:
        reasons.append("no token")
    elif token_valid_until is not None and token_valid_until <= now + datetime.timedelta(seconds=renew_before):
        reasons.append("token expires at %s" % token_valid_until.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return reasons


def describe(server, ca, token):
    """Diff-safe summary of a remote secret: never the token."""
    if server is None:
        return {}
    exp = token_expiry(token) if token else None
    return {"server": server, "ca_sha256": fingerprint(ca),
            "token": "<hidden, %s>" % ("expires " + exp.strftime("%Y-%m-%dT%H:%M:%SZ") if exp else "no expiry")}


# --- API side ----------------------------------------------------------------

def _read(fn, *args):
    try:
        return fn(*args)
    except kube.ApiException as e:
        if kube.is_not_found(e):
            return None
        raise


def ensure_reader(core, rbac, namespace, service_account, check_mode):
    """Service account and its read-only ClusterRole(+Binding) in the source cluster.
    Returns the names of what was (or would be) created or updated."""
    k = kube.k8s_client
    touched = []
    role = reader_role_name(service_account, namespace)
    if _read(core.read_namespace, namespace) is None:
        raise RemoteSecretError("source: namespace %s does not exist (install Istio first)" % namespace,
                                field="namespace")
    if _read(core.read_namespaced_service_account, service_account, namespace) is None:
        touched.append("ServiceAccount %s/%s" % (namespace, service_account))
        if not check_mode:
            core.create_namespaced_service_account(namespace, k.V1ServiceAccount(
                metadata=k.V1ObjectMeta(name=service_account, labels=dict(MANAGED_BY))))
    want_rules = [k.V1PolicyRule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"])
                  for r in READER_RULES]
    current = _read(rbac.read_cluster_role, role)
    if current is None or [r.to_dict() for r in (current.rules or [])] != [r.to_dict() for r in want_rules]:
        touched.append("ClusterRole %s" % role)
        if not check_mode:
            body = k.V1ClusterRole(metadata=k.V1ObjectMeta(name=role, labels=dict(MANAGED_BY)), rules=want_rules)
            if current is None:
                rbac.create_cluster_role(body)
            else:
                body.metadata.resource_version = current.metadata.resource_version
                rbac.replace_cluster_role(role, body)
    binding = _read(rbac.read_cluster_role_binding, role)
    if binding is None:
        touched.append("ClusterRoleBinding %s" % role)
        if not check_mode:
            rbac.create_cluster_role_binding(k.V1ClusterRoleBinding(
                metadata=k.V1ObjectMeta(name=role, labels=dict(MANAGED_BY)),
                role_ref=k.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
                subjects=[k.RbacV1Subject(kind="ServiceAccount", name=service_account, namespace=namespace)]))
    return touched


def legacy_token(core, namespace, service_account, check_mode, timeout):
    """(ca, token, created) from a kubernetes.io/service-account-token Secret, made
    and waited for when missing (Kubernetes 1.24+ no longer makes one by itself)."""
    k = kube.k8s_client
    name = token_secret_name(service_account)
    secret = _read(core.read_namespaced_secret, name, namespace)
    created = False
    if secret is None:
        created = True
        if check_mode:
            return None, None, created
        core.create_namespaced_secret(namespace, k.V1Secret(
            metadata=k.V1ObjectMeta(name=name, labels=dict(MANAGED_BY),
                                    annotations={"kubernetes.io/service-account.name": service_account}),
            type="kubernetes.io/service-account-token"))
    deadline = time.monotonic() + timeout
    while True:
        secret = core.read_namespaced_secret(name, namespace)
        data = secret.data or {}
        if data.get("token") and data.get("ca.crt"):
            return base64.b64decode(data["ca.crt"]), base64.b64decode(data["token"]).decode(), created
        if time.monotonic() > deadline:
            raise RemoteSecretError(
                "source: Secret %s/%s got no token and ca.crt within %ds: is kube-controller-manager's "
                "service-account token controller running (--service-account-private-key-file, --root-ca-file)?"
                % (namespace, name, timeout), field="token_timeout")
        time.sleep(0.5)


def request_token(core, namespace, service_account, expiration):
    k = kube.k8s_client
    tr = core.create_namespaced_service_account_token(service_account, namespace, k.AuthenticationV1TokenRequest(
        spec=k.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration)))
    return tr.status.token


def source_ca(api):
    path = api.configuration.ssl_ca_cert
    if not path:
        raise RemoteSecretError("source: the connection to the source cluster names no CA certificate; the remote "
                                "secret needs one (give source.ca_cert or a kubeconfig with certificate-authority)",
                                field="source")
    with open(path, "rb") as f:
        return f.read()


def probe_server(source, server, timeout=10):
    """Fail (nothing written yet) when ``server`` does not answer as a Kubernetes API
    server with the source cluster's CA: the remote secret would be useless."""
    conf = copy.copy(source.configuration)
    conf.host = server
    try:
        kube.k8s_client.VersionApi(kube.k8s_client.ApiClient(conf)).get_code(_request_timeout=timeout)
    except Exception as e:  # connection refused, TLS, DNS, timeout: all mean "unreachable"
        raise RemoteSecretError("server: %s does not answer as the API server of this cluster from the "
                                "controller: %s" % (server, str(e).splitlines()[0][:300]), field="server")


def label_reasons(existing, cluster_name):
    meta = existing.metadata
    reasons = []
    if (meta.labels or {}).get(MULTICLUSTER_LABEL) != "true":
        reasons.append("label %s=true missing" % MULTICLUSTER_LABEL)
    if (meta.annotations or {}).get(CLUSTER_ANNOTATION) != cluster_name:
        reasons.append("annotation %s is not %s" % (CLUSTER_ANNOTATION, cluster_name))
    return reasons


def run(params, check_mode, want_diff, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = params["cluster_name"]
    ns = params["namespace"]
    sec_name = secret_name(name)
    target = kube.api_client(params["target"])
    tcore = kube.k8s_client.CoreV1Api(target)
    result = {"changed": False, "secret": {"namespace": ns, "name": sec_name, "cluster": name}, "source_objects": []}

    try:
        existing = _read(tcore.read_namespaced_secret, sec_name, ns)
    except kube.ApiException as e:
        raise kube.api_error(e, "target: reading Secret %s/%s" % (ns, sec_name))
    current = None
    if existing is not None:
        raw = (existing.data or {}).get(name)
        current = parse_kubeconfig(base64.b64decode(raw).decode()) if raw else (None, None, None)

    if params["state"] == "absent":
        if existing is not None:
            result["changed"] = True
            if want_diff:
                result["diff"] = {"before": describe(*current), "after": {}}
            if not check_mode:
                try:
                    tcore.delete_namespaced_secret(sec_name, ns)
                except kube.ApiException as e:
                    if not kube.is_not_found(e):
                        raise kube.api_error(e, "target: deleting Secret %s/%s" % (ns, sec_name))
        return result

    source = kube.api_client(params["source"])
    score = kube.k8s_client.CoreV1Api(source)
    srbac = kube.k8s_client.RbacAuthorizationV1Api(source)
    server = params.get("server") or source.configuration.host
    sa = params["service_account"]
    if params["verify_server"]:
        probe_server(source, server)
    try:
        result["source_objects"] = ensure_reader(score, srbac, ns, sa, check_mode)
        if params["token_mode"] == "secret":
            ca, token, created = legacy_token(score, ns, sa, check_mode, params["token_timeout"])
            if created:
                result["source_objects"].append("Secret %s/%s" % (ns, token_secret_name(sa)))
        else:
            ca = source_ca(source)
            token = None
            if current is not None and current[2] and current[1] == ca and current[0] == server:
                exp = token_expiry(current[2])
                if exp is not None and exp > now + datetime.timedelta(seconds=params["renew_before"]):
                    token = current[2]  # still valid: keep it, no rewrite
            if token is None and not check_mode:
                token = request_token(score, ns, sa, params["token_expiration"])
    except kube.ApiException as e:
        raise kube.api_error(e, "source (cluster %s)" % name)

    if token is None:
        # check mode, and a token would have to be made first
        reasons = ["a new token is needed"] if current is not None else ["missing"]
        token_until = None
    else:
        token_until = token_expiry(token)
        reasons = rewrite_reasons(current, server, ca, token_until, now, params["renew_before"])
        if current is not None and current[2] != token and params["token_mode"] == "secret":
            reasons.append("token differs from the service account's token Secret")
        if existing is not None:
            reasons += label_reasons(existing, name)
    result["reasons"] = reasons
    result["changed"] = bool(reasons) or bool(result["source_objects"])
    result["secret"].update(server=server, ca_sha256=fingerprint(ca) if ca else None,
                            token_expires=token_until.strftime("%Y-%m-%dT%H:%M:%SZ") if token_until else None)
    if want_diff and result["changed"]:
        result["diff"] = {"before": dict(describe(*current) if current else {}, source_objects=[]),
                          "after": dict(describe(server, ca, token) if token else {"server": server},
                                        source_objects=result["source_objects"])}
    if not reasons or check_mode:
        return result

    kubeconfig = yaml.safe_dump(build_kubeconfig(name, server, ca, token), default_flow_style=False)
    k = kube.k8s_client
    body = k.V1Secret(
        metadata=k.V1ObjectMeta(name=sec_name, namespace=ns,
                                labels=dict(MANAGED_BY, **{MULTICLUSTER_LABEL: "true"}),
                                annotations={CLUSTER_ANNOTATION: name}),
        type="Opaque", data={name: base64.b64encode(kubeconfig.encode()).decode()})
    try:
        if existing is None:
            tcore.create_namespaced_secret(ns, body)
        else:
            body.metadata.resource_version = existing.metadata.resource_version
            tcore.replace_namespaced_secret(sec_name, ns, body)
    except kube.ApiException as e:
        raise kube.api_error(e, "target: writing Secret %s/%s" % (ns, sec_name))
    return result
