# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The explicit-export (`<name>.<namespace>.global`) federation model, as pure logic.

An *export* is one Service of one cluster:
``{"cluster", "network", "gateway", "name", "namespace", "selector": {...},
"ports": [{"name", "port", "app_protocol", "target_port", "protocol"}],
"label_sets": [{"version": "v2"}, ...]}``.
``global_entries`` turns the exports into the ServiceEntries one cluster needs:
for services of other clusters, an entry whose endpoints are those clusters'
east-west gateways on 15443 (SNI passthrough); for its own exported services,
an entry whose endpoints are local Services, which is what the gateway of the
exporting cluster resolves the `.global` SNI to on current Istio (istiocoredns
and the 1.6 stub-domain setup are gone since Istio 1.8.6/1.9.5).

Versioned subsets at the last hop: the exporting cluster's gateway builds one
SNI cluster per DestinationRule subset (``outbound_.8000_.v1_.<host>``) from
the endpoints of its own entry whose labels match the subset.  An endpoint
addressed to the exported Service's name would reach every version through its
ClusterIP, so when the Service's pods form more than one label set,
``subset_services`` adds, beside the exported Service, one Service per
non-empty set (its selector plus the set's labels, the same ports), and the
local endpoint of that set addresses it.  With one label set (or only pods
without the label keys) the endpoint stays the exported Service itself and no
Service is added.
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import FederationError

GATEWAY_PORT = 15443
EGRESS_GATEWAY = "istio-egressgateway.istio-system.svc.cluster.local"
SELECTOR_RE = re.compile(r"^[A-Za-z0-9_./-]+(=[A-Za-z0-9_.-]*)?$")
GLOBAL_GATEWAY = "meshfed-global-gateway"
GLOBAL_HOST_LABEL = "meshfed.istio/global-host"
# on the Services subset_services writes, the name of the exported Service they split by label set;
# ``exported`` never exports a Service that carries it
SUBSET_OF_LABEL = "meshfed.istio/global-subset-of"


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


# Every `.global` endpoint speaks mTLS (a sidecar, or a gateway's AUTO_PASSTHROUGH port): without this
# label istiod drops an endpoint of another network from its clients' endpoints, and a gateway's
# SNI-DNAT cluster keeps only mTLS endpoints (pilot/pkg/xds/endpoints: EndpointsWithMTLSFilter).
MTLS_LABEL = ("security.istio.io/tlsMode", "istio")


def mtls_labels(labels):
    """An endpoint's labels: the exported ones and the mTLS label."""
    out = dict(labels or {})
    out[MTLS_LABEL[0]] = MTLS_LABEL[1]
    return out


def fqdn(name, namespace):
    return "%s.%s.svc.cluster.local" % (name, namespace)


def splits_by_subset(export):
    """Whether the exporting cluster needs a Service per label set for ``export``: its pods
    form more than one label set (one set, or none, is reached through the Service itself)."""
    return len(export.get("label_sets") or [{}]) > 1


def subset_service_name(service, labels):
    """Name of the Service of one label set of exported Service ``service``:
    ``global-<service>-<subset>``, a DNS-1035 label; when longer than 63 characters, its
    first 52 and a hash of (service, labels)."""
    name = "global-%s-%s" % (service, subset_name(labels))
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(json.dumps([service, sorted(labels.items())]).encode("utf-8")).hexdigest()[:10]
    return "%s-%s" % (name[:52].rstrip("-"), digest)


def local_addresses(export):
    """[(labels, address)] of the exporting cluster's endpoints of ``export``, one per label set:
    the Service of that set (``subset_service_name``) when the pods form several sets and the set
    is not empty, else the exported Service itself."""
    split = splits_by_subset(export)
    out = []
    for labels in export.get("label_sets") or [{}]:
        if split and labels:
            out.append((labels, fqdn(subset_service_name(export["name"], labels), export["namespace"])))
        else:
            out.append((labels, fqdn(export["name"], export["namespace"])))
    return out


def subset_service_ports(ports):
    """The ports of a label set's Service: those of the exported Service (name, port, targetPort,
    protocol, appProtocol; targetPort and protocol as Kubernetes defaults them when absent)."""
    out = []
    for p in sorted(ports, key=lambda x: int(x["port"])):
        port = {"port": int(p["port"]), "protocol": p.get("protocol") or "TCP",
                "targetPort": p.get("target_port") if p.get("target_port") not in (None, "") else int(p["port"])}
        if p.get("name"):
            port["name"] = p["name"]
        if p.get("app_protocol"):
            port["appProtocol"] = p["app_protocol"]
        out.append(port)
    return out


def subset_services(cluster, exports):
    """The Services (name, namespace, spec, labels) the exporting ``cluster`` needs beside the
    Services it exports whose pods form more than one label set: one per non-empty set, in the
    exported Service's namespace, selecting its pods that carry the set's labels (ClusterIP, the
    same ports).  Fails when an export has no selector, or two sets get the same name."""
    out, seen = [], {}
    for e in sorted(exports, key=lambda x: (x["namespace"], x["name"])):
        if e["cluster"] != cluster or not splits_by_subset(e):
            continue
        selector = e.get("selector") or {}
        if not selector:
            raise FederationError(
                "%s: the pods of Service %s/%s in cluster %s form %d label sets (%s), but the export has no selector: "
                "the Service of each set selects the Service's pods by its selector plus the set's labels (give "
                "exports[].selector, as exported_services returns it)"
                % (global_host(e["name"], e["namespace"]), e["namespace"], e["name"], cluster, len(e["label_sets"]),
                   ", ".join(subset_name(s) if s else "(none)" for s in e["label_sets"])),
                field="mesh_exports")
        for labels in e["label_sets"]:
            if not labels:
                continue  # pods without the label keys: a Service selector cannot say "without"; reached via the Service
            name = subset_service_name(e["name"], labels)
            key = (e["namespace"], name)
            if key in seen and seen[key] != (e["name"], labels):
                raise FederationError(
                    "Service %s/%s would split both %s by %r and %s by %r; rename one of the Services"
                    % (e["namespace"], name, seen[key][0], seen[key][1], e["name"], labels), field="mesh_exports")
            seen[key] = (e["name"], labels)
            out.append({"name": name, "namespace": e["namespace"],
                        "labels": {GLOBAL_HOST_LABEL: entry_name(e["name"], e["namespace"])[:63],
                                   SUBSET_OF_LABEL: e["name"]},
                        "spec": {"type": "ClusterIP", "selector": dict(selector, **labels),
                                 "ports": subset_service_ports(e["ports"])}})
    return out


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
            for labels, address in local_addresses(e):
                ep = {"address": address, "ports": dict((p["name"], p["number"]) for p in ports),
                      "labels": mtls_labels(labels)}
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
                ep["labels"] = mtls_labels(labels)
                endpoints.append(ep)
        if via_egress and remote:
            endpoints.insert(0, {"address": EGRESS_GATEWAY, "ports": dict((p["name"], GATEWAY_PORT) for p in ports),
                                 "labels": mtls_labels({})})
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
                    "labels": {GLOBAL_HOST_LABEL: name[:63]}})
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


