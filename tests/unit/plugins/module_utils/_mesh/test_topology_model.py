# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The derived mesh topology (mesh_topology and its parts) from inventory variables."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology as topo


def host(name, **kw):
    """Inventory variables of a cluster host named ``name`` (network net-<name>, context <name>)."""
    v = {"mesh_id": "mesh1", "mesh_cluster_name": name, "mesh_network": "net-" + name, "mesh_context": name,
         "mesh_kubeconfig": "/k"}
    v.update(kw)
    return v


def inventory(**hosts):
    """hostvars of hosts given as name=dict of overrides (None: no override)."""
    return dict((name, host(name, **(kw or {}))) for name, kw in hosts.items())


PRIMARY_REMOTE = inventory(c1={}, c2={"mesh_cluster_role": "remote"}, c3={},
                           c4={"mesh_cluster_role": "remote", "mesh_primary": "c3"})


# cluster_vars: the one place inventory variables become a cluster

def test_cluster_vars_defaults_apply_to_undefined_variables_only():
    c = topo.cluster_vars("h1", {})
    assert c == {"host": "h1", "cluster_name": "h1", "mesh_id": "", "network": "", "context": "", "kubeconfig": "",
                 "role": "primary", "mesh_primary": None, "gateway_address": "", "istiod_address": "",
                 "api_server": None, "exports": []}
    # a defined empty name stays empty, so that topology_errors reports it
    assert topo.cluster_vars("h1", {"mesh_cluster_name": None})["cluster_name"] is None


def test_cluster_vars_reads_every_mesh_variable():
    c = topo.cluster_vars("h1", host("h1", mesh_cluster_name="east", mesh_cluster_role="remote", mesh_primary="h0",
                                     mesh_gateway_address="192.0.2.1", mesh_api_server="https://api:6443",
                                     mesh_exports=[{"namespace": "bar"}]))
    assert (c["cluster_name"], c["network"], c["context"], c["kubeconfig"], c["role"], c["mesh_primary"]) == \
        ("east", "net-h1", "h1", "/k", "remote", "h0")
    assert (c["gateway_address"], c["api_server"], c["exports"]) == \
        ("192.0.2.1", "https://api:6443", [{"namespace": "bar"}])


def test_play_clusters_keeps_the_play_order_and_refuses_unknown_hosts():
    hv = inventory(b=None, a=None)
    assert [c["host"] for c in topo.play_clusters(["b", "a"], hv)] == ["b", "a"]
    with pytest.raises(topo.TopologyError, match="host 'zz': not a host of the inventory"):
        topo.play_clusters(["a", "zz"], hv)
    with pytest.raises(topo.TopologyError, match="expected a list of inventory hosts, got str"):
        topo.play_clusters("a", hv)


# primaries, remotes, first primary, served remote clusters

def test_primaries_remotes_and_first_primary():
    t = topo.mesh_topology(["c1", "c2", "c3", "c4"], PRIMARY_REMOTE)
    assert t["primaries"] == ["c1", "c3"]
    assert t["remotes"] == ["c2", "c4"]
    assert t["first_primary"] == "c1"
    assert t["hosts"] == ["c1", "c2", "c3", "c4"]
    assert [c["role"] for c in t["clusters"]] == ["primary", "remote", "primary", "remote"]


def test_first_primary_is_the_first_in_play_order():
    t = topo.mesh_topology(["c2", "c3", "c1"], PRIMARY_REMOTE)
    assert t["first_primary"] == "c3"
    assert t["by_host"]["c2"]["primary"] == "c3"


def test_no_primary_in_the_play():
    t = topo.mesh_topology(["c2"], PRIMARY_REMOTE)
    assert t["first_primary"] is None and t["primaries"] == []
    assert t["by_host"]["c2"]["primary"] is None
    assert t["by_host"]["c2"]["control_plane_cluster"] is None


def test_remote_primary_is_mesh_primary_else_first_primary():
    t = topo.mesh_topology(["c1", "c2", "c3", "c4"], PRIMARY_REMOTE)
    assert t["by_host"]["c2"]["primary"] == "c1"
    assert t["by_host"]["c4"]["primary"] == "c3"
    # primaries have no primary, even with mesh_primary set
    hv = inventory(c1={"mesh_primary": "c9"}, c2={"mesh_cluster_role": "remote"})
    assert topo.mesh_topology(["c1", "c2"], hv)["by_host"]["c1"]["primary"] is None


