# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Istio's samples on the clusters: placement checks naming host and variable, the seeds'
placement, injection labels, sleep/curl by release, versions and registry override (pure)."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import samples
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

FILES_124 = ["curl/curl.yaml", "sleep/README.md", "httpbin/httpbin.yaml", "helloworld/helloworld.yaml",
             "bookinfo/platform/kube/bookinfo.yaml", "bookinfo/networking/bookinfo-gateway.yaml"]
FILES_122 = ["sleep/sleep.yaml", "httpbin/httpbin.yaml", "helloworld/helloworld.yaml",
             "bookinfo/platform/kube/bookinfo.yaml"]
HOSTVARS = {"c1": {"mesh_cluster_name": "cluster1"}, "c2": {"mesh_cluster_name": "cluster2"}}


def plan(placement=None, hosts=("c1", "c2"), hostvars=None, files=None):
    return samples.samples_plan(placement, list(hosts), hostvars or HOSTVARS, FILES_124 if files is None else files)


def test_the_seeds_placement():
    p = plan()
    c1, c2 = p["clusters"]
    assert [(a["app"], a["namespace"], a["versions"]) for a in c1["apps"]] == [
        ("curl", "foo", []), ("helloworld", "sample", ["v1"]), ("curl", "sample", []),
        ("bookinfo", "bookinfo", ["v1", "v2", "v3"])]
    assert [(a["app"], a["namespace"], a["versions"]) for a in c2["apps"]] == [
        ("httpbin", "bar", ["v1"]), ("helloworld", "sample", ["v2"]), ("curl", "sample", [])]
    assert [n["name"] for n in c1["namespaces"]] == ["bookinfo", "foo", "sample"]
    assert p["summary"] == ["cluster1: curl in foo, helloworld v1 in sample, curl in sample, bookinfo v1+v2+v3 in bookinfo",
                            "cluster2: httpbin v1 in bar, helloworld v2 in sample, curl in sample"]


def test_one_cluster_gets_every_seed():
    [c] = plan(hosts=["c1"])["clusters"]
    assert ("helloworld", ["v1", "v2"]) in [(a["app"], a["versions"]) for a in c["apps"]]
    assert "httpbin" in [a["app"] for a in c["apps"]]


def test_a_third_cluster_gets_nothing_by_default():
    assert [c["host"] for c in plan(hosts=["c1", "c2", "c3"])["clusters"]] == ["c1", "c2"]


def test_sleep_and_curl_follow_the_release():
    new = plan({"c1": ["sleep"]})["clusters"][0]["apps"][0]
    assert (new["app"], new["name"], new["file"]) == ("curl", "curl", "curl/curl.yaml")
    old = plan({"c1": ["curl"]}, files=FILES_122)["clusters"][0]["apps"][0]
    assert (old["name"], old["file"]) == ("sleep", "sleep/sleep.yaml")


def test_injection_label_follows_the_revision():
    hv = {"c1": {"install_istio_revision": "1-31"}, "c2": {}}
    c1, c2 = plan({"c1": ["httpbin"], "c2": ["httpbin"]}, hostvars=hv)["clusters"]
    assert c1["namespaces"] == [{"name": "httpbin", "labels": {"istio.io/rev": "1-31"}}]
    assert c2["namespaces"] == [{"name": "httpbin", "labels": {"istio-injection": "enabled"}}]


