# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Orchestration of meshfed.istio.istioctl_install.

istioctl renders the manifest (``istioctl manifest generate``) and installs it;
this module decides whether an install is needed by asking the API server what
a server-side apply of each rendered object would change (a dry run), so the
comparison uses the server's own defaulting, and runs ``istioctl install`` only
when something differs.
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import istio
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, InstallError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

DRIFT_FIELD_MANAGER = "meshfed-drift-check"
# Kinds that istioctl prunes and that we check for objects a previous install
# left behind (a component that was switched off, for example).
PRUNE_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "ServiceAccount"))
MAX_VALUE_CHARS = 200
COMPARE_WORKERS = 8


class Istioctl(object):
    """argv-only wrapper around the istioctl binary (never a shell)."""

    def __init__(self, run_command, path, kubeconfig=None, context=None):
        self._run = run_command
        self.path = path
        self.kube_args = []
        if kubeconfig:
            self.kube_args += ["--kubeconfig", kubeconfig]
        if context:
            self.kube_args += ["--context", context]

    def run(self, args, what, kube=True):
        argv = [self.path] + list(args) + (self.kube_args if kube else [])
        rc, out, err = self._run(argv)
        if rc != 0:
            tail = "\n".join((err or out or "").strip().splitlines()[-15:])
            raise InstallError("istioctl %s failed (exit %d): %s" % (what, rc, tail), field="istioctl",
                               result={"cmd": argv, "rc": rc})
        return out

    def version(self):
        try:
            out = self.run(["version", "--remote=false", "-o", "json"], "version", kube=False)
        except OSError as e:
            raise InstallError("istioctl: cannot run %s: %s" % (self.path, e), field="istioctl")
        try:
            return json.loads(out)["clientVersion"]["version"]
        except (ValueError, KeyError, TypeError):
            raise InstallError("istioctl: unexpected output of '%s version -o json': %s" % (self.path, out[:200]),
                               field="istioctl")


def _value_at(obj, path):
    cur = obj
    for part in path.replace("]", "").replace("[", ".").split("."):
        if cur is None:
            return None
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                return None
        elif isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return None
    return cur


def _short(value):
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


def compare_object(service, obj):
    """{'action': 'create'|'update'|None, 'fields': [...], 'before': {}, 'after': {}} for one rendered object."""
    ref = istio.object_ref(obj)
    res = service.resource(obj["apiVersion"], obj["kind"], required=False)
    if res is None:
        return {"action": "create", "fields": [], "reason": "its API (%s) is not served yet" % obj["apiVersion"]}
    live = service.get(obj["apiVersion"], obj["kind"], ref["name"], ref["namespace"] if res.namespaced else None)
    if live is None:
        return {"action": "create", "fields": []}
    # a dry run: what the server's defaulting makes of the rendered object, nothing written
    applied = service.apply(istio.without_owner_labels(obj), DRIFT_FIELD_MANAGER, dry_run=True, force=True)
    before, after = istio.normalize(live), istio.normalize(applied)
    fields = istio.diff_paths(before, after)
    if not fields:
        return {"action": None, "fields": []}
    secret = obj.get("kind") == "Secret"
    return {"action": "update", "fields": fields,
            "before": dict((f, "<hidden>" if secret else _short(_value_at(before, f))) for f in fields),
            "after": dict((f, "<hidden>" if secret else _short(_value_at(after, f))) for f in fields)}


def labelled_objects(service, selector, kinds):
    """Refs of the objects of ``kinds`` ((api_version, kind) pairs) that ``selector`` matches, cluster-wide."""
    out = []
    for api_version, kind in kinds:
        for item in service.list(api_version, kind, label_selector=selector, required=True):
            m = item["metadata"]
            out.append({"kind": kind, "namespace": m.get("namespace"), "name": m["name"], "api_version": api_version})
    return out


def leftovers(service, wanted_refs, iop, version):
    """Objects of an earlier install that `istioctl install` would prune: those its
    prune selector matches (istio.prune_selector) and the manifest no longer has."""
    wanted = set((r["kind"], r["namespace"], r["name"]) for r in wanted_refs)
    return [o for o in labelled_objects(service, istio.prune_selector(iop, version), PRUNE_KINDS)
            if (o["kind"], o["namespace"], o["name"]) not in wanted]


