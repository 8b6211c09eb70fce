# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""One validation of the whole desired state, before the first change in any cluster (pure).

The roles run it once per play (``meshfed.istio.mesh_problems``), after the role's
argument spec and before anything reads a cluster: every host's inventory variables
(``mesh_*``, read through ``topology.cluster_vars``) and the role variables each host
gathered into one fact (``{variable: value}``: role defaults, group and host variables
and extra vars, as the host sees them).  Every problem is one message that names the
inventory host and the variable the user wrote::

    host cluster2: federate_clusters_vip_cidr: '240.240.0.0/33' is not a valid CIDR: ...

The argument specs check types and choices; this adds what they cannot: values that
Ansible's type conversion would accept (a string where a list is meant, a boolean where
a weight is meant), syntax (CIDRs, addresses, URLs, label keys, selectors), ranges, and
what involves several hosts (one gateway address for two networks, the mode a remote
cluster needs).  What only the clusters can tell (ports of exported Services, addresses
already taken) is planned by the modules in a dry run that the roles also run before
their first change.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation, names, topology, vip
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError, TopologyError

# [prefix/]name, Kubernetes' qualified name (label keys)
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
EXPORT_KEYS = ("namespace", "names", "label_selector")
# TokenRequest refuses less than ten minutes
MIN_TOKEN_EXPIRATION = 600
MAX_TOKEN_EXPIRATION = 2 ** 32
ISTIO_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?$")


def _join(name, problem):
    """'name: problem', or 'name[i]: ...' for a problem of one item (that starts with '[')."""
    return name + problem if problem.startswith("[") else "%s: %s" % (name, problem)


def _type(value):
    return "null" if value is None else type(value).__name__


def _is_str(value, empty=False):
    return isinstance(value, str) and (empty or bool(value.strip()))


def label_key_problem(key):
    """Why ``key`` is not a Kubernetes label key, None when it is one."""
    if not isinstance(key, str) or not key:
        return "%r is not a label key" % (key,)
    prefix, dummy, name = key.rpartition("/")
    if "/" in key and not names.is_dns1123_subdomain(prefix):
        return "%r: prefix %r is not a DNS-1123 subdomain" % (key, prefix)
    if len(name) > 63 or not LABEL_NAME.match(name):
        return ("%r is not a label key (at most 63 letters, digits, '-', '_' or '.', starting and ending with a "
                "letter or digit, after an optional DNS prefix and '/')" % key)
    return None


def address_problem(value):
    """Why ``value`` is neither an IP address nor a DNS name, None when it is one."""
    if not _is_str(value):
        return "must be an IP address or a DNS name, got %s %r" % (_type(value), value)
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if names.is_dns1123_subdomain(value.lower()):
        return None
    return "%r is neither an IP address nor a DNS name" % value


def url_problem(value):
    """Why ``value`` is not an https:// URL of an API server, None when it is one."""
    if not _is_str(value):
        return "must be a URL such as https://api.example.com:6443, got %s %r" % (_type(value), value)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as e:
        return "%r is not a URL: %s" % (value, e)
    if parts.scheme != "https" or not parts.hostname:
        return "%r is not an https:// URL with a host (such as https://api.example.com:6443)" % value
    if port == 0:
        return "%r: port 0" % value
    problem = address_problem(parts.hostname)
    return "%r: host %s" % (value, problem) if problem else None


# ---------------------------------------------------------------- one variable

def _str_list(value, what, check):
    """Problems of a list of strings, each checked by ``check`` (a message or None)."""
    if not isinstance(value, list):
        return ["must be a list (YAML [a, b]) of %s, got %s %r" % (what, _type(value), value)]
    out = []
    for i, item in enumerate(value):
        problem = check(item)
        if problem:
            out.append("[%d]: %s" % (i, problem))
    return out


