# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The explicit-export (`<name>.<namespace>.global`) federation model, as pure logic.

An *export* is one Service of one cluster:
``{"cluster", "network", "gateway", "name", "namespace", "ports": [{"name", "port", "protocol"}],
"label_sets": [{"version": "v2"}, ...]}``.
``global_entries`` turns the exports into the ServiceEntries one cluster needs:
for services of other clusters, an entry whose endpoints are those clusters'
east-west gateways on 15443 (SNI passthrough); for its own exported services,
an entry whose endpoint is the local Service, which is what the gateway of the
exporting cluster resolves the `.global` SNI to on current Istio (istiocoredns
and the 1.6 stub-domain setup are gone since Istio 1.8.6/1.9.5).
"""

from __future__ import annotations

import re

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

GATEWAY_PORT = 15443
EGRESS_GATEWAY = "istio-egressgateway.istio-system.svc.cluster.local"
SELECTOR_RE = re.compile(r"^[A-Za-z0-9_./-]+(=[A-Za-z0-9_.-]*)?$")


class FederationError(MeshError):
    """Exports that cannot be federated as asked."""


def global_host(name, namespace):
    return "%s.%s.global" % (name, namespace)


def entry_name(name, namespace):
    """Name of the ServiceEntry of a `.global` host (DNS-1123, at most 253 characters)."""
    return ("global-%s-%s" % (name, namespace))[:253]


def istio_protocol(port):
    """Istio port protocol from a Service port: appProtocol, else the name prefix, else TCP."""
    app = (port.get("app_protocol") or "").lower()
    name = (port.get("name") or "").lower()
    for candidate in (app, name.split("-")[0]):
        for proto in ("https", "http2", "http", "grpc-web", "grpc", "tls", "mongo", "redis", "mysql", "tcp"):
            if candidate == proto or (candidate.startswith(proto) and candidate[len(proto):].isdigit()):
                return proto.upper()
    return "TCP"


def service_ports(ports):
    """ServiceEntry ports of a Service's ports: name, number, protocol."""
    out = []
    for p in ports:
        pname = p.get("name") or "port-%d" % p["port"]
        out.append({"name": pname, "number": int(p["port"]), "protocol": istio_protocol(p)})
    return sorted(out, key=lambda x: x["number"])


def endpoint_labels(pod_labels_list, keys):
    """Distinct sets of the chosen pod labels ([{}] when none apply)."""
    sets = []
    for labels in pod_labels_list:
        s = dict((k, labels[k]) for k in keys if k in (labels or {}))
        if s not in sets:
            sets.append(s)
    return sorted(sets, key=lambda d: sorted(d.items())) or [{}]


def index_exports(exports):
    """{host: [export, ...]}; fails when one service is exported with conflicting ports."""
    by_host = {}
    for e in exports:
        by_host.setdefault(global_host(e["name"], e["namespace"]), []).append(e)
    for host, items in by_host.items():
        first = service_ports(items[0]["ports"])
        for other in items[1:]:
            if [(p["number"], p["protocol"]) for p in service_ports(other["ports"])] != \
                    [(p["number"], p["protocol"]) for p in first]:
                raise FederationError(
                    "%s is exported by %s and %s with conflicting ports (%s vs %s): export it with the same ports "
                    "everywhere or from one cluster only"
                    % (host, items[0]["cluster"], other["cluster"],
                       ", ".join("%d/%s" % (p["number"], p["protocol"]) for p in first),
                       ", ".join("%d/%s" % (p["number"], p["protocol"]) for p in service_ports(other["ports"]))),
                    field="mesh_exports")
    return by_host


def wanted_hosts(cluster, exports):
    """The `.global` hosts ``cluster`` needs an entry (and a VIP) for: all exported hosts."""
    return sorted(index_exports(exports))


