# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned `.global` subsets at the exporting cluster: a Service per label set when an
exported Service's pods form more than one, addressed by the local endpoint of that set."""

from __future__ import annotations

import re

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation as fed
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation_runner as fr
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

from test_global_import_conflicts import FakeService, Store, params

MTLS = {"security.istio.io/tlsMode": "istio"}
VIPS = {"httpbin.bar.global": "240.240.0.10"}
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
PORTS = [{"name": "http", "port": 8000, "app_protocol": None, "target_port": 80, "protocol": "TCP"}]


def export(cluster="cluster2", name="httpbin", label_sets=None, selector=None, ports=None, namespace="bar"):
    return {"cluster": cluster, "network": "net-" + cluster, "gateway": "gw-" + cluster, "name": name,
            "namespace": namespace, "selector": {"app": name} if selector is None else selector,
            "ports": ports or PORTS, "label_sets": label_sets or [{}]}


V1_V2 = [{"version": "v1"}, {"version": "v2"}]


# --- exported: what the subset Services need ------------------------------------------

def svc(name, selector, ports, labels=None):
    return {"metadata": {"name": name, "namespace": "bar", "labels": labels or {}},
            "spec": {"selector": selector, "ports": ports}}


def test_exported_carries_the_selector_and_the_ports_target_port_and_protocol():
    services = [svc("httpbin", {"app": "httpbin"}, [{"name": "http", "port": 8000, "targetPort": "web",
                                                     "protocol": "TCP", "appProtocol": "http"},
                                                    {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}])]
    pods = [{"metadata": {"labels": {"app": "httpbin", "version": "v1"}}},
            {"metadata": {"labels": {"app": "httpbin", "version": "v2"}}},
            {"metadata": {"labels": {"app": "other", "version": "v3"}}}]
    (e,) = fed.exported(services, pods, set(), ["version"])
    assert e["selector"] == {"app": "httpbin"}
    assert e["ports"] == [
        {"name": "http", "port": 8000, "app_protocol": "http", "target_port": "web", "protocol": "TCP"},
        {"name": "dns", "port": 53, "app_protocol": None, "target_port": 5353, "protocol": "UDP"}]
    assert e["label_sets"] == V1_V2


def test_exported_never_exports_a_label_sets_service():
    services = [svc("httpbin", {"app": "httpbin"}, [{"port": 8000}]),
                svc("global-httpbin-v1", {"app": "httpbin", "version": "v1"}, [{"port": 8000}],
                    labels={fed.SUBSET_OF_LABEL: "httpbin", "meshfed.istio/owner": "meshfed-global"})]
    assert [e["name"] for e in fed.exported(services, [], set(), ["version"])] == ["httpbin"]


# --- the exporting cluster's endpoints ------------------------------------------------

def test_two_label_sets_each_endpoint_addresses_its_sets_service():
    (se,) = fed.global_entries("cluster2", [export(label_sets=V1_V2)], VIPS)
    assert se["spec"]["endpoints"] == [
        {"address": "global-httpbin-v1.bar.svc.cluster.local", "ports": {"http": 8000},
         "labels": dict(MTLS, version="v1")},
        {"address": "global-httpbin-v2.bar.svc.cluster.local", "ports": {"http": 8000},
         "labels": dict(MTLS, version="v2")}]


def test_one_label_set_keeps_the_service_and_adds_nothing():
    for sets in ([{"version": "v1"}], [{}]):
        (se,) = fed.global_entries("cluster2", [export(label_sets=sets)], VIPS)
        assert [e["address"] for e in se["spec"]["endpoints"]] == ["httpbin.bar.svc.cluster.local"]
        assert fed.subset_services("cluster2", [export(label_sets=sets)]) == []


def test_pods_without_the_label_keys_are_reached_through_the_service():
    sets = [{}, {"version": "v1"}]
    (se,) = fed.global_entries("cluster2", [export(label_sets=sets)], VIPS)
    assert [(e["address"], e["labels"].get("version")) for e in se["spec"]["endpoints"]] == [
        ("httpbin.bar.svc.cluster.local", None), ("global-httpbin-v1.bar.svc.cluster.local", "v1")]
    assert [s["name"] for s in fed.subset_services("cluster2", [export(label_sets=sets)])] == ["global-httpbin-v1"]


def test_the_importing_cluster_still_gets_the_gateway_per_label_set():
    (se,) = fed.global_entries("cluster1", [export(label_sets=V1_V2)], VIPS)
    assert [(e["address"], e["ports"], e["labels"]["version"]) for e in se["spec"]["endpoints"]] == [
        ("gw-cluster2", {"http": 15443}, "v1"), ("gw-cluster2", {"http": 15443}, "v2")]
    assert fed.subset_services("cluster1", [export(label_sets=V1_V2)]) == []


def test_subset_services_select_the_sets_pods_with_the_services_ports():
    ports = [{"name": "http", "port": 8000, "app_protocol": "http", "target_port": "web", "protocol": "TCP"},
             {"name": "grpc", "port": 9000}]
    selector = {"app": "httpbin", "tier": "b"}
    out = fed.subset_services("cluster2", [export(label_sets=V1_V2, ports=ports, selector=selector)])
    assert out == [
        {"name": "global-httpbin-v%d" % i, "namespace": "bar",
         "labels": {"meshfed.istio/global-host": "global-httpbin-bar", fed.SUBSET_OF_LABEL: "httpbin"},
         "spec": {"type": "ClusterIP", "selector": {"app": "httpbin", "tier": "b", "version": "v%d" % i},
                  "ports": [{"name": "http", "port": 8000, "targetPort": "web", "protocol": "TCP", "appProtocol": "http"},
                            {"name": "grpc", "port": 9000, "targetPort": 9000, "protocol": "TCP"}]}}
        for i in (1, 2)]


