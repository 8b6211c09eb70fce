# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One validation of the whole desired state (desired.mesh_problems): every problem names
the host and the variable the user wrote."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import desired
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import TopologyError, in_terms_of

FACT = "__desired"
GOOD_ROLE_VARS = {
    "install_istio_version": "1.31", "install_istio_revision": "", "install_istio_profile": "default",
    "install_istio_remote_profile": "remote", "install_istio_istioctl": "istioctl",
    "install_istio_ca_dir": "/ca", "install_istio_readiness_timeout": 300, "install_istio_values": {},
    "install_istio_mesh_config": {}, "install_istio_ca_root_cert_path": "", "install_istio_ca_root_key_path": "",
    "federate_clusters_mode": "multi_primary", "federate_clusters_namespace": "istio-system",
    "federate_clusters_service_account": "meshfed-istio-reader", "federate_clusters_vip_cidr": "240.240.0.0/16",
    "federate_clusters_endpoint_label_keys": ["version", "app.kubernetes.io/version"],
    "federate_clusters_global_routes": {"helloworld.sample.global": {"v1": 90, "v2": 10}},
    "federate_clusters_token_expiration": 86400,
}


def hostvars(c1=None, c2=None, role1=None, role2=None):
    """Two clusters on two networks, with overrides of inventory (c1, c2) and role variables."""
    out = {}
    for name, net, gw, inv, role in (("cluster1", "network1", "192.0.2.11", c1, role1),
                                     ("cluster2", "network2", "192.0.2.12", c2, role2)):
        v = {"mesh_id": "mesh1", "mesh_cluster_name": name, "mesh_network": net, "mesh_context": name,
             "mesh_gateway_address": gw, "mesh_exports": [{"namespace": "bar", "names": ["httpbin"]}]}
        v.update(inv or {})
        v[FACT] = dict(GOOD_ROLE_VARS, **(role or {}))
        out[name] = v
    return out


def problems(**kw):
    return desired.mesh_problems(["cluster1", "cluster2"], hostvars(**kw), FACT)


def test_a_good_state_has_no_problem():
    assert problems() == []


BAD_ROLE_VARS = [
    ("federate_clusters_vip_cidr", "240.240.0.0/33", "is not a valid CIDR"),
    ("federate_clusters_vip_cidr", "banana", "is not a valid CIDR"),
    ("federate_clusters_vip_cidr", "10.0.0.0/8", "is not inside 240.0.0.0/4"),
    ("federate_clusters_vip_cidr", 5, "must be an IPv4 CIDR"),
    ("federate_clusters_endpoint_label_keys", "version", "must be a list"),
    ("federate_clusters_endpoint_label_keys", ["-bad-"], "is not a label key"),
    ("federate_clusters_endpoint_label_keys", ["a/b/c"], "is not a DNS-1123 subdomain"),
    ("federate_clusters_global_routes", {"helloworld.sample.global": {"v1": 90, "v2": 20}}, "add up to 110"),
    ("federate_clusters_global_routes", {"helloworld.sample.global": {"v1": True}}, "must be an integer"),
    ("federate_clusters_global_routes", {"helloworld.sample.global": {"v1": "100"}}, "must be an integer"),
    ("federate_clusters_global_routes", {"helloworld.sample.global": {"v1": 150, "v2": -50}}, "from 0 to 100"),
    ("federate_clusters_global_routes", {"helloworld.sample": {"v1": 100}}, "not a .global host"),
    ("federate_clusters_global_routes", {"helloworld.sample.global": []}, "must map subset names"),
    ("federate_clusters_global_routes", ["x"], "must be a mapping"),
    ("federate_clusters_global_routes", {"helloworld.sample.global": {"V_1": 100}}, "is not a subset name"),
    ("federate_clusters_namespace", "Istio_System", "is not a namespace name"),
    ("federate_clusters_service_account", "", "is not a service account name"),
    ("federate_clusters_token_expiration", 60, "from 600 to"),
    ("federate_clusters_token_expiration", "1d", "must be an integer"),
    ("install_istio_version", "latest", "is not an Istio version"),
    ("install_istio_revision", "1.31", "is not a revision name"),
    ("install_istio_profile", "", "must be an istioctl profile name"),
    ("install_istio_ca_dir", " ", "must be a directory"),
    ("install_istio_readiness_timeout", 0, "from 1 to 86400"),
    ("install_istio_values", "a=b", "must be a mapping"),
    ("install_istio_ca_root_key_path", "/root.key", "without install_istio_ca_root_cert_path"),
]


