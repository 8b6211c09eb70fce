# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/deploy_samples.yml against the sandbox: Istio's samples from the pinned Istio source
(.sandbox/istio, as a release directory), on the seeds' placement, their pods given their
istio-proxy and istio-init by the real istiod's injection webhook; four passes; istioctl
analyze; bad input refused before any change; absent leaves nothing of theirs behind."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from kubernetes import client
from playbook_runner import REPO_ROOT, InventoryCopy, changed_tasks, failure_messages, playbook
from sandbox_helpers import wait_for

pytestmark = pytest.mark.sandbox
OWNER = "meshfed.istio/owner=deploy-samples"
ISTIOCTL = os.path.join(REPO_ROOT, ".sandbox", "bin", "istioctl")
# the seeds: cluster -> {namespace: Deployments}
SEEDS = {
    "cluster1": {"foo": ["curl"], "sample": ["curl", "helloworld-v1"],
                 "bookinfo": ["details-v1", "productpage-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"]},
    "cluster2": {"bar": ["httpbin"], "sample": ["curl", "helloworld-v2"]},
}
# the seeds' placement of cluster2, written out
SEEDS_PLACEMENT_2 = [{"app": "httpbin", "namespace": "bar"},
                     {"app": "helloworld", "namespace": "sample", "versions": ["v2"]},
                     {"app": "curl", "namespace": "sample"}]


def deploy(*args):
    return playbook("deploy_samples.yml", *args)


def owned(api, kind):
    if kind == "Deployment":
        items = client.AppsV1Api(api).list_deployment_for_all_namespaces(label_selector=OWNER).items
    elif kind == "Namespace":
        items = client.CoreV1Api(api).list_namespace(label_selector=OWNER).items
    else:
        items = getattr(client.CoreV1Api(api), "list_%s_for_all_namespaces" % kind)(label_selector=OWNER).items
    return sorted("%s/%s" % (i.metadata.namespace, i.metadata.name) if i.metadata.namespace else i.metadata.name
                  for i in items)


@pytest.fixture(scope="module")
def mesh(sandbox_istiod):
    """Istio installed on every cluster (its injection webhook), the samples not deployed."""
    sb = sandbox_istiod
    rc, data, raw = playbook("install_istio.yml")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    # federated, so each primary's istiod merges the other cluster's helloworld endpoints
    rc, data, raw = playbook("federate_clusters.yml")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    rc, data, raw = deploy("-e", "deploy_samples_state=absent")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    yield sb
    deploy("-e", "deploy_samples_state=absent")


def test_check_mode_on_clusters_without_samples_writes_nothing(mesh):
    rc, data, raw = deploy("--check")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    assert changed_tasks(data), "check mode predicts the samples"
    for name in mesh.clusters:
        assert owned(mesh.api_client(name), "Deployment") == []


def test_four_passes_and_the_real_istiod_injects_every_sample_pod(mesh):
    t0 = time.monotonic()
    rc, data, raw = deploy()
    first = time.monotonic() - t0
    assert rc == 0, failure_messages(data) or raw[-4000:]
    assert changed_tasks(data)
    for name, namespaces in SEEDS.items():
        api = mesh.api_client(name)
        assert owned(api, "Deployment") == sorted("%s/%s" % (ns, d) for ns, ds in namespaces.items() for d in ds)
        core = client.CoreV1Api(api)
        for ns in namespaces:
            assert core.read_namespace(ns).metadata.labels.get("istio-injection") == "enabled"
            pods = wait_for(lambda ns=ns, core=core: [p for p in core.list_namespaced_pod(ns).items
                                                      if p.status.phase == "Running"] or None,
                            timeout=60, what="Running pods in %s/%s" % (name, ns))
            for pod in pods:
                containers = [c.name for c in pod.spec.containers]
                inits = [c.name for c in pod.spec.init_containers or []]
                # istio-proxy: a container, or a native sidecar (an init container that keeps running)
                assert "istio-proxy" in containers + inits, "%s/%s: %s %s" % (ns, pod.metadata.name, containers, inits)
                assert "istio-init" in inits, "%s/%s: %s" % (ns, pod.metadata.name, inits)
                proxy = [c for c in pod.spec.containers + (pod.spec.init_containers or []) if c.name == "istio-proxy"][0]
                # what the real istiod's template writes: its own cluster's ID and the mesh's proxy image
                env = dict((e.name, e.value) for e in proxy.env or [])
                assert env.get("ISTIO_META_CLUSTER_ID") == name, env.get("ISTIO_META_CLUSTER_ID")
    # the second pass: the placement changes (helloworld v2 joins v1 on cluster1): only that changes
    placement = {"cluster1": ["curl", {"app": "helloworld", "namespace": "sample", "versions": ["v1", "v2"]},
                              {"app": "curl", "namespace": "sample"}, "bookinfo"],
                 "cluster2": SEEDS_PLACEMENT_2}
    rc, data, raw = deploy("-e", json.dumps({"deploy_samples_placement": placement}))
    assert rc == 0, failure_messages(data) or raw[-4000:]
    assert "sample/helloworld-v2" in owned(mesh.api_client("cluster1"), "Deployment")
    # curl moved from foo (seeds) to the default namespace curl: foo's curl was pruned
    assert "foo/curl" not in owned(mesh.api_client("cluster1"), "Deployment")
    t0 = time.monotonic()
    rc, data, raw = deploy("-e", json.dumps({"deploy_samples_placement": placement}))
    noop = time.monotonic() - t0
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data) or raw[-4000:]
    rc, data, raw = deploy("--check", "-e", json.dumps({"deploy_samples_placement": placement}))
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data) or raw[-4000:]
    print("deploy_samples: first %.1f s, no-op %.1f s" % (first, noop))
    # back to the seeds for the next tests
    rc, data, raw = deploy()
    assert rc == 0, failure_messages(data) or raw[-4000:]


