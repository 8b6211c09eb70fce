# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter plugins: documentation, argument checks, and Ansible's own hostvars as input."""

from __future__ import annotations

import importlib

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

FILTERS = ["hosts_without_resources", "mesh_exports", "mesh_summary", "mesh_topology", "topology_errors"]
NEW = {"hosts_without_resources", "mesh_exports", "mesh_summary", "mesh_topology"}


def plugin(name):
    return importlib.import_module("ansible_collections.meshfed.istio.plugins.filter." + name)


def flt(name):
    return plugin(name).FilterModule().filters()[name]


@pytest.mark.parametrize("name", FILTERS)
def test_documentation(name):
    mod = plugin(name)
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["name"] == name
    assert doc["short_description"] and doc["description"] and doc["author"]
    assert doc["options"]["_input"]["required"] is True
    if name in NEW:
        assert doc["version_added"] == "0.2.0"
        # every positional argument is documented, in the function's order
        positional = [p.strip() for p in doc["positional"].split(",")]
        assert positional[0] == "_input" and set(positional) <= set(doc["options"])
        code = getattr(mod, name).__code__
        assert positional[1:] == list(code.co_varnames[1:code.co_argcount])
    assert "_value" in yaml.safe_load(mod.RETURN)
    assert yaml.safe_load(mod.EXAMPLES)
    assert list(mod.FilterModule().filters()) == [name]


HOSTVARS = {
    "c1": {"mesh_id": "mesh1", "mesh_network": "n1", "mesh_context": "c1", "mesh_gateway_address": "192.0.2.1",
           "exported": {"services": [{"name": "a", "namespace": "bar"}], "cluster_info": {}},
           "egress": {"resources": [{"kind": "Service"}]},
           "status": {"cluster_info": {"istioVersion": "1.31.0", "revision": "default",
                                       "gatewayAddress": "192.0.2.1"},
                      "discovers": [], "vips": {"a.bar.global": "240.240.0.1"}},
           "federate_clusters_mode": "service_entry"},
    "c2": {"mesh_id": "mesh1", "mesh_network": "n2", "mesh_context": "c2", "mesh_cluster_role": "remote",
           "exported": {"skipped": True}, "egress": {"resources": []}},
}


def test_mesh_topology():
    t = flt("mesh_topology")(["c1", "c2"], HOSTVARS)
    assert t["by_host"]["c2"]["primary"] == "c1" and t["by_host"]["c1"]["served"] == ["c2"]


def test_mesh_exports():
    assert flt("mesh_exports")(["c1", "c2"], HOSTVARS, "exported") == [
        {"name": "a", "namespace": "bar", "cluster": "c1", "network": "n1", "gateway": "192.0.2.1"}]


def test_hosts_without_resources():
    assert flt("hosts_without_resources")(["c1", "c2"], HOSTVARS, "egress") == ["c2"]
    assert flt("hosts_without_resources")(["c1", "c2"], HOSTVARS, "not_registered") == ["c1", "c2"]


def test_mesh_summary_reads_mode_and_status_per_host():
    ca = {"root": {"subject": "CN=r", "fingerprint_sha256": "AB"}, "clusters": {"c1": {"serial": 5}}}
    assert flt("mesh_summary")(["c1", "c2"], HOSTVARS, ca, "status") == [
        "mesh mesh1: root CA CN=r, sha256 AB",
        "c1 (n1): Istio 1.31.0, revision default, east-west gateway 192.0.2.1, intermediate serial 5; "
        "discovers: none; .global hosts (host=VIP): a.bar.global=240.240.0.1",
        "c2 (n2): Istio ?, revision ?, east-west gateway none, intermediate serial ?; discovers: none",
    ]


@pytest.mark.parametrize("call, message", [
    (lambda: flt("mesh_topology")(["c1"], ["c1"]), "mesh_topology: hostvars must be a mapping (hostvars), got list"),
    (lambda: flt("mesh_topology")(["c1", "zz"], HOSTVARS), "mesh_topology: host 'zz': not a host of the inventory"),
    (lambda: flt("mesh_topology")("c1", HOSTVARS), "mesh_topology: the play's hosts: expected a list"),
    (lambda: flt("mesh_exports")(["c1"], HOSTVARS, ""), "mesh_exports: result must be the name of a registered"),
    (lambda: flt("mesh_exports")(["zz"], HOSTVARS, "exported"), "mesh_exports: host 'zz': not a host"),
    (lambda: flt("mesh_summary")(["c1"], HOSTVARS, None, "status"),
     "mesh_summary: ca must be the result of meshfed.istio.mesh_ca, got NoneType"),
    (lambda: flt("mesh_summary")(["c1"], HOSTVARS, {}, 3), "mesh_summary: status must be the name"),
    (lambda: flt("hosts_without_resources")("c1", HOSTVARS, "egress"),
     "hosts_without_resources: the play's hosts: expected a list of inventory hosts, got str"),
    (lambda: flt("topology_errors")({"host": "c1"}), "topology_errors: expects a list of dicts, got dict"),
])
def test_bad_arguments(call, message):
    with pytest.raises(AnsibleFilterError) as e:
        call()
    assert message in str(e.value)


INVENTORY = """
all:
  children:
    mesh_clusters:
      vars:
        mesh_id: mesh1
        kube_dir: /etc/kube
        mesh_kubeconfig: "{{ kube_dir }}/config"
      hosts:
        c1: {mesh_context: c1, mesh_network: n1, mesh_istiod_address: "istiod.{{ mesh_id }}.example"}
        c2: {mesh_context: c2, mesh_network: n2, mesh_cluster_role: remote, mesh_cluster_name: west}
    elsewhere:
      hosts:
        c0: {mesh_id: mesh1}
"""


@pytest.fixture()
def real_hostvars(tmp_path):
    """Ansible's own hostvars (HostVars: templated on access) of a small inventory."""
    path = tmp_path / "hosts.yml"
    path.write_text(INVENTORY)
    loader = DataLoader()
    inv = InventoryManager(loader=loader, sources=[str(path)])
    variables = VariableManager(loader=loader, inventory=inv)
    return HostVars(inventory=inv, variable_manager=variables, loader=loader), inv


def test_mesh_topology_with_ansible_hostvars(real_hostvars):
    hostvars, inv = real_hostvars
    all_hosts = [h.name for h in inv.get_hosts()]
    t = flt("mesh_topology")(["c1", "c2"], hostvars, all_hosts)
    c1, c2 = t["clusters"]
    assert c1["kubeconfig"] == "/etc/kube/config"  # templated
    assert c2["cluster_name"] == "west" and c2["primary"] == "c1" and c2["control_plane_cluster"] == "c1"
    assert c2["istiod_address"] == "istiod.mesh1.example"
    # --limit c2: the inventory's first primary of the mesh, outside the play
    assert all_hosts == ["c1", "c2", "c0"]
    assert flt("mesh_topology")(["c2"], hostvars, all_hosts)["by_host"]["c2"]["uninstall_primary"] == "c1"
    assert flt("mesh_topology")(["c2"], hostvars, ["c2", "c0", "c1"])["by_host"]["c2"]["uninstall_primary"] == "c0"
    assert flt("topology_errors")(t["clusters"]) == []