@pytest.mark.parametrize("placement, msg", [
    ({"c9": ["curl"]}, r"deploy_samples_placement.c9: c9 is not a host of mesh_clusters \(c1, c2\)"),
    ({"c1": ["nginx"]}, r"deploy_samples_placement.c1\[0\].app: 'nginx' is not a sample this role deploys"),
    ({"c1": [{"app": "helloworld", "versions": ["v3"]}]},
     r"deploy_samples_placement.c1\[0\].versions: v3 is not a version of helloworld; choose from v1, v2"),
    ({"c1": [{"app": "curl", "versions": ["v1"]}]}, r"c1\[0\].versions: v1 is not a version of curl; curl has no versions"),
    ({"c1": [{"app": "curl", "namespace": "Foo"}]}, r"c1\[0\].namespace: 'Foo' is not a DNS-1123 label"),
    ({"c1": [{"app": "curl", "ns": "foo"}]}, r"c1\[0\]: unknown key\(s\) ns; allowed: app, namespace, versions"),
    ({"c1": ["curl", {"app": "sleep"}]}, r"c1\[1\]: curl in namespace curl is placed twice on c1 \(also \[0\]\)"),
    ({"c1": "curl"}, r"deploy_samples_placement.c1: must be a list of apps, got str"),
    (["curl"], r"deploy_samples_placement: must be a mapping of cluster host"),
])
def test_bad_placement_is_refused_naming_host_and_variable(placement, msg):
    with pytest.raises(MeshError, match=msg) as e:
        plan(placement)
    assert e.value.field == "deploy_samples_placement"


def test_a_release_without_the_sample_is_refused():
    with pytest.raises(MeshError, match=r"c1\[0\]: the Istio release has no bookinfo sample \(looked for "
                                        r"samples/bookinfo/platform/kube/bookinfo.yaml\)"):
        plan({"c1": ["bookinfo"]}, files=["curl/curl.yaml"])


HELLOWORLD = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "helloworld", "labels": {"app": "helloworld"}}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "helloworld-v1", "labels": {"version": "v1"}},
     "spec": {"template": {"spec": {"containers": [{"name": "helloworld",
                                                    "image": "registry.istio.io/release/examples-helloworld-v1:1.0"}]}}}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "helloworld-v2", "labels": {"version": "v2"}},
     "spec": {"template": {"spec": {"containers": [{"name": "helloworld",
                                                    "image": "registry.istio.io/release/examples-helloworld-v2:1.0"}]}}}},
    None,
]


def test_manifests_of_the_versions_asked_for_in_the_namespace():
    app = {"app": "helloworld", "namespace": "sample", "versions": ["v2"]}
    out = samples.app_manifests(HELLOWORLD, app)
    assert [(d["kind"], d["metadata"]["name"], d["metadata"]["namespace"]) for d in out] == [
        ("Service", "helloworld", "sample"), ("Deployment", "helloworld-v2", "sample")]
    assert "namespace" not in HELLOWORLD[0]["metadata"], "the documents given are not changed"


def test_bookinfo_versions_choose_among_reviews_only():
    docs = [{"kind": "Deployment", "metadata": {"name": n, "labels": {"version": v}}}
            for n, v in (("details-v1", "v1"), ("reviews-v1", "v1"), ("reviews-v3", "v3"))]
    out = samples.app_manifests(docs, {"app": "bookinfo", "namespace": "bookinfo", "versions": ["v3"]})
    assert [d["metadata"]["name"] for d in out] == ["details-v1", "reviews-v3"]


def test_registry_override_keeps_the_image_name_and_tag():
    app = {"app": "helloworld", "namespace": "sample", "versions": ["v1"]}
    [dummy, dep] = samples.app_manifests(HELLOWORLD, app, "mirror.example.com/istio/")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror.example.com/istio/examples-helloworld-v1:1.0"
    assert samples.override_image("curlimages/curl:8.16.0", "m.example.com") == "m.example.com/curl:8.16.0"


def test_gateway_serves_the_host():
    docs = [{"kind": "Gateway", "metadata": {"name": "bookinfo-gateway"},
             "spec": {"servers": [{"port": {"number": 8080}, "hosts": ["*"]}]}},
            {"kind": "VirtualService", "metadata": {"name": "bookinfo"}, "spec": {"hosts": ["*"], "http": []}}]
    gw, vs = samples.gateway_manifests(docs, "bookinfo.example.com", "bookinfo")
    assert gw["spec"]["servers"][0] == {"port": {"number": 8080}, "hosts": ["bookinfo.example.com"]}
    assert vs["spec"]["hosts"] == ["bookinfo.example.com"] and vs["metadata"]["namespace"] == "bookinfo"