def test_an_empty_mesh_primary_means_the_first_primary():
    hv = inventory(c1={}, c2={"mesh_cluster_role": "remote", "mesh_primary": ""})
    assert topo.mesh_topology(["c1", "c2"], hv)["by_host"]["c2"]["primary"] == "c1"


def test_served_remotes_per_primary():
    t = topo.mesh_topology(["c1", "c2", "c3", "c4"], PRIMARY_REMOTE)
    assert [t["by_host"][h]["served"] for h in ("c1", "c2", "c3", "c4")] == [["c2"], [], ["c4"], []]
    assert topo.served_remotes("c1", topo.play_clusters(["c1", "c2"], PRIMARY_REMOTE), "c1") == ["c2"]


def test_control_plane_cluster_is_the_primarys_cluster_name():
    hv = inventory(c1={"mesh_cluster_name": "east"}, c2={"mesh_cluster_role": "remote"})
    t = topo.mesh_topology(["c1", "c2"], hv)
    assert t["by_host"]["c1"]["control_plane_cluster"] == "east"
    assert t["by_host"]["c2"]["control_plane_cluster"] == "east"
    # a primary outside the play without mesh_cluster_name: its host name
    hv["c1"].pop("mesh_cluster_name")
    assert topo.mesh_topology(["c2"], hv)["by_host"]["c2"]["control_plane_cluster"] is None
    hv["c2"]["mesh_primary"] = "c1"
    assert topo.mesh_topology(["c2"], hv)["by_host"]["c2"]["control_plane_cluster"] == "c1"


# multi-network

@pytest.mark.parametrize("nets, multi", [
    (["n1", "n2"], True), (["n1", "n1"], False), (["n1"], False), (["n1", "n1", "n2"], True),
])
def test_multi_network(nets, multi):
    hv = dict(("h%d" % i, host("h%d" % i, mesh_network=n)) for i, n in enumerate(nets))
    t = topo.mesh_topology(sorted(hv), hv)
    assert t["multi_network"] is multi
    assert t["networks"] == sorted(set(nets))


# mesh networks: the gateway addresses the inventory gives, for istiod

def test_mesh_networks_lists_each_network_with_a_given_gateway_address():
    hv = {"h1": host("c1", mesh_network="n1", mesh_gateway_address="192.0.2.1"),
          "h2": host("c2", mesh_network="n2", mesh_gateway_address="192.0.2.2"),
          "h3": host("c3", mesh_network="n2")}
    t = topo.mesh_topology(["h1", "h2", "h3"], hv)
    assert t["mesh_networks"] == {"networks": {
        "n1": {"endpoints": [{"fromRegistry": "c1"}], "gateways": [{"address": "192.0.2.1", "port": 15443}]},
        # every cluster of the network is a registry of it; only the given address is a gateway
        "n2": {"endpoints": [{"fromRegistry": "c2"}, {"fromRegistry": "c3"}],
               "gateways": [{"address": "192.0.2.2", "port": 15443}]},
    }}


def test_mesh_networks_leaves_out_networks_whose_gateways_have_load_balancer_addresses():
    hv = {"h1": host("c1", mesh_network="n1", mesh_gateway_address="192.0.2.1"), "h2": host("c2", mesh_network="n2"),
          # the fact install_istio sets from a LoadBalancer address is not an inventory address
          "h3": host("c3", mesh_network="n3", install_istio_gateway_address="198.51.100.3")}
    assert list(topo.mesh_topology(["h1", "h2", "h3"], hv)["mesh_networks"]["networks"]) == ["n1"]


def test_mesh_networks_is_empty_without_given_addresses():
    hv = {"h1": host("c1", mesh_network="n1"), "h2": host("c2", mesh_network="n2")}
    assert topo.mesh_topology(["h1", "h2"], hv)["mesh_networks"] == {}


