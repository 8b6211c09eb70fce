# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The VMs an inventory puts into the mesh, and what each cluster must hold for them (pure).

Every VM is one host of the group ``mesh_vms``.  Its ``onboard_vm_*`` variables name the
cluster it joins (a host of ``mesh_clusters``), its namespace, service account, app (the
WorkloadGroup and the Service), network, ports, address or autoregistration, labels and
state.  ``vm_plan`` checks them all (errors name the VM and the variable) and derives,
per cluster, the namespaces, service accounts, WorkloadGroups, WorkloadEntries and
Services the role writes there, one call per kind and cluster.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names, topology

OWNER = "onboard-vm"
PRESENT, ABSENT = "present", "absent"
VM_LABEL = "meshfed.istio/vm"
PORT_NAME_MAX = 15


def _var(variables, name, default=None):
    return variables[name] if name in variables and variables[name] is not None else default


def _is_address(value):
    try:
        ipaddress.ip_address(str(value))
        return True
    except ValueError:
        return names.is_dns1123_subdomain(str(value))


def _port_errors(host, ports):
    errors = []
    if not isinstance(ports, dict):
        return ["%s: onboard_vm_ports must be a mapping of port name to number, got %r" % (host, ports)]
    for name, number in ports.items():
        if not (isinstance(name, str) and names.is_dns1123_label(name) and len(name) <= PORT_NAME_MAX):
            errors.append("%s: onboard_vm_ports: %r is not a port name (a DNS-1123 label of at most %d characters)"
                          % (host, name, PORT_NAME_MAX))
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
            errors.append("%s: onboard_vm_ports.%s: %r is not a port number (1-65535)" % (host, name, number))
    return errors


def _string_map_errors(host, var, value):
    if not isinstance(value, dict):
        return ["%s: %s must be a mapping of strings, got %r" % (host, var, value)]
    errors = []
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            errors.append("%s: %s.%s: keys and values must be strings, got %r" % (host, var, k, v))
        elif not names.is_label_value(v):
            errors.append("%s: %s.%s: %r is not a valid label value" % (host, var, k, v))
    return errors


def vm_vars(host, variables, clusters):
    """The VM dict of one inventory host, and the errors of its variables.

    ``clusters``: {cluster host: cluster dict (topology.cluster_vars)}."""
    errors = []
    cluster_host = _var(variables, "onboard_vm_cluster", "")
    cluster = clusters.get(cluster_host)
    if not cluster_host:
        errors.append("%s: onboard_vm_cluster is not set (the inventory host of mesh_clusters this VM joins)" % host)
    elif cluster is None:
        errors.append("%s: onboard_vm_cluster %r is not a host of the inventory group mesh_clusters (%s)"
                      % (host, cluster_host, ", ".join(sorted(clusters)) or "none"))
    app = _var(variables, "onboard_vm_app", "")
    namespace = _var(variables, "onboard_vm_namespace", "")
    sa = _var(variables, "onboard_vm_service_account", app)
    for var, value, check, what in (("onboard_vm_app", app, names.is_dns1123_label, "a DNS-1123 label"),
                                    ("onboard_vm_namespace", namespace, names.is_dns1123_label, "a DNS-1123 label"),
                                    ("onboard_vm_service_account", sa, names.is_dns1123_subdomain,
                                     "a DNS-1123 subdomain")):
        if not value:
            errors.append("%s: %s is not set" % (host, var))
        elif not isinstance(value, str) or not check(value):
            errors.append("%s: %s %r is not %s" % (host, var, value, what))
    state = _var(variables, "onboard_vm_state", PRESENT)
    if state not in (PRESENT, ABSENT):
        errors.append("%s: onboard_vm_state %r is not present or absent" % (host, state))
    autoregister = bool(_var(variables, "onboard_vm_autoregister", False))
    address = _var(variables, "onboard_vm_address", "")
    if address and not _is_address(address):
        errors.append("%s: onboard_vm_address %r is neither an IP address nor a DNS name" % (host, address))
    if not address and not autoregister and state == PRESENT:
        errors.append("%s: onboard_vm_address is not set and onboard_vm_autoregister is false: give the VM's "
                      "address (its WorkloadEntry), or let it register itself" % host)
    ports = _var(variables, "onboard_vm_ports", {})
    errors.extend(_port_errors(host, ports))
    labels = _var(variables, "onboard_vm_labels", {})
    errors.extend(_string_map_errors(host, "onboard_vm_labels", labels))
    network = _var(variables, "onboard_vm_network", None)
    if network is None:
        network = cluster["network"] if cluster else ""
    if network and not names.is_label_value(str(network)):
        errors.append("%s: onboard_vm_network %r is not a valid label value" % (host, network))
    vm = {
        "host": host, "cluster_host": cluster_host, "cluster": cluster["cluster_name"] if cluster else "",
        "app": app, "namespace": namespace, "service_account": sa, "network": network or "",
        "cluster_network": cluster["network"] if cluster else "",
        "address": address or "", "autoregister": autoregister,
        "ports": dict(ports) if isinstance(ports, dict) else {},
        "labels": dict(labels) if isinstance(labels, dict) else {},
        "state": state, "service": bool(_var(variables, "onboard_vm_service", True)),
        "locality": _var(variables, "onboard_vm_locality", ""),
    }
    vm["multi_network"] = bool(vm["network"]) and vm["network"] != vm["cluster_network"]
    vm["workload_entry_name"] = "" if autoregister else "%s-%s" % (app, names_safe(host))
    return vm, errors


