# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox clusters behave like the real Kubernetes the collection targets."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import signal
import uuid
import socket
import time

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox_helpers import (api_server_pid, b64decode, condition_true, filled_token_secret, token_client, unique,
                             wait_for)
from tools.sandbox import cli, cluster, common, istiod, lb, svcproxy, versions

pytestmark = pytest.mark.sandbox


@pytest.fixture
def namespaces(sandbox):
    """make(cluster) -> a fresh namespace in that cluster, deleted after the test."""
    created = []

    def make(cluster: str, prefix: str = "sbtest") -> str:
        name = unique(prefix)
        core = client.CoreV1Api(sandbox.api_client(cluster))
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=name, labels={"app.kubernetes.io/part-of": "meshfed-sandbox-tests"})))
        created.append((core, name))
        return name

    yield make
    for core, name in created:
        try:
            core.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise


def _ca_data(sandbox, cluster: str) -> str:
    with open(sandbox.kubeconfig) as f:
        kc = yaml.safe_load(f)
    return next(c["cluster"]["certificate-authority-data"] for c in kc["clusters"] if c["name"] == cluster)


def test_kubeconfig_is_self_contained_with_one_context_per_cluster(sandbox):
    assert len(sandbox.clusters) >= 2
    assert sandbox.clusters[:2] == ["cluster1", "cluster2"]
    with open(sandbox.kubeconfig) as f:
        kc = yaml.safe_load(f)
    assert sorted(c["name"] for c in kc["contexts"]) == sorted(sandbox.clusters)
    for ctx in kc["contexts"]:
        assert ctx["context"] == {"cluster": ctx["name"], "user": ctx["name"]}
    for c in kc["clusters"]:
        assert set(c["cluster"]) == {"server", "certificate-authority-data"}
        assert c["cluster"]["server"].startswith("https://127.0.0.1:")
        assert b"BEGIN CERTIFICATE" in b64decode(c["cluster"]["certificate-authority-data"])
    for u in kc["users"]:
        assert set(u["user"]) == {"client-certificate-data", "client-key-data"}


def test_api_servers_report_the_pinned_version(sandbox):
    for cluster in sandbox.clusters:
        info = client.VersionApi(sandbox.api_client(cluster)).get_code()
        assert info.git_version == "v" + versions.KUBERNETES, cluster
        assert (info.major, info.minor) == tuple(versions.KUBERNETES.split(".")[:2])


def test_api_servers_listen_on_loopback_only(sandbox):
    st = common.load_state()
    for cluster in sandbox.clusters:
        for component, pid in st["clusters"][cluster]["pids"].items():
            assert pid, "%s %s is not running" % (cluster, component)
            for addr, port in common.listening_ports(pid):
                assert ipaddress.ip_address(addr).is_loopback, (cluster, component, addr, port)


def test_nodes_are_ready(sandbox):
    for cluster in sandbox.clusters:
        nodes = client.CoreV1Api(sandbox.api_client(cluster)).list_node().items
        assert nodes, "%s has no node" % cluster
        for node in nodes:
            assert condition_true(node, "Ready"), (cluster, node.metadata.name)
            assert node.metadata.annotations.get("kwok.x-k8s.io/node") == "fake"


def test_deployment_pods_become_ready(sandbox, namespaces):
    for cluster in sandbox.clusters:
        api = sandbox.api_client(cluster)
        ns = namespaces(cluster)
        labels = {"app": "hello"}
        client.AppsV1Api(api).create_namespaced_deployment(ns, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="hello"),
            spec=client.V1DeploymentSpec(
                replicas=2,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(
                        name="hello", image="example.invalid/hello:1",
                        ports=[client.V1ContainerPort(container_port=5000)])])))))
        wait_for(lambda: (client.AppsV1Api(api).read_namespaced_deployment(
            "hello", ns).status.ready_replicas or 0) == 2, 90, what="%s: 2 ready replicas" % cluster)
        pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector="app=hello").items
        assert len(pods) == 2
        nodes = {n.metadata.name: n for n in client.CoreV1Api(api).list_node().items}
        for pod in pods:
            assert condition_true(pod, "Ready")
            assert pod.spec.node_name in nodes
            cidr = ipaddress.ip_network(nodes[pod.spec.node_name].spec.pod_cidr)
            assert ipaddress.ip_address(pod.status.pod_ip) in cidr, (pod.status.pod_ip, cidr)


