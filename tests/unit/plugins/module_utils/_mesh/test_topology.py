# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory topology validation."""

from __future__ import annotations

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.topology import topology_errors


def cluster(host, **kw):
    c = {"host": host, "mesh_id": "mesh1", "cluster_name": host, "network": "net-" + host,
         "context": host, "kubeconfig": "/k"}
    c.update(kw)
    return c


def test_good_topology():
    assert topology_errors([cluster("cluster1"), cluster("cluster2")]) == []


def test_single_network_is_fine():
    assert topology_errors([cluster("a", network="n"), cluster("b", network="n")]) == []


def test_duplicate_cluster_names_name_the_hosts():
    errs = topology_errors([cluster("h1", cluster_name="c1"), cluster("h2", cluster_name="c1")])
    assert errs == ["hosts h1, h2: duplicate mesh_cluster_name 'c1'"]


def test_missing_fields_name_host_and_field():
    errs = topology_errors([cluster("h1", network=None, context="", mesh_id=None, cluster_name=None)])
    assert errs == [
        "host h1: mesh_cluster_name is not set",
        "host h1: mesh_network is not set (every cluster needs a network)",
        "host h1: mesh_id is not set",
        "host h1: mesh_context is not set",
    ]


def test_bad_cluster_name():
    assert topology_errors([cluster("h1", cluster_name="Cluster_1")]) == [
        "host h1: mesh_cluster_name 'Cluster_1' is not a DNS-1123 label"]


def test_shared_context_and_mesh_id_mismatch():
    errs = topology_errors([cluster("h1", context="x"), cluster("h2", context="x", mesh_id="other")])
    assert "hosts h1, h2: the same mesh_context 'x' (of the same kubeconfig) for several clusters" in errs
    assert "mesh_id differs between hosts: mesh1 on h1; other on h2" in errs


def test_same_context_name_in_different_kubeconfigs_is_fine():
    assert topology_errors([cluster("h1", context="x", kubeconfig="/a"), cluster("h2", context="x", kubeconfig="/b")]) == []
