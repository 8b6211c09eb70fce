# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64
import os

import pytest
import yaml

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import kiali, names
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

WRITES = {"create", "update", "patch", "delete", "deletecollection", "post", "put", "escalate", "bind", "impersonate"}

ISTIO_PROMETHEUS = """\
global:
  scrape_interval: 15s
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets:
    - localhost:9090
rule_files:
- /etc/config/recording_rules.yml
"""


def test_reader_rules_only_read_and_never_secrets():
    for rule in kiali.READER_RULES:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert not set(rule["verbs"]) & WRITES
        if "" in rule["apiGroups"]:
            assert "secrets" not in rule["resources"]
            assert not any(r in rule["resources"] for r in ("pods/portforward", "pods/proxy", "pods/exec"))
    # what Kiali's pages need at least
    core = next(r for r in kiali.READER_RULES if "" in r["apiGroups"])
    assert {"namespaces", "pods", "services", "configmaps"} <= set(core["resources"])
    assert any("networking.istio.io" in r["apiGroups"] for r in kiali.READER_RULES)


def test_secret_is_the_one_kiali_reads():
    s = kiali.secret_manifest("cluster2", "istio-system", "kubeconfig text")
    meta = s["metadata"]
    assert meta["name"] == "kiali-remote-cluster-secret-cluster2"
    assert meta["labels"][kiali.MULTICLUSTER_LABEL] == "true"
    assert names.is_managed(s)
    assert meta["annotations"] == {kiali.CLUSTER_ANNOTATION: "cluster2"}
    # the data key is the cluster name: Kiali takes the mounted file's name as the cluster's
    assert base64.b64decode(s["data"]["cluster2"]).decode() == "kubeconfig text"
    assert kiali.written_by_us([s]) == {"cluster2": "kiali-remote-cluster-secret-cluster2"}
    assert kiali.label_reasons(s, "cluster2") == []
    istio_like = dict(s, metadata=dict(meta, labels=names.managed_labels()))
    assert kiali.label_reasons(istio_like, "cluster2") == ["label kiali.io/multiCluster=true missing"]


def test_kubeconfig_has_one_cluster_named_as_the_cluster():
    cfg = yaml.safe_load(kiali.kubeconfig_text("cluster2", "https://10.0.0.2:6443", b"CA", "tok"))
    assert [c["name"] for c in cfg["clusters"]] == ["cluster2"]
    assert cfg["current-context"] == "cluster2"
    assert cfg["users"][0]["user"]["token"] == "tok"


@pytest.mark.parametrize("remotes,field_text", [
    ([{"name": "Cluster_2"}], "remotes[0].name"),
    ([{"name": "c" * 36}], "remotes[0].name"),
    ([{"name": "c2"}, {"name": "c2"}], "remotes[1].name: cluster c2 is given twice"),
    ([{"name": "c1"}], "remotes[0].name: c1 is Kiali's own cluster"),
])
def test_bad_remotes_are_refused_naming_the_field(remotes, field_text):
    with pytest.raises(MeshError) as e:
        kiali.validate_remotes(remotes, "c1")
    assert field_text in str(e.value)
    assert e.value.field == "remotes"


def test_hash_changes_with_content_only_and_never_shows_it():
    a = {"kiali-remote-cluster-secret-c2": {"c2": "dG9rZW4x"}}
    b = {"kiali-remote-cluster-secret-c2": {"c2": "dG9rZW4y"}}
    assert kiali.secrets_hash(a) == kiali.secrets_hash(dict(a))
    assert kiali.secrets_hash(a) != kiali.secrets_hash(b)
    assert "dG9rZW4x" not in kiali.secrets_hash(a)
    assert len(kiali.secrets_hash(a)) == 64
    assert kiali.secrets_hash({}) == ""


def test_deployment_apply_mounts_each_secret_read_only_where_kiali_reads():
    body = kiali.deployment_apply("kiali", "istio-system", "kiali", ["c3", "c2"], "abc")
    template = body["spec"]["template"]
    assert template["metadata"]["annotations"] == {kiali.HASH_ANNOTATION: "abc"}
    mounts = template["spec"]["containers"][0]["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == ["/kiali-remote-cluster-secrets/kiali-remote-cluster-secret-c2",
                                                "/kiali-remote-cluster-secrets/kiali-remote-cluster-secret-c3"]
    assert all(m["readOnly"] for m in mounts)
    assert [v["secret"]["secretName"] for v in template["spec"]["volumes"]] == [m["name"] for m in mounts]
    assert all(len(v["name"]) <= 63 for v in template["spec"]["volumes"])
    # no cluster: a body that owns nothing (applying it removes what the last apply added)
    assert "spec" not in kiali.deployment_apply("kiali", "istio-system", "kiali", [], "")


