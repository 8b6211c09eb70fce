# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The verbs every runner needs, on one cluster, through the one client of client.py.

Objects go in and come out as plain dicts.  Every failure is a ``ClusterError``
that names the cluster, the object (kind, namespace/name) and the API's reason;
an API server that does not answer is said in plain words.  Nothing here decides
*what* to write: that is the pure planning of each runner.
"""

from __future__ import annotations

import json
import time

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError

NAMESPACE = ("v1", "Namespace")


def ref(kind, name, namespace=None):
    """'Kind namespace/name' (or 'Kind name' for cluster-scoped objects)."""
    return "%s %s" % (kind, "%s/%s" % (namespace, name) if namespace else name)


def obj_ref(obj):
    meta = obj.get("metadata") or {}
    return ref(obj.get("kind"), meta.get("name"), meta.get("namespace"))


class Service(object):
    """One cluster, reached with the auth options ``params`` (kubernetes.core's names).

    ``name`` is how messages call the cluster (default: its context or host).  The
    connection is made on first use and shared by every Service of the same options
    in this module run.
    """

    def __init__(self, params, name=None):
        self.params = dict((k, params.get(k)) for k in client.AUTH_KEYS)
        self.name = name or self.params.get("context") or self.params.get("host") or "the current context"
        self._conn = None
        self._resources = {}

    # --- connection --------------------------------------------------------------

    def connect(self, params, name=None):
        """A Service for another cluster (or other credentials), sharing the connection cache."""
        return Service(params, name)

    @property
    def connection(self):
        if self._conn is None:
            self._conn = client.connect(self.params)
        return self._conn

    @property
    def host(self):
        return self.connection.host

    def ca_cert(self):
        """The CA certificate (bytes) this connection trusts the API server with, or None."""
        path = self.connection.ca_cert_path
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    def _fail(self, what, exc):
        """The ClusterError for ``exc`` raised while doing ``what``."""
        if client.is_unreachable(exc):
            return ClusterError("%s: API server %s does not answer: %s (while %s)" % (
                self.name, self._host_or_unknown(), client.unreachable_reason(exc), what))
        reason, status = client.api_reason(exc)
        return ClusterError("%s: %s: %s%s" % (self.name, what, reason, " (HTTP %s)" % status if status else ""),
                            status=status)

    def _host_or_unknown(self):
        try:
            return self.host
        except ClusterError:
            return "?"

    def _guard(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # urllib3's errors share no base class with the client's
            if client.is_api_error(e) or client.is_unreachable(e):
                raise self._fail(what, e)
            raise

    @property
    def dynamic(self):
        return self._guard("reading the API's discovery", lambda: self.connection.dynamic)

    def resource(self, api_version, kind, required=True):
        """The API resource of a kind; None when the cluster does not serve it and not ``required``."""
        key = (api_version, kind)
        if key not in self._resources:
            dyn = self.dynamic
            try:
                self._resources[key] = self._guard("looking up the %s API (%s)" % (kind, api_version),
                                                   dyn.resources.get, api_version=api_version, kind=kind)
            except Exception as e:
                if not client.is_unserved(e):
                    raise
                self._resources[key] = None
        res = self._resources[key]
        if res is None and required:
            raise ClusterError("%s: the %s API (%s) is not served by this cluster%s" % (
                self.name, kind, api_version, " (is its CRD installed?)" if "." in api_version.split("/")[0] else ""))
        return res

    def _rediscover(self):
        """Forget the resolved kinds and refresh the client's discovery cache."""
        self._resources.clear()
        self._guard("reading the API's discovery", self.dynamic.resources.invalidate_cache)

    def _request(self, what, call, *args, **kwargs):
        """``call(*args, serialize=False, **kwargs)`` with the body read (so the connection
        returns to the pool) and decoded; ClusterError on failure."""
        response = self._guard(what, call, *args, serialize=False, **kwargs)
        data = response.data
        release = getattr(response, "release_conn", None)
        if release is not None:
            release()
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    # --- the verbs -------------------------------------------------------------

    def version(self):
        """The cluster's Kubernetes version (gitVersion)."""
        body = self._request("reading the Kubernetes version", self.dynamic.request, "get", "/version")
        return (body or {}).get("gitVersion")

    def get(self, api_version, kind, name, namespace=None):
        """The object, or None when it (or its kind) does not exist."""
        res = self.resource(api_version, kind, required=False)
        if res is None:
            return None
        try:
            return self._request("reading " + ref(kind, name, namespace), self.dynamic.get, res, name=name,
                                 namespace=namespace if res.namespaced else None)
        except ClusterError as e:
            if e.status == 404:
                return None
            raise

    def list(self, api_version, kind, namespace=None, label_selector=None, required=False):
        """Every object of a kind (in ``namespace``, or cluster-wide), one call; [] when the
        kind is not served (unless ``required``)."""
        where = " in namespace %s" % namespace if namespace else ""
        sel = " labelled %s" % label_selector if label_selector else ""
        for attempt in (1, 2):
            res = self.resource(api_version, kind, required=required)
            if res is None:
                return []
            try:
                body = self._request("listing %s objects%s%s" % (kind, where, sel), self.dynamic.get, res,
                                     namespace=namespace if res.namespaced else None, label_selector=label_selector)
                break
            except ClusterError as e:
                # a LIST answers 404 only when the kind is no longer served (a CRD removed since
                # the discovery cache, shared by every run, was written): rediscover, once
                if e.status != 404 or attempt == 2:
                    raise
                self._rediscover()
        items = (body or {}).get("items") or []
        for item in items:  # a LIST's items carry neither
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj, field_manager, dry_run=False, force=False):
        """Server-side apply of ``obj``; the object as the server has (or, dry run, would have)
        it.  A conflict with another field manager is reported, not forced, unless ``force``."""
        meta = obj["metadata"]
        res = self.resource(obj["apiVersion"], obj["kind"])
        what = "%sapply of %s" % ("dry-run " if dry_run else "", obj_ref(obj))
        # sent as the UTF-8 JSON it is (an apply patch is read as YAML, which refuses the \ud83d-style
        # escapes json.dumps would write for characters beyond the BMP, as Grafana's dashboards hold)
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return self._request(what, self.dynamic.server_side_apply, res, body=body, name=meta["name"],
                             namespace=meta.get("namespace") if res.namespaced else None,
                             field_manager=field_manager, force_conflicts=bool(force),
                             dry_run="All" if dry_run else None)

    def create(self, obj, dry_run=False):
        """Create; the object as the server has (or, dry run, would have) it, admission
        webhooks included."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        what = "%screating %s" % ("dry-run " if dry_run else "", obj_ref(obj) if meta.get("name") else obj["kind"])
        return self._request(what, self.dynamic.create, res, body=obj,
                             namespace=meta.get("namespace") if res.namespaced else None,
                             dry_run="All" if dry_run else None)

    def replace(self, obj):
        """Replace; ``obj`` carries the resourceVersion it was read at (a conflict, not a lost update)."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        return self._request("replacing " + obj_ref(obj), self.dynamic.replace, res, body=obj, name=meta["name"],
                             namespace=meta.get("namespace") if res.namespaced else None)

    def create_or_replace(self, obj, existing):
        """Create ``obj`` when ``existing`` (what a get returned) is None, else replace it at
        ``existing``'s resourceVersion.  Returns 'created' or 'replaced'."""
        if existing is None:
            self.create(obj)
            return "created"
        body = dict(obj, metadata=dict(obj["metadata"],
                                       resourceVersion=existing["metadata"]["resourceVersion"]))
        self.replace(body)
        return "replaced"

    def delete(self, api_version, kind, name, namespace=None):
        """Delete; True when something was deleted, False when it (or its kind) was not there."""
        res = self.resource(api_version, kind, required=False)
        if res is None:
            return False
        try:
            self._request("deleting " + ref(kind, name, namespace), self.dynamic.delete, res, name=name,
                          namespace=namespace if res.namespaced else None)
        except ClusterError as e:
            if e.status == 404:
                return False
            raise
        return True

    def namespace_exists(self, name):
        """Whether a namespace exists; one we may not read (403) counts as existing."""
        try:
            return self.get(*NAMESPACE, name=name) is not None
        except ClusterError as e:
            if e.status == 403:
                return True
            raise

    def ensure_namespace(self, name, check_mode=False):
        """Create the namespace when missing; True when it was (or would be) created."""
        if self.namespace_exists(name):
            return False
        if not check_mode:
            try:
                self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            except ClusterError as e:
                if e.status != 409:
                    raise
                return False
        return True

    def create_token(self, namespace, service_account, audiences=None, expiration=None):
        """A TokenRequest token of a service account."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"audiences": list(audiences or []), "expirationSeconds": expiration}}
        path = "/api/v1/namespaces/%s/serviceaccounts/%s/token" % (namespace, service_account)
        out = self._request("requesting a token of %s" % ref("ServiceAccount", service_account, namespace),
                            self.dynamic.request, "post", path, body=body)
        return ((out or {}).get("status") or {}).get("token")

    def probe(self, server, timeout=10):
        """Fail when ``server`` does not answer as a Kubernetes API server trusted with this
        connection's CA (GET /version there, with this connection's credentials)."""
        api = self.connection.with_host(server)
        try:
            response = api.call_api("GET", server.rstrip("/") + "/version", header_params={"Accept": "application/json"},
                                    _request_timeout=timeout)
            response.read()
            if not 200 <= response.status <= 299:
                raise ClusterError("HTTP %s" % response.status)
        except Exception as e:  # refused, DNS, TLS, timeout, HTTP error: all mean "unusable"
            reason = client.unreachable_reason(e) if client.is_unreachable(e) else str(e).splitlines()[0][:300]
            raise ClusterError("%s does not answer as the API server of %s from the controller: %s"
                               % (server, self.name, reason))

    def wait(self, what, pending, timeout, interval=1.0):
        """Call ``pending()`` (a list of what is not ready yet) until it is empty; after
        ``timeout`` seconds a ClusterError names what is still not ready."""
        deadline = time.monotonic() + timeout
        while True:
            left = pending()
            if not left:
                return
            if time.monotonic() > deadline:
                raise ClusterError("%s: %s: still not ready after %ds: %s" % (
                    self.name, what, timeout, ", ".join(str(x) for x in left)))
            time.sleep(interval)