def test_cluster_manifests_own_new_namespaces_and_only_label_foreign_ones():
    cluster = plan({"c1": [{"app": "helloworld", "namespace": "sample", "versions": ["v1"]},
                           {"app": "curl", "namespace": "foo"}]})["clusters"][0]
    existing = {"foo": {"team": "x"}, "sample": {"meshfed.istio/owner": "deploy-samples"}}
    out = samples.cluster_manifests(cluster, {"helloworld/helloworld.yaml": HELLOWORLD, "curl/curl.yaml": []},
                                    existing, "deploy-samples")
    assert [(m["kind"], m["metadata"]["name"]) for m in out["manifests"]] == [
        ("Namespace", "sample"), ("Service", "helloworld"), ("Deployment", "helloworld-v1")]
    assert out["manifests"][0]["metadata"]["labels"] == {"istio-injection": "enabled"}
    assert out["labelled"] == [{"name": "foo", "labels": {"istio-injection": "enabled"}}]


def test_cluster_manifests_add_bookinfo_gateway_and_refuse_unread_files():
    cluster = plan({"c1": ["bookinfo"]})["clusters"][0]
    assert cluster["files"] == ["bookinfo/networking/bookinfo-gateway.yaml", "bookinfo/platform/kube/bookinfo.yaml"]
    gw = [{"kind": "Gateway", "metadata": {"name": "bookinfo-gateway"}, "spec": {"servers": [{"hosts": ["*"]}]}}]
    docs = {"bookinfo/platform/kube/bookinfo.yaml": [], samples.GATEWAY_FILE: gw}
    out = samples.cluster_manifests(cluster, docs, {}, "o", ingress_host="b.example.com")
    assert [(m["kind"], m["metadata"].get("namespace")) for m in out["manifests"]] == [
        ("Namespace", None), ("Gateway", "bookinfo")]
    assert [m["kind"] for m in samples.cluster_manifests(cluster, docs, {}, "o")["manifests"]] == ["Namespace"]
    with pytest.raises(MeshError, match=r"c1: the documents of samples/bookinfo/platform/kube/bookinfo.yaml were not read"):
        samples.cluster_manifests(cluster, {}, {}, "o")
    with pytest.raises(MeshError, match=r"c1: the Istio release has no samples/bookinfo/networking/bookinfo-gateway.yaml"):
        samples.cluster_manifests(cluster, {"bookinfo/platform/kube/bookinfo.yaml": []}, {}, "o", ingress_host="h")


def test_traffic_stages_go_where_their_app_runs():
    p = samples.samples_plan(None, ["c1", "c2"], HOSTVARS, FILES_124, {"bookinfo-reviews": "v2-10", "helloworld": "v2-50"})
    c1, c2 = p["clusters"]
    assert [(t["host"], t["namespace"]) for t in c1["traffic"]] == [
        ("reviews.bookinfo.svc.cluster.local", "bookinfo"), ("helloworld.sample.svc.cluster.local", "sample")]
    assert c1["traffic"][0]["canary"] == {"stable": "v1", "canary": "v2", "percent": 10}
    assert [t["host"] for t in c2["traffic"]] == ["helloworld.sample.svc.cluster.local"]
    assert plan()["clusters"][0]["traffic"] == []


def test_a_moved_app_takes_its_policy_along():
    p = samples.samples_plan({"c1": [{"app": "bookinfo", "namespace": "shop"}]}, ["c1"], HOSTVARS, FILES_124,
                             {"bookinfo-reviews": "jason"})
    [policy] = p["clusters"][0]["traffic"]
    assert policy["host"] == "reviews.shop.svc.cluster.local" and policy["routes"][0]["match"] == {"user": "jason"}


@pytest.mark.parametrize("stages, msg", [
    ({"bookinfo-reviews": "v2-20"}, r"deploy_samples_traffic.bookinfo-reviews: 'v2-20' is not a stage; stages: all-v1, "),
    ({"httpbin": "all-v1"}, r"deploy_samples_traffic.httpbin: not a staged sample \(bookinfo-reviews, helloworld, httpbin-global\)"),
    ({"httpbin-global": "all-v1"}, r"deploy_samples_traffic.httpbin-global: httpbin.bar.global is made by the federation in "
                                   r"federate_clusters_mode service_entry only; c1 has multi_primary"),
    (["all-v1"], r"deploy_samples_traffic: must be a mapping"),
])
def test_bad_traffic_stages_are_refused(stages, msg):
    with pytest.raises(MeshError, match=msg) as e:
        samples.samples_plan(None, ["c1"], HOSTVARS, FILES_124, stages)
    assert e.value.field == "deploy_samples_traffic"


