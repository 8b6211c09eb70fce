# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""What istiod sends a proxy, read over its plaintext xDS port (15010), without Envoy.

``fetch`` connects as a proxy of a namespace (a sidecar, or the east-west gateway as a
``router``), asks for clusters, then the endpoints of the EDS clusters, then listeners
and the routes they name (state of the world ADS, each response acknowledged), and
returns a ``Snapshot``: plain dicts, decoded by the pure ``decode_*`` functions.  The pod
the node names need not exist: istiod generates the outbound configuration anyway.
Needs ``grpcio`` and ``xds-protos``; without them ``HAS_XDS`` is False.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback

try:
    import grpc
    from google.protobuf import struct_pb2
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.core.v3 import base_pb2
    from envoy.config.endpoint.v3 import endpoint_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.config.route.v3 import route_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
    from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
    from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
except ImportError:  # pragma: no cover - reported by the module as a missing library
    HAS_XDS = False
    XDS_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_XDS = True
    XDS_IMPORT_ERROR = None

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

# the address the verifying proxy claims: a documentation-free, never-routed one, so that
# istiod finds no workload of it and sends only what any proxy of the namespace gets
CLIENT_IP = "240.255.255.254"
CLIENT_NAME = "meshfed-verify"


class XdsError(Exception):
    """istiod did not answer as an xDS server: the message says what was asked and why."""


# --- the node (pure) ------------------------------------------------------------------------


def node_id(kind, namespace, ip=CLIENT_IP, name=CLIENT_NAME):
    """``<kind>~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`` (kind sidecar or router)."""
    return "%s~%s~%s.%s~%s.svc.cluster.local" % (kind, ip, name, namespace, namespace)


def node_metadata(kind, cluster_id, namespace, network, mesh_id, istio_version, labels=None):
    """The node metadata istiod reads (pkg/model NodeMetadata): a sidecar of ``namespace``, or the
    east-west gateway of ``network`` (``router``: sni-dnat mode, the network as its view)."""
    md = {
        "ISTIO_VERSION": istio_version or "",
        "CLUSTER_ID": cluster_id,
        "NAMESPACE": namespace,
        "MESH_ID": mesh_id or "",
        "NETWORK": network or "",
        "INTERCEPTION_MODE": "REDIRECT",
        "LABELS": dict(labels or {"app": CLIENT_NAME}),
        "NAME": CLIENT_NAME,
    }
    if kind == "router":
        md["ROUTER_MODE"] = "sni-dnat"
        md["REQUESTED_NETWORK_VIEW"] = network or ""  # a comma-separated list
        md["LABELS"] = dict(labels or {"istio": "eastwestgateway", "app": "istio-eastwestgateway",
                                       "topology.istio.io/network": network or ""})
    return md


# --- decoding (pure: protobuf messages in, plain dicts out) -------------------------------


def decode_cluster(c):
    """{name, type, sni, mtls, endpoints (inline ones: STATIC/STRICT_DNS), eds_name}."""
    sni, mtls = None, False
    sockets = [m.transport_socket for m in c.transport_socket_matches]
    if c.HasField("transport_socket"):
        sockets.append(c.transport_socket)
    for ts in sockets:
        if ts.typed_config.type_url == UPSTREAM_TLS:
            tls = tls_pb2.UpstreamTlsContext()
            ts.typed_config.Unpack(tls)
            mtls = True
            sni = sni or tls.sni or None
    out = {
        "name": c.name,
        "type": cluster_pb2.Cluster.DiscoveryType.Name(c.type) if c.HasField("type") else "EDS" if c.HasField("eds_cluster_config") else "OTHER",
        "sni": sni,
        "mtls": mtls,
        "endpoints": [],
    }
    if c.HasField("load_assignment"):
        out["endpoints"] = decode_endpoints(c.load_assignment)
    if c.HasField("eds_cluster_config"):
        out["eds_name"] = c.eds_cluster_config.service_name or c.name
    return out


def _workload(md):
    """(workload text, cluster) from the istio filter metadata ``name;ns;canonical;rev;cluster``."""
    fields = md.filter_metadata.get("istio") if md is not None else None
    text = ""
    if fields is not None and "workload" in fields.fields:
        text = fields.fields["workload"].string_value
    parts = text.split(";")
    return text, (parts[4] if len(parts) > 4 and parts[4] else None)


