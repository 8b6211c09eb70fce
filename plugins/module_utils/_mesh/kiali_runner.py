# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Kiali across clusters (I/O): the view-only reader and its token in each remote
cluster, Kiali's remote cluster Secrets and its Deployment's mounts and hash annotation
in the Kiali cluster (meshfed.istio.kiali_remote_access).  No result, diff or message
carries a token or a kubeconfig.
"""

from __future__ import annotations

import datetime

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, kiali, names, remote_secret as rs
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import remote_secret_runner as rsr
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError


def _connection(remote):
    """The auth options of one remote (an empty string, as a role's template gives for an
    undefined variable, is no option)."""
    return dict((k, remote.get(k) if remote.get(k) != "" else None) for k in client.AUTH_KEYS)


def _our_secrets(kiali_svc, namespace):
    """{cluster: Secret} of the Kiali remote secrets this collection wrote in ``namespace``."""
    items = kiali_svc.list("v1", "Secret", namespace=namespace, label_selector="%s=true,%s=%s" % (
        kiali.MULTICLUSTER_LABEL, names.MANAGED_BY_LABEL, names.MANAGED_BY), required=True)
    ours = kiali.written_by_us(items)
    by_name = dict((i["metadata"]["name"], i) for i in items)
    return dict((c, by_name[n]) for c, n in ours.items())


def _remote(kiali_svc, params, i, remote, existing, now, check_mode):
    """Reader, token and planned Secret of one remote cluster: a dict with the cluster's
    summary (``public``), its reasons, the Secret to write (None when it stays) and the data
    the hash takes (None when unknown in check mode)."""
    name = remote["name"]
    ns = params["remote_namespace"]
    source = kiali_svc.connect(_connection(remote), name)
    server = remote.get("server") or source.host
    if params["verify_server"]:
        try:
            source.probe(server)
        except ClusterError as e:
            raise MeshError("remotes[%d].server: %s" % (i, e), field="remotes")
    try:
        touched = rsr.ensure_reader(source, ns, params["service_account"], check_mode, rules=kiali.READER_RULES,
                                    field="remote_namespace")
        current = rsr.current_of(existing, name) if existing is not None else None
        ca, token, token_until, reasons, created = rsr.plan_secret(
            params, source, ns, existing, current, server, now, check_mode, lambda: kiali.label_reasons(existing, name))
    except MeshError as e:
        if e.field in ("source", None):
            e.field = "remotes"
        e.msg = "remotes[%d] (cluster %s): %s" % (i, name, e.msg)
        raise
    if created:
        touched.append("Secret %s/%s" % (ns, rs.token_secret_name(params["service_account"])))
    public = {"cluster": name, "secret": kiali.secret_name(name), "server": server,
              "ca_sha256": rs.fingerprint(ca) if ca else None,
              "token_expires": token_until.strftime("%Y-%m-%dT%H:%M:%SZ") if token_until else None,
              "reasons": reasons, "remote_objects": touched}
    out = {"public": public, "reasons": reasons, "manifest": None, "existing": existing,
           "before": rs.describe(*current) if current and current[0] else {},
           "after": rs.describe(server, ca, token) if token else {"server": server}}
    if token is None:
        out["data"] = None  # check mode: a token would be made first
    elif reasons:
        lifetime = params["token_expiration"] if params["token_mode"] == "request" else None
        out["manifest"] = kiali.secret_manifest(name, params["namespace"], kiali.kubeconfig_text(name, server, ca, token),
                                                lifetime)
        out["data"] = out["manifest"]["data"]
    else:
        out["data"] = kiali.secret_data(existing)
    return out


def _deployment(kiali_svc, params, clusters, digest, check_mode):
    """Apply (dry run first) the Deployment's mounts and hash annotation; (changed, restart,
    before, after) where before/after are ``kiali.template_view``s."""
    ns, name, container = params["namespace"], params["deployment"], params["container"]
    live = kiali_svc.get("apps/v1", "Deployment", name, ns)
    if live is None:
        return None
    if clusters and not kiali.has_container(live, container):
        raise MeshError("container: Deployment %s/%s in %s has no container %s" % (ns, name, kiali_svc.name, container),
                        field="container")
    body = kiali.deployment_apply(name, ns, container, clusters, digest)
    planned = kiali_svc.apply(body, kiali.FIELD_MANAGER, dry_run=True)
    changed = kiali.template_differs(live, planned)
    if changed and not check_mode:
        planned = kiali_svc.apply(body, kiali.FIELD_MANAGER)
    return {"changed": changed, "restart": kiali.restarts(live, planned),
            "before": kiali.template_view(live, container), "after": kiali.template_view(planned, container)}


def run(params, kiali_svc, check_mode, diff, now=None):
    """Runner of meshfed.istio.kiali_remote_access; ``kiali_svc`` is Kiali's cluster."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ns = params["namespace"]
    remotes = params["remotes"] or []
    kiali.validate_remotes(remotes, params.get("cluster_name"))
    ours = _our_secrets(kiali_svc, ns)
    result = {"changed": False, "clusters": [], "removed": [], "remote_objects": {}, "restarted": False}
    before, after = {"secrets": {}}, {"secrets": {}}

    if params["state"] == "absent":
        for i, remote in enumerate(remotes):
            source = kiali_svc.connect(_connection(remote), remote["name"])
            try:
                gone = rsr.remove_reader(source, params["remote_namespace"], params["service_account"], check_mode,
                                         rules=kiali.READER_RULES)
            except MeshError as e:
                e.msg = "remotes[%d] (cluster %s): %s" % (i, remote["name"], e.msg)
                raise
            if gone:
                result["remote_objects"][remote["name"]] = gone
        wanted = []
    else:
        plans = [_remote(kiali_svc, params, i, r, ours.get(r["name"]), now, check_mode) for i, r in enumerate(remotes)]
        for p in plans:
            c = p["public"]["cluster"]
            result["clusters"].append(p["public"])
            if p["public"]["remote_objects"]:
                result["remote_objects"][c] = p["public"]["remote_objects"]
            if p["reasons"]:
                before["secrets"][c], after["secrets"][c] = p["before"], p["after"]
        wanted = [r["name"] for r in remotes]

    stale = rs.stale(ours, wanted)
    result["removed"] = [kiali.secret_name(c) for c in stale]
    for c in stale:
        before["secrets"][c], after["secrets"][c] = rs.describe(*rsr.current_of(ours[c], c)), {}

    if params["state"] == "present":
        datas = [p["data"] for p in plans]
        digest = None if any(d is None for d in datas) else kiali.secrets_hash(
            dict((kiali.secret_name(p["public"]["cluster"]), p["data"]) for p in plans))
        if not check_mode:
            for p in plans:
                if p["manifest"] is not None:
                    kiali_svc.create_or_replace(p["manifest"], p["existing"])
    else:
        digest = ""
    result["secrets_sha256"] = digest or None

    if digest is None:
        # check mode, and a token would be made first: the hash will change
        deployment = {"changed": True, "restart": True, "before": {}, "after": {"secrets_sha256": "<new>"}}
        live = kiali_svc.get("apps/v1", "Deployment", params["deployment"], ns)
        if live is not None:
            deployment["before"] = kiali.template_view(live, params["container"])
            deployment["after"] = dict(kiali.template_view(live, params["container"]), secrets_sha256="<new>")
    else:
        deployment = _deployment(kiali_svc, params, wanted, digest, check_mode)
    if deployment is None:
        if params["state"] == "present" and not check_mode:
            raise MeshError("deployment: Deployment %s/%s not found in %s (apply samples/addons/kiali.yaml first)"
                            % (ns, params["deployment"], kiali_svc.name), field="deployment")
        if params["state"] == "present":
            result["pending"] = ["Deployment %s/%s (not there yet)" % (ns, params["deployment"])]
    else:
        before["deployment"], after["deployment"] = deployment["before"], deployment["after"]
        result["restarted"] = bool(deployment["restart"])

    if not check_mode:
        for c in stale:
            kiali_svc.delete("v1", "Secret", kiali.secret_name(c), ns)

    result["changed"] = bool(before["secrets"] or result["remote_objects"] or (deployment or {}).get("changed"))
    if diff and result["changed"]:
        result["diff"] = {"before": before, "after": after}
    return result
