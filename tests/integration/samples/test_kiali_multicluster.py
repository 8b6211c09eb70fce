# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""deploy_samples' tasks/kiali_multicluster.yml (meshfed.istio.kiali_remote_access and the
prometheus_federation filter) against the running sandbox's real API servers.

Kiali and Prometheus of the pinned Istio's samples/addons are applied into namespace
kiali-test of cluster1 (cluster-scoped names prefixed kiali-test-), the readers live in
kiali-test of every cluster; kwok runs the pods without images, so what is proved is what
the API servers say: the tokens' access, the Secrets, the Deployment's pod template.
The sandbox must be running (this test never starts or stops it)."""

from __future__ import annotations

import base64
import copy
import json
import os
import time

import pytest
import yaml
from playbook_runner import REPO_ROOT, InventoryCopy, _ansible, changed_tasks, failure_messages

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.sandbox

KUBECONFIG = os.path.join(REPO_ROOT, ".sandbox", "kubeconfig")
ISTIO = "/root/go/pkg/mod/istio.io/istio@v0.0.0-20260827124520-eed52ebb66ad"
ADDONS = os.path.join(os.environ.get("MESHFED_ISTIO_SOURCE", ISTIO), "samples", "addons")
NS = "kiali-test"
SA = "meshfed-test-kiali-reader"
ROLE = "%s-%s" % (SA, NS)
KIALI_CLUSTER, REMOTE = "cluster1", "cluster2"
SECRET = "kiali-remote-cluster-secret-"
HASH = "meshfed.istio/kiali-remote-secrets-sha256"
PROM_ADDRESS = "prometheus.cluster2.example:9090"

if not os.path.exists(KUBECONFIG) or not os.path.isdir(ADDONS):
    pytest.skip("the sandbox is not running here, or the pinned Istio source is missing", allow_module_level=True)


def api(cluster):
    return config.new_client_from_config(config_file=KUBECONFIG, context=cluster)


def core(cluster):
    return client.CoreV1Api(api(cluster))


def apps(cluster):
    return client.AppsV1Api(api(cluster))


def renamed(doc):
    """A samples/addons object moved to kiali-test: namespace, and cluster-scoped names prefixed."""
    doc = copy.deepcopy(doc)
    meta = doc["metadata"]
    if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
        meta["name"] = "kiali-test-" + meta["name"]
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = "kiali-test-" + doc["roleRef"]["name"]
            for s in doc.get("subjects") or []:
                s["namespace"] = NS
    else:
        meta["namespace"] = NS
    return doc


def addon_objects():
    out = []
    for name in ("kiali.yaml", "prometheus.yaml"):
        with open(os.path.join(ADDONS, name)) as f:
            out += [renamed(d) for d in yaml.safe_load_all(f) if d and d.get("kind")]
    return out


def cluster_scoped():
    return [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in addon_objects()
            if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def cleanup():
    from kubernetes.dynamic import DynamicClient
    for cluster in (KIALI_CLUSTER, REMOTE):
        dyn = DynamicClient(api(cluster))
        objs = [("rbac.authorization.k8s.io/v1", "ClusterRole", ROLE), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", ROLE)]
        if cluster == KIALI_CLUSTER:
            objs += cluster_scoped()
        for api_version, kind, name in objs:
            try:
                dyn.resources.get(api_version=api_version, kind=kind).delete(name=name)
            except ApiException as e:
                assert e.status == 404, e
        try:
            core(cluster).delete_namespace(NS)
        except ApiException as e:
            assert e.status == 404, e
    for cluster in (KIALI_CLUSTER, REMOTE):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                core(cluster).read_namespace(NS)
            except ApiException as e:
                if e.status == 404:
                    break
            time.sleep(1)
        else:
            pytest.fail("namespace %s of %s still there after 90 s" % (NS, cluster))


def run(inventory, *extra, check=False, state="present", cluster=KIALI_CLUSTER):
    """Run the task file on mesh_clusters; (rc, parsed json callback, raw)."""
    play = os.path.join(os.path.dirname(inventory), "kiali_multicluster.yml")
    with open(play, "w") as f:
        yaml.safe_dump([{"name": "Kiali across clusters", "hosts": "mesh_clusters", "gather_facts": False,
                         "tasks": [{"name": "Kiali multicluster", "ansible.builtin.include_role": {
                             "name": "meshfed.istio.deploy_samples", "tasks_from": "kiali_multicluster"}}]}], f)
    extra_vars = {"deploy_samples_addons_cluster": cluster, "deploy_samples_addons_namespace": NS,
                  "deploy_samples_addons_reader_namespace": NS, "deploy_samples_addons_reader_service_account": SA,
                  "deploy_samples_addons_prometheus_addresses": {REMOTE: PROM_ADDRESS},
                  "deploy_samples_addons_state": state}
    argv = ["-i", inventory, play, "-e", json.dumps(extra_vars)] + (["--check", "--diff"] if check else ["--diff"])
    rc, stdout, raw = _ansible("ansible-playbook", argv + list(extra), "ansible.posix.json")
    try:
        data = json.loads(stdout[stdout.index("{"):])
    except ValueError:
        data = {}
    return rc, data, raw


def kiali_deployment():
    return apps(KIALI_CLUSTER).read_namespaced_deployment("kiali", NS)


def template(dep):
    return client.ApiClient().sanitize_for_serialization(dep.spec.template)


def ours(dep):
    mounts = [m.mount_path for m in dep.spec.template.spec.containers[0].volume_mounts or []
              if m.mount_path.startswith("/kiali-remote-cluster-secrets/" + SECRET)]
    return sorted(mounts), (dep.spec.template.metadata.annotations or {}).get(HASH)


def remote_client(cluster):
    """An API client from the kubeconfig in Kiali's Secret for ``cluster`` (its file name is the cluster's)."""
    secret = core(KIALI_CLUSTER).read_namespaced_secret(SECRET + cluster, NS)
    assert secret.metadata.labels["kiali.io/multiCluster"] == "true"
    assert secret.metadata.annotations["kiali.io/cluster"] == cluster
    assert list(secret.data) == [cluster]
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data[cluster]))
    assert len(kubeconfig["clusters"]) == 1
    return config.new_client_from_config_dict(kubeconfig)


def secret_token(cluster):
    secret = core(KIALI_CLUSTER).read_namespaced_secret(SECRET + cluster, NS)
    return yaml.safe_load(base64.b64decode(secret.data[cluster]))["users"][0]["user"]["token"]


def prometheus_jobs():
    cm = core(KIALI_CLUSTER).read_namespaced_config_map("prometheus", NS)
    return yaml.safe_load(cm.data["prometheus.yml"])["scrape_configs"]


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The sandbox inventory; and one with a third cluster (cluster2 again, as cluster2b)."""
    inv = InventoryCopy(tmp_path_factory.mktemp("kiali"))
    path = inv.write(lambda group: None)
    yield path
    inv.remove()


