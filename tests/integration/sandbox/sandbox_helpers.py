# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers shared by the sandbox integration tests."""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import socket
import ssl
import threading
import time
import uuid

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def wait_for(fn, timeout: float = 60, interval: float = 0.5, what: str = "condition"):
    """Call fn until it returns something truthy; return that value or fail after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except ApiException as e:  # e.g. 404 until the object exists
            last_exc = e
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s%s"
                         % (timeout, what, "" if last_exc is None else " (last error: %s)" % last_exc))


def unique(prefix: str = "sbtest") -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def token_client(server: str, ca_b64: str, token: str) -> client.ApiClient:
    """An API client built like an Istio remote secret: server URL, CA data and a bearer token."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "remote", "cluster": {"server": server, "certificate-authority-data": ca_b64}}],
        "users": [{"name": "remote-reader", "user": {"token": token}}],
        "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "remote-reader"}}],
        "current-context": "remote",
    }
    return config.new_client_from_config_dict(kubeconfig, context="remote")


def b64decode(s: str) -> bytes:
    return base64.b64decode(s)


def filled_token_secret(core: client.CoreV1Api, name: str, namespace: str):
    """The Secret once the token controller has filled in `token` and `ca.crt`, else None."""
    secret = core.read_namespaced_secret(name, namespace)
    return secret if secret.data and secret.data.get("token") and secret.data.get("ca.crt") else None


def condition_true(obj, ctype: str) -> bool:
    return any(c.type == ctype and c.status == "True" for c in (obj.status.conditions or []))


# kinds that change by themselves on a running cluster (heartbeats, leader election, events)
NOISY_KINDS = {"Event", "Lease", "Node"}
NOISY_NAMESPACES = {"kube-system", "kube-node-lease"}
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def cluster_state(api_client) -> dict:
    """{'Kind namespace/name': resourceVersion} of every object of every listable kind
    outside kube-system (heartbeats, leader-election records and events left out): what a
    test compares before and after a run that must change nothing."""
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(api_client)
    out = {}
    seen = set()
    for res in dyn.resources.search():
        if "/" in (res.name or "") or "list" not in (res.verbs or []) or res.kind in NOISY_KINDS \
                or res.kind.endswith("List") or (res.group, res.kind) in seen:
            continue
        seen.add((res.group, res.kind))  # one version per kind
        try:
            items = dyn.get(res).to_dict().get("items") or []
        except Exception:  # noqa: BLE001 - kinds that answer no LIST (e.g. aggregated APIs) are not state
            continue
        for item in items:
            meta = item.get("metadata") or {}
            if meta.get("namespace") in NOISY_NAMESPACES or LEADER_ANNOTATION in (meta.get("annotations") or {}):
                continue
            ref = "%s %s/%s" % (res.kind, meta.get("namespace") or "", meta.get("name"))
            out[ref] = meta.get("resourceVersion")
    return out


def state_diff(before: dict, after: dict) -> list:
    """['+ ref', '- ref', '~ ref'] between two cluster_state snapshots."""
    return (["+ " + r for r in sorted(set(after) - set(before))] + ["- " + r for r in sorted(set(before) - set(after))]
            + ["~ " + r for r in sorted(set(before) & set(after)) if before[r] != after[r]])


def api_server_pid(name: str) -> int:
    """The kube-apiserver of this checkout's sandbox cluster ``name`` (never another checkout's)."""
    from tools.sandbox import cluster, common

    c = cluster.Cluster(name)
    pid = c.pids()["kube-apiserver"]
    assert pid, "%s has no kube-apiserver running" % name
    assert any(a.startswith(c.workdir + os.sep) for a in common.proc_cmdline(pid)), common.proc_cmdline(pid)
    return pid


def wait_quiet(api_clients: dict, quiet: float = 5.0, timeout: float = 180.0) -> None:
    """Wait until no object of the clusters ({name: ApiClient}) changes for ``quiet`` seconds
    (controllers settle after an install: an HPA's first status, for example), so that a
    later cluster_state comparison sees only what the test did."""
    last = {c: cluster_state(api) for c, api in api_clients.items()}

    def settled():
        time.sleep(quiet)
        now = {c: cluster_state(api) for c, api in api_clients.items()}
        changes = {c: state_diff(last[c], now[c]) for c in now if state_diff(last[c], now[c])}
        last.update(now)
        return not changes
    wait_for(settled, timeout=timeout, interval=0, what="the clusters to settle (no object changing for %gs)" % quiet)


def eastwest_address(api_client) -> str:
    """The address of a cluster's east-west gateway Service, as the sandbox's LoadBalancer
    controller gave it ('' when it has none, e.g. a NodePort gateway)."""
    from kubernetes import client

    svc = client.CoreV1Api(api_client).read_namespaced_service("istio-eastwestgateway", "istio-system")
    ingress = (svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None) or []
    return ingress[0].ip if ingress else ""


def gateway_of(sandbox, cluster: str) -> str:
    """The east-west gateway address the sandbox inventory's mesh uses for ``cluster``:
    cluster1's is given (mesh_gateway_address 127.0.0.11, a NodePort gateway), the others'
    come from their LoadBalancer Service."""
    if cluster == "cluster1":
        return "127.0.0.11"
    address = eastwest_address(sandbox.api_client(cluster))
    assert address, "%s's east-west gateway Service has no LoadBalancer address" % cluster
    return address


class _StandInHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves several requests

    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        with server.lock:
            server.peers.add(self.client_address)
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        body = ("%s %s" % (server.token, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@contextlib.contextmanager
def stand_in_server(prefix: str = "web"):
    """An HTTP server on 127.0.0.1:<ephemeral port> (``server.server_address[1]``) that answers every
    GET with '<token> <path>' (``server.token``, unique), after a second for paths under /slow, and
    records the client address of every connection it served (``server.peers``): what a port-forward
    to a simulated Pod reaches when a kwok PortForward points the Pod's port at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StandInHandler)
    server.daemon_threads = True
    server.token = unique(prefix)
    server.peers = set()
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def served_chain(port: int) -> list:
    """The DER certificates istiod presents on `port` (its leaf first), from a TLS handshake (ALPN h2, as gRPC)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the chain is what we check, not who signed it
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        # public as SSLSocket.get_unverified_chain() from Python 3.13; the same call on 3.10-3.12
        chain = tls._sslobj.get_unverified_chain()  # pylint: disable=protected-access
        return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # pylint: disable=protected-access