def test_pod_cidrs_differ_between_clusters(sandbox):
    cidrs = []
    for cluster in sandbox.clusters:
        cidrs += [n.spec.pod_cidr for n in client.CoreV1Api(sandbox.api_client(cluster)).list_node().items]
    assert len(set(cidrs)) == len(cidrs), cidrs


def test_token_request_for_a_service_account(sandbox, namespaces):
    cluster = sandbox.clusters[0]
    api = sandbox.api_client(cluster)
    ns = namespaces(cluster)
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="app")))
    tr = core.create_namespaced_service_account_token("app", ns, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)))
    assert tr.status.token.count(".") == 2  # a JWT
    who = client.AuthenticationV1Api(token_client(sandbox.api_servers[cluster], _ca_data(sandbox, cluster),
                                                  tr.status.token)).create_self_subject_review(
        client.V1SelfSubjectReview())
    assert who.status.user_info.username == "system:serviceaccount:%s:app" % ns


def test_legacy_service_account_token_secret_is_filled(sandbox, namespaces):
    for cluster in sandbox.clusters:
        core = client.CoreV1Api(sandbox.api_client(cluster))
        ns = namespaces(cluster)
        core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader")))
        core.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name="reader-token",
                                         annotations={"kubernetes.io/service-account.name": "reader"}),
            type="kubernetes.io/service-account-token"))
        secret = wait_for(lambda: filled_token_secret(core, "reader-token", ns), 60,
                          what="%s: token and ca.crt in the Secret" % cluster)
        assert secret.data["ca.crt"] == _ca_data(sandbox, cluster)
        assert b64decode(secret.data["namespace"]).decode() == ns
        assert b64decode(secret.data["token"]).count(b".") == 2


def test_crd_and_custom_object(sandbox, namespaces):
    cluster = sandbox.clusters[-1]
    api = sandbox.api_client(cluster)
    suffix = uuid.uuid4().hex[:8]
    group, plural, kind = "sandbox.meshfed.io", "widgets" + suffix, "Widget" + suffix
    crd_name = "%s.%s" % (plural, group)
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(client.V1CustomResourceDefinition(
        metadata=client.V1ObjectMeta(name=crd_name),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group, scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural=plural, singular="widget" + suffix, kind=kind),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=client.V1JSONSchemaProps(
                    type="object", properties={"spec": client.V1JSONSchemaProps(
                        type="object", properties={"size": client.V1JSONSchemaProps(type="integer")})})))])))
    try:
        wait_for(lambda: condition_true(ext.read_custom_resource_definition(crd_name), "Established"), 30,
                 what="CRD established")
        ns = namespaces(cluster)
        custom = client.CustomObjectsApi(api)
        body = {"apiVersion": group + "/v1", "kind": kind, "metadata": {"name": "w1"}, "spec": {"size": 3}}
        wait_for(lambda: custom.create_namespaced_custom_object(group, "v1", ns, plural, body), 30,
                 what="custom object created")
        got = custom.get_namespaced_custom_object(group, "v1", ns, plural, "w1")
        assert got["spec"] == {"size": 3} and got["kind"] == kind
        with pytest.raises(ApiException) as err:  # the schema is enforced
            custom.create_namespaced_custom_object(group, "v1", ns, plural, {
                "apiVersion": group + "/v1", "kind": kind, "metadata": {"name": "bad"}, "spec": {"size": "big"}})
        assert err.value.status == 422
    finally:
        ext.delete_custom_resource_definition(crd_name)


