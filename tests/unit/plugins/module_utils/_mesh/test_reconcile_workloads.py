# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""WorkloadEntry and WorkloadGroup through the reconciler: the content checks (pure), the plan,
and the runners of workload_entry and workload_group on a fake service."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile, reconcile_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

OWNER = "vms"
FM = reconcile.DEFAULT_FIELD_MANAGER


def we(name="details-vm-1", namespace="bookinfo", **spec):
    body = {"address": "10.10.0.11", "ports": {"http": 8080}, "labels": {"app": "details"},
            "serviceAccount": "details-legacy", "network": "vm-net", "locality": "eu-west/zone-a", "weight": 10}
    body.update(spec)
    return {"name": name, "namespace": namespace, "spec": dict((k, v) for k, v in body.items() if v is not None)}


def wg(name="reviews", namespace="bookinfo", **spec):
    body = {"metadata": {"labels": {"app": "reviews", "version": "v3"}, "annotations": {"team": "a"}},
            "template": {"serviceAccount": "reviews", "network": "vm-net", "ports": {"http": 9080, "grpc": 3550}},
            "probe": {"initialDelaySeconds": 5, "timeoutSeconds": 3, "periodSeconds": 4, "successThreshold": 1,
                      "failureThreshold": 3,
                      "httpGet": {"path": "/health", "port": 9080, "host": "127.0.0.1", "scheme": "HTTPS",
                                  "httpHeaders": [{"name": "X-Probe", "value": "1"}]}}}
    body.update(spec)
    return {"name": name, "namespace": namespace, "spec": dict((k, v) for k, v in body.items() if v is not None)}


def entries(*items):
    return reconcile.validate_entries(list(items), OWNER, kind="WorkloadEntry", field="workload_entries")


def groups(*items):
    return reconcile.validate_entries(list(items), OWNER, kind="WorkloadGroup", field="workload_groups")


# --- WorkloadEntry checks -----------------------------------------------------------

@pytest.mark.parametrize("address", ["10.10.0.11", "fd00::11", "details-vm-1.vms.example.com", "vm1", "VM1.Example.COM.",
                                     "unix:///var/run/app.sock", "unix://@app"])
def test_workload_entry_addresses(address):
    spec = {"address": address} if address.startswith("unix://") else {"address": address, "ports": {"http": 80}}
    assert entries({"name": "a", "namespace": "b", "spec": spec})[0]["spec"] == spec


def test_workload_entry_is_passed_through():
    out = entries(we(), we(name="details-vm-2", weight=0, locality="eu-west"))
    assert out[0]["spec"]["weight"] == 10 and out[1]["spec"]["weight"] == 0
    obj = reconcile.desired_object(out[0], OWNER, kind="WorkloadEntry")
    assert obj["apiVersion"] == "networking.istio.io/v1" and obj["kind"] == "WorkloadEntry"
    assert obj["metadata"]["labels"] == {reconcile.OWNER_LABEL: OWNER}
    assert obj["spec"] == we()["spec"]


