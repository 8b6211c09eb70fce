# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure ServiceEntry reconciliation: input validation, comparison with live objects, the plan."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile as se
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

OWNER = "federation-east"
FM = se.DEFAULT_FIELD_MANAGER


def entry(name="httpbin-bar", namespace="istio-system", **kw):
    spec = kw.pop("spec", None) or {
        "hosts": ["httpbin.bar.global"], "location": "MESH_INTERNAL", "resolution": "STATIC",
        "addresses": ["240.240.0.7"],
        "ports": [{"name": "http", "number": 8000, "protocol": "HTTP"}],
        "endpoints": [{"address": "172.18.0.10", "network": "network2", "ports": {"http": 15443},
                       "labels": {"cluster": "cluster2"}}],
    }
    return dict(dict(name=name, namespace=namespace, spec=spec), **kw)


def desired(*entries):
    return [se.desired_object(e, OWNER) for e in se.validate_entries(list(entries), OWNER)]


def live_from(obj, managed=True, extra_labels=None, extra_annotations=None, extra_spec=None, manager=FM):
    """What the API server returns after our apply of ``obj`` (plus what others added)."""
    live = copy.deepcopy(obj)
    meta = live["metadata"]
    fields = {"f:metadata": {"f:labels": dict(("f:" + k, {}) for k in meta.get("labels") or {})},
              "f:spec": dict(("f:" + k, {}) for k in obj["spec"])}
    if meta.get("annotations"):
        fields["f:metadata"]["f:annotations"] = dict(("f:" + k, {}) for k in meta["annotations"])
    meta.update(uid="0000", resourceVersion="42", generation=1, creationTimestamp="2026-01-01T00:00:00Z")
    meta["labels"] = dict(meta.get("labels") or {}, **(extra_labels or {}))
    if extra_annotations:
        meta["annotations"] = dict(meta.get("annotations") or {}, **extra_annotations)
    live["spec"] = dict(live["spec"], **(extra_spec or {}))
    if managed:
        meta["managedFields"] = [{"manager": manager, "operation": "Apply", "apiVersion": se.API_VERSION,
                                  "fieldsType": "FieldsV1", "fieldsV1": fields}]
    live["status"] = {}
    return live


# --- validation -------------------------------------------------------------------

def test_valid_entries_are_normalised():
    out = se.validate_entries([entry(labels={"app": "httpbin"}), entry(name="sleep.foo", namespace="foo")], OWNER)
    assert [(e["namespace"], e["name"]) for e in out] == [("istio-system", "httpbin-bar"), ("foo", "sleep.foo")]
    assert out[0]["labels"] == {"app": "httpbin"}
    assert out[1]["labels"] == {} and out[1]["annotations"] == {}


@pytest.mark.parametrize("entries, fragment", [
    ([entry(name="Httpbin")], "service_entries[0] (istio-system/Httpbin): name 'Httpbin' is not a DNS-1123 subdomain"),
    ([entry(name="httpbin_bar")], "name 'httpbin_bar' is not a DNS-1123 subdomain"),
    ([entry(name="-x")], "name '-x' is not a DNS-1123 subdomain"),
    ([entry(name="a." * 130)], "is not a DNS-1123 subdomain"),
    ([entry(name=None)], "service_entries[0]: name None is not a DNS-1123 subdomain"),
    ([entry(namespace="Bar")], "namespace 'Bar' is not a DNS-1123 label"),
    ([entry(namespace="a.b")], "namespace 'a.b' is not a DNS-1123 label"),
    ([entry(), entry(name="other"), entry()],
     "service_entries[2] (istio-system/httpbin-bar): duplicate ServiceEntry istio-system/httpbin-bar "
     "(also service_entries[0])"),
    ([entry(spec={"location": "MESH_INTERNAL"})], "(istio-system/httpbin-bar): spec.hosts is missing or empty"),
    ([entry(spec={"hosts": []})], "spec.hosts is missing or empty"),
    ([entry(spec={"hosts": "httpbin.bar.global"})], "spec.hosts must be a list of non-empty strings"),
    ([entry(spec={"hosts": ["a.global", ""]})], "spec.hosts must be a list of non-empty strings"),
    ([dict(name="x", namespace="y")], "spec must be a mapping, got NoneType"),
    ([entry(labels={"version": 1})], "labels.version must be a string, got int 1"),
    ([entry(annotations="x")], "annotations must be a mapping of strings"),
    ([entry(labels={se.OWNER_LABEL: "someone-else"})], "labels.meshfed.istio/owner is 'someone-else'"),
    ([entry(kind="ServiceEntry")], "unknown key(s) kind"),
    (["httpbin"], "service_entries[0]: must be a mapping"),
])
def test_bad_entries_name_the_entry_and_field(entries, fragment):
    with pytest.raises(MeshError) as e:
        se.validate_entries(entries, OWNER)
    assert e.value.field == "service_entries"
    assert fragment in str(e.value)


