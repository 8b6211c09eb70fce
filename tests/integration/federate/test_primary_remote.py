# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Primary-remote: cluster2 runs no istiod and uses cluster1's (install_istio, then
federate_clusters in primary_remote mode), against the sandbox and its real istiods."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from playbook_runner import InventoryCopy, changed_tasks, failure_messages, playbook
from sandbox_helpers import wait_for

pytestmark = pytest.mark.sandbox
# the API server refuses loopback addresses in the remote's istiod EndpointSlice, and the
# sandbox's gateway addresses are loopback ones: a documentation address stands for
# cluster1's istiod as remote proxies would reach it (nothing in the sandbox dials it)
ISTIOD_ADDRESS = "192.0.2.11"


def primary_remote(group):
    group["vars"]["federate_clusters_mode"] = "primary_remote"
    group["hosts"]["cluster1"]["mesh_istiod_address"] = ISTIOD_ADDRESS
    group["hosts"]["cluster2"]["mesh_cluster_role"] = "remote"


def debug(sandbox, cluster, path):
    port = sandbox.istiod_ports[cluster]["monitoring"]
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return json.loads(r.read().decode())


def purge_cluster2(path):
    rc, data, raw = playbook("install_istio.yml", "--limit", "cluster2", "-e", "install_istio_state=absent",
                             inventory=path)
    assert rc == 0, raw[-3000:]


@pytest.fixture(scope="module")
def remote(sandbox_istiod, tmp_path_factory):
    inv = InventoryCopy(tmp_path_factory.mktemp("primary_remote"))
    path = inv.write(primary_remote)
    # a remote runs no istiod: stop the sandbox's out-of-cluster one of cluster2 too.  Kept, it would
    # switch the remote's validation webhook to failurePolicy Fail (it found its webhook reachable through
    # the sandbox's ClusterIP relay while cluster2 was a primary, and keeps that for its lifetime), and
    # the remote's selector-less Service istiod, which that webhook calls, reaches no istiod here
    sandbox_istiod.run("istiod", "--stop", "--cluster", "cluster2")
    try:
        purge_cluster2(path)  # cluster2 was a primary in the tests before
        rc, install, raw = playbook("install_istio.yml", inventory=path)
        assert rc == 0, raw[-4000:]
        rc, federate, raw = playbook("federate_clusters.yml", inventory=path)
        assert rc == 0, raw[-4000:]
        yield {"path": path, "install": install, "federate": federate}
        # back to two primaries for whatever runs next
        purge_cluster2(path)
    finally:
        inv.remove()
        sandbox_istiod.run("istiod", "--cluster", "cluster2")
    for name in ("install_istio.yml", "federate_clusters.yml"):
        rc, data, raw = playbook(name)
        assert rc == 0, raw[-4000:]


def test_remote_runs_no_istiod_and_points_at_the_primarys(sandbox, remote):
    api = sandbox.api_client("cluster2")
    deployments = [d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment("istio-system").items]
    assert not [d for d in deployments if d.startswith("istiod")], deployments
    assert "istio-eastwestgateway" in deployments  # cluster2 is on its own network
    ns = client.CoreV1Api(api).read_namespace("istio-system")
    assert ns.metadata.annotations["topology.istio.io/controlPlaneClusters"] == "cluster1"
    # the Service istiod of the remote is cluster1's istiod, as remote proxies and webhooks reach it
    slice_ = client.DiscoveryV1Api(api).read_namespaced_endpoint_slice("istiod", "istio-system")
    assert [a for e in slice_.endpoints for a in e.addresses] == [ISTIOD_ADDRESS]
    hook = client.AdmissionregistrationV1Api(api).read_mutating_webhook_configuration("istio-sidecar-injector")
    paths = set(w.client_config.service.path for w in hook.webhooks)
    assert paths == {"/inject/cluster/cluster2/net/network2"}
    info = client.CoreV1Api(api).read_namespaced_config_map("meshfed-cluster-info", "istio-system").data
    assert info["clusterRole"] == "remote" and info["controlPlaneCluster"] == "cluster1"