def test_mesh_networks_lists_an_address_shared_by_two_clusters_of_one_network_once():
    hv = {"h1": host("c1", mesh_network="n1", mesh_gateway_address="192.0.2.1"),
          "h2": host("c2", mesh_network="n1", mesh_gateway_address="192.0.2.1")}
    net = topo.mesh_topology(["h1", "h2"], hv)["mesh_networks"]["networks"]["n1"]
    assert net["gateways"] == [{"address": "192.0.2.1", "port": 15443}]
    assert net["endpoints"] == [{"fromRegistry": "c1"}, {"fromRegistry": "c2"}]


# verify_clusters: the clusters as verify_mesh takes them

def test_verify_clusters_per_mode():
    hv = {"h1": host("c1", mesh_gateway_address="192.0.2.1", install_istio_revision="1-31",
                     verify_mesh_istiod={"xds": "127.0.0.1:15010"}),
          "h2": host("c2"), "h3": host("c3", mesh_cluster_role="remote")}
    mp = topo.verify_clusters(["h1", "h2", "h3"], hv, "multi_primary")
    assert [c["discovers"] for c in mp] == [["c2", "c3"], ["c1", "c3"], ["c1", "c2"]]
    assert mp[0] == {"name": "c1", "host": "h1", "network": "net-c1", "role": "primary", "discovers": ["c2", "c3"],
                     "gateway_address": "192.0.2.1", "revision": "1-31", "context": "c1", "kubeconfig": "/k",
                     "istiod": {"xds": "127.0.0.1:15010"}}
    assert "istiod" not in mp[1] and mp[1]["gateway_address"] == "" and mp[1]["revision"] == ""
    assert mp[2]["role"] == "remote" and mp[2]["control_plane"] == "c1"
    pr = topo.verify_clusters(["h1", "h2", "h3"], hv, "primary_remote")
    assert [c["discovers"] for c in pr] == [["c3"], ["c3"], []]
    assert [c["discovers"] for c in topo.verify_clusters(["h1", "h2"], hv, "service_entry")] == [[], []]


def test_verify_clusters_refuses_an_unknown_mode():
    with pytest.raises(topo.TopologyError, match="federate_clusters_mode 'mesh' is not one of multi_primary"):
        topo.verify_clusters(["h1"], {"h1": host("c1")}, "mesh")


# istiod address

def test_istiod_address_of_a_primary_is_mesh_istiod_address_else_its_gateway_fact():
    assert topo.own_istiod_address({"mesh_istiod_address": "istiod.example", "install_istio_gateway_address": "gw"}) \
        == "istiod.example"
    assert topo.own_istiod_address({"mesh_istiod_address": "", "install_istio_gateway_address": "gw"}) == "gw"
    assert topo.own_istiod_address({"install_istio_gateway_address": "gw"}) == "gw"
    # mesh_gateway_address alone is not the fact: install_istio sets the fact from it
    assert topo.own_istiod_address({"mesh_gateway_address": "192.0.2.1"}) == ""


def test_remote_uses_its_primarys_istiod_address():
    hv = inventory(c1={"install_istio_gateway_address": "192.0.2.1"}, c2={"mesh_cluster_role": "remote"},
                   c3={"mesh_istiod_address": "192.0.2.3"},
                   c4={"mesh_cluster_role": "remote", "mesh_primary": "c3", "mesh_istiod_address": "ignored"})
    t = topo.mesh_topology(["c1", "c2", "c3", "c4"], hv)
    assert [t["by_host"][h]["istiod_address"] for h in ("c1", "c2", "c3", "c4")] == \
        ["192.0.2.1", "192.0.2.1", "192.0.2.3", "192.0.2.3"]


def test_remote_whose_primary_has_no_address_yet():
    t = topo.mesh_topology(["c1", "c2"], inventory(c1={}, c2={"mesh_cluster_role": "remote"}))
    assert t["by_host"]["c2"]["istiod_address"] == ""


# uninstall primary

ALL = ["p0", "other", "p1", "r1"]
UNINSTALL = {
    "p0": host("p0", mesh_id="mesh0"),
    "other": host("other", mesh_cluster_role="remote"),
    "p1": host("p1"),
    "r1": host("r1", mesh_cluster_role="remote"),
}


