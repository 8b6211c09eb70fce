# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two runs of the .global import at once: the VIP ConfigMap is written at the resourceVersion
read, before any other object, and the run that loses plans again from a fresh read.

The service here is a fake (an in-memory API with resourceVersions and 409s, like the real
one); tests/integration/service/test_concurrency.py does the same against a real API server."""

from __future__ import annotations

import copy
import ipaddress

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation_runner as fr
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile, reconcile_runner, vip
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError

NS = "istio-system"
CIDR = "240.1.0.0/27"  # 30 usable addresses: two sets of 10 hosts collide on their hash slots


class Store(object):
    """The API server: objects by (kind, namespace, name), a resourceVersion counter, and
    every successful write in order as (run, verb, kind, name)."""

    def __init__(self):
        self.objects = {}
        self.rv = 0
        self.writes = []

    def put(self, run, verb, obj):
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace"), meta["name"])] = obj
        self.writes.append((run, verb, obj["kind"], meta["name"]))
        return obj


class FakeService(object):
    """The verbs of service.Service that run_global_import uses, on a Store.  ``after_get``:
    called with (kind, name) after each get, for a test to play another run in between."""

    def __init__(self, store, name="cluster1", after_get=None, fail_apply=None):
        self.store = store
        self.name = name
        self.after_get = after_get
        self.fail_apply = fail_apply

    def resource(self, api_version, kind, required=True):
        return kind

    def namespace_exists(self, ns):
        return True

    def get(self, api_version, kind, name, namespace=None):
        obj = copy.deepcopy(self.store.objects.get((kind, namespace, name)))
        if self.after_get:
            self.after_get(kind, name)
        return obj

    def list(self, api_version, kind, namespace=None, label_selector=None, required=False):
        return [copy.deepcopy(o) for (k, ns, n), o in sorted(self.store.objects.items())
                if k == kind and namespace in (None, ns)]

    def _fail(self, what, reason, status):
        return ClusterError("%s: %s: %s (HTTP %d)" % (self.name, what, reason, status), status=status)

    def create_or_replace(self, obj, existing):
        key = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        live = self.store.objects.get(key)
        ref = "%s %s/%s" % key
        if existing is None:
            if live is not None:
                raise self._fail("creating " + ref, "already exists", 409)
            self.store.put(self.name, "create", obj)
            return "created"
        if live is None or live["metadata"]["resourceVersion"] != existing["metadata"]["resourceVersion"]:
            raise self._fail("replacing " + ref, "the object has been modified", 409)
        self.store.put(self.name, "replace", obj)
        return "replaced"

    def apply(self, obj, field_manager, dry_run=False, force=False):
        if self.fail_apply:
            raise self.fail_apply
        return self.store.put(self.name, "apply", obj)

    def delete(self, api_version, kind, name, namespace=None):
        self.store.writes.append((self.name, "delete", kind, name))
        return self.store.objects.pop((kind, namespace, name), None) is not None


def exports(prefix, n):
    return [{"cluster": "cluster2", "network": "network2", "gateway": "192.0.2.7", "name": "%s%d" % (prefix, i),
             "namespace": "bar", "ports": [{"name": "http", "port": 8000}], "label_sets": [{}]} for i in range(n)]


def params(exported, prune=False, **kw):
    out = {"cluster_name": "cluster1", "namespace": NS, "owner": "meshfed-global", "exports": exported,
           "vip_cidr": CIDR, "via_egress": False, "global_gateway": False, "destination_rules": True,
           "routes": {}, "prune": prune, "workers": 2, "field_manager": "meshfed.istio"}
    out.update(kw)
    return out


def hosts_of(exported):
    return set("%s.%s.global" % (e["name"], e["namespace"]) for e in exported)


@pytest.fixture
def pauses(monkeypatch):
    """The pauses between attempts, recorded instead of slept."""
    seen = []
    monkeypatch.setattr(fr, "backoff", seen.append)
    return seen


def vip_map(store):
    cm = store.objects.get(("ConfigMap", NS, fr.VIP_CONFIGMAP))
    return dict((cm or {}).get("data") or {})


def entries_addresses(store):
    return dict((o["spec"]["hosts"][0], o["spec"]["addresses"]) for (k, ns, n), o in store.objects.items()
                if k == "ServiceEntry")


def other_run_once(store, exported, **kw):
    """An after_get hook: the first time the VIP map is read, another run does all its work."""
    state = {"done": False}

    def hook(kind, name):
        if kind == "ConfigMap" and name == fr.VIP_CONFIGMAP and not state["done"]:
            state["done"] = True
            state["result"] = fr.run_global_import(params(exported, **kw), FakeService(store, "run-b"), False, False)
    return hook, state


# --- the pure parts -----------------------------------------------------------

def test_retry_on_conflict_plans_again_until_a_write_wins():
    calls, pauses = [], []

    def attempt():
        calls.append(1)
        if len(calls) < 3:
            raise fr.VipMapConflict("lost %d" % len(calls), status=409)
        return "ok"
    result, conflicts = fr.retry_on_conflict(attempt, 5, pauses.append)
    assert result == "ok" and len(calls) == 3
    assert [str(c) for c in conflicts] == ["lost 1", "lost 2"]
    assert pauses == [1, 2]


def test_retry_on_conflict_gives_up_after_its_attempts_with_the_last_conflict():
    pauses = []

    def attempt():
        raise fr.VipMapConflict("lost again", status=409)
    with pytest.raises(fr.VipMapConflict, match="lost again"):
        fr.retry_on_conflict(attempt, 4, pauses.append)
    assert pauses == [1, 2, 3]


def test_retry_on_conflict_does_not_retry_other_errors():
    calls = []

    def attempt():
        calls.append(1)
        raise ClusterError("cluster1: creating ServiceEntry x/y: already exists (HTTP 409)", status=409)
    with pytest.raises(ClusterError, match="ServiceEntry"):
        fr.retry_on_conflict(attempt, 5, lambda n: pytest.fail("paused"))
    assert calls == [1]


def test_backoff_grows_with_the_attempt_and_is_jittered():
    slept = []
    for n, r in ((1, 0.0), (1, 0.999), (3, 0.5)):
        fr.backoff(n, sleep=slept.append, rand=lambda r=r: r)
    assert slept[0] == pytest.approx(0.5 * fr.VIP_PAUSE)
    assert slept[1] == pytest.approx(1.499 * fr.VIP_PAUSE)
    assert slept[2] == pytest.approx(3 * fr.VIP_PAUSE)


def test_write_kind_reports_the_status_all_failed_writes_share():
    store = Store()
    store.put("x", "create", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m", "namespace": NS},
                              "data": {}})
    plan = reconcile_runner.prepare_kind(FakeService(store), {
        "owner": "o", "namespaces": [NS], "service_entries": [{"name": "m", "namespace": NS, "data": {"a": "1"}}]},
        False, kind="ConfigMap", field="f", all_items=[])
    # planned as a create (the live one was not listed): the API answers 409 AlreadyExists
    with pytest.raises(ClusterError) as e:
        reconcile_runner.write_kind(FakeService(store), plan, False)
    assert e.value.status == 409
    assert "1 of 1 ConfigMap writes failed: cluster1: creating ConfigMap istio-system/m: already exists" in str(e.value)
    assert reconcile_runner.common_status([ClusterError("a", status=409), ClusterError("b", status=403)]) is None
    assert reconcile_runner.common_status([ClusterError("a", status=409), ClusterError("b", status=409)]) == 409


# --- run_global_import with another run in between ---------------------------

A, B = exports("a", 10), exports("b", 10)


def test_the_sets_collide_when_allocated_alone():
    # what makes the following tests meaningful: each set on its own takes addresses of the other
    alone_a = vip.allocate(sorted(hosts_of(A)), {}, CIDR)[0]
    alone_b = vip.allocate(sorted(hosts_of(B)), {}, CIDR)[0]
    assert set(alone_a.values()) & set(alone_b.values())


@pytest.mark.parametrize("existing", [False, True], ids=["map-created", "map-replaced"])
def test_a_run_that_lost_the_vip_map_writes_nothing_then_allocates_against_the_winner(pauses, existing):
    store = Store()
    if existing:  # a map from an earlier run: the race is on its replace, else on its create
        fr.run_global_import(params(exports("c", 2)), FakeService(store, "earlier"), False, False)
    hook, other = other_run_once(store, B)
    result = fr.run_global_import(params(A), FakeService(store, "run-a", after_get=hook), False, False)

    # run-a read the map, run-b then did everything, run-a's write of the map got a 409:
    # its first attempt wrote nothing, the second read again and wrote the map first
    writes = [w for w in store.writes if w[0] != "earlier"]
    runs = [w[0] for w in writes]
    assert runs == sorted(runs, key=lambda r: r != "run-b")  # every write of run-b, then run-a's
    first_a = [w for w in writes if w[0] == "run-a"][0]
    assert first_a[1:] == ("replace", "ConfigMap", fr.VIP_CONFIGMAP)
    assert len(pauses) == 1
    assert any("written by another run while this run allocated VIPs" in w and "(2 attempts)" in w
               for w in result["warnings"])
    assert other["result"]["warnings"] == []

    # the map holds both sets (prune=false keeps the other run's hosts), no address twice,
    # and every ServiceEntry has the map's address
    final = vip_map(store)
    wanted = hosts_of(A) | hosts_of(B) | (hosts_of(exports("c", 2)) if existing else set())
    assert set(final) == wanted
    assert len(set(final.values())) == len(final)
    assert entries_addresses(store) == dict((h, [a]) for h, a in final.items())
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(CIDR) for a in final.values())
    # the winner's VIPs were kept, the loser's allocated around them
    for h in hosts_of(B):
        assert final[h] == other["result"]["vips"][h]


def test_with_prune_the_loser_replaces_the_set_without_reusing_the_winners_addresses(pauses):
    store = Store()
    hook, other = other_run_once(store, B, prune=True)
    result = fr.run_global_import(params(A, prune=True), FakeService(store, "run-a", after_get=hook), False, False)
    final = vip_map(store)
    assert set(final) == hosts_of(A)  # the last run's set wins
    assert result["released"] == sorted(hosts_of(B))
    # a ServiceEntry of run-b that run-a could not see yet (still being written) keeps its
    # address: run-a did not give those addresses to its own hosts
    assert not set(final.values()) & set(other["result"]["vips"].values())


def test_check_mode_neither_writes_nor_retries(pauses):
    store = Store()
    hook, other = other_run_once(store, B)
    before = len(store.writes)
    result = fr.run_global_import(params(A), FakeService(store, "run-a", after_get=hook), True, False)
    assert [w for w in store.writes[before:] if w[0] == "run-a"] == []
    assert pauses == []
    assert result["changed"] is True


def test_a_map_that_keeps_changing_fails_naming_cluster_and_configmap_and_writes_nothing(pauses):
    store = Store()

    def always(kind, name):
        if kind == "ConfigMap" and name == fr.VIP_CONFIGMAP:
            store.put("someone", "create", {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": name, "namespace": NS,
                                                         "labels": {reconcile.OWNER_LABEL: "meshfed-global"}},
                                            "data": {}})
    with pytest.raises(ClusterError) as e:
        fr.run_global_import(params(A), FakeService(store, "cluster1", after_get=always), False, False)
    msg = str(e.value)
    assert msg.startswith("cluster1: ConfigMap istio-system/meshfed-global-vips (the VIP map) was written by "
                          "another run before this one could write it, at each of %d attempts; nothing was written"
                          % fr.VIP_ATTEMPTS)
    assert "(HTTP 409)" in msg and e.value.status == 409 and e.value.field == "vip_cidr"
    assert len(pauses) == fr.VIP_ATTEMPTS - 1
    assert [w for w in store.writes if w[0] == "cluster1"] == []


def test_other_write_failures_are_not_retried(pauses):
    store = Store()
    failing = FakeService(store, "cluster1", fail_apply=ClusterError("cluster1: apply: conflict (HTTP 409)",
                                                                     status=409))
    with pytest.raises(ClusterError, match="ServiceEntry writes failed") as e:
        fr.run_global_import(params(A), failing, False, False)
    assert not isinstance(e.value, fr.VipMapConflict)
    assert pauses == []
    # the map was written first, before the failed ServiceEntries
    assert store.writes[0][1:] == ("create", "ConfigMap", fr.VIP_CONFIGMAP)