def test_istioctl_analyze_finds_no_error_in_the_sample_namespaces(mesh):
    for name, namespaces in SEEDS.items():
        for ns in namespaces:
            res = subprocess.run([ISTIOCTL, "analyze", "--kubeconfig", mesh.kubeconfig, "--context", name, "-n", ns,
                                  "--failure-threshold", "Error", "--output", "json"],
                                 capture_output=True, text=True, timeout=120, check=False)
            assert res.returncode == 0, "%s/%s: %s %s" % (name, ns, res.stdout[-2000:], res.stderr[-2000:])
            errors = [m for m in json.loads(res.stdout or "[]") if m.get("level") == "Error"]
            assert errors == [], errors


def test_bookinfo_is_served_for_the_ingress_host(mesh):
    api = mesh.api_client("cluster1")
    vs = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "networking.istio.io", "v1", "bookinfo", "virtualservices", "bookinfo")
    assert vs["spec"]["hosts"] == ["bookinfo.example.com"] and vs["spec"]["gateways"] == ["bookinfo-gateway"]
    gw = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "networking.istio.io", "v1", "bookinfo", "gateways", "bookinfo-gateway")
    assert [s["hosts"] for s in gw["spec"]["servers"]] == [["bookinfo.example.com"]]


def task_result(data, host, name):
    """The result of the role's task ``name`` on ``host``."""
    for play in data.get("plays", []):
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ", 1)[-1] == name and host in task["hosts"]:
                return task["hosts"][host]
    raise AssertionError("no task %r on %s" % (name, host))


TRAFFIC_TASK = "Traffic stages of the samples (DestinationRule subsets, VirtualService routes)"


def reviews_routes(api):
    vs = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "networking.istio.io", "v1", "bookinfo", "virtualservices", "reviews")
    return [(r.get("match"), sorted((d["destination"]["subset"], d.get("weight")) for d in r["route"]))
            for r in vs["spec"]["http"]]


NETWORKS = {"cluster1": "network1", "cluster2": "network2"}  # inventories/sandbox


