# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/verify_mesh.yml on the multi-primary, two-network sandbox mesh: every check of a
healthy mesh passes and the picture shows every cluster; then one fault at a time, and the
report names the broken link in plain words while the rest of the mesh is still reported.

The workloads are kwok pods: they carry the label sidecar injection gives a pod
(security.istio.io/tlsMode: istio), set here by hand, as the sandbox does not inject yet.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import xml.etree.ElementTree as ET

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from playbook_runner import InventoryCopy, failure_messages, module, playbook
from sandbox_helpers import api_server_pid, gateway_of, wait_for

from tools.sandbox import cluster as sandbox_cluster

pytestmark = pytest.mark.sandbox
NS = "meshfed-verify-sample"
HOST = "helloworld.%s.svc.cluster.local" % NS
SNI = "outbound_.5000_._.%s" % HOST


# --- helpers ---------------------------------------------------------------------------------------


def deploy(api, name, version, port=5000, ns=NS, replicas=1):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    except ApiException as e:
        assert e.status == 409
    labels = {"app": name, "version": version}
    pod_labels = dict(labels, **{"security.istio.io/tlsMode": "istio"})
    apps.create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="%s-%s" % (name, version)),
        spec=client.V1DeploymentSpec(replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
                                     template=client.V1PodTemplateSpec(
                                         metadata=client.V1ObjectMeta(labels=pod_labels),
                                         spec=client.V1PodSpec(containers=[client.V1Container(
                                             name=name, image="example.invalid/%s-%s" % (name, version))])))))
    try:
        core.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
            spec=client.V1ServiceSpec(selector={"app": name},
                                      ports=[client.V1ServicePort(port=port, name="http", target_port=port)])))
    except ApiException as e:
        assert e.status == 409


def delete_namespace(api, ns=NS):
    core = client.CoreV1Api(api)
    try:
        core.delete_namespace(ns)
    except ApiException as e:
        assert e.status == 404

    def gone():
        try:
            core.read_namespace(ns)
        except ApiException as e:
            return e.status == 404
        return False
    wait_for(gone, timeout=120, what="namespace %s to be deleted" % ns)


def verify(tmp_path, *args):
    """Run verify_mesh.yml with its report in tmp_path: (rc, result document, failure message lines, raw)."""
    rc, data, raw = playbook("verify_mesh.yml", "-e", "verify_mesh_report_dir=%s" % tmp_path, *args)
    path = tmp_path / "mesh-verify.json"
    assert path.exists(), raw[-3000:]
    return rc, json.loads(path.read_text()), message_lines(failure_messages(data)), raw


def message_lines(msgs):
    """The failed tasks' messages, a list message (the assert's) as its lines."""
    out = []
    for m in msgs:
        out.extend(m if isinstance(m, list) else [m])
    return out


def statuses(doc, **match):
    return [c["status"] for c in doc["checks"] if all(c.get(k) == v for k, v in match.items())]


def reasons(doc, status="fail"):
    return [c["reason"] for c in doc["checks"] if c["status"] == status]


def networkz(sandbox, cluster):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/debug/networkz" % sandbox.istiod_ports[cluster]["monitoring"]) as r:
        return json.loads(r.read() or b"null") or []


def mesh_networks(api):
    return client.CoreV1Api(api).read_namespaced_config_map("istio", "istio-system").data["meshNetworks"]


def set_mesh_networks(api, text):
    client.CoreV1Api(api).patch_namespaced_config_map("istio", "istio-system", {"data": {"meshNetworks": text}})


def healthy(doc):
    """Every check passed, except the ones that cannot run in the sandbox (said why)."""
    bad = [c for c in doc["checks"] if c["status"] not in ("pass", "not_run")]
    not_run = [c for c in doc["checks"] if c["status"] == "not_run"]
    assert not bad, bad
    assert {c["kind"] for c in not_run} <= {"live_probe", "webhook"}, not_run
    assert all(c["reason"].startswith("not run: ") for c in not_run), not_run


# --- the healthy mesh ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh(sandbox_istiod):
    sb = sandbox_istiod
    rc, data, raw = playbook("site.yml", "--skip-tags", "verify_mesh")
    assert rc == 0, raw[-4000:]
    apis = {c: sb.api_client(c) for c in sb.clusters}
    for c in sb.clusters:
        delete_namespace(apis[c])
    deploy(apis["cluster1"], "helloworld", "v1")
    deploy(apis["cluster2"], "helloworld", "v2")

    def both_known():
        import urllib.request
        out = True
        for c in ("cluster1", "cluster2"):
            url = "http://127.0.0.1:%d/debug/endpointShardz" % sb.istiod_ports[c]["monitoring"]
            with urllib.request.urlopen(url) as r:
                shards = (json.loads(r.read()).get(HOST) or {}).get(NS, {}).get("Shards", {})
            out = out and len([k for k, v in shards.items() if v]) == 2
        return out
    wait_for(both_known, timeout=120, what="both istiods to know helloworld's endpoints in both clusters")
    yield sb
    for c in sb.clusters:
        delete_namespace(apis[c])


