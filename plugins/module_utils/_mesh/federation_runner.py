# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The `.global` model on one cluster (I/O): what it exports, and what it imports.

``run_exported_services``: one LIST of Services per export entry and one LIST of
Pods per namespace, whatever the number of Services, plus what install_istio
recorded.  ``run_global_import``: reads the persisted VIP map and every
ServiceEntry once, allocates a VIP per wanted host (keeping earlier ones,
avoiding addresses of ServiceEntries it does not own), then writes, through the
reconciler, the VIP ConfigMap first, the Services of the label sets of its own
exports (federation.subset_services: created before the ServiceEntries that
address them, deleted after), the ServiceEntries, DestinationRules,
VirtualServices and the *.global Gateway.  Everything is computed and checked
before the first write.

Two runs at once (two AWX jobs on one cluster): the VIP ConfigMap is created, or
replaced at the resourceVersion this run read it at, before anything else is
written.  The run that loses that race (HTTP 409: created or changed meanwhile)
has written nothing; it reads everything again and plans anew against the
other run's VIPs, a few times (VIP_ATTEMPTS) after a short random pause.  So
every VIP a ServiceEntry gets was in the map when this run wrote it, and two
runs at once never give one address to two hosts (vip.allocate: with prune, a
run does not hand out again what it releases, which the other run's
ServiceEntries may still carry).
"""

from __future__ import annotations

import random
import time

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation, reconcile, reconcile_runner, vip
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import remote_secret as rs
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError

VIP_CONFIGMAP = "meshfed-global-vips"
CLUSTER_INFO = "meshfed-cluster-info"
# How often run_global_import plans and writes the VIP map when other runs keep writing it first.
VIP_ATTEMPTS = 5
# Pause before attempt n+1: n * VIP_PAUSE seconds, times a random factor in [0.5, 1.5).
VIP_PAUSE = 0.2


def discover(service, exports_spec, label_keys):
    """The Services a cluster exports."""
    for i, spec in enumerate(exports_spec):
        federation.check_export_spec(i, spec)
    pods_by_ns, found = {}, {}
    for spec in exports_spec:
        ns = spec["namespace"]
        services = service.list("v1", "Service", namespace=ns, label_selector=spec.get("label_selector") or None,
                                required=True)
        if ns not in pods_by_ns:
            pods_by_ns[ns] = service.list("v1", "Pod", namespace=ns, required=True)
        for e in federation.exported(services, pods_by_ns[ns], set(spec.get("names") or []), label_keys):
            found[(ns, e["name"])] = e
    return [found[k] for k in sorted(found)]


def cluster_info(service, namespace="istio-system"):
    """What install_istio recorded in ConfigMap meshfed-cluster-info ({} when absent)."""
    cm = service.get("v1", "ConfigMap", CLUSTER_INFO, namespace)
    return dict((cm or {}).get("data") or {})


def run_exported_services(params, service, check_mode, diff):
    services = discover(service, params["exports"], params["label_keys"])
    info = cluster_info(service, params["info_namespace"])
    if params["global_form"] == "legacy":
        federation.check_legacy_form(info.get("istioVersion"))
    return {"changed": False, "services": services, "cluster_info": info}


def _prepare(service, common, kind, entries, diff, field, check_mode, **kwargs):
    return reconcile_runner.prepare_kind(service, dict(common, service_entries=entries), diff, kind=kind,
                                         field=field, check_mode=check_mode, **kwargs)


class VipMapConflict(ClusterError):
    """The VIP ConfigMap was created or changed by another run since this run read it (HTTP 409);
    nothing else was written."""


def retry_on_conflict(attempt, attempts, pause, conflict=VipMapConflict):
    """``attempt()`` until it does not raise ``conflict``, at most ``attempts`` times, with
    ``pause(n)`` between attempt n and n+1.  Returns (its result, the conflicts seen);
    the last conflict is raised when every attempt had one."""
    seen = []
    for n in range(1, attempts + 1):
        try:
            return attempt(), seen
        except conflict as e:
            seen.append(e)
            if n == attempts:
                raise
            pause(n)


def backoff(n, sleep=time.sleep, rand=random.random):
    """Sleep about n * VIP_PAUSE seconds (jittered, so that two losers do not meet again)."""
    sleep(n * VIP_PAUSE * (0.5 + rand()))


def _write_vip_map(service, plan, check_mode):
    """Write the VIP ConfigMap's plan; a 409 (created or changed meanwhile) is a VipMapConflict."""
    try:
        return reconcile_runner.write_kind(service, plan, check_mode)
    except ClusterError as e:
        if e.status == 409:
            raise VipMapConflict(str(e), field=e.field, status=409)
        raise


