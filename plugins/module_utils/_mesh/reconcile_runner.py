# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The reconciler: one LIST per kind and namespace of the scope, the pure plan of
reconcile.py, then server-side applies and deletes of only what differs, in parallel.

Every object the collection keeps in a set goes through here: ServiceEntries,
DestinationRules and VirtualServices of the `.global` model, its *.global Gateway
and VIP ConfigMap, install_istio's gateways and cluster-info ConfigMap, and the
WorkloadEntries and WorkloadGroups of VM workloads.  Objects
of another owner, or of none, are refused, never taken over.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names, reconcile
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError


def set_options(namespaces_required=False):
    """The options of a module that reconciles one owner's set (service_entry, owned_objects)."""
    return dict(
        owner=dict(type="str", required=True),
        namespaces=dict(type="list", elements="str", required=namespaces_required),
        prune=dict(type="bool", default=True),
        field_manager=dict(type="str", default=reconcile.DEFAULT_FIELD_MANAGER),
        workers=dict(type="int", default=8),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


def list_scope(service, kind, namespaces=None):
    """Every object of ``kind`` in scope (dicts): one LIST cluster-wide, or one per namespace;
    [] when the cluster does not serve the kind."""
    api_version = reconcile.KINDS[kind].api_version
    items = []
    for ns in sorted(set(namespaces)) if namespaces else [None]:
        items.extend(service.list(api_version, kind, namespace=ns))
    return items


def replacement(obj, live):
    """``obj`` as a replace of ``live``, keeping the labels and annotations others put there
    (Service.create_or_replace adds ``live``'s resourceVersion)."""
    meta, lmeta = obj["metadata"], live["metadata"]
    body = dict(obj, metadata=dict(meta))
    for what in ("labels", "annotations"):
        merged = dict(lmeta.get(what) or {}, **(meta.get(what) or {}))
        if merged:
            body["metadata"][what] = merged
    return body


def _write(service, action, obj, field_manager, live=None):
    meta = obj["metadata"]
    try:
        if action == "delete":
            service.delete(obj.get("apiVersion") or reconcile.KINDS[obj["kind"]].api_version, obj["kind"],
                           meta["name"], meta.get("namespace"))
        elif reconcile.KINDS[obj["kind"]].write == "replace":
            service.create_or_replace(obj if live is None else replacement(obj, live), live)
        else:
            # ours (owner label checked before): take our fields back from whoever changed them
            service.apply(obj, field_manager, force=True)
    except ClusterError as e:
        return reconcile.ref_str(meta.get("namespace"), meta["name"]), e
    return reconcile.ref_str(meta.get("namespace"), meta["name"]), None


def common_status(errors):
    """The HTTP status every one of ``errors`` (ClusterErrors) carries, or None when they differ."""
    statuses = set(e.status for e in errors)
    return statuses.pop() if len(statuses) == 1 else None


class KindPlan(object):
    """What reconciling one kind will do: checked, nothing written yet (``prepare_kind``)."""

    def __init__(self, kind, field, todo, live, field_manager, workers, result):
        self.kind = kind
        self.field = field
        self.todo = todo
        self.live = live
        self.field_manager = field_manager
        self.workers = workers
        self.result = result


def prepare_kind(service, params, want_diff, kind=reconcile.KIND, field=reconcile.FIELD, all_items=None, adopt=(),
                 check_mode=False):
    """Read and plan the owned objects of ``kind`` against ``params["service_entries"]`` (the
    entries of reconcile.validate_entries), and refuse what cannot be written (a missing
    namespace, an object of that name another owner wrote).  Writes nothing, so that a caller
    reconciling several kinds refuses before the first write of any.

    ``params``: owner, namespaces, prune, state, field_manager, workers.
    ``all_items``: every object of that kind (owned or not) at least in the scope, when the
    caller has listed them already; ``field``: the option named in errors; ``adopt``: refs of
    objects to adopt (see reconcile.owned) even when not wanted, so that they are pruned.
    In ``check_mode``, what the writes need and does not exist yet (the kind's API, a
    namespace: an install in the same run makes them) is listed in the result's
    ``pending``, not refused."""
    owner = reconcile.validate_owner(params["owner"])
    workers = reconcile.check_workers(params.get("workers") or 8)
    field_manager = params.get("field_manager") or reconcile.DEFAULT_FIELD_MANAGER
    namespaces = params.get("namespaces") or None
    present = params.get("state", "present") == "present"
    entries = reconcile.validate_entries(params.get("service_entries") or [], owner, namespaces, kind, field) \
        if present else []
    desired = [reconcile.desired_object(e, owner, kind) for e in entries]

    if all_items is None:
        all_items = list_scope(service, kind, namespaces)
    # what earlier versions wrote under the managed-by label alone is adopted where it is wanted
    live = reconcile.owned(all_items, owner, namespaces, set(adopt) | set(reconcile.ref_of(o) for o in desired))
    todo = reconcile.plan(desired, live, field_manager, prune=params.get("prune", True) or not present)

    pending = []
    if (todo["create"] or todo["update"]) and \
            service.resource(reconcile.KINDS[kind].api_version, kind, required=not check_mode) is None:
        pending.append("the %s API (%s) is not served yet" % (kind, reconcile.KINDS[kind].api_version))
    if todo["create"]:
        missing = reconcile.missing_namespaces(todo["create"], set(
            ns for ns in set(o["metadata"]["namespace"] for o in todo["create"]) if service.namespace_exists(ns)))
        needed = ["%s (needed by %s %s)" % (ns, kind, names.some(refs)) for ns, refs in missing.items()]
        if needed and check_mode:
            pending.extend("namespace %s does not exist yet" % n for n in needed)
        elif needed:
            raise MeshError("%s: namespace(s) do not exist: %s; create them first (nothing was written)"
                            % (field, "; ".join(needed)), field=field)
        conflicts = reconcile.unowned_conflicts(todo["create"], all_items, owner)
        if conflicts:
            raise MeshError("%s: %s (nothing was written)" % (field, names.some(conflicts, sep="; ")), field=field)
    result = reconcile.summary(todo, want_diff)
    if pending:
        result["pending"] = pending
    return KindPlan(kind, field, todo, live, field_manager, workers, result)


def write_kind(service, plan, check_mode, verbs=("apply", "delete")):
    """Carry out a KindPlan (nothing in check mode); its result, or a ClusterError naming
    every write that failed (with the partial result), whose ``status`` is the HTTP status
    all the failed writes got (409 when each one lost to a concurrent writer), else None.
    ``verbs``: only the applies (creates and updates), or only the deletes, of the plan, for a
    caller that writes other kinds in between (the result is the whole plan's)."""
    result = plan.result
    todo = plan.todo
    jobs = [("apply", o) for o in todo["create"] + todo["update"]] + [("delete", o) for o in todo["delete"]]
    jobs = [j for j in jobs if j[0] in verbs]
    if check_mode or not result["changed"] or not jobs:
        return result
    service.resource(reconcile.KINDS[plan.kind].api_version, plan.kind)  # resolved once, before the threads
    live_by_ref = dict((reconcile.ref_of(o), o) for o in plan.live)
    with ThreadPoolExecutor(max_workers=plan.workers) as pool:
        outcomes = list(pool.map(lambda job: _write(service, job[0], job[1], plan.field_manager,
                                                    live_by_ref.get(reconcile.ref_of(job[1]))), jobs))
    failed = dict((ref, err) for ref, err in outcomes if err)
    if failed:
        for key in ("created", "updated", "deleted"):
            result[key] = [r for r in result[key] if r not in failed]
            result["counts"][key] = len(result[key])
        result["failed"] = sorted(failed)
        result["changed"] = bool(result["created"] or result["updated"] or result["deleted"])
        result.pop("diff", None)
        raise ClusterError("%d of %d %s writes failed: %s" % (
            len(failed), len(jobs), plan.kind, names.some([str(failed[r]) for r in sorted(failed)], sep="; ")),
            field=plan.field, result=result, status=common_status(failed.values()))
    return result


def reconcile_kind(service, params, check_mode, want_diff, kind=reconcile.KIND, field=reconcile.FIELD,
                   all_items=None, adopt=()):
    """``prepare_kind`` then ``write_kind``: one kind, one owner."""
    return write_kind(service, prepare_kind(service, params, want_diff, kind, field, all_items, adopt, check_mode),
                      check_mode)


def run_service_entries(params, service, check_mode, diff):
    """Runner of meshfed.istio.service_entry."""
    return reconcile_kind(service, params, check_mode, diff)


def set_runner(kind, field):
    """The runner of a module that keeps a set of one ``kind``, given in option ``field`` (the shape
    of service_entry's ``service_entries``)."""
    def run(params, service, check_mode, diff):
        return reconcile_kind(service, dict(params, service_entries=params.get(field) or []), check_mode, diff,
                              kind=kind, field=field)
    run.__doc__ = "Runner of the module that keeps a set of %ss (option %s)." % (kind, field)
    return run


run_workload_entries = set_runner("WorkloadEntry", "workload_entries")
run_workload_groups = set_runner("WorkloadGroup", "workload_groups")


def add_kind_diff(whole, kind, diff):
    """Add one kind's diff ({'before': {ref: v}, 'after': ...}) to ``whole``, its refs as 'Kind ref'."""
    for side in ("before", "after"):
        whole[side].update(("%s %s" % (kind, r), v) for r, v in ((diff or {}).get(side) or {}).items())


def add_pending(result, subs):
    """Gather the ``pending`` of several kinds' results (check mode) into ``result``."""
    pending = [p for sub in subs for p in sub.pop("pending", None) or []]
    if pending:
        result["pending"] = pending


def merge(results, want_diff):
    """One result for several kinds: refs as 'Kind namespace/name', counts summed, one diff."""
    out = {"changed": False, "created": [], "updated": [], "deleted": [], "unchanged": [], "fields": {},
           "counts": {"created": 0, "updated": 0, "deleted": 0, "unchanged": 0}}
    whole = {"before": {}, "after": {}}
    for kind, sub in results:
        out["changed"] = out["changed"] or sub["changed"]
        for key in ("created", "updated", "deleted", "unchanged"):
            out[key] += ["%s %s" % (kind, r) for r in sub[key]]
            out["counts"][key] += sub["counts"][key]
        out["fields"].update(("%s %s" % (kind, r), f) for r, f in sub["fields"].items())
        add_kind_diff(whole, kind, sub.get("diff"))
    add_pending(out, [sub for dummy, sub in results])
    if want_diff and out["changed"]:
        out["diff"] = whole
    return out


def manifests_by_kind(objects, field="objects"):
    """{kind: [entry]} of full manifests, in the entry form of reconcile.validate_entries."""
    out = {}
    for i, obj in enumerate(objects or []):
        if not isinstance(obj, dict):
            raise MeshError("%s[%d]: must be a manifest (a mapping), got %s" % (field, i, type(obj).__name__),
                            field=field)
        kind = obj.get("kind")
        if kind not in reconcile.KINDS:
            raise MeshError("%s[%d]: kind %r is not one this module manages (%s)"
                            % (field, i, kind, ", ".join(sorted(reconcile.KINDS))), field=field)
        want_api = reconcile.KINDS[kind].api_version
        if obj.get("apiVersion", want_api) != want_api:
            raise MeshError("%s[%d]: apiVersion of a %s must be %s, got %r"
                            % (field, i, kind, want_api, obj.get("apiVersion")), field=field)
        unknown = sorted(set(obj) - set(("apiVersion", "kind", "metadata", reconcile.KINDS[kind].content)))
        if unknown:
            raise MeshError("%s[%d]: unknown top-level key(s) %s of a %s" % (field, i, ", ".join(unknown), kind),
                            field=field)
        meta = obj.get("metadata") or {}
        entry = dict((k, meta[k]) for k in ("name", "namespace", "labels", "annotations") if k in meta)
        content = reconcile.KINDS[kind].content
        if content in obj:
            entry[content] = obj[content]
        out.setdefault(kind, []).append(entry)
    return out


def adopt_by_kind(adopt, field="adopt"):
    """{kind: ["namespace/name"]} of ``adopt`` entries written as "Kind namespace/name"."""
    out = {}
    for i, text in enumerate(adopt or []):
        kind, dummy, ref = str(text).partition(" ")
        ns, slash, name = ref.partition("/")
        if kind not in reconcile.KINDS or not slash or not names.is_dns1123_label(ns) \
                or not names.is_dns1123_subdomain(name):
            raise MeshError("%s[%d]: %r is not 'Kind namespace/name' with Kind one of %s"
                            % (field, i, text, ", ".join(sorted(reconcile.KINDS))), field=field)
        out.setdefault(kind, []).append(ref)
    return out


def run_owned_objects(params, service, check_mode, diff):
    """Runner of meshfed.istio.owned_objects: a set of objects of several kinds, one owner."""
    adopt = adopt_by_kind(params.get("adopt"))
    by_kind = manifests_by_kind(params.get("objects") if params["state"] == "present" else [])
    # present: the kinds wanted, and (pruning) every kind this owner may have left behind
    kinds = sorted(reconcile.KINDS) if params.get("prune", True) or params["state"] == "absent" else sorted(by_kind)
    # every kind is checked (and refused) before anything of any kind is written
    plans = [prepare_kind(service, dict(params, service_entries=by_kind.get(kind) or []), diff, kind=kind,
                          field="objects", adopt=adopt.get(kind) or (), check_mode=check_mode) for kind in kinds]
    return merge([(plan.kind, write_kind(service, plan, check_mode)) for plan in plans], diff)
