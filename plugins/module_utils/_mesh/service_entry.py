# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Bulk reconciliation of Istio networking objects (meshfed.istio.service_entry).

One LIST of the objects of one kind labelled ``meshfed.istio/owner=<owner>``, a
pure comparison of each with the desired set (validate_entries, desired_object,
compare, plan), then server-side applies and deletes of only what differs, in
parallel.  ServiceEntry is the kind the module manages; the `.global` model
reconciles its DestinationRules and VirtualServices with the same code
(``kind``).  Everything above ``run`` is pure and unit-tested.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import kube
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError

try:
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
except ImportError:  # pragma: no cover - reported through missing_required_lib
    DynamicClient = None

    class NotFoundError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses still parse without the library."""

    class ResourceNotFoundError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses still parse without the library."""

API_VERSION = "networking.istio.io/v1"
KIND = "ServiceEntry"
# the kinds this reconciler handles: the spec key naming the host(s), and whether it is a list
KINDS = {"ServiceEntry": ("hosts", True), "DestinationRule": ("host", False), "VirtualService": ("hosts", True)}
OWNER_LABEL = "meshfed.istio/owner"
DEFAULT_FIELD_MANAGER = "meshfed.istio"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENTRY_KEYS = ("name", "namespace", "spec", "labels", "annotations")
FIELD = "service_entries"


def ref_str(namespace, name):
    return "%s/%s" % (namespace, name)


# --- input ----------------------------------------------------------------------

def validate_owner(owner):
    if not isinstance(owner, str) or not owner or len(owner) > 63 or not LABEL_VALUE.match(owner):
        raise MeshError("owner: %r is not a valid label value (at most 63 letters, digits, '-', '_' or '.', "
                        "starting and ending with a letter or digit)" % (owner,), field="owner")
    return owner


def _entry_name(field, i, entry):
    if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("namespace"), str):
        return "%s[%d] (%s)" % (field, i, ref_str(entry["namespace"], entry["name"]))
    return "%s[%d]" % (field, i)


def _string_map(fail, key, value):
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail("%s must be a mapping of strings, got %s" % (key, type(value).__name__))
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            fail("%s: key %r is not a non-empty string" % (key, k))
        if not isinstance(v, str):
            fail("%s.%s must be a string, got %s %r (quote it)" % (key, k, type(v).__name__, v))
    return dict(value)


def _check_hosts(fail, kind, spec):
    key, is_list = KINDS[kind]
    hosts = spec.get(key)
    if not hosts:
        fail("spec.%s is missing or empty; a %s needs %s" % (key, kind, "at least one host" if is_list else "a host"))
    if is_list and not (isinstance(hosts, list) and all(isinstance(h, str) and h for h in hosts)):
        fail("spec.%s must be a list of non-empty strings, got %r" % (key, hosts))
    if not is_list and not isinstance(hosts, str):
        fail("spec.%s must be a string, got %r" % (key, hosts))