def global_entries(cluster, exports, vips, namespace="istio-system", via_egress=False):
    """The ServiceEntries (name, namespace, spec, labels) ``cluster`` needs.

    ``vips`` maps every host of ``wanted_hosts`` to this cluster's address for it."""
    out = []
    for host, items in sorted(index_exports(exports).items()):
        ports = service_ports(items[0]["ports"])
        if host not in vips:
            raise FederationError("no VIP allocated for %s in cluster %s" % (host, cluster), field="vip_cidr")
        local = [e for e in items if e["cluster"] == cluster]
        remote = [e for e in items if e["cluster"] != cluster]
        endpoints = []
        for e in local:
            for labels in e.get("label_sets") or [{}]:
                ep = {"address": "%s.%s.svc.cluster.local" % (e["name"], e["namespace"]),
                      "ports": dict((p["name"], p["number"]) for p in ports)}
                if labels:
                    ep["labels"] = dict(labels)
                endpoints.append(ep)
        for e in sorted(remote, key=lambda x: x["cluster"]):
            if not e.get("gateway"):
                raise FederationError("cluster %s exports %s but has no gateway address (set mesh_gateway_address)"
                                      % (e["cluster"], host), field="mesh_gateway_address")
            for labels in e.get("label_sets") or [{}]:
                ep = {"address": e["gateway"], "ports": dict((p["name"], GATEWAY_PORT) for p in ports)}
                if via_egress:
                    ep["network"] = "external"
                elif e.get("network"):
                    ep["network"] = e["network"]
                if labels:
                    ep["labels"] = dict(labels)
                endpoints.append(ep)
        if via_egress and remote:
            endpoints.insert(0, {"address": EGRESS_GATEWAY, "ports": dict((p["name"], GATEWAY_PORT) for p in ports)})
        spec = {
            "hosts": [host],
            "location": "MESH_INTERNAL",
            "resolution": "DNS",
            "addresses": [vips[host]],
            "ports": ports,
            "endpoints": endpoints,
        }
        name = entry_name(items[0]["name"], items[0]["namespace"])
        out.append({"name": name, "namespace": namespace, "spec": spec,
                    "labels": {"meshfed.istio/global-host": name[:63]}})
    return out


def check_legacy_form(istio_version):
    """The Istio 1.6 `.global` form needs istiocoredns, removed in 1.8.6/1.9.5."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh.istio import parse_version
    v = parse_version(istio_version)
    if v is None or v[:2] >= (1, 9) or (v[:2] == (1, 8) and (v[2] or 0) >= 6):
        raise FederationError(
            "federate_clusters_global_form=legacy needs istiocoredns and the kube-dns stub domain of Istio <= 1.8.5; "
            "this mesh runs Istio %s, where they are gone: use the current form" % istio_version,
            field="federate_clusters_global_form")


# --- discovery (API) ------------------------------------------------------------

def _dynamic(api):
    """A DynamicClient (importing the typed CoreV1Api costs more than a second per module run)."""
    from kubernetes.dynamic import DynamicClient
    return DynamicClient(api)


def discover(api, exports_spec, label_keys):
    """The Services a cluster exports: one LIST of Services per export entry and one
    LIST of Pods per namespace, whatever the number of Services."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import kube
    dyn = _dynamic(api)
    services_res = dyn.resources.get(api_version="v1", kind="Service")
    pods_res = dyn.resources.get(api_version="v1", kind="Pod")
    pods_by_ns = {}
    found = {}
    for i, spec in enumerate(exports_spec):
        ns = spec.get("namespace")
        if not ns:
            raise FederationError("mesh_exports[%d]: namespace is required" % i, field="mesh_exports")
        selector = spec.get("label_selector") or ""
        if selector and not all(SELECTOR_RE.match(part.strip()) for part in selector.split(",")):
            raise FederationError("mesh_exports[%d]: label_selector %r is not a label selector" % (i, selector),
                                  field="mesh_exports")
        try:
            services = dyn.get(services_res, namespace=ns, label_selector=selector or None).to_dict()["items"]
            if ns not in pods_by_ns:
                pods_by_ns[ns] = [(p["metadata"].get("labels") or {})
                                  for p in dyn.get(pods_res, namespace=ns).to_dict()["items"]]
        except kube.ApiException as e:
            raise kube.api_error(e, "listing Services of namespace %s" % ns)
        names = set(spec.get("names") or [])
        for svc in services:
            name = svc["metadata"]["name"]
            if names and name not in names:
                continue
            sel = svc["spec"].get("selector") or {}
            pods = [lbl for lbl in pods_by_ns[ns] if sel and all(lbl.get(k) == v for k, v in sel.items())]
            found[(ns, name)] = {
                "name": name, "namespace": ns,
                "ports": [{"name": p.get("name"), "port": p["port"], "app_protocol": p.get("appProtocol")}
                          for p in svc["spec"].get("ports") or []],
                "label_sets": endpoint_labels(pods, label_keys),
            }
    return [found[k] for k in sorted(found)]


def cluster_info(api, namespace="istio-system"):
    """What install_istio recorded in ConfigMap meshfed-cluster-info ({} when absent)."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import kube
    from kubernetes.dynamic.exceptions import NotFoundError
    dyn = _dynamic(api)
    try:
        cm = dyn.get(dyn.resources.get(api_version="v1", kind="ConfigMap"), name="meshfed-cluster-info",
                     namespace=namespace).to_dict()
    except NotFoundError:
        return {}
    except kube.ApiException as e:
        raise kube.api_error(e, "reading ConfigMap %s/meshfed-cluster-info" % namespace)
    return dict(cm.get("data") or {})