def test_primary_serves_remotes(sandbox, remote):
    api = sandbox.api_client("cluster1")
    istiod = client.AppsV1Api(api).read_namespaced_deployment("istiod", "istio-system")
    env = dict((e.name, e.value) for e in istiod.spec.template.spec.containers[0].env or [])
    assert env.get("EXTERNAL_ISTIOD") == "true"
    co = client.CustomObjectsApi(api)
    gw = co.get_namespaced_custom_object("networking.istio.io", "v1", "istio-system", "gateways", "istiod-gateway")
    assert sorted(s["port"]["number"] for s in gw["spec"]["servers"]) == [15012, 15017]
    assert co.get_namespaced_custom_object("networking.istio.io", "v1", "istio-system", "virtualservices", "istiod-vs")


def test_only_the_primary_holds_a_remote_secret(sandbox, remote):
    secret = client.CoreV1Api(sandbox.api_client("cluster1")).read_namespaced_secret(
        "istio-remote-secret-cluster2", "istio-system")
    assert secret.metadata.annotations["networking.istio.io/cluster"] == "cluster2"
    # the multi-primary tests left cluster1's secret in cluster2: a remote discovers nothing
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(sandbox.api_client("cluster2")).read_namespaced_secret(
            "istio-remote-secret-cluster1", "istio-system")
    assert e.value.status == 404


def test_primarys_istiod_discovers_the_remote(sandbox, remote):
    def listed():
        return "cluster2" in json.dumps(debug(sandbox, "cluster1", "/debug/clusterz"))
    assert wait_for(listed, timeout=60, what="cluster1's istiod to list cluster2 in /debug/clusterz")


def test_second_run_changes_nothing(remote):
    for name in ("install_istio.yml", "federate_clusters.yml"):
        rc, data, raw = playbook(name, inventory=remote["path"])
        assert rc == 0, raw[-3000:]
        assert changed_tasks(data) == [], name


@pytest.mark.parametrize("args, message", [
    (["--limit", "cluster2"], "host cluster2 is a remote cluster; this play has no primary cluster for it"),
    (["--limit", "cluster2", "-e", "mesh_primary=cluster1"],
     "host cluster2 is a remote cluster; its primary cluster1 must be a host of this play"),
])
def test_remote_without_primary_in_the_play_is_refused(remote, args, message):
    rc, data, raw = playbook("install_istio.yml", *args, inventory=remote["path"])
    assert rc != 0
    assert any(message in m for m in failure_messages(data)), (message, failure_messages(data))


def test_remote_cluster_needs_primary_remote_mode(remote, tmp_path):
    inv = InventoryCopy(tmp_path)
    try:
        path = inv.write(lambda g: (primary_remote(g), g["vars"].update(federate_clusters_mode="multi_primary")))
        rc, data, raw = playbook("federate_clusters.yml", inventory=path)
        assert rc != 0
        assert any("host cluster2: federate_clusters_mode: a remote cluster (mesh_cluster_role remote) runs no istiod "
                   "and needs primary_remote, got multi_primary" in m
                   for m in failure_messages(data)), raw[-3000:]
    finally:
        inv.remove()


def test_uninstalling_the_remote_leaves_nothing_of_it_in_the_primary(sandbox, remote):
    # runs last: the remote is uninstalled (the fixture's teardown then finds nothing to do)
    purge_cluster2(remote["path"])
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(sandbox.api_client("cluster1")).read_namespaced_secret(
            "istio-remote-secret-cluster2", "istio-system")
    assert e.value.status == 404
    ns = client.CoreV1Api(sandbox.api_client("cluster2")).read_namespace("istio-system")
    assert "topology.istio.io/controlPlaneClusters" not in (ns.metadata.annotations or {})