@pytest.fixture(scope="module")
def addons():
    cleanup()
    from kubernetes.dynamic import DynamicClient
    for cluster in (KIALI_CLUSTER, REMOTE):
        core(cluster).create_namespace({"metadata": {"name": NS}})
    dyn = DynamicClient(api(KIALI_CLUSTER))
    for obj in addon_objects():
        res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        res.create(body=obj, namespace=obj["metadata"].get("namespace"))
    yield
    cleanup()


@pytest.fixture(scope="module")
def first_runs(addons, inventory):
    """check mode on the fresh namespace, then the real run: their results."""
    before = kiali_deployment()
    checked = run(inventory, check=True)
    after_check = kiali_deployment()
    secrets_after_check = core(KIALI_CLUSTER).list_namespaced_secret(NS).items
    sa_after_check = core(REMOTE).list_namespaced_service_account(NS).items
    cm_after_check = core(KIALI_CLUSTER).read_namespaced_config_map("prometheus", NS)
    applied = run(inventory)
    return {"before": before, "checked": checked, "after_check": after_check, "applied": applied,
            "secrets_after_check": secrets_after_check, "sa_after_check": sa_after_check,
            "cm_after_check": cm_after_check}


def test_check_mode_predicts_and_writes_nothing(first_runs):
    rc, data, raw = first_runs["checked"]
    assert rc == 0, raw[-4000:]
    assert sorted(changed_tasks(data)) == [
        "meshfed.istio.deploy_samples : Kiali across clusters - read-only access to the other clusters, mounted into Kiali on cluster1",
        "meshfed.istio.deploy_samples : Prometheus federation - one job per other cluster's Prometheus on cluster1"]
    assert not [s for s in first_runs["secrets_after_check"] if s.metadata.name.startswith(SECRET)]
    assert SA not in [s.metadata.name for s in first_runs["sa_after_check"]]
    assert template(first_runs["after_check"]) == template(first_runs["before"])
    assert first_runs["after_check"].metadata.generation == first_runs["before"].metadata.generation
    assert "federate-" not in first_runs["cm_after_check"].data["prometheus.yml"]


