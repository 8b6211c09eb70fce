# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""verify_mesh: read every cluster once (API, istiod's debug endpoints, istiod's xDS), then
let verify.evaluate decide.

Clusters are read in parallel, each with one list per kind.  A cluster that does not
answer is a failed check, never a crash: the rest of the mesh is still reported.  No
secret leaves this module: a remote secret's token is used in memory to list and to ask
a SelfSubjectAccessReview, and only the answers are kept.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime
import json
import os
import tempfile
import threading
import urllib.error

from ansible.module_utils.urls import open_url

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import remote_secret as rs_mod
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify, xds
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError

SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "istio-system")
# what a read-only reader must not do in the cluster it reads (asked with SelfSubjectAccessReview)
WRITES = (("create", "", "pods", "default"), ("delete", "", "services", "istio-system"),
          ("update", "", "secrets", "istio-system"))
INJECTION_SELECTORS = ("istio-injection=enabled", "istio.io/rev")


# --- istiod: its debug port, readiness port and xDS port --------------------------------------


class Istiod(object):
    """Where a cluster's istiod answers: addresses given (an istiod outside the cluster, or
    a port-forward made elsewhere), host:port each."""

    def __init__(self, name, addresses, timeout):
        self.name = name
        self.debug = addresses.get("debug")
        self.http = addresses.get("http")
        self.xds = addresses.get("xds")
        self.timeout = timeout

    def _get(self, address, path):
        url = "http://%s%s" % (address, path)
        try:
            r = open_url(url, timeout=self.timeout, use_proxy=False)  # loopback or a port-forward: never a proxy
            return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, b""
        except (OSError, ValueError) as e:
            raise ClusterError("%s: istiod does not answer at %s: %s" % (self.name, url, getattr(e, "reason", e)))

    def json(self, path):
        status, body = self._get(self.debug, path)
        if status != 200:
            raise ClusterError("%s: istiod answered HTTP %s to %s" % (self.name, status, path))
        try:
            return json.loads(body or b"null")
        except ValueError:
            raise ClusterError("%s: istiod's %s is not JSON" % (self.name, path))

    def facts(self):
        out = {}
        try:
            status, body = self._get(self.http, "/ready")
            out["ready"] = status == 200
            out["ready_reason"] = "GET /ready answered HTTP %s" % status
            status, body = self._get(self.debug, "/version")
            out["version"] = body.decode(errors="replace").strip().split("-Clean")[0] if status == 200 else None
            out["clusterz"] = self.json("/debug/clusterz") or []
            out["networkz"] = self.json("/debug/networkz") or []
        except ClusterError as e:
            out.setdefault("ready", False)
            out["error"] = str(e)
        return out


# --- one cluster -------------------------------------------------------------------------------------


def _read(fn, default=None):
    try:
        return fn(), None
    except MeshError as e:
        return default, str(e)


