# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Pure Istio install logic: IstioOperator rendering, version checks, drift.

No API calls and no processes here; istioctl_runner does those.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import InstallError

EASTWEST_GATEWAY = "istio-eastwestgateway"
# Ports of Istio's samples/multicluster/gen-eastwest-gateway.sh: status, mTLS
# passthrough to services, istiod (XDS) and istiod's webhooks.
EASTWEST_PORTS = (
    ("status-port", 15021),
    ("tls", 15443),
    ("tls-istiod", 15012),
    ("tls-webhook", 15017),
)
REVISION_LABEL = "istio.io/rev"
COMPONENT_LABEL = "operator.istio.io/component"

# Lowest Kubernetes minor each Istio minor supports: istioctl's MinK8SVersion
# (istioctl/pkg/install/k8sversion/version.go), read from the source of each
# Istio minor we have built.  Istio minors not listed are not checked.
K8S_MIN = {
    (1, 30): 32,
    (1, 31): 32,
}


def parse_version(text):
    """(major, minor, patch or None) from '1.31.2', 'v1.36.3', '1.31-dev'; None when unparseable."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) is not None else None


def check_istioctl_version(istioctl_version, requested):
    """Fail when istioctl is not the requested Istio version.

    ``requested`` '1.31' matches any 1.31 build; '1.31.2' needs exactly 1.31.2."""
    have = parse_version(istioctl_version)
    if have is None:
        raise InstallError("istioctl: cannot read its version from %r" % (istioctl_version,), field="istioctl")
    if not requested:
        return
    want = parse_version(requested)
    if want is None:
        raise InstallError("istio_version: %r is not a version like 1.31 or 1.31.2" % (requested,),
                           field="istio_version")
    if have[:2] != want[:2] or (want[2] is not None and have[2] != want[2]):
        raise InstallError("istioctl is version %s but istio_version %s was requested: use the istioctl of %s "
                           "(option istioctl)" % (istioctl_version, requested, requested), field="istio_version")


def check_kubernetes_version(istio_version, k8s_version):
    """Fail when the cluster's Kubernetes is older than this Istio supports."""
    iv, kv = parse_version(istio_version), parse_version(k8s_version)
    if iv is None or kv is None or iv[:2] not in K8S_MIN:
        return
    low = K8S_MIN[iv[:2]]
    if kv[0] != 1 or kv[1] < low:
        raise InstallError("Kubernetes %s is not supported by Istio %d.%d (needs 1.%d or newer)"
                           % (k8s_version, iv[0], iv[1], low), field="context")


def deep_merge(base, overlay):
    """A copy of ``base`` with ``overlay`` merged in (dicts recursively, everything else replaced)."""
    out = copy.deepcopy(base)
    for k, v in (overlay or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def eastwest_gateway(network, service_type=None):
    """The east-west gateway component, as Istio's gen-eastwest-gateway.sh makes it,
    but fully rendered (no injection template), so it needs no sidecar injector.
    ``service_type``: its Service's type (default the chart's, LoadBalancer)."""
    labels = {"istio": "eastwestgateway", "app": EASTWEST_GATEWAY}
    env = [{"name": "ISTIO_META_ROUTER_MODE", "value": "sni-dnat"}]
    if network:
        labels["topology.istio.io/network"] = network
        env.append({"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": network})
    service = {"ports": [{"name": n, "port": p, "targetPort": p} for n, p in EASTWEST_PORTS]}
    if service_type:
        service["type"] = service_type
    return {
        "name": EASTWEST_GATEWAY,
        "enabled": True,
        "label": labels,
        "k8s": {"env": env, "service": service},
    }


# Multi-root trust (install_istio_multiroot, the module's multi_root): istiod accepts a root bundle that adds
# or drops roots in Secret cacerts (ISTIO_MULTIROOT_MESH, values.pilot.env) and pushes it to the proxies in
# their proxy config, which they use only with PROXY_CONFIG_XDS_AGENT (meshConfig.defaultConfig.proxyMetadata).
MULTI_ROOT_VALUES = {"pilot": {"env": {"ISTIO_MULTIROOT_MESH": "true"}}}
MULTI_ROOT_MESH_CONFIG = {"defaultConfig": {"proxyMetadata": {"PROXY_CONFIG_XDS_AGENT": "true"}}}


def render_iop(p):
    """The IstioOperator for the module parameters ``p`` (a dict)."""
    revision = p.get("revision") or ""
    comps = p.get("components") or {}
    spec = {"profile": p.get("profile") or "default", "values": {"global": {}}, "components": {}}
    if revision:
        spec["revision"] = revision
    g = spec["values"]["global"]
    if p.get("mesh_id"):
        g["meshID"] = p["mesh_id"]
    if p.get("cluster_name"):
        g["multiCluster"] = {"clusterName": p["cluster_name"]}
    if p.get("network"):
        g["network"] = p["network"]
    if (p.get("mesh_networks") or {}).get("networks"):
        # the chart writes these under `networks:` of the mesh networks configuration
        g["meshNetworks"] = copy.deepcopy(p["mesh_networks"]["networks"])
    if p.get("hub"):
        spec["hub"] = p["hub"]
    if p.get("tag"):
        spec["tag"] = p["tag"]
    ingress = []
    if comps.get("ingress_gateway") is not None:
        ingress.append({"name": "istio-ingressgateway", "enabled": bool(comps["ingress_gateway"])})
    if comps.get("eastwest_gateway"):
        ingress.append(eastwest_gateway(p.get("network"), comps.get("eastwest_service_type")))
    if ingress:
        spec["components"]["ingressGateways"] = ingress
    if comps.get("egress_gateway") is not None:
        spec["components"]["egressGateways"] = [{"name": "istio-egressgateway",
                                                 "enabled": bool(comps["egress_gateway"])}]
    # multi-root settings first, the caller's mesh_config and values over them
    mesh_config = deep_merge(MULTI_ROOT_MESH_CONFIG if p.get("multi_root") else {}, p.get("mesh_config"))
    if mesh_config:
        spec["meshConfig"] = mesh_config
    if p.get("multi_root"):
        spec["values"] = deep_merge(spec["values"], MULTI_ROOT_VALUES)
    spec["values"] = deep_merge(spec["values"], p.get("values"))
    iop = {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "meshfed-" + (revision or "default"), "namespace": "istio-system"},
        "spec": spec,
    }
    return deep_merge(iop, p.get("iop_overlay"))


