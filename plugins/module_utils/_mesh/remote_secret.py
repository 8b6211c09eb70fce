# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Istio remote secrets, natively (what `istioctl create-remote-secret` makes).

Pure: the reader RBAC objects, the kubeconfig inside the secret, reading it back,
token expiry, the decision whether the secret must be rewritten, and which
secrets are stale.  remote_secret_runner talks to the two clusters.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

MULTICLUSTER_LABEL = "istio/multiCluster"
TOKEN_EXPIRATION_ANNOTATION = "meshfed.istio/token-expiration"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"
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


def token_argument_spec():
    """The token options of a module that hands a reader's token to another cluster (doc
    fragment meshfed.istio.reader_token)."""
    return dict(
        token_mode=dict(type="str", default="secret", choices=["secret", "request"]),
        token_expiration=dict(type="int", default=2592000, no_log=False),
        renew_before=dict(type="int", default=604800),
        token_timeout=dict(type="int", default=60),
    )


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


def token_reasons(mode, current_token, token):
    """Why the secret's token must be replaced by ``token`` (the one to write): [] when it is
    the same.  In V(request) mode a different token means the current one had no expiry (it
    came from the token Secret of mode V(secret)) or expires within renew_before."""
    if not current_token or not token or current_token == token:
        return []
    if mode == "secret":
        return ["token differs from the service account's token Secret"]
    if token_expiry(current_token) is None:
        return ["token has no expiry (token_mode is request)"]
    return ["token renewed"]


def describe(server, ca, token):
    """Diff-safe summary of a remote secret: never the token."""
    if server is None:
        return {}
    exp = token_expiry(token) if token else None
    return {"server": server, "ca_sha256": fingerprint(ca),
            "token": "<hidden, %s>" % ("expires " + exp.strftime("%Y-%m-%dT%H:%M:%SZ") if exp else "no expiry")}


def label_reasons(existing, cluster_name, label=MULTICLUSTER_LABEL, annotation=CLUSTER_ANNOTATION):
    """What is wrong with the labels and annotation of an existing remote secret (a dict);
    ``label`` and ``annotation`` are Istio's unless a reader of other secrets (Kiali) says."""
    meta = existing.get("metadata") or {}
    reasons = []
    if (meta.get("labels") or {}).get(label) != "true":
        reasons.append("label %s=true missing" % label)
    if (meta.get("annotations") or {}).get(annotation) != cluster_name:
        reasons.append("annotation %s is not %s" % (annotation, cluster_name))
    return reasons


def reader_objects(namespace, service_account, rules=None):
    """The reader's ServiceAccount, ClusterRole and ClusterRoleBinding in the source cluster;
    ``rules`` are the ClusterRole's (default istiod's, READER_RULES)."""
    role = reader_role_name(service_account, namespace)
    labels = names.managed_labels()
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": service_account, "namespace": namespace, "labels": dict(labels)}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": role, "labels": dict(labels)}, "rules": [dict(r) for r in (READER_RULES if rules is None else rules)]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role, "labels": dict(labels)},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]},
    ]


def _rule(r):
    return dict((k, r.get(k) or []) for k in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"))


def rules_differ(live_rules, want_rules):
    return [_rule(r) for r in live_rules or []] != [_rule(r) for r in want_rules]


def secret_manifest(cluster_name, namespace, kubeconfig_text, token_expiration=None, name=None,
                    label=MULTICLUSTER_LABEL, annotation=CLUSTER_ANNOTATION):
    """The remote secret (istiod reads the kubeconfig under the cluster's name).  A requested
    token's lifetime is recorded (``token_expiration``), so that a change re-issues it.
    ``name``, ``label`` and ``annotation`` are Istio's unless a reader of other secrets
    (Kiali) says."""
    annotations = {annotation: cluster_name}
    if token_expiration is not None:
        annotations[TOKEN_EXPIRATION_ANNOTATION] = str(token_expiration)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name or secret_name(cluster_name), "namespace": namespace,
                         "labels": dict(names.managed_labels(), **{label: "true"}),
                         "annotations": annotations},
            "data": {cluster_name: base64.b64encode(kubeconfig_text.encode()).decode()}}


def issued_for(existing):
    """The token lifetime (seconds) an existing remote secret records, None when it records none."""
    value = (((existing or {}).get("metadata") or {}).get("annotations") or {}).get(TOKEN_EXPIRATION_ANNOTATION)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def lifetime_reasons(existing, token_expiration):
    """Why a requested token must be re-issued for a new lifetime: [] when the secret records
    ``token_expiration``, or is missing."""
    if existing is None:
        return []
    issued = issued_for(existing)
    if issued == token_expiration:
        return []
    return ["token lifetime is %d s (the current token was issued for %s)"
            % (token_expiration, "%d s" % issued if issued is not None else "an unrecorded lifetime")]


def written_by_us(secrets, label=MULTICLUSTER_LABEL, annotation=CLUSTER_ANNOTATION):
    """{cluster name: secret name} of remote secrets (dicts) this collection wrote (Istio's,
    or with ``label`` and ``annotation`` another reader's)."""
    out = {}
    for s in secrets:
        meta = s.get("metadata") or {}
        cluster = (meta.get("annotations") or {}).get(annotation)
        if cluster and names.is_managed(s) and (meta.get("labels") or {}).get(label) == "true":
            out[cluster] = meta.get("name")
    return out


def stale(ours, keep):
    """The cluster names of ``ours`` ({cluster: secret}) that are not in ``keep``, sorted."""
    return sorted(set(ours) - set(keep or []))