def test_entries_outside_namespaces_are_refused():
    with pytest.raises(MeshError) as e:
        se.validate_entries([entry(namespace="bar")], OWNER, namespaces=["istio-system"])
    assert "namespace bar is not one of namespaces (istio-system)" in str(e.value)
    assert se.validate_entries([entry(namespace="bar")], OWNER, namespaces=["bar"])


def test_owner_label_equal_to_owner_is_allowed():
    assert se.validate_entries([entry(labels={se.OWNER_LABEL: OWNER})], OWNER)


@pytest.mark.parametrize("owner", ["", "a" * 64, "-x", "has space", None, "a/b"])
def test_bad_owner(owner):
    with pytest.raises(MeshError) as e:
        se.validate_entries([entry()], owner)
    assert e.value.field == "owner"


def test_no_entries():
    assert se.validate_entries(None, OWNER) == []
    assert se.validate_entries([], OWNER) == []


def test_desired_object():
    obj = desired(entry(labels={"app": "httpbin"}, annotations={"note": "x"}))[0]
    assert obj["apiVersion"] == "networking.istio.io/v1" and obj["kind"] == "ServiceEntry"
    assert obj["metadata"] == {"name": "httpbin-bar", "namespace": "istio-system",
                               "labels": {"app": "httpbin", se.OWNER_LABEL: OWNER}, "annotations": {"note": "x"}}
    assert "annotations" not in desired(entry())[0]["metadata"]


# --- comparison ---------------------------------------------------------------------

def test_live_after_our_apply_is_unchanged():
    obj = desired(entry(labels={"app": "httpbin"}, annotations={"note": "x"}))[0]
    assert se.compare(obj, live_from(obj)) is None


