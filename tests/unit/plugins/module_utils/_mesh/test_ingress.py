# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where bookinfo is reached from outside (LoadBalancer address or nodes with the NodePort), and the upstreams
of an nginx load balancer in front of the nodes (pure)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ingress
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

# as the API returns istio-system/istio-ingressgateway (the sandbox's cluster1)
GATEWAY = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
    "spec": {
        "type": "LoadBalancer",
        "ports": [
            {"name": "status-port", "nodePort": 31412, "port": 15021, "protocol": "TCP", "targetPort": 15021},
            {"name": "http2", "nodePort": 30601, "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "nodePort": 30865, "port": 443, "protocol": "TCP", "targetPort": 8443},
        ],
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1", "ipMode": "VIP"}]}},
}


def node(name, ready=True, **addresses):
    return {
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "Hostname", "address": name}] + [{"type": t, "address": a} for t, a in addresses.items()],
            "conditions": [{"type": "MemoryPressure", "status": "False"},
                           {"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


NODES = [node("node-b", InternalIP="10.0.0.10"), node("node-a", InternalIP="10.0.0.9", ExternalIP="203.0.113.9"),
         node("node-c", InternalIP="10.0.0.9")]


def gateway(lb=None, service_type=None, drop_node_ports=False):
    svc = copy.deepcopy(GATEWAY)
    if lb is not None:
        svc["status"] = {"loadBalancer": {"ingress": lb}} if lb else {"loadBalancer": {}}
    if service_type:
        svc["spec"]["type"] = service_type
    if drop_node_ports:
        for p in svc["spec"]["ports"]:
            del p["nodePort"]
    return svc


def test_loadbalancer_address_and_service_port():
    e = ingress.ingress_endpoints(GATEWAY, NODES, host="bookinfo.example.com")
    assert e["kind"] == "loadbalancer" and e["addresses"] == ["127.0.1.1"] and e["port"] == 80
    assert e["urls"] == ["http://127.0.1.1:80/productpage"]
    assert e["curl"] == ["curl -H 'Host: bookinfo.example.com' http://127.0.1.1:80/productpage"]
    assert e["host"] == "bookinfo.example.com" and e["node_port"] == 30601
    # the nodes with the NodePort, for a load balancer in front of them, also when the Service has an LB address
    assert e["upstreams"] == ["10.0.0.9:30601", "10.0.0.10:30601"]


def test_loadbalancer_hostnames_and_ips_in_order_once_each():
    svc = gateway(lb=[{"hostname": "a1b2.elb.example.com"}, {"ip": "198.51.100.7"}, {"hostname": "a1b2.elb.example.com"}])
    e = ingress.ingress_endpoints(svc, [])
    assert e["addresses"] == ["a1b2.elb.example.com", "198.51.100.7"] and e["upstreams"] == []
    assert e["urls"] == ["http://a1b2.elb.example.com:80/productpage", "http://198.51.100.7:80/productpage"]
    assert e["curl"] == ["curl http://a1b2.elb.example.com:80/productpage", "curl http://198.51.100.7:80/productpage"]


@pytest.mark.parametrize("svc", [gateway(service_type="NodePort", lb=[]), gateway(lb=[])],
                         ids=["nodeport", "loadbalancer-without-address"])
def test_nodeport_every_ready_node_internal_ip_sorted_once(svc):
    nodes = NODES + [node("not-ready", ready=False, InternalIP="10.0.0.1"), node("no-address")]
    e = ingress.ingress_endpoints(svc, nodes, host="bookinfo.example.com")
    assert e["kind"] == "nodeport" and e["port"] == 30601
    # numeric order (10.0.0.9 before 10.0.0.10), node-c's duplicate once, the NotReady node left out
    assert e["addresses"] == ["10.0.0.9", "10.0.0.10"]
    assert e["urls"] == ["http://10.0.0.9:30601/productpage", "http://10.0.0.10:30601/productpage"]
    assert e["upstreams"] == ["10.0.0.9:30601", "10.0.0.10:30601"]


def test_external_ip_option_falls_back_to_internal():
    e = ingress.ingress_endpoints(gateway(lb=[]), NODES, address_type="ExternalIP")
    assert e["addresses"] == ["10.0.0.9", "10.0.0.10", "203.0.113.9"]
    assert ingress.node_address(NODES[1], "ExternalIP") == "203.0.113.9"
    assert ingress.node_address(NODES[1]) == "10.0.0.9"
    # a node with only an ExternalIP is reached there with the default too
    assert ingress.node_addresses([node("x", ExternalIP="198.51.100.1")]) == ["198.51.100.1"]


def test_other_port_name_and_ipv6_in_brackets():
    nodes = [node("v6", InternalIP="fd00::2"), node("v4", InternalIP="10.0.0.2")]
    e = ingress.ingress_endpoints(gateway(lb=[]), nodes, port_name="https")
    assert e["port"] == 30865 and e["urls"] == ["http://10.0.0.2:30865/productpage", "http://[fd00::2]:30865/productpage"]
    assert ingress.nginx_upstreams(GATEWAY, nodes, "https") == ["10.0.0.2:30865", "[fd00::2]:30865"]


def test_nginx_upstreams_sorted_deduplicated():
    assert ingress.nginx_upstreams(GATEWAY, NODES) == ["10.0.0.9:30601", "10.0.0.10:30601"]
    assert ingress.nginx_upstreams(GATEWAY, NODES + [node("n", InternalIP="node.example.com")]) == [
        "10.0.0.9:30601", "10.0.0.10:30601", "node.example.com:30601"]


def test_unknown_port_name_names_service_and_ports():
    with pytest.raises(MeshError) as e:
        ingress.ingress_endpoints(GATEWAY, NODES, port_name="http")
    assert str(e.value) == ("Service istio-system/istio-ingressgateway has no port named 'http' "
                            "(spec.ports: status-port, http2, https)")
    assert e.value.field == "port_name"
    with pytest.raises(MeshError, match="has no port named 'http'"):
        ingress.nginx_upstreams(GATEWAY, NODES, port_name="http")


def test_no_node_port_and_no_lb_address():
    svc = gateway(lb=[], service_type="ClusterIP", drop_node_ports=True)
    with pytest.raises(MeshError) as e:
        ingress.ingress_endpoints(svc, NODES)
    assert str(e.value) == ("Service istio-system/istio-ingressgateway has no LoadBalancer address "
                            "(status.loadBalancer.ingress) and its port http2 has no nodePort (spec.ports[1].nodePort; "
                            "type ClusterIP): nothing outside the cluster reaches it")
    assert e.value.field == "service"


def test_lb_address_without_node_port_still_has_a_url_but_no_upstreams():
    svc = gateway(drop_node_ports=True)
    e = ingress.ingress_endpoints(svc, NODES)
    assert e["kind"] == "loadbalancer" and e["node_port"] is None and e["upstreams"] == []
    with pytest.raises(MeshError) as err:
        ingress.nginx_upstreams(svc, NODES)
    assert "Service istio-system/istio-ingressgateway: port http2 has no nodePort (spec.ports[1].nodePort" in str(err.value)


@pytest.mark.parametrize("nodes", [[], [node("a", ready=False, InternalIP="10.0.0.1")], [node("b")]],
                         ids=["no-nodes", "not-ready", "no-address"])
def test_no_node_with_an_address(nodes):
    msg = ("no Ready node of the cluster has an InternalIP or ExternalIP address (status.addresses of the Nodes) "
           "to reach the NodePort of Service istio-system/istio-ingressgateway")
    with pytest.raises(MeshError) as e:
        ingress.ingress_endpoints(gateway(lb=[]), nodes)
    assert str(e.value) == msg and e.value.field == "nodes"
    with pytest.raises(MeshError) as e:
        ingress.nginx_upstreams(GATEWAY, nodes)
    assert str(e.value) == msg


def test_bad_input():
    with pytest.raises(MeshError, match="must be a Service object") as e:
        ingress.ingress_endpoints(None, NODES)
    assert e.value.field == "service"
    with pytest.raises(MeshError, match="address_type 'Hostname' is not one of InternalIP, ExternalIP"):
        ingress.ingress_endpoints(GATEWAY, NODES, address_type="Hostname")
