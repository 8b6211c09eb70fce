# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""One cluster's side of the `.global` model: VIPs (persisted), then its ServiceEntries,
DestinationRules and VirtualServices.

Reads the persisted VIP map (ConfigMap) and every ServiceEntry once, allocates a
VIP per wanted host (keeping earlier ones, avoiding addresses of ServiceEntries
it does not own), writes the map, and reconciles each kind in one service_entry
run (list once, diff, apply what differs, prune).
"""

from __future__ import annotations

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation, kube, service_entry, vip

VIP_CONFIGMAP = "meshfed-global-vips"
GLOBAL_GATEWAY = "meshfed-global-gateway"
MANAGED_BY = kube.MANAGED_BY


def global_gateway_object(namespace):
    """The exporting cluster's east-west gateway also passes *.global through, by SNI,
    to the local ServiceEntry of the exported host (install_istio's serves *.local)."""
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": GLOBAL_GATEWAY, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {"selector": {"istio": "eastwestgateway"}, "servers": [{
            "port": {"number": federation.GATEWAY_PORT, "name": "tls-global", "protocol": "TLS"},
            "tls": {"mode": "AUTO_PASSTHROUGH"}, "hosts": ["*.global"]}]},
    }


def global_gateway(dyn, namespace, wanted, check_mode):
    """Ensure (or remove) the *.global Gateway; returns 'created', 'updated', 'deleted' or None."""
    try:
        res = dyn.resources.get(api_version="networking.istio.io/v1", kind="Gateway")
    except service_entry.ResourceNotFoundError:
        raise kube.ClusterError("Istio's Gateway CRD (networking.istio.io/v1) is not installed in this cluster")
    want = global_gateway_object(namespace)
    try:
        live = dyn.get(res, name=GLOBAL_GATEWAY, namespace=namespace).to_dict()
    except service_entry.NotFoundError:
        live = None
    if not wanted:
        if live is None or (live["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") != "meshfed.istio":
            return None
        if not check_mode:
            dyn.delete(res, name=GLOBAL_GATEWAY, namespace=namespace)
        return "deleted"
    if live is not None and live.get("spec") == want["spec"] and \
            all((live["metadata"].get("labels") or {}).get(k) == v for k, v in MANAGED_BY.items()):
        return None
    if not check_mode:
        dyn.server_side_apply(res, body=want, name=GLOBAL_GATEWAY, namespace=namespace, force_conflicts=True,
                              field_manager="meshfed.istio")
    return "created" if live is None else "updated"


def _read_vips(dyn, namespace):
    res = dyn.resources.get(api_version="v1", kind="ConfigMap")
    try:
        cm = dyn.get(res, name=VIP_CONFIGMAP, namespace=namespace).to_dict()
    except service_entry.NotFoundError:
        return None, {}
    except kube.ApiException as e:
        raise kube.api_error(e, "reading ConfigMap %s/%s" % (namespace, VIP_CONFIGMAP))
    return cm, vip.parse_persisted(cm.get("data") or {}, field="vip_cidr",
                                   what="ConfigMap %s/%s" % (namespace, VIP_CONFIGMAP))


def _write_vips(dyn, namespace, existing, data):
    res = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": VIP_CONFIGMAP, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "data": data}
    try:
        if existing is None:
            kube.call_raw(dyn.create, res, body=body, namespace=namespace)
        else:
            body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            kube.call_raw(dyn.replace, res, body=body, name=VIP_CONFIGMAP, namespace=namespace)
    except kube.ApiException as e:
        raise kube.api_error(e, "writing ConfigMap %s/%s" % (namespace, VIP_CONFIGMAP))


def run(params, check_mode, want_diff):
    api = kube.api_client(params)
    dyn = service_entry.DynamicClient(api)
    cluster, ns, owner = params["cluster_name"], params["namespace"], params["owner"]
    hosts = federation.wanted_hosts(cluster, params["exports"])

    cm, previous = _read_vips(dyn, ns)
    res = service_entry.resource(dyn)
    try:
        everything = dyn.get(res).to_dict().get("items") or []
    except kube.ApiException as e:
        raise kube.api_error(e, "listing ServiceEntries")
    vips, warnings = vip.allocate(hosts, previous, params["vip_cidr"],
                                  taken=service_entry.foreign_addresses(everything, owner))
    entries = federation.global_entries(cluster, params["exports"], vips, namespace=ns,
                                        via_egress=params["via_egress"])
    # checked before anything is written: a bad route must not leave half a change behind
    rules = federation.global_destination_rules(params["exports"], namespace=ns) \
        if params.get("destination_rules", True) else []
    services = federation.global_virtual_services(params["exports"], params.get("routes") or {}, namespace=ns)
    new_data = vip.to_configmap_data(vips)
    vips_changed = new_data != vip.to_configmap_data(previous)
    if vips_changed and not check_mode:
        # persisted first: an interrupted run keeps the allocation it handed out
        _write_vips(dyn, ns, cm, new_data)
    common = {"owner": owner, "namespaces": [ns], "prune": params["prune"], "state": "present",
              "field_manager": params.get("field_manager"), "workers": params["workers"]}
    result = service_entry.run(api, dict(common, service_entries=entries), check_mode, want_diff,
                               all_items=everything, dyn=dyn)
    for key, kind, wanted in (("destination_rules", "DestinationRule", rules),
                              ("virtual_services", "VirtualService", services)):
        sub = service_entry.run(api, dict(common, service_entries=wanted), check_mode, want_diff,
                                dyn=dyn, kind=kind, field=key)
        diff = sub.pop("diff", None)
        if diff and want_diff:
            # one diff for the task: ServiceEntries by namespace/name, the others by kind too
            whole = result.setdefault("diff", {"before": {}, "after": {}})
            for side in ("before", "after"):
                whole[side].update(("%s %s" % (kind, ref), v) for ref, v in diff[side].items())
        result[key] = sub
        result["changed"] = result["changed"] or sub["changed"]
    gateway = global_gateway(dyn, ns, params["global_gateway"], check_mode)
    if gateway:
        result["gateway"] = gateway
        result["changed"] = True
    result["vips"] = vips
    result["released"] = vip.released(previous, vips)
    result["changed"] = result["changed"] or vips_changed
    result["warnings_list"] = warnings
    return result
