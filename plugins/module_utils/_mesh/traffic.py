# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Traffic policies for any mesh service, as pure logic: a compact spec per host becomes the
host's DestinationRule (subsets) and VirtualService (routes), as reconciler entries.

The spec, one entry of a list (``policies``), as it reads in inventory YAML::

    - host: reviews.bookinfo.svc.cluster.local  # the service: DestinationRule host, route destination
      namespace: bookinfo                       # where both objects are written
      subsets:                                  # subset name -> the pod labels it selects
        v1: {version: v1}
        v2: {version: v2}
        v3: {version: v3}
      routes:                                   # in order, the first that matches wins
        - match: {user: jason}                  # = {headers: {end-user: {exact: jason}}}
          to: v2                                # = {v2: 100}
        - to: {v1: 90, v2: 10}                  # the default route (no match): last, at most one

Keys of a policy:

``host`` (required)
    A lower-case DNS name (``reviews.bookinfo.svc.cluster.local``, or the short ``reviews``, which
    Istio reads relative to ``namespace``); no wildcard.  ``.global`` hosts are refused here: see
    ``global_routes``.
``namespace`` (required)
    A DNS-1123 label: the namespace of both objects.
``name``
    The objects' name; default the first label of ``host`` (``reviews``).  Two policies whose
    objects would get one name in one namespace are refused (set ``name`` on one of them).
``subsets``
    Subset name (a DNS-1123 label) -> labels (valid label keys, string values; quote ``"1"``).
