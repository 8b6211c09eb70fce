# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""A Pod's port on a local loopback port, through the API server's port-forward.

What ``kubectl port-forward`` does, and nothing more: ``local_forward`` listens on
an ephemeral port of 127.0.0.1 and relays every connection it accepts over a
``pods/portforward`` stream of its own (``kubernetes.stream.portforward``) to the
Pod's port.  Nothing is exposed on the cluster; the local port is on loopback, so
only this machine reaches it (as with kubectl), for as long as the ``with`` block
lasts.  A gRPC client opens one connection, an HTTP client may open several; each
gets its stream and two relay threads.  The credentials need the verbs get and
create on pods/portforward in the Pod's namespace.

Errors are ``ClusterError``s that name the cluster, the Pod and the port, e.g.
``cluster2: port-forward to istio-system/istiod-abc:15010 failed: pods "istiod-abc"
is forbidden: User ... cannot get resource "pods/portforward" ... (HTTP 403; ...)``.
The first stream is opened before anything listens, so a missing Pod, missing
rights or an API server that does not answer fail ``local_forward`` at once; what
fails later (the Pod side refusing a connection, a stream the API server refuses
meanwhile) is kept and raised when the ``with`` body fails.

``ready_istiod_pod`` picks the Ready istiod Pod of a revision through the service
layer; ``istiod_forwards`` combines the two for one cluster.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import traceback

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError

try:
    from kubernetes.client import ApiClient
    from kubernetes.stream import portforward as k8s_portforward
except ImportError:  # pragma: no cover - reported through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
    ApiClient = k8s_portforward = None
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None

ISTIOD_NAMESPACE = "istio-system"
LOOPBACK = "127.0.0.1"
CHUNK = 65536
# how long close() waits for each relay thread once its sockets are shut down
JOIN_TIMEOUT = 5.0


# --- pure helpers --------------------------------------------------------------


def pod_is_ready(pod):
    """Whether a Pod (a dict) runs, is Ready and is not being deleted."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_state(pod):
    """How a Pod that is not ready is described: 'terminating', its phase, or 'not Ready'."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "terminating"
    phase = (pod.get("status") or {}).get("phase") or "no phase"
    return "not Ready" if phase == "Running" else phase


def pick_ready_pod(pods):
    """The name of the longest-running Ready Pod (then by name), or None."""
    ready = [p for p in pods if pod_is_ready(p)]
    if not ready:
        return None
    ready.sort(key=lambda p: ((p["metadata"].get("creationTimestamp") or ""), p["metadata"]["name"]))
    return ready[0]["metadata"]["name"]


def istiod_selector(revision):
    """The label selector of the istiod Pods of ``revision`` ('default' for an unnamed revision)."""
    return "app=istiod,istio.io/rev=%s" % (revision or "default")


def forward_message(cluster, namespace, pod, port, reason):
    """'<cluster>: port-forward to <namespace>/<pod>:<port> failed: <reason>'."""
    return "%s: port-forward to %s/%s:%s failed: %s" % (cluster, namespace, pod, port, reason)


_HANDSHAKE = re.compile(r"Handshake status (\d{3})")
# what a 403 lacks: through a websocket, the API server (1.30 and later) checks both verbs
RIGHTS = "a port-forward needs the verbs get and create on pods/portforward"


def _status_message(body):
    """The ``message`` of a Kubernetes Status (JSON bytes or text), or None."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return json.loads(body).get("message") or None
    except (ValueError, AttributeError, TypeError):
        return None


def _refused(message, status):
    """'<the API's message> (HTTP <status>)', with the rights a port-forward needs after a 403."""
    message = (message or "the API server refused the stream").rstrip(": ")
    if status == 403:
        return "%s (HTTP 403; %s)" % (message, RIGHTS)
    return "%s (HTTP %s)" % (message, status)


def open_failure(exc, host):
    """(reason, HTTP status or None) of a failed attempt to open a port-forward stream.

    The client turns every failure into ``ApiException(status=0, reason=str(error))`` raised
    while handling the error itself: a refused websocket handshake (the API server's
    Status: 404 Pod not found, 403 forbidden, ...) or a socket error (the API server does
    not answer).  The original error is its ``__context__``; without it, the text is read."""
    cause = getattr(exc, "__context__", None)
    status = getattr(cause, "status_code", None)
    if status:
        return _refused(_status_message(getattr(cause, "resp_body", None)), status), status
    if isinstance(cause, OSError) or client.is_unreachable(cause):
        return "API server %s does not answer: %s" % (host, client.unreachable_reason(cause)), None
    text = str(getattr(exc, "reason", None) or exc)
    m = _HANDSHAKE.search(text)
    if m:
        status = int(m.group(1))
        message = _status_message(text.rsplit("-+-+-", 1)[-1].strip()) if "-+-+-" in text else None
        return _refused(message, status), status
    if client.is_unreachable(exc) or "Connection refused" in text or "timed out" in text:
        return "API server %s does not answer: %s" % (host, client.unreachable_reason(exc)), None
    return text.splitlines()[0][:300] if text else type(exc).__name__, None


