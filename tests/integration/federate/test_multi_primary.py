# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/federate_clusters.yml, multi_primary, against the sandbox and its real istiods."""

from __future__ import annotations

import base64
import json
import urllib.request

import pytest
import yaml
from kubernetes import client, config
from playbook_runner import InventoryCopy, changed_tasks, failure_messages, playbook
from sandbox_helpers import wait_for

pytestmark = pytest.mark.sandbox
READER = "system:serviceaccount:istio-system:meshfed-istio-reader"


def remote_client(sandbox, target, source):
    """An API client built from the kubeconfig in target's remote secret for source."""
    secret = client.CoreV1Api(sandbox.api_client(target)).read_namespaced_secret(
        "istio-remote-secret-" + source, "istio-system")
    assert secret.metadata.labels["istio/multiCluster"] == "true"
    assert secret.metadata.annotations["networking.istio.io/cluster"] == source
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data[source]))
    return config.new_client_from_config_dict(kubeconfig)


def debug(sandbox, cluster, path):
    port = sandbox.istiod_ports[cluster]["monitoring"]
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return json.loads(r.read().decode())


@pytest.fixture(scope="module")
def federated(sandbox_istiod):
    rc, data, raw = playbook("install_istio.yml")
    assert rc == 0, raw[-4000:]
    rc, data, raw = playbook("federate_clusters.yml")
    assert rc == 0, raw[-4000:]
    return data


def test_remote_secret_kubeconfig_reads_the_other_cluster(sandbox, federated):
    for target, source in (("cluster1", "cluster2"), ("cluster2", "cluster1")):
        api = remote_client(sandbox, target, source)
        names = [s.metadata.name for s in client.CoreV1Api(api).list_namespaced_service("istio-system").items]
        assert "istiod" in names, (target, source, names)


@pytest.mark.parametrize("verb, group, resource", [
    ("create", "", "pods"), ("delete", "", "pods"), ("create", "", "secrets"), ("update", "", "configmaps"),
    ("delete", "", "services"), ("patch", "apps", "deployments"), ("create", "", "namespaces"),
    ("delete", "", "namespaces"), ("create", "networking.istio.io", "serviceentries"),
    ("create", "multicluster.x-k8s.io", "serviceexports"), ("create", "rbac.authorization.k8s.io", "clusterroles"),
])
def test_reader_token_cannot_change_anything(sandbox, federated, verb, group, resource):
    for cluster in ("cluster1", "cluster2"):
        sar = client.AuthorizationV1Api(sandbox.api_client(cluster)).create_subject_access_review(
            client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
                user=READER, resource_attributes=client.V1ResourceAttributes(
                    verb=verb, group=group, resource=resource, namespace="istio-system"))))
        assert sar.status.allowed is False, (cluster, verb, group, resource)


def test_reader_token_can_read(sandbox, federated):
    sar = client.AuthorizationV1Api(sandbox.api_client("cluster2")).create_subject_access_review(
        client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=READER, resource_attributes=client.V1ResourceAttributes(verb="list", resource="endpoints"))))
    assert sar.status.allowed is True


def test_istiod_of_cluster1_discovers_cluster2(sandbox, federated):
    def synced():
        text = json.dumps(debug(sandbox, "cluster1", "/debug/clusterz"))
        return "cluster2" in text
    wait_for(synced, timeout=60, what="cluster1's istiod to list cluster2 in /debug/clusterz")


def test_endpoints_of_a_cluster2_service_reach_cluster1s_istiod(sandbox, federated):
    ns = "meshfed-fed-test"
    c2 = sandbox.api_client("cluster2")
    core, apps = client.CoreV1Api(c2), client.AppsV1Api(c2)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        labels = {"app": "hello"}
        apps.create_namespaced_deployment(ns, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="hello"),
            spec=client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                                         template=client.V1PodTemplateSpec(
                                             metadata=client.V1ObjectMeta(labels=labels),
                                             spec=client.V1PodSpec(containers=[client.V1Container(
                                                 name="hello", image="example.invalid/hello")])))))
        core.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name="hello"),
            spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=5000, name="http")])))
        host = "hello.%s.svc.cluster.local" % ns

        def shard_of_cluster2():
            shards = debug(sandbox, "cluster1", "/debug/endpointShardz").get(host, {}).get(ns, {}).get("Shards", {})
            return [k for k, v in shards.items() if "cluster2" in k and v]
        assert wait_for(shard_of_cluster2, timeout=120, what="endpoints of %s in cluster1's istiod" % host)
    finally:
        core.delete_namespace(ns)


