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
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import istio, kube
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.istio import InstallError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

try:
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
except ImportError:  # pragma: no cover - reported through missing_required_lib
    DynamicClient = None

    class NotFoundError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses still parse without the library."""

    class ResourceNotFoundError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses still parse without the library."""

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


def compare_object(dyn, obj):
    """{'action': 'create'|'update'|None, 'fields': [...], 'before': {}, 'after': {}} for one rendered object."""
    ref = istio.object_ref(obj)
    try:
        res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    except ResourceNotFoundError:
        return {"action": "create", "fields": [], "reason": "its API (%s) is not served yet" % obj["apiVersion"]}
    ns = ref["namespace"] if res.namespaced else None
    try:
        live = dyn.get(res, name=ref["name"], namespace=ns).to_dict()
    except NotFoundError:
        return {"action": "create", "fields": []}
    except kube.ApiException as e:
        raise kube.api_error(e, "reading %s" % istio.ref_str(ref))
    try:
        applied = dyn.server_side_apply(res, body=istio.without_owner_labels(obj), name=ref["name"], namespace=ns, force_conflicts=True,
                                        field_manager=DRIFT_FIELD_MANAGER, dry_run="All").to_dict()
    except kube.ApiException as e:
        raise kube.api_error(e, "dry-run apply of %s" % istio.ref_str(ref))
    before, after = istio.normalize(live), istio.normalize(applied)
    fields = istio.diff_paths(before, after)
    if not fields:
        return {"action": None, "fields": []}
    secret = obj.get("kind") == "Secret"
    return {"action": "update", "fields": fields,
            "before": dict((f, "<hidden>" if secret else _short(_value_at(before, f))) for f in fields),
            "after": dict((f, "<hidden>" if secret else _short(_value_at(after, f))) for f in fields)}


def labelled_objects(dyn, selector, kinds):
    """Refs of the objects of ``kinds`` ((api_version, kind) pairs) that ``selector`` matches, cluster-wide."""
    out = []
    for api_version, kind in kinds:
        res = dyn.resources.get(api_version=api_version, kind=kind)
        try:
            items = dyn.get(res, label_selector=selector).to_dict().get("items", [])
        except kube.ApiException as e:
            raise kube.api_error(e, "listing %s objects labelled %s" % (kind, selector))
        for item in items:
            m = item["metadata"]
            out.append({"kind": kind, "namespace": m.get("namespace"), "name": m["name"], "api_version": api_version})
    return out


def leftovers(dyn, wanted_refs, iop, version):
    """Objects of an earlier install that `istioctl install` would prune: those its
    prune selector matches (istio.prune_selector) and the manifest no longer has."""
    wanted = set((r["kind"], r["namespace"], r["name"]) for r in wanted_refs)
    return [o for o in labelled_objects(dyn, istio.prune_selector(iop, version), PRUNE_KINDS)
            if (o["kind"], o["namespace"], o["name"]) not in wanted]


def installed_objects(dyn, revision, purge):
    """Deployments (and Services) an install of ``revision`` (or any, with purge) left in the cluster."""
    selector = istio.COMPONENT_LABEL if purge else "%s,%s=%s" % (
        istio.COMPONENT_LABEL, istio.REVISION_LABEL, revision or "default")
    return labelled_objects(dyn, selector, PRUNE_KINDS[:2])


def preflight(params, run_command):
    """Versions of istioctl and the cluster, checked; (Istioctl, ApiClient, facts)."""
    ctl = Istioctl(run_command, params["istioctl"], params.get("kubeconfig"), params.get("context"))
    version = ctl.version()
    istio.check_istioctl_version(version, params.get("istio_version"))
    api = kube.api_client(params)
    try:
        k8s_version = kube.k8s_client.VersionApi(api).get_code().git_version
    except kube.ApiException as e:
        raise kube.api_error(e, "reading the Kubernetes version of context %s" % params.get("context"))
    except Exception as e:  # urllib3 connection errors have no common base we can import here
        raise InstallError("context %s: cannot reach the API server: %s" % (params.get("context"), e),
                           field="context")
    istio.check_kubernetes_version(version, k8s_version)
    return ctl, api, {"version": version, "kubernetes_version": k8s_version}


def wait_gone(dyn, revision, purge, timeout):
    """istioctl uninstall returns once the deletes are issued: wait until the objects are gone."""
    deadline = time.monotonic() + timeout
    while True:
        left = installed_objects(dyn, revision, purge)
        if not left:
            return
        if time.monotonic() > deadline:
            raise InstallError("uninstall: still present after %ds: %s"
                               % (timeout, ", ".join(istio.ref_str(o) for o in left)), field="readiness_timeout")
        time.sleep(1)


def run(params, run_command, check_mode, want_diff):
    ctl, api, facts = preflight(params, run_command)
    version, k8s_version = facts["version"], facts["kubernetes_version"]
    dyn = DynamicClient(api)
    revision = params.get("revision") or ""
    result = {"changed": False, "version": version, "kubernetes_version": k8s_version,
              "revision": revision or "default", "objects": []}

    if params["state"] == "absent":
        present = installed_objects(dyn, revision, params.get("purge"))
        result["objects"] = [dict(o, action="delete") for o in present]
        if present:
            result["changed"] = True
            if not check_mode:
                args = ["uninstall", "-y"] + (["--purge"] if params.get("purge") else ["--revision", revision or "default"])
                result["output"] = ctl.run(args, "uninstall")
                wait_gone(dyn, revision, params.get("purge"), params["readiness_timeout"])
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
            compared = list(pool.map(lambda o: compare_object(dyn, o), objs))
        for obj, cmp_ in zip(objs, compared):
            ref = istio.object_ref(obj)
            if cmp_["action"]:
                entry = dict(ref, action=cmp_["action"], fields=cmp_["fields"])
                if cmp_.get("reason"):
                    entry["reason"] = cmp_["reason"]
                result["objects"].append(entry)
                diff_before[istio.ref_str(ref)] = cmp_.get("before") if cmp_["action"] == "update" else None
                diff_after[istio.ref_str(ref)] = cmp_.get("after") if cmp_["action"] == "update" else "created"
        for ref in leftovers(dyn, [istio.object_ref(o) for o in objs], iop, version):
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