# --- the forward ---------------------------------------------------------------


class LocalForward(object):
    """127.0.0.1:<ephemeral port> relayed to ``namespace/pod:port`` over pods/portforward.

    ``start()`` opens a first stream (so that a missing Pod or missing rights fail here),
    then listens; every accepted connection gets a stream of its own.  ``close()`` stops
    listening, shuts every relayed connection down and waits for the relay threads.
    ``errors`` holds the ClusterErrors of connections that failed after ``start()``.

    The forward uses an ApiClient of its own on the caller's configuration (same server,
    CA and credentials): ``kubernetes.stream.portforward`` swaps the request method of the
    ApiClient it is given while it opens a stream, which another thread using that client
    at the same time would go through; its streams are opened one at a time.
    """

    def __init__(self, api_client, namespace, pod, port, cluster=None):
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError("port must be between 1 and 65535, not %s" % port)
        self.namespace = namespace
        self.pod = pod
        self.port = port
        self._configuration = api_client.configuration
        self.cluster = cluster or self._configuration.host
        self._api = None
        self._core = None
        self._open_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = None
        self._address = None
        self._acceptor = None
        self._spare = None  # the stream opened by start(), for the first connection
        self._relays = {}  # thread -> (client socket, stream socket or None)
        self._errors = []
        self.accepted = 0

    # properties
    @property
    def address(self):
        """'127.0.0.1:<port>' once started (None before)."""
        return self._address

    @property
    def errors(self):
        with self._lock:
            return list(self._errors)

    def _fail(self, reason, status=None):
        return ClusterError(forward_message(self.cluster, self.namespace, self.pod, self.port, reason), status=status)

    def _record(self, err):
        with self._lock:
            self._errors.append(err)

    # streams
    def _new_stream(self):
        """The client's PortForward object of a new stream (``socket(port)``, ``error(port)``, ``close()``)."""
        if self._core is None:
            # the typed API is what kubernetes.stream.portforward calls; imported on first use only,
            # it costs most of a second
            from kubernetes.client.api.core_v1_api import CoreV1Api  # pylint: disable=import-outside-toplevel

            self._api = ApiClient(self._configuration)
            self._core = CoreV1Api(self._api)
        return k8s_portforward(self._core.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                               ports=str(self.port))

    def _open(self):
        """A new pods/portforward stream, one at a time; ClusterError on failure."""
        with self._open_lock:
            try:
                return self._new_stream()
            except Exception as e:  # the client wraps every failure into an ApiException of status 0
                reason, status = open_failure(e, self._configuration.host)
                raise self._fail(reason, status)

    # lifecycle
    def start(self):
        """Open the first stream, listen on 127.0.0.1:<ephemeral>; return the address."""
        if not HAS_KUBERNETES:
            raise ClusterError("%s: port-forward needs the kubernetes Python client: %s"
                               % (self.cluster, KUBERNETES_IMPORT_ERROR.strip().splitlines()[-1]))
        if self._listener is not None:
            return self._address
        self._spare = self._open()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((LOOPBACK, 0))
            listener.listen(16)
            listener.settimeout(0.25)
        except OSError as e:
            listener.close()
            self._spare.close()
            self._spare = None
            raise self._fail("cannot listen on %s: %s" % (LOOPBACK, e))
        self._listener = listener
        self._address = "%s:%d" % listener.getsockname()[:2]
        self._acceptor = threading.Thread(target=self._accept_loop, name="port-forward %s" % self._address)
        self._acceptor.daemon = True
        self._acceptor.start()
        return self._address

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                conn, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break  # the listener was closed
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    break
                stream, self._spare = self._spare, None
                self.accepted += 1
                relay = threading.Thread(target=self._relay, args=(conn, stream),
                                         name="port-forward %s <- %s:%d" % (self.address, peer[0], peer[1]))
                relay.daemon = True
                self._relays[relay] = (conn, None)
            relay.start()

    def _relay(self, conn, stream):
        """Relay one accepted connection over ``stream`` (or a new one) until both sides are done."""
        me = threading.current_thread()
        try:
            if stream is None:
                try:
                    stream = self._open()
                except ClusterError as e:
                    self._record(e)
                    return
            remote = stream.socket(self.port)
            with self._lock:
                if self._stopping.is_set():
                    return
                self._relays[me] = (conn, remote)
            upstream = threading.Thread(target=_pump, args=(conn, remote), name=me.name + " (up)")
            upstream.daemon = True
            upstream.start()
            # the Pod's side reports on the stream's error channel (e.g. a connection refused there); the
            # kubernetes client has read it when it ends our side of the stream: kept before the caller's
            # connection sees the end, so that local_forward can tell why
            _pump(remote, conn, before_end=lambda: self._stream_error(stream))
            upstream.join()
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
            with self._lock:
                self._relays.pop(me, None)

    def _stream_error(self, stream):
        error = stream.error(self.port)
        if error:
            self._record(self._fail(error.strip()))

    def close(self):
        """Stop listening, end every relayed connection, wait for the relay threads (again: a no-op)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(JOIN_TIMEOUT)
        with self._lock:
            relays = dict(self._relays)
            spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                spare.close()
        for conn, remote in relays.values():
            for sock in (conn, remote):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in a relay thread
        for relay in relays:
            relay.join(JOIN_TIMEOUT)
        if self._api is not None:
            self._api.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


def _pump(src, dst, before_end=None):
    """Copy ``src`` to ``dst`` until ``src`` ends, call ``before_end``, then end ``dst``'s writing side."""
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            if before_end is not None:
                before_end()
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