def cluster_facts(service, spec, params, now):
    """Everything verify needs of one cluster that its own API and istiod tell."""
    name = spec["name"]
    c = {"name": name, "network": spec.get("network") or "", "role": spec.get("role") or "primary",
         "control_plane": spec.get("control_plane"), "discovers": list(spec.get("discovers") or []),
         "gateway_address": spec.get("gateway_address") or "", "host": spec.get("host")}
    version, err = _read(service.version)
    if err:
        c["api_error"] = err
        return c
    c["kubernetes_version"] = version
    cm = service.get("v1", "ConfigMap", "istio-ca-root-cert", "istio-system")
    c["root_cert_pems"] = verify.pem_blocks((cm or {}).get("data", {}).get("root-cert.pem")) if cm else None
    secret = service.get("v1", "Secret", "cacerts", "istio-system")
    if secret is not None:
        data = secret.get("data") or {}
        # the intermediate's certificate only: the key is never read out of the secret's data
        c["cacerts"] = {"ca-cert.pem": base64.b64decode(data.get("ca-cert.pem") or "").decode(errors="replace")}
    else:
        c["cacerts"] = None
    ew = service.get("v1", "Service", "istio-eastwestgateway", "istio-system")
    lb = [i.get("ip") or i.get("hostname") for i in (((ew or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
    c["lb_addresses"] = [a for a in lb if a]
    if c["lb_addresses"] and not spec.get("gateway_address"):
        c["gateway_address"] = c["lb_addresses"][0]
    c["has_eastwest"] = ew is not None
    c["webhook"] = webhook_facts(service, name)
    c["live"] = live_facts(service, name)
    if c["role"] != "remote":
        c["remote_secret_objects"] = service.list("v1", "Secret", "istio-system", label_selector="istio/multiCluster=true")
        c["global_entries_raw"] = [e for e in service.list("networking.istio.io/v1", "ServiceEntry")
                                   if any(h.endswith(".global") for h in (e.get("spec") or {}).get("hosts") or [])]
        c["virtual_services"] = service.list("networking.istio.io/v1", "VirtualService")
    c["services"] = local_services(service, params.get("exclude_namespaces") or SYSTEM_NAMESPACES)
    return c


def local_services(service, excluded):
    """[{host, namespace, name, ports, ready}] of the Services with ready endpoints."""
    ready = {}
    for sl in service.list("discovery.k8s.io/v1", "EndpointSlice"):
        meta = sl.get("metadata") or {}
        svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        n = sum(1 for e in sl.get("endpoints") or [] if (e.get("conditions") or {}).get("ready") is not False)
        key = (meta.get("namespace"), svc)
        ready[key] = ready.get(key, 0) + n
    out = []
    for s in service.list("v1", "Service"):
        meta, spec = s.get("metadata") or {}, s.get("spec") or {}
        ns, name = meta.get("namespace"), meta.get("name")
        if ns in excluded or (ns == "default" and name == "kubernetes") or not ready.get((ns, name)):
            continue
        ports = sorted({p["port"] for p in spec.get("ports") or [] if (p.get("protocol") or "TCP") == "TCP"})
        if ports:
            out.append({"host": "%s.%s.svc.cluster.local" % (name, ns), "namespace": ns, "name": name, "ports": ports,
                        "ready": ready[(ns, name)]})
    return sorted(out, key=lambda x: x["host"])


def webhook_facts(service, name):
    """The injection webhook, as the API server calls it: a dry-run Pod in a namespace labelled
    for injection comes back with the istio-proxy container."""
    namespaces = []
    for selector in INJECTION_SELECTORS:
        namespaces.extend(n["metadata"]["name"] for n in service.list("v1", "Namespace", label_selector=selector))
    if not namespaces:
        return {"status": verify.NOT_RUN, "reason": "not run: %s has no namespace labelled for injection "
                "(istio-injection=enabled or istio.io/rev)" % name}
    ns = sorted(namespaces)[0]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "meshfed-verify-", "namespace": ns, "labels": {"app": "meshfed-verify"}},
           "spec": {"containers": [{"name": "app", "image": "registry.invalid/meshfed-verify:none"}]}}
    try:
        out = service.create(pod, dry_run=True) or {}
    except ClusterError as e:
        return {"status": verify.FAIL, "reason": "%s: the API server cannot use the injection webhook for namespace %s: %s"
                % (name, ns, str(e).split(": ", 1)[-1][:400]), "namespace": ns}
    spec = out.get("spec") or {}
    names = [c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    if "istio-proxy" in names:
        return {"status": verify.PASS, "reason": "%s: a Pod in namespace %s gets the istio-proxy sidecar from the injection "
                "webhook (dry run)" % (name, ns), "namespace": ns}
    return {"status": verify.FAIL, "reason": "%s: a Pod in namespace %s, labelled for injection, gets no istio-proxy "
            "container (dry run): the injection webhook did not inject" % (name, ns), "namespace": ns}


def live_facts(service, name):
    nodes = service.list("v1", "Node")
    fake = [n for n in nodes if ((n.get("metadata") or {}).get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake"]
    if nodes and len(fake) == len(nodes):
        return {"status": verify.NOT_RUN, "reason": "not run: simulated pods (%s's nodes are kwok nodes: no container "
                "runs, so no request can be sent)" % name}
    return {"status": verify.NOT_RUN, "reason": "not run: a live request (curl through the API's exec) is not part of "
            "this version; the data-plane checks read what istiod sends the proxies"}


# --- what needs another cluster ---------------------------------------------------------------------


def remote_secret_facts(service_factory, secret, timeout):
    """What the token of one remote secret may do in the cluster it names."""
    data = secret.get("data") or {}
    target = ((secret.get("metadata") or {}).get("annotations") or {}).get(rs_mod.CLUSTER_ANNOTATION)
    if not target and len(data) == 1:
        target = list(data)[0]
    text = base64.b64decode(data.get(target) or "").decode(errors="replace") if target else ""
    server, ca, token = rs_mod.parse_kubeconfig(text)
    out = {"secret": "istio-system/%s" % secret["metadata"]["name"], "server": server, "target": target}
    if not (server and token):
        out["list"] = {"ok": False, "reason": "its kubeconfig has no server or token"}
        return target, out
    with tempfile.TemporaryDirectory(prefix="meshfed-verify-") as tmp:
        params = {"host": server, "api_key": token}
        if ca:
            path = os.path.join(tmp, "ca.crt")
            with open(path, "wb") as f:
                f.write(ca)
            params["ca_cert"] = path
        svc = service_factory(params, "%s (remote secret)" % target)
        try:
            out["list"] = {"ok": True, "count": len(svc.list("v1", "Service", required=True))}
        except ClusterError as e:
            out["list"] = {"ok": False, "status": e.status,
                           "reason": ("%s (%s)" % (_api_message(e), e.status)) if e.status else _api_message(e)}
            return target, out
        writes = {}
        for verb, group, resource, ns in WRITES:
            review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": ns}}}
            try:
                answer = svc.create(review) or {}
            except ClusterError:
                continue
            writes["%s %s" % (verb, resource)] = bool((answer.get("status") or {}).get("allowed"))
        out["writes"] = writes
    return target, out


def _api_message(e):
    text = str(e)
    return text.split(": ", 2)[-1] if text.count(": ") >= 2 else text


def global_entries(c, clusters):
    """The `.global` ServiceEntries of cluster ``c`` that point at another cluster's gateway."""
    by_gateway = {}
    for o in clusters:
        for addr in [o.get("gateway_address")] + list(o.get("lb_addresses") or []):
            if addr:
                by_gateway.setdefault(addr, o["name"])
    out = []
    for se in c.get("global_entries_raw") or []:
        spec, meta = se.get("spec") or {}, se.get("metadata") or {}
        for host in spec.get("hosts") or []:
            if not host.endswith(".global"):
                continue
            for ep in spec.get("endpoints") or []:
                addr = ep.get("address") or ""
                owner = by_gateway.get(addr)
                if owner is None or owner == c["name"]:
                    continue
                labels = ep.get("labels") or {}
                out.append({"host": host, "name": meta.get("name"), "namespace": meta.get("namespace"),
                            "ports": sorted({p.get("number") for p in spec.get("ports") or [] if p.get("number")}),
                            "address": addr, "network": ep.get("network") or "", "cluster": owner,
                            "mtls_label": labels.get("security.istio.io/tlsMode") == "istio"})
    return out


def route_hosts(c, clusters):
    """{namespace: [(host, port)]} of the VirtualServices of ``c`` whose hosts are services
    of the mesh (their ports from the Services or `.global` entries)."""
    ports = {}
    for o in clusters:
        for s in o.get("services") or []:
            ports.setdefault(s["host"], set()).update(s["ports"])
    for e in c.get("global_entries") or []:
        ports.setdefault(e["host"], set()).update(e["ports"])
    out = {}
    for vs in c.get("virtual_services") or []:
        ns = vs["metadata"]["namespace"]
        for h in (vs.get("spec") or {}).get("hosts") or []:
            full = h if "." in h else "%s.%s.svc.cluster.local" % (h, ns)
            if full.count(".") == 1 and not full.endswith(".global"):
                full += ".svc.cluster.local"
            for p in sorted(ports.get(full) or []):
                out.setdefault(ns, set()).add((full, p))
    return dict((k, sorted(v)) for k, v in out.items())


# --- the run -------------------------------------------------------------------------------------------


def read_roots(params):
    """The mesh's root bundle; [] when none is given, or when the file does not exist yet (a check
    run ahead of the CA's creation: the checks against it then say they were not run)."""
    path = params.get("root_cert")
    if not path or not os.path.exists(path):
        return []
    try:
        with open(path) as f:
            return verify.pem_blocks(f.read())
    except OSError as e:
        raise MeshError("root_cert: cannot read %s: %s" % (path, e), field="root_cert")


def gather(params, service, now):
    """The facts of the whole mesh: every cluster read in parallel, then the xDS views."""
    with contextlib.ExitStack() as forwards:
        return _gather(params, now, forwards)


# istiod's ports in its Pod: plaintext xDS, monitoring (debug), readiness
ISTIOD_PORTS = {"xds": 15010, "debug": 15014, "http": 8080}


def istiod_addresses(svc, spec, forwards, lock):
    """Where this cluster's istiod answers: the addresses given, else local ports forwarded
    to a Ready istiod Pod through the API server (kept open by ``forwards``, an ExitStack)."""
    given = dict((k, v) for k, v in (spec.get("istiod") or {}).items() if v)
    if given.get("xds") and given.get("debug") and given.get("http"):
        return given, None
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import portforward

    ports = tuple(p for k, p in sorted(ISTIOD_PORTS.items()) if k not in given)
    with lock:  # an ExitStack is not made for threads
        pod, local = forwards.enter_context(portforward.istiod_forwards(svc, ports, spec.get("revision") or "default"))
    out = dict((k, given.get(k) or local[p]) for k, p in ISTIOD_PORTS.items())
    return out, pod


def _gather(params, now, forwards):
    specs = params["clusters"]
    timeout = params.get("timeout") or 30
    lock = threading.Lock()
    endpoints = {}  # cluster -> {xds, debug, http}

    def svc_for(spec):
        # the spec's `host` is the inventory host, not an API server: only the kubeconfig reaches the cluster
        auth = {"kubeconfig": spec.get("kubeconfig"), "context": spec.get("context")}
        return Service(auth, spec["name"])

    def one(spec):
        svc = svc_for(spec)
        c = cluster_facts(svc, spec, params, now)
        if c.get("api_error") or c["role"] == "remote":
            return c
        try:
            addresses, pod = istiod_addresses(svc, spec, forwards, lock)
        except MeshError as e:
            c["istiod"] = {"ready": False, "error": str(e)}
        else:
            endpoints[spec["name"]] = addresses
            c["istiod"] = Istiod(spec["name"], addresses, min(timeout, 10)).facts()
            c["istiod"]["revision"] = spec.get("revision") or "default"
            c["istiod"]["reached"] = "port-forward to istio-system/%s" % pod if pod else "the addresses given"
        secrets = {}
        for secret in c.pop("remote_secret_objects", []):
            target, facts = remote_secret_facts(Service, secret, timeout)
            if target:
                secrets[target] = facts
        c["remote_secrets"] = secrets
        return c

    workers = max(1, min(len(specs), int(params.get("parallel") or 4)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        clusters = list(pool.map(one, specs))
    by_name = dict((c["name"], c) for c in clusters)
    multi_network = len({c["network"] for c in clusters}) > 1

    jobs = []
    for c in clusters:
        if c.get("api_error") or c["role"] == "remote" or c["name"] not in endpoints:
            continue
        c["global_entries"] = global_entries(c, clusters)
        c["route_hosts"] = route_hosts(c, clusters)
        namespaces = set(c["route_hosts"])
        for dst in c["discovers"]:
            namespaces.update(s["namespace"] for s in (by_name.get(dst) or {}).get("services") or [])
        namespaces.update(e["namespace"] for e in c["global_entries"])
        for ns in sorted(namespaces):
            jobs.append((c, "sidecar", ns))
        if multi_network and c.get("has_eastwest"):
            jobs.append((c, "router", "istio-system"))

    def fetch(job):
        c, kind, ns = job
        addr = endpoints[c["name"]]["xds"]
        try:
            return xds.fetch(addr, kind, c["name"], ns, c["network"], params.get("mesh_id"),
                             (c.get("istiod") or {}).get("version") or "", timeout=timeout)
        except xds.XdsError as e:
            return {"error": str(e)}

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(len(jobs), 8))) as pool:
        snaps = list(pool.map(fetch, jobs))
    for (c, kind, ns), snap in zip(jobs, snaps):
        if kind == "router":
            c["gateway_xds"] = snap
        else:
            c.setdefault("xds", {})[ns] = snap
    for c in clusters:
        if c.get("api_error") or c["role"] == "remote":
            continue
        if c["name"] not in endpoints:
            c["xds"] = {}
            c["xds_error"] = "%s's istiod cannot be reached" % c["name"]
        c.pop("global_entries_raw", None)
        c.pop("virtual_services", None)
    roots = read_roots(params)
    missing = params.get("root_cert") if params.get("root_cert") and not roots else None
    return {"mesh_id": params.get("mesh_id"), "generated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "mesh_roots": roots, "mesh_roots_missing": missing, "clusters": clusters, "vms": []}


def run(params, service, check_mode, diff):
    """The module's runner: read, evaluate, and write the report files when asked.

    The files hold what was verified, not when (no timestamp, no duration): a re-run that
    finds the same mesh rewrites nothing and reports ``changed`` false.  In check mode
    nothing is written; ``changed`` says whether the files would change."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify_render, verify_report

    now = datetime.datetime.now(datetime.timezone.utc)
    t0 = datetime.datetime.now()
    facts = gather(params, service, now)
    result = verify.evaluate(facts, now, params.get("warn_days") or 30)
    out = {"changed": False, "ok": result["ok"], "summary": result["summary"],
           "failures": [c["reason"] for c in verify.failures(result)], "lines": verify_report.summary_lines(result)}
    if params.get("report_dir"):
        stable = dict(result, generated=None)
        report = verify_render.write_reports(stable, params["report_dir"], params.get("report_name") or "mesh-verify",
                                             field="report_dir", basename_field="report_name", check_mode=check_mode)
        out["changed"] = bool(report.pop("changed", False))
        out["report"] = report
    result["seconds"] = round((datetime.datetime.now() - t0).total_seconds(), 2)
    out["verification"] = result
    return out