def test_uninstall_primary_is_the_plays_primary():
    t = topo.mesh_topology(["p1", "r1"], UNINSTALL, ALL)
    assert t["by_host"]["r1"]["uninstall_primary"] == "p1"
    assert t["by_host"]["p1"]["uninstall_primary"] is None


def test_uninstall_primary_outside_the_play_is_the_inventorys_first_primary_of_the_same_mesh():
    # --limit r1: p0 is a primary of another mesh, "other" is a remote cluster
    t = topo.mesh_topology(["r1"], UNINSTALL, ALL)
    assert t["by_host"]["r1"]["primary"] is None
    assert t["by_host"]["r1"]["uninstall_primary"] == "p1"


def test_uninstall_primary_mesh_primary_wins():
    hv = dict(UNINSTALL, r1=host("r1", mesh_cluster_role="remote", mesh_primary="p9"))
    assert topo.mesh_topology(["r1"], hv, ALL)["by_host"]["r1"]["uninstall_primary"] == "p9"


def test_uninstall_primary_none_found():
    hv = {"r1": UNINSTALL["r1"], "p0": UNINSTALL["p0"]}
    assert topo.mesh_topology(["r1"], hv, ["p0", "r1"])["by_host"]["r1"]["uninstall_primary"] is None
    # without all_hosts only the play is searched
    assert topo.mesh_topology(["r1"], UNINSTALL)["by_host"]["r1"]["uninstall_primary"] is None


def test_uninstall_primary_ignores_inventory_hosts_without_variables():
    assert topo.uninstall_primary(topo.cluster_vars("r1", UNINSTALL["r1"]), None, ["ghost", "p1"], UNINSTALL) == "p1"


# federation sources per mode

def test_sources_multi_primary_every_other_host():
    hv = inventory(c1={}, c2={}, c3={})
    t = topo.mesh_topology(["c1", "c2", "c3"], hv)
    assert [t["by_host"][h]["sources"]["multi_primary"] for h in ("c1", "c2", "c3")] == \
        [["c2", "c3"], ["c1", "c3"], ["c1", "c2"]]


def test_sources_primary_remote_every_remote_of_the_play_for_each_primary():
    t = topo.mesh_topology(["c1", "c2", "c3", "c4"], PRIMARY_REMOTE)
    # as the role always did: every remote cluster, not only those it serves
    assert t["by_host"]["c1"]["sources"]["primary_remote"] == ["c2", "c4"]
    assert t["by_host"]["c3"]["sources"]["primary_remote"] == ["c2", "c4"]
    assert t["by_host"]["c2"]["sources"]["primary_remote"] == []


def test_sources_service_entry_none():
    t = topo.mesh_topology(["c1", "c2", "c3", "c4"], PRIMARY_REMOTE)
    assert all(c["sources"]["service_entry"] == [] for c in t["clusters"])
    assert all(sorted(c["sources"]) == sorted(topo.MODES) for c in t["clusters"])


# exports

def exported(*names, gateway=None):
    return {"services": [{"name": n, "namespace": "bar", "ports": [{"name": "http", "port": 80}]} for n in names],
            "cluster_info": {"gatewayAddress": gateway} if gateway is not None else {}}


def test_exports_carry_cluster_network_and_gateway():
    hv = inventory(c1={"mesh_gateway_address": "192.0.2.1"}, c2={"mesh_cluster_name": "west"}, c3={})
    clusters = topo.play_clusters(["c1", "c2", "c3"], hv)
    out = topo.mesh_exports(clusters, {"c1": exported("a", gateway="recorded"), "c2": exported("b", "c", gateway="gw2"),
                                       "c3": {"skipped": True}})
    assert [(e["name"], e["cluster"], e["network"], e["gateway"]) for e in out] == [
        ("a", "c1", "net-c1", "192.0.2.1"),  # mesh_gateway_address first
        ("b", "west", "net-c2", "gw2"),  # else what install_istio recorded
        ("c", "west", "net-c2", "gw2"),
    ]
    assert out[0]["ports"] == [{"name": "http", "port": 80}] and out[0]["namespace"] == "bar"


def test_exports_without_any_gateway_address():
    clusters = topo.play_clusters(["c1"], inventory(c1={}))
    assert topo.mesh_exports(clusters, {"c1": exported("a")})[0]["gateway"] == ""