def validate_entries(entries, owner, namespaces=None, kind=KIND, field=FIELD):
    """The desired objects of ``kind``, checked and normalised; MeshError naming the entry and ``field``.

    Each entry is a dict with ``name``, ``namespace``, ``spec`` and optional
    ``labels`` and ``annotations``.  Checks: names are DNS-1123 subdomains,
    namespaces DNS-1123 labels (and inside ``namespaces`` when given), the
    host(s) of the spec (``spec.hosts``, a non-empty list of strings; for a
    DestinationRule ``spec.host``), no name/namespace pair twice, labels and
    annotations map strings to strings, and the owner label, when given, is ``owner``.
    """
    validate_owner(owner)
    if kind not in KINDS:
        raise MeshError("kind: %r is not one of %s" % (kind, ", ".join(sorted(KINDS))), field="kind")
    scope = set(namespaces) if namespaces else None
    if entries is None:
        return []
    if not isinstance(entries, (list, tuple)):
        raise MeshError("%s: must be a list, got %s" % (field, type(entries).__name__), field=field)
    out, seen = [], {}
    for i, entry in enumerate(entries):
        where = _entry_name(field, i, entry)

        def _fail(msg, where=where):
            raise MeshError("%s: %s" % (where, msg), field=field)
        if not isinstance(entry, dict):
            _fail("must be a mapping with name, namespace and spec, got %s" % type(entry).__name__)
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            _fail("unknown key(s) %s; allowed: %s" % (", ".join(map(str, unknown)), ", ".join(ENTRY_KEYS)))
        name, ns = entry.get("name"), entry.get("namespace")
        if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            _fail("name %r is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
                  "at most 253 characters, starting and ending with a letter or digit)" % (name,))
        if not isinstance(ns, str) or len(ns) > 63 or not DNS1123_LABEL.match(ns):
            _fail("namespace %r is not a DNS-1123 label" % (ns,))
        if scope is not None and ns not in scope:
            _fail("namespace %s is not one of namespaces (%s); it would be created but never pruned"
                  % (ns, ", ".join(sorted(scope))))
        key = (ns, name)
        if key in seen:
            _fail("duplicate %s %s (also %s[%d])" % (kind, ref_str(ns, name), field, seen[key]))
        seen[key] = i
        spec = entry.get("spec")
        if not isinstance(spec, dict):
            _fail("spec must be a mapping, got %s" % type(spec).__name__)
        _check_hosts(_fail, kind, spec)
        labels = _string_map(_fail, "labels", entry.get("labels"))
        if labels.get(OWNER_LABEL, owner) != owner:
            _fail("labels.%s is %r but owner is %r; leave the label out, it is set from owner"
                  % (OWNER_LABEL, labels[OWNER_LABEL], owner))
        annotations = _string_map(_fail, "annotations", entry.get("annotations"))
        out.append({"name": name, "namespace": ns, "spec": spec, "labels": labels, "annotations": annotations})
    return out


def desired_object(entry, owner, kind=KIND):
    """The manifest we server-side apply for one validated entry."""
    metadata = {"name": entry["name"], "namespace": entry["namespace"],
                "labels": dict(entry.get("labels") or {}, **{OWNER_LABEL: owner})}
    if entry.get("annotations"):
        metadata["annotations"] = dict(entry["annotations"])
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": entry["spec"]}


# --- comparison -------------------------------------------------------------------