def test_first_run_mounts_one_secret_per_remote_with_a_hash(first_runs):
    rc, data, raw = first_runs["applied"]
    assert rc == 0, raw[-4000:]
    dep = kiali_deployment()
    mounts, digest = ours(dep)
    assert mounts == ["/kiali-remote-cluster-secrets/" + SECRET + REMOTE]
    assert digest and len(digest) == 64
    vols = dict((v.name, v.secret.secret_name) for v in dep.spec.template.spec.volumes if v.secret)
    assert vols[SECRET + REMOTE] == SECRET + REMOTE
    # the samples' own optional mount is left alone
    assert vols["kiali-multi-cluster-secret"] == "kiali-multi-cluster-secret"
    # no token or kubeconfig in what the play printed
    secret = core(KIALI_CLUSTER).read_namespaced_secret(SECRET + REMOTE, NS)
    assert secret_token(REMOTE) not in raw and secret.data[REMOTE] not in raw


def test_kubeconfig_lists_the_remote_clusters_namespaces_with_its_token(first_runs):
    names = [n.metadata.name for n in client.CoreV1Api(remote_client(REMOTE)).list_namespace().items]
    assert NS in names and "istio-system" in names
    # it is the remote cluster: its reader service account is there, not in the Kiali cluster
    assert SA in [s.metadata.name for s in core(REMOTE).list_namespaced_service_account(NS).items]
    assert SA not in [s.metadata.name for s in core(KIALI_CLUSTER).list_namespaced_service_account(NS).items]


@pytest.mark.parametrize("verb, group, resource", [
    ("create", "", "pods"), ("delete", "", "pods"), ("patch", "", "pods"),
    ("create", "apps", "deployments"), ("delete", "apps", "deployments"), ("patch", "apps", "deployments"),
    ("create", "", "secrets"), ("delete", "", "secrets"), ("patch", "", "secrets"),
    ("get", "", "secrets"), ("list", "", "secrets"), ("create", "", "pods/portforward"),
    ("patch", "networking.istio.io", "virtualservices"),
])
def test_reader_cannot_write_nor_read_secrets(first_runs, verb, group, resource):
    # SelfSubjectAccessReview with the Secret's own token, against the remote API server
    sub = resource.split("/")
    attrs = {"verb": verb, "group": group, "resource": sub[0], "namespace": NS}
    if len(sub) > 1:
        attrs["subresource"] = sub[1]
    review = client.AuthorizationV1Api(remote_client(REMOTE)).create_self_subject_access_review(
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
         "spec": {"resourceAttributes": attrs}})
    assert review.status.allowed is False, (verb, group, resource, review.status)
    # and the admin's SubjectAccessReview of the service account says the same
    sar = client.AuthorizationV1Api(api(REMOTE)).create_subject_access_review(
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
         "spec": {"user": "system:serviceaccount:%s:%s" % (NS, SA), "resourceAttributes": attrs}})
    assert sar.status.allowed is False, (verb, group, resource)