def exports_problems(value):
    """mesh_exports: a list of {namespace, names, label_selector}."""
    if not isinstance(value, list):
        return ["must be a list of {namespace, names, label_selector}, got %s %r" % (_type(value), value)]
    out = []
    for i, spec in enumerate(value):
        where = "[%d]" % i
        if not isinstance(spec, dict):
            out.append("%s: must be a mapping with namespace (and names or label_selector), got %s %r"
                       % (where, _type(spec), spec))
            continue
        unknown = sorted(str(k) for k in spec if k not in EXPORT_KEYS)
        if unknown:
            out.append("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(unknown), ", ".join(EXPORT_KEYS)))
        ns = spec.get("namespace")
        if not ns:
            out.append("%s: namespace is required" % where)
        elif not names.is_dns1123_label(ns):
            out.append("%s: namespace %r is not a namespace name (a DNS-1123 label)" % (where, ns))
        if "names" in spec and spec["names"] is not None:
            out.extend(_join(where + ".names", p) for p in _str_list(
                spec["names"], "Service names",
                lambda n: None if names.is_dns1123_label(n) else "%r is not a Service name (a DNS-1123 label)" % (n,)))
        selector = spec.get("label_selector")
        if selector is not None and selector != "":
            if not isinstance(selector, str):
                out.append("%s: label_selector must be a string such as 'mesh-export=true', got %s"
                           % (where, _type(selector)))
            elif federation.selector_problem(selector):
                out.append("%s: %s" % (where, federation.selector_problem(selector)))
    return out


def routes_problems(value):
    """federate_clusters_global_routes: {<name>.<namespace>.global: {subset: weight}}, integer
    weights 0-100 that add up to 100 per host (which subsets exist, the clusters tell)."""
    if not isinstance(value, dict):
        return ["must be a mapping of .global host to {subset: weight}, got %s %r" % (_type(value), value)]
    out = []
    for host in sorted(value, key=str):
        weights = value[host]
        where = "[%s]" % host
        if not isinstance(host, str) or not host.endswith(".global") or len(host.split(".")) != 3 \
                or not all(names.is_dns1123_label(p) for p in host.split(".")[:2]):
            out.append("%s: not a .global host of the form <service>.<namespace>.global" % where)
        if not isinstance(weights, dict) or not weights:
            out.append("%s: must map subset names to weights, got %s %r" % (where, _type(weights), weights))
            continue
        bad = False
        for subset in sorted(weights, key=str):
            if not names.is_dns1123_label(subset):
                out.append("%s: subset %r is not a subset name" % (where, subset))
            problem = federation.weight_problem(subset, weights[subset])
            if problem:
                out.append("%s: %s" % (where, problem))
                bad = True
        if not bad and federation.total_problem(weights):
            out.append("%s: %s" % (where, federation.total_problem(weights)))
    return out


def _vip_cidr(value):
    try:
        vip.parse_cidr(value, field="x")
    except MeshError as e:
        return [str(e)[len("x: "):]]
    return []


def _int_range(low, high, unit=""):
    def check(value):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # -e name=600 gives a string, which Ansible's int type converts
        if isinstance(value, bool) or not isinstance(value, int):
            return ["must be an integer%s, got %s %r" % (unit, _type(value), value)]
        if not low <= value <= high:
            return ["must be from %d to %d%s, got %d" % (low, high, unit, value)]
        return []
    return check


def _dns_label(what, empty=False):
    def check(value):
        if empty and value == "":
            return []
        if not names.is_dns1123_label(value):
            return ["%r is not %s (a DNS-1123 label: lower-case letters, digits and '-', at most 63)" % (value, what)]
        return []
    return check


def _non_empty(what):
    def check(value):
        return [] if _is_str(value) else ["must be %s, got %s %r" % (what, _type(value), value)]
    return check


def _version(value):
    if value == "" or (isinstance(value, str) and ISTIO_VERSION.match(value)):
        return []
    return ["%r is not an Istio version such as 1.31 or 1.31.2 ('' accepts any)" % (value,)]


def _label_keys(value):
    return _str_list(value, "pod label keys", label_key_problem)


def _dict(value):
    return [] if isinstance(value, dict) else ["must be a mapping, got %s %r" % (_type(value), value)]


# role variable -> check(value) -> [problem, ...]
ROLE_VARIABLES = {
    # install_istio
    "install_istio_version": _version,
    "install_istio_revision": _dns_label("a revision name", empty=True),
    "install_istio_profile": _non_empty("an istioctl profile name"),
    "install_istio_remote_profile": _non_empty("an istioctl profile name"),
    "install_istio_istioctl": _non_empty("the path of istioctl"),
    "install_istio_ca_dir": _non_empty("a directory on the controller"),
    "install_istio_readiness_timeout": _int_range(1, 86400, " (seconds)"),
    "install_istio_values": _dict,
    "install_istio_mesh_config": _dict,
    # federate_clusters
    "federate_clusters_namespace": _dns_label("a namespace name"),
    "federate_clusters_service_account": _dns_label("a service account name"),
    "federate_clusters_vip_cidr": _vip_cidr,
    "federate_clusters_endpoint_label_keys": _label_keys,
    "federate_clusters_global_routes": routes_problems,
    "federate_clusters_token_expiration": _int_range(MIN_TOKEN_EXPIRATION, MAX_TOKEN_EXPIRATION, " (seconds)"),
}


def role_variable_problems(variables):
    """Problems of one host's role variables ({name: value}), each '<name>: <problem>'."""
    out = []
    for name in sorted(variables):
        check = ROLE_VARIABLES.get(name)
        if check is not None:
            out.extend(_join(name, p) for p in check(variables[name]))
    root_cert = variables.get("install_istio_ca_root_cert_path")
    root_key = variables.get("install_istio_ca_root_key_path")
    if root_key and not root_cert:
        out.append("install_istio_ca_root_key_path: is set without install_istio_ca_root_cert_path (the key of "
                   "which root certificate?)")
    return out


# ---------------------------------------------------------------- inventory variables

def inventory_problems(cluster):
    """Problems of one cluster's inventory variables (a ``topology.cluster_vars`` dict) beyond
    what ``topology.topology_errors`` checks, each '<variable>: <problem>'."""
    out = []
    if _is_str(cluster["network"]) and not names.is_label_value(cluster["network"]):
        out.append("mesh_network: %r is not a label value (Istio labels namespaces with it; at most 63 letters, "
                   "digits, '-', '_' or '.')" % cluster["network"])
    if _is_str(cluster["mesh_id"]) and not names.is_label_value(cluster["mesh_id"]):
        out.append("mesh_id: %r is not a label value (at most 63 letters, digits, '-', '_' or '.')"
                   % cluster["mesh_id"])
    for variable, key in (("mesh_gateway_address", "gateway_address"), ("mesh_istiod_address", "own_istiod")):
        value = cluster.get(key)
        if value not in (None, ""):
            problem = address_problem(value)
            if problem:
                out.append("%s: %s" % (variable, problem))
    if cluster["api_server"] not in (None, ""):
        problem = url_problem(cluster["api_server"])
        if problem:
            out.append("mesh_api_server: %s" % problem)
    out.extend(_join("mesh_exports", p) for p in exports_problems(cluster["exports"]))
    return out


def shared_gateway_problems(clusters):
    """Two clusters of different networks cannot share one east-west gateway address."""
    by_address = {}
    for c in clusters:
        if _is_str(c.get("gateway_address")):
            by_address.setdefault(c["gateway_address"], []).append(c)
    out = []
    for address, holders in sorted(by_address.items()):
        nets = sorted(set(str(c["network"]) for c in holders))
        if len(nets) > 1:
            out.append("hosts %s: mesh_gateway_address %s is the same for networks %s; each network's east-west "
                       "gateway needs its own address" % (", ".join(c["host"] for c in holders), address,
                                                          ", ".join(nets)))
    return out


def mode_problems(clusters, modes):
    """federate_clusters_mode against the cluster roles: a remote cluster runs no istiod, so
    it needs primary_remote; primary_remote needs a primary."""
    out = []
    primaries = topology.primary_hosts(clusters)
    for c in clusters:
        mode = modes.get(c["host"])
        if mode is None:
            continue
        if c["role"] == topology.REMOTE and mode != "primary_remote":
            out.append("host %s: federate_clusters_mode: a remote cluster (mesh_cluster_role remote) runs no istiod "
                       "and needs primary_remote, got %s" % (c["host"], mode))
        if mode == "primary_remote" and not primaries:
            out.append("host %s: federate_clusters_mode: primary_remote needs a primary cluster in the play, and "
                       "every host has mesh_cluster_role remote" % c["host"])
    return out


def mesh_problems(hosts, hostvars, fact=None):
    """Every problem of the desired state of the play's ``hosts``.

    ``hostvars``: host -> variables; ``fact``: the name of the fact in which each host
    gathered its role variables ({variable: value}), or None.  [] when usable."""
    try:
        clusters = topology.play_clusters(hosts, hostvars)
    except TopologyError as e:
        return [str(e)]
    out = list(topology.topology_errors(clusters))
    modes = {}
    for c in clusters:
        variables = hostvars[c["host"]]
        c["own_istiod"] = variables["mesh_istiod_address"] if "mesh_istiod_address" in variables else None
        found = inventory_problems(c)
        role_vars = (variables[fact] if fact and fact in variables else None) or {}
        if not isinstance(role_vars, dict):
            raise TopologyError("host %s: %s must be a mapping of role variables, got %s"
                                % (c["host"], fact, _type(role_vars)))
        found.extend(role_variable_problems(role_vars))
        if "federate_clusters_mode" in role_vars:
            modes[c["host"]] = role_vars["federate_clusters_mode"]
        out.extend("host %s: %s" % (c["host"], p) for p in found)
    out.extend(shared_gateway_problems(clusters))
    out.extend(mode_problems(clusters, modes))
    return out