def decode_endpoints(cla):
    """[{address, port, weight, workload, cluster, tls_mode, healthy}] of a ClusterLoadAssignment."""
    out = []
    for locality in cla.endpoints:
        for lb in locality.lb_endpoints:
            sa = lb.endpoint.address.socket_address
            text, cluster = _workload(lb.metadata)
            tls = lb.metadata.filter_metadata.get("envoy.transport_socket_match")
            tls_mode = tls.fields["tlsMode"].string_value if tls is not None and "tlsMode" in tls.fields else None
            out.append({
                "address": sa.address or lb.endpoint.address.pipe.path,
                "port": sa.port_value,
                "weight": lb.load_balancing_weight.value if lb.HasField("load_balancing_weight") else 1,
                "workload": text,
                "cluster": cluster,
                "tls_mode": tls_mode,
                "healthy": lb.health_status in (0, 1),  # UNKNOWN or HEALTHY
            })
    return out


def _filters(chain):
    tcp_cluster, rds = None, None
    for f in chain.filters:
        url = f.typed_config.type_url
        if url == TCP_PROXY:
            tp = tcp_proxy_pb2.TcpProxy()
            f.typed_config.Unpack(tp)
            tcp_cluster = tp.cluster or None
        elif url == HCM:
            hcm = http_connection_manager_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            if hcm.HasField("rds"):
                rds = hcm.rds.route_config_name
    return tcp_cluster, rds


def decode_listener(lst):
    """{name, address, port, chains: [{server_names, tcp_cluster, route_config}]}."""
    sa = lst.address.socket_address
    chains = []
    for chain in list(lst.filter_chains) + ([lst.default_filter_chain] if lst.HasField("default_filter_chain") else []):
        tcp_cluster, rds = _filters(chain)
        chains.append({"server_names": list(chain.filter_chain_match.server_names),
                       "tcp_cluster": tcp_cluster, "route_config": rds})
    return {"name": lst.name, "address": sa.address, "port": sa.port_value, "chains": chains}


# HeaderMatcher's own fields (older form) and StringMatcher's (string_match), as Istio's StringMatch names them
_HEADER_FIELDS = (("exact_match", "exact"), ("prefix_match", "prefix"), ("suffix_match", "suffix"),
                  ("contains_match", "contains"))


def decode_header_match(h):
    """A route's HeaderMatcher as Istio's StringMatch ({exact|prefix|suffix|contains|regex: value},
    or {present: True}), with ``invert: True`` when it is negated."""
    out = {}
    which = h.WhichOneof("header_match_specifier")
    if which == "string_match":
        kind = h.string_match.WhichOneof("match_pattern")
        if kind == "safe_regex":
            out["regex"] = h.string_match.safe_regex.regex
        elif kind:
            out[kind] = getattr(h.string_match, kind)
    elif which == "safe_regex_match":
        out["regex"] = h.safe_regex_match.regex
    elif which == "present_match":
        out["present"] = h.present_match
    else:
        for field, name in _HEADER_FIELDS:
            if which == field:
                out[name] = getattr(h, field)
    if h.invert_match:
        out["invert"] = True
    return out


def decode_route_config(rc):
    """{name, virtual_hosts: [{name, domains, routes: [{name, prefix, headers, header_match, clusters:
    [[cluster, weight]]}]}]}: ``headers`` the matched header names, ``header_match`` {name: StringMatch}."""
    hosts = []
    for vh in rc.virtual_hosts:
        routes = []
        for r in vh.routes:
            if not r.HasField("route"):
                continue
            action = r.route
            if action.HasField("weighted_clusters"):
                clusters = [[w.name, w.weight.value] for w in action.weighted_clusters.clusters]
            else:
                clusters = [[action.cluster, 100]] if action.cluster else []
            routes.append({
                "name": r.name,
                "prefix": r.match.prefix,
                "headers": [h.name for h in r.match.headers],
                "header_match": dict((h.name, decode_header_match(h)) for h in r.match.headers),
                "clusters": clusters,
            })
        hosts.append({"name": vh.name, "domains": list(vh.domains), "routes": routes})
    return {"name": rc.name, "virtual_hosts": hosts}


def _unpack(any_msg, cls):
    msg = cls()
    any_msg.Unpack(msg)
    return msg


# --- the conversation with istiod (I/O) ---------------------------------------------------