def test_a_stage_routing_to_a_version_no_cluster_runs_is_refused():
    placement = {"c1": [{"app": "bookinfo", "versions": ["v1", "v2"]}]}
    with pytest.raises(MeshError, match=r"deploy_samples_traffic.bookinfo-reviews: stage all-v3 routes to v3, which no "
                                        r"cluster runs \(deploy_samples_placement gives bookinfo versions v1, v2\)"):
        samples.samples_plan(placement, ["c1"], HOSTVARS, FILES_124, {"bookinfo-reviews": "all-v3"})
    # helloworld v1 on one cluster and v2 on the other: a 50/50 stage is fine (multi-primary)
    assert samples.samples_plan(None, ["c1", "c2"], HOSTVARS, FILES_124, {"helloworld": "v2-50"})["clusters"]


ADDON_FILES = ["addons/prometheus.yaml", "addons/grafana.yaml", "addons/kiali.yaml", "addons/jaeger.yaml"]


def test_addons_prometheus_everywhere_the_rest_on_the_kiali_cluster():
    assert samples.addon_files(False, ADDON_FILES) == ["addons/prometheus.yaml"]
    assert samples.addon_files(True, ADDON_FILES) == ADDON_FILES[:1] + ADDON_FILES[1:]
    with pytest.raises(MeshError, match=r"deploy_samples_addons: the Istio release has no samples/addons/kiali.yaml"):
        samples.addon_files(True, ADDON_FILES[:2] + ADDON_FILES[3:])


def test_addon_manifests_take_the_federated_prometheus_config():
    docs = {"addons/prometheus.yaml": [
        {"kind": "ConfigMap", "metadata": {"name": "prometheus", "namespace": "istio-system"},
         "data": {"prometheus.yml": "scrape_configs: []\n"}},
        {"kind": "Deployment", "metadata": {"name": "prometheus"}}, None]}
    out = samples.addon_manifests(docs, ["addons/prometheus.yaml"], "prometheus", {"prometheus.yml": "federated"})
    assert [d["kind"] for d in out] == ["ConfigMap", "Deployment"]
    assert out[0]["data"] == {"prometheus.yml": "federated"}
    assert docs["addons/prometheus.yaml"][0]["data"]["prometheus.yml"] == "scrape_configs: []\n"
    assert samples.addon_manifests(docs, ["addons/prometheus.yaml"])[0]["data"]["prometheus.yml"] == "scrape_configs: []\n"


HTTPBIN = [
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "httpbin"}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpbin", "labels": {"app": "httpbin", "service": "httpbin"}}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "httpbin"},
     "spec": {"selector": {"matchLabels": {"app": "httpbin", "version": "v1"}},
              "template": {"metadata": {"labels": {"app": "httpbin", "version": "v1"}},
                           "spec": {"containers": [{"name": "httpbin", "image": "docker.io/mccutchen/go-httpbin:v2.15.0"}]}}}},
]


def _deployments(out):
    return [(d["metadata"]["name"], d["spec"]["selector"]["matchLabels"]["version"],
             d["spec"]["template"]["metadata"]["labels"]["version"]) for d in out if d["kind"] == "Deployment"]