def subset_services_live(service, owner, wanted):
    """The Services the reconciler of the label sets' Services needs to see: every one this owner
    wrote for a label set (one LIST, cluster-wide, by label: what no longer is wanted anywhere is
    pruned), and any other Service of a wanted name it did not write (one GET per name, only for
    those not written yet: an object of someone else is refused, never taken over)."""
    selector = "%s=%s,%s" % (reconcile.OWNER_LABEL, owner, federation.SUBSET_OF_LABEL)
    mine = service.list("v1", "Service", label_selector=selector)
    known = set(reconcile.ref_of(o) for o in mine)
    others = [service.get("v1", "Service", w["name"], w["namespace"]) for w in wanted
              if reconcile.ref_str(w["namespace"], w["name"]) not in known]
    return mine + [o for o in others if o is not None]


def _global_import_once(params, service, check_mode, diff):
    """One read-plan-write of run_global_import; VipMapConflict when the VIP map was
    written meanwhile (then nothing was written)."""
    cluster, ns, owner = params["cluster_name"], params["namespace"], params["owner"]
    hosts = federation.wanted_hosts(cluster, params["exports"])
    what = "ConfigMap %s/%s" % (ns, VIP_CONFIGMAP)

    cm = service.get("v1", "ConfigMap", VIP_CONFIGMAP, ns)
    previous = vip.parse_persisted((cm or {}).get("data") or {}, field="vip_cidr", what=what)
    # not served (Istio's CRDs not installed): nothing to prune; what is wanted, prepare_kind
    # refuses (or, in check mode, reports as pending)
    everything = service.list(reconcile.API_VERSION, "ServiceEntry")
    # without prune, the ServiceEntries of hosts no longer exported stay, and so do their VIPs
    vips, warnings = vip.allocate(hosts, previous, params["vip_cidr"],
                                  taken=reconcile.foreign_addresses(everything, owner),
                                  keep=() if params["prune"] else previous)
    entries = federation.global_entries(cluster, params["exports"], vips, namespace=ns,
                                        via_egress=params["via_egress"])
    # checked before anything is written: a bad route must not leave half a change behind
    rules = federation.global_destination_rules(params["exports"], namespace=ns) \
        if params.get("destination_rules", True) else []
    services = federation.global_virtual_services(params["exports"], params.get("routes") or {}, namespace=ns)
    gateways = [federation.global_gateway(ns)] if params["global_gateway"] else []
    subsets = federation.subset_services(cluster, params["exports"])

    common = {"owner": owner, "namespaces": [ns], "prune": params["prune"], "state": "present",
              "field_manager": params.get("field_manager"), "workers": params["workers"]}
    # The VIP map is kept (not pruned) once it exists, like the allocation it holds.
    new_data = vip.to_configmap_data(vips)
    vip_entries = [{"name": VIP_CONFIGMAP, "namespace": ns, "data": new_data}] if (vips or cm) else []
    # every kind is read, checked and refused before the first write of any
    plans = [
        _prepare(service, dict(common, prune=False), "ConfigMap", vip_entries, diff, "vip_cidr", check_mode,
                 all_items=[cm] if cm else [], adopt=["%s/%s" % (ns, VIP_CONFIGMAP)]),
        _prepare(service, dict(common, namespaces=None), "Service", subsets, diff, "exports", check_mode,
                 all_items=subset_services_live(service, owner, subsets)),
        _prepare(service, common, "ServiceEntry", entries, diff, "exports", check_mode, all_items=everything),
        _prepare(service, common, "DestinationRule", rules, diff, "destination_rules", check_mode),
        _prepare(service, common, "VirtualService", services, diff, "virtual_services", check_mode),
        _prepare(service, common, "Gateway", gateways, diff, "global_gateway", check_mode,
                 adopt=["%s/%s" % (ns, federation.GLOBAL_GATEWAY)]),
    ]
    # the VIP map first, at the resourceVersion read: a run that lost the race writes nothing
    # (no ServiceEntry with a VIP another run has given away), and an interrupted run keeps
    # the allocation it handed out
    subs = [(plans[0].kind, _write_vip_map(service, plans[0], check_mode))]
    # the label sets' Services are created before the entries that address them, and deleted after
    reconcile_runner.write_kind(service, plans[1], check_mode, verbs=("apply",))
    subs += [(plan.kind, reconcile_runner.write_kind(service, plan, check_mode)) for plan in plans[2:]]
    subs.append((plans[1].kind, reconcile_runner.write_kind(service, plans[1], check_mode, verbs=("delete",))))
    result = dict(subs[1][1])
    result["destination_rules"], result["virtual_services"] = subs[2][1], subs[3][1]
    result["subset_services"] = subs[5][1]
    gateway = subs[4][1]
    if gateway["changed"]:
        result["gateway"] = ("created" if gateway["created"] else "updated" if gateway["updated"] else "deleted")
    reconcile_runner.add_pending(result, [sub for dummy, sub in subs])
    for kind, sub in subs[:1] + subs[2:]:
        diff_part = sub.pop("diff", None)
        if diff_part and diff:
            # one diff for the task: ServiceEntries by namespace/name, the others by kind too
            reconcile_runner.add_kind_diff(result.setdefault("diff", {"before": {}, "after": {}}), kind, diff_part)
        result["changed"] = result["changed"] or sub["changed"]
    result["vips"] = vips
    result["released"] = vip.released(previous, vips)
    result["warnings"] = warnings
    return result