class _Requests(object):
    """The request side of one ADS stream: a queue the gRPC call reads until closed."""

    def __init__(self):
        self.q = queue.Queue()

    def put(self, **kw):
        self.q.put(discovery_pb2.DiscoveryRequest(**kw))

    def close(self):
        self.q.put(None)

    def __iter__(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            yield item


def fetch(address, kind, cluster_id, namespace, network, mesh_id, istio_version, labels=None, timeout=30.0,
          routes=True, channel_factory=None):
    """The Snapshot a ``kind`` proxy of ``namespace`` in ``cluster_id`` gets from the istiod at
    ``address`` (host:port of its plaintext xDS port): ``{clusters: {name: cluster},
    endpoints: {cluster name: [endpoint]}, listeners: {name: listener}, routes: {name: route
    config}, seconds}``.  Raises XdsError naming the address and the step that failed."""
    md = struct_pb2.Struct()
    md.update(node_metadata(kind, cluster_id, namespace, network, mesh_id, istio_version, labels))
    node = base_pb2.Node(id=node_id(kind, namespace), cluster=CLIENT_NAME + "." + namespace, metadata=md)
    t0 = time.monotonic()
    channel = (channel_factory or grpc.insecure_channel)(address)
    requests = _Requests()
    snap = {"clusters": {}, "endpoints": {}, "listeners": {}, "routes": {}}
    step = "clusters (CDS)"
    timer = threading.Timer(timeout, channel.close)
    timer.daemon = True
    try:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        requests.put(node=node, type_url=CDS)
        stream = stub.StreamAggregatedResources(iter(requests), timeout=timeout)
        timer.start()
        waiting = {CDS}
        for resp in stream:
            requests.put(type_url=resp.type_url, version_info=resp.version_info, response_nonce=resp.nonce,
                         resource_names=_names(resp, snap))
            if resp.type_url not in waiting:
                continue  # a push of something already read
            waiting.discard(resp.type_url)
            if resp.type_url == CDS:
                for a in resp.resources:
                    c = decode_cluster(_unpack(a, cluster_pb2.Cluster))
                    snap["clusters"][c["name"]] = c
                eds = sorted(c.get("eds_name") for c in snap["clusters"].values() if c.get("eds_name"))
                step = "endpoints (EDS)"
                requests.put(type_url=EDS, resource_names=eds)
                waiting.add(EDS)
            elif resp.type_url == EDS:
                for a in resp.resources:
                    cla = _unpack(a, endpoint_pb2.ClusterLoadAssignment)
                    snap["endpoints"][cla.cluster_name] = decode_endpoints(cla)
                step = "listeners (LDS)"
                requests.put(type_url=LDS)
                waiting.add(LDS)
            elif resp.type_url == LDS:
                for a in resp.resources:
                    lst = decode_listener(_unpack(a, listener_pb2.Listener))
                    snap["listeners"][lst["name"]] = lst
                names = sorted({ch["route_config"] for lst in snap["listeners"].values() for ch in lst["chains"]
                                if ch["route_config"]})
                if routes and names:
                    step = "routes (RDS)"
                    requests.put(type_url=RDS, resource_names=names)
                    waiting.add(RDS)
            elif resp.type_url == RDS:
                for a in resp.resources:
                    rc = decode_route_config(_unpack(a, route_pb2.RouteConfiguration))
                    snap["routes"][rc["name"]] = rc
            if not waiting:
                break
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        detail = e.details() if hasattr(e, "details") else str(e)
        if code == grpc.StatusCode.CANCELLED and time.monotonic() - t0 >= timeout:
            raise XdsError("istiod's xDS at %s sent no %s within %.0fs" % (address, step, timeout))
        raise XdsError("istiod's xDS at %s failed while reading %s: %s%s" % (
            address, step, code.name if code else "error", ": " + detail if detail else ""))
    except ValueError as e:  # the channel was closed by the timer
        raise XdsError("istiod's xDS at %s sent no %s within %.0fs (%s)" % (address, step, timeout, e))
    finally:
        timer.cancel()
        requests.close()
        channel.close()
    snap["seconds"] = round(time.monotonic() - t0, 3)
    return snap


def _names(resp, snap):
    """The resource names an ACK repeats (those of the request it answers)."""
    if resp.type_url == EDS:
        return sorted(c.get("eds_name") for c in snap["clusters"].values() if c.get("eds_name"))
    if resp.type_url == RDS:
        return sorted({ch["route_config"] for lst in snap["listeners"].values() for ch in lst["chains"]
                       if ch["route_config"]})
    return []