def sidecar_routes(sb, cluster, namespace, host, port):
    """What cluster's real istiod sends a sidecar of ``namespace`` (read over its xDS port, as
    verify_mesh does) for ``host:port``: [(header matches or None, [(subset, weight)])], in
    route order; None while the proxy has no route for that host."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import xds
    from tools.sandbox.versions import ISTIO_VERSION

    snap = xds.fetch("127.0.0.1:%d" % sb.istiod_ports[cluster]["grpc"], "sidecar", cluster, namespace,
                     NETWORKS[cluster], "mesh1", ISTIO_VERSION, timeout=20)
    rc = snap["routes"].get(str(port)) or {}
    for vh in rc.get("virtual_hosts", []):
        if vh["name"] == "%s:%d" % (host, port):
            # outbound|9080|v2|reviews.bookinfo.svc.cluster.local -> v2
            return [(r["header_match"] or None, sorted((c.split("|")[2], w) for c, w in r["clusters"]))
                    for r in vh["routes"]]
    return None


def subset_endpoints(sb, cluster, namespace, host, port, subset):
    """(address, port) of the endpoints cluster's istiod sends a sidecar of ``namespace`` for one
    subset of host:port (Envoy cluster outbound|port|subset|host)."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import xds
    from tools.sandbox.versions import ISTIO_VERSION

    snap = xds.fetch("127.0.0.1:%d" % sb.istiod_ports[cluster]["grpc"], "sidecar", cluster, namespace,
                     NETWORKS[cluster], "mesh1", ISTIO_VERSION, timeout=20, routes=False)
    name = "outbound|%d|%s|%s" % (port, subset, host)
    # an EDS cluster's endpoints come by EDS; a DNS one's (a .global host) are in the cluster itself
    found = (snap["clusters"].get(name) or {}).get("endpoints") or snap["endpoints"].get(name) or []
    return sorted((e["address"], e["port"]) for e in found)


