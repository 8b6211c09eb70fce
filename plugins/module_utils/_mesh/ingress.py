# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Where bookinfo is reached from outside a cluster, and the upstreams of a load balancer in front of it (pure).

Input is what the API returns: the ingress gateway Service (``istio-system/istio-ingressgateway``) and the
cluster's Nodes (the ``resources`` of ``kubernetes.core.k8s_info``).  A Service with a LoadBalancer address
(``status.loadBalancer.ingress``, an ``ip`` or a ``hostname``) is reached there at the Service port; any other
(a NodePort Service, or a LoadBalancer the cloud has not given an address yet) at every Ready node's address
and the port's ``nodePort``.  An nginx load balancer in front of the gateway always goes through the NodePort
of every node (``nginx_upstreams``), as Istio's own guides do for clusters without a load balancer.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

LOADBALANCER, NODEPORT = "loadbalancer", "nodeport"
ADDRESS_TYPES = ("InternalIP", "ExternalIP")
PATH = "/productpage"


def _ref(service):
    meta = (service or {}).get("metadata") or {}
    return "Service %s/%s" % (meta.get("namespace", "?"), meta.get("name", "?"))


def _port(service, port_name):
    """(index, port dict) of the Service port named ``port_name``."""
    if not isinstance(service, dict) or not isinstance(service.get("spec"), dict):
        raise MeshError("the ingress gateway Service must be a Service object as the API returns it "
                        "(with metadata, spec and status), got %r" % (type(service).__name__,), field="service")
    ports = service["spec"].get("ports") or []
    for index, port in enumerate(ports):
        if port.get("name") == port_name:
            return index, port
    raise MeshError("%s has no port named %r (spec.ports: %s)"
                    % (_ref(service), port_name, ", ".join(str(p.get("name") or p.get("port")) for p in ports) or "none"),
                    field="port_name")


def _lb_addresses(service):
    out = []
    for entry in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        address = entry.get("ip") or entry.get("hostname")
        if address and address not in out:
            out.append(address)
    return out


def _ready(node):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _order(address_type):
    if address_type not in ADDRESS_TYPES:
        raise MeshError("address_type %r is not one of %s" % (address_type, ", ".join(ADDRESS_TYPES)),
                        field="address_type")
    return [address_type] + [t for t in ADDRESS_TYPES if t != address_type]


def node_address(node, address_type="InternalIP"):
    """The node's address of ``address_type`` (status.addresses), else of the other type; '' when it has neither."""
    addresses = (node.get("status") or {}).get("addresses") or []
    for wanted in _order(address_type):
        for a in addresses:
            if a.get("type") == wanted and a.get("address"):
                return a["address"]
    return ""


def _sort_key(address):
    try:
        ip = ipaddress.ip_address(address)
        return (0, ip.version, int(ip), "")
    except ValueError:
        return (1, 0, 0, address)


def node_addresses(nodes, address_type="InternalIP"):
    """The address of every Ready node (see ``node_address``), sorted (IPs numerically, then names), once each."""
    order = _order(address_type)
    out = set()
    for node in nodes or []:
        if isinstance(node, dict) and _ready(node):
            address = node_address(node, order[0])
            if address:
                out.add(address)
    return sorted(out, key=_sort_key)


def host_port(address, port):
    """``address:port``, an IPv6 address in brackets."""
    try:
        if ipaddress.ip_address(address).version == 6:
            return "[%s]:%d" % (address, port)
    except ValueError:
        pass
    return "%s:%d" % (address, port)


def _node_port(port):
    node_port = port.get("nodePort")
    if isinstance(node_port, bool) or not isinstance(node_port, int) or not 0 < node_port < 65536:
        return None
    return node_port


def _no_node_address(service, address_type):
    return MeshError("no Ready node of the cluster has an %s or %s address (status.addresses of the Nodes) to "
                     "reach the NodePort of %s" % tuple(_order(address_type) + [_ref(service)]), field="nodes")


def nginx_upstreams(service, nodes, port_name="http2", address_type="InternalIP"):
    """The upstream servers of a load balancer in front of the gateway: ``address:nodePort`` of every Ready
    node, sorted, once each.  Raises MeshError naming the Service and the field when the port does not exist,
    has no nodePort, or no node has an address."""
    index, port = _port(service, port_name)
    node_port = _node_port(port)
    if node_port is None:
        raise MeshError("%s: port %s has no nodePort (spec.ports[%d].nodePort; a ClusterIP Service, or a "
                        "LoadBalancer with allocateLoadBalancerNodePorts false): a load balancer in front of the "
                        "nodes cannot reach it" % (_ref(service), port_name, index), field="port_name")
    addresses = node_addresses(nodes, address_type)
    if not addresses:
        raise _no_node_address(service, address_type)
    return [host_port(a, node_port) for a in addresses]


def ingress_endpoints(service, nodes, port_name="http2", host=None, address_type="InternalIP"):
    """Where the gateway Service is reached from outside the cluster.

    Returns {"kind": "loadbalancer"|"nodeport", "addresses": [...], "port": N, "urls": [...], "host": host,
    "curl": [...], "node_port": N or None, "upstreams": [...]}: ``urls`` are ``http://address:port/productpage``,
    ``curl`` the commands that fetch them with the Host header (when ``host`` is given), ``upstreams`` what
    ``nginx_upstreams`` returns ([] when the port has no nodePort).  Raises MeshError naming the Service and the
    field when the port does not exist, when it has neither a nodePort nor a LoadBalancer address, or when a
    NodePort is to be reached and no Ready node has an address."""
    index, port = _port(service, port_name)
    node_port = _node_port(port)
    lb = _lb_addresses(service)
    addresses = node_addresses(nodes, address_type)
    if lb:
        kind, where, number = LOADBALANCER, lb, port.get("port")
    elif node_port is not None:
        if not addresses:
            raise _no_node_address(service, address_type)
        kind, where, number = NODEPORT, addresses, node_port
    else:
        raise MeshError("%s has no LoadBalancer address (status.loadBalancer.ingress) and its port %s has no nodePort "
                        "(spec.ports[%d].nodePort; type %s): nothing outside the cluster reaches it"
                        % (_ref(service), port_name, index, (service.get("spec") or {}).get("type", "ClusterIP")),
                        field="service")
    urls = ["http://%s%s" % (host_port(a, number), PATH) for a in where]
    header = "-H 'Host: %s' " % host if host else ""
    return {
        "kind": kind,
        "addresses": list(where),
        "port": number,
        "urls": urls,
        "host": host,
        "curl": ["curl %s%s" % (header, url) for url in urls],
        "node_port": node_port,
        "upstreams": [host_port(a, node_port) for a in addresses] if node_port is not None else [],
    }