def installed_objects(service, revision, purge):
    """Deployments (and Services) an install of ``revision`` (or any, with purge) left in the cluster."""
    selector = istio.COMPONENT_LABEL if purge else "%s,%s=%s" % (
        istio.COMPONENT_LABEL, istio.REVISION_LABEL, revision or "default")
    return labelled_objects(service, selector, PRUNE_KINDS[:2])


def preflight(params, service, run_command):
    """Versions of istioctl and the cluster, checked; (Istioctl, facts)."""
    ctl = Istioctl(run_command, params["istioctl"], params.get("kubeconfig"), params.get("context"))
    version = ctl.version()
    istio.check_istioctl_version(version, params.get("istio_version"))
    try:
        k8s_version = service.version()
    except ClusterError as e:
        raise InstallError("context %s: cannot reach the API server: %s" % (params.get("context"), e),
                           field="context")
    istio.check_kubernetes_version(version, k8s_version)
    return ctl, {"version": version, "kubernetes_version": k8s_version}


def run_info(params, service, check_mode, diff, run_command):
    """Runner of meshfed.istio.istioctl_info."""
    dummy, facts = preflight(params, service, run_command)
    return dict(facts, changed=False)


def wait_gone(service, revision, purge, timeout):
    """istioctl uninstall returns once the deletes are issued: wait until the objects are gone."""
    def pending():
        return [istio.ref_str(o) for o in installed_objects(service, revision, purge)]
    try:
        service.wait("uninstall", pending, timeout)
    except ClusterError as e:
        raise InstallError(str(e), field="readiness_timeout")


def run(params, service, check_mode, want_diff, run_command):
    ctl, facts = preflight(params, service, run_command)
    version, k8s_version = facts["version"], facts["kubernetes_version"]
    revision = params.get("revision") or ""
    result = {"changed": False, "version": version, "kubernetes_version": k8s_version,
              "revision": revision or "default", "objects": []}

    if params["state"] == "absent":
        present = installed_objects(service, revision, params.get("purge"))
        result["objects"] = [dict(o, action="delete") for o in present]
        if present:
            result["changed"] = True
            if not check_mode:
                args = ["uninstall", "-y"] + (["--purge"] if params.get("purge") else ["--revision", revision or "default"])
                result["output"] = ctl.run(args, "uninstall")
                wait_gone(service, revision, params.get("purge"), params["readiness_timeout"])
        return result

    iop = istio.render_iop(params)
    result["iop"] = iop
    tmpdir = tempfile.mkdtemp(prefix="meshfed-iop-")
    try:
        iop_path = os.path.join(tmpdir, "iop.yaml")
        with open(iop_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(iop, f, default_flow_style=False)
        manifest = ctl.run(["manifest", "generate", "-f", iop_path], "manifest generate", kube=False)
        objs = istio.split_manifest(yaml.safe_load_all(manifest))
        diff_before, diff_after = {}, {}
        # one GET and one dry-run apply per object; in parallel, the API server is the bottleneck
        with ThreadPoolExecutor(max_workers=COMPARE_WORKERS) as pool:
            compared = list(pool.map(lambda o: compare_object(service, o), objs))
        for obj, cmp_ in zip(objs, compared):
            ref = istio.object_ref(obj)
            if cmp_["action"]:
                entry = dict(ref, action=cmp_["action"], fields=cmp_["fields"])
                if cmp_.get("reason"):
                    entry["reason"] = cmp_["reason"]
                result["objects"].append(entry)
                diff_before[istio.ref_str(ref)] = cmp_.get("before") if cmp_["action"] == "update" else None
                diff_after[istio.ref_str(ref)] = cmp_.get("after") if cmp_["action"] == "update" else "created"
        for ref in leftovers(service, [istio.object_ref(o) for o in objs], iop, version):
            result["objects"].append(dict(ref, action="prune", fields=[]))
            diff_before[istio.ref_str(ref)] = "present"
            diff_after[istio.ref_str(ref)] = None
        result["changed"] = bool(result["objects"])
        if want_diff and result["changed"]:
            result["diff"] = {"before": diff_before, "after": diff_after}
        if result["changed"] and not check_mode:
            result["output"] = ctl.run(["install", "-y", "-f", iop_path, "--readiness-timeout",
                                        "%ds" % params["readiness_timeout"]], "install")
    finally:
        for name in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, name))
        os.rmdir(tmpdir)
    return result