def gateway_endpoints(sb, cluster, sni):
    """(address, port) of what cluster's east-west gateway sends a connection with ``sni`` to (its
    istiod's xDS for the gateway: the SNI cluster of its AUTO_PASSTHROUGH port)."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import xds
    from tools.sandbox.versions import ISTIO_VERSION

    snap = xds.fetch("127.0.0.1:%d" % sb.istiod_ports[cluster]["grpc"], "router", cluster, "istio-system",
                     NETWORKS[cluster], "mesh1", ISTIO_VERSION, timeout=20, routes=False)
    found = (snap["clusters"].get(sni) or {}).get("endpoints") or snap["endpoints"].get(sni) or []
    return sorted((e["address"], e["port"]) for e in found)


def eastwest_address(sb, cluster):
    """The address other networks reach cluster's east-west gateway at: the inventory's
    mesh_gateway_address (cluster1), else its LoadBalancer address (what install_istio records)."""
    if cluster == "cluster1":
        return "127.0.0.11"  # inventories/sandbox: mesh_gateway_address
    svc = client.CoreV1Api(sb.api_client(cluster)).read_namespaced_service("istio-eastwestgateway", "istio-system")
    return svc.status.load_balancer.ingress[0].ip


def wait_for_routes(sb, cluster, namespace, host, port, expected, what):
    """Poll istiod's xDS until the sidecar's routes for host:port are ``expected`` (istiod pushes
    a changed VirtualService after its debounce); fail with what it sent last."""
    seen = []

    def current():
        seen[:] = [sidecar_routes(sb, cluster, namespace, host, port)]
        return seen[0] == expected

    try:
        wait_for(current, timeout=30, interval=1, what=what)
    except AssertionError as e:
        raise AssertionError("%s; istiod of %s last sent %r" % (e, cluster, seen and seen[0]))


REVIEWS = "reviews.bookinfo.svc.cluster.local"
HELLOWORLD = "helloworld.sample.svc.cluster.local"


def test_traffic_stages_change_only_the_routes(mesh):
    api = mesh.api_client("cluster1")
    expected = {
        "all-v1": [(None, [("v1", None)])],
        "v2-10": [(None, [("v1", 90), ("v2", 10)])],
        "v2-v3-50": [(None, [("v2", 50), ("v3", 50)])],
        "all-v3": [(None, [("v3", None)])],
        "jason": [([{"headers": {"end-user": {"exact": "jason"}}}], [("v2", None)]), (None, [("v3", None)])],
    }
    for i, (stage, routes) in enumerate(expected.items()):
        extra = json.dumps({"deploy_samples_traffic": {"bookinfo-reviews": stage}})
        rc, data, raw = deploy("-e", extra)
        assert rc == 0, failure_messages(data) or raw[-4000:]
        assert reviews_routes(api) == routes, stage
        # the data plane: what cluster1's istiod sends a bookinfo sidecar for reviews:9080 (a route
        # with one destination is weight 100 there)
        xds_routes = [(m and m[0]["headers"], [(s, 100 if w is None else w) for s, w in dests]) for m, dests in routes]
        wait_for_routes(mesh, "cluster1", "bookinfo", REVIEWS, 9080, xds_routes, "stage %s in xDS" % stage)
        result = task_result(data, "cluster1", TRAFFIC_TASK)
        if i == 0:
            assert "DestinationRule bookinfo/reviews" in result["unchanged"] + result["created"]
        else:
            assert result["updated"] == ["VirtualService bookinfo/reviews"], (stage, result["updated"])
        # after the first stage only the traffic task changes, and a second run changes nothing
        if i > 0:
            assert [t for t in changed_tasks(data) if TRAFFIC_TASK not in t] == [], changed_tasks(data)
        rc, data, raw = deploy("-e", extra)
        assert rc == 0 and changed_tasks(data) == [], (stage, changed_tasks(data))
    dr = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "networking.istio.io", "v1", "bookinfo", "destinationrules", "reviews")
    assert sorted((s["name"], s["labels"]) for s in dr["spec"]["subsets"]) == [
        ("v1", {"version": "v1"}), ("v2", {"version": "v2"}), ("v3", {"version": "v3"})]
    # helloworld across clusters (multi-primary): the same weights on both primaries, v1 here and v2 there
    rc, data, raw = deploy("-e", json.dumps({"deploy_samples_traffic": {"helloworld": "v2-50"}}))
    assert rc == 0, failure_messages(data) or raw[-4000:]
    for name in mesh.clusters:
        vs = client.CustomObjectsApi(mesh.api_client(name)).get_namespaced_custom_object(
            "networking.istio.io", "v1", "sample", "virtualservices", "helloworld")
        assert sorted((d["destination"]["subset"], d["weight"]) for d in vs["spec"]["http"][0]["route"]) == [
            ("v1", 50), ("v2", 50)], name
        # each primary's istiod sends its sample sidecars the split over the merged endpoints' subsets
        wait_for_routes(mesh, name, "sample", HELLOWORLD, 5000, [(None, [("v1", 50), ("v2", 50)])],
                        "helloworld 50/50 in %s's xDS" % name)
    # ... over the merged endpoints: each subset holds its own cluster's pod, and the other
    # cluster's version is reached through the other network's east-west gateway (15443)
    pods = {}
    for name in mesh.clusters:
        items = client.CoreV1Api(mesh.api_client(name)).list_namespaced_pod("sample", label_selector="app=helloworld").items
        pods[name] = sorted((p.status.pod_ip, 5000) for p in items if p.status.pod_ip)
    local = {"cluster1": "v1", "cluster2": "v2"}
    for name in mesh.clusters:
        other = [c for c in mesh.clusters if c != name][0]
        assert subset_endpoints(mesh, name, "sample", HELLOWORLD, 5000, local[name]) == pods[name], name
        assert subset_endpoints(mesh, name, "sample", HELLOWORLD, 5000, local[other]) == [
            (eastwest_address(mesh, other), 15443)], name
    # bookinfo-reviews no longer listed: its objects are pruned
    with pytest.raises(client.exceptions.ApiException):
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            "networking.istio.io", "v1", "bookinfo", "virtualservices", "reviews")
    rc, data, raw = deploy("-e", json.dumps({"deploy_samples_traffic": {"bookinfo-reviews": "all-v3"}}),
                           "-e", json.dumps({"deploy_samples_placement": {"cluster1": [
                               {"app": "bookinfo", "versions": ["v1", "v2"]}]}}))
    assert rc != 0 and changed_tasks(data) == []
    assert any("deploy_samples_traffic.bookinfo-reviews: stage all-v3 routes to v3, which no cluster runs" in m
               for m in failure_messages(data)), failure_messages(data)
    rc, data, raw = deploy()
    assert rc == 0, failure_messages(data) or raw[-4000:]


GLOBAL_TASK = "ServiceEntries, VIPs, DestinationRules, VirtualServices and the *.global gateway of this cluster"
HTTPBIN_GLOBAL = "httpbin.bar.global"


def global_objects(api, kind):
    """cluster's objects of ``kind`` (destinationrules, virtualservices) for httpbin.bar.global."""
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "networking.istio.io", "v1", "istio-system", kind)["items"]
    return [o for o in items if HTTPBIN_GLOBAL in ([o["spec"].get("host")] + (o["spec"].get("hosts") or []))]