def run_global_import(params, service, check_mode, diff):
    """Runner of meshfed.istio.global_service_entries: plans and writes again from a fresh
    read when another run wrote the VIP map first (module docstring)."""
    what = "ConfigMap %s/%s" % (params["namespace"], VIP_CONFIGMAP)
    try:
        result, conflicts = retry_on_conflict(lambda: _global_import_once(params, service, check_mode, diff),
                                              VIP_ATTEMPTS, backoff)
    except VipMapConflict as e:
        raise ClusterError("%s: %s (the VIP map) was written by another run before this one could write it, "
                           "at each of %d attempts; nothing was written; run again when the other runs are done "
                           "(last: %s)" % (service.name, what, VIP_ATTEMPTS, e), field=e.field, status=409)
    if conflicts:
        result["warnings"].append("%s (the VIP map) was written by another run while this run allocated VIPs; "
                                  "they were allocated again from the new map (%d attempts)"
                                  % (what, len(conflicts) + 1))
    return result


def run_mesh_status(params, service, check_mode, diff):
    """Runner of meshfed.istio.mesh_status: what one cluster holds of the mesh, read-only.
    Of the remote secrets, only their cluster annotation is read into the result."""
    ns = params["namespace"]
    secrets = service.list("v1", "Secret", namespace=ns, label_selector="%s=true" % rs.MULTICLUSTER_LABEL)
    discovers = sorted(set(((s["metadata"].get("annotations") or {}).get(rs.CLUSTER_ANNOTATION) or "?")
                           for s in secrets))
    vips = (service.get("v1", "ConfigMap", VIP_CONFIGMAP, ns) or {}).get("data") or {}
    return {"changed": False, "cluster_info": cluster_info(service, ns), "discovers": discovers, "vips": dict(vips)}