def test_cluster1_reachable_with_a_service_account_token_kubeconfig(sandbox, namespaces):
    """What an Istio remote secret relies on: server URL + CA from the token Secret + bearer token."""
    cluster = "cluster1"
    api = sandbox.api_client(cluster)
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    ns = namespaces(cluster)
    role = unique("sbtest-ns-reader")
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader")))
    rbac.create_cluster_role(client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name=role),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["namespaces"], verbs=["get", "list", "watch"])]))
    try:
        rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=role),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=ns)]))
        core.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name="reader-token",
                                         annotations={"kubernetes.io/service-account.name": "reader"}),
            type="kubernetes.io/service-account-token"))
        secret = wait_for(lambda: filled_token_secret(core, "reader-token", ns), 60, what="token Secret filled")
        remote = client.CoreV1Api(token_client(sandbox.api_servers[cluster], secret.data["ca.crt"],
                                               b64decode(secret.data["token"]).decode()))
        # RBAC may take a moment to reach the authorizer cache
        names = wait_for(lambda: [n.metadata.name for n in remote.list_namespace().items], 30,
                         what="namespaces listed with the service-account token")
        assert ns in names and "kube-system" in names
        with pytest.raises(ApiException) as err:
            remote.list_namespaced_secret("kube-system")
        assert err.value.status == 403
    finally:
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(role)
            except ApiException as e:
                if e.status != 404:
                    raise


def test_up_again_changes_nothing_and_is_fast(sandbox):
    t0 = time.monotonic()
    res = sandbox.run("up", "--clusters", str(len(sandbox.clusters)))
    elapsed = time.monotonic() - t0
    assert "SANDBOX_CHANGED=false" in res.stdout.splitlines()
    assert elapsed < 15, "re-running up took %.1fs" % elapsed
    assert sandbox.reload().api_servers == sandbox.api_servers


def test_busy_port_is_reported_with_its_owner():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        with pytest.raises(common.SandboxError) as err:
            common.check_ports_free({port: "test port"})
        msg = str(err.value)
        assert str(port) in msg and "test port" in msg and "pid" in msg
    finally:
        s.close()


def test_state_file_describes_the_clusters(sandbox):
    st = common.load_state()
    assert st["kubeconfig"] == sandbox.kubeconfig
    assert st["kubernetes_version"] == "v" + versions.KUBERNETES
    for i, cluster in enumerate(sandbox.clusters, start=1):
        c = st["clusters"][cluster]
        assert c["state"] == "running" and c["api_server"] == sandbox.api_servers[cluster]
        assert c["gateway_address"] == "127.0.0.%d" % (10 + i)


# ---------------------------------------------------------------- faults (last: they disturb the clusters)


def _assert_cluster_ready(sandbox, name: str) -> None:
    """/readyz answers, the node is Ready and the probe Pod is Ready."""
    assert cluster.Cluster(name).api().ok("/readyz"), "%s: /readyz" % name
    core = client.CoreV1Api(sandbox.api_client(name))
    nodes = core.list_node().items
    assert nodes and all(condition_true(n, "Ready") for n in nodes), "%s: node not Ready" % name
    pods = [p for p in core.list_namespaced_pod("sandbox-system", label_selector="app.kubernetes.io/name=sandbox-probe")
            .items if not p.metadata.deletion_timestamp]
    assert pods and all(condition_true(p, "Ready") for p in pods), "%s: probe Pod not Ready" % name


def _up(sandbox) -> tuple:
    """Run `up` for the session's clusters (fails the test unless it exits 0); return (output, seconds)."""
    t0 = time.monotonic()
    res = sandbox.run("up", "--clusters", str(len(sandbox.clusters)))
    return res.stdout, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_one_up_repairs_a_killed_api_server(sandbox, sig):
    """A SIGTERMed kube-apiserver lingers ~60 s draining watches: one `up` waits for it (bounded), stops
    it, restarts what is missing and leaves a cluster that a second `up` finds healthy."""
    name = sandbox.clusters[-1]
    old = api_server_pid(name)
    os.kill(old, sig)
    out, took = _up(sandbox)
    print("\n%s: one `up` repaired the cluster after %s in %.1fs" % (name, sig.name, took))
    assert "SANDBOX_CHANGED=true" in out.splitlines()
    assert re.search(r"repaired %s \(.*started kube-apiserver" % name, out), out
    if sig == signal.SIGTERM:
        assert re.search(r"%s: waiting up to \d+s for kube-apiserver \(pid %d, " % (name, old), out), out
    assert not common.pid_alive(old)
    assert api_server_pid(name) != old
    _assert_cluster_ready(sandbox, name)
    assert sandbox.reload().api_servers == sandbox.api_servers  # repaired in place, same port
    again, dummy = _up(sandbox)
    assert "SANDBOX_CHANGED=false" in again.splitlines()
    assert took < 90, "repairing took %.1fs" % took


