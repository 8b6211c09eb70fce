# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_mesh/portforward.py against a sandbox API server: a local port relayed to a
simulated Pod's port over pods/portforward, as `kubectl port-forward` does.

kwok simulates the Pods (no process runs in them); a kwok PortForward resource makes its
kubelet server send the Pod's port 80 to an HTTP server this test runs on a loopback port,
so what comes back through the forward is what that server served."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
import urllib.request

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import portforward as pf
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service
from sandbox_helpers import stand_in_server, token_client, unique

pytestmark = pytest.mark.sandbox

KWOK_API = "kwok.x-k8s.io/v1alpha1"
REVISION = "pftest"


@pytest.fixture(scope="module")
def web():
    with stand_in_server("web") as server:
        yield server


@pytest.fixture(scope="module")
def svc(sandbox):
    return Service({"kubeconfig": sandbox.kubeconfig, "context": sandbox.clusters[-1]})


def _pod(ns, name, labels=None, schedulable=True):
    spec = {"containers": [{"name": "app", "image": "example.invalid/app:1", "ports": [{"containerPort": 80}]}]}
    if not schedulable:
        spec["nodeSelector"] = {"meshfed.io/no-such-node": "true"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": spec}


def _port_forward(ns, pod, forwards):
    return {"apiVersion": KWOK_API, "kind": "PortForward", "metadata": {"name": pod, "namespace": ns},
            "spec": {"forwards": [{"ports": [port], "target": {"address": "127.0.0.1", "port": target}}
                                  for port, target in forwards]}}


@pytest.fixture(scope="module")
def grpc_echo():
    """A gRPC server on 127.0.0.1:<ephemeral> with /test.Echo/Unary (the request, reversed) and
    /test.Echo/Chat (bidirectional: each request upper-cased), bytes in and out: the shape of an
    xDS client (one HTTP/2 connection, a long-lived bidirectional stream) without any protos."""
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    def chat(requests, context):
        for request in requests:
            yield request.upper()
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: request[::-1]),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler],
                         options=[("grpc.max_receive_message_length", 8 << 20)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


def _dead_port():
    """A loopback port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def ns(svc, web, grpc_echo):
    """Namespace with Pod 'web' (port 80 -> the web server), Pod 'deaf' (port 80 -> a port nothing
    listens on), a Ready and a Pending 'istiod' Pod of revision pftest, all simulated by kwok."""
    name = unique("pf")
    svc.ensure_namespace(name)
    istiod_labels = {"app": "istiod", "istio.io/rev": REVISION}
    svc.create(_pod(name, "web"))
    svc.create(_pod(name, "deaf"))
    svc.create(_pod(name, "istiod-ready", istiod_labels))
    svc.create(_pod(name, "istiod-pending", istiod_labels, schedulable=False))
    svc.create(_pod(name, "istiod-pending-only", {"app": "istiod", "istio.io/rev": "pending"}, schedulable=False))
    port = web.server_address[1]
    svc.create(_port_forward(name, "web", [(80, port)]))
    svc.create(_pod(name, "xds"))
    svc.create(_port_forward(name, "xds", [(15010, grpc_echo)]))
    svc.create(_port_forward(name, "istiod-ready", [(80, port), (15014, port)]))
    svc.create(_port_forward(name, "deaf", [(80, _dead_port())]))

    def not_ready():
        pods = {p["metadata"]["name"]: p for p in svc.list("v1", "Pod", namespace=name)}
        return [n for n in ("web", "deaf", "istiod-ready", "xds") if not pf.pod_is_ready(pods.get(n, {}))]
    svc.wait("waiting for the simulated Pods", not_ready, timeout=60)
    yield name
    svc.delete("v1", "Namespace", name)


def _get(address, path, timeout=10):
    with urllib.request.urlopen("http://%s%s" % (address, path), timeout=timeout) as r:
        return r.status, r.read().decode()


def _relayed(svc, ns, pod, path, port=80):
    """GET through a forward; kwok reads PortForward resources through a watch: retry briefly."""
    deadline = time.monotonic() + 20
    while True:
        try:
            with pf.local_forward(svc.connection.api, ns, pod, port, cluster=svc.name) as address:
                return address, _get(address, path)
        except ClusterError as e:
            if time.monotonic() > deadline or "forward not found" not in str(e):
                raise
            time.sleep(0.5)


def test_http_get_through_the_forward(svc, ns, web):
    address, (status, body) = _relayed(svc, ns, "web", "/hello")
    assert status == 200 and body == "%s /hello" % web.token
    host, port = address.split(":")
    assert host == "127.0.0.1" and int(port) not in (80, web.server_address[1])
    # gone with the with block: nothing listens there any more
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()


def test_two_concurrent_connections(svc, ns, web):
    _relayed(svc, ns, "web", "/warm-up")  # kwok has seen the PortForward
    before = set(web.peers)
    forward = pf.LocalForward(svc.connection.api, ns, "web", 80, cluster=svc.name)
    with forward:
        host, port = forward.address.split(":")
        a = http.client.HTTPConnection(host, int(port), timeout=10)
        b = http.client.HTTPConnection(host, int(port), timeout=10)
        # both connections open at once, requests interleaved, each kept alive for a second request
        for first, second in ((a, b), (b, a)):
            first.request("GET", "/one")
            second.request("GET", "/one")
            assert first.getresponse().read().decode() == "%s /one" % web.token
            assert second.getresponse().read().decode() == "%s /one" % web.token
        # and truly concurrent: two requests of one second each take about one second together
        results = {}

        def slow(name, conn):
            conn.request("GET", "/slow/" + name)
            results[name] = conn.getresponse().read().decode()
        started = time.monotonic()
        threads = [threading.Thread(target=slow, args=(n, c)) for n, c in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        took = time.monotonic() - started
        a.close()
        b.close()
        assert results == {"a": "%s /slow/a" % web.token, "b": "%s /slow/b" % web.token}
        assert took < 1.8, took
        assert forward.accepted == 2
    assert forward.errors == []
    # the server saw two new connections (kwok dials the target once per stream)
    assert len(web.peers - before) == 2


def test_grpc_through_the_forward(svc, ns):
    """One HTTP/2 connection: a unary call, then a bidirectional stream with a large message, as an
    xDS client on istiod's plaintext port 15010 would use it."""
    grpc = pytest.importorskip("grpc")
    big = b"x" * (3 << 20)
    forward = pf.LocalForward(svc.connection.api, ns, "xds", 15010, cluster=svc.name)
    with forward:
        deadline = time.monotonic() + 20
        with grpc.insecure_channel(forward.address, options=[("grpc.max_receive_message_length", 8 << 20)]) as channel:
            unary = channel.unary_unary("/test.Echo/Unary")
            retries = 0
            while True:  # kwok may not have seen the PortForward yet
                try:
                    assert unary(b"abc", timeout=5) == b"cba"
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    retries += 1
                    time.sleep(0.5)
            chat = channel.stream_stream("/test.Echo/Chat")
            replies = list(chat(iter([b"one", big, b"three"]), timeout=20))
            assert replies == [b"ONE", big.upper(), b"THREE"]
            assert unary(b"again", timeout=5) == b"niaga"
        accepted = forward.accepted
    if not retries:  # all three calls on one relayed connection
        assert accepted == 1 and forward.errors == []


def test_missing_pod(svc, ns):
    with pytest.raises(ClusterError) as e:
        with pf.local_forward(svc.connection.api, ns, "nope", 15010, cluster=svc.name):
            pass
    assert e.value.msg == '%s: port-forward to %s/nope:15010 failed: pods "nope" not found (HTTP 404)' % (svc.name, ns)
    assert e.value.status == 404


def test_forbidden_without_pods_portforward(sandbox, svc, ns):
    """A ServiceAccount that may read Pods but not pods/portforward: 403, named; once granted, it works."""
    sa = "reader"
    svc.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}})
    svc.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": sa, "namespace": ns},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    svc.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": sa, "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]})
    token = svc.create_token(ns, sa, expiration=600)
    cluster = sandbox.clusters[-1]
    api = token_client(sandbox.api_servers[cluster], base64.b64encode(svc.ca_cert()).decode(), token)
    reader = Service({"host": sandbox.api_servers[cluster], "api_key": token,
                      "ca_cert": api.configuration.ssl_ca_cert}, name=cluster)
    # it may read the Pods: it finds the istiod Pod ...
    pod = pf.ready_istiod_pod(reader, REVISION, ns)
    assert pod == "istiod-ready"
    # ... but may not forward to it
    with pytest.raises(ClusterError) as e:
        with pf.local_forward(api, ns, pod, 15014, cluster=cluster):
            pass
    prefix = "%s: port-forward to %s/%s:15014 failed: " % (cluster, ns, pod)
    assert e.value.msg.startswith(prefix), e.value.msg
    assert e.value.status == 403
    assert e.value.msg.endswith("(HTTP 403; a port-forward needs the verbs get and create on pods/portforward)")
    assert 'pods "%s" is forbidden' % pod in e.value.msg and '"pods/portforward"' in e.value.msg
    assert "system:serviceaccount:%s:%s" % (ns, sa) in e.value.msg
    assert token not in e.value.msg

    # the same token, once granted pods/portforward, gets through
    svc.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": sa, "namespace": ns},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                         {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["get", "create"]}]},
              "meshfed-test", force=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            with pf.local_forward(api, ns, pod, 15014, cluster=cluster) as address:
                status, body = _get(address, "/debug/clusterz")
            break
        except ClusterError as again:
            if time.monotonic() > deadline or again.status != 403:
                raise
            time.sleep(0.5)
    assert status == 200 and body.endswith(" /debug/clusterz")


