# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure install logic: IstioOperator rendering, version checks, drift comparison."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import istio
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.istio import InstallError


@pytest.mark.parametrize("text, want", [
    ("1.31.2", (1, 31, 2)), ("v1.36.3", (1, 36, 3)), ("1.31-dev", (1, 31, None)), ("1.31", (1, 31, None)),
    ("garbage", None), ("", None), (None, None),
])
def test_parse_version(text, want):
    assert istio.parse_version(text) == want


@pytest.mark.parametrize("have, requested", [("1.31-dev", "1.31"), ("1.31.2", "1.31"), ("1.31.2", "1.31.2"),
                                             ("1.31.2", None), ("1.31.2", "")])
def test_istioctl_version_accepted(have, requested):
    istio.check_istioctl_version(have, requested)


@pytest.mark.parametrize("have, requested, fragment", [
    ("1.30.4", "1.31", "istioctl is version 1.30.4 but istio_version 1.31 was requested"),
    ("1.31.1", "1.31.2", "istioctl is version 1.31.1 but istio_version 1.31.2 was requested"),
    ("1.31-dev", "1.31.2", "istioctl is version 1.31-dev but istio_version 1.31.2"),
])
def test_istioctl_version_mismatch(have, requested, fragment):
    with pytest.raises(InstallError) as e:
        istio.check_istioctl_version(have, requested)
    assert fragment in str(e.value)
    assert e.value.field == "istio_version"


def test_istioctl_version_unreadable():
    with pytest.raises(InstallError) as e:
        istio.check_istioctl_version("unknown", "1.31")
    assert e.value.field == "istioctl"


def test_bad_requested_version():
    with pytest.raises(InstallError) as e:
        istio.check_istioctl_version("1.31.0", "latest")
    assert e.value.field == "istio_version"


def test_kubernetes_skew():
    istio.check_kubernetes_version("1.31-dev", "v1.36.3")
    istio.check_kubernetes_version("1.31.0", "v1.32.0")
    istio.check_kubernetes_version("1.99.0", "v1.20.0")  # unknown Istio minor: not checked
    with pytest.raises(InstallError) as e:
        istio.check_kubernetes_version("1.31.0", "v1.31.9")
    assert "Kubernetes v1.31.9 is not supported by Istio 1.31 (needs 1.32 or newer)" == str(e.value)
    assert e.value.field == "context"


def test_render_minimal():
    iop = istio.render_iop({})
    assert iop == {
        "apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
        "metadata": {"name": "meshfed-default", "namespace": "istio-system"},
        "spec": {"profile": "default", "values": {"global": {}}, "components": {}},
    }


def test_render_multicluster_identity_and_eastwest():
    iop = istio.render_iop({"mesh_id": "mesh1", "cluster_name": "cluster1", "network": "network1",
                            "revision": "1-31", "components": {"eastwest_gateway": True, "egress_gateway": True}})
    spec = iop["spec"]
    assert iop["metadata"]["name"] == "meshfed-1-31"
    assert spec["revision"] == "1-31"
    assert spec["values"]["global"] == {"meshID": "mesh1", "multiCluster": {"clusterName": "cluster1"},
                                        "network": "network1"}
    assert spec["components"]["egressGateways"] == [{"name": "istio-egressgateway", "enabled": True}]
    (ew,) = spec["components"]["ingressGateways"]
    assert ew["name"] == "istio-eastwestgateway" and ew["enabled"]
    assert ew["label"]["topology.istio.io/network"] == "network1"
    env = dict((e["name"], e["value"]) for e in ew["k8s"]["env"])
    assert env == {"ISTIO_META_ROUTER_MODE": "sni-dnat", "ISTIO_META_REQUESTED_NETWORK_VIEW": "network1"}
    assert [p["port"] for p in ew["k8s"]["service"]["ports"]] == [15021, 15443, 15012, 15017]
    assert "injectionTemplate" not in str(iop)


def test_render_eastwest_service_type():
    iop = istio.render_iop({"network": "n1", "components": {"eastwest_gateway": True, "eastwest_service_type": "NodePort"}})
    (ew,) = iop["spec"]["components"]["ingressGateways"]
    assert ew["k8s"]["service"]["type"] == "NodePort"
    iop = istio.render_iop({"network": "n1", "components": {"eastwest_gateway": True}})
    assert "type" not in iop["spec"]["components"]["ingressGateways"][0]["k8s"]["service"]


def test_render_mesh_networks_as_the_charts_meshNetworks_value():
    nets = {"network2": {"endpoints": [{"fromRegistry": "cluster2"}], "gateways": [{"address": "192.0.2.2", "port": 15443}]}}
    iop = istio.render_iop({"network": "network1", "mesh_networks": {"networks": nets}})
    assert iop["spec"]["values"]["global"] == {"network": "network1", "meshNetworks": nets}
    # none given, or an empty document: no meshNetworks value at all (istioctl's default stays)
    for empty in ({}, {"networks": {}}):
        assert "meshNetworks" not in istio.render_iop({"mesh_networks": empty})["spec"]["values"]["global"]


def test_render_overrides_merge_deeply():
    iop = istio.render_iop({"mesh_id": "m", "values": {"global": {"logging": {"level": "debug"}}, "pilot": {"cpu": 1}},
                            "mesh_config": {"accessLogFile": "/dev/stdout"},
                            "iop_overlay": {"spec": {"components": {"cni": {"enabled": True}}}}})
    assert iop["spec"]["values"]["global"] == {"meshID": "m", "logging": {"level": "debug"}}
    assert iop["spec"]["values"]["pilot"] == {"cpu": 1}
    assert iop["spec"]["meshConfig"] == {"accessLogFile": "/dev/stdout"}
    assert iop["spec"]["components"]["cni"] == {"enabled": True}