def test_exports_do_not_change_the_registered_services():
    result = exported("a")
    topo.mesh_exports(topo.play_clusters(["c1"], inventory(c1={})), {"c1": result})
    assert sorted(result["services"][0]) == ["name", "namespace", "ports"]


def test_every_importer_gets_every_export_its_own_included():
    hv = inventory(c1={}, c2={}, c3={})
    clusters = topo.play_clusters(["c1", "c2", "c3"], hv)
    results = {"c1": exported("a"), "c3": exported("b")}
    wanted = [("a", "c1"), ("b", "c3")]
    # each cluster's global_service_entries gets this one list (it tells local from remote by cluster name)
    for importer in ("c1", "c2", "c3"):
        assert [(e["name"], e["cluster"]) for e in topo.mesh_exports(clusters, results)] == wanted, importer


def test_host_values_only_where_defined():
    hv = inventory(c1={"reg": {"resources": []}}, c2={})
    assert topo.host_values(["c1", "c2", "ghost"], hv, "reg") == {"c1": {"resources": []}}


def test_hosts_without_resources():
    results = {"c1": {"resources": [{"kind": "Service"}]}, "c2": {"resources": []}, "c3": {"skipped": True}}
    assert topo.hosts_without_resources(["c1", "c2", "c3", "c4"], results) == ["c2", "c3", "c4"]
    assert topo.hosts_without_resources(["c1"], results) == []


# the topology as a whole, and the bad topologies it is checked with

def test_topology_clusters_are_what_topology_errors_checks():
    hv = inventory(c1={}, c2={"mesh_cluster_name": "c1"}, c3={"mesh_network": ""})
    t = topo.mesh_topology(["c1", "c2", "c3"], hv)
    assert topo.topology_errors(t["clusters"]) == [
        "host c3: mesh_network is not set (every cluster needs a network)",
        "hosts c1, c2: duplicate mesh_cluster_name 'c1'",
    ]


@pytest.mark.parametrize("overrides, error", [
    ({"c2": {"mesh_context": "c1"}},
     "hosts c1, c2: the same mesh_context 'c1' (of the same kubeconfig) for several clusters"),
    ({"c2": {"mesh_id": "mesh2"}}, "mesh_id differs between hosts: mesh1 on c1; mesh2 on c2"),
    ({"c2": {"mesh_cluster_name": "C2"}}, "host c2: mesh_cluster_name 'C2' is not a DNS-1123 label"),
    ({"c2": {"mesh_cluster_name": "x" * 64}}, "host c2: mesh_cluster_name '%s' is not a DNS-1123 label" % ("x" * 64)),
])
def test_bad_topologies_from_inventory_variables(overrides, error):
    hv = inventory(c1=None, c2=overrides.get("c2"))
    assert topo.topology_errors(topo.mesh_topology(["c1", "c2"], hv)["clusters"]) == [error]


def test_undefined_variables_are_reported():
    hv = {"h1": {}}
    assert topo.topology_errors(topo.mesh_topology(["h1"], hv)["clusters"]) == [
        "host h1: mesh_network is not set (every cluster needs a network)",
        "host h1: mesh_id is not set",
        "host h1: mesh_context is not set",
    ]


def test_undefined_kubeconfig_is_one_kubeconfig():
    hv = {"a": {"mesh_id": "m", "mesh_network": "n", "mesh_context": "x"},
          "b": {"mesh_id": "m", "mesh_network": "n", "mesh_context": "x"}}
    assert topo.topology_errors(topo.mesh_topology(["a", "b"], hv)["clusters"]) == [
        "hosts a, b: the same mesh_context 'x' (of the same kubeconfig) for several clusters"]


def test_by_host_and_clusters_are_the_same_dicts():
    t = topo.mesh_topology(["c1", "c2", "c3", "c4"], PRIMARY_REMOTE)
    assert [t["by_host"][h] for h in t["hosts"]] == t["clusters"]


def test_all_hosts_must_be_a_list():
    with pytest.raises(topo.TopologyError, match="all_hosts: expected a list of inventory hosts, got str"):
        topo.mesh_topology(["c1"], PRIMARY_REMOTE, "c1")
