# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DestinationRules (mTLS, versioned subsets) and VirtualServices (weights) of the .global hosts."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation as fed
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile as se
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def export(cluster, name="helloworld", namespace="sample", label_sets=None, ports=None):
    return {"cluster": cluster, "network": "net-" + cluster, "gateway": "gw-" + cluster,
            "name": name, "namespace": namespace,
            "ports": ports or [{"name": "http", "port": 5000}], "label_sets": label_sets or [{}]}


HELLO = [export("cluster1", label_sets=[{"version": "v1"}]), export("cluster2", label_sets=[{"version": "v2"}])]


@pytest.mark.parametrize("labels, name", [
    ({"version": "v2"}, "v2"),
    ({"version": "V1.2_beta"}, "v1-2-beta"),
    ({"track": "stable", "version": "v1"}, "stable-v1"),  # values in key order
    ({"version": "__"}, "default"),
])
def test_subset_name(labels, name):
    assert fed.subset_name(labels) == name


def test_destination_rule_per_host_with_mtls_and_one_subset_per_version():
    (dr,) = fed.global_destination_rules(HELLO)
    assert dr["name"] == "global-helloworld-sample" and dr["namespace"] == "istio-system"
    assert dr["spec"] == {
        "host": "helloworld.sample.global",
        "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}],
    }
    # what the bulk reconciler accepts for this kind
    assert se.validate_entries([dr], "meshfed-global", kind="DestinationRule")[0]["spec"] == dr["spec"]


def test_destination_rule_without_labels_has_no_subsets():
    (dr,) = fed.global_destination_rules([export("cluster2", "httpbin", "bar")], namespace="mesh")
    assert dr["namespace"] == "mesh"
    assert dr["spec"] == {"host": "httpbin.bar.global", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}


def test_same_subset_name_from_different_labels_is_refused():
    exports = [export("cluster1", label_sets=[{"version": "v1"}]), export("cluster2", label_sets=[{"track": "v1"}])]
    with pytest.raises(MeshError, match="both make subset 'v1'") as e:
        fed.global_destination_rules(exports)
    assert e.value.field == "label_keys"


def test_weighted_virtual_service_for_http():
    (vs,) = fed.global_virtual_services(HELLO, {"helloworld.sample.global": {"v1": 90, "v2": 10}})
    assert vs["name"] == "global-helloworld-sample"
    route = [{"destination": {"host": "helloworld.sample.global", "subset": "v1"}, "weight": 90},
             {"destination": {"host": "helloworld.sample.global", "subset": "v2"}, "weight": 10}]
    assert vs["spec"] == {"hosts": ["helloworld.sample.global"], "http": [{"route": route}]}
    assert se.validate_entries([vs], "meshfed-global", kind="VirtualService")


def test_tcp_service_gets_tcp_route_and_mixed_gets_both():
    tcp = [dict(e, ports=[{"name": "tcp-db", "port": 5432}]) for e in HELLO]
    (vs,) = fed.global_virtual_services(tcp, {"helloworld.sample.global": {"v1": 50, "v2": 50}})
    assert set(vs["spec"]) == {"hosts", "tcp"}
    mixed = [dict(e, ports=[{"name": "http", "port": 80}, {"name": "tcp-db", "port": 5432}]) for e in HELLO]
    (vs,) = fed.global_virtual_services(mixed, {"helloworld.sample.global": {"v1": 100, "v2": 0}})
    assert set(vs["spec"]) == {"hosts", "http", "tcp"}
    assert vs["spec"]["http"][0]["route"][1]["weight"] == 0


def test_no_routes_no_virtual_services():
    assert fed.global_virtual_services(HELLO, {}) == []
    assert fed.global_virtual_services(HELLO, None) == []