def normalize(value):
    """Drop None, empty lists and empty dicts (recursively): missing and empty compare equal."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = normalize(v)
            if v is None or v == [] or v == {}:
                continue
            out[k] = v
        return out
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    return value


def owned_fields(live, field_manager):
    """{'labels': set, 'annotations': set, 'spec': set} of keys ``field_manager`` applied on ``live``.

    Read from ``metadata.managedFields`` (operation Apply); None when our manager has no entry there.
    """
    entries = [m for m in (live.get("metadata") or {}).get("managedFields") or []
               if m.get("manager") == field_manager and m.get("operation") == "Apply"]
    if not entries:
        return None
    out = {"labels": set(), "annotations": set(), "spec": set()}
    for m in entries:
        fields = m.get("fieldsV1") or {}
        meta = fields.get("f:metadata") or {}
        for what in ("labels", "annotations"):
            out[what].update(k[2:] for k in (meta.get("f:" + what) or {}) if k.startswith("f:"))
        out["spec"].update(k[2:] for k in (fields.get("f:spec") or {}) if k.startswith("f:"))
    return out


def _managed_view(obj, keys):
    """The labels, annotations and spec of ``obj`` restricted to ``keys`` (from managed_keys)."""
    meta = obj.get("metadata") or {}
    out = {}
    for what in ("labels", "annotations"):
        src = meta.get(what) or {}
        out[what] = dict((k, src[k]) for k in sorted(keys[what]) if k in src)
    spec = obj.get("spec") or {}
    out["spec"] = normalize(dict((k, spec[k]) for k in keys["spec"] if k in spec))
    return out


def managed_keys(desired, live, field_manager):
    """Keys to compare: those we set now, plus those we applied before (they would be removed).

    Without a managedFields entry of ours (an object another tool wrote and labelled
    with our owner), every live spec key counts, so the first apply takes it over.
    """
    dmeta = desired.get("metadata") or {}
    keys = {"labels": set(dmeta.get("labels") or {}), "annotations": set(dmeta.get("annotations") or {}),
            "spec": set(desired.get("spec") or {})}
    owned = owned_fields(live, field_manager)
    if owned is None:
        keys["spec"] |= set(live.get("spec") or {})
    else:
        for what in keys:
            keys[what] |= owned[what]
    return keys


def compare(desired, live, field_manager=DEFAULT_FIELD_MANAGER):
    """None when ``live`` already is what applying ``desired`` would make it, else
    {'fields': [...], 'before': {...}, 'after': {...}} restricted to the keys we manage."""
    keys = managed_keys(desired, live, field_manager)
    before, after = _managed_view(live, keys), _managed_view(desired, keys)
    fields = []
    for what in ("labels", "annotations"):
        for k in sorted(keys[what]):
            if before[what].get(k) != after[what].get(k):
                fields.append("metadata.%s.%s" % (what, k))
    for k in sorted(keys["spec"]):
        if before["spec"].get(k) != after["spec"].get(k):
            fields.append("spec." + k)
    if not fields:
        return None
    return {"fields": fields, "before": before, "after": after}


def _diff_value(view, fields):
    """Compact diff entry: the spec, plus labels/annotations only when those differ."""
    out = {"spec": view["spec"]}
    for what in ("labels", "annotations"):
        if any(f.startswith("metadata.%s." % what) for f in fields):
            out[what] = view[what]
    return out


def _ref_of(obj):
    meta = obj.get("metadata") or {}
    return ref_str(meta.get("namespace"), meta.get("name"))


def plan(desired_objects, live_items, field_manager=DEFAULT_FIELD_MANAGER, prune=True):
    """What to do with each object: {'create': [obj], 'update': [obj], 'delete': [live], 'unchanged': [ref],
    'diff': {'before': {ref: ...}, 'after': {ref: ...}}, 'fields': {ref: [...]}}.

    ``live_items`` are the owned ServiceEntries in scope (as dicts); with ``prune``
    those not desired are deleted.
    """
    live = dict((_ref_of(o), o) for o in live_items)
    out = {"create": [], "update": [], "delete": [], "unchanged": [], "fields": {},
           "diff": {"before": {}, "after": {}}}
    wanted = set()
    for obj in sorted(desired_objects, key=_ref_of):
        ref = _ref_of(obj)
        wanted.add(ref)
        if ref not in live:
            out["create"].append(obj)
            out["diff"]["after"][ref] = _diff_value({"spec": normalize(obj["spec"])}, [])
            continue
        cmp_ = compare(obj, live[ref], field_manager)
        if cmp_ is None:
            out["unchanged"].append(ref)
            continue
        out["update"].append(obj)
        out["fields"][ref] = cmp_["fields"]
        out["diff"]["before"][ref] = _diff_value(cmp_["before"], cmp_["fields"])
        out["diff"]["after"][ref] = _diff_value(cmp_["after"], cmp_["fields"])
    if prune:
        for ref in sorted(set(live) - wanted):
            out["delete"].append(live[ref])
            out["diff"]["before"][ref] = _diff_value({"spec": normalize(live[ref].get("spec") or {})}, [])
    return out


def summary(todo, want_diff):
    """The module result for a plan."""
    refs = dict((k, [_ref_of(o) for o in todo[k]]) for k in ("create", "update", "delete"))
    result = {"changed": bool(refs["create"] or refs["update"] or refs["delete"]),
              "created": refs["create"], "updated": refs["update"], "deleted": refs["delete"],
              "unchanged": list(todo["unchanged"]),
              "counts": {"created": len(refs["create"]), "updated": len(refs["update"]),
                         "deleted": len(refs["delete"]), "unchanged": len(todo["unchanged"])},
              "fields": dict(todo["fields"])}
    if want_diff and result["changed"]:
        result["diff"] = {"before": todo["diff"]["before"], "after": todo["diff"]["after"]}
    return result


def missing_namespaces(desired_objects, existing_namespaces):
    """{namespace: [refs]} of desired objects whose namespace is not in ``existing_namespaces``."""
    out = {}
    for obj in desired_objects:
        ns = obj["metadata"]["namespace"]
        if ns not in existing_namespaces:
            out.setdefault(ns, []).append(_ref_of(obj))
    return dict((ns, sorted(refs)) for ns, refs in sorted(out.items()))


def foreign_addresses(items, owner):
    """{address: "namespace/name"} of ``spec.addresses`` of ServiceEntries not labelled with ``owner``
    (the ``taken`` argument of vip.allocate)."""
    out = {}
    for obj in sorted(items, key=_ref_of):
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(OWNER_LABEL) == owner:
            continue
        for addr in (obj.get("spec") or {}).get("addresses") or []:
            out.setdefault(str(addr), _ref_of(obj))
    return out


# --- the cluster --------------------------------------------------------------------

def resource(dyn, kind=KIND):
    try:
        return dyn.resources.get(api_version=API_VERSION, kind=kind)
    except ResourceNotFoundError:
        raise ClusterError("Istio's %s CRD (%s) is not installed in this cluster" % (kind, API_VERSION))


def list_scope(dyn, res, namespaces=None):
    """Every object of ``res`` in scope (dicts): one LIST cluster-wide, or one per namespace."""
    items = []
    for ns in sorted(set(namespaces)) if namespaces else [None]:
        try:
            items.extend(dyn.get(res, namespace=ns).to_dict().get("items") or [])
        except kube.ApiException as e:
            raise kube.api_error(e, "listing %s objects%s" % (res.kind, " in namespace %s" % ns if ns else ""))
    return items


def owned(items, owner, namespaces=None):
    """The items labelled ``meshfed.istio/owner=<owner>`` (inside ``namespaces`` when given)."""
    scope = set(namespaces) if namespaces else None
    return [i for i in items
            if ((i.get("metadata") or {}).get("labels") or {}).get(OWNER_LABEL) == owner
            and (scope is None or (i.get("metadata") or {}).get("namespace") in scope)]


def existing_namespaces(dyn, names):
    """The subset of ``names`` that exist.  Namespaces we may not read (403) count as existing.

    Through the dynamic client: importing the typed CoreV1Api costs more than a second."""
    res = dyn.resources.get(api_version="v1", kind="Namespace")
    out = set()
    for ns in sorted(set(names)):
        try:
            kube.call_raw(dyn.get, res, name=ns)
        except NotFoundError:
            continue
        except kube.ApiException as e:
            if kube.is_not_found(e):
                continue
            if e.status != 403:
                raise kube.api_error(e, "reading Namespace %s" % ns)
        out.add(ns)
    return out


def unowned_conflicts(to_create, items, owner):
    """Messages for the objects we would create that exist without our owner label.

    ``items``: what a LIST of the scope returned, owned or not."""
    known = dict((_ref_of(i), i) for i in items)
    out = []
    for obj in to_create:
        live = known.get(_ref_of(obj))
        if live is None:
            continue
        have = ((live.get("metadata") or {}).get("labels") or {}).get(OWNER_LABEL)
        out.append("%s %s already exists and is not managed by owner %s (its %s label is %s); "
                   "delete it, label it %s=%s, or choose another name"
                   % (obj["kind"], _ref_of(obj), owner, OWNER_LABEL, "%r" % have if have else "absent",
                      OWNER_LABEL, owner))
    return out


def _write(dyn, res, action, obj, field_manager):
    meta = obj["metadata"]
    ref = _ref_of(obj)
    try:
        if action == "delete":
            try:
                kube.call_raw(dyn.delete, res, name=meta["name"], namespace=meta["namespace"])
            except NotFoundError:
                pass
        else:
            # the response is not turned into a ResourceInstance, which is most of the
            # client-side cost of a write
            kube.call_raw(dyn.server_side_apply, res, body=obj, name=meta["name"], namespace=meta["namespace"],
                          field_manager=field_manager, force_conflicts=True)
    except kube.ApiException as e:
        if action == "delete" and kube.is_not_found(e):
            return ref, None
        verb = "delete" if action == "delete" else "apply"
        return ref, str(kube.api_error(e, "%s of %s %s" % (verb, obj.get("kind") or res.kind, ref)))
    return ref, None


def _check_workers(workers):
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise MeshError("workers: must be an integer of at least 1, got %r" % (workers,), field="workers")
    return workers


def run(api, params, check_mode, want_diff, all_items=None, dyn=None, kind=KIND, field=FIELD):
    """Reconcile the owned objects of ``kind`` with ``params["service_entries"]``.

    ``all_items``: every object of that kind (owned or not) at least in the scope,
    when the caller has listed them already (else one LIST per namespace of the
    scope); ``dyn``: the caller's DynamicClient (its API discovery is not
    repeated); ``field``: the option named in errors."""
    owner = validate_owner(params["owner"])
    workers = _check_workers(params.get("workers") or 8)
    field_manager = params.get("field_manager") or DEFAULT_FIELD_MANAGER
    namespaces = params.get("namespaces") or None
    present = params.get("state", "present") == "present"
    entries = validate_entries(params.get("service_entries") or [], owner, namespaces, kind, field) if present else []
    desired = [desired_object(e, owner, kind) for e in entries]

    dyn = dyn or DynamicClient(api)
    res = resource(dyn, kind)
    if all_items is None:
        all_items = list_scope(dyn, res, namespaces)
    live = owned(all_items, owner, namespaces)
    todo = plan(desired, live, field_manager, prune=params.get("prune", True) or not present)

    if todo["create"]:
        missing = missing_namespaces(todo["create"], existing_namespaces(dyn, [
            o["metadata"]["namespace"] for o in todo["create"]]))
        if missing:
            raise MeshError("%s: namespace(s) do not exist: %s; create them first (nothing was written)" % (
                field, "; ".join("%s (needed by %s %s)" % (ns, kind, ", ".join(refs[:5]) + (
                    ", ... %d more" % (len(refs) - 5) if len(refs) > 5 else ""))
                    for ns, refs in missing.items())), field=field)
        conflicts = unowned_conflicts(todo["create"], all_items, owner)
        if conflicts:
            raise MeshError("%s: %s%s (nothing was written)" % (
                field, "; ".join(conflicts[:5]), "; ... %d more" % (len(conflicts) - 5) if len(conflicts) > 5 else ""),
                field=field)

    result = summary(todo, want_diff)
    if check_mode or not result["changed"]:
        return result

    jobs = [("apply", o) for o in todo["create"] + todo["update"]] + [("delete", o) for o in todo["delete"]]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda job: _write(dyn, res, job[0], job[1], field_manager), jobs))
    failed = dict((ref, err) for ref, err in outcomes if err)
    if failed:
        for key in ("created", "updated", "deleted"):
            result[key] = [r for r in result[key] if r not in failed]
            result["counts"][key] = len(result[key])
        result["failed"] = sorted(failed)
        result["changed"] = bool(result["created"] or result["updated"] or result["deleted"])
        result.pop("diff", None)
        msgs = [failed[r] for r in sorted(failed)]
        raise ClusterError("%d of %d %s writes failed: %s%s" % (
            len(failed), len(jobs), kind, "; ".join(msgs[:5]), "; ... %d more" % (len(msgs) - 5) if len(msgs) > 5 else ""),
            field=field, result=result)
    return result