def _refresh(sandbox) -> None:
    """Later tests of this session use the new API server URLs of recreated clusters."""
    fresh = sandbox.reload()
    for field in dataclasses.fields(fresh):
        setattr(sandbox, field.name, getattr(fresh, field.name))


def test_one_up_recreates_a_half_deleted_cluster(sandbox):
    """As an interrupted `down` can leave it: files gone, processes still running and named by no pid file."""
    name = sandbox.clusters[-1]
    c = cluster.Cluster(name)
    old = sorted(c.pids().values())
    assert all(old)
    shutil.rmtree(c.path("pids"))
    shutil.rmtree(c.path("pki"))
    out, took = _up(sandbox)
    print("\n%s: one `up` recreated the half-deleted cluster in %.1fs" % (name, took))
    assert "%s: its workdir %s is incomplete" % (name, c.workdir) in out
    assert "created %s" % name in out and "SANDBOX_CHANGED=true" in out.splitlines()
    assert not [pid for pid in old if common.pid_alive(pid)]
    _refresh(sandbox)
    _assert_cluster_ready(sandbox, name)
    again, dummy = _up(sandbox)
    assert "SANDBOX_CHANGED=false" in again.splitlines()
    if istiod.Istiod(name).pid():
        # an istiod left running by an earlier session still watches the deleted cluster (its kubeconfig
        # names the old CA): the later istiod tests of this session need one that watches the new cluster
        sandbox.run("istiod", "--restart", "--cluster", name)


def _relayed_address(sandbox) -> str:
    """A Service like istiod's in cluster1 (selector app=istiod), once the relay holds its ClusterIP on lo."""
    core = client.CoreV1Api(sandbox.api_client(sandbox.clusters[0]))
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="istio-system")))
    except ApiException as e:
        if e.status != 409:
            raise
    svc = core.create_namespaced_service("istio-system", client.V1Service(
        metadata=client.V1ObjectMeta(name=unique("istiod-sbtest")),
        spec=client.V1ServiceSpec(selector={"app": "istiod"}, ports=[client.V1ServicePort(port=443, target_port=15017)])))
    label = svcproxy.address_label(common.sandbox_dir())
    wait_for(lambda: svc.spec.cluster_ip in svcproxy.own_addresses(label), 30,
             what="the relay to add %s to lo" % svc.spec.cluster_ip)
    return svc.spec.cluster_ip


def test_down_leaves_no_listening_port_and_up_brings_the_clusters_back(sandbox):
    if any(istiod.Istiod(n).pid() for n in istiod.known()):
        pytest.skip("istiods run in this sandbox; `down` would stop them under later tests")
    relayed = _relayed_address(sandbox) if not svcproxy.why_not_possible() else None
    procs = common.sandbox_processes()
    ports = sorted({port for pid, _name in procs for _addr, port in common.listening_ports(pid)})
    assert ports, "no sandbox port listening before `down`"
    assert (lb.running_pid(), common.LB_PROCESS) in procs  # the LoadBalancer controller is stopped too
    res = sandbox.run("down")
    assert "SANDBOX_CHANGED=true" in res.stdout.splitlines()
    assert common.sandbox_processes() == []
    if relayed:
        # the relay is gone and so are its lo addresses (and only they: their label is this sandbox's)
        assert svcproxy.pid() == 0
        assert svcproxy.own_addresses(svcproxy.address_label(common.sandbox_dir())) == []
        assert not svcproxy.holder(relayed)
    ours = {pid for pid, _name in procs}
    assert [p for p in ports if common.port_listening(p) and not cli._taken_over(p, ours)] == []
    out, took = _up(sandbox)
    print("\n`up` after `down` took %.1fs" % took)
    assert "SANDBOX_CHANGED=true" in out.splitlines()
    fresh = sandbox.reload()
    assert fresh.clusters == sandbox.clusters
    for name in fresh.clusters:
        _assert_cluster_ready(sandbox, name)
    assert lb.running_pid() and lb.running_pid() not in ours
    _refresh(sandbox)