def test_a_healthy_mesh_passes_every_check_and_the_picture_shows_every_cluster(mesh, tmp_path):
    rc, doc, msgs, raw = verify(tmp_path)
    assert rc == 0, raw[-4000:]
    healthy(doc)
    assert doc["ok"] is True and doc["summary"]["fail"] == 0
    # both directions of the data plane: through the other network's gateway, with mTLS and the SNI
    for src, dst in (("cluster1", "cluster2"), ("cluster2", "cluster1")):
        svc = [c for c in doc["checks"] if c["kind"] == "service" and c["source"] == src and c["target"] == dst
               and c["service"] == "%s:5000" % HOST]
        assert [c["status"] for c in svc] == ["pass"], svc
        gw = "%s:15443" % gateway_of(mesh, dst)
        assert svc[0]["details"]["endpoints"] == [gw] and svc[0]["details"]["sni"] == SNI
        assert statuses(doc, kind="gateway_sni", source=src, target=dst, service="%s:5000" % HOST) == ["pass"]
        for kind in ("remote_secret", "sync", "network_gateway"):
            assert statuses(doc, kind=kind, source=src, target=dst) == ["pass"], kind
        assert statuses(doc, kind="rbac", source=src, target=dst) == ["pass", "pass"]
    for c in ("cluster1", "cluster2"):
        assert statuses(doc, kind="istiod", subject=c) == ["pass"]
        assert set(statuses(doc, kind="trust", subject=c)) == {"pass"}
    # the picture: an SVG whose text shows every cluster
    svg = ET.parse(str(tmp_path / "mesh-verify.svg"))
    texts = " ".join(t.text or "" for t in svg.iter() if t.tag.endswith("text"))
    for c in ("cluster1", "cluster2", "network1", "network2"):
        assert c in texts, texts
    md = (tmp_path / "mesh-verify.md").read_text()
    assert "cluster1" in md and "PASS" in md
    # the play prints where it wrote them
    assert "picture: %s" % (tmp_path / "mesh-verify.svg") in raw


def test_istiod_is_reached_by_port_forward_or_at_the_addresses_given(mesh, tmp_path):
    """By default through the API server's port-forward to an istiod Pod (kwok forwards it to the
    sandbox's istiod); with verify_mesh_istiod, at the addresses given: the same verdicts."""
    rc, doc, msgs, raw = verify(tmp_path / "forwarded")
    assert rc == 0, raw[-3000:]
    for c in ("cluster1", "cluster2"):
        (check,) = [x for x in doc["checks"] if x["kind"] == "istiod" and x["subject"] == c]
        assert check["status"] == "pass" and "(reached through port-forward to istio-system/istiod-" in check["reason"], check
    inv = InventoryCopy(tmp_path)

    def mutate(group):
        for c in ("cluster1", "cluster2"):
            p = mesh.istiod_ports[c]
            group["hosts"][c]["verify_mesh_istiod"] = {"xds": "127.0.0.1:%d" % p["grpc"], "debug": "127.0.0.1:%d" % p["monitoring"],
                                                       "http": "127.0.0.1:%d" % p["http"]}
    try:
        rc, data, raw = playbook("verify_mesh.yml", "-e", "verify_mesh_report_dir=%s" % (tmp_path / "given"),
                                 inventory=inv.write(mutate))
        assert rc == 0, raw[-3000:]
    finally:
        inv.remove()
    given = json.loads((tmp_path / "given" / "mesh-verify.json").read_text())
    assert [(c["id"], c["status"]) for c in given["checks"]] == [(c["id"], c["status"]) for c in doc["checks"]]
    assert all("reached through the addresses given" in c["reason"] for c in given["checks"] if c["kind"] == "istiod")


