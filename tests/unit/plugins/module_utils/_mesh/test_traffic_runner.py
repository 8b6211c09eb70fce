# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""traffic_policy's runner on a fake service, and the pure checks it makes against a cluster:
scope, the Pods of the subsets, samples moved to another namespace, the order of the writes."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile, traffic, traffic_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError

FM = reconcile.DEFAULT_FIELD_MANAGER
NS = "shop"
HOST = "reviews.shop.svc.cluster.local"


def policy(**kw):
    out = traffic.stage_policy(traffic.staged("bookinfo-reviews", NS), "jason")
    out.update(kw)
    return out


def pod(version, ns=NS, **extra):
    out = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "reviews-" + version, "namespace": ns, "labels": {"app": "reviews", "version": version}},
           "status": {"phase": "Running"}}
    for key, value in extra.items():
        if key == "phase":
            out["status"]["phase"] = value
        else:
            out["metadata"][key] = value
    return out


def live_from(obj):
    """What the API server returns after our apply of ``obj``."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="0000", resourceVersion="7")
    live["metadata"]["managedFields"] = [{
        "manager": FM, "operation": "Apply", "apiVersion": reconcile.API_VERSION, "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": dict(("f:" + k, {}) for k in obj["metadata"]["labels"])},
                     "f:spec": dict(("f:" + k, {}) for k in obj["spec"])}}]
    return live


class FakeService(object):
    """The verbs of service.Service the runner uses, on a dict; records LISTs and writes."""

    def __init__(self, pods=(), namespaces=(NS,), fail_kind=None):
        self.name = "cluster1"
        self.objects = {}
        self.pods = list(pods)
        self.namespaces = set(namespaces)
        self.writes = []
        self.lists = []
        self.fail_kind = fail_kind

    def resource(self, api_version, kind, required=True):
        return kind

    def namespace_exists(self, ns):
        return ns in self.namespaces

    def list(self, api_version, kind, namespace=None, label_selector=None, required=False):
        self.lists.append((kind, namespace))
        if kind == "Pod":
            return [copy.deepcopy(p) for p in self.pods if p["metadata"]["namespace"] == namespace]
        return [copy.deepcopy(o) for (k, ns, n), o in sorted(self.objects.items()) if k == kind and namespace in (None, ns)]

    def apply(self, obj, field_manager, dry_run=False, force=False):
        if obj["kind"] == self.fail_kind:
            raise ClusterError("cluster1: apply of %s: denied (HTTP 403)" % obj["kind"], status=403)
        self.writes.append(("apply", obj["kind"], reconcile.ref_of(obj)))
        self.objects[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = live_from(obj)

    def delete(self, api_version, kind, name, namespace=None):
        self.writes.append(("delete", kind, "%s/%s" % (namespace, name)))
        self.objects.pop((kind, namespace, name), None)


def params(**kw):
    out = {"owner": "traffic-policy", "namespaces": None, "prune": True, "state": "present", "field_manager": FM,
           "workers": 2, "require_subset_pods": True, "policies": [policy()]}
    out.update(kw)
    return out


PODS = [pod("v1"), pod("v2"), pod("v3")]


def test_options_default_owner_and_pods_check():
    spec = traffic_runner.options()
    assert spec["owner"] == {"type": "str", "default": "traffic-policy"}
    assert spec["require_subset_pods"]["default"] is True and spec["prune"]["default"] is True


# --- scope ----------------------------------------------------------------------------------

def test_scope_defaults_to_the_policies_namespaces():
    checked = traffic.validate([policy(), policy(host="ratings.other.svc.cluster.local", namespace="other")])
    assert traffic.scope(checked) == ["other", NS]
    assert traffic.scope(checked, ["other", NS, "more"]) == ["more", "other", NS]
    assert traffic.scope([]) == []


def test_scope_refuses_a_policy_outside_namespaces():
    with pytest.raises(MeshError) as e:
        traffic.scope(traffic.validate([policy()]), ["other"])
    assert str(e.value) == ("policies[0] (reviews.shop.svc.cluster.local): namespace shop is not one of namespaces "
                            "(other); its objects would be written but never pruned")
    assert e.value.field == "policies"
    with pytest.raises(MeshError) as e:
        traffic.scope([], ["Bad_NS"])
    assert e.value.field == "namespaces"


def test_absent_scope_reads_only_the_namespaces():
    # a policy being removed is not checked beyond its namespace (its weights may be anything)
    assert traffic.absent_scope([{"namespace": NS, "routes": [{"to": {"v1": 1}}]}]) == [NS]
    assert traffic.absent_scope([], ["a", "b"]) == ["a", "b"]
    assert traffic.absent_scope(None) == []
    with pytest.raises(MeshError) as e:
        traffic.absent_scope([{"host": HOST}])
    assert "policies[0] (reviews.shop.svc.cluster.local): namespace: None is not a DNS-1123 label" in str(e.value)


# --- subsets and pods -----------------------------------------------------------------------

def test_every_subset_with_a_pod_passes():
    assert traffic.subsets_without_pods(traffic.validate([policy()]), {NS: PODS}, "cluster1") == []


@pytest.mark.parametrize("pods, missing", [
    ([], ["v1", "v2", "v3"]),
    ([pod("v1"), pod("v3")], ["v2"]),
    ([pod("v1"), pod("v2", phase="Succeeded"), pod("v3")], ["v2"]),
    ([pod("v1"), pod("v2", phase="Failed"), pod("v3")], ["v2"]),
    ([pod("v1"), pod("v2", deletionTimestamp="2026-11-30T00:00:00Z"), pod("v3")], ["v2"]),
    ([pod("v1"), pod("v2", ns="elsewhere"), pod("v3")], ["v2"]),
    ([pod("v1"), pod("v2", phase="Pending"), pod("v3")], []),
])
def test_subsets_without_pods(pods, missing):
    pods_by_ns = {}
    for p in pods:
        pods_by_ns.setdefault(p["metadata"]["namespace"], []).append(p)
    found = traffic.subsets_without_pods(traffic.validate([policy()]), pods_by_ns, "cluster1")
    assert found == ["policies[0] (reviews.shop.svc.cluster.local).subsets.%s: labels version=%s select no Pod in "
                     "namespace shop of cluster1" % (v, v) for v in missing]


def test_every_label_of_a_subset_must_match():
    p = policy(subsets={"v1": {"version": "v1", "app": "reviews"}, "v2": {"version": "v2", "app": "ratings"},
                        "v3": {"version": "v3"}})
    found = traffic.subsets_without_pods(traffic.validate([p]), {NS: PODS}, "c")
    assert found == ["policies[0] (reviews.shop.svc.cluster.local).subsets.v2: labels app=ratings,version=v2 select "
                     "no Pod in namespace shop of c"]


# --- samples ------------------------------------------------------------------------------

def test_staged_sample_moved_to_another_namespace():
    moved = traffic.staged("bookinfo-reviews", "tp-test")
    assert moved["policy"]["host"] == "reviews.tp-test.svc.cluster.local"
    assert moved["policy"]["namespace"] == "tp-test"
    assert traffic.SAMPLE_STAGES["bookinfo-reviews"]["policy"]["namespace"] == "bookinfo"  # a copy was moved
    assert traffic.staged("helloworld")["policy"]["host"] == "helloworld.sample.svc.cluster.local"
    own = {"policy": {"host": "a", "namespace": "b"}, "stages": []}
    assert traffic.staged(own) is own


@pytest.mark.parametrize("args, message", [
    (("nginx",), "sample: 'nginx' is not a sample; samples: bookinfo-reviews, helloworld, httpbin-global"),
    ((3,), "sample: must be a sample name (bookinfo-reviews, helloworld, httpbin-global) or a staged policy"),
    (("httpbin-global", "x"), "sample: httpbin.bar.global is a .global host"),
    (("helloworld", "Bad"), "namespace: 'Bad' is not a DNS-1123 label"),
    (({"policy": {}, "stages": []}, "x"), "sample: namespace moves a named sample only"),
])
def test_staged_refusals(args, message):
    with pytest.raises(MeshError) as e:
        traffic.staged(*args)
    assert message in str(e.value)


# --- the runner -----------------------------------------------------------------------------

def test_check_apply_again_and_absent():
    svc = FakeService(PODS)
    check = traffic_runner.run(params(), svc, True, True)
    assert check["changed"] and svc.writes == []
    assert check["created"] == ["DestinationRule shop/reviews", "VirtualService shop/reviews"]
    assert check["namespaces"] == [NS]
    assert check["diff"]["after"]["VirtualService shop/reviews"]["spec"]["http"][0]["match"] == [
        {"headers": {"end-user": {"exact": "jason"}}}]
    assert ("Pod", NS) in svc.lists
    first = traffic_runner.run(params(), svc, False, False)
    # the subsets before the routes that use them
    assert svc.writes == [("apply", "DestinationRule", "shop/reviews"), ("apply", "VirtualService", "shop/reviews")]
    assert first["counts"] == {"created": 2, "updated": 0, "deleted": 0, "unchanged": 0} and "diff" not in first
    again = traffic_runner.run(params(), svc, False, True)
    assert not again["changed"] and again["unchanged"] == ["DestinationRule shop/reviews", "VirtualService shop/reviews"]
    assert "diff" not in again and len(svc.writes) == 2
    gone = traffic_runner.run(params(state="absent", policies=[{"namespace": NS}]), svc, False, False)
    # the routes go before the subsets they use
    assert svc.writes[2:] == [("delete", "VirtualService", "shop/reviews"), ("delete", "DestinationRule", "shop/reviews")]
    assert gone["deleted"] == ["DestinationRule shop/reviews", "VirtualService shop/reviews"] and not svc.objects


def test_next_stage_changes_only_the_virtual_service():
    svc = FakeService(PODS)
    traffic_runner.run(params(), svc, False, False)
    stage = traffic.stage_policy(traffic.staged("bookinfo-reviews", NS), "v2-v3-50")
    result = traffic_runner.run(params(policies=[stage]), svc, False, True)
    assert result["updated"] == ["VirtualService shop/reviews"]
    assert result["unchanged"] == ["DestinationRule shop/reviews"]
    assert result["fields"] == {"VirtualService shop/reviews": ["spec.http"]}
    assert list(result["diff"]["before"]) == ["VirtualService shop/reviews"]
    assert svc.writes[-1] == ("apply", "VirtualService", "shop/reviews")


def test_a_policy_without_routes_prunes_its_virtual_service_first():
    svc = FakeService(PODS)
    traffic_runner.run(params(), svc, False, False)
    bare = dict(policy(), routes=None)
    result = traffic_runner.run(params(policies=[bare]), svc, False, False)
    assert result["deleted"] == ["VirtualService shop/reviews"] and result["unchanged"] == ["DestinationRule shop/reviews"]


def test_without_pods_nothing_is_written_in_check_mode_either():
    for check_mode in (True, False):
        svc = FakeService([pod("v1"), pod("v3")])
        with pytest.raises(MeshError) as e:
            traffic_runner.run(params(), svc, check_mode, False)
        assert str(e.value).startswith("policies[0] (reviews.shop.svc.cluster.local).subsets.v2: labels version=v2 "
                                       "select no Pod in namespace shop of cluster1;")
        assert "require_subset_pods=false (nothing was written)" in str(e.value)
        assert e.value.field == "policies" and svc.writes == []
    svc = FakeService([pod("v1"), pod("v3")])
    assert traffic_runner.run(params(require_subset_pods=False), svc, False, False)["counts"]["created"] == 2
    assert ("Pod", NS) not in svc.lists


@pytest.mark.parametrize("policies, message", [
    ([policy(routes=[{"to": {"v1": 50, "v2": 49}}])],
     "policies[0] (reviews.shop.svc.cluster.local).routes[0].to: weights 50 + 49 = 99, must sum to 100"),
    ([policy(routes=[{"to": "v9"}])],
     "policies[0] (reviews.shop.svc.cluster.local).routes[0].to: subset 'v9' is not defined (subsets: v1, v2, v3)"),
    ([policy(), {"host": "httpbin.bar.global", "namespace": NS, "subsets": {"v1": {"version": "v1"}},
                 "routes": [{"to": "v1"}]}],
     "policies[1] (httpbin.bar.global): host: httpbin.bar.global is a .global host"),
])
def test_bad_policies_are_refused_before_any_read_or_write(policies, message):
    svc = FakeService(PODS)
    with pytest.raises(MeshError) as e:
        traffic_runner.run(params(policies=policies), svc, False, False)
    assert message in str(e.value) and e.value.field == "policies"
    assert svc.writes == [] and svc.lists == []


def test_global_refusal_points_at_the_federation():
    with pytest.raises(MeshError) as e:
        traffic_runner.run(params(policies=[{"host": "httpbin.bar.global", "namespace": NS}]), FakeService(), False,
                           False)
    assert "federate_clusters_global_routes" in str(e.value) and "meshfed.istio.mesh_global_routes" in str(e.value)


def test_an_object_of_another_owner_refuses_both_kinds():
    svc = FakeService(PODS)
    foreign = live_from(reconcile.desired_object(traffic.entries([policy()])["VirtualService"][0], "someone-else",
                                                 kind="VirtualService"))
    svc.objects[("VirtualService", NS, "reviews")] = foreign
    with pytest.raises(MeshError) as e:
        traffic_runner.run(params(), svc, False, False)
    assert "VirtualService shop/reviews already exists and is not managed by owner traffic-policy" in str(e.value)
    # the DestinationRule, planned first and free to create, was not written either
    assert svc.writes == [] and svc.objects == {("VirtualService", NS, "reviews"): foreign}


def test_a_missing_namespace_is_refused_or_pending_in_check_mode():
    svc = FakeService(PODS, namespaces=())
    with pytest.raises(MeshError) as e:
        traffic_runner.run(params(require_subset_pods=False), svc, False, False)
    assert "namespace(s) do not exist: shop" in str(e.value) and svc.writes == []
    check = traffic_runner.run(params(require_subset_pods=False), svc, True, False)
    assert check["changed"] and any("namespace shop" in p for p in check["pending"])


def test_a_failed_write_returns_what_was_written():
    svc = FakeService(PODS, fail_kind="VirtualService")
    with pytest.raises(ClusterError) as e:
        traffic_runner.run(params(), svc, False, False)
    assert e.value.result["created"] == ["DestinationRule shop/reviews"]
    assert e.value.result["failed"] == ["VirtualService shop/reviews"] and e.value.result["changed"]
    assert "1 of 1 VirtualService writes failed" in str(e.value)
    assert svc.writes == [("apply", "DestinationRule", "shop/reviews")]


def test_another_owner_set_is_not_touched():
    svc = FakeService(PODS)
    traffic_runner.run(params(owner="team-a"), svc, False, False)
    other = policy(host="ratings.shop.svc.cluster.local")
    result = traffic_runner.run(params(owner="team-b", policies=[other]), svc, False, False)
    assert result["created"] == ["DestinationRule shop/ratings", "VirtualService shop/ratings"]
    assert result["deleted"] == []
    gone = traffic_runner.run(params(owner="team-b", state="absent", namespaces=[NS], policies=[]), svc, False, False)
    assert gone["deleted"] == ["DestinationRule shop/ratings", "VirtualService shop/ratings"]
    assert sorted(svc.objects) == [("DestinationRule", NS, "reviews"), ("VirtualService", NS, "reviews")]


def test_write_order():
    plans = dict((k, type("P", (), {"kind": k, "todo": {"create": [], "update": [], "delete": []}})())
                 for k in traffic_runner.KINDS)
    assert [p.kind for p in traffic_runner.write_order(plans)] == ["VirtualService", "DestinationRule"]
    plans["DestinationRule"].todo["update"] = [{}]
    assert [p.kind for p in traffic_runner.write_order(plans)] == ["DestinationRule", "VirtualService"]