# --- DestinationRules and VirtualServices of the .global hosts --------------------

TLS_PORT_PROTOCOLS = ("HTTPS", "TLS")
HTTP_PORT_PROTOCOLS = ("HTTP", "HTTP2", "GRPC", "GRPC-WEB")
SUBSET_INVALID = re.compile(r"[^a-z0-9-]+")


def subset_name(labels):
    """Subset name of an endpoint label set: its values in key order, joined by '-'
    (``{"version": "v2"}`` -> ``v2``), as a DNS-1123 label."""
    raw = "-".join(str(labels[k]) for k in sorted(labels)).lower()
    return SUBSET_INVALID.sub("-", raw).strip("-")[:63].strip("-") or "default"


def host_subsets(items):
    """[{"name", "labels"}] of the distinct non-empty label sets of one host's exports;
    fails when two different sets get the same subset name."""
    by_name = {}
    for e in items:
        for labels in e.get("label_sets") or []:
            if not labels:
                continue
            name = subset_name(labels)
            if by_name.setdefault(name, dict(labels)) != dict(labels):
                raise FederationError(
                    "%s: endpoint label sets %r and %r both make subset %r; choose label keys "
                    "(federate_clusters_endpoint_label_keys) whose values tell the versions apart"
                    % (global_host(e["name"], e["namespace"]), by_name[name], dict(labels), name),
                    field="label_keys")
    return [{"name": n, "labels": by_name[n]} for n in sorted(by_name)]


def global_destination_rules(exports, namespace="istio-system"):
    """One DestinationRule per `.global` host: Istio mutual TLS to the endpoints (the
    east-west gateway passes the connection through by its SNI, which only an Istio mTLS
    client sends; the Istio 1.6 setup had one for ``*.global``), and one subset per
    distinct endpoint label set, for versioned routing."""
    out = []
    for host, items in sorted(index_exports(exports).items()):
        spec = {"host": host, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}
        subsets = host_subsets(items)
        if subsets:
            spec["subsets"] = subsets
        name = entry_name(items[0]["name"], items[0]["namespace"])
        out.append({"name": name, "namespace": namespace, "spec": spec,
                    "labels": {GLOBAL_HOST_LABEL: name[:63]}})
    return out


def weight_problem(subset, weight):
    """Why ``weight`` is not the route weight of ``subset`` (an integer from 0 to 100), None when it is."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        return "weight of subset %s must be an integer from 0 to 100, got %r" % (subset, weight)
    return None


def total_problem(weights):
    """Why the weights of one host's subsets ({subset: int}) do not add up to 100, None when they do."""
    total = sum(weights.values())
    return None if total == 100 else "weights add up to %d, not 100" % total


def _route_error(host, msg):
    raise FederationError("routes[%s]: %s" % (host, msg), field="routes")


