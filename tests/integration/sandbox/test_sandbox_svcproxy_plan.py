# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ClusterIP relay (svcproxy) relays, its lo labels, the istiod port offset and the service CIDRs:
plain tests, no cluster needed."""

from __future__ import annotations

import ipaddress

import pytest

from tools.sandbox import cluster, common, istiod, svcproxy

ISTIOD_PORTS = [
    {"name": "grpc-xds", "port": 15010, "protocol": "TCP", "targetPort": 15010},
    {"name": "https-dns", "port": 15012, "protocol": "TCP", "targetPort": 15012},
    {"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017},
    {"name": "http-monitoring", "port": 15014, "protocol": "TCP", "targetPort": 15014},
]


def _svc(name, ip, selector, ports=None, ips=None):
    return {"metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"selector": selector, "clusterIP": ip, "clusterIPs": ips or [ip], "ports": ports or ISTIOD_PORTS}}


def _ports(index):
    return {k: v + 100 * (index - 1) for k, v in istiod.BASE_PORTS.items()}


def test_plan_relays_every_port_of_the_istiod_services_to_the_clusters_own_istiod():
    services = {
        "cluster1": [_svc("istiod", "10.101.192.10", {"app": "istiod", "istio": "pilot"}),
                     _svc("istiod-revision-tag-default", "10.101.200.7", {"app": "istiod", "istio.io/rev": "default"}),
                     _svc("istio-ingressgateway", "10.101.130.1", {"app": "istio-ingressgateway"})],
        "cluster2": [_svc("istiod", "10.102.150.3", {"app": "istiod", "istio": "pilot"})],
    }
    relays, problems = svcproxy.plan(services, {"cluster1": _ports(1), "cluster2": _ports(2)})
    assert problems == []
    assert sorted(relays) == sorted([(ip, p) for ip in ("10.101.192.10", "10.101.200.7", "10.102.150.3")
                                     for p in (443, 15010, 15012, 15014)])
    assert relays[("10.101.192.10", 443)] == {"cluster": "cluster1", "service": "istiod", "address": "10.101.192.10",
                                              "port": 443, "target_port": 15017, "istiod_port": 15017}
    assert relays[("10.101.200.7", 15012)]["istiod_port"] == 15012
    assert relays[("10.102.150.3", 443)]["istiod_port"] == 15117
    assert relays[("10.102.150.3", 15010)]["istiod_port"] == 15110


def test_plan_skips_headless_udp_and_foreign_target_ports_and_names_them():
    odd_ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 15053},
                 {"name": "named", "port": 9000, "protocol": "TCP", "targetPort": "http-debug"},
                 {"name": "other", "port": 9001, "protocol": "TCP", "targetPort": 9901}]
    services = {"cluster1": [_svc("istiod-odd", "10.101.192.11", {"app": "istiod"}, ports=odd_ports),
                             _svc("istiod-headless", "None", {"app": "istiod"})]}
    relays, problems = svcproxy.plan(services, {"cluster1": _ports(1)})
    assert relays == {}
    assert len(problems) == 2, problems
    assert "cluster1 Service istio-system/istiod-odd port 9000: targetPort 'http-debug'" in problems[0]
    assert "port 9001: targetPort 9901 is none of istiod's ports" in problems[1]


def test_plan_refuses_a_cluster_ip_two_clusters_share():
    services = {"cluster1": [_svc("istiod", "10.0.0.31", {"app": "istiod"})],
                "cluster2": [_svc("istiod", "10.0.0.31", {"app": "istiod"})]}
    relays, problems = svcproxy.plan(services, {"cluster1": _ports(1), "cluster2": _ports(2)})
    assert {r["cluster"] for r in relays.values()} == {"cluster1"}
    assert problems == ["cluster2 Service istio-system/istiod has ClusterIP 10.0.0.31, which cluster1 uses too: the "
                        "clusters share a service CIDR (created before the sandbox gave each its own); `down` and "
                        "`up` recreate them; not relayed"]


def test_plan_relays_only_ipv4_cluster_ips():
    services = {"cluster1": [_svc("istiod", "fd00::10", {"app": "istiod"}, ips=["fd00::10", "10.101.192.12"])]}
    relays, dummy = svcproxy.plan(services, {"cluster1": _ports(1)})
    assert {ip for ip, _port in relays} == {"10.101.192.12"}


def test_parse_addresses_reads_labels():
    text = ("1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
            "1: lo    inet 10.101.192.103/32 scope global lo:sb628aa627\\       valid_lft forever preferred_lft forever\n"
            "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n")
    assert svcproxy.parse_addresses(text) == [("127.0.0.1", 8, "lo", "lo"),
                                              ("10.101.192.103", 32, "lo", "lo:sb628aa627"),
                                              ("192.0.2.2", 24, "eth0", "eth0")]


def test_address_labels_name_the_sandbox_and_fit_an_interface_label():
    a, b = svcproxy.address_label("/work/a/.sandbox"), svcproxy.address_label("/work/b/.sandbox")
    assert a != b and a == svcproxy.address_label("/work/a/.sandbox")
    for label in (a, b):
        assert label.startswith("lo:sb") and len(label) <= 15  # IFNAMSIZ - 1


def test_istiod_port_offset(monkeypatch):
    monkeypatch.setenv("MESHFED_SANDBOX_ISTIOD_PORT_OFFSET", "5000")
    assert istiod.ports_for(1) == {k: v + 5000 for k, v in istiod.BASE_PORTS.items()}
    assert istiod.ports_for(2)["https"] == 20117
    monkeypatch.setenv("MESHFED_SANDBOX_ISTIOD_PORT_OFFSET", "")
    assert istiod.ports_for(1) == istiod.BASE_PORTS
    for bad in ("x", "-1", "60000"):
        monkeypatch.setenv("MESHFED_SANDBOX_ISTIOD_PORT_OFFSET", bad)
        with pytest.raises(common.SandboxError) as err:
            istiod.ports_for(1)
        assert "MESHFED_SANDBOX_ISTIOD_PORT_OFFSET" in str(err.value)


def test_service_cidrs_differ_per_cluster_and_leave_the_pod_cidrs_alone():
    nets = [ipaddress.ip_network(cluster.service_cidr(i)) for i in range(1, 10)]
    pods = [ipaddress.ip_network("10.%d.0.0/24" % (100 + i)) for i in range(1, 10)]
    for i, net in enumerate(nets):
        assert not any(net.overlaps(other) for other in nets[:i] + nets[i + 1:])
        assert not any(net.overlaps(p) for p in pods)


# ---------------------------------------------------------------- the expose-istiod Gateway (east-west gateway relay)

EW_PORTS = [{"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
            {"name": "tls", "port": 15443, "protocol": "TCP", "targetPort": 15443},
            {"name": "tls-istiod", "port": 15012, "protocol": "TCP", "targetPort": 15012},
            {"name": "tls-webhook", "port": 15017, "protocol": "TCP", "targetPort": 15017}]
EW_SELECTOR = {"app": "istio-eastwestgateway", "istio": "eastwestgateway", "topology.istio.io/network": "network1"}


def _ew_svc(ip="127.0.1.1", ports=None, selector=None, name="istio-eastwestgateway"):
    return {"metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"type": "LoadBalancer", "selector": selector or EW_SELECTOR, "clusterIP": "10.101.140.5",
                     "ports": EW_PORTS if ports is None else ports},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}] if ip else []}}}


def _server(number, protocol="TLS", mode="PASSTHROUGH"):
    return {"port": {"name": "tls-%d" % number, "number": number, "protocol": protocol},
            "tls": {"mode": mode}, "hosts": ["*"]}


def _gateway(servers=None, selector=None, name="istiod-gateway"):
    return {"metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"selector": selector or {"istio": "eastwestgateway"},
                     "servers": [_server(15012), _server(15017)] if servers is None else servers}}


def test_plan_relays_the_gateway_address_to_the_clusters_istiod_while_the_expose_istiod_gateway_exists():
    services = {"cluster1": [_ew_svc("127.0.1.1")], "cluster2": [_ew_svc("127.0.2.1")]}
    gateways = {"cluster1": [_gateway()], "cluster2": [_gateway()]}
    relays, problems = svcproxy.plan(services, {"cluster1": _ports(1), "cluster2": _ports(2)}, gateways)
    assert problems == []
    assert sorted(relays) == [("127.0.1.1", 15012), ("127.0.1.1", 15017), ("127.0.2.1", 15012), ("127.0.2.1", 15017)]
    assert relays[("127.0.1.1", 15012)] == {"cluster": "cluster1", "service": "istio-eastwestgateway",
                                            "gateway": "istiod-gateway", "address": "127.0.1.1", "port": 15012,
                                            "target_port": 15012, "istiod_port": 15012}
    assert relays[("127.0.1.1", 15017)]["istiod_port"] == 15017
    assert relays[("127.0.2.1", 15012)]["istiod_port"] == 15112
    assert relays[("127.0.2.1", 15017)]["istiod_port"] == 15117
    # the Gateway removed (or never applied): nothing relayed, nothing reported
    relays, problems = svcproxy.plan(services, {"cluster1": _ports(1), "cluster2": _ports(2)}, {"cluster1": [], "cluster2": []})
    assert (relays, problems) == ({}, [])
    relays, problems = svcproxy.plan(services, {"cluster1": _ports(1), "cluster2": _ports(2)})
    assert (relays, problems) == ({}, [])


def test_plan_relays_only_tls_passthrough_servers_on_the_istiod_ports():
    gw = _gateway(servers=[_server(15012, mode="SIMPLE"), _server(15017, protocol="HTTPS"), _server(15443),
                           _server(15012, protocol="tls")])  # the template writes "tls"
    relays, problems = svcproxy.plan({"cluster1": [_ew_svc()]}, {"cluster1": _ports(1)}, {"cluster1": [gw]})
    assert sorted(relays) == [("127.0.1.1", 15012)]
    assert problems == []
    # the cross-network Gateway (AUTO_PASSTHROUGH on 15443) alone exposes no istiod
    cross = _gateway(servers=[_server(15443, mode="AUTO_PASSTHROUGH")], name="cross-network-gateway")
    assert svcproxy.plan({"cluster1": [_ew_svc()]}, {"cluster1": _ports(1)}, {"cluster1": [cross]}) == ({}, [])


def test_plan_names_what_keeps_the_gateway_from_exposing_istiod():
    ports = {"cluster1": _ports(1)}
    # no address yet
    relays, problems = svcproxy.plan({"cluster1": [_ew_svc(ip=None)]}, ports, {"cluster1": [_gateway()]})
    assert relays == {}
    assert problems == ["cluster1 Gateway istio-system/istiod-gateway (Service istio-eastwestgateway): the Service has "
                        "no LoadBalancer address yet; istiod is not exposed"]
    # no Service selects the gateway's Pods
    relays, problems = svcproxy.plan({"cluster1": [_ew_svc(selector={"istio": "ingressgateway"}, name="ingress")]},
                                     ports, {"cluster1": [_gateway()]})
    assert relays == {}
    assert problems == ['cluster1 Gateway istio-system/istiod-gateway: no Service in istio-system selects its Pods '
                        '(selector {"istio": "eastwestgateway"}); istiod is not exposed']
    # a NodePort gateway (the sandbox inventory's cluster1) has no LoadBalancer address to relay
    node_port = _ew_svc(ip=None)
    node_port["spec"]["type"] = "NodePort"
    relays, problems = svcproxy.plan({"cluster1": [node_port]}, ports, {"cluster1": [_gateway()]})
    assert relays == {}
    assert problems == ["cluster1 Gateway istio-system/istiod-gateway (Service istio-eastwestgateway): the Service is "
                        "of type NodePort; the sandbox relays LoadBalancer addresses only (istiod is not exposed at a "
                        "gateway address)"]
    # the Service lacks 15017
    relays, problems = svcproxy.plan({"cluster1": [_ew_svc(ports=EW_PORTS[:3])]}, ports, {"cluster1": [_gateway()]})
    assert sorted(relays) == [("127.0.1.1", 15012)]
    assert problems == ["cluster1 Gateway istio-system/istiod-gateway (Service istio-eastwestgateway): the Service has "
                        "no port 15017; not relayed"]


def test_plan_keeps_the_cluster_ip_relays_beside_the_gateway_relays():
    services = {"cluster1": [_svc("istiod", "10.101.192.10", {"app": "istiod"}), _ew_svc()]}
    relays, problems = svcproxy.plan(services, {"cluster1": _ports(1)}, {"cluster1": [_gateway()]})
    assert problems == []
    assert {ip for ip, _port in relays} == {"10.101.192.10", "127.0.1.1"}
    assert "gateway" not in relays[("10.101.192.10", 15012)]


def test_plan_gateway_relay_follows_the_istiod_port_offset(monkeypatch):
    monkeypatch.setenv(istiod.PORT_OFFSET_VAR, "3000")
    relays, dummy = svcproxy.plan({"cluster2": [_ew_svc("127.0.2.1")]}, {"cluster2": istiod.ports_for(2)},
                                  {"cluster2": [_gateway()]})
    assert relays[("127.0.2.1", 15012)]["istiod_port"] == 18112
    assert relays[("127.0.2.1", 15017)]["istiod_port"] == 18117