def test_template_view_and_restart():
    body = kiali.deployment_apply("kiali", "ns", "kiali", ["c2"], "abc")
    live = {"spec": {"template": {"metadata": {"annotations": {"other": "x"}}, "spec": {
        "containers": [{"name": "kiali", "volumeMounts": [{"name": "kiali-configuration", "mountPath": "/kiali-configuration"}]}],
        "volumes": [{"name": "kiali-multi-cluster-secret", "secret": {"secretName": "kiali-multi-cluster-secret"}}]}}}}
    assert kiali.template_view(live, "kiali") == {"volumes": [], "mounts": []}
    assert kiali.template_view(body, "kiali") == {
        "volumes": ["kiali-remote-cluster-secret-c2"],
        "mounts": ["/kiali-remote-cluster-secrets/kiali-remote-cluster-secret-c2"], "secrets_sha256": "abc"}
    assert kiali.restarts(live, body) and not kiali.restarts(live, live)
    assert kiali.has_container(live, "kiali") and not kiali.has_container(live, "other")


def test_federation_jobs_as_istios_guide_writes_them():
    jobs = kiali.federation_jobs([{"cluster": "c3", "address": "p3:9090", "scheme": "https"},
                                  {"cluster": "c2", "address": "p2:9090"}])
    assert [j["job_name"] for j in jobs] == ["federate-c2", "federate-c3"]
    j = jobs[0]
    assert j["metrics_path"] == "/federate" and j["honor_labels"] is True
    assert j["params"] == {"match[]": ['{job="kubernetes-pods"}']}
    assert j["static_configs"] == [{"targets": ["p2:9090"], "labels": {"cluster": "c2"}}]
    assert "scheme" not in j and jobs[1]["scheme"] == "https"


@pytest.mark.parametrize("targets,text", [
    ([{"cluster": "c2"}], "federation[0].address"),
    ([{"cluster": "c2", "address": "http://p:9090"}], "federation[0].address"),
    ([{"cluster": "", "address": "p:9090"}], "federation[0].cluster"),
    ([{"cluster": "c2", "address": "p:9090", "scheme": "ftp"}], "federation[0].scheme"),
    ([{"cluster": "c2", "address": "p:1"}, {"cluster": "c2", "address": "q:1"}], "federation[1].cluster"),
    (["c2"], "federation[0]: expected a dict"),
])
def test_bad_federation_targets_refused(targets, text):
    with pytest.raises(MeshError) as e:
        kiali.federation_jobs(targets)
    assert text in str(e.value)


def test_federated_config_adds_replaces_removes_only_its_jobs_and_is_stable():
    jobs = kiali.federation_jobs([{"cluster": "c2", "address": "p2:9090"}])
    once = kiali.federated_config(ISTIO_PROMETHEUS, jobs)
    cfg = yaml.safe_load(once)
    assert [j["job_name"] for j in cfg["scrape_configs"]] == ["prometheus", "federate-c2"]
    assert cfg["rule_files"] == ["/etc/config/recording_rules.yml"]
    assert kiali.federated_config(once, jobs) is once  # unchanged: same text
    moved = kiali.federated_config(once, kiali.federation_jobs([{"cluster": "c2", "address": "p9:9090"}]))
    assert yaml.safe_load(moved)["scrape_configs"][1]["static_configs"][0]["targets"] == ["p9:9090"]
    assert [j["job_name"] for j in yaml.safe_load(kiali.federated_config(once, []))["scrape_configs"]] == ["prometheus"]
    assert kiali.federated_config(ISTIO_PROMETHEUS, []) is ISTIO_PROMETHEUS


def test_federated_configmap_data_keeps_other_keys_and_refuses_other_configmaps():
    cm = {"metadata": {"name": "prometheus", "namespace": "istio-system"},
          "data": {"prometheus.yml": ISTIO_PROMETHEUS, "alerting_rules.yml": "{}"}}
    data = kiali.federated_configmap_data(cm, [{"cluster": "c2", "address": "p2:9090"}])
    assert data["alerting_rules.yml"] == "{}" and "federate-c2" in data["prometheus.yml"]
    with pytest.raises(MeshError, match="has no prometheus.yml"):
        kiali.federated_configmap_data({"metadata": {"name": "x"}, "data": {}}, [])
    with pytest.raises(MeshError, match="not a Prometheus configuration"):
        kiali.federated_config("- a list", [])


SAMPLES = "/root/go/pkg/mod/istio.io/istio@v0.0.0-20260827124520-eed52ebb66ad/samples/addons"


@pytest.mark.skipif(not os.path.isdir(SAMPLES), reason="the pinned Istio source is not here")
def test_the_pinned_samples_prometheus_configmap_takes_the_jobs():
    with open(os.path.join(SAMPLES, "prometheus.yaml")) as f:
        cm = next(d for d in yaml.safe_load_all(f) if d and d.get("kind") == "ConfigMap")
    data = kiali.federated_configmap_data(cm, [{"cluster": "c2", "address": "p2:9090"}])
    jobs = [j["job_name"] for j in yaml.safe_load(data["prometheus.yml"])["scrape_configs"]]
    assert jobs[-1] == "federate-c2" and "kubernetes-pods" in jobs
