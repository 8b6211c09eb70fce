# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests of any kind kept by one owner: checks naming the manifest, the hash and subset
comparison that ignores the API server's defaults, prune, conflicts (pure)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import manifests, reconcile
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def namespaced(api_version, kind):
    if kind == "Unserved":
        return None
    return kind not in CLUSTER_SCOPED


def deployment(name="httpbin", image="docker.io/kong/httpbin:0.1.0", **meta):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict({"name": name}, **meta),
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image,
                                                           "ports": [{"containerPort": 8080}]}]}}}}


def sa(name="httpbin"):
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}


def validate(objs, owner="samples", ns="bar"):
    return manifests.validate(objs, owner, namespaced, ns)


def as_live(obj):
    """What the API server returns for an applied object: defaults added, server metadata."""
    live = copy.deepcopy(obj)
    live["metadata"].update(uid="u1", resourceVersion="7", managedFields=[{"manager": "meshfed.istio"}])
    if obj["kind"] == "Deployment":
        live["spec"]["strategy"] = {"type": "RollingUpdate"}
        live["spec"]["revisionHistoryLimit"] = 10
        c = live["spec"]["template"]["spec"]["containers"][0]
        c.update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
        c["ports"][0]["protocol"] = "TCP"
        live["status"] = {"replicas": 1}
    if obj["kind"] == "ServiceAccount":
        live["secrets"] = []
    return live


def test_validate_adds_owner_namespace_and_hash():
    [d] = validate([deployment()])
    meta = d["metadata"]
    assert meta["namespace"] == "bar"
    assert meta["labels"] == {"meshfed.istio/owner": "samples", "app.kubernetes.io/managed-by": "meshfed.istio"}
    assert len(meta["annotations"][manifests.APPLIED_ANNOTATION]) == 16
    assert manifests.ref(d) == "Deployment bar/httpbin"


def test_cluster_scoped_objects_get_no_namespace_and_refuse_one():
    [ns] = validate([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bar"}}])
    assert "namespace" not in ns["metadata"] and manifests.ref(ns) == "Namespace bar"
    with pytest.raises(MeshError, match=r"manifests\[0\] \(ClusterRole r\): a ClusterRole is cluster-scoped"):
        validate([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "r", "namespace": "x"}}])


def test_rbac_names_with_colons_are_accepted():
    [r] = validate([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": "system:kiali-viewer"}, "rules": []}])
    assert r["metadata"]["name"] == "system:kiali-viewer"


def test_the_hash_follows_the_content_not_the_order_of_keys():
    a = validate([deployment()])[0]
    b = deployment()
    b["spec"] = dict(reversed(list(b["spec"].items())))
    assert validate([b])[0]["metadata"]["annotations"] == a["metadata"]["annotations"]
    c = validate([deployment(image="registry.example.com/httpbin:0.1.0")])[0]
    assert c["metadata"]["annotations"] != a["metadata"]["annotations"]


@pytest.mark.parametrize("obj, msg", [
    ("x", r"manifests\[0\]: must be a manifest \(a mapping\), got str"),
    ({"kind": "Service", "metadata": {"name": "a"}}, r"manifests\[0\]: apiVersion is missing"),
    ({"apiVersion": "v1", "kind": "service", "metadata": {"name": "a"}}, r"kind 'service' is not a Kubernetes kind"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "A_b"}}, r"\(Service A_b\): metadata.name 'A_b'"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "Bar"}},
     r"metadata.namespace 'Bar' is not a DNS-1123 label"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "resourceVersion": "1"}},
     r"metadata.resourceVersion is the API server's"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "labels": {"version": 1}}},
     r"metadata.labels must map strings to strings"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "labels": {"meshfed.istio/owner": "x"}}},
     r"labels.meshfed.istio/owner is 'x' but owner is 'samples'"),
])
def test_bad_manifests_are_refused_naming_the_index(obj, msg):
    with pytest.raises(MeshError, match=msg) as e:
        validate([obj])
    assert e.value.field == "manifests"


def test_a_namespaced_object_without_namespace_needs_the_default():
    with pytest.raises(MeshError, match=r"metadata.namespace is missing and no namespace was given"):
        manifests.validate([sa()], "samples", namespaced, None)


def test_an_unserved_kind_keeps_its_namespace():
    [o] = validate([{"apiVersion": "example.com/v1", "kind": "Unserved", "metadata": {"name": "a"}}])
    assert o["metadata"]["namespace"] == "bar"


def test_duplicates_are_refused():
    with pytest.raises(MeshError, match=r"manifests\[1\].*ServiceAccount bar/httpbin is given twice \(also manifests\[0\]\)"):
        validate([sa(), sa()])


def test_owner_must_be_a_label_value():
    with pytest.raises(MeshError, match="owner"):
        validate([sa()], owner="not a label")


def test_defaults_of_the_api_server_are_no_change():
    desired = validate([deployment(), sa()])
    todo = manifests.plan(desired, [as_live(o) for o in desired])
    assert todo["unchanged"] == ["Deployment bar/httpbin", "ServiceAccount bar/httpbin"]
    assert not todo["create"] and not todo["update"] and not todo["delete"]