def test_what_others_add_is_not_ours_to_compare():
    obj = desired(entry())[0]
    live = live_from(obj, extra_labels={"team": "x"},
                     extra_annotations={"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                     extra_spec={"exportTo": ["."]})
    assert se.compare(obj, live) is None


@pytest.mark.parametrize("empty", [[], {}, None])
def test_missing_and_empty_are_equal(empty):
    obj = desired(entry(spec={"hosts": ["a.global"], "exportTo": empty, "endpoints": [
        {"address": "1.2.3.4", "labels": empty, "ports": empty}]}))[0]
    live = live_from(desired(entry(spec={"hosts": ["a.global"], "endpoints": [{"address": "1.2.3.4"}]}))[0])
    assert se.compare(obj, live) is None
    obj2 = desired(entry(spec={"hosts": ["a.global"], "endpoints": [{"address": "1.2.3.4"}]}))[0]
    live2 = live_from(desired(entry(spec={"hosts": ["a.global"], "exportTo": empty, "endpoints": [
        {"address": "1.2.3.4", "labels": empty}]}))[0])
    assert se.compare(obj2, live2) is None


def test_spec_change_is_found_and_named():
    before = desired(entry())[0]
    spec = copy.deepcopy(before["spec"])
    spec["endpoints"][0]["address"] = "172.18.0.11"
    after = desired(entry(spec=spec))[0]
    cmp_ = se.compare(after, live_from(before))
    assert cmp_["fields"] == ["spec.endpoints"]
    assert cmp_["before"]["spec"]["endpoints"][0]["address"] == "172.18.0.10"
    assert cmp_["after"]["spec"]["endpoints"][0]["address"] == "172.18.0.11"


def test_a_key_we_applied_before_and_now_drop_is_a_change():
    before = desired(entry())[0]
    spec = dict(before["spec"])
    del spec["addresses"]
    cmp_ = se.compare(desired(entry(spec=spec))[0], live_from(before))
    assert cmp_["fields"] == ["spec.addresses"]


def test_a_label_we_applied_before_and_now_drop_is_a_change():
    before = desired(entry(labels={"app": "httpbin"}))[0]
    cmp_ = se.compare(desired(entry())[0], live_from(before))
    assert cmp_["fields"] == ["metadata.labels.app"]
    assert cmp_["before"]["labels"] == {"app": "httpbin", se.OWNER_LABEL: OWNER}
    assert cmp_["after"]["labels"] == {se.OWNER_LABEL: OWNER}


def test_changed_annotation_value():
    before = desired(entry(annotations={"note": "a"}))[0]
    cmp_ = se.compare(desired(entry(annotations={"note": "b"}))[0], live_from(before))
    assert cmp_["fields"] == ["metadata.annotations.note"]


def test_list_order_matters():
    spec = {"hosts": ["a.global", "b.global"]}
    before = desired(entry(spec=spec))[0]
    assert se.compare(desired(entry(spec={"hosts": ["b.global", "a.global"]}))[0], live_from(before))


def test_object_written_by_another_manager_is_taken_over():
    obj = desired(entry())[0]
    live = live_from(obj, managed=False, extra_spec={"exportTo": ["."]})
    assert se.compare(obj, live)["fields"] == ["spec.exportTo"]
    # the same object, but our manager has applied it: exportTo belongs to someone else
    assert se.compare(obj, live_from(obj, extra_spec={"exportTo": ["."]})) is None


def test_another_managers_entry_is_not_ours():
    obj = desired(entry())[0]
    live = live_from(obj, manager="kubectl", extra_spec={"exportTo": ["."]})
    assert se.owned_fields(live, FM) is None
    assert se.owned_fields(live, "kubectl")["spec"] >= {"hosts", "ports"}


# --- the plan -----------------------------------------------------------------------

def test_plan_create_update_delete_unchanged():
    keep, change, gone = entry(name="keep"), entry(name="change"), entry(name="gone", namespace="foo")
    live = [live_from(o) for o in desired(keep, change, gone)]
    new_spec = dict(change["spec"], resolution="DNS")
    want = desired(keep, dict(change, spec=new_spec), entry(name="new", namespace="bar"))
    todo = se.plan(want, live, FM, prune=True)
    result = se.summary(todo, want_diff=True)
    assert result["changed"] is True
    assert result["created"] == ["bar/new"]
    assert result["updated"] == ["istio-system/change"]
    assert result["deleted"] == ["foo/gone"]
    assert result["unchanged"] == ["istio-system/keep"]
    assert result["counts"] == {"created": 1, "updated": 1, "deleted": 1, "unchanged": 1}
    assert result["fields"] == {"istio-system/change": ["spec.resolution"]}
    diff = result["diff"]
    assert set(diff["before"]) == {"istio-system/change", "foo/gone"}
    assert set(diff["after"]) == {"istio-system/change", "bar/new"}
    assert diff["before"]["istio-system/change"]["spec"]["resolution"] == "STATIC"
    assert diff["after"]["istio-system/change"]["spec"]["resolution"] == "DNS"
    assert set(diff["after"]["bar/new"]) == {"spec"}


def test_plan_without_prune_keeps_extra_objects():
    live = [live_from(o) for o in desired(entry(name="gone"))]
    result = se.summary(se.plan(desired(entry(name="keep")), live, FM, prune=False), want_diff=False)
    assert result["deleted"] == [] and result["created"] == ["istio-system/keep"]
    assert "diff" not in result


def test_plan_for_absent_deletes_everything_owned():
    live = [live_from(o) for o in desired(entry(name="a"), entry(name="b", namespace="x"))]
    result = se.summary(se.plan([], live, FM, prune=True), want_diff=True)
    assert result["deleted"] == ["istio-system/a", "x/b"]
    assert result["diff"]["after"] == {}


def test_second_run_is_unchanged():
    want = desired(*[entry(name="svc-%d" % i, namespace="ns%d" % (i % 3)) for i in range(50)])
    result = se.summary(se.plan(want, [live_from(o) for o in want], FM), want_diff=True)
    assert result["changed"] is False
    assert result["counts"]["unchanged"] == 50
    assert "diff" not in result


def test_diff_shows_labels_only_when_they_differ():
    before = desired(entry(labels={"app": "a"}))[0]
    result = se.summary(se.plan(desired(entry(labels={"app": "b"})), [live_from(before)], FM), want_diff=True)
    after = result["diff"]["after"]["istio-system/httpbin-bar"]
    assert after["labels"]["app"] == "b"
    assert "annotations" not in after


def test_missing_namespaces():
    want = desired(entry(name="a", namespace="bar"), entry(name="b", namespace="bar"),
                   entry(name="c", namespace="istio-system"))
    assert se.missing_namespaces(want, {"istio-system"}) == {"bar": ["bar/a", "bar/b"]}
    assert se.missing_namespaces(want, {"istio-system", "bar"}) == {}


def test_foreign_addresses():
    ours = live_from(desired(entry(name="ours"))[0])
    theirs = {"metadata": {"name": "legacy", "namespace": "default", "labels": {"app": "x"}},
              "spec": {"hosts": ["legacy.global"], "addresses": ["240.240.0.9", "240.241.0.0/24"]}}
    other_owner = {"metadata": {"name": "o", "namespace": "default", "labels": {se.OWNER_LABEL: "west"}},
                   "spec": {"hosts": ["o.global"], "addresses": ["240.240.0.10"]}}
    bare = {"metadata": {"name": "bare", "namespace": "default"}, "spec": {"hosts": ["b.global"]}}
    assert se.foreign_addresses([ours, theirs, other_owner, bare], OWNER) == {
        "240.240.0.9": "default/legacy", "240.241.0.0/24": "default/legacy", "240.240.0.10": "default/o"}