def validate_routes(routes, exports):
    """``routes``: {host: {subset: weight}}; every host exported, every subset one of the
    host's, weights integers 0-100 adding up to 100.  Returns {host: [(subset, weight)]}."""
    if not routes:
        return {}
    if not isinstance(routes, dict):
        raise FederationError("routes: must be a mapping of .global host to {subset: weight}, got %s"
                              % type(routes).__name__, field="routes")
    by_host = index_exports(exports)
    out = {}
    for host in sorted(routes):
        weights = routes[host]
        if host not in by_host:
            _route_error(host, "is not an exported host (exported: %s)" % (", ".join(sorted(by_host)) or "none"))
        if not isinstance(weights, dict) or not weights:
            _route_error(host, "must map subset names to weights, got %r" % (weights,))
        known = [s["name"] for s in host_subsets(by_host[host])]
        pairs = []
        for subset in sorted(weights):
            w = weights[subset]
            if subset not in known:
                _route_error(host, "subset %r does not exist; its endpoints make subsets %s"
                             % (subset, ", ".join(known) or "none (no endpoint labels)"))
            if weight_problem(subset, w):
                _route_error(host, weight_problem(subset, w))
            pairs.append((subset, w))
        if total_problem(dict(pairs)):
            _route_error(host, total_problem(dict(pairs)))
        protocols = set(p["protocol"] for p in service_ports(by_host[host][0]["ports"]))
        if protocols <= set(TLS_PORT_PROTOCOLS):
            _route_error(host, "has only TLS ports (%s); weighted routes need an HTTP or TCP port"
                         % ", ".join(sorted(protocols)))
        out[host] = pairs
    return out


def global_virtual_services(exports, routes, namespace="istio-system"):
    """One VirtualService per host of ``routes``: its traffic split over the host's subsets
    by weight (an ``http`` route for HTTP ports, a ``tcp`` route for the others)."""
    checked = validate_routes(routes, exports)
    by_host = index_exports(exports)
    out = []
    for host, pairs in sorted(checked.items()):
        protocols = set(p["protocol"] for p in service_ports(by_host[host][0]["ports"]))
        destinations = [{"destination": {"host": host, "subset": s}, "weight": w} for s, w in pairs]
        spec = {"hosts": [host]}
        if protocols & set(HTTP_PORT_PROTOCOLS):
            spec["http"] = [{"route": [dict(d) for d in destinations]}]
        if protocols - set(HTTP_PORT_PROTOCOLS) - set(TLS_PORT_PROTOCOLS):
            spec["tcp"] = [{"route": [dict(d) for d in destinations]}]
        items = by_host[host]
        name = entry_name(items[0]["name"], items[0]["namespace"])
        out.append({"name": name, "namespace": namespace, "spec": spec,
                    "labels": {GLOBAL_HOST_LABEL: name[:63]}})
    return out


def check_export_spec(i, spec):
    """One entry of ``mesh_exports``: a namespace, and a label selector when given."""
    if not spec.get("namespace"):
        raise FederationError("mesh_exports[%d]: namespace is required" % i, field="mesh_exports")
    problem = selector_problem(spec.get("label_selector") or "")
    if problem:
        raise FederationError("mesh_exports[%d]: %s" % (i, problem), field="mesh_exports")


def selector_problem(selector):
    """Why ``selector`` (a string) is not a label selector of ``key`` or ``key=value`` terms, None when it is."""
    if selector and not all(SELECTOR_RE.match(part.strip()) for part in selector.split(",")):
        return "label_selector %r is not a label selector" % (selector,)
    return None


def exported(services, pods, names, label_keys):
    """The exports of one namespace from its Services and Pods (dicts of a LIST), restricted
    to ``names`` when given."""
    pod_labels = [(p["metadata"].get("labels") or {}) for p in pods]
    out = []
    for svc in services:
        name = svc["metadata"]["name"]
        if names and name not in names:
            continue
        if SUBSET_OF_LABEL in (svc["metadata"].get("labels") or {}):
            continue  # a label set's Service of another export (subset_services), not one to export
        sel = svc["spec"].get("selector") or {}
        matching = [lbl for lbl in pod_labels if sel and all(lbl.get(k) == v for k, v in sel.items())]
        out.append({
            "name": name, "namespace": svc["metadata"]["namespace"], "selector": dict(sel),
            "ports": [{"name": p.get("name"), "port": p["port"], "app_protocol": p.get("appProtocol"),
                       "target_port": p.get("targetPort"), "protocol": p.get("protocol") or "TCP"}
                      for p in svc["spec"].get("ports") or []],
            "label_sets": endpoint_labels(matching, label_keys),
        })
    return out


def global_gateway(namespace):
    """The exporting cluster's east-west gateway also passes *.global through, by SNI,
    to the local ServiceEntry of the exported host (install_istio's serves *.local)."""
    return {"name": GLOBAL_GATEWAY, "namespace": namespace, "spec": {
        "selector": {"istio": "eastwestgateway"}, "servers": [{
            "port": {"number": GATEWAY_PORT, "name": "tls-global", "protocol": "TLS"},
            "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.global"]}]}}