@pytest.mark.parametrize("variable, value, message", BAD_ROLE_VARS)
def test_a_bad_role_variable_is_named_with_its_host(variable, value, message):
    found = problems(role2={variable: value})
    assert found and all(p.startswith("host cluster2: %s" % variable) for p in found), found
    assert any(message in p for p in found), found


def test_good_role_variable_forms():
    for variable, value in (("install_istio_version", ""), ("install_istio_version", "1.31.2"),
                            ("install_istio_revision", "canary"), ("federate_clusters_global_routes", {}),
                            ("federate_clusters_endpoint_label_keys", []),
                            ("federate_clusters_vip_cidr", "127.255.0.0/16"),
                            ("install_istio_readiness_timeout", "600")):
        assert problems(role1={variable: value}) == [], (variable, value)


BAD_INVENTORY = [
    ("mesh_gateway_address", "not an address", "neither an IP address nor a DNS name"),
    ("mesh_gateway_address", 42, "must be an IP address or a DNS name"),
    ("mesh_istiod_address", "bad_name!", "neither an IP address nor a DNS name"),
    ("mesh_api_server", "api.example.com:6443", "is not an https:// URL"),
    ("mesh_api_server", "http://api.example.com", "is not an https:// URL"),
    ("mesh_api_server", "https://api.example.com:99999", "is not a URL"),
    ("mesh_api_server", "https://bad host", "host"),
    ("mesh_network", "network 2", "is not a label value"),
    ("mesh_id", "mesh/1", "is not a label value"),
    ("mesh_exports", {"namespace": "bar"}, "must be a list"),
    ("mesh_exports", [{"names": ["httpbin"]}], "[0]: namespace is required"),
    ("mesh_exports", [{"namespace": "Bar"}], "is not a namespace name"),
    ("mesh_exports", ["bar"], "must be a mapping"),
    ("mesh_exports", [{"namespace": "bar", "name": ["x"]}], "unknown key(s) name"),
    ("mesh_exports", [{"namespace": "bar", "names": "httpbin"}], "names: must be a list"),
    ("mesh_exports", [{"namespace": "bar", "names": ["Httpbin"]}], "is not a Service name"),
    ("mesh_exports", [{"namespace": "bar", "label_selector": "a in (b)"}], "is not a label selector"),
    # the rule exported_services applies (federation.selector_problem): key and key=value terms
    ("mesh_exports", [{"namespace": "bar", "label_selector": "a=b,!skip"}], "is not a label selector"),
]


@pytest.mark.parametrize("variable, value, message", BAD_INVENTORY)
def test_a_bad_inventory_variable_is_named_with_its_host(variable, value, message):
    found = problems(c2={variable: value})
    mine = [p for p in found if p.startswith("host cluster2: %s" % variable)]
    assert len(mine) == 1 and message in mine[0], found
    # the only other problem a bad value may cause: a mesh ID that differs between hosts
    assert all(p in mine or p.startswith("mesh_id differs") for p in found), found


def test_good_inventory_forms():
    for variable, value in (("mesh_gateway_address", "gw.example.com"), ("mesh_gateway_address", "2001:db8::1"),
                            ("mesh_api_server", "https://10.0.0.1:6443"), ("mesh_api_server", "https://[2001:db8::1]"),
                            ("mesh_exports", [{"namespace": "sample", "label_selector": "mesh-export=true,tier"}]),
                            ("mesh_exports", [])):
        assert problems(c1={variable: value}) == [], (variable, value)


def test_two_networks_cannot_share_a_gateway_address():
    found = problems(c2={"mesh_gateway_address": "192.0.2.11"})
    assert found == ["hosts cluster1, cluster2: mesh_gateway_address 192.0.2.11 is the same for networks network1, "
                     "network2; each network's east-west gateway needs its own address"]
    # one network: no east-west traffic between them, the same address is no conflict
    assert problems(c2={"mesh_gateway_address": "192.0.2.11", "mesh_network": "network1"}) == []