def test_the_global_httpbin_stage_is_routed_by_the_federation(mesh, tmp_path_factory):
    """The .global seed: httpbin v1 and v2 in bar on cluster2, exported; deploy_samples_traffic's
    httpbin-global stage becomes the federation's route of httpbin.bar.global in cluster1, and
    cluster1's istiod sends its sidecars that split over the subsets at cluster2's gateway."""
    inv = InventoryCopy(tmp_path_factory.mktemp("samples-global"))

    def mutate(group):
        group["vars"]["federate_clusters_mode"] = "service_entry"
        group["vars"]["deploy_samples_placement"] = {
            "cluster1": [{"app": "curl", "namespace": "foo"}],
            "cluster2": [{"app": "httpbin", "namespace": "bar", "versions": ["v1", "v2"]}]}
        group["hosts"]["cluster2"]["mesh_exports"] = [{"namespace": "bar", "names": ["httpbin"]}]
    path = inv.write(mutate)
    api1 = mesh.api_client("cluster1")
    try:
        # site.yml's order: the samples, then the federation that exports them
        rc, data, raw = playbook("deploy_samples.yml", inventory=path)
        assert rc == 0, failure_messages(data) or raw[-4000:]
        rc, data, raw = playbook("federate_clusters.yml", inventory=path)
        assert rc == 0, failure_messages(data) or raw[-4000:]
        [dr] = global_objects(api1, "destinationrules")
        assert sorted(s["name"] for s in dr["spec"]["subsets"]) == ["v1", "v2"]
        assert global_objects(api1, "virtualservices") == []  # no stage chosen: no route
        gateway = eastwest_address(mesh, "cluster2")
        for subset in ("v1", "v2"):
            assert subset_endpoints(mesh, "cluster1", "foo", HTTPBIN_GLOBAL, 8000, subset) == [(gateway, 15443)], subset
            # ... where cluster2's gateway sends that subset's SNI to that version's pods only (the
            # federation's Service of the label set)
            assert gateway_endpoints(mesh, "cluster2", "outbound_.8000_.%s_.%s" % (subset, HTTPBIN_GLOBAL)) == [
                ("global-httpbin-%s.bar.svc.cluster.local" % subset, 8000)], subset
        expected = {"all-v1": [("v1", 100)], "v2-10": [("v1", 90), ("v2", 10)], "all-v2": [("v2", 100)]}
        for stage, weights in expected.items():
            extra = json.dumps({"deploy_samples_traffic": {"httpbin-global": stage}})
            rc, data, raw = playbook("deploy_samples.yml", "-e", extra, inventory=path)
            assert rc == 0, failure_messages(data) or raw[-4000:]
            # only the federation's task changes, on both clusters: each has the host (cluster1 imports it,
            # cluster2 exports it) and its VirtualService
            assert changed_tasks(data) == ["meshfed.istio.federate_clusters : %s on %s" % (GLOBAL_TASK, c)
                                           for c in ("cluster1", "cluster2")], (stage, changed_tasks(data))
            [vs] = global_objects(api1, "virtualservices")
            assert [sorted((d["destination"]["subset"], d.get("weight", 100)) for d in r["route"])
                    for r in vs["spec"]["http"]] == [weights], stage
            assert global_objects(api1, "destinationrules") == [dr], "the DestinationRule stays as it was"
            port = "%s:8000" % HTTPBIN_GLOBAL
            wait_for_routes(mesh, "cluster1", "foo", HTTPBIN_GLOBAL, 8000, [(None, weights)], "%s at %s in xDS" % (port, stage))
            rc, data, raw = playbook("deploy_samples.yml", "-e", extra, inventory=path)
            assert rc == 0 and changed_tasks(data) == [], (stage, changed_tasks(data))
            rc, data, raw = playbook("federate_clusters.yml", "-e", extra, inventory=path)
            assert rc == 0 and changed_tasks(data) == [], (stage, changed_tasks(data))
        # a stage routing to a version that runs nowhere, or without the federation's mode, is refused
        rc, data, raw = deploy("-e", json.dumps({"deploy_samples_traffic": {"httpbin-global": "all-v1"}}))
        assert rc != 0 and changed_tasks(data) == []
        assert any("httpbin.bar.global is made by the federation in federate_clusters_mode service_entry only; "
                   "cluster1 has multi_primary" in m for m in failure_messages(data)), failure_messages(data)
    finally:
        inv.remove()
        # back to the seeds on the multi-primary mesh of the sandbox inventory
        rc, data, raw = deploy()
        assert rc == 0, failure_messages(data) or raw[-4000:]
        rc, data, raw = playbook("federate_clusters.yml")
        assert rc == 0, failure_messages(data) or raw[-4000:]
    assert global_objects(api1, "virtualservices") == [] and global_objects(api1, "destinationrules") == []