@pytest.mark.parametrize("entry, fragment", [
    (we(address=None), "workload_entries[0] (bookinfo/details-vm-1): spec.address is required"),
    (we(address=""), "spec.address is required"),
    (we(address="10.0.0.300"), "spec.address '10.0.0.300' is not an IP address, a DNS name or unix:///path"),
    (we(address="10.0.0.0/24"), "spec.address '10.0.0.0/24' is not an IP address"),
    (we(address="http://vm1"), "spec.address 'http://vm1' is not"),
    (we(address="vm_1.example.com"), "spec.address 'vm_1.example.com' is not"),
    (we(address="unix://relative.sock", ports=None), "spec.address 'unix://relative.sock' is not"),
    (we(address="unix:///var/run/", ports=None), "spec.address 'unix:///var/run/' is not"),
    (we(address="unix:///var/run/app.sock"), "spec.ports must not be set with a unix socket address"),
    (we(address=["10.0.0.1"]), "spec.address ['10.0.0.1'] is not"),
    (we(address="a" * 257), "at most 256 characters"),
    (we(ports={"http": 0}), "spec.ports.http must be an integer from 1 to 65535, got int 0"),
    (we(ports={"http": 65536}), "spec.ports.http must be an integer from 1 to 65535, got int 65536"),
    (we(ports={"http": "8080"}), "spec.ports.http must be an integer from 1 to 65535, got str '8080'"),
    (we(ports={"http": True}), "spec.ports.http must be an integer"),
    (we(ports={"http_x": 80}), "spec.ports: port name 'http_x' is not valid"),
    (we(ports={"-http": 80}), "port name '-http' is not valid"),
    (we(ports={"h" * 63: 80}), "is not valid"),
    (we(ports=[8080]), "spec.ports must be a mapping of port name to port number, got list"),
    (we(weight=-1), "spec.weight must be an integer from 0 to 4294967295, got int -1"),
    (we(weight=1.5), "spec.weight must be an integer from 0 to 4294967295, got float 1.5"),
    (we(weight="10"), "spec.weight must be an integer"),
    (we(weight=4294967296), "spec.weight must be an integer"),
    (we(serviceAccount="Details_Legacy"), "spec.serviceAccount 'Details_Legacy' is not a DNS-1123 subdomain"),
    (we(serviceAccount=""), "spec.serviceAccount '' is not a DNS-1123 subdomain"),
    (we(labels={"version": 1}), "spec.labels.version must be a string, got int 1"),
    (we(labels={"app": "has space"}), "spec.labels.app: 'has space' is not a valid label value"),
    (we(labels={"bad key!": "x"}), "spec.labels: key 'bad key!' is not a valid label key"),
    (we(labels={reconcile.OWNER_LABEL: OWNER}), "spec.labels must not carry meshfed.istio/owner"),
    (we(labels=["app"]), "spec.labels must be a mapping of strings"),
    (we(network=5), "spec.network must be a string, got int 5"),
    (we(locality="eu/a/b/c"), "spec.locality 'eu/a/b/c' is not region[/zone[/subzone]]"),
    (we(locality="eu//b"), "spec.locality 'eu//b' is not region"),
    (we(locality=3), "spec.locality must be a string"),
    (we(serviceaccount="x"), "spec: unknown key(s) serviceaccount; allowed: address, ports, labels"),
])
def test_bad_workload_entries_name_the_entry_and_field(entry, fragment):
    with pytest.raises(MeshError) as e:
        entries(entry)
    assert e.value.field == "workload_entries"
    assert fragment in str(e.value)


def test_workload_entry_duplicates_and_names():
    with pytest.raises(MeshError) as e:
        entries(we(), we())
    assert "duplicate WorkloadEntry bookinfo/details-vm-1 (also workload_entries[0])" in str(e.value)
    with pytest.raises(MeshError) as e:
        entries(we(name="VM1"))
    assert "workload_entries[0] (bookinfo/VM1): name 'VM1' is not a DNS-1123 subdomain" in str(e.value)
    with pytest.raises(MeshError) as e:
        entries(we(namespace="book.info"))
    assert "namespace 'book.info' is not a DNS-1123 label" in str(e.value)


# --- WorkloadGroup checks ------------------------------------------------------------

def test_workload_group_is_passed_through():
    out = groups(wg(), wg(name="ratings", metadata=None, probe=None, template={}))
    assert out[0]["spec"] == wg()["spec"]
    assert out[1]["spec"] == {"template": {}}


@pytest.mark.parametrize("probe", [
    {"tcpSocket": {"port": 3306}},
    {"tcpSocket": {"port": 3306, "host": "127.0.0.1"}, "periodSeconds": 0},
    {"exec": {"command": ["/bin/check", "--ready"]}, "timeoutSeconds": 2},
    {"grpc": {"port": 9090, "service": "health"}},
    {"httpGet": {"port": 80}},
])
def test_workload_group_probes(probe):
    assert groups(wg(probe=probe))[0]["spec"]["probe"] == probe