def test_httpbin_v2_is_a_copy_of_the_release_workload_made_only_when_asked():
    # by default (no versions): the release's one workload, v1
    [entry] = plan({"c1": ["httpbin"]})["clusters"][0]["apps"]
    assert entry["versions"] == ["v1"]
    v1 = samples.app_manifests(HTTPBIN, entry)
    assert _deployments(v1) == [("httpbin", "v1", "v1")]
    both = samples.app_manifests(HTTPBIN, dict(entry, versions=["v1", "v2"]), registry="mirror.example/x")
    assert [d["kind"] for d in both] == ["ServiceAccount", "Service", "Deployment", "Deployment"]
    assert _deployments(both) == [("httpbin", "v1", "v1"), ("httpbin-v2", "v2", "v2")]
    assert both[3]["spec"]["template"]["spec"]["containers"][0]["image"] == "mirror.example/x/go-httpbin:v2.15.0"
    only2 = samples.app_manifests(HTTPBIN, dict(entry, versions=["v2"]))
    assert _deployments(only2) == [("httpbin-v2", "v2", "v2")]
    assert HTTPBIN[2]["metadata"] == {"name": "httpbin"}, "the release's documents are not changed"
    # a name that ends with its version takes the new one instead
    doc = samples.copy_version({"kind": "Deployment", "metadata": {"name": "app-v1", "labels": {"version": "v1"}}}, "v1", "v3")
    assert doc["metadata"] == {"name": "app-v3", "labels": {"version": "v3"}}


SE_HOSTVARS = {"c1": {"mesh_cluster_name": "cluster1", "federate_clusters_mode": "service_entry"},
               "c2": {"mesh_cluster_name": "cluster2", "federate_clusters_mode": "service_entry"}}
HTTPBIN_V1_V2 = {"c1": ["curl"], "c2": [{"app": "httpbin", "namespace": "bar", "versions": ["v1", "v2"]}]}


def test_the_global_httpbin_stage_goes_to_the_federation_not_to_this_role():
    p = samples.samples_plan(HTTPBIN_V1_V2, ["c1", "c2"], SE_HOSTVARS, FILES_124, {"httpbin-global": "v2-10"})
    assert [c["traffic"] for c in p["clusters"]] == [[], []]
    assert p["summary"][-1] == "traffic: httpbin-global at stage v2-10 (httpbin.bar.global, by the federation)"
    assert samples.global_routes({"httpbin-global": "v2-10"}) == {"httpbin.bar.global": {"v1": 90, "v2": 10}}
    assert samples.global_routes({"httpbin-global": "all-v2", "helloworld": "v2-50"}, {"a.b.global": {"v1": 100}}) == {
        "a.b.global": {"v1": 100}, "httpbin.bar.global": {"v2": 100}}
    assert samples.global_routes(None, {"a.b.global": {"v1": 100}}) == {"a.b.global": {"v1": 100}}
    assert samples.global_routes({}) == {}


@pytest.mark.parametrize("placement, hostvars, stages, msg", [
    (HTTPBIN_V1_V2, dict(SE_HOSTVARS, c2={"federate_clusters_mode": "multi_primary"}), {"httpbin-global": "all-v1"},
     r"httpbin.bar.global is made by the federation in federate_clusters_mode service_entry only; c2 has multi_primary"),
    ({"c2": [{"app": "httpbin", "namespace": "web"}]}, SE_HOSTVARS, {"httpbin-global": "all-v1"},
     r"deploy_samples_traffic.httpbin-global: httpbin.bar.global routes the httpbin of namespace bar; "
     r"deploy_samples_placement places none there"),
    ({"c2": [{"app": "httpbin", "namespace": "bar"}]}, SE_HOSTVARS, {"httpbin-global": "v2-10"},
     r"deploy_samples_traffic.httpbin-global: stage v2-10 routes to v2, which no cluster runs \(deploy_samples_placement "
     r"gives httpbin versions v1\)"),
])
def test_a_global_stage_without_its_federation_or_app_is_refused(placement, hostvars, stages, msg):
    with pytest.raises(MeshError, match=msg) as e:
        samples.samples_plan(placement, ["c1", "c2"], hostvars, FILES_124, stages)
    assert e.value.field == "deploy_samples_traffic"


def test_a_global_host_routed_twice_is_refused():
    with pytest.raises(MeshError, match=r"federate_clusters_global_routes: httpbin.bar.global is routed by "
                                        r"deploy_samples_traffic too; keep one of the two") as e:
        samples.global_routes({"httpbin-global": "all-v1"}, {"httpbin.bar.global": {"v1": 100}})
    assert e.value.field == "federate_clusters_global_routes"
    with pytest.raises(MeshError, match=r"federate_clusters_global_routes: must be a mapping"):
        samples.global_routes({}, ["x"])
