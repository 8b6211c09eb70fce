# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""portforward.py without a cluster: picking the istiod Pod, reading why a stream was refused,
and the relay itself (listener, one stream per connection, shutdown, errors) with streams
that are plain TCP connections to a local echo server instead of pods/portforward."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import portforward as pf
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError


def pod(name, ready=True, phase="Running", created="2026-11-01T00:00:00Z", deleting=False):
    meta = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-02T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_ready_pods_and_the_one_picked():
    assert pf.pod_is_ready(pod("a"))
    assert not pf.pod_is_ready(pod("a", ready=False))
    assert not pf.pod_is_ready(pod("a", phase="Pending"))
    assert not pf.pod_is_ready(pod("a", deleting=True))
    assert not pf.pod_is_ready({})
    assert [pf.pod_state(p) for p in (pod("a", ready=False), pod("b", phase="Pending"), pod("c", deleting=True))] == [
        "not Ready", "Pending", "terminating"]
    pods = [pod("istiod-b", created="2026-11-03T00:00:00Z"), pod("istiod-c", created="2026-11-01T00:00:00Z", deleting=True),
            pod("istiod-a", created="2026-11-03T00:00:00Z"), pod("istiod-d", created="2026-11-02T00:00:00Z", ready=False)]
    assert pf.pick_ready_pod(pods) == "istiod-a"  # the oldest Ready one, then by name
    assert pf.pick_ready_pod(pods + [pod("istiod-z", created="2026-10-01T00:00:00Z")]) == "istiod-z"
    assert pf.pick_ready_pod([pod("x", ready=False)]) is None
    assert pf.istiod_selector("canary") == "app=istiod,istio.io/rev=canary"
    assert pf.istiod_selector(None) == "app=istiod,istio.io/rev=default"


class _BadStatus(Exception):
    """Like websocket's WebSocketBadStatusException."""

    def __init__(self, status, body):
        super().__init__("Handshake status %d" % status)
        self.status_code = status
        self.resp_body = body


class _Wrapped(Exception):
    """Like the ApiException(status=0, reason=str(e)) the client raises while handling ``e``."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason
        self.status = 0


def _wrapped(cause):
    try:
        raise cause
    except Exception as e:
        try:
            raise _Wrapped(str(e))
        except _Wrapped as wrapped:
            return wrapped


FORBIDDEN = (b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \\"istiod-abc\\" is forbidden: '
             b'User \\"system:serviceaccount:a:b\\" cannot get resource \\"pods/portforward\\"","code":403}')


def test_why_a_stream_was_refused():
    assert pf.open_failure(_wrapped(_BadStatus(404, b'{"message": "pods \\"x\\" not found"}')), "https://h:1") == (
        'pods "x" not found (HTTP 404)', 404)
    reason, status = pf.open_failure(_wrapped(_BadStatus(403, FORBIDDEN)), "https://h:1")
    assert status == 403
    assert reason == ('pods "istiod-abc" is forbidden: User "system:serviceaccount:a:b" cannot get resource '
                      '"pods/portforward" (HTTP 403; a port-forward needs the verbs get and create on pods/portforward)')
    # a 403 without a reason (the second verb's check) still says what is missing
    assert pf.open_failure(_wrapped(_BadStatus(403, b'{"message": "pods \\"x\\" is forbidden: "}')), "h")[0] == (
        'pods "x" is forbidden (HTTP 403; a port-forward needs the verbs get and create on pods/portforward)')
    assert pf.open_failure(_wrapped(_BadStatus(500, b"not json")), "h") == (
        "the API server refused the stream (HTTP 500)", 500)
    assert pf.open_failure(_wrapped(ConnectionRefusedError(111, "Connection refused")), "https://127.0.0.1:1") == (
        "API server https://127.0.0.1:1 does not answer: connection refused", None)
    # only the text left (no __context__): the handshake status and the Status in it
    text = ("Handshake status 404 Not Found -+-+- {'audit-id': 'x'} -+-+- "
            '{"kind":"Status","message":"pods \\"nope\\" not found","code":404}\n')
    assert pf.open_failure(_Wrapped(text), "h") == ('pods "nope" not found (HTTP 404)', 404)
    assert pf.open_failure(_Wrapped("something else\nand more"), "h") == ("something else", None)


def test_message_names_cluster_pod_and_port():
    assert pf.forward_message("cluster2", "istio-system", "istiod-abc", 15010, "why") == (
        "cluster2: port-forward to istio-system/istiod-abc:15010 failed: why")


def test_port_must_be_a_port():
    with pytest.raises(ValueError):
        pf.LocalForward(_Api(), "ns", "pod", 0)
    with pytest.raises(ValueError):
        pf.LocalForward(_Api(), "ns", "pod", 70000)


# --- the relay, with fake streams ----------------------------------------------------------


class _Conf(object):
    host = "https://127.0.0.1:6443"


class _Api(object):
    configuration = _Conf()


class _Echo(object):
    """A TCP server on loopback that echoes what it reads, upper-cased, or closes at once (``refuse``)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.refuse = False
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.refuse:
                conn.close()
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data.upper())