``routes``
    A list; each route has ``to`` (required) and ``match`` (optional).

    ``to`` is a subset name (all traffic) or a mapping subset -> weight: integers from 0 to 100
    (not booleans, not strings) that add up to 100, every subset one of ``subsets``.

    ``match`` is one condition or a list of them (any of them matches); a condition has one or
    more of ``headers`` (header name, lower case -> ``{exact|prefix|regex: value}``, or a plain
    string for ``exact``), ``uri`` (``{exact|prefix|regex: value}`` or a string for ``exact``) and
    ``user`` (shortcut for the ``end-user`` header, exact, as bookinfo's productpage sets it).
    Regular expressions are RE2 (Envoy's): lookaround and backreferences are refused.

    At most one route has no ``match`` and it must be the last.  A policy for the mesh (no
    ``gateways``) with routes needs that default route: a request that matches no route gets a 404.
``blue_green``
    ``{active: v2}``: all traffic to one subset (switch by changing ``active``).
``canary``
    ``{stable: v1, canary: v2, percent: 10}``: ``percent`` (an integer from 0 to 100) to
    ``canary``, the rest to ``stable``.

    A shortcut makes the default route; it may follow ``routes`` whose every route has a match
    (A/B for one user, a canary for everyone else); at most one shortcut.
``traffic_policy``
    The DestinationRule's ``trafficPolicy``, in Istio's shape (``{tls: {mode: ISTIO_MUTUAL}}``);
    known top-level keys only (catches ``load_balancer`` for ``loadBalancer``).
``gateways``, ``hosts``
    For an ingress VirtualService: gateway names (``mesh``, ``<gateway>`` or
    ``<namespace>/<gateway>``) and the hosts it serves (default ``[host]``; ``*`` and
    ``*.example.com`` allowed).  Without ``gateways`` the VirtualService applies to the sidecars.
``port``
    The destination port number, for a service with several ports.
``export_to``
    ``exportTo`` of both objects: ``.``, ``*`` or namespaces.

Choices (each tested):

* zero weights are dropped from the VirtualService: ``{v1: 100, v2: 0}`` and ``v1`` make the same
  object, so switching a stage by writing a weight of 0 is no change at all; a route left with one
  destination carries no ``weight`` (Istio sends it all the traffic), as Istio's own samples write it;
* subsets are sorted by name, destinations by subset, headers by name, and every mapping is built
  in a fixed key order: the same spec gives the same objects, whatever the order of its mappings;
* the DestinationRule depends only on host, namespace, name, subsets, traffic_policy and export_to,
  never on the routes: a stage (``stage_policy``) changes routes only, so between stages only the
  VirtualService changes;
* a policy without routes or shortcut writes no VirtualService; one without subsets and
  traffic_policy writes no DestinationRule.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

FIELD = "policies"
POLICY_KEYS = ("host", "namespace", "name", "subsets", "routes", "blue_green", "canary", "traffic_policy",
               "gateways", "hosts", "port", "export_to")
# the keys a stage may set: the routes, nothing the DestinationRule is made of
ROUTE_KEYS = ("routes", "blue_green", "canary")
ROUTE_FIELDS = ("match", "to")
MATCH_KEYS = ("headers", "uri", "user")
STRING_MATCH_KINDS = ("exact", "prefix", "regex")
USER_HEADER = "end-user"
HEADER_NAME = re.compile(r"^[a-z0-9][-a-z0-9_]*$")
# RE2 has no lookaround and no backreferences; Envoy refuses such a regex when the route is loaded
RE2_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]")
TRAFFIC_POLICY_KEYS = ("loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings", "tunnel",
                       "proxyProtocol", "retryBudget")
TLS_MODES = ("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")
GLOBAL_SUFFIX = ".global"


def _fail(where, msg, field):
    raise MeshError("%s: %s" % (where, msg), field=field)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _sorted_copy(value):
    """A deep copy of ``value`` whose mappings are rebuilt with their keys in sorted order."""
    if isinstance(value, dict):
        return dict((k, _sorted_copy(value[k])) for k in sorted(value, key=str))
    if isinstance(value, (list, tuple)):
        return [_sorted_copy(v) for v in value]
    return copy.deepcopy(value)


def _known_keys(where, value, allowed, field, what="a mapping"):
    if not isinstance(value, dict):
        _fail(where, "must be %s, got %s %r" % (what, type(value).__name__, value), field)
    unknown = sorted(str(k) for k in set(value) - set(allowed))
    if unknown:
        _fail(where, "unknown key(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(allowed)), field)


def where_of(field, i, policy):
    """``policies[0] (reviews.bookinfo.svc.cluster.local)``: how messages name one policy."""
    host = policy.get("host") if isinstance(policy, dict) else None
    if isinstance(host, str) and host:
        return "%s[%d] (%s)" % (field, i, host)
    return "%s[%d]" % (field, i)


def default_name(host):
    """The objects' default name: the first label of the host (``reviews`` of ``reviews.bookinfo.svc...``)."""
    return host.split(".")[0]


# --- pieces of a policy ---------------------------------------------------------

def _host(where, host, field, allow_global=False):
    if not names.is_dns1123_subdomain(host) or any(len(p) > 63 for p in host.split(".")):
        _fail(where, "host: %r is not a lower-case DNS name (letters, digits, '-' and '.', no wildcard), such as "
              "reviews.bookinfo.svc.cluster.local" % (host,), field)
    if host.endswith(GLOBAL_SUFFIX) and not allow_global:
        _fail(where, "host: %s is a .global host, whose DestinationRule and VirtualService the federation writes "
              "(meshfed.istio.global_service_entries); route it with federate_clusters_global_routes "
              "(the filter meshfed.istio.mesh_global_routes makes that value from this policy)" % host, field)
    return host


def _subsets(where, subsets, field):
    """[(name, labels)] sorted by name."""
    if subsets is None:
        return []
    if not isinstance(subsets, dict):
        _fail(where, "subsets: must be a mapping of subset name to pod labels, such as {v1: {version: v1}}, got %s"
              % type(subsets).__name__, field)
    out = []
    for name in sorted(subsets, key=str):
        at = "%s.subsets.%s" % (where, name)
        if not names.is_dns1123_label(name):
            _fail(where, "subsets: %r is not a valid subset name (a DNS-1123 label: lower-case letters, digits and "
                  "'-', at most 63, starting and ending with a letter or digit)" % (name,), field)
        labels = subsets[name]
        if not isinstance(labels, dict) or not labels:
            _fail(at, "must be a non-empty mapping of pod labels, such as {version: %s}, got %r" % (name, labels), field)
        for key in sorted(labels, key=str):
            value = labels[key]
            if not reconcile.is_label_key(key):
                _fail(at, "%r is not a valid label key" % (key,), field)
            if not isinstance(value, str):
                _fail("%s.%s" % (at, key), "must be a string, got %s %r (quote it)" % (type(value).__name__, value),
                      field)
            if not names.is_label_value(value):
                _fail("%s.%s" % (at, key), "%r is not a valid label value (at most 63 letters, digits, '-', '_' or "
                      "'.', starting and ending with a letter or digit)" % (value,), field)
        out.append((name, dict((k, labels[k]) for k in sorted(labels))))
    return out


def _defined(where, subset, known, field):
    if subset is None:
        _fail(where, "is required: one of the subsets (%s)" % (", ".join(known) or "none defined"), field)
    if not isinstance(subset, str) or subset not in known:
        _fail(where, "subset %r is not defined (subsets: %s)" % (subset, ", ".join(known) or "none"), field)


def _weights(where, to, known, field):
    """[(subset, weight)] of a route's ``to``, sorted by subset, zero weights included."""
    if isinstance(to, str):
        _defined(where, to, known, field)
        return [(to, 100)]
    if not isinstance(to, dict) or not to:
        _fail(where, "must be a subset name or a mapping of subset name to weight, such as {v1: 90, v2: 10}, "
              "got %r" % (to,), field)
    pairs = []
    for subset in sorted(to, key=str):
        _defined(where, subset, known, field)
        weight = to[subset]
        if not _is_int(weight) or not 0 <= weight <= 100:
            _fail("%s.%s" % (where, subset), "weight must be an integer from 0 to 100, got %s %r"
                  % (type(weight).__name__, weight), field)
        pairs.append((subset, weight))
    total = sum(w for dummy, w in pairs)
    if total != 100:
        _fail(where, "weights %s = %d, must sum to 100" % (" + ".join(str(w) for dummy, w in pairs), total), field)
    return pairs


def _string_match(where, value, field):
    """``{exact|prefix|regex: value}`` (a plain string is ``exact``)."""
    if isinstance(value, str):
        value = {"exact": value}
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in STRING_MATCH_KINDS:
        _fail(where, "must be a string or one of {exact: ...}, {prefix: ...}, {regex: ...}, got %r" % (value,), field)
    kind, text = next(iter(value.items()))
    if not isinstance(text, str) or not text:
        _fail("%s.%s" % (where, kind), "must be a non-empty string, got %r" % (text,), field)
    if kind == "regex" and RE2_UNSUPPORTED.search(text):
        _fail("%s.%s" % (where, kind), "%r uses lookaround or a backreference, which RE2 (Envoy's regex engine) "
              "does not support" % (text,), field)
    return {kind: text}


def _condition(where, cond, field):
    """One HTTPMatchRequest in Istio's shape."""
    _known_keys(where, cond, MATCH_KEYS, field, "a mapping with headers, uri or user")
    if not cond:
        _fail(where, "is empty; give headers, uri or user (a route for everyone has no match)", field)
    out = {}
    headers = cond.get("headers")
    if headers is not None:
        if not isinstance(headers, dict) or not headers:
            _fail(where + ".headers", "must be a non-empty mapping of header name to match, got %r" % (headers,), field)
        built = {}
        for name in sorted(headers, key=str):
            if not isinstance(name, str) or not HEADER_NAME.match(name):
                _fail(where + ".headers", "%r is not a header name Istio matches (lower-case letters, digits, '-' "
                      "and '_')" % (name,), field)
            built[name] = _string_match("%s.headers.%s" % (where, name), headers[name], field)
        out["headers"] = built
    if cond.get("user") is not None:
        user = cond["user"]
        if not isinstance(user, str) or not user:
            _fail(where + ".user", "must be a non-empty string (the end-user header), got %r" % (user,), field)
        if USER_HEADER in out.get("headers", {}):
            _fail(where, "user and headers.%s both set the %s header; keep one" % (USER_HEADER, USER_HEADER), field)
        out.setdefault("headers", {})[USER_HEADER] = {"exact": user}
        out["headers"] = dict((k, out["headers"][k]) for k in sorted(out["headers"]))
    if cond.get("uri") is not None:
        out["uri"] = _string_match(where + ".uri", cond["uri"], field)
    return dict((k, out[k]) for k in sorted(out))


def _match(where, match, field):
    """A list of HTTPMatchRequests (any of them matches), None for none."""
    if match is None:
        return None
    if isinstance(match, dict):
        return [_condition(where, match, field)]
    if not isinstance(match, list) or not match:
        _fail(where, "must be a condition (a mapping) or a non-empty list of them, got %r" % (match,), field)
    return [_condition("%s[%d]" % (where, i), cond, field) for i, cond in enumerate(match)]


def _routes(where, routes, known, field):
    if routes is None:
        return []
    if not isinstance(routes, list):
        _fail(where, "routes: must be a list of routes ({match, to}), got %s" % type(routes).__name__, field)
    out = []
    for i, route in enumerate(routes):
        at = "%s.routes[%d]" % (where, i)
        _known_keys(at, route, ROUTE_FIELDS, field, "a mapping with to and optionally match")
        if "to" not in route:
            _fail(at, "to is required: a subset name or {subset: weight}", field)
        out.append({"match": _match(at + ".match", route.get("match"), field),
                    "to": _weights(at + ".to", route["to"], known, field)})
    for i, route in enumerate(out):
        if route["match"] is None and i != len(out) - 1:
            _fail("%s.routes[%d]" % (where, i), "has no match, so routes[%d:] after it would never be used; "
                  "the route without match must be the last" % (i + 1), field)
    return out


def _percent(where, value, field):
    if not _is_int(value) or not 0 <= value <= 100:
        _fail(where, "must be an integer from 0 to 100, got %s %r" % (type(value).__name__, value), field)
    return value


def _shortcut(where, policy, known, field):
    """The default route a blue_green or canary shortcut makes, None without one."""
    given = [k for k in ("blue_green", "canary") if policy.get(k) is not None]
    if len(given) > 1:
        _fail(where, "blue_green and canary both make the default route; keep one", field)
    if not given:
        return None
    key = given[0]
    at = "%s.%s" % (where, key)
    value = policy[key]
    if key == "blue_green":
        _known_keys(at, value, ("active",), field, "a mapping {active: <subset>}")
        _defined(at + ".active", value.get("active"), known, field)
        return {"match": None, "to": [(value["active"], 100)]}
    _known_keys(at, value, ("stable", "canary", "percent"), field, "a mapping {stable, canary, percent}")
    for k in ("stable", "canary"):
        _defined("%s.%s" % (at, k), value.get(k), known, field)
    if value["stable"] == value["canary"]:
        _fail(at, "stable and canary are both %s; a canary needs two subsets" % value["stable"], field)
    percent = _percent(at + ".percent", value.get("percent"), field)
    return {"match": None, "to": sorted([(value["stable"], 100 - percent), (value["canary"], percent)])}


def _string_list(where, value, field, check, what):
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list) or not value:
        _fail(where, "must be a non-empty list, each %s, got %r" % (what, value), field)
    for item in value:
        if not isinstance(item, str) or not check(item):
            _fail(where, "%r is not %s" % (item, what), field)
    return list(value)


def _is_vs_host(value):
    if value == "*":
        return True
    return names.is_dns1123_subdomain(value[2:] if value.startswith("*.") else value)


def _is_gateway(value):
    ns, slash, name = value.rpartition("/")
    return (not slash or names.is_dns1123_label(ns)) and names.is_dns1123_subdomain(name)


def _is_export(value):
    return value in (".", "*") or names.is_dns1123_label(value)


def _traffic_policy(where, value, field):
    if value is None:
        return None
    _known_keys(where, value, TRAFFIC_POLICY_KEYS, field, "a mapping in Istio's trafficPolicy shape")
    tls = value.get("tls")
    if tls is not None:
        if not isinstance(tls, dict):
            _fail(where + ".tls", "must be a mapping such as {mode: ISTIO_MUTUAL}, got %r" % (tls,), field)
        if tls.get("mode") is not None and tls["mode"] not in TLS_MODES:
            _fail(where + ".tls.mode", "must be one of %s, got %r" % (", ".join(TLS_MODES), tls["mode"]), field)
    return _sorted_copy(value)


# --- policies -------------------------------------------------------------------

def normalize_policy(policy, where="policy", field=FIELD, allow_global=False):
    """One policy, checked, in the normal form the object functions use: shortcuts expanded into
    the default route, defaults filled in, mappings sorted.  MeshError naming ``where`` otherwise."""
    _known_keys(where, policy, POLICY_KEYS, field, "a mapping with host, namespace, subsets and routes")
    if "host" not in policy:
        _fail(where, "host is required (the service, such as reviews.bookinfo.svc.cluster.local)", field)
    host = _host(where, policy["host"], field, allow_global)
    namespace = policy.get("namespace")
    if not names.is_dns1123_label(namespace):
        _fail(where, "namespace: %r is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)"
              % (namespace,), field)
    name = policy.get("name")
    if name is None:
        name = default_name(host)
    elif not names.is_dns1123_subdomain(name):
        _fail(where, "name: %r is not a DNS-1123 subdomain" % (name,), field)
    subsets = _subsets(where, policy.get("subsets"), field)
    known = [s for s, dummy in subsets]
    routes = _routes(where, policy.get("routes"), known, field)
    default = _shortcut(where, policy, known, field)
    if default is not None:
        plain = [i for i, r in enumerate(routes) if r["match"] is None]
        if plain:
            _fail("%s.routes[%d]" % (where, plain[0]), "has no match, but %s makes the default route; give this "
                  "route a match or drop the shortcut" % ("blue_green" if policy.get("blue_green") else "canary"),
                  field)
        routes.append(default)
    gateways = _string_list(where + ".gateways", policy.get("gateways"), field, _is_gateway,
                            "a gateway name (mesh, <gateway> or <namespace>/<gateway>)")
    if routes and not gateways and routes[-1]["match"] is not None:
        _fail(where + ".routes", "every route has a match, so a request that matches none gets a 404; add a last "
              "route without match (or a blue_green or canary shortcut)", field)
    hosts = _string_list(where + ".hosts", policy.get("hosts"), field, _is_vs_host,
                         "a host name (a DNS name, *.<domain> or *)")
    port = policy.get("port")
    if port is not None and (not _is_int(port) or not 0 < port < 65536):
        _fail(where + ".port", "must be a port number (1-65535), got %r" % (port,), field)
    export_to = _string_list(where + ".export_to", policy.get("export_to"), field, _is_export,
                             "'.', '*' or a namespace")
    return {"host": host, "namespace": namespace, "name": name, "subsets": subsets, "routes": routes,
            "traffic_policy": _traffic_policy(where + ".traffic_policy", policy.get("traffic_policy"), field),
            "gateways": gateways, "hosts": hosts or [host], "port": port,
            "export_to": sorted(set(export_to)) if export_to else None}


def validate(policies, field=FIELD, allow_global=False):
    """The policies (a list), checked and normalised (``normalize_policy``); MeshError naming the
    policy and the key at fault, ``field`` as its field, before anything is written.  Also refused:
    one host in two policies, two policies whose objects get one name in one namespace."""
    if policies is None:
        return []
    if not isinstance(policies, list):
        raise MeshError("%s: must be a list of traffic policies, got %s" % (field, type(policies).__name__),
                        field=field)
    out, hosts, refs = [], {}, {}
    for i, policy in enumerate(policies):
        where = where_of(field, i, policy)
        norm = normalize_policy(policy, where, field, allow_global)
        if norm["host"] in hosts:
            _fail(where, "host %s already has a policy (%s[%d]); give each host one policy"
                  % (norm["host"], field, hosts[norm["host"]]), field)
        hosts[norm["host"]] = i
        ref = (norm["namespace"], norm["name"])
        if ref in refs:
            _fail(where, "its objects would be named %s/%s, as those of %s[%d]; set name on one of them"
                  % (ref + (field, refs[ref])), field)
        refs[ref] = i
        out.append(norm)
    return out


def destination_rule(policy):
    """The reconciler entry ({name, namespace, spec}) of the policy's DestinationRule, None when it
    has neither subsets nor traffic_policy.  Made of the host, name, namespace, subsets,
    traffic_policy and export_to only: the routes never change it."""
    return _destination_rule(normalize_policy(policy))


def _destination_rule(p):
    if not p["subsets"] and p["traffic_policy"] is None:
        return None
    spec = {"host": p["host"]}
    if p["traffic_policy"] is not None:
        spec["trafficPolicy"] = copy.deepcopy(p["traffic_policy"])
    if p["subsets"]:
        spec["subsets"] = [{"name": s, "labels": dict(labels)} for s, labels in p["subsets"]]
    if p["export_to"]:
        spec["exportTo"] = list(p["export_to"])
    return {"name": p["name"], "namespace": p["namespace"], "spec": spec}


def _destinations(p, pairs):
    out = []
    kept = [(s, w) for s, w in pairs if w > 0]
    for subset, weight in kept:
        dest = {"host": p["host"], "subset": subset}
        if p["port"] is not None:
            dest["port"] = {"number": p["port"]}
        item = {"destination": dest}
        if len(kept) > 1:
            item["weight"] = weight
        out.append(item)
    return out


def virtual_service(policy):
    """The reconciler entry ({name, namespace, spec}) of the policy's VirtualService (HTTP routes, in
    order), None when it has no routes.  Zero-weight destinations are dropped; a sole destination
    carries no weight."""
    return _virtual_service(normalize_policy(policy))


def _virtual_service(p):
    if not p["routes"]:
        return None
    spec = {"hosts": list(p["hosts"])}
    if p["gateways"]:
        spec["gateways"] = list(p["gateways"])
    http = []
    for route in p["routes"]:
        item = {}
        if route["match"] is not None:
            item["match"] = copy.deepcopy(route["match"])
        item["route"] = _destinations(p, route["to"])
        http.append(item)
    spec["http"] = http
    if p["export_to"]:
        spec["exportTo"] = list(p["export_to"])
    return {"name": p["name"], "namespace": p["namespace"], "spec": spec}


def entries(policies, field=FIELD):
    """{"DestinationRule": [...], "VirtualService": [...]}: the reconciler entries of all policies,
    each list sorted by namespace and name; all policies are checked first."""
    checked = validate(policies, field)
    rules = [e for e in (_destination_rule(p) for p in checked) if e is not None]
    services = [e for e in (_virtual_service(p) for p in checked) if e is not None]
    return {"DestinationRule": sorted(rules, key=_ref), "VirtualService": sorted(services, key=_ref)}


def _ref(entry):
    return (entry["namespace"], entry["name"])


# --- stages ---------------------------------------------------------------------
# A staged rollout is a base policy (what the DestinationRule is made of) and named stages that
# set only ROUTE_KEYS: moving from one stage to another changes the VirtualService only.

BOOKINFO_REVIEWS = {
    "policy": {
        "host": "reviews.bookinfo.svc.cluster.local", "namespace": "bookinfo",
        "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}, "v3": {"version": "v3"}},
    },
    "stages": [
        {"name": "all-v1", "blue_green": {"active": "v1"}},
        {"name": "v2-10", "canary": {"stable": "v1", "canary": "v2", "percent": 10}},
        {"name": "v2-v3-50", "routes": [{"to": {"v2": 50, "v3": 50}}]},
        {"name": "all-v3", "blue_green": {"active": "v3"}},
        {"name": "jason", "routes": [{"match": {"user": "jason"}, "to": "v2"}, {"to": "v3"}]},
    ],
}

# multi-primary: each primary's istiod merges both clusters' endpoints, so the subsets select
# helloworld v1 (cluster1) and v2 (cluster2) alike; the objects go to every primary
HELLOWORLD = {
    "policy": {
        "host": "helloworld.sample.svc.cluster.local", "namespace": "sample",
        "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
    },
    "stages": [
        {"name": "all-v1", "blue_green": {"active": "v1"}},
        {"name": "v2-10", "canary": {"stable": "v1", "canary": "v2", "percent": 10}},
        {"name": "v2-50", "canary": {"stable": "v1", "canary": "v2", "percent": 50}},
        {"name": "all-v2", "blue_green": {"active": "v2"}},
    ],
}

# the explicit-export model: subsets named as the federation names them (version=v2 -> v2);
# through global_routes into federate_clusters_global_routes
HTTPBIN_GLOBAL = {
    "policy": {
        "host": "httpbin.bar.global",
        "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
    },
    "stages": [
        {"name": "all-v1", "blue_green": {"active": "v1"}},
        {"name": "v2-10", "canary": {"stable": "v1", "canary": "v2", "percent": 10}},
        {"name": "all-v2", "blue_green": {"active": "v2"}},
    ],
}

SAMPLE_STAGES = {"bookinfo-reviews": BOOKINFO_REVIEWS, "helloworld": HELLOWORLD, "httpbin-global": HTTPBIN_GLOBAL}


def stage_names(staged):
    """The names of the stages of ``staged`` ({policy, stages}), in order."""
    return [s.get("name") for s in staged.get("stages") or []]


def stage_policy(staged, stage, field="stage"):
    """The policy of one stage: the base policy with the stage's routes (``routes``, ``blue_green``
    or ``canary``; any of these the base had is replaced).  MeshError (``field``) for an unknown
    stage, or a stage that sets anything but routes (it would change the DestinationRule)."""
    if not isinstance(staged, dict) or not isinstance(staged.get("policy"), dict) or \
            not isinstance(staged.get("stages"), list):
        raise MeshError("%s: a staged policy is a mapping {policy, stages: [{name, ...}]}, got %r" % (field, staged),
                        field=field)
    known = stage_names(staged)
    if len(set(known)) != len(known):
        raise MeshError("%s: stage names must be unique, got %s" % (field, ", ".join(map(str, known))), field=field)
    if stage not in known:
        raise MeshError("%s: %r is not a stage; stages: %s" % (field, stage, ", ".join(map(str, known))), field=field)
    chosen = staged["stages"][known.index(stage)]
    extra = sorted(str(k) for k in set(chosen) - set(ROUTE_KEYS) - {"name"})
    if extra:
        raise MeshError("%s: stage %s sets %s; a stage sets only %s, so that between stages only the "
                        "VirtualService changes" % (field, stage, ", ".join(extra), ", ".join(ROUTE_KEYS)), field=field)
    policy = dict((k, copy.deepcopy(v)) for k, v in staged["policy"].items() if k not in ROUTE_KEYS)
    for key in ROUTE_KEYS:
        if key in chosen:
            policy[key] = copy.deepcopy(chosen[key])
    return policy


# --- .global hosts --------------------------------------------------------------

def global_object_names(host, namespace="istio-system"):
    """"namespace/name" of the DestinationRule and VirtualService the federation writes for a
    ``<name>.<namespace>.global`` host (both are named like its ServiceEntry)."""
    parts = host[:-len(GLOBAL_SUFFIX)].split(".") if host.endswith(GLOBAL_SUFFIX) else []
    if len(parts) != 2:
        raise MeshError("%s: is not a <service>.<namespace>.global host" % (host,), field=FIELD)
    ref = "%s/%s" % (namespace, federation.entry_name(parts[0], parts[1]))
    return {"DestinationRule": ref, "VirtualService": ref}


def global_routes(policies, field=FIELD):
    """The value of ``federate_clusters_global_routes`` ({host: {subset: weight}}) for policies of
    ``.global`` hosts.

    Why not objects of their own: the DestinationRule and VirtualService of a ``.global`` host are
    written by meshfed.istio.global_service_entries, named like the host's ServiceEntry
    (``global_object_names``: ``istio-system/global-httpbin-bar``), owned by ``meshfed-global`` and
    pruned with it.  Objects of the same names written by another owner are refused by the
    reconciler (``reconcile.unowned_conflicts``); objects of other names for the same host would be
    a second DestinationRule and VirtualService for one host, which Istio merges in no defined order.
    And the subsets are not the policy's to choose: the federation makes one per endpoint label set
    it exports (``version=v2`` -> ``v2``, the endpoints in other clusters being gateways), and its
    DestinationRule carries the ISTIO_MUTUAL the gateway's SNI passthrough needs.  So a ``.global``
    policy is only weights over those subsets: one default route (routes, blue_green or canary), no
    match (the federation's VirtualService has no match; it also routes TCP ports), subsets named
    as the federation names them, none of traffic_policy, gateways, hosts, port, export_to, name,
    namespace.  Whether each subset exists is checked by the federation against what is exported.
    """
    out = {}
    checked = []
    for i, policy in enumerate(policies or []):
        where = where_of(field, i, policy)
        if isinstance(policy, dict):
            extra = sorted(k for k in ("traffic_policy", "gateways", "hosts", "port", "export_to", "name", "namespace")
                           if policy.get(k) is not None)
            if extra:
                _fail(where, "%s cannot be set for a .global host: the federation writes its objects (in its "
                      "namespace, with ISTIO_MUTUAL); only subsets and weights are routed" % ", ".join(extra), field)
        # the namespace is the federation's: any DNS label makes the policy checkable
        checked.append((where, normalize_policy(dict(policy, namespace="istio-system") if isinstance(policy, dict)
                                                else policy, where, field, allow_global=True)))
    for where, p in checked:
        if not p["host"].endswith(GLOBAL_SUFFIX):
            _fail(where, "host: %s is not a .global host; write its objects with destination_rule and "
                  "virtual_service" % p["host"], field)
        global_object_names(p["host"])
        for subset, labels in p["subsets"]:
            if federation.subset_name(labels) != subset:
                _fail("%s.subsets.%s" % (where, subset), "the federation names the subset of labels %r %r; name it "
                      "so" % (labels, federation.subset_name(labels)), field)
        if len(p["routes"]) != 1 or p["routes"][0]["match"] is not None:
            _fail(where, "a .global host takes one route without match (weights over its subsets); the "
                  "federation's VirtualService has no match", field)
        if p["host"] in out:
            _fail(where, "host %s already has a policy; give each host one policy" % p["host"], field)
        # zero weights dropped, as in virtual_service
        out[p["host"]] = dict((s, w) for s, w in p["routes"][0]["to"] if w > 0)
    return dict((h, out[h]) for h in sorted(out))


# --- what the module checks against the cluster ---------------------------------

def scope(checked, namespaces=None, field=FIELD):
    """The namespaces the module lists and prunes: ``namespaces`` when given (every policy's
    namespace must be one of them, or its objects would be written but never pruned), else the
    namespaces of the ``checked`` policies (``validate``), sorted; [] for none (cluster-wide)."""
    if not namespaces:
        return sorted(set(p["namespace"] for p in checked))
    for ns in namespaces:
        if not names.is_dns1123_label(ns):
            raise MeshError("namespaces: %r is not a DNS-1123 label" % (ns,), field="namespaces")
    for i, p in enumerate(checked):
        if p["namespace"] not in namespaces:
            _fail("%s[%d] (%s)" % (field, i, p["host"]), "namespace %s is not one of namespaces (%s); its objects "
                  "would be written but never pruned" % (p["namespace"], ", ".join(sorted(set(namespaces)))), field)
    return sorted(set(namespaces))


def absent_scope(policies, namespaces=None, field=FIELD):
    """The namespaces of ``state: absent``: ``namespaces``, else the ``namespace`` of each policy
    (only that key is read: the rest of a policy being removed is not checked)."""
    if namespaces:
        return scope([], namespaces, field)
    out = set()
    for i, policy in enumerate(policies or []):
        ns = policy.get("namespace") if isinstance(policy, dict) else None
        if not names.is_dns1123_label(ns):
            _fail(where_of(field, i, policy), "namespace: %r is not a DNS-1123 label" % (ns,), field)
        out.add(ns)
    return sorted(out)


def _selects(selector, pod):
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    labels = meta.get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def subsets_without_pods(checked, pods_by_namespace, cluster, field=FIELD):
    """One message per subset of the ``checked`` policies (``validate``) whose labels select no
    live Pod (not terminating, not Succeeded or Failed) of its namespace in ``pods_by_namespace``
    ({namespace: [pod]}, as listed from ``cluster``), naming the policy and the subset."""
    out = []
    for i, p in enumerate(checked):
        pods = pods_by_namespace.get(p["namespace"]) or []
        for subset, labels in p["subsets"]:
            if not any(_selects(labels, pod) for pod in pods):
                out.append("%s[%d] (%s).subsets.%s: labels %s select no Pod in namespace %s of %s" % (
                    field, i, p["host"], subset, ",".join("%s=%s" % kv for kv in sorted(labels.items())),
                    p["namespace"], cluster))
    return out


def staged(sample_or_staged, namespace=None, field="sample"):
    """A staged policy ({policy, stages}): one of SAMPLE_STAGES by name (a copy), or the given one.
    ``namespace`` moves a sample's policy to another namespace, its host
    (``<service>.<namespace>.svc.cluster.local``) with it; not for a ``.global`` sample."""
    if isinstance(sample_or_staged, str):
        if sample_or_staged not in SAMPLE_STAGES:
            raise MeshError("%s: %r is not a sample; samples: %s (or give a staged policy {policy, stages})"
                            % (field, sample_or_staged, ", ".join(sorted(SAMPLE_STAGES))), field=field)
        out = copy.deepcopy(SAMPLE_STAGES[sample_or_staged])
    elif isinstance(sample_or_staged, dict):
        if namespace is not None:
            raise MeshError("%s: namespace moves a named sample only; set it in the staged policy" % field,
                            field=field)
        return sample_or_staged
    else:
        raise MeshError("%s: must be a sample name (%s) or a staged policy {policy, stages}, got %s"
                        % (field, ", ".join(sorted(SAMPLE_STAGES)), type(sample_or_staged).__name__), field=field)
    if namespace is not None:
        policy = out["policy"]
        if policy["host"].endswith(GLOBAL_SUFFIX):
            raise MeshError("%s: %s is a .global host, named by the federation; it has no namespace to move to"
                            % (field, policy["host"]), field=field)
        if not names.is_dns1123_label(namespace):
            raise MeshError("namespace: %r is not a DNS-1123 label" % (namespace,), field="namespace")
        policy["host"] = "%s.%s.svc.cluster.local" % (default_name(policy["host"]), namespace)
        policy["namespace"] = namespace
    return out