@pytest.mark.parametrize("group, fragment", [
    (wg(template=None), "workload_groups[0] (bookinfo/reviews): spec.template is required"),
    (wg(template=[]), "spec.template is required"),
    (wg(template={"address": "10.0.0.1"}), "spec.template.address must not be set"),
    (wg(template={"serviceAccount": "Reviews"}), "spec.template.serviceAccount 'Reviews' is not a DNS-1123 subdomain"),
    (wg(template={"ports": {"http": 70000}}), "spec.template.ports.http must be an integer from 1 to 65535"),
    (wg(template={"ports": {"http": "9080"}}), "spec.template.ports.http must be an integer from 1 to 65535, got str"),
    (wg(template={"weight": -3}), "spec.template.weight must be an integer from 0"),
    (wg(template={"labels": {"v": 3}}), "spec.template.labels.v must be a string, got int 3"),
    (wg(template={"network": ["a"]}), "spec.template.network must be a string"),
    (wg(template={"sa": "x"}), "spec.template: unknown key(s) sa; allowed: ports, labels, network, locality"),
    (wg(metadata={"labels": {"version": 3}}), "spec.metadata.labels.version must be a string, got int 3"),
    (wg(metadata={"labels": {reconcile.OWNER_LABEL: OWNER}}), "spec.metadata.labels must not carry"),
    (wg(metadata={"annotations": {"n": 1}}), "spec.metadata.annotations.n must be a string"),
    (wg(metadata={"name": "x"}), "spec.metadata: unknown key(s) name; allowed: labels, annotations"),
    (wg(metadata="app=x"), "spec.metadata must be a mapping, got str"),
    (wg(selector={}), "spec: unknown key(s) selector; allowed: metadata, template, probe"),
    (wg(probe={"periodSeconds": 4}), "spec.probe must have exactly one of httpGet, tcpSocket, exec, grpc, got none"),
    (wg(probe={"httpGet": {"port": 80}, "tcpSocket": {"port": 80}}),
     "spec.probe must have exactly one of httpGet, tcpSocket, exec, grpc, got httpGet, tcpSocket"),
    (wg(probe={"tcpSocket": {"port": 80}, "periodSeconds": "4"}),
     "spec.probe.periodSeconds must be an integer from 0 to 2147483647, got str '4'"),
    (wg(probe={"tcpSocket": {"port": 80}, "timeoutSeconds": 1.5}), "spec.probe.timeoutSeconds must be an integer"),
    (wg(probe={"tcpSocket": {"port": 80}, "failureThreshold": -1}), "spec.probe.failureThreshold must be an integer"),
    (wg(probe={"tcpSocket": {"port": 80}, "initialDelaySeconds": False}),
     "spec.probe.initialDelaySeconds must be an integer"),
    (wg(probe={"tcpSocket": {"port": 80}, "period": 4}), "spec.probe: unknown key(s) period"),
    (wg(probe={"httpGet": {"path": "/"}}), "spec.probe.httpGet.port is required"),
    (wg(probe={"httpGet": {"port": 0}}), "spec.probe.httpGet.port must be an integer from 1 to 65535, got int 0"),
    (wg(probe={"httpGet": {"port": 80, "scheme": "https"}}), "spec.probe.httpGet.scheme must be HTTP or HTTPS"),
    (wg(probe={"httpGet": {"port": 80, "httpHeaders": {"a": "b"}}}), "spec.probe.httpGet.httpHeaders must be a list"),
    (wg(probe={"httpGet": {"port": 80, "httpHeaders": [{"name": "a b", "value": "c"}]}}),
     "spec.probe.httpGet.httpHeaders[0].name 'a b' is not a header name"),
    (wg(probe={"httpGet": {"port": 80, "httpHeaders": [{"name": "a", "value": 1}]}}),
     "spec.probe.httpGet.httpHeaders[0].value must be a string"),
    (wg(probe={"httpGet": {"port": 80, "url": "/"}}), "spec.probe.httpGet: unknown key(s) url"),
    (wg(probe={"tcpSocket": {}}), "spec.probe.tcpSocket.port is required"),
    (wg(probe={"tcpSocket": {"port": "80"}}), "spec.probe.tcpSocket.port must be an integer"),
    (wg(probe={"exec": {"command": []}}), "spec.probe.exec.command must be a non-empty list of non-empty strings"),
    (wg(probe={"exec": {"command": "/bin/check"}}), "spec.probe.exec.command must be a non-empty list"),
    (wg(probe={"exec": {"command": ["ok", ""]}}), "spec.probe.exec.command must be a non-empty list"),
    (wg(probe={"grpc": {"port": 99999}}), "spec.probe.grpc.port must be an integer from 1 to 65535"),
    (wg(probe="tcp"), "spec.probe must be a mapping, got str"),
])
def test_bad_workload_groups_name_the_entry_and_field(group, fragment):
    with pytest.raises(MeshError) as e:
        groups(group)
    assert e.value.field == "workload_groups"
    assert fragment in str(e.value)