def test_render_multi_root_sets_istiod_env_and_proxy_metadata():
    iop = istio.render_iop({"multi_root": True, "mesh_config": {"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}}})
    assert iop["spec"]["values"]["pilot"] == {"env": {"ISTIO_MULTIROOT_MESH": "true"}}
    assert iop["spec"]["meshConfig"] == {"defaultConfig": {"proxyMetadata": {
        "PROXY_CONFIG_XDS_AGENT": "true", "ISTIO_META_DNS_CAPTURE": "true"}}}
    # the caller's values and meshConfig win over the multi-root defaults, the rest stays
    iop = istio.render_iop({"multi_root": True, "values": {"pilot": {"env": {"ISTIO_MULTIROOT_MESH": "false", "X": "1"}}},
                            "mesh_config": {"defaultConfig": {"proxyMetadata": {"PROXY_CONFIG_XDS_AGENT": "false"}}}})
    assert iop["spec"]["values"]["pilot"]["env"] == {"ISTIO_MULTIROOT_MESH": "false", "X": "1"}
    assert iop["spec"]["meshConfig"]["defaultConfig"]["proxyMetadata"] == {"PROXY_CONFIG_XDS_AGENT": "false"}
    # the constants are not shared with the rendered document
    iop["spec"]["values"]["pilot"]["env"]["Y"] = "2"
    assert istio.MULTI_ROOT_VALUES == {"pilot": {"env": {"ISTIO_MULTIROOT_MESH": "true"}}}


def test_render_without_multi_root_changes_nothing():
    for p in ({}, {"multi_root": False}, {"multi_root": None}):
        iop = istio.render_iop(p)
        assert "pilot" not in iop["spec"]["values"] and "meshConfig" not in iop["spec"]
    assert istio.render_iop({"multi_root": False, "mesh_config": {"a": 1}}) == istio.render_iop({"mesh_config": {"a": 1}})


def test_render_ingress_switch():
    off = istio.render_iop({"components": {"ingress_gateway": False}})
    assert off["spec"]["components"]["ingressGateways"] == [{"name": "istio-ingressgateway", "enabled": False}]


def test_deep_merge_does_not_mutate():
    base = {"a": {"b": 1}}
    out = istio.deep_merge(base, {"a": {"c": 2}})
    assert out == {"a": {"b": 1, "c": 2}} and base == {"a": {"b": 1}}


def test_normalize_drops_volatile_and_runtime_managed_fields():
    live = {
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "v", "resourceVersion": "9", "generation": 3, "managedFields": [{}], "uid": "u",
                     "creationTimestamp": "t", "labels": {"a": "b"}},
        "webhooks": [{"name": "w", "failurePolicy": "Fail", "clientConfig": {"caBundle": "XX", "service": {"name": "s"}}}],
        "status": {"x": 1},
    }
    n = istio.normalize(live)
    assert n == {"kind": "ValidatingWebhookConfiguration", "metadata": {"name": "v", "labels": {"a": "b"}},
                 "webhooks": [{"name": "w", "clientConfig": {"service": {"name": "s"}}}]}
    assert live["metadata"]["resourceVersion"] == "9"  # the input is not modified


def test_normalize_keeps_failure_policy_of_mutating_webhooks():
    obj = {"kind": "MutatingWebhookConfiguration", "metadata": {},
           "webhooks": [{"failurePolicy": "Fail", "namespaceSelector": {"x": 1}}]}
    assert istio.normalize(obj)["webhooks"] == [{"failurePolicy": "Fail"}]


def test_diff_paths():
    a = {"spec": {"replicas": 1, "template": {"containers": [{"image": "a"}, {"image": "b"}]}}, "x": [1]}
    b = {"spec": {"replicas": 2, "template": {"containers": [{"image": "a"}, {"image": "c"}]}}, "x": [1, 2]}
    assert istio.diff_paths(a, b) == ["spec.replicas", "spec.template.containers[1].image", "x"]
    assert istio.diff_paths(a, a) == []


def test_without_owner_labels():
    obj = {"metadata": {"labels": {"install.operator.istio.io/owning-resource": "unknown", "app": "istiod",
                                   "operator.istio.io/version": "1.31"}}}
    assert istio.without_owner_labels(obj)["metadata"]["labels"] == {"app": "istiod"}
    assert "operator.istio.io/version" in obj["metadata"]["labels"]


def test_split_manifest():
    docs = [None, {"kind": "A", "metadata": {"name": "a"}}, {"kind": "List", "items": [{"kind": "B"}, None]}]
    assert [d["kind"] for d in istio.split_manifest(docs)] == ["A", "B"]


def test_prune_selector_mirrors_istioctl_owner_labels():
    sel = istio.prune_selector(istio.render_iop({"revision": "1-31"}), "1.31.2").split(",")
    assert "operator.istio.io/managed=Reconcile" in sel
    assert "operator.istio.io/version=1.31.2" in sel
    assert "install.operator.istio.io/owning-resource=meshfed-1-31" in sel
    assert "istio.io/rev=1-31" in sel
    assert "operator.istio.io/component" in sel
    assert "!install.operator.istio.io/owning-resource-not-pruned" in sel
    assert "istio.io/rev=default" in istio.prune_selector(istio.render_iop({}), "1.31.2")
