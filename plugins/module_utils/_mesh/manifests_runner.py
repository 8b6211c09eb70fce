# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The I/O of meshfed.istio.owned_manifests: one LIST per kind (the owner's objects, by label),
the pure plan of manifests.py, one GET per object to create (another owner's object of that
name is refused), then server-side applies and deletes of only what differs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import manifests, names, reconcile, reconcile_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError

# applied first (what the others live in or are checked against), deleted last
FIRST = ("Namespace", "CustomResourceDefinition")


def options():
    """reconcile_runner's set options, with one default namespace instead of a scope."""
    opts = reconcile_runner.set_options()
    opts.pop("namespaces")
    opts.update(manifests=dict(type="list", elements="dict", default=[]), namespace=dict(type="str"),
                prune_kinds=dict(type="list", elements="str", default=[]))
    return opts


def _namespaced(service, check_mode):
    def namespaced(api_version, kind):
        res = service.resource(api_version, kind, required=not check_mode)
        return None if res is None else bool(res.namespaced)
    return namespaced


def _write(service, action, obj, field_manager):
    meta = obj["metadata"]
    try:
        if action == "delete":
            service.delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        else:
            service.apply(obj, field_manager, force=True)
    except ClusterError as e:
        return manifests.ref(obj), e
    return manifests.ref(obj), None


def _run_jobs(service, jobs, field_manager, workers):
    """Write ``jobs`` ([(action, obj)]) in four groups, each in parallel: applies of FIRST kinds
    (namespaces, CRDs), the other applies, the other deletes, deletes of FIRST kinds; a group is
    not started when one before it failed.  ({ref: ClusterError} of what failed, [ref] of what was
    not tried)."""
    def group(action, first):
        return [j for j in jobs if j[0] == action and (j[1]["kind"] in FIRST) == first]
    failed, skipped = {}, []
    for todo in (group("apply", True), group("apply", False), group("delete", False), group("delete", True)):
        if failed:
            skipped += [manifests.ref(o) for dummy, o in todo]
            continue
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(lambda job: _write(service, job[0], job[1], field_manager), todo))
        failed.update((r, e) for r, e in outcomes if e)
    return failed, skipped


def run(params, service, check_mode, diff):
    """Runner of meshfed.istio.owned_manifests."""
    owner = reconcile.validate_owner(params["owner"])
    workers = reconcile.check_workers(params.get("workers") or 8)
    present = params.get("state", "present") == "present"
    field_manager = params.get("field_manager") or reconcile.DEFAULT_FIELD_MANAGER
    if params.get("namespace") is not None and not names.is_dns1123_label(params["namespace"]):
        raise MeshError("namespace: %r is not a DNS-1123 label" % (params["namespace"],), field="namespace")
    kinds = set(manifests.split_type(t) for t in params.get("prune_kinds") or [])
    desired = []
    if present:
        desired = manifests.validate(params.get("manifests") or [], owner, _namespaced(service, check_mode),
                                     params.get("namespace"), field="manifests")
    else:
        # absent: the kinds of the manifests given (their content need not be valid)
        kinds |= set((o.get("apiVersion"), o.get("kind")) for o in params.get("manifests") or []
                     if isinstance(o, dict) and o.get("apiVersion") and o.get("kind"))
    kinds |= set((o["apiVersion"], o["kind"]) for o in desired)
    selector = "%s=%s" % (manifests.OWNER_LABEL, owner)
    live = []
    for api_version, kind in sorted(kinds):
        live.extend(service.list(api_version, kind, label_selector=selector))
    todo = manifests.plan(desired, live, prune=params.get("prune", True) or not present)

    pending = []
    if todo["create"]:
        creating = set(o["metadata"]["name"] for o in todo["create"] if o["kind"] == "Namespace")
        missing = {}
        for obj in todo["create"]:
            ns = obj["metadata"].get("namespace")
            if ns and ns not in creating and ns not in missing and not service.namespace_exists(ns):
                missing[ns] = manifests.ref(obj)
        needed = ["%s (needed by %s)" % (ns, r) for ns, r in sorted(missing.items())]
        if needed and check_mode:
            pending.extend("namespace %s does not exist yet" % n for n in needed)
        elif needed:
            raise MeshError("manifests: namespace(s) do not exist: %s; create them first (nothing was written)"
                            % "; ".join(needed), field="manifests")
        existing = [service.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
                    for o in todo["create"]]
        conflicts = reconcile.unowned_conflicts(todo["create"], [o for o in existing if o is not None], owner,
                                                ref=manifests.ref)
        if conflicts:
            raise MeshError("manifests: %s (nothing was written)" % names.some(conflicts, sep="; "), field="manifests")
    result = manifests.summary(todo, diff)
    if pending:
        result["pending"] = pending
    if check_mode or not result["changed"]:
        return result
    jobs = [("apply", o) for o in todo["create"] + todo["update"]] + \
        [("delete", o) for o in manifests.delete_order(todo["delete"])]
    failed, skipped = _run_jobs(service, jobs, field_manager, workers)
    if failed:
        for key in ("created", "updated", "deleted"):
            result[key] = [r for r in result[key] if r not in failed and r not in skipped]
            result["counts"][key] = len(result[key])
        result["failed"] = sorted(failed)
        result["not_tried"] = sorted(skipped)
        result["changed"] = bool(result["created"] or result["updated"] or result["deleted"])
        result.pop("diff", None)
        raise ClusterError("%d of %d writes failed: %s" % (len(failed), len(jobs), names.some(
            [str(failed[r]) for r in sorted(failed)], sep="; ")), field="manifests", result=result)
    return result