def test_a_long_name_is_a_hashed_dns_1035_label():
    name = "a" * 60
    n1 = fed.subset_service_name(name, {"version": "v1"})
    n2 = fed.subset_service_name(name, {"version": "v2"})
    assert len(n1) == 63 and DNS1035.match(n1) and n1 != n2
    assert n1 == fed.subset_service_name(name, {"version": "v1"})  # deterministic
    assert fed.subset_service_name("httpbin", {"version": "v1", "track": "Stable"}) == "global-httpbin-stable-v1"
    (se,) = fed.global_entries("cluster2", [export(name=name, label_sets=V1_V2)], {"%s.bar.global" % name: "240.1.0.1"})
    assert [e["address"] for e in se["spec"]["endpoints"]] == ["%s.bar.svc.cluster.local" % n for n in (n1, n2)]


def test_two_exports_whose_sets_make_one_name_are_refused():
    exports = [export(name="foo", label_sets=[{"version": "bar-v1"}, {"version": "x"}]),
               export(name="foo-bar", label_sets=[{"version": "v1"}, {"version": "y"}])]
    with pytest.raises(MeshError) as e:
        fed.subset_services("cluster2", exports)
    assert "Service bar/global-foo-bar-v1 would split both foo by {'version': 'bar-v1'} and foo-bar by " \
           "{'version': 'v1'}" in str(e.value)
    assert e.value.field == "mesh_exports"


def test_several_label_sets_without_a_selector_are_refused():
    with pytest.raises(MeshError) as e:
        fed.subset_services("cluster2", [export(label_sets=V1_V2, selector={})])
    assert "the pods of Service bar/httpbin in cluster cluster2 form 2 label sets (v1, v2), but the export has no " \
           "selector" in str(e.value)


# --- the runner: written through the reconciler -----------------------------------------

class LabelledService(FakeService):
    """FakeService whose LIST honours an equality/existence label selector, as the API does."""

    def list(self, api_version, kind, namespace=None, label_selector=None, required=False):
        items = super().list(api_version, kind, namespace, None, required)
        for term in (label_selector or "").split(","):
            if term:
                k, eq, v = term.partition("=")
                items = [o for o in items if k in (o["metadata"].get("labels") or {})
                         and (not eq or o["metadata"]["labels"][k] == v)]
        return items


def exporting(label_sets, **kw):
    return params([export(label_sets=label_sets)], prune=True, cluster_name="cluster2", **kw)


def services(store):
    return dict((n, o) for (k, ns, n), o in store.objects.items() if k == "Service")


def test_runner_writes_the_sets_services_before_the_entry_and_a_rerun_changes_nothing():
    store = Store()
    result = fr.run_global_import(exporting(V1_V2), LabelledService(store, "cluster2"), False, True)
    assert sorted(result["subset_services"]["created"]) == ["bar/global-httpbin-v1", "bar/global-httpbin-v2"]
    assert services(store)["global-httpbin-v2"]["spec"]["selector"] == {"app": "httpbin", "version": "v2"}
    assert services(store)["global-httpbin-v2"]["metadata"]["labels"]["meshfed.istio/owner"] == "meshfed-global"
    kinds = [kind for run, verb, kind, name in store.writes]
    assert kinds.index("ServiceEntry") > max(i for i, k in enumerate(kinds) if k == "Service")
    assert "Service bar/global-httpbin-v1" in result["diff"]["after"]
    again = fr.run_global_import(exporting(V1_V2), LabelledService(store, "cluster2"), False, False)
    assert not again["changed"] and again["subset_services"]["counts"]["unchanged"] == 2


def test_runner_deletes_the_sets_services_after_the_entry_when_one_set_is_left():
    store = Store()
    fr.run_global_import(exporting(V1_V2), LabelledService(store, "cluster2"), False, False)
    del store.writes[:]
    result = fr.run_global_import(exporting([{"version": "v1"}]), LabelledService(store, "cluster2"), False, False)
    assert sorted(result["subset_services"]["deleted"]) == ["bar/global-httpbin-v1", "bar/global-httpbin-v2"]
    assert services(store) == {}
    verbs = [(verb, kind) for run, verb, kind, name in store.writes]
    assert verbs.index(("apply", "ServiceEntry")) < verbs.index(("delete", "Service"))
    (se,) = [o for (k, ns, n), o in store.objects.items() if k == "ServiceEntry"]
    assert [e["address"] for e in se["spec"]["endpoints"]] == ["httpbin.bar.svc.cluster.local"]
    # and when the export is gone altogether
    fr.run_global_import(exporting(V1_V2), LabelledService(store, "cluster2"), False, False)
    fr.run_global_import(params([], prune=True, cluster_name="cluster2"), LabelledService(store, "cluster2"), False, False)
    assert services(store) == {}


def test_check_mode_writes_nothing_and_reports_the_sets_services():
    store = Store()
    result = fr.run_global_import(exporting(V1_V2), LabelledService(store, "cluster2"), True, True)
    assert result["changed"] and result["subset_services"]["counts"]["created"] == 2
    assert store.writes == []


def test_someone_elses_service_of_that_name_is_refused_before_any_write():
    store = Store()
    store.put("user", "create", {"apiVersion": "v1", "kind": "Service",
                                 "metadata": {"name": "global-httpbin-v1", "namespace": "bar", "labels": {}},
                                 "spec": {"ports": [{"port": 1}]}})
    del store.writes[:]
    with pytest.raises(MeshError) as e:
        fr.run_global_import(exporting(V1_V2), LabelledService(store, "cluster2"), False, False)
    assert "Service bar/global-httpbin-v1 already exists and is not managed by owner meshfed-global" in str(e.value)
    assert store.writes == []