def test_a_second_run_rewrites_nothing_and_check_mode_runs_the_same(mesh, tmp_path):
    rc, dummy, raw = playbook("verify_mesh.yml", "-e", "verify_mesh_report_dir=%s" % tmp_path)
    assert rc == 0, raw[-3000:]
    before = dict((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    rc, data, raw = playbook("verify_mesh.yml", "-e", "verify_mesh_report_dir=%s" % tmp_path, "--check")
    assert rc == 0, raw[-3000:]
    assert dict((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before
    assert not any(r.get("changed") for p in data["plays"] for t in p["tasks"] for r in t["hosts"].values())


# --- faults: one at a time, each named ------------------------------------------------------------------


def test_istiod_without_the_other_networks_gateway_is_caught(mesh, tmp_path):
    """The mistake `make demo` made before: istiod knows no network gateway and sends pod IPs.
    cluster1's gateway is a NodePort Service whose address only the inventory gives: without
    the meshNetworks install_istio writes, cluster2's istiod knows no gateway for network1."""
    api = mesh.api_client("cluster2")
    saved = mesh_networks(api)
    set_mesh_networks(api, "networks: {}")
    try:
        wait_for(lambda: not [g for g in networkz(mesh, "cluster2") if g["Network"] == "network1"], timeout=60,
                 what="cluster2's istiod to forget network1's gateway")
        rc, doc, msgs, raw = verify(tmp_path)
        assert rc != 0
        fails = reasons(doc)
        assert any(r.startswith("cluster2 → cluster1: cluster2's istiod knows no gateway for network network1") for r in fails), fails
        assert any(r.startswith("cluster2 → cluster1: helloworld.%s:5000: cluster2's istiod sends cluster1's pod IPs (10.101."
                                % NS) and "not cluster1's gateway 127.0.0.11:15443" in r for r in fails), fails
        # the other direction is still verified, and still works (network2's gateway has a LoadBalancer address)
        assert statuses(doc, kind="service", source="cluster1", target="cluster2") == ["pass"]
        # the play fails naming the broken links
        assert any("knows no gateway for network network1" in m for m in msgs), msgs
    finally:
        set_mesh_networks(api, saved)
    wait_for(lambda: [g for g in networkz(mesh, "cluster2") if g["Network"] == "network1"], timeout=60,
             what="cluster2's istiod to know network1's gateway again")


def test_a_wrong_gateway_address_is_caught(mesh, tmp_path):
    """cluster2's istiod is given a wrong address for cluster1's gateway (what a stale or mistyped
    mesh_gateway_address leaves in its meshNetworks)."""
    api = mesh.api_client("cluster2")
    saved = mesh_networks(api)
    assert "127.0.0.11" in saved, saved
    set_mesh_networks(api, saved.replace("127.0.0.11", "127.0.0.99"))
    try:
        wait_for(lambda: any(g["Addr"] == "127.0.0.99" for g in networkz(mesh, "cluster2")), timeout=60,
                 what="cluster2's istiod to take the wrong address")
        rc, doc, msgs, raw = verify(tmp_path)
        assert rc != 0
        fails = reasons(doc)
        assert ("cluster2 → cluster1: cluster2's istiod sends network network1 to 127.0.0.99:15443, but cluster1's "
                "east-west gateway is 127.0.0.11:15443") in fails, fails
        assert any(r.startswith("cluster2 → cluster1: helloworld.%s:5000: cluster2's istiod sends network network1's "
                                "traffic to 127.0.0.99:15443" % NS) for r in fails), fails
    finally:
        set_mesh_networks(api, saved)
    wait_for(lambda: any(g["Addr"] == "127.0.0.11" for g in networkz(mesh, "cluster2")), timeout=60,
             what="cluster2's istiod to take the right address again")


def test_a_deleted_remote_secret_is_caught(mesh, tmp_path):
    core = client.CoreV1Api(mesh.api_client("cluster1"))
    core.delete_namespaced_secret("istio-remote-secret-cluster2", "istio-system")
    try:
        rc, doc, msgs, raw = verify(tmp_path)
        assert rc != 0
        fails = reasons(doc)
        assert any(r.startswith("cluster1 → cluster2: cluster1 holds no remote secret for cluster2") for r in fails), fails
        assert statuses(doc, kind="remote_secret", source="cluster2", target="cluster1") == ["pass"]
    finally:
        rc, data, raw = playbook("federate_clusters.yml")
        assert rc == 0, raw[-3000:]


def test_a_removed_reader_binding_is_caught(mesh, tmp_path):
    rbac = client.RbacAuthorizationV1Api(mesh.api_client("cluster2"))
    names = [b.metadata.name for b in rbac.list_cluster_role_binding().items
             if any(s.name == "meshfed-istio-reader" for s in b.subjects or [])]
    assert names
    for n in names:
        rbac.delete_cluster_role_binding(n)
    try:
        rc, doc, msgs, raw = verify(tmp_path)
        assert rc != 0
        fails = reasons(doc)
        assert any(r.startswith("cluster1 → cluster2: remote secret token cannot list services (") and "(403)" in r
                   for r in fails), fails
        # cluster2 still reads cluster1
        assert statuses(doc, kind="rbac", source="cluster2", target="cluster1") == ["pass", "pass"]
    finally:
        rc, data, raw = playbook("federate_clusters.yml")
        assert rc == 0, raw[-3000:]


def test_a_ca_from_another_root_is_caught(mesh, tmp_path):
    other = tmp_path / "other-ca"
    rc, raw = module("meshfed.istio.mesh_ca", {"dir": str(other), "clusters": ["cluster2"], "key_type": "ecdsa-p256",
                                               "root_key_type": "ecdsa-p256"})
    assert rc == 0, raw[-2000:]
    core = client.CoreV1Api(mesh.api_client("cluster2"))
    saved = core.read_namespaced_secret("cacerts", "istio-system").data
    files = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")
    data = dict((f, base64.b64encode((other / "cluster2" / f).read_bytes()).decode()) for f in files)
    core.patch_namespaced_secret("cacerts", "istio-system", {"data": data})
    try:
        rc, doc, msgs, raw = verify(tmp_path / "report")
        assert rc != 0
        fails = reasons(doc)
        assert any(r.startswith("cluster2: the intermediate in cacerts (") and "is not issued by the mesh's root" in r
                   for r in fails), fails
        assert statuses(doc, kind="trust", subject="cluster1", id="cluster1/trust/cacerts") == ["pass"]
    finally:
        core.patch_namespaced_secret("cacerts", "istio-system", {"data": saved})


def test_a_route_to_a_subset_without_endpoints_is_caught_and_weights_are_reported(mesh, tmp_path):
    co = client.CustomObjectsApi(mesh.api_client("cluster1"))
    dr = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "helloworld"},
          "spec": {"host": HOST, "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]}}
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "helloworld"},
          "spec": {"hosts": [HOST], "http": [{"route": [
              {"destination": {"host": HOST, "subset": "v1"}, "weight": 90},
              {"destination": {"host": HOST, "subset": "v2"}, "weight": 10}]}]}}
    co.create_namespaced_custom_object("networking.istio.io", "v1", NS, "destinationrules", dr)
    co.create_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", vs)
    try:
        def reported():
            rc, doc, msgs, raw = verify(tmp_path)
            routes = [c for c in doc["checks"] if c["kind"] == "route" and c["source"] == "cluster1"]
            return (rc, doc, routes) if routes else None
        rc, doc, routes = wait_for(reported, timeout=60, what="cluster1's sidecars to get the 90/10 route")
        assert rc == 0
        assert [c["status"] for c in routes] == ["pass"], routes
        assert "v1 90%, v2 10%" in routes[0]["reason"], routes
        vs["spec"]["http"][0]["route"] = [{"destination": {"host": HOST, "subset": "v2"}, "weight": 50},
                                          {"destination": {"host": HOST, "subset": "v3"}, "weight": 50}]
        co.patch_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "helloworld",
                                          {"spec": vs["spec"]})

        def failing():
            rc, doc, msgs, raw = verify(tmp_path)
            return (rc, doc) if rc != 0 else None
        rc, doc = wait_for(failing, timeout=60, what="cluster1's sidecars to get the 50/50 v2/v3 route")
        fails = reasons(doc)
        assert any("sends v2 50%, v3 50%" in r and "outbound|5000|v3|%s has no endpoints" % HOST in r for r in fails), fails
    finally:
        co.delete_namespaced_custom_object("networking.istio.io", "v1", NS, "virtualservices", "helloworld")
        co.delete_namespaced_custom_object("networking.istio.io", "v1", NS, "destinationrules", "helloworld")


def test_a_stopped_api_server_is_named_and_the_rest_is_still_reported(mesh, tmp_path):
    c = sandbox_cluster.Cluster("cluster2")
    os.kill(api_server_pid("cluster2"), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while c.pids()["kube-apiserver"] and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        rc, doc, msgs, raw = verify(tmp_path)
        assert rc != 0
        assert "Traceback" not in raw
        fails = reasons(doc)
        server = mesh.api_servers["cluster2"]
        assert any(r.startswith("cluster2: API server %s does not answer: connection refused" % server) for r in fails), fails
        # cluster1 is still verified: its istiod, its trust, and what its remote secret for cluster2 can do
        assert statuses(doc, kind="istiod", subject="cluster1") == ["pass"]
        assert set(statuses(doc, kind="trust", subject="cluster1")) == {"pass"}
        assert any(r.startswith("cluster1 → cluster2: remote secret token cannot list services (") for r in fails), fails
    finally:
        mesh.run("up", "--clusters", str(len(mesh.clusters)))
    assert c.api_ready()