def test_refused_on_the_pod_side(svc, ns):
    """The stream opens (Pod there, rights there) but nothing answers behind the Pod's port: the
    client's failure is explained by the forward's error, as kwok's kubelet server tells it."""
    deadline = time.monotonic() + 20
    while True:
        with pytest.raises(ClusterError) as e:
            with pf.local_forward(svc.connection.api, ns, "deaf", 80, cluster=svc.name) as address:
                _get(address, "/x", timeout=5)
        if "forward not found" not in e.value.msg or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    msg = e.value.msg
    assert msg.startswith("%s: port-forward to %s/deaf:80 failed: error forwarding port 80 to pod " % (svc.name, ns)), msg
    assert "connection refused" in msg
    # urllib's error (RemoteDisconnected: the relay ended the connection)
    assert isinstance(e.value.__cause__, OSError)
    assert msg.endswith("(then the client failed: %s: %s)" % (type(e.value.__cause__).__name__, e.value.__cause__))


def test_ready_istiod_pod_of_a_revision(svc, ns):
    assert pf.ready_istiod_pod(svc, REVISION, ns) == "istiod-ready"
    with pytest.raises(ClusterError) as e:
        pf.ready_istiod_pod(svc, "pending", ns)
    assert e.value.msg == ("%s: no Ready istiod Pod of revision pending in namespace %s (Pods labelled "
                           "app=istiod,istio.io/rev=pending: istiod-pending-only (Pending))" % (svc.name, ns))
    with pytest.raises(ClusterError) as e:
        pf.ready_istiod_pod(svc, "absent", ns)
    assert e.value.msg.endswith("(Pods labelled app=istiod,istio.io/rev=absent: none)")


def test_istiod_forwards_one_pod_several_ports(svc, ns, web):
    deadline = time.monotonic() + 20
    while True:
        try:
            with pf.istiod_forwards(svc, (80, 15014), revision=REVISION, namespace=ns) as (pod, addresses):
                got = {port: _get(address, "/debug/registryz") for port, address in addresses.items()}
            break
        except ClusterError as e:
            if time.monotonic() > deadline or "forward not found" not in str(e):
                raise
            time.sleep(0.5)
    assert pod == "istiod-ready"
    assert sorted(addresses) == [80, 15014] and addresses[80] != addresses[15014]
    assert got == {80: (200, "%s /debug/registryz" % web.token), 15014: (200, "%s /debug/registryz" % web.token)}