def test_a_remote_cluster_needs_primary_remote():
    found = problems(c2={"mesh_cluster_role": "remote"})
    assert found == ["host cluster2: federate_clusters_mode: a remote cluster (mesh_cluster_role remote) runs no "
                     "istiod and needs primary_remote, got multi_primary"]
    assert problems(c2={"mesh_cluster_role": "remote"}, role1={"federate_clusters_mode": "primary_remote"},
                    role2={"federate_clusters_mode": "primary_remote"}) == []
    both = problems(c1={"mesh_cluster_role": "remote"}, c2={"mesh_cluster_role": "remote"},
                    role1={"federate_clusters_mode": "primary_remote"},
                    role2={"federate_clusters_mode": "primary_remote"})
    assert [p.split(":", maxsplit=1)[0] for p in both] == ["host cluster1", "host cluster2"]
    assert all("needs a primary" in p for p in both)


def test_topology_errors_are_included():
    found = problems(c2={"mesh_cluster_name": "cluster1"})
    assert found == ["hosts cluster1, cluster2: duplicate mesh_cluster_name 'cluster1'"]


def test_every_problem_of_every_host_at_once():
    found = problems(c1={"mesh_gateway_address": "?"},
                     role2={"federate_clusters_vip_cidr": "x", "install_istio_version": "y"})
    assert [p.split(": ")[:2] for p in found] == [
        ["host cluster1", "mesh_gateway_address"], ["host cluster2", "federate_clusters_vip_cidr"],
        ["host cluster2", "install_istio_version"]]


def test_without_a_fact_only_inventory_is_checked():
    hv = hostvars(role2={"federate_clusters_vip_cidr": "x"})
    assert desired.mesh_problems(["cluster1", "cluster2"], hv) == []
    assert desired.mesh_problems(["cluster1", "cluster2"], hv, "undefined_fact") == []


def test_bad_arguments():
    assert desired.mesh_problems(["nohost"], hostvars(), FACT) == ["host 'nohost': not a host of the inventory "
                                                                   "(no variables)"]
    hv = hostvars()
    hv["cluster1"][FACT] = ["not", "a", "dict"]
    with pytest.raises(TopologyError, match="host cluster1: __desired must be a mapping"):
        desired.mesh_problems(["cluster1"], hv, FACT)


@pytest.mark.parametrize("key, expected", [
    ("version", None), ("app.kubernetes.io/version", None), ("a", None), ("", "is not a label key"),
    ("x" * 64, "is not a label key"), ("-a", "is not a label key"), ("Bad_Prefix/a", "prefix"),
    (3, "is not a label key"),
])
def test_label_keys(key, expected):
    problem = desired.label_key_problem(key)
    assert (problem is None) if expected is None else (expected in problem)


@pytest.mark.parametrize("msg, field, expected", [
    ("vip_cidr: 240.0.0.0/30 has 2 usable addresses", "vip_cidr",
     "federate_clusters_vip_cidr: 240.0.0.0/30 has 2 usable addresses"),
    ("routes[a.b.global]: subset 'v3' does not exist", "routes",
     "federate_clusters_global_routes[a.b.global]: subset 'v3' does not exist"),
    ("a.b.global is exported by c1 and c2 with conflicting ports", "mesh_exports",
     "mesh_exports: a.b.global is exported by c1 and c2 with conflicting ports"),
    ("vip_cidrs: other", "vip_cidr", "federate_clusters_vip_cidr: vip_cidrs: other"),
    ("server: no answer", "server", "server: no answer"),
    ("no field", None, "no field"),
])
def test_module_refusals_in_terms_of_the_variables(msg, field, expected):
    variables = {"vip_cidr": "federate_clusters_vip_cidr", "routes": "federate_clusters_global_routes",
                 "mesh_exports": "mesh_exports"}
    assert in_terms_of(msg, field, variables) == expected
    assert in_terms_of(msg, field, None) == msg