def test_address_kind():
    addresses = ("10.0.0.1", "::1", "vm.example.com", "unix:///s", "unix://@s", "1.2.3", "unix://", "unix://@", "",
                 None, "a..b")
    kinds = ["ip", "ip", "dns", "unix", "unix", None, None, None, None, None, None]
    assert [reconcile.address_kind(a) for a in addresses] == kinds


@pytest.mark.parametrize("key, ok", [("app", True), ("app.kubernetes.io/name", True), ("a_b.c-d", True),
                                     ("Example.com/x", False), ("/x", False), ("x/", False), ("a" * 64, False),
                                     ("", False), (1, False)])
def test_is_label_key(key, ok):
    assert reconcile.is_label_key(key) is ok


# --- planning ---------------------------------------------------------------------------

def live_from(obj, **spec_changes):
    """What the API server returns after our apply of ``obj`` (then ``spec_changes`` by someone else)."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="0000", resourceVersion="7")
    live["metadata"]["managedFields"] = [{
        "manager": FM, "operation": "Apply", "apiVersion": reconcile.API_VERSION, "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": dict(("f:" + k, {}) for k in obj["metadata"]["labels"])},
                     "f:spec": dict(("f:" + k, {}) for k in obj["spec"])}}]
    live["spec"].update(spec_changes)
    live["status"] = {"conditions": [{"type": "Healthy", "status": "True"}]}
    return live


def test_plan_of_workload_groups():
    want = [reconcile.desired_object(e, OWNER, kind="WorkloadGroup") for e in groups(wg(), wg(name="ratings"))]
    changed = copy.deepcopy(want[1])
    changed["spec"]["template"]["serviceAccount"] = "old"
    stale = reconcile.desired_object(groups(wg(name="gone"))[0], OWNER, kind="WorkloadGroup")
    todo = reconcile.plan(want, [live_from(want[0]), live_from(changed), live_from(stale)])
    assert todo["unchanged"] == ["bookinfo/reviews"]
    assert [reconcile.ref_of(o) for o in todo["update"]] == ["bookinfo/ratings"]
    assert todo["fields"] == {"bookinfo/ratings": ["spec.template"]}
    assert todo["diff"]["before"]["bookinfo/ratings"]["spec"]["template"]["serviceAccount"] == "old"
    assert todo["diff"]["after"]["bookinfo/ratings"]["spec"]["template"]["serviceAccount"] == "reviews"
    assert [reconcile.ref_of(o) for o in todo["delete"]] == ["bookinfo/gone"]


def test_plan_of_workload_entries_weight_zero_and_empty_maps():
    want = [reconcile.desired_object(e, OWNER, kind="WorkloadEntry") for e in entries(we(weight=0, labels={}))]
    live = live_from(want[0])
    del live["spec"]["labels"]
    assert reconcile.plan(want, [live])["unchanged"] == ["bookinfo/details-vm-1"]
    todo = reconcile.plan(want, [live_from(want[0], weight=5)])
    assert todo["fields"] == {"bookinfo/details-vm-1": ["spec.weight"]}


# --- the runners, on a fake service -----------------------------------------------------

class FakeService(object):
    """The verbs of service.Service the reconciler uses, on a dict; records the writes."""

    def __init__(self, objects=(), namespaces=("bookinfo",)):
        self.objects = dict(((o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]), o) for o in objects)
        self.namespaces = set(namespaces)
        self.writes = []
        self.lists = 0

    def resource(self, api_version, kind, required=True):
        return kind

    def namespace_exists(self, ns):
        return ns in self.namespaces

    def list(self, api_version, kind, namespace=None, label_selector=None, required=False):
        self.lists += 1
        return [copy.deepcopy(o) for (k, ns, n), o in sorted(self.objects.items()) if k == kind and namespace in (None, ns)]

    def apply(self, obj, field_manager, dry_run=False, force=False):
        self.writes.append(("apply", reconcile.ref_of(obj)))
        self.objects[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = live_from(obj)

    def delete(self, api_version, kind, name, namespace=None):
        self.writes.append(("delete", "%s/%s" % (namespace, name)))
        self.objects.pop((kind, namespace, name), None)


def params(**kw):
    out = {"owner": OWNER, "namespaces": ["bookinfo"], "prune": True, "state": "present", "field_manager": FM,
           "workers": 2, "workload_groups": [wg()], "workload_entries": [we()]}
    out.update(kw)
    return out


def test_workload_group_runner_check_apply_and_again():
    svc = FakeService()
    check = reconcile_runner.run_workload_groups(params(), svc, True, True)
    assert check["changed"] and check["created"] == ["bookinfo/reviews"] and svc.writes == []
    assert check["diff"]["after"]["bookinfo/reviews"]["spec"]["probe"]["httpGet"]["port"] == 9080
    first = reconcile_runner.run_workload_groups(params(), svc, False, False)
    assert first["created"] == ["bookinfo/reviews"] and svc.writes == [("apply", "bookinfo/reviews")]
    again = reconcile_runner.run_workload_groups(params(), svc, False, False)
    assert not again["changed"] and again["unchanged"] == ["bookinfo/reviews"]
    gone = reconcile_runner.run_workload_groups(params(state="absent"), svc, False, False)
    assert gone["deleted"] == ["bookinfo/reviews"] and not svc.objects


def test_workload_entry_runner_refuses_before_any_write():
    foreign = live_from(reconcile.desired_object(entries(we(name="taken"))[0], OWNER, kind="WorkloadEntry"))
    foreign["metadata"]["labels"] = {}
    svc = FakeService([foreign])
    with pytest.raises(MeshError) as e:
        reconcile_runner.run_workload_entries(params(workload_entries=[we(), we(name="taken")]), svc, False, False)
    assert "WorkloadEntry bookinfo/taken already exists and is not managed by owner vms" in str(e.value)
    assert e.value.field == "workload_entries" and svc.writes == []
    with pytest.raises(MeshError) as e:
        reconcile_runner.run_workload_entries(params(namespaces=None, workload_entries=[we(namespace="nope")]), svc,
                                              False, False)
    assert "namespace(s) do not exist: nope (needed by WorkloadEntry nope/details-vm-1)" in str(e.value)
    with pytest.raises(MeshError) as e:
        reconcile_runner.run_workload_entries(params(workload_entries=[we(weight=-1)]), svc, False, False)
    assert "workload_entries[0] (bookinfo/details-vm-1): spec.weight" in str(e.value) and svc.writes == []


def test_workload_entry_runner_updates_and_prunes_only_its_own():
    svc = FakeService()
    reconcile_runner.run_workload_entries(params(workload_entries=[we(), we(name="vm2")]), svc, False, False)
    other = live_from(reconcile.desired_object(entries(we(name="theirs"))[0], "someone-else", kind="WorkloadEntry"))
    svc.objects[("WorkloadEntry", "bookinfo", "theirs")] = other
    svc.writes = []
    out = reconcile_runner.run_workload_entries(params(workload_entries=[we(address="10.10.0.99")]), svc, False, True)
    assert out["updated"] == ["bookinfo/details-vm-1"] and out["deleted"] == ["bookinfo/vm2"]
    assert out["fields"] == {"bookinfo/details-vm-1": ["spec.address"]}
    assert out["diff"]["before"]["bookinfo/details-vm-1"]["spec"]["address"] == "10.10.0.11"
    assert ("WorkloadEntry", "bookinfo", "theirs") in svc.objects and svc.lists == 2


def test_owned_objects_takes_the_workload_kinds_with_their_checks():
    manifests = [{"apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup",
                  "metadata": {"name": "reviews", "namespace": "bookinfo"}, "spec": wg()["spec"]},
                 {"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
                  "metadata": {"name": "vm1", "namespace": "bookinfo"}, "spec": {"address": "10.0.0.1"}}]
    by_kind = reconcile_runner.manifests_by_kind(manifests)
    assert sorted(by_kind) == ["WorkloadEntry", "WorkloadGroup"]
    with pytest.raises(MeshError) as e:
        reconcile.validate_entries([dict(by_kind["WorkloadEntry"][0], spec={"weight": 1})], OWNER,
                                   kind="WorkloadEntry", field="objects")
    assert "objects[0] (bookinfo/vm1): spec.address is required" in str(e.value)
