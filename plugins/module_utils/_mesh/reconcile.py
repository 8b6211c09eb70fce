# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The reconciler's planning (pure): a set of objects of one kind that this collection
owns, compared with what a LIST of the cluster returned.

An *owner* is the value of label ``meshfed.istio/owner`` (names.OWNER_LABEL) that
marks one set (``meshfed-global``, ``install-istio``, a service_entry task's own).
``validate_entries`` checks the wanted objects, ``desired_object`` makes their
manifests, ``plan`` compares them with the owned live objects (only the fields we
apply, read from managedFields) and says what to create, update and prune.
reconcile_runner does the I/O.  Kinds: see KINDS.
"""

from __future__ import annotations

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

API_VERSION = "networking.istio.io/v1"
KIND = "ServiceEntry"
OWNER_LABEL = names.OWNER_LABEL
DEFAULT_FIELD_MANAGER = "meshfed.istio"
FIELD = "service_entries"


class Kind(object):
    """What the reconciler knows of a kind: its API version, the key of its content
    (``spec``, or ``data`` for a ConfigMap), the check of that content, and how it is
    written: ``apply`` (server-side apply, our fields only) or ``replace`` (the whole
    content at the resourceVersion read, so a concurrent writer fails instead of being
    overwritten, and keys we drop are gone even when another manager wrote them)."""

    def __init__(self, api_version, content="spec", check=None, write="apply"):
        self.api_version = api_version
        self.content = content
        self.check = check or (lambda fail, content: None)
        self.write = write


def _hosts_check(key, is_list):
    def check(fail, spec):
        hosts = spec.get(key)
        if not hosts:
            fail("spec.%s is missing or empty; a %s needs %s" % (
                key, check.kind, "at least one host" if is_list else "a host"))
        if is_list and not (isinstance(hosts, list) and all(isinstance(h, str) and h for h in hosts)):
            fail("spec.%s must be a list of non-empty strings, got %r" % (key, hosts))
        if not is_list and not isinstance(hosts, str):
            fail("spec.%s must be a string, got %r" % (key, hosts))
    return check


def _servers_check(fail, spec):
    servers = spec.get("servers")
    if not isinstance(servers, list) or not servers:
        fail("spec.servers is missing or empty; a Gateway needs at least one server")
    for i, server in enumerate(servers):
        hosts = (server or {}).get("hosts") if isinstance(server, dict) else None
        if not (isinstance(hosts, list) and hosts and all(isinstance(h, str) and h for h in hosts)):
            fail("spec.servers[%d].hosts must be a non-empty list of strings, got %r" % (i, hosts))


def _service_check(fail, spec):
    ports = spec.get("ports")
    if not isinstance(ports, list) or not ports:
        fail("spec.ports is missing or empty; a Service needs at least one port")
    for i, port in enumerate(ports):
        number = port.get("port") if isinstance(port, dict) else None
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
            fail("spec.ports[%d].port must be a port number (1-65535), got %r" % (i, number))
    if spec.get("selector") is not None:
        _string_map(fail, "spec.selector", spec["selector"])


def _data_check(fail, data):
    _string_map(fail, "data", data)


KINDS = {
    "ServiceEntry": Kind(API_VERSION, check=_hosts_check("hosts", True)),
    "DestinationRule": Kind(API_VERSION, check=_hosts_check("host", False)),
    "VirtualService": Kind(API_VERSION, check=_hosts_check("hosts", True)),
    "Gateway": Kind(API_VERSION, check=_servers_check),
    "ConfigMap": Kind("v1", content="data", check=_data_check, write="replace"),
    # onboard_vm's Services selecting VM workloads (server-side apply: our selector and ports only)
    "Service": Kind("v1", check=_service_check),
}
for _name, _kind in KINDS.items():
    _kind.check.kind = _name


def ref_str(namespace, name):
    return "%s/%s" % (namespace, name)


# --- input ----------------------------------------------------------------------

def validate_owner(owner):
    if not owner or not names.is_label_value(owner):
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


def validate_entries(entries, owner, namespaces=None, kind=KIND, field=FIELD):
    """The desired objects of ``kind``, checked and normalised; MeshError naming the entry and ``field``.

    Each entry is a dict with ``name``, ``namespace``, ``spec`` (``data`` for a
    ConfigMap) and optional ``labels`` and ``annotations``.  Checks: names are DNS-1123 subdomains,
    namespaces DNS-1123 labels (and inside ``namespaces`` when given), the
    host(s) of the spec (``spec.hosts``, a non-empty list of strings; for a
    DestinationRule ``spec.host``), no name/namespace pair twice, labels and
    annotations map strings to strings, and the owner label, when given, is ``owner``.
    """
    validate_owner(owner)
    if kind not in KINDS:
        raise MeshError("kind: %r is not one of %s" % (kind, ", ".join(sorted(KINDS))), field="kind")
    content = KINDS[kind].content
    allowed = ("name", "namespace", content, "labels", "annotations")
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
            _fail("must be a mapping with name, namespace and %s, got %s" % (content, type(entry).__name__))
        unknown = sorted(set(entry) - set(allowed))
        if unknown:
            _fail("unknown key(s) %s; allowed: %s" % (", ".join(map(str, unknown)), ", ".join(allowed)))
        name, ns = entry.get("name"), entry.get("namespace")
        if not names.is_dns1123_subdomain(name):
            _fail("name %r is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
                  "at most 253 characters, starting and ending with a letter or digit)" % (name,))
        if not names.is_dns1123_label(ns):
            _fail("namespace %r is not a DNS-1123 label" % (ns,))
        if scope is not None and ns not in scope:
            _fail("namespace %s is not one of namespaces (%s); it would be created but never pruned"
                  % (ns, ", ".join(sorted(scope))))
        key = (ns, name)
        if key in seen:
            _fail("duplicate %s %s (also %s[%d])" % (kind, ref_str(ns, name), field, seen[key]))
        seen[key] = i
        spec = entry.get(content)
        if not isinstance(spec, dict):
            _fail("%s must be a mapping, got %s" % (content, type(spec).__name__))
        KINDS[kind].check(_fail, spec)
        labels = _string_map(_fail, "labels", entry.get("labels"))
        if labels.get(OWNER_LABEL, owner) != owner:
            _fail("labels.%s is %r but owner is %r; leave the label out, it is set from owner"
                  % (OWNER_LABEL, labels[OWNER_LABEL], owner))
        annotations = _string_map(_fail, "annotations", entry.get("annotations"))
        out.append({"name": name, "namespace": ns, content: spec, "labels": labels, "annotations": annotations})
    return out


def desired_object(entry, owner, kind=KIND):
    """The manifest we server-side apply for one validated entry."""
    content = KINDS[kind].content
    metadata = {"name": entry["name"], "namespace": entry["namespace"],
                "labels": dict(entry.get("labels") or {}, **{OWNER_LABEL: owner})}
    if entry.get("annotations"):
        metadata["annotations"] = dict(entry["annotations"])
    return {"apiVersion": KINDS[kind].api_version, "kind": kind, "metadata": metadata, content: entry[content]}


def content_key(obj):
    """``spec``, or ``data`` for a ConfigMap: the part of an object the reconciler compares."""
    kind = KINDS.get(obj.get("kind"))
    return kind.content if kind else "spec"


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


def owned_fields(live, field_manager, content="spec"):
    """{'labels': set, 'annotations': set, 'spec': set} of keys ``field_manager`` applied on ``live``
    (``content`` names the last key: ``data`` for a ConfigMap).

    Read from ``metadata.managedFields`` (operation Apply); None when our manager has no entry there.
    """
    entries = [m for m in (live.get("metadata") or {}).get("managedFields") or []
               if m.get("manager") == field_manager and m.get("operation") == "Apply"]
    if not entries:
        return None
    out = {"labels": set(), "annotations": set(), content: set()}
    for m in entries:
        fields = m.get("fieldsV1") or {}
        meta = fields.get("f:metadata") or {}
        for what in ("labels", "annotations"):
            out[what].update(k[2:] for k in (meta.get("f:" + what) or {}) if k.startswith("f:"))
        out[content].update(k[2:] for k in (fields.get("f:" + content) or {}) if k.startswith("f:"))
    return out


def _managed_view(obj, keys, content="spec"):
    """The labels, annotations and spec of ``obj`` restricted to ``keys`` (from managed_keys)."""
    meta = obj.get("metadata") or {}
    out = {}
    for what in ("labels", "annotations"):
        src = meta.get(what) or {}
        out[what] = dict((k, src[k]) for k in sorted(keys[what]) if k in src)
    spec = obj.get(content) or {}
    out[content] = normalize(dict((k, spec[k]) for k in keys[content] if k in spec))
    return out


def managed_keys(desired, live, field_manager):
    """Keys to compare: those we set now, plus those we applied before (they would be removed).

    Without a managedFields entry of ours (an object another tool wrote and labelled
    with our owner), every live spec key counts, so the first apply takes it over.
    """
    content = content_key(desired)
    dmeta = desired.get("metadata") or {}
    keys = {"labels": set(dmeta.get("labels") or {}), "annotations": set(dmeta.get("annotations") or {}),
            content: set(desired.get(content) or {})}
    owned = owned_fields(live, field_manager, content)
    if owned is None:
        keys[content] |= set(live.get(content) or {})
    else:
        for what in keys:
            keys[what] |= owned[what]
    return keys


def compare(desired, live, field_manager=DEFAULT_FIELD_MANAGER):
    """None when ``live`` already is what applying ``desired`` would make it, else
    {'fields': [...], 'before': {...}, 'after': {...}} restricted to the keys we manage."""
    content = content_key(desired)
    keys = managed_keys(desired, live, field_manager)
    before, after = _managed_view(live, keys, content), _managed_view(desired, keys, content)
    fields = []
    for what in ("labels", "annotations"):
        for k in sorted(keys[what]):
            if before[what].get(k) != after[what].get(k):
                fields.append("metadata.%s.%s" % (what, k))
    for k in sorted(keys[content]):
        if before[content].get(k) != after[content].get(k):
            fields.append("%s.%s" % (content, k))
    if not fields:
        return None
    return {"fields": fields, "before": before, "after": after}


def _diff_value(view, fields, content="spec"):
    """Compact diff entry: the spec, plus labels/annotations only when those differ."""
    out = {content: view[content]}
    for what in ("labels", "annotations"):
        if any(f.startswith("metadata.%s." % what) for f in fields):
            out[what] = view[what]
    return out


def ref_of(obj):
    meta = obj.get("metadata") or {}
    return ref_str(meta.get("namespace"), meta.get("name"))


def plan(desired_objects, live_items, field_manager=DEFAULT_FIELD_MANAGER, prune=True):
    """What to do with each object: {'create': [obj], 'update': [obj], 'delete': [live], 'unchanged': [ref],
    'diff': {'before': {ref: ...}, 'after': {ref: ...}}, 'fields': {ref: [...]}}.

    ``live_items`` are the owned ServiceEntries in scope (as dicts); with ``prune``
    those not desired are deleted.
    """
    live = dict((ref_of(o), o) for o in live_items)
    out = {"create": [], "update": [], "delete": [], "unchanged": [], "fields": {},
           "diff": {"before": {}, "after": {}}}
    wanted = set()
    for obj in sorted(desired_objects, key=ref_of):
        ref = ref_of(obj)
        wanted.add(ref)
        content = content_key(obj)
        if ref not in live:
            out["create"].append(obj)
            out["diff"]["after"][ref] = _diff_value({content: normalize(obj[content])}, [], content)
            continue
        cmp_ = compare(obj, live[ref], field_manager)
        if cmp_ is None:
            out["unchanged"].append(ref)
            continue
        out["update"].append(obj)
        out["fields"][ref] = cmp_["fields"]
        out["diff"]["before"][ref] = _diff_value(cmp_["before"], cmp_["fields"], content)
        out["diff"]["after"][ref] = _diff_value(cmp_["after"], cmp_["fields"], content)
    if prune:
        for ref in sorted(set(live) - wanted):
            content = content_key(live[ref])
            out["delete"].append(live[ref])
            out["diff"]["before"][ref] = _diff_value({content: normalize(live[ref].get(content) or {})}, [], content)
    return out


def summary(todo, want_diff):
    """The module result for a plan."""
    refs = dict((k, [ref_of(o) for o in todo[k]]) for k in ("create", "update", "delete"))
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
            out.setdefault(ns, []).append(ref_of(obj))
    return dict((ns, sorted(refs)) for ns, refs in sorted(out.items()))


def foreign_addresses(items, owner):
    """{address: "namespace/name"} of ``spec.addresses`` of ServiceEntries not labelled with ``owner``
    (the ``taken`` argument of vip.allocate)."""
    out = {}
    for obj in sorted(items, key=ref_of):
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(OWNER_LABEL) == owner:
            continue
        for addr in (obj.get("spec") or {}).get("addresses") or []:
            out.setdefault(str(addr), ref_of(obj))
    return out


def owned(items, owner, namespaces=None, adopt=()):
    """The items labelled ``meshfed.istio/owner=<owner>`` (inside ``namespaces`` when given).

    ``adopt``: refs ("namespace/name") of objects to count as owned although they lack the
    owner label, when they carry the collection's managed-by label: what earlier versions
    wrote under that label alone (install_istio's gateways, the *.global Gateway, the VIP
    ConfigMap)."""
    scope = set(namespaces) if namespaces else None
    adopt = set(adopt)
    return [i for i in items
            if (names.labels_of(i).get(OWNER_LABEL) == owner
                or (ref_of(i) in adopt and OWNER_LABEL not in names.labels_of(i) and names.is_managed(i)))
            and (scope is None or (i.get("metadata") or {}).get("namespace") in scope)]


def unowned_conflicts(to_create, items, owner):
    """Messages for the objects we would create that exist without our owner label.

    ``items``: what a LIST of the scope returned, owned or not."""
    known = dict((ref_of(i), i) for i in items)
    out = []
    for obj in to_create:
        live = known.get(ref_of(obj))
        if live is None:
            continue
        have = names.labels_of(live).get(OWNER_LABEL)
        out.append("%s %s already exists and is not managed by owner %s (its %s label is %s); "
                   "delete it, label it %s=%s, or choose another name"
                   % (obj["kind"], ref_of(obj), owner, OWNER_LABEL, "%r" % have if have else "absent",
                      OWNER_LABEL, owner))
    return out


def check_workers(workers):
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise MeshError("workers: must be an integer of at least 1, got %r" % (workers,), field="workers")
    return workers