def _explained(forward, exc):
    """The forward's first error when ``exc`` (raised by the ``with`` body) may have been caused by it."""
    errors = forward.errors
    if not errors or isinstance(exc, MeshError):
        return None
    first = errors[0]
    said = str(exc).splitlines()[0][:200] if str(exc) else ""
    return ClusterError("%s (then the client failed: %s%s)" % (first.msg, type(exc).__name__, ": " + said if said else ""),
                        status=first.status)


@contextlib.contextmanager
def local_forward(api_client, namespace, pod, port, cluster=None):
    """Yield '127.0.0.1:<port>', relayed to ``namespace/pod:port`` through the API server.

    ``api_client`` is a kubernetes ApiClient (e.g. ``Service.connection.api``); ``cluster`` is
    how messages name the cluster (default: the API server's URL).  A missing Pod, missing
    rights (pods/portforward) or an unreachable API server raise a ClusterError at once; when
    the body fails (not with a MeshError of its own) after a relayed connection failed, the
    ClusterError of that connection is raised instead, from the body's exception."""
    forward = LocalForward(api_client, namespace, pod, port, cluster=cluster)
    forward.start()
    try:
        yield forward.address
    except Exception as e:
        forward.close()  # every relay done: every error of theirs kept
        err = _explained(forward, e)
        if err is None:
            raise
        raise err from e
    finally:
        forward.close()


def ready_istiod_pod(service, revision="default", namespace=ISTIOD_NAMESPACE):
    """The name of a Ready istiod Pod of ``revision`` (labels app=istiod, istio.io/rev), the
    longest running one; a ClusterError that names the cluster and what was found otherwise."""
    selector = istiod_selector(revision)
    pods = service.list("v1", "Pod", namespace=namespace, label_selector=selector)
    name = pick_ready_pod(pods)
    if name is None:
        found = ", ".join("%s (%s)" % (p["metadata"]["name"], pod_state(p)) for p in pods) or "none"
        raise ClusterError("%s: no Ready istiod Pod of revision %s in namespace %s (Pods labelled %s: %s)"
                           % (service.name, revision or "default", namespace, selector, found))
    return name


@contextlib.contextmanager
def istiod_forwards(service, ports, revision="default", namespace=ISTIOD_NAMESPACE):
    """Yield (pod, {port: '127.0.0.1:<local port>'}): each of ``ports`` of one Ready istiod Pod
    of ``revision`` on the cluster of ``service`` (a service.Service), e.g. (15010, 15014)."""
    pod = ready_istiod_pod(service, revision, namespace)
    api = service.connection.api
    with contextlib.ExitStack() as stack:
        addresses = {}
        for port in ports:
            addresses[port] = stack.enter_context(local_forward(api, namespace, pod, port, cluster=service.name))
        yield pod, addresses
