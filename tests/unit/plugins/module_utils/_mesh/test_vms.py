# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory's VMs: checks naming the VM and the variable, and the per-cluster plan (pure)."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import vms

CLUSTERS = {
    "cluster1": {"mesh_cluster_name": "cluster1", "mesh_network": "network1", "mesh_context": "cluster1",
                 "mesh_kubeconfig": "/kc"},
    "cluster2": {"mesh_cluster_name": "cluster2", "mesh_network": "network2", "mesh_context": "cluster2",
                 "mesh_kubeconfig": "/kc"},
}


def vm(**over):
    v = {"onboard_vm_cluster": "cluster2", "onboard_vm_namespace": "vm-apps", "onboard_vm_app": "hello-vm",
         "onboard_vm_address": "10.0.0.5", "onboard_vm_ports": {"http": 8080}}
    v.update(over)
    return v


def plan(**vm_vars):
    hostvars = dict(CLUSTERS)
    hostvars.update(vm_vars)
    return vms.vm_plan(sorted(vm_vars), sorted(CLUSTERS), hostvars)


def test_one_vm_single_network():
    p = plan(vm1=vm())
    assert p["errors"] == []
    v = p["vms"]["vm1"]
    assert v["network"] == "network2" and v["multi_network"] is False and v["service_account"] == "hello-vm"
    (c,) = p["clusters"]
    assert c["host"] == "cluster2" and c["context"] == "cluster2" and c["namespaces"] == ["vm-apps"]
    assert c["service_accounts"] == [{"namespace": "vm-apps", "name": "hello-vm"}]
    (wg,) = c["workload_groups"]
    assert wg["name"] == "hello-vm" and wg["spec"]["template"] == {
        "serviceAccount": "hello-vm", "labels": {"app": "hello-vm"}, "network": "network2", "ports": {"http": 8080}}
    (we,) = c["workload_entries"]
    assert we["name"] == "hello-vm-vm1" and we["spec"]["address"] == "10.0.0.5"
    assert we["spec"]["labels"] == {"app": "hello-vm", "meshfed.istio/vm": "vm1"}
    (svc,) = c["services"]
    assert svc["spec"] == {"selector": {"app": "hello-vm"}, "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}]}
    assert v["workload_group"] == wg and v["workload_entry_name"] == "hello-vm-vm1"


def test_multi_network_vm_and_autoregistration_has_no_entry():
    p = plan(vm1=vm(onboard_vm_network="vm-network", onboard_vm_autoregister=True, onboard_vm_address=None))
    assert p["errors"] == []
    assert p["vms"]["vm1"]["multi_network"] is True
    c = p["clusters"][0]
    assert c["workload_entries"] == [] and c["workload_groups"][0]["spec"]["template"]["network"] == "vm-network"


def test_absent_vm_keeps_scope_and_drops_its_objects():
    p = plan(vm1=vm(onboard_vm_state="absent", onboard_vm_address=None), vm2=vm(onboard_vm_address="10.0.0.6"))
    assert p["errors"] == []
    c = p["clusters"][0]
    assert [e["name"] for e in c["workload_entries"]] == ["hello-vm-vm2"]
    p = plan(vm1=vm(onboard_vm_state="absent"))
    c = p["clusters"][0]
    assert c["namespaces"] == ["vm-apps"] and c["workload_groups"] == [] and c["workload_entries"] == []
    assert c["services"] == [] and c["create_namespaces"] == []


def test_two_vms_one_group_and_another_cluster():
    p = plan(vm1=vm(), vm2=vm(onboard_vm_address="10.0.0.6"), vm3=vm(onboard_vm_cluster="cluster1"))
    assert p["errors"] == []
    assert [c["host"] for c in p["clusters"]] == ["cluster1", "cluster2"]
    assert len(p["clusters"][1]["workload_groups"]) == 1 and len(p["clusters"][1]["workload_entries"]) == 2


@pytest.mark.parametrize("over,text", [
    ({"onboard_vm_cluster": "cluster9"}, "vm1: onboard_vm_cluster 'cluster9' is not a host of the inventory group mesh_clusters"),
    ({"onboard_vm_cluster": ""}, "vm1: onboard_vm_cluster is not set"),
    ({"onboard_vm_namespace": "VM_Apps"}, "vm1: onboard_vm_namespace 'VM_Apps' is not a DNS-1123 label"),
    ({"onboard_vm_app": None}, "vm1: onboard_vm_app is not set"),
    ({"onboard_vm_service_account": "Bad SA"}, "vm1: onboard_vm_service_account 'Bad SA'"),
    ({"onboard_vm_address": None}, "vm1: onboard_vm_address is not set and onboard_vm_autoregister is false"),
    ({"onboard_vm_address": "not an address!"}, "vm1: onboard_vm_address 'not an address!'"),
    ({"onboard_vm_ports": {"http": 70000}}, "vm1: onboard_vm_ports.http: 70000 is not a port number"),
    ({"onboard_vm_ports": {"Not_A_Name": 80}}, "vm1: onboard_vm_ports: 'Not_A_Name' is not a port name"),
    ({"onboard_vm_ports": [80]}, "vm1: onboard_vm_ports must be a mapping"),
    ({"onboard_vm_labels": {"a": 1}}, "vm1: onboard_vm_labels.a"),
    ({"onboard_vm_network": "bad network"}, "vm1: onboard_vm_network 'bad network'"),
    ({"onboard_vm_state": "gone"}, "vm1: onboard_vm_state 'gone'"),
])
def test_errors_name_vm_and_variable(over, text):
    errors = plan(vm1=vm(**over))["errors"]
    assert any(text in e for e in errors), errors


def test_group_members_must_agree():
    errors = plan(vm1=vm(), vm2=vm(onboard_vm_ports={"http": 9090}, onboard_vm_address="10.0.0.6"))["errors"]
    assert errors == ["vm2: onboard_vm_ports {'http': 9090} differs from {'http': 8080} of vm1, which joins the same "
                      "WorkloadGroup vm-apps/hello-vm in cluster2"]


def test_no_vms_no_clusters():
    assert vms.vm_plan([], sorted(CLUSTERS), CLUSTERS) == {"vms": {}, "clusters": [], "errors": []}


def test_names_safe():
    assert vms.names_safe("VM_1.example.com") == "vm-1-example-com"