def test_addons_kiali_sees_the_other_cluster_and_a_rerun_changes_nothing(mesh):
    rc, data, raw = deploy("-e", "deploy_samples_addons=true")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    apps = client.AppsV1Api(mesh.api_client("cluster1"))
    kiali = apps.read_namespaced_deployment("kiali", "istio-system")
    volumes = [v.secret.secret_name for v in kiali.spec.template.spec.volumes or [] if v.secret]
    assert "kiali-remote-cluster-secret-cluster2" in volumes, volumes
    for name in ("prometheus", "grafana", "jaeger"):
        apps.read_namespaced_deployment(name, "istio-system")
    # cluster2 runs its own Prometheus only
    names2 = [d.metadata.name for d in client.AppsV1Api(mesh.api_client("cluster2")).list_namespaced_deployment(
        "istio-system", label_selector="meshfed.istio/owner=deploy-samples-addons").items]
    assert names2 == ["prometheus"]
    generation = kiali.metadata.generation
    rc, data, raw = deploy("-e", "deploy_samples_addons=true")
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data) or raw[-4000:]
    assert apps.read_namespaced_deployment("kiali", "istio-system").metadata.generation == generation
    rc, data, raw = deploy("-e", "deploy_samples_addons=true", "-e", "deploy_samples_state=absent")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    for name in mesh.clusters:
        assert client.AppsV1Api(mesh.api_client(name)).list_namespaced_deployment(
            "istio-system", label_selector="meshfed.istio/owner=deploy-samples-addons").items == []
    rc, data, raw = deploy()
    assert rc == 0, failure_messages(data) or raw[-4000:]


@pytest.mark.parametrize("extra, expect", [
    ({"deploy_samples_placement": {"cluster1": ["nginx"]}},
     "deploy_samples_placement.cluster1[0].app: 'nginx' is not a sample this role deploys"),
    ({"deploy_samples_placement": {"cluster9": ["curl"]}},
     "deploy_samples_placement.cluster9: cluster9 is not a host of mesh_clusters (cluster1, cluster2)"),
    ({"deploy_samples_placement": {"cluster1": [{"app": "helloworld", "versions": ["v3"]}]}},
     "deploy_samples_placement.cluster1[0].versions: v3 is not a version of helloworld"),
    ({"deploy_samples_istio_dir": "/nonexistent/istio-1.31"},
     "deploy_samples_istio_dir: /nonexistent/istio-1.31 is not an Istio release directory"),
])
def test_bad_input_is_refused_before_any_change(mesh, extra, expect):
    before = dict((name, owned(mesh.api_client(name), "Deployment")) for name in mesh.clusters)
    rc, data, raw = deploy("-e", json.dumps(dict(extra, deploy_samples_state="present")))
    assert rc != 0
    assert any(expect in m for m in failure_messages(data)), failure_messages(data) or raw[-3000:]
    assert changed_tasks(data) == []
    assert before == dict((name, owned(mesh.api_client(name), "Deployment")) for name in mesh.clusters)


def test_absent_leaves_no_sample_object_behind(mesh):
    core = client.CoreV1Api(mesh.api_client("cluster1"))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="samples-keep")))
    try:
        rc, data, raw = deploy("-e", json.dumps({"deploy_samples_placement": {
            "cluster1": [{"app": "httpbin", "namespace": "samples-keep"}]}}))
        assert rc == 0, failure_messages(data) or raw[-4000:]
        # a namespace that existed before is only labelled, and stays
        assert core.read_namespace("samples-keep").metadata.labels.get("istio-injection") == "enabled"
        rc, data, raw = deploy("-e", "deploy_samples_state=absent")
        assert rc == 0, failure_messages(data) or raw[-4000:]
        for name in mesh.clusters:
            api = mesh.api_client(name)
            for kind in ("Deployment", "service", "service_account"):
                assert owned(api, kind) == [], (name, kind)
            wait_for(lambda api=api: owned(api, "Namespace") == [] or None, timeout=120,
                     what="the samples' namespaces on %s to be gone" % name)
        assert core.read_namespace("samples-keep").status.phase == "Active"
        rc, data, raw = deploy("-e", "deploy_samples_state=absent")
        assert rc == 0 and changed_tasks(data) == [], changed_tasks(data)
    finally:
        core.delete_namespace("samples-keep")
