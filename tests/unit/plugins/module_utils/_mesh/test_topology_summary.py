# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lines of the mesh summary (playbooks/site.yml)."""

from __future__ import annotations

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import topology as topo

CA = {"root": {"subject": "CN=Root CA,O=Istio", "fingerprint_sha256": "AA:BB"},
      "clusters": {"cluster1": {"serial": "0A:01"}, "cluster2": {"serial": "0A:02"}}}
INFO = {"meshID": "mesh1", "istioVersion": "1.31.0", "revision": "default", "gatewayAddress": "127.0.0.11"}


def clusters(*hosts):
    return topo.play_clusters(hosts, dict((h, {"mesh_id": "mesh1", "mesh_cluster_name": h,
                                               "mesh_network": "network" + h[-1]}) for h in hosts))


def test_header_then_one_line_per_cluster_multi_primary():
    statuses = {"cluster1": {"cluster_info": INFO, "discovers": ["cluster2"], "vips": {}},
                "cluster2": {"cluster_info": dict(INFO, gatewayAddress="127.0.0.12"), "discovers": ["cluster1"],
                             "vips": {}}}
    assert topo.mesh_summary(clusters("cluster1", "cluster2"), CA, statuses) == [
        "mesh mesh1: root CA CN=Root CA,O=Istio, sha256 AA:BB",
        "cluster1 (network1): Istio 1.31.0, revision default, east-west gateway 127.0.0.11, intermediate serial "
        "0A:01; discovers: cluster2 (every Service, by its cluster.local name)",
        "cluster2 (network2): Istio 1.31.0, revision default, east-west gateway 127.0.0.12, intermediate serial "
        "0A:02; discovers: cluster1 (every Service, by its cluster.local name)",
    ]


def test_service_entry_mode_lists_the_global_hosts_sorted():
    statuses = {"cluster1": {"cluster_info": INFO, "discovers": [],
                             "vips": {"other.bar.global": "240.240.0.2", "httpbin.bar.global": "240.240.0.1"}},
                "cluster2": {"cluster_info": INFO, "discovers": [], "vips": {}}}
    modes = {"cluster1": "service_entry", "cluster2": "service_entry"}
    lines = topo.mesh_summary(clusters("cluster1", "cluster2"), CA, statuses, modes)
    assert lines[1] == ("cluster1 (network1): Istio 1.31.0, revision default, east-west gateway 127.0.0.11, "
                        "intermediate serial 0A:01; discovers: none; .global hosts (host=VIP): "
                        "httpbin.bar.global=240.240.0.1, other.bar.global=240.240.0.2")
    assert lines[2].endswith("; discovers: none; .global hosts (host=VIP): none")


def test_a_cluster_that_discovers_nothing_gets_no_suffix():
    line = topo.mesh_summary(clusters("cluster1"), CA, {"cluster1": {"cluster_info": INFO, "discovers": []}})[1]
    assert line.endswith("intermediate serial 0A:01; discovers: none")


def test_discovered_clusters_sorted_as_jinja_sorts():
    status = {"cluster_info": INFO, "discovers": ["c3", "B2", "a1"]}
    line = topo.summary_line(clusters("cluster1")[0], status, "1", "primary_remote")
    assert "; discovers: a1, B2, c3 (every Service" in line


def test_what_the_status_does_not_say():
    # no meshfed-cluster-info (install_istio never ran there), no serial for the cluster
    lines = topo.mesh_summary(clusters("cluster3"), CA, {"cluster3": {"cluster_info": {}, "discovers": []}})
    assert lines[1] == ("cluster3 (network3): Istio ?, revision ?, east-west gateway none, "
                        "intermediate serial ?; discovers: none")
    # no status at all (the host has none registered)
    assert topo.mesh_summary(clusters("cluster1"), CA, {})[1].startswith("cluster1 (network1): Istio ?, revision ?")


def test_empty_gateway_address_is_none():
    status = {"cluster_info": dict(INFO, gatewayAddress=""), "discovers": []}
    assert ", east-west gateway none," in topo.summary_line(clusters("cluster1")[0], status, "1", "multi_primary")


def test_header_uses_the_first_clusters_mesh_id():
    assert topo.summary_header("mesh7", CA) == "mesh mesh7: root CA CN=Root CA,O=Istio, sha256 AA:BB"
    assert topo.mesh_summary([], CA, {}) == ["mesh : root CA CN=Root CA,O=Istio, sha256 AA:BB"]
