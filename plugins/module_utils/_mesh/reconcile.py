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
reconcile_runner does the I/O.  Kinds: see KINDS; each has a pure check of its content
(``_workload_entry_check`` and ``_workload_group_check`` for the VM workload kinds).
"""

from __future__ import annotations

import ipaddress
import re

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


# --- WorkloadEntry and WorkloadGroup (VM workloads) ----------------------------------
# What Istio's CRDs (networking.istio.io/v1) and its validation accept, checked before
# anything is written so that a refusal names the field instead of an API error.

UINT32_MAX = 4294967295
INT32_MAX = 2147483647
PORT_NAME = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
HTTP_HEADER_NAME = re.compile(r"^[-_A-Za-z0-9]+$")
DNS_NAME_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$")
LABEL_KEY_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
WORKLOAD_KEYS = ("address", "ports", "labels", "network", "locality", "weight", "serviceAccount")
PROBE_METHODS = ("httpGet", "tcpSocket", "exec", "grpc")
PROBE_TIMINGS = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _known_keys(fail, key, value, allowed):
    """``value`` is a mapping whose keys are all in ``allowed``."""
    if not isinstance(value, dict):
        fail("%s must be a mapping, got %s" % (key, type(value).__name__))
    unknown = sorted(str(k) for k in set(value) - set(allowed))
    if unknown:
        fail("%s: unknown key(s) %s; allowed: %s" % (key, ", ".join(unknown), ", ".join(allowed)))


def _int_field(fail, key, value, low, high):
    if not _is_int(value) or not low <= value <= high:
        fail("%s must be an integer from %d to %d, got %s %r" % (key, low, high, type(value).__name__, value))


def _string_field(fail, key, value, max_length=None):
    if not isinstance(value, str):
        fail("%s must be a string, got %s %r" % (key, type(value).__name__, value))
    if max_length is not None and len(value) > max_length:
        fail("%s is %d characters long; at most %d" % (key, len(value), max_length))


def is_label_key(value):
    """A Kubernetes label key: an optional DNS-1123 subdomain prefix and '/', then a name of at most
    63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit."""
    if not isinstance(value, str):
        return False
    prefix, slash, name = value.rpartition("/")
    if slash and not names.is_dns1123_subdomain(prefix):
        return False
    return len(name) <= 63 and bool(LABEL_KEY_NAME.match(name))


def _label_map(fail, key, value):
    """Labels a proxy or selector sees: string values, valid label keys and values."""
    labels = _string_map(fail, key, value)
    for k, v in labels.items():
        if not is_label_key(k):
            fail("%s: key %r is not a valid label key" % (key, k))
        if not names.is_label_value(v):
            fail("%s.%s: %r is not a valid label value (at most 63 letters, digits, '-', '_' or '.', "
                 "starting and ending with a letter or digit)" % (key, k, v))
    return labels


def is_dns_name(value):
    """A host name: dot-separated labels of letters, digits and '-' (at most 63 each, 253 in all),
    an optional final dot."""
    if not isinstance(value, str) or not value or len(value.rstrip(".")) > 253:
        return False
    return all(len(part) <= 63 and DNS_NAME_LABEL.match(part) for part in value.rstrip(".").split("."))


def address_kind(value):
    """'ip', 'dns', 'unix' or None: what a WorkloadEntry address is."""
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("unix://"):
        path = value[len("unix://"):]
        return "unix" if path[:1] in ("/", "@") and len(path) > 1 and not path.endswith("/") else None
    try:
        ipaddress.ip_address(value)
        return "ip"
    except ValueError:
        pass
    # an all-numeric dotted name is a mistyped IPv4 address, not a host name
    if is_dns_name(value) and not all(p.isdigit() for p in value.rstrip(".").split(".")):
        return "dns"
    return None


def _ports_map(fail, key, ports):
    if not isinstance(ports, dict):
        fail("%s must be a mapping of port name to port number, got %s" % (key, type(ports).__name__))
    for name, number in ports.items():
        if not isinstance(name, str) or len(name) >= 63 or not PORT_NAME.match(name):
            fail("%s: port name %r is not valid (letters, digits and '-', starting and ending with a letter "
                 "or digit, shorter than 63 characters)" % (key, name))
        _int_field(fail, "%s.%s" % (key, name), number, 1, 65535)


def _locality(fail, key, value):
    _string_field(fail, key, value, 2048)
    parts = value.split("/")
    if value and (len(parts) > 3 or not all(parts)):
        fail("%s %r is not region[/zone[/subzone]]" % (key, value))


def _workload(fail, key, spec, in_template=False):
    """The fields of a WorkloadEntry spec (or of a WorkloadGroup's template, at ``key``)."""
    allowed = tuple(k for k in WORKLOAD_KEYS if not (in_template and k == "address"))
    if in_template and isinstance(spec, dict) and "address" in spec:
        fail("%s.address must not be set: each VM's address is filled in when it registers "
             "(for one fixed address, use a WorkloadEntry)" % key)
    _known_keys(fail, key, spec, allowed)
    address = spec.get("address")
    if not in_template:
        if address is None or address == "":
            fail("%s.address is required (an IP address, a DNS name or unix:///path of a socket)" % key)
        kind = address_kind(address)
        if kind is None or len(address) > 256:
            fail("%s.address %r is not an IP address, a DNS name or unix:///path (or unix://@name) of a "
                 "socket (at most 256 characters)" % (key, address))
        if kind == "unix" and spec.get("ports") is not None:
            fail("%s.ports must not be set with a unix socket address (%s)" % (key, address))
    if spec.get("ports") is not None:
        _ports_map(fail, key + ".ports", spec["ports"])
    if spec.get("labels") is not None:
        _label_map(fail, key + ".labels", spec["labels"])
        if OWNER_LABEL in spec["labels"]:
            fail("%s.labels must not carry %s: that label marks the objects this collection owns" % (key, OWNER_LABEL))
    if spec.get("weight") is not None:
        _int_field(fail, key + ".weight", spec["weight"], 0, UINT32_MAX)
    if spec.get("serviceAccount") is not None and not names.is_dns1123_subdomain(spec["serviceAccount"]):
        fail("%s.serviceAccount %r is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
             "at most 253 characters)" % (key, spec["serviceAccount"]))
    if spec.get("network") is not None:
        _string_field(fail, key + ".network", spec["network"], 2048)
    if spec.get("locality") is not None:
        _locality(fail, key + ".locality", spec["locality"])


def _probe_port(fail, key, method):
    if "port" not in method:
        fail("%s.port is required" % key)
    _int_field(fail, key + ".port", method["port"], 1, 65535)


def _probe(fail, key, probe):
    """A WorkloadGroup's readiness probe: integer timings, exactly one way to probe."""
    _known_keys(fail, key, probe, PROBE_TIMINGS + PROBE_METHODS)
    for timing in PROBE_TIMINGS:
        if probe.get(timing) is not None:
            _int_field(fail, "%s.%s" % (key, timing), probe[timing], 0, INT32_MAX)
    methods = [m for m in PROBE_METHODS if probe.get(m) is not None]
    if len(methods) != 1:
        fail("%s must have exactly one of %s, got %s" % (key, ", ".join(PROBE_METHODS), ", ".join(methods) or "none"))
    method, where = probe[methods[0]], "%s.%s" % (key, methods[0])
    if methods[0] == "httpGet":
        _known_keys(fail, where, method, ("path", "port", "host", "scheme", "httpHeaders"))
        _probe_port(fail, where, method)
        for field in ("path", "host"):
            if method.get(field) is not None:
                _string_field(fail, "%s.%s" % (where, field), method[field])
        if method.get("scheme") is not None and method["scheme"] not in ("HTTP", "HTTPS"):
            fail("%s.scheme must be HTTP or HTTPS, got %r" % (where, method["scheme"]))
        headers = method.get("httpHeaders")
        if headers is not None and not isinstance(headers, list):
            fail("%s.httpHeaders must be a list of {name, value}, got %s" % (where, type(headers).__name__))
        for i, header in enumerate(headers or []):
            at = "%s.httpHeaders[%d]" % (where, i)
            _known_keys(fail, at, header, ("name", "value"))
            if not isinstance(header.get("name"), str) or not HTTP_HEADER_NAME.match(header["name"]):
                fail("%s.name %r is not a header name (letters, digits, '-' and '_')" % (at, header.get("name")))
            _string_field(fail, at + ".value", header.get("value"))
    elif methods[0] == "tcpSocket":
        _known_keys(fail, where, method, ("host", "port"))
        _probe_port(fail, where, method)
        if method.get("host") is not None:
            _string_field(fail, where + ".host", method["host"])
    elif methods[0] == "exec":
        _known_keys(fail, where, method, ("command",))
        command = method.get("command")
        if not (isinstance(command, list) and command and all(isinstance(c, str) and c for c in command)):
            fail("%s.command must be a non-empty list of non-empty strings, got %r" % (where, command))
    else:
        _known_keys(fail, where, method, ("port", "service"))
        _probe_port(fail, where, method)
        if method.get("service") is not None:
            _string_field(fail, where + ".service", method["service"])


def _workload_entry_check(fail, spec):
    _workload(fail, "spec", spec)


def _workload_group_check(fail, spec):
    _known_keys(fail, "spec", spec, ("metadata", "template", "probe"))
    if not isinstance(spec.get("template"), dict):
        fail("spec.template is required: a mapping of the WorkloadEntry fields every VM of the group gets "
             "(serviceAccount, network, ports, ...), got %s" % type(spec.get("template")).__name__)
    _workload(fail, "spec.template", spec["template"], in_template=True)
    metadata = spec.get("metadata")
    if metadata is not None:
        _known_keys(fail, "spec.metadata", metadata, ("labels", "annotations"))
        labels = _label_map(fail, "spec.metadata.labels", metadata.get("labels"))
        if OWNER_LABEL in labels:
            fail("spec.metadata.labels must not carry %s: every WorkloadEntry the group registers would look "
                 "owned by this collection" % OWNER_LABEL)
        _string_map(fail, "spec.metadata.annotations", metadata.get("annotations"))
    if spec.get("probe") is not None:
        _probe(fail, "spec.probe", spec["probe"])


KINDS = {
    "ServiceEntry": Kind(API_VERSION, check=_hosts_check("hosts", True)),
    "DestinationRule": Kind(API_VERSION, check=_hosts_check("host", False)),
    "VirtualService": Kind(API_VERSION, check=_hosts_check("hosts", True)),
    "Gateway": Kind(API_VERSION, check=_servers_check),
    "ConfigMap": Kind("v1", content="data", check=_data_check, write="replace"),
    "WorkloadEntry": Kind(API_VERSION, check=_workload_entry_check),
    "WorkloadGroup": Kind(API_VERSION, check=_workload_group_check),
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


def summary(todo, want_diff, ref=None):
    """The module result for a plan (``ref``: how an object is named, default ref_of)."""
    ref = ref or ref_of
    refs = dict((k, [ref(o) for o in todo[k]]) for k in ("create", "update", "delete"))
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


def _kind_ref(obj):
    return "%s %s" % (obj.get("kind"), ref_of(obj))


def unowned_conflicts(to_create, items, owner, ref=None):
    """Messages for the objects we would create that exist without our owner label.

    ``items``: what a LIST of the scope returned, owned or not (of the kind of ``to_create``, unless
    ``ref`` names objects with their kind, as it then also matches them: ``Kind namespace/name``)."""
    key = ref or ref_of
    name = ref or _kind_ref
    known = dict((key(i), i) for i in items)
    out = []
    for obj in to_create:
        live = known.get(key(obj))
        if live is None:
            continue
        have = names.labels_of(live).get(OWNER_LABEL)
        out.append("%s already exists and is not managed by owner %s (its %s label is %s); "
                   "delete it, label it %s=%s, or choose another name"
                   % (name(obj), owner, OWNER_LABEL, "%r" % have if have else "absent", OWNER_LABEL, owner))
    return out


def check_workers(workers):
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise MeshError("workers: must be an integer of at least 1, got %r" % (workers,), field="workers")
    return workers