def test_a_field_changed_by_hand_is_put_back():
    desired = validate([deployment()])
    live = as_live(desired[0])
    live["spec"]["replicas"] = 3
    todo = manifests.plan(desired, [live])
    assert [manifests.ref(o) for o in todo["update"]] == ["Deployment bar/httpbin"]
    assert todo["fields"] == {"Deployment bar/httpbin": ["spec"]}


def test_a_dropped_field_is_applied_again_through_the_hash():
    old = validate([deployment()])[0]
    live = as_live(old)
    new = deployment()
    del new["spec"]["replicas"]
    desired = validate([new])
    todo = manifests.plan(desired, [live])
    assert todo["fields"] == {"Deployment bar/httpbin": ["metadata.annotations.meshfed.istio/applied"]}


def test_keyed_lists_match_by_key_and_may_hold_another_managers_elements():
    desired = validate([deployment()])
    live = as_live(desired[0])
    pod = live["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "kiali-remote-cluster-secret-cluster2", "secret": {"secretName": "x"}}]
    pod["containers"].insert(0, {"name": "another-managers-sidecar"})
    assert manifests.differs(desired[0], live) == []
    pod["containers"] = [c for c in pod["containers"] if c["name"] != "httpbin"]
    assert manifests.differs(desired[0], live) == ["spec"]


def test_unkeyed_lists_compare_by_position_and_length():
    want = {"args": ["a", "b"], "hosts": [{"x": 1}]}
    assert manifests.is_subset(want, {"args": ["a", "b"], "hosts": [{"x": 1, "y": 2}]})
    assert not manifests.is_subset(want, {"args": ["a", "b", "c"], "hosts": [{"x": 1}]})
    assert not manifests.is_subset(want, {"args": ["b", "a"], "hosts": [{"x": 1}]})


def test_create_and_prune():
    desired = validate([sa("a")])
    stale = as_live(validate([sa("b")])[0])
    todo = manifests.plan(desired, [stale])
    assert [manifests.ref(o) for o in todo["create"]] == ["ServiceAccount bar/a"]
    assert [manifests.ref(o) for o in todo["delete"]] == ["ServiceAccount bar/b"]
    assert not manifests.plan(desired, [stale], prune=False)["delete"]


def test_secret_values_never_reach_the_diff():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "c2VjcmV0"}}
    todo = manifests.plan(validate([secret]), [])
    assert todo["diff"]["after"]["Secret bar/s"]["data"] == {"token": "<hidden>"}
    assert "c2VjcmV0" not in repr(manifests.summary(todo, True))


def test_summary_counts_and_diff_only_when_asked():
    todo = manifests.plan(validate([sa("a")]), [])
    res = manifests.summary(todo, False)
    assert res["changed"] and res["created"] == ["ServiceAccount bar/a"] and "diff" not in res
    assert res["counts"] == {"created": 1, "updated": 0, "deleted": 0, "unchanged": 0}


def test_unowned_conflicts_name_the_label():
    [obj] = validate([sa("a")])
    live = {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "a", "namespace": "bar", "labels": {"meshfed.istio/owner": "other"}}}
    msgs = reconcile.unowned_conflicts([obj], [live], "samples", ref=manifests.ref)
    assert msgs == ["ServiceAccount bar/a already exists and is not managed by owner samples (its meshfed.istio/owner "
                    "label is 'other'); delete it, label it meshfed.istio/owner=samples, or choose another name"]
    assert reconcile.unowned_conflicts([obj], [], "samples", ref=manifests.ref) == []
    ns = validate([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bar"}}])
    assert reconcile.unowned_conflicts(ns, [{"kind": "Namespace", "metadata": {"name": "bar"}}], "samples",
                                       ref=manifests.ref)[0].startswith("Namespace bar already exists")


def test_split_type_and_delete_order():
    assert manifests.split_type("apps/v1/Deployment") == ("apps/v1", "Deployment")
    assert manifests.split_type("v1/Service") == ("v1", "Service")
    for bad in ("Deployment", "apps/v1/deployment", 3):
        with pytest.raises(MeshError, match="prune_kinds"):
            manifests.split_type(bad)
    objs = validate([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bar"}},
                     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}},
                     sa("a")])
    assert [o["kind"] for o in manifests.delete_order(objs)] == ["ServiceAccount", "ClusterRole", "Namespace"]


def test_a_field_the_api_server_leaves_out_matches_its_empty_value():
    want = {"strategy": {"rollingUpdate": None}, "probe": {"initialDelaySeconds": 0, "path": "/"}, "subPath": ""}
    assert manifests.is_subset(want, {"strategy": {"type": "RollingUpdate"}, "probe": {"path": "/"}})
    assert not manifests.is_subset({"replicas": 0}, {"replicas": 1})
    assert not manifests.is_subset({"probe": {"initialDelaySeconds": 5}}, {"probe": {}})


def test_volume_mounts_of_one_volume_match_by_mount_path():
    want = [{"name": "config", "mountPath": "/etc/a", "subPath": "a"}, {"name": "config", "mountPath": "/etc/b", "subPath": "b"}]
    have = list(reversed(want))
    assert manifests.is_subset(want, have)
    assert not manifests.is_subset(want, [dict(want[0], subPath="b"), want[1]])