class _Stream(object):
    """Stands for the client's PortForward object: its socket is a TCP connection to the echo server."""

    def __init__(self, echo, error=None):
        self.sock = socket.create_connection(("127.0.0.1", echo.port))
        self._error = error
        self.closed = False

    def socket(self, port):
        return self.sock

    def error(self, port):
        return self._error

    def close(self):
        self.closed = True
        self.sock.close()


@pytest.fixture
def echo():
    server = _Echo()
    yield server
    server.sock.close()


def forward_to(monkeypatch, echo, error=None, fail=None):
    streams = []

    def new_stream(self):
        if fail is not None and fail(len(streams)):
            raise _wrapped(_BadStatus(403, FORBIDDEN))
        streams.append(_Stream(echo, error))
        return streams[-1]
    monkeypatch.setattr(pf.LocalForward, "_new_stream", new_stream)
    return streams


def talk(address, data):
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return out
            out += chunk


def test_relays_each_connection_over_its_own_stream(monkeypatch, echo):
    streams = forward_to(monkeypatch, echo)
    baseline = threading.active_count()
    with pf.local_forward(_Api(), "ns", "pod", 15010, cluster="c1") as address:
        assert address.startswith("127.0.0.1:")
        assert len(streams) == 1  # opened before listening
        assert talk(address, b"one") == b"ONE"
        results = {}

        def one(name):
            results[name] = talk(address, name.encode() * 10000)
        threads = [threading.Thread(target=one, args=(n,)) for n in ("a", "b", "c")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert results == {n: n.upper().encode() * 10000 for n in ("a", "b", "c")}
        assert len(streams) == 4 and echo.accepted == 4
    assert all(s.closed for s in streams)
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == baseline
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(address.split(":")[1])), timeout=2).close()


def test_close_ends_open_connections(monkeypatch, echo):
    forward_to(monkeypatch, echo)
    forward = pf.LocalForward(_Api(), "ns", "pod", 15014, cluster="c1")
    address = forward.start()
    host, port = address.split(":")
    client = socket.create_connection((host, int(port)), timeout=5)
    client.sendall(b"hi")
    assert client.recv(10) == b"HI"
    started = time.monotonic()
    forward.close()
    assert time.monotonic() - started < 3
    assert client.recv(10) == b""  # the relay ended the connection
    client.close()
    forward.close()  # again: nothing to do
    assert forward.errors == [] and forward.address == address


def test_refused_open_at_start_raises_and_listens_nowhere(monkeypatch, echo):
    forward_to(monkeypatch, echo, fail=lambda n: True)
    forward = pf.LocalForward(_Api(), "istio-system", "istiod-abc", 15010, cluster="cluster2")
    with pytest.raises(ClusterError) as e:
        forward.start()
    assert e.value.status == 403
    assert e.value.msg.startswith('cluster2: port-forward to istio-system/istiod-abc:15010 failed: pods "istiod-abc" '
                                  'is forbidden: ')
    assert forward.address is None


def test_a_later_stream_refused_is_kept_and_explains_the_client_failure(monkeypatch, echo):
    forward_to(monkeypatch, echo, fail=lambda n: n >= 1)
    with pytest.raises(ClusterError) as e:
        with pf.local_forward(_Api(), "ns", "pod", 15010, cluster="c1") as address:
            assert talk(address, b"x") == b"X"  # the stream opened at start
            # its own stream is refused: the connection is closed (an empty reply, or a reset or an
            # error of the client's socket, as the relay closed it with unread data)
            if talk(address, b"y") == b"":
                raise ConnectionError("empty reply")
    assert e.value.msg.startswith('c1: port-forward to ns/pod:15010 failed: pods "istiod-abc" is forbidden')
    assert isinstance(e.value.__cause__, OSError)
    said = "(then the client failed: %s: %s)" % (type(e.value.__cause__).__name__, e.value.__cause__)
    assert e.value.msg.endswith(said)


def test_the_pod_sides_error_is_kept(monkeypatch, echo):
    echo.refuse = True
    error = "error forwarding port 15010 to pod istiod-abc/istio-system: failed to dial 127.0.0.1:15010: refused"
    forward_to(monkeypatch, echo, error=error)
    with pytest.raises(ClusterError) as e:
        with pf.local_forward(_Api(), "istio-system", "istiod-abc", 15010, cluster="c1") as address:
            assert talk(address, b"x") == b""
            raise OSError("empty reply")
    assert e.value.msg == "c1: port-forward to istio-system/istiod-abc:15010 failed: %s (then the client failed: " \
                          "OSError: empty reply)" % error
    # the body's own MeshError is not replaced; nor is anything when the body succeeds
    with pytest.raises(MeshError, match="^mine$"):
        with pf.local_forward(_Api(), "istio-system", "istiod-abc", 15010, cluster="c1") as address:
            talk(address, b"x")
            raise MeshError("mine")
    with pf.local_forward(_Api(), "istio-system", "istiod-abc", 15010, cluster="c1") as address:
        talk(address, b"x")