def test_second_run_and_check_mode_change_nothing(federated):
    rc, data, raw = playbook("federate_clusters.yml")
    assert rc == 0, raw[-3000:]
    assert changed_tasks(data) == []
    rc, data, raw = playbook("federate_clusters.yml", "--check", "--diff")
    assert rc == 0, raw[-3000:]
    assert changed_tasks(data) == []


def test_unreachable_remote_api_is_refused_before_writing(sandbox, federated, tmp_path):
    inv = InventoryCopy(tmp_path)
    try:
        path = inv.write(lambda g: g["hosts"]["cluster2"].update(mesh_api_server="https://127.0.0.1:1"))
        before = client.CoreV1Api(sandbox.api_client("cluster1")).read_namespaced_secret(
            "istio-remote-secret-cluster2", "istio-system").metadata.resource_version
        rc, data, raw = playbook("federate_clusters.yml", inventory=path)
        assert rc != 0
        # told in terms of the variable the user wrote, and of whose it is
        assert any(m.startswith("mesh_api_server of host cluster2: ") and "https://127.0.0.1:1 does not answer" in m
                   for m in failure_messages(data)), raw[-3000:]
        after = client.CoreV1Api(sandbox.api_client("cluster1")).read_namespaced_secret(
            "istio-remote-secret-cluster2", "istio-system").metadata.resource_version
        assert before == after
    finally:
        inv.remove()


def test_cluster_names_default_to_host_names(sandbox, federated, tmp_path):
    """Without mesh_cluster_name the host name is the cluster name: the secrets stay, a re-run is a no-op."""
    def drop_names(group):
        for host in group["hosts"].values():
            host.pop("mesh_cluster_name")
    inv = InventoryCopy(tmp_path)
    try:
        path = inv.write(drop_names)
        for expect_changes in (None, False):
            rc, data, raw = playbook("federate_clusters.yml", inventory=path)
            assert rc == 0, raw[-3000:]
            if expect_changes is False:
                assert changed_tasks(data) == []
        for target, source in (("cluster1", "cluster2"), ("cluster2", "cluster1")):
            client.CoreV1Api(sandbox.api_client(target)).read_namespaced_secret(
                "istio-remote-secret-" + source, "istio-system")
    finally:
        inv.remove()


def test_a_switch_to_token_requests_replaces_the_never_expiring_token(sandbox, federated):
    """token_mode secret -> request: the remote secrets get an expiring TokenRequest token
    (the switch used to report no change and keep the token Secret's), then a re-run changes
    nothing; back to secret mode restores the token Secret's."""
    def tokens():
        out = {}
        for target, source in (("cluster1", "cluster2"), ("cluster2", "cluster1")):
            secret = client.CoreV1Api(sandbox.api_client(target)).read_namespaced_secret(
                "istio-remote-secret-" + source, "istio-system")
            kubeconfig = yaml.safe_load(base64.b64decode(secret.data[source]))
            token = kubeconfig["users"][0]["user"]["token"]
            payload = token.split(".")[1]
            out[target] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return out

    assert all("exp" not in claims for claims in tokens().values())  # the token Secret's
    rc, data, raw = playbook("federate_clusters.yml", "-e", "federate_clusters_token_mode=request")
    assert rc == 0 and changed_tasks(data), raw[-3000:]
    assert all("exp" in claims for claims in tokens().values())
    rc, data, raw = playbook("federate_clusters.yml", "-e", "federate_clusters_token_mode=request")
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data)
    # a new lifetime re-issues the tokens: the API server's new tokens live that long; then no change
    # (8 days: a lifetime within remote_secret's renew_before, 7 days, would be renewed at every run)
    lifetime = ["-e", "federate_clusters_token_mode=request", "-e", "federate_clusters_token_expiration=691200"]
    rc, data, raw = playbook("federate_clusters.yml", *lifetime)
    assert rc == 0 and changed_tasks(data), raw[-3000:]
    assert all(claims["exp"] - claims["iat"] == 691200 for claims in tokens().values()), tokens()
    rc, data, raw = playbook("federate_clusters.yml", *lifetime)
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data)
    rc, data, raw = playbook("federate_clusters.yml")
    assert rc == 0, raw[-3000:]
    assert all("exp" not in claims for claims in tokens().values())
    test_remote_secret_kubeconfig_reads_the_other_cluster(sandbox, federated)