# --- drift ----------------------------------------------------------------

# Fields istiod itself manages at run time on objects istioctl installs: a
# difference there is not drift (istioctl would reset them, istiod would set
# them again).
# The injector's selectors are rewritten by istioctl install itself when it
# makes the default-revision tag webhook (it "deactivates" the per-revision one
# with istio.io/deactivated=never-match); they derive from values that other
# objects (the values ConfigMap) carry too, so a real change is still seen.
RUNTIME_MANAGED = {
    "MutatingWebhookConfiguration": (("webhooks", "*", "clientConfig", "caBundle"),
                                     ("webhooks", "*", "namespaceSelector"),
                                     ("webhooks", "*", "objectSelector")),
    "ValidatingWebhookConfiguration": (("webhooks", "*", "clientConfig", "caBundle"),
                                       ("webhooks", "*", "failurePolicy")),
}
# Labels istioctl install sets on every object it applies (its owner labels),
# which `istioctl manifest generate` renders differently or not at all.
INSTALL_OWNER_LABELS = (
    "install.operator.istio.io/owning-resource",
    "install.operator.istio.io/owning-resource-namespace",
    "operator.istio.io/managed",
    "operator.istio.io/version",
)
VOLATILE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


def _drop(obj, path):
    if not path or obj is None:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(obj, list):
            for item in obj:
                _drop(item, rest)
        return
    if isinstance(obj, dict) and head in obj:
        if rest:
            _drop(obj[head], rest)
        else:
            del obj[head]


def normalize(obj):
    """A copy without the fields that change with every write or that istiod manages."""
    out = copy.deepcopy(obj) or {}
    meta = out.get("metadata") or {}
    for k in VOLATILE_METADATA:
        meta.pop(k, None)
    ann = meta.get("annotations") or {}
    ann.pop("deployment.kubernetes.io/revision", None)
    if "annotations" in meta and not ann:
        meta.pop("annotations")
    out.pop("status", None)
    for path in RUNTIME_MANAGED.get(out.get("kind"), ()):
        _drop(out, path)
    return out


def diff_paths(a, b, prefix=""):
    """Dotted paths where two JSON-like values differ (sorted, at most one per subtree)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out.extend(diff_paths(a.get(k), b.get(k), "%s.%s" % (prefix, k) if prefix else k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(diff_paths(x, y, "%s[%d]" % (prefix, i)))
        return out
    return [] if a == b else [prefix or "."]


def object_ref(obj):
    meta = obj.get("metadata") or {}
    return {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name"),
            "api_version": obj.get("apiVersion")}


def ref_str(ref):
    return "%s %s%s" % (ref["kind"], ref["namespace"] + "/" if ref.get("namespace") else "", ref["name"])


def split_manifest(docs):
    """The objects of ``istioctl manifest generate`` output (already YAML-parsed docs)."""
    objs = []
    for d in docs:
        if not d:
            continue
        if d.get("kind", "").endswith("List") and "items" in d:
            objs.extend(i for i in d["items"] if i)
        else:
            objs.append(d)
    return objs


def without_owner_labels(obj):
    """A rendered object as the drift check applies it: without istioctl's owner labels."""
    out = copy.deepcopy(obj)
    labels = (out.get("metadata") or {}).get("labels") or {}
    for k in INSTALL_OWNER_LABELS:
        labels.pop(k, None)
    return out


def prune_selector(iop, version):
    """The label selector of the objects `istioctl install` prunes when they are not in
    its manifest: its owner labels (operator/pkg/install getOwnerLabels) plus the
    component label, minus objects marked owning-resource-not-pruned (revision tags)."""
    meta = iop.get("metadata") or {}
    rev = (iop.get("spec") or {}).get("revision") or "default"
    return ",".join([
        "operator.istio.io/managed=Reconcile",
        "operator.istio.io/version=%s" % version,
        "install.operator.istio.io/owning-resource=%s" % meta.get("name"),
        "install.operator.istio.io/owning-resource-namespace=%s" % meta.get("namespace"),
        "%s=%s" % (REVISION_LABEL, rev),
        COMPONENT_LABEL,
        "!install.operator.istio.io/owning-resource-not-pruned",
    ])
