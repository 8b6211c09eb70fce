# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""A set of Kubernetes manifests of any kind, owned by one owner (pure planning).

reconcile.py keeps sets of the kinds it knows (Istio's, Services, ConfigMaps): it compares the
fields it applied, read from managedFields, which works because the API server adds nothing to
those objects.  Manifests of any kind (the Deployments, ServiceAccounts, Services and RBAC
objects of Istio's samples and add-ons) get defaults from the API server (a Deployment's
``strategy``, a container's ``terminationMessagePath``...), so that a comparison of whole fields
would find a difference on every run.  Here an object is unchanged when

* its annotation ``meshfed.istio/applied`` holds the hash of what we apply now (so a manifest
  that dropped a field is applied again, and server-side apply removes the field), and
* every field we apply has the value we apply (the live object may hold more: the defaults),
  so that a field someone changed by hand is put back.

Every object carries label ``meshfed.istio/owner=<owner>``; the owner's objects not wanted any
more are pruned; an object of that name without that label is refused, never taken over
(reconcile.unowned_conflicts).
``manifests_runner`` does the I/O.
"""

from __future__ import annotations

import copy
import hashlib
import json

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names, reconcile
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

OWNER_LABEL = names.OWNER_LABEL
APPLIED_ANNOTATION = "meshfed.istio/applied"
FIELD = "manifests"
# what the API server owns, never part of a manifest we compare or apply
SERVER_KEYS = ("status",)
SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
               "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
SECRET_KINDS = ("Secret",)
# kinds whose names are path segments ("system:kiali-viewer"), not DNS-1123 subdomains
RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def type_key(obj):
    """``apiVersion/Kind`` (``v1/Service``, ``apps/v1/Deployment``): how kinds are named here."""
    return "%s/%s" % (obj.get("apiVersion"), obj.get("kind"))


def split_type(text, field="prune_kinds"):
    """(apiVersion, kind) of an ``apiVersion/Kind`` string; MeshError otherwise."""
    if not isinstance(text, str) or "/" not in text:
        raise MeshError("%s: %r is not apiVersion/Kind (v1/Service, apps/v1/Deployment)" % (field, text), field=field)
    api_version, dummy, kind = text.rpartition("/")
    if not api_version or not kind or not kind[0].isupper():
        raise MeshError("%s: %r is not apiVersion/Kind (v1/Service, apps/v1/Deployment)" % (field, text), field=field)
    return api_version, kind


def ref(obj):
    """``Kind namespace/name`` (``Kind name`` for a cluster-scoped object)."""
    meta = obj.get("metadata") or {}
    where = "%s/%s" % (meta["namespace"], meta.get("name")) if meta.get("namespace") else meta.get("name")
    return "%s %s" % (obj.get("kind"), where)


def canonical(value):
    """``value`` as compact JSON with sorted keys: what the hash is taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def applied_hash(obj):
    """The hash of what we apply (labels, annotations but ours, and the body): 16 hex digits."""
    body = copy.deepcopy(obj)
    body.get("metadata", {}).get("annotations", {}).pop(APPLIED_ANNOTATION, None)
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()[:16]


def validate(objects, owner, namespaced, default_namespace=None, field=FIELD):
    """The wanted objects, checked and completed: owner label, namespace (``default_namespace`` for
    a namespaced object without one), our hash annotation; sorted by ref.

    ``namespaced(api_version, kind)`` says whether a kind is namespaced (True/False), or None when
    the cluster does not serve it (yet).  MeshError naming ``field[i]`` and the problem."""
    reconcile.validate_owner(owner)
    out, seen = [], {}
    for i, obj in enumerate(objects or []):
        where = "%s[%d]" % (field, i)
        if not isinstance(obj, dict):
            _fail(where, field, "must be a manifest (a mapping), got %s" % type(obj).__name__)
        if not isinstance(obj.get("apiVersion"), str) or not obj.get("apiVersion"):
            _fail(where, field, "apiVersion is missing")
        if not isinstance(obj.get("kind"), str) or not obj.get("kind")[:1].isupper():
            _fail(where, field, "kind %r is not a Kubernetes kind" % (obj.get("kind"),))
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            _fail(where, field, "metadata must be a mapping with name")
        where = "%s (%s %s)" % (where, obj["kind"], meta.get("name"))
        if not names.is_dns1123_subdomain(meta.get("name")) and \
                not (obj["kind"] in RBAC_KINDS and _is_path_segment_name(meta.get("name"))):
            _fail(where, field, "metadata.name %r is not a valid object name" % (meta.get("name"),))
        extra = sorted(set(meta) & set(SERVER_META))
        if extra:
            _fail(where, field, "metadata.%s is the API server's; leave it out" % ", metadata.".join(extra))
        scoped = namespaced(obj["apiVersion"], obj["kind"])
        ns = meta.get("namespace")
        if scoped is False and ns:
            _fail(where, field, "a %s is cluster-scoped; metadata.namespace %r must not be set" % (obj["kind"], ns))
        if scoped is not False and not ns:
            ns = default_namespace
            if not ns:
                _fail(where, field, "metadata.namespace is missing and no namespace was given")
        if ns is not None and not names.is_dns1123_label(ns):
            _fail(where, field, "metadata.namespace %r is not a DNS-1123 label" % (ns,))
        for what in ("labels", "annotations"):
            value = meta.get(what) or {}
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                _fail(where, field, "metadata.%s must map strings to strings (quote numbers and booleans)" % what)
        labels = dict(meta.get("labels") or {})
        if labels.get(OWNER_LABEL, owner) != owner:
            _fail(where, field, "metadata.labels.%s is %r but owner is %r; leave the label out, it is set from owner"
                  % (OWNER_LABEL, labels[OWNER_LABEL], owner))
        labels[OWNER_LABEL] = owner
        labels.setdefault(names.MANAGED_BY_LABEL, names.MANAGED_BY)
        body = dict((k, copy.deepcopy(v)) for k, v in obj.items() if k not in ("metadata",) + SERVER_KEYS)
        new_meta = dict((k, copy.deepcopy(v)) for k, v in meta.items() if k not in ("labels", "annotations", "namespace"))
        new_meta["labels"] = labels
        if ns and scoped is not False:
            new_meta["namespace"] = ns
        annotations = dict(meta.get("annotations") or {})
        annotations.pop(APPLIED_ANNOTATION, None)
        if annotations:
            new_meta["annotations"] = annotations
        want = dict(body, metadata=new_meta)
        want["metadata"].setdefault("annotations", {})[APPLIED_ANNOTATION] = applied_hash(want)
        key = ref(want)
        if key in seen:
            _fail(where, field, "%s is given twice (also %s[%d])" % (key, field, seen[key]))
        seen[key] = i
        out.append(want)
    return sorted(out, key=ref)


def _fail(where, field, msg):
    raise MeshError("%s: %s" % (where, msg), field=field)


def _is_path_segment_name(value):
    """Names of some kinds (RBAC) may hold ':' ("system:..."): any string without '/' or '%'."""
    return isinstance(value, str) and 0 < len(value) <= 253 and not set(value) & set("/%") and value not in (".", "..")


# keys that identify the elements of a list of mappings (server-side apply's associative lists:
# containers, volumes and env by name, volumeMounts by mountPath, container ports by containerPort)
LIST_KEYS = ("mountPath", "containerPort", "name")


def _list_key(items):
    """The key every element of ``items`` (a list of mappings) has, with a value of its own, or None."""
    for key in LIST_KEYS:
        if items and all(isinstance(i, dict) and key in i for i in items) and \
                len(set(canonical(i[key]) for i in items)) == len(items):
            return key
    return None


def _is_zero(value):
    """Go's empty value (null, "", 0, false, [], {}): a field the API server leaves out of an object
    (``omitempty``), so its absence is what applying it makes (``initialDelaySeconds: 0``,
    ``subPath: ""``, ``rollingUpdate: null`` in Istio's add-ons)."""
    return value is None or (not isinstance(value, (dict, list)) and value in ("", 0, False)) or value in ([], {})


def is_subset(want, have):
    """Every field of ``want`` is in ``have`` with the same value (``have`` may hold more: the API
    server's defaults; a field it leaves out matches Go's empty value).  A list whose elements are mappings with a key (LIST_KEYS) matches element
    by key, and ``have`` may hold more elements (another field manager's, as server-side apply keeps
    them: Kiali's remote-cluster volumes); any other list compares element by element, same length."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(is_subset(v, have[k]) if k in have else _is_zero(v)
                                              for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(have, list):
            return False
        key = _list_key(want)
        if key and _list_key(have) == key:
            by_key = dict((h[key], h) for h in have)
            return all(w[key] in by_key and is_subset(w, by_key[w[key]]) for w in want)
        return len(want) == len(have) and all(is_subset(w, h) for w, h in zip(want, have))
    return want == have


def differs(want, live):
    """The top-level fields (``metadata.labels.<key>``, ``spec``...) of ``want`` that ``live`` does
    not hold as wanted; [] when applying ``want`` would change nothing."""
    fields = []
    wmeta, lmeta = want.get("metadata") or {}, live.get("metadata") or {}
    for what in ("labels", "annotations"):
        have = lmeta.get(what) or {}
        fields += ["metadata.%s.%s" % (what, k) for k, v in sorted((wmeta.get(what) or {}).items()) if have.get(k) != v]
    fields += [k for k in sorted(want) if k not in ("apiVersion", "kind", "metadata") and not is_subset(want[k], live.get(k))]
    return fields


def _shown(obj):
    """What a diff shows of an object: its body and labels; never a Secret's data."""
    out = dict((k, v) for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata") + SERVER_KEYS)
    out["labels"] = (obj.get("metadata") or {}).get("labels") or {}
    if obj.get("kind") in SECRET_KINDS:
        for key in ("data", "stringData"):
            if key in out:
                out[key] = dict((k, "<hidden>") for k in out[key])
    return out


def plan(desired, live, prune=True):
    """What to do: {'create': [obj], 'update': [obj], 'delete': [live obj], 'unchanged': [ref],
    'fields': {ref: [...]}, 'diff': {'before': {ref: ...}, 'after': {ref: ...}}}.

    ``desired``: from ``validate``; ``live``: the owner's objects as listed (of every kind in play)."""
    live_by_ref = dict((ref(o), o) for o in live)
    out = {"create": [], "update": [], "delete": [], "unchanged": [], "fields": {}, "diff": {"before": {}, "after": {}}}
    wanted = set()
    for obj in desired:
        key = ref(obj)
        wanted.add(key)
        have = live_by_ref.get(key)
        if have is None:
            out["create"].append(obj)
            out["diff"]["after"][key] = _shown(obj)
            continue
        fields = differs(obj, have)
        if not fields:
            out["unchanged"].append(key)
            continue
        out["update"].append(obj)
        out["fields"][key] = fields
        out["diff"]["before"][key] = _shown(have)
        out["diff"]["after"][key] = _shown(obj)
    if prune:
        for key in sorted(set(live_by_ref) - wanted):
            out["delete"].append(live_by_ref[key])
            out["diff"]["before"][key] = _shown(live_by_ref[key])
    return out


def delete_order(objs):
    """Deletion order: workloads first, namespaced before cluster-scoped, RBAC and CRDs last."""
    rank = {"CustomResourceDefinition": 3, "ClusterRole": 2, "ClusterRoleBinding": 2, "Namespace": 4}
    return sorted(objs, key=lambda o: (rank.get(o.get("kind"), 0), ref(o)))


def summary(todo, want_diff):
    """The module result for a plan: reconcile's, objects named ``Kind namespace/name``."""
    return reconcile.summary(todo, want_diff, ref)