def test_reader_reads_what_kiali_shows(first_runs):
    for verb, group, resource in (("list", "", "namespaces"), ("list", "", "pods"), ("watch", "apps", "deployments"),
                                  ("list", "networking.istio.io", "virtualservices")):
        review = client.AuthorizationV1Api(remote_client(REMOTE)).create_self_subject_access_review(
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
             "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource}}})
        assert review.status.allowed is True, (verb, group, resource)


def test_prometheus_federates_the_remote_as_istios_guide(first_runs):
    jobs = prometheus_jobs()
    fed = [j for j in jobs if j["job_name"].startswith("federate-")]
    assert fed == [{"job_name": "federate-" + REMOTE, "scrape_interval": "15s", "honor_labels": True,
                    "metrics_path": "/federate", "params": {"match[]": ['{job="kubernetes-pods"}']},
                    "static_configs": [{"targets": [PROM_ADDRESS], "labels": {"cluster": REMOTE}}]}]
    assert "kubernetes-pods" in [j["job_name"] for j in jobs]


def test_second_run_changes_nothing_and_does_not_restart_kiali(first_runs, inventory):
    dep = kiali_deployment()
    rc, data, raw = run(inventory)
    assert rc == 0, raw[-4000:]
    assert changed_tasks(data) == []
    again = kiali_deployment()
    assert again.metadata.generation == dep.metadata.generation
    assert template(again) == template(dep)
    # and check mode agrees
    rc, data, raw = run(inventory, check=True)
    assert rc == 0 and changed_tasks(data) == [], raw[-4000:]


def test_a_new_remote_changes_the_hash_once(first_runs, inventory, tmp_path):
    inv = InventoryCopy(tmp_path)
    try:
        def add(group):
            group["hosts"]["cluster2b"] = dict(group["hosts"]["cluster2"], mesh_cluster_name="cluster2b")
        path = inv.write(add)
        dep = kiali_deployment()
        rc, data, raw = run(path)
        assert rc == 0, raw[-4000:]
        grown = kiali_deployment()
        assert ours(grown)[0] == ["/kiali-remote-cluster-secrets/%s%s" % (SECRET, c) for c in (REMOTE, "cluster2b")]
        assert ours(grown)[1] != ours(dep)[1]
        assert grown.metadata.generation == dep.metadata.generation + 1
        names = [n.metadata.name for n in client.CoreV1Api(remote_client("cluster2b")).list_namespace().items]
        assert NS in names
        rc, data, raw = run(path)
        assert rc == 0 and changed_tasks(data) == [], raw[-4000:]
        assert kiali_deployment().metadata.generation == grown.metadata.generation
    finally:
        inv.remove()
    # back to the inventory's clusters: cluster2b's Secret and mount go, one more rollout
    rc, data, raw = run(inventory)
    assert rc == 0, raw[-4000:]
    back = kiali_deployment()
    assert ours(back)[0] == ["/kiali-remote-cluster-secrets/" + SECRET + REMOTE]
    assert back.metadata.generation == grown.metadata.generation + 1
    with pytest.raises(ApiException) as e:
        core(KIALI_CLUSTER).read_namespaced_secret(SECRET + "cluster2b", NS)
    assert e.value.status == 404


def test_a_rotated_token_changes_the_hash_once(first_runs, inventory):
    dep = kiali_deployment()
    # revoke the token: delete the reader and its token Secret (a legacy token is the same for the
    # same Secret name and account UID); the next run makes both again, with a new token
    old = secret_token(REMOTE)
    core(REMOTE).delete_namespaced_service_account(SA, NS)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the token controller may delete it first
        try:
            core(REMOTE).delete_namespaced_secret(SA + "-token", NS)
        except ApiException as e:
            if e.status == 404:
                break
            raise
        time.sleep(0.5)
    rc, data, raw = run(inventory)
    assert rc == 0, raw[-4000:]
    rotated = kiali_deployment()
    assert ours(rotated)[1] != ours(dep)[1]
    assert rotated.metadata.generation == dep.metadata.generation + 1
    assert secret_token(REMOTE) != old
    assert NS in [n.metadata.name for n in client.CoreV1Api(remote_client(REMOTE)).list_namespace().items]
    rc, data, raw = run(inventory)
    assert rc == 0 and changed_tasks(data) == [], raw[-4000:]


def test_bad_input_is_refused_naming_the_field(first_runs, inventory):
    rc, data, raw = run(inventory, cluster="nosuch")
    assert rc != 0
    assert any("deploy_samples_addons_cluster: nosuch is not a host of group mesh_clusters" in m
               for m in failure_messages(data)), raw[-3000:]
    rc, data, raw = run(inventory, "-e", json.dumps({"deploy_samples_addons_prometheus_addresses": {REMOTE: "http://p/x"}}))
    assert rc != 0
    assert any("federation[0].address" in m for m in failure_messages(data)), raw[-3000:]
    rc, data, raw = run(inventory, "-e", json.dumps({"deploy_samples_addons_reader_namespace": "meshfed-test-nosuch"}))
    assert rc != 0
    assert any(m.startswith("deploy_samples_addons_reader_namespace: remotes[0] (cluster cluster2)")
               and "meshfed-test-nosuch does not exist" in m for m in failure_messages(data)), raw[-3000:]
    # nothing changed by the refusals
    rc, data, raw = run(inventory)
    assert rc == 0 and changed_tasks(data) == [], raw[-4000:]


def test_zz_absent_removes_everything_it_made(first_runs, inventory):
    rc, data, raw = run(inventory, state="absent")
    assert rc == 0, raw[-4000:]
    dep = kiali_deployment()
    assert ours(dep) == ([], None)
    assert [v.name for v in dep.spec.template.spec.volumes if v.name.startswith(SECRET)] == []
    assert not [s for s in core(KIALI_CLUSTER).list_namespaced_secret(NS).items if s.metadata.name.startswith(SECRET)]
    assert SA not in [s.metadata.name for s in core(REMOTE).list_namespaced_service_account(NS).items]
    assert SA + "-token" not in [s.metadata.name for s in core(REMOTE).list_namespaced_secret(NS).items]
    rbac = client.RbacAuthorizationV1Api(api(REMOTE))
    assert ROLE not in [r.metadata.name for r in rbac.list_cluster_role().items]
    assert ROLE not in [r.metadata.name for r in rbac.list_cluster_role_binding().items]
    assert not [j for j in prometheus_jobs() if j["job_name"].startswith("federate-")]
    # the samples' own objects stay
    assert [v.name for v in dep.spec.template.spec.volumes if v.name == "kiali-multi-cluster-secret"]
    rc, data, raw = run(inventory, state="absent")
    assert rc == 0 and changed_tasks(data) == [], raw[-4000:]