def group_labels(vm):
    """The labels of the group's workloads: ``app`` (the Service selects it) and the VM's own."""
    labels = {"app": vm["app"]}
    labels.update(vm["labels"])
    return labels


def group_key(vm):
    return (vm["cluster_host"], vm["namespace"], vm["app"])


def _group_errors(vms):
    """VMs of one WorkloadGroup must agree on what the group holds."""
    errors = []
    first = {}
    for vm in vms:
        key = group_key(vm)
        if key not in first:
            first[key] = vm
            continue
        other = first[key]
        for field, var in (("service_account", "onboard_vm_service_account"), ("ports", "onboard_vm_ports"),
                           ("network", "onboard_vm_network"), ("labels", "onboard_vm_labels")):
            if vm[field] != other[field]:
                errors.append("%s: %s %r differs from %r of %s, which joins the same WorkloadGroup %s/%s in %s"
                              % (vm["host"], var, vm[field], other[field], other["host"], vm["namespace"], vm["app"],
                                 vm["cluster_host"]))
    return errors


def workload_group(vms):
    """The WorkloadGroup of the present VMs of one group (a reconciler entry)."""
    vm = vms[0]
    template = {"serviceAccount": vm["service_account"], "labels": group_labels(vm)}
    if vm["network"]:
        template["network"] = vm["network"]
    if vm["ports"]:
        template["ports"] = dict(vm["ports"])
    if vm["locality"]:
        template["locality"] = vm["locality"]
    return {"name": vm["app"], "namespace": vm["namespace"],
            "spec": {"metadata": {"labels": group_labels(vm)}, "template": template}}


def workload_entry(vm):
    spec = {"address": vm["address"], "serviceAccount": vm["service_account"],
            "labels": dict(group_labels(vm), **{VM_LABEL: vm["host"]})}
    if vm["network"]:
        spec["network"] = vm["network"]
    if vm["ports"]:
        spec["ports"] = dict(vm["ports"])
    if vm["locality"]:
        spec["locality"] = vm["locality"]
    return {"name": vm["workload_entry_name"], "namespace": vm["namespace"], "spec": spec}


def names_safe(host):
    """An inventory host name as a DNS-1123 label part (lowercase, [a-z0-9-])."""
    out = "".join(c if c.isalnum() else "-" for c in str(host).lower()).strip("-")
    return out[:40] or "vm"


def service(vms):
    vm = vms[0]
    ports = [{"name": n, "port": p, "protocol": "TCP", "targetPort": p} for n, p in sorted(vm["ports"].items())]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": vm["app"], "namespace": vm["namespace"], "labels": {"app": vm["app"]}},
            "spec": {"selector": {"app": vm["app"]}, "ports": ports}}


def vm_plan(vm_hosts, cluster_hosts, hostvars):
    """{"vms": {host: vm}, "clusters": [per cluster: what it holds for its VMs], "errors": [...]}."""
    clusters = dict((h, topology.cluster_vars(h, hostvars[h])) for h in topology.host_list(cluster_hosts, "mesh_clusters"))
    vms, errors = {}, []
    for host in topology.host_list(vm_hosts, "mesh_vms"):
        vm, errs = vm_vars(host, hostvars[host] if host in hostvars else {}, clusters)
        vms[host] = vm
        errors.extend(errs)
    present = [vm for vm in vms.values() if vm["state"] == PRESENT]
    errors.extend(_group_errors(present))
    per_cluster = []
    for ch in sorted(set(vm["cluster_host"] for vm in vms.values() if vm["cluster_host"] in clusters)):
        mine = [vm for vm in vms.values() if vm["cluster_host"] == ch]
        live = [vm for vm in mine if vm["state"] == PRESENT]
        groups = {}
        for vm in live:
            groups.setdefault(group_key(vm), []).append(vm)
        for key, members in groups.items():
            for vm in members:
                vm["workload_group"] = workload_group(members)
        c = clusters[ch]
        per_cluster.append({
            "host": ch, "cluster": c["cluster_name"], "context": c["context"], "kubeconfig": c["kubeconfig"],
            "network": c["network"],
            # the scope: every namespace a VM of the inventory names (so leaving VMs' objects are pruned)
            "namespaces": sorted(set(vm["namespace"] for vm in mine if vm["namespace"])),
            "create_namespaces": sorted(set(vm["namespace"] for vm in live)),
            "service_accounts": [{"namespace": ns, "name": sa} for ns, sa in
                                 sorted(set((vm["namespace"], vm["service_account"]) for vm in live))],
            "workload_groups": [workload_group(g) for _k, g in sorted(groups.items())],
            "workload_entries": sorted((workload_entry(vm) for vm in live if not vm["autoregister"]),
                                       key=lambda e: (e["namespace"], e["name"])),
            "services": [service(g) for _k, g in sorted(groups.items()) if g[0]["service"] and g[0]["ports"]],
            "vms": sorted(vm["host"] for vm in mine),
        })
    return {"vms": vms, "clusters": per_cluster, "errors": errors}
