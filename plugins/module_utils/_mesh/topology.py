# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The mesh topology an inventory describes, and its validation (pure).

Every cluster of the mesh is one inventory host.  ``cluster_vars`` is the one place
that turns a host's variables (``hostvars[host]``: mesh_id, mesh_cluster_name,
mesh_network, ...) into a *cluster* dict; every other function works on those dicts
or on the mappings of host -> variables the filters pass in (anything with
``__getitem__``/``__contains__``: a dict in the tests, Ansible's ``hostvars`` in a play).

A cluster dict (``cluster_vars``)::

    {"host", "cluster_name", "mesh_id", "network", "context", "kubeconfig", "role",
     "mesh_primary", "gateway_address", "istiod_address", "api_server", "exports"}

(Of hosts outside the play, such as a primary left out by --limit, only the variables a
rule needs are read.)

``mesh_topology`` adds, per cluster, what the roles derive from the whole play:
its ``primary``, ``control_plane_cluster``, ``uninstall_primary``, ``served`` remote
clusters and federation ``sources`` per mode.
"""

from __future__ import annotations

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names as names_mod
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import TopologyError
PRIMARY = "primary"
REMOTE = "remote"
# federate_clusters_mode values
MODES = ("multi_primary", "primary_remote", "service_entry")
# the port of the east-west gateways' AUTO_PASSTHROUGH server (federation.GATEWAY_PORT)
GATEWAY_PORT = 15443
UNKNOWN = "?"


def _var(variables, name, default):
    """``variables[name]``, or ``default`` when the variable is not defined (Jinja's
    ``default(x)``: a defined empty or null value is kept)."""
    if name in variables:
        return variables[name]
    return default


def _host_vars(hostvars, host):
    """The variables of ``host`` ({} when it is no inventory host)."""
    if isinstance(host, str) and host and host in hostvars:
        return hostvars[host]
    return {}


def own_istiod_address(variables):
    """Address remote clusters reach a primary's istiod at: ``mesh_istiod_address``,
    else the ``install_istio_gateway_address`` fact install_istio set, else ''."""
    return _var(variables, "mesh_istiod_address", None) or _var(variables, "install_istio_gateway_address", "") or ""


def cluster_vars(host, variables):
    """The cluster dict of one inventory host from its variables (a mapping).

    Defaults apply only to undefined variables, as the roles' Jinja did:
    cluster_name = mesh_cluster_name (default the host name); mesh_id, network,
    context, kubeconfig, gateway_address (mesh_gateway_address) = '' when undefined;
    role = mesh_cluster_role (default primary); mesh_primary and api_server
    (mesh_api_server) = None when undefined; exports = mesh_exports (default []);
    istiod_address = ``own_istiod_address`` (``mesh_topology`` gives a remote
    cluster its primary's)."""
    return {
        "host": host,
        "cluster_name": _var(variables, "mesh_cluster_name", host),
        "mesh_id": _var(variables, "mesh_id", ""),
        "network": _var(variables, "mesh_network", ""),
        "context": _var(variables, "mesh_context", ""),
        "kubeconfig": _var(variables, "mesh_kubeconfig", ""),
        "role": _var(variables, "mesh_cluster_role", PRIMARY),
        "mesh_primary": _var(variables, "mesh_primary", None),
        "gateway_address": _var(variables, "mesh_gateway_address", ""),
        "istiod_address": own_istiod_address(variables),
        "api_server": _var(variables, "mesh_api_server", None),
        "exports": _var(variables, "mesh_exports", []),
    }


def host_list(hosts, what="the play's hosts"):
    if isinstance(hosts, (str, bytes, dict)) or not hasattr(hosts, "__iter__"):
        raise TopologyError("%s: expected a list of inventory hosts, got %s" % (what, type(hosts).__name__))
    return list(hosts)


def play_clusters(hosts, hostvars):
    """``cluster_vars`` of every host, in the play's order."""
    out = []
    for host in host_list(hosts):
        if not isinstance(host, str) or host not in hostvars:
            raise TopologyError("host %r: not a host of the inventory (no variables)" % (host,))
        out.append(cluster_vars(host, hostvars[host]))
    return out


def host_values(hosts, hostvars, name):
    """{host: the variable ``name`` of that host} for the hosts where it is defined
    (e.g. a result each host registered)."""
    out = {}
    for host in hosts:
        variables = _host_vars(hostvars, host)
        if name in variables:
            out[host] = variables[name]
    return out


def _unique(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def networks(clusters):
    """The distinct networks of the clusters, in order of first use."""
    return _unique(c["network"] for c in clusters)


def is_multi_network(clusters):
    """Whether the clusters span more than one network (an east-west gateway per cluster)."""
    return len(networks(clusters)) > 1


def mesh_networks(clusters):
    """Istio's meshNetworks (``values.global.meshNetworks``) for the gateway addresses the
    inventory gives (``mesh_gateway_address``), {} when it gives none.

    A gateway without a LoadBalancer address is known to istiod only this way: each
    network with at least one given address lists the registries of its clusters
    (``fromRegistry``: their cluster names) and those addresses on port 15443. Networks
    whose gateways have LoadBalancer addresses are left out: istiod reads those from the
    gateway Service (label ``topology.istio.io/network``) in each registry."""
    out = {}
    for network in networks(clusters):
        members = [c for c in clusters if c["network"] == network]
        addresses = _unique(c["gateway_address"] for c in members if c.get("gateway_address"))
        if not network or not addresses:
            continue
        out[network] = {
            "endpoints": [{"fromRegistry": c["cluster_name"]} for c in members],
            "gateways": [{"address": a, "port": GATEWAY_PORT} for a in addresses],
        }
    return {"networks": out} if out else {}


def remote_hosts(clusters):
    """Hosts of the remote clusters (mesh_cluster_role remote), in order."""
    return [c["host"] for c in clusters if c["role"] == REMOTE]


def primary_hosts(clusters):
    """Hosts of the clusters that run a control plane (every role but remote), in order."""
    return [c["host"] for c in clusters if c["role"] != REMOTE]


def first_primary(clusters):
    """The first primary of the play, None when it has none."""
    primaries = primary_hosts(clusters)
    return primaries[0] if primaries else None


def primary_of(cluster, default_primary):
    """Host of a remote cluster's primary: its mesh_primary, else ``default_primary``
    (the play's first primary); None for a primary, or when there is none."""
    if cluster["role"] != REMOTE:
        return None
    return cluster["mesh_primary"] or default_primary or None


def served_remotes(host, clusters, default_primary=None):
    """Hosts of the remote clusters whose primary (``primary_of``, ``default_primary``
    being the play's first primary) is ``host``: their control plane runs there."""
    return [c["host"] for c in clusters if c["role"] == REMOTE and primary_of(c, default_primary) == host]


def federation_sources(cluster, clusters):
    """{mode: hosts whose remote secret ``cluster``'s istiod needs}, per federate_clusters_mode.

    multi_primary: every other host of the play; primary_remote: for a primary, every
    remote cluster of the play (none for a remote cluster); service_entry: none."""
    return {
        "multi_primary": [c["host"] for c in clusters if c["host"] != cluster["host"]],
        "primary_remote": remote_hosts(clusters) if cluster["role"] == PRIMARY else [],
        "service_entry": [],
    }


def uninstall_primary(cluster, primary, inventory_hosts, hostvars):
    """Host of the primary that holds a remote cluster's remote secret, on uninstall.

    ``primary`` (``primary_of``: mesh_primary, else the play's first primary); else,
    as the primary may be outside the play (--limit), the first host of
    ``inventory_hosts`` whose mesh_cluster_role is primary (the default) and whose
    mesh_id is the cluster's; None for a primary, or when there is none."""
    if cluster["role"] != REMOTE:
        return None
    if primary:
        return primary
    for host in inventory_hosts or []:
        variables = _host_vars(hostvars, host)
        if _var(variables, "mesh_cluster_role", PRIMARY) == PRIMARY \
                and _var(variables, "mesh_id", "") == cluster["mesh_id"]:
            return host
    return None


def mesh_topology(hosts, hostvars, all_hosts=None):
    """The derived view of the mesh both roles work from.

    ``hosts``: the play's hosts in order (``ansible_play_hosts_all``); ``hostvars``: a
    mapping host -> variables; ``all_hosts``: the inventory's hosts (``groups['all']``),
    searched for the uninstall primary of a remote cluster whose primary is outside
    the play (default ``hosts``).

    Returns ``{"clusters": [cluster, ...] (play order), "by_host": {host: cluster},
    "hosts", "networks", "multi_network", "mesh_networks", "primaries", "remotes",
    "first_primary"}``, where ``mesh_networks`` is ``mesh_networks(clusters)``,
    where each cluster is a ``cluster_vars`` dict plus:

    - ``primary``: a remote cluster's primary host (``primary_of``), else None;
    - ``control_plane_cluster``: the cluster name of the cluster whose istiod this one
      uses (its own for a primary; the primary's mesh_cluster_name, default its host
      name, for a remote cluster; None when a remote cluster has no primary);
    - ``istiod_address``: for a remote cluster, its primary's (``own_istiod_address``);
    - ``uninstall_primary`` (``uninstall_primary``);
    - ``served``: the remote clusters this one is the primary of (``served_remotes``);
    - ``sources``: {mode: hosts} (``federation_sources``).
    """
    clusters = play_clusters(hosts, hostvars)
    default_primary = first_primary(clusters)
    inventory = host_list(hosts if all_hosts is None else all_hosts, "all_hosts")
    for c in clusters:
        primary = primary_of(c, default_primary)
        if c["role"] == REMOTE:
            primary_vars = _host_vars(hostvars, primary)
            c["control_plane_cluster"] = _var(primary_vars, "mesh_cluster_name", primary) if primary else None
            c["istiod_address"] = own_istiod_address(primary_vars)
        else:
            c["control_plane_cluster"] = c["cluster_name"]
        c["primary"] = primary
        c["uninstall_primary"] = uninstall_primary(c, primary, inventory, hostvars)
        c["served"] = served_remotes(c["host"], clusters, default_primary)
        c["sources"] = federation_sources(c, clusters)
    return {
        "clusters": clusters,
        "by_host": dict((c["host"], c) for c in clusters),
        "hosts": [c["host"] for c in clusters],
        "networks": networks(clusters),
        "multi_network": is_multi_network(clusters),
        "mesh_networks": mesh_networks(clusters),
        "primaries": primary_hosts(clusters),
        "remotes": remote_hosts(clusters),
        "first_primary": default_primary,
    }


def verify_clusters(hosts, hostvars, mode):
    """The clusters as M(meshfed.istio.verify_mesh) takes them: each cluster of the play with
    the clusters its istiod must discover under federate_clusters ``mode`` (their cluster
    names), its control plane cluster (a remote cluster), the gateway address the inventory
    gives, its revision (``install_istio_revision``), where its istiod answers
    (``verify_mesh_istiod``: {xds, debug, http}) and how to reach its API."""
    if mode not in MODES:
        raise TopologyError("federate_clusters_mode %r is not one of %s" % (mode, ", ".join(MODES)))
    topo = mesh_topology(hosts, hostvars)
    names = dict((c["host"], c["cluster_name"]) for c in topo["clusters"])
    out = []
    for c in topo["clusters"]:
        variables = _host_vars(hostvars, c["host"])
        item = {
            "name": c["cluster_name"], "host": c["host"], "network": c["network"], "role": c["role"],
            "discovers": [names[h] for h in c["sources"][mode]],
            "gateway_address": c["gateway_address"] or "",
            "revision": _var(variables, "install_istio_revision", "") or "",
            "context": c["context"] or None, "kubeconfig": c["kubeconfig"] or None,
        }
        if c["role"] == REMOTE:
            item["control_plane"] = c["control_plane_cluster"]
        istiod = _var(variables, "verify_mesh_istiod", None)
        if istiod:
            item["istiod"] = dict(istiod)
        out.append(item)
    return out


def topology_errors(clusters):
    """Problems of a list of clusters, each a dict with host, mesh_id, cluster_name,
    network, context (and optionally kubeconfig), as ``cluster_vars`` makes them.
    Every message names the inventory host and the field; [] when the topology is usable."""
    errors = []
    names, contexts, mesh_ids, networks_ = {}, {}, {}, {}
    for c in clusters:
        host = c.get("host")
        name = c.get("cluster_name")
        if not name:
            errors.append("host %s: mesh_cluster_name is not set" % host)
        elif not names_mod.is_dns1123_label(str(name)):
            errors.append("host %s: mesh_cluster_name %r is not a DNS-1123 label" % (host, name))
        else:
            names.setdefault(name, []).append(host)
        if not c.get("network"):
            errors.append("host %s: mesh_network is not set (every cluster needs a network)" % host)
        else:
            networks_.setdefault(c["network"], []).append(host)
        if not c.get("mesh_id"):
            errors.append("host %s: mesh_id is not set" % host)
        else:
            mesh_ids.setdefault(c["mesh_id"], []).append(host)
        if not c.get("context"):
            errors.append("host %s: mesh_context is not set" % host)
        else:
            key = (c.get("kubeconfig"), c["context"])
            contexts.setdefault(key, []).append(host)
    for name, hosts in sorted(names.items()):
        if len(hosts) > 1:
            errors.append("hosts %s: duplicate mesh_cluster_name %r" % (", ".join(sorted(hosts)), name))
    for (kubeconfig, ctx), hosts in sorted(contexts.items(), key=lambda kv: str(kv[0])):
        if len(hosts) > 1:
            errors.append("hosts %s: the same mesh_context %r (of the same kubeconfig) for several clusters"
                          % (", ".join(sorted(hosts)), ctx))
    if len(mesh_ids) > 1:
        errors.append("mesh_id differs between hosts: %s" % "; ".join(
            "%s on %s" % (m, ", ".join(sorted(h))) for m, h in sorted(mesh_ids.items())))
    return errors


def mesh_exports(clusters, results):
    """Every Service the clusters export, as ``meshfed.istio.global_service_entries``
    takes them: each service of ``results[host]`` (the registered result of
    ``meshfed.istio.exported_services`` on that host: ``services``, ``cluster_info``)
    with ``cluster`` (its cluster name), ``network`` and ``gateway`` (mesh_gateway_address,
    else the gatewayAddress install_istio recorded, else '').  A host without a result,
    or whose task was skipped, exports nothing.  Every importing cluster gets this same
    list (its own exports included: they make its local entries)."""
    out = []
    for c in clusters:
        result = results.get(c["host"]) or {}
        info = result.get("cluster_info") or {}
        gateway = c["gateway_address"] or info.get("gatewayAddress", "") or ""
        for service in result.get("services") or []:
            out.append(dict(service, cluster=c["cluster_name"], network=c["network"], gateway=gateway))
    return out


def hosts_without_resources(hosts, results):
    """Hosts whose ``results[host]`` (a registered kubernetes.core.k8s_info result) lists
    no resources: it found nothing, was skipped or did not run there."""
    return [h for h in hosts if not (results.get(h) or {}).get("resources")]


def _ci(value):
    """Sort key of Jinja's sort and dictsort filters (case-insensitive for strings)."""
    return value.lower() if isinstance(value, str) else value


def summary_header(mesh_id, ca):
    """``mesh <id>: root CA <subject>, sha256 <fingerprint>`` from a meshfed.istio.mesh_ca result."""
    root = (ca or {}).get("root") or {}
    return "mesh %s: root CA %s, sha256 %s" % (
        mesh_id, root.get("subject", UNKNOWN), root.get("fingerprint_sha256", UNKNOWN))


def summary_line(cluster, status, serial, mode):
    """One cluster's line of the mesh summary.

    ``cluster``: a cluster dict; ``status``: its meshfed.istio.mesh_status result
    (cluster_info, discovers, vips); ``serial``: its intermediate's serial; ``mode``:
    its federate_clusters_mode.  The ``.global`` hosts are listed in service_entry mode;
    otherwise a cluster that discovers others sees their every Service by its
    cluster.local name."""
    status = status or {}
    info = status.get("cluster_info") or {}
    discovers = sorted(status.get("discovers") or [], key=_ci)
    if mode == "service_entry":
        vips = sorted((status.get("vips") or {}).items(), key=lambda kv: _ci(kv[0]))
        suffix = "; .global hosts (host=VIP): " + (", ".join("%s=%s" % kv for kv in vips) or "none")
    elif discovers:
        suffix = " (every Service, by its cluster.local name)"
    else:
        suffix = ""
    return "%s (%s): Istio %s, revision %s, east-west gateway %s, intermediate serial %s; discovers: %s%s" % (
        cluster["host"], cluster["network"], info.get("istioVersion", UNKNOWN), info.get("revision", UNKNOWN),
        info.get("gatewayAddress") or "none", serial, ", ".join(discovers) or "none", suffix)


def mesh_summary(clusters, ca, statuses, modes=None):
    """The lines of the mesh summary: ``summary_header`` (with the first cluster's
    mesh_id), then one ``summary_line`` per cluster.

    ``ca``: a meshfed.istio.mesh_ca result (root, clusters[name].serial);
    ``statuses``: {host: meshfed.istio.mesh_status result}; ``modes``: {host:
    federate_clusters_mode}, default multi_primary."""
    modes = modes or {}
    ca_clusters = (ca or {}).get("clusters") or {}
    lines = [summary_header(clusters[0]["mesh_id"] if clusters else "", ca)]
    for c in clusters:
        serial = (ca_clusters.get(c["cluster_name"]) or {}).get("serial", UNKNOWN)
        lines.append(summary_line(c, statuses.get(c["host"]), serial, modes.get(c["host"]) or "multi_primary"))
    return lines