@pytest.mark.parametrize("routes, message", [
    ({"nope.sample.global": {"v1": 100}}, r"routes\[nope.sample.global\]: is not an exported host"),
    ({"helloworld.sample.global": {"v3": 100}}, "subset 'v3' does not exist; its endpoints make subsets v1, v2"),
    ({"helloworld.sample.global": {"v1": 60, "v2": 60}}, "weights add up to 120, not 100"),
    ({"helloworld.sample.global": {"v1": "50", "v2": 50}}, "weight of subset v1 must be an integer"),
    ({"helloworld.sample.global": {"v1": True, "v2": 99}}, "weight of subset v1 must be an integer"),
    ({"helloworld.sample.global": {}}, "must map subset names to weights"),
    (["helloworld.sample.global"], "routes: must be a mapping"),
])
def test_bad_routes_name_the_host_and_problem(routes, message):
    with pytest.raises(MeshError, match=message) as e:
        fed.global_virtual_services(HELLO, routes)
    assert e.value.field == "routes"


def test_routes_need_labelled_endpoints():
    with pytest.raises(MeshError, match=r"makes? subsets none \(no endpoint labels\)"):
        fed.global_virtual_services([export("cluster2")], {"helloworld.sample.global": {"v1": 100}})


def test_routes_refused_for_tls_only_service():
    tls = [dict(e, ports=[{"name": "https", "port": 443}]) for e in HELLO]
    with pytest.raises(MeshError, match="has only TLS ports"):
        fed.global_virtual_services(tls, {"helloworld.sample.global": {"v1": 50, "v2": 50}})


def test_reconciler_checks_the_host_key_of_each_kind():
    dr = {"name": "x", "namespace": "istio-system", "spec": {"hosts": ["a"]}}
    with pytest.raises(MeshError, match=r"spec.host is missing or empty; a DestinationRule needs a host"):
        se.validate_entries([dr], "o", kind="DestinationRule", field="destination_rules")
    with pytest.raises(MeshError, match=r"spec.host must be a string"):
        se.validate_entries([dict(dr, spec={"host": ["a"]})], "o", kind="DestinationRule")
    # the *.global Gateway goes through the reconciler too (issue 10): an unknown kind is refused
    with pytest.raises(MeshError, match="kind: 'Sidecar' is not one of"):
        se.validate_entries([], "o", kind="Sidecar")
    assert se.desired_object(se.validate_entries([dict(dr, spec={"host": "a"})], "o", kind="DestinationRule")[0],
                             "o", "DestinationRule")["kind"] == "DestinationRule"


def _item(ns, name, owner=None):
    labels = {se.OWNER_LABEL: owner} if owner else {}
    return {"metadata": {"namespace": ns, "name": name, "labels": labels}, "spec": {"host": name}}


def test_owned_filters_by_owner_label_and_scope():
    items = [_item("istio-system", "a", "meshfed-global"), _item("istio-system", "b", "other"),
             _item("istio-system", "c"), _item("bar", "d", "meshfed-global")]
    assert [i["metadata"]["name"] for i in se.owned(items, "meshfed-global")] == ["a", "d"]
    assert [i["metadata"]["name"] for i in se.owned(items, "meshfed-global", ["istio-system"])] == ["a"]


def test_unowned_conflicts_name_kind_object_and_its_label():
    want = [se.desired_object({"name": n, "namespace": "istio-system", "spec": {"host": n}}, "meshfed-global",
                              "DestinationRule") for n in ("a", "b", "c")]
    items = [_item("istio-system", "b", "other"), _item("istio-system", "c"), _item("bar", "a")]
    msgs = se.unowned_conflicts(want, items, "meshfed-global")
    assert msgs == [
        "DestinationRule istio-system/b already exists and is not managed by owner meshfed-global (its "
        "meshfed.istio/owner label is 'other'); delete it, label it meshfed.istio/owner=meshfed-global, "
        "or choose another name",
        "DestinationRule istio-system/c already exists and is not managed by owner meshfed-global (its "
        "meshfed.istio/owner label is absent); delete it, label it meshfed.istio/owner=meshfed-global, "
        "or choose another name"]
