# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared service layer (module_utils/_mesh/service.py) against the sandbox's real API servers:
404 handling, conflicts on apply, dry runs that write nothing, timeouts and unreachable
servers named in the message."""

from __future__ import annotations

import base64
import json
import time

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service
from sandbox_helpers import unique

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def svc(sandbox):
    return Service({"kubeconfig": sandbox.kubeconfig, "context": sandbox.clusters[0]})


@pytest.fixture(scope="module")
def ns(svc):
    name = unique("svc")
    assert svc.ensure_namespace(name) is True
    yield name
    svc.delete("v1", "Namespace", name)


def cm(ns, name, data, labels=None):
    meta = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def test_named_after_its_context(sandbox, svc):
    assert svc.name == sandbox.clusters[0]
    assert svc.version().startswith("v1.")


def test_get_and_delete_of_what_is_not_there(svc, ns):
    assert svc.get("v1", "ConfigMap", "nothing-here", ns) is None
    assert svc.delete("v1", "ConfigMap", "nothing-here", ns) is False
    # a kind the cluster does not serve has no objects, unless one is required
    assert svc.get("example.meshfed.io/v1", "Nothing", "x", ns) is None
    assert svc.list("example.meshfed.io/v1", "Nothing", namespace=ns) == []
    with pytest.raises(ClusterError, match=r"^%s: the Nothing API \(example.meshfed.io/v1\) is not served "
                                           r"by this cluster \(is its CRD installed\?\)" % svc.name):
        svc.list("example.meshfed.io/v1", "Nothing", namespace=ns, required=True)


def test_create_twice_names_cluster_object_and_reason(svc, ns):
    obj = cm(ns, "twice", {"a": "1"})
    assert svc.create(obj)["metadata"]["name"] == "twice"
    with pytest.raises(ClusterError) as e:
        svc.create(obj)
    assert e.value.status == 409
    assert e.value.msg.startswith("%s: creating ConfigMap %s/twice: " % (svc.name, ns))
    assert "already exists" in e.value.msg and e.value.msg.endswith("(HTTP 409)")
    assert svc.delete("v1", "ConfigMap", "twice", ns) is True
    assert svc.delete("v1", "ConfigMap", "twice", ns) is False


def test_dry_run_apply_writes_nothing(svc, ns):
    obj = cm(ns, "dry", {"k": "v"})
    out = svc.apply(obj, "meshfed-test", dry_run=True)
    assert out["data"] == {"k": "v"}  # what the server would store
    assert svc.get("v1", "ConfigMap", "dry", ns) is None
    svc.apply(obj, "meshfed-test")
    assert svc.get("v1", "ConfigMap", "dry", ns)["data"] == {"k": "v"}


def test_apply_conflict_is_reported_not_forced(svc, ns):
    svc.apply(cm(ns, "contested", {"k": "mine"}), "manager-a")
    with pytest.raises(ClusterError) as e:
        svc.apply(cm(ns, "contested", {"k": "theirs"}), "manager-b")
    assert e.value.status == 409
    assert "apply of ConfigMap %s/contested" % ns in e.value.msg and "conflict" in e.value.msg.lower()
    assert svc.get("v1", "ConfigMap", "contested", ns)["data"] == {"k": "mine"}
    svc.apply(cm(ns, "contested", {"k": "theirs"}), "manager-b", force=True)
    assert svc.get("v1", "ConfigMap", "contested", ns)["data"] == {"k": "theirs"}


def test_replace_at_a_stale_resource_version_fails(svc, ns):
    svc.create_or_replace(cm(ns, "rv", {"n": "1"}), None)
    first = svc.get("v1", "ConfigMap", "rv", ns)
    assert svc.create_or_replace(cm(ns, "rv", {"n": "2"}), first) == "replaced"
    with pytest.raises(ClusterError) as e:  # a second writer that read the first version
        svc.create_or_replace(cm(ns, "rv", {"n": "3"}), first)
    assert e.value.status == 409 and "replacing ConfigMap %s/rv" % ns in e.value.msg
    assert svc.get("v1", "ConfigMap", "rv", ns)["data"] == {"n": "2"}


def test_list_by_label_one_call(svc, ns):
    svc.create(cm(ns, "l1", {}, labels={"pick": "yes"}))
    svc.create(cm(ns, "l2", {}, labels={"pick": "no"}))
    items = svc.list("v1", "ConfigMap", namespace=ns, label_selector="pick=yes")
    assert [(i["kind"], i["metadata"]["name"]) for i in items] == [("ConfigMap", "l1")]


def test_ensure_namespace_check_mode_creates_nothing(svc):
    name = unique("svcns")
    assert svc.ensure_namespace(name, check_mode=True) is True
    assert svc.namespace_exists(name) is False
    assert svc.ensure_namespace(name) is True
    assert svc.ensure_namespace(name) is False
    svc.delete("v1", "Namespace", name)


def test_wait_timeout_names_what_is_not_ready(svc, ns):
    start = time.monotonic()
    with pytest.raises(ClusterError) as e:
        svc.wait("waiting for ConfigMaps", lambda: ["ConfigMap %s/never" % ns], timeout=1, interval=0.2)
    assert time.monotonic() - start < 5
    assert e.value.msg == "%s: waiting for ConfigMaps: still not ready after 1s: ConfigMap %s/never" % (svc.name, ns)
    svc.create(cm(ns, "soon", {}))
    svc.wait("waiting", lambda: [] if svc.get("v1", "ConfigMap", "soon", ns) else ["soon"], timeout=5)


def test_token_request_has_the_audience(svc, ns):
    svc.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": ns}})
    token = svc.create_token(ns, "sa", audiences=["istio-ca"], expiration=600)
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == ["istio-ca"]
    assert 0 < claims["exp"] - claims["iat"] <= 600


def test_unreachable_server_is_named_in_plain_words():
    dead = Service({"host": "https://127.0.0.1:1", "validate_certs": False}, name="deadcluster")
    with pytest.raises(ClusterError) as e:
        dead.version()
    assert e.value.msg.startswith("deadcluster: API server https://127.0.0.1:1 does not answer: connection refused")
    assert e.value.status is None


def test_probe_refuses_a_server_that_is_not_this_cluster(sandbox, svc):
    svc.probe(sandbox.api_servers[sandbox.clusters[0]])
    with pytest.raises(ClusterError, match=r"^https://127.0.0.1:1 does not answer as the API server of %s from "
                                           r"the controller: connection refused" % svc.name):
        svc.probe("https://127.0.0.1:1", timeout=3)
    if len(sandbox.clusters) > 1:  # another cluster's API server: its certificate is not signed by this CA
        with pytest.raises(ClusterError, match="does not answer as the API server"):
            svc.probe(sandbox.api_servers[sandbox.clusters[1]], timeout=5)


def test_a_kind_removed_after_discovery_lists_as_empty(sandbox, ns):
    """The discovery cache is shared by every run: a CRD deleted since it was written makes a
    LIST answer 404, which means the kind is not served any more, not an error."""
    group = unique("crd").replace("-", "") + ".meshfed.io"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets." + group},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    admin = Service({"kubeconfig": sandbox.kubeconfig, "context": sandbox.clusters[0]})
    admin.create(crd)
    try:
        admin.wait("CRD served", lambda: [] if _served(sandbox, group) else ["widgets." + group], timeout=30)
        first = Service({"kubeconfig": sandbox.kubeconfig, "context": sandbox.clusters[0]})
        assert first.list(group + "/v1", "Widget", namespace=ns) == []  # resolved and cached
    finally:
        admin.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets." + group)
    admin.wait("CRD gone", lambda: ["widgets." + group] if _served(sandbox, group) else [], timeout=30)
    # a run whose discovery still has the kind
    assert first.list(group + "/v1", "Widget", namespace=ns) == []
    with pytest.raises(ClusterError, match="the Widget API .* is not served"):
        first.list(group + "/v1", "Widget", namespace=ns, required=True)


def _served(sandbox, group):
    from kubernetes import client as k8s
    try:
        k8s.CustomObjectsApi(sandbox.api_client(sandbox.clusters[0])).list_namespaced_custom_object(
            group, "v1", "default", "widgets")
        return True
    except k8s.exceptions.ApiException as e:
        if e.status == 404:
            return False
        raise
