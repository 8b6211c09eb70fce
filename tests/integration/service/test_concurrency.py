# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Concurrent federation runs: VIPs stay unique.

Two runs of the `.global` import (``federation_runner.run_global_import``, the runner of
meshfed.istio.global_service_entries), each in a process of its own with its own connection
as two AWX jobs would be, against the same namespace of the same real API server, with
disjoint export sets (30 hosts each) and a small VIP range (240.249.0.0/26: 62 addresses,
room for both but their hash slots collide).  Both read the VIP ConfigMap before either
writes it (a barrier after the first read), so one of them always loses the race on the
ConfigMap and has to plan again against the other's VIPs."""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import threading

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client as mesh_client
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation_runner as fr
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import vip
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service
from sandbox_helpers import unique

pytestmark = pytest.mark.sandbox
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CIDR = "240.249.0.0/26"
N = 30
RUN_TIMEOUT = 240
RETRIED = "was written by another run while this run allocated VIPs"


def exports(prefix, n=N):
    return [{"cluster": "cluster2", "network": "network2", "gateway": "192.0.2.7", "name": "%s%02d" % (prefix, i),
             "namespace": "bar", "ports": [{"name": "http", "port": 8000}], "label_sets": [{}]} for i in range(n)]


def hosts_of(exported):
    return set("%s.%s.global" % (e["name"], e["namespace"]) for e in exported)


def params(ns, exported, prune):
    return {"cluster_name": "cluster1", "namespace": ns, "owner": "meshfed-global", "exports": exported,
            "vip_cidr": CIDR, "via_egress": False, "global_gateway": False, "destination_rules": True,
            "routes": {}, "prune": prune, "workers": 8, "field_manager": "meshfed.istio"}


class MeetAfterFirstRead(Service):
    """A Service whose first read of the VIP ConfigMap waits for the other run's first read:
    both plan against the same map, so their writes of it race."""

    def __init__(self, conn, barrier):
        super().__init__(conn)
        self.barrier = barrier
        self.met = False

    def get(self, api_version, kind, name, namespace=None):
        obj = super().get(api_version, kind, name, namespace)
        if kind == "ConfigMap" and name == fr.VIP_CONFIGMAP and not self.met:
            self.met = True
            try:
                self.barrier.wait(60)
            except threading.BrokenBarrierError:
                pass  # the other run failed before its read: go on alone
        return obj


def _one_run(conn, run_params, barrier, results, label):
    """One run in its own process (forked): a connection of its own, its outcome into ``results``."""
    mesh_client._CONNECTIONS.clear()  # the parent's connection stays the parent's
    try:
        result = fr.run_global_import(run_params, MeetAfterFirstRead(conn, barrier), False, False)
        results.put((label, "ok", {"vips": result["vips"], "warnings": result["warnings"]}))
    except Exception as e:  # reported to the test, which names it
        results.put((label, "error", "%s: %s" % (type(e).__name__, e)))


def run_concurrently(conn, runs):
    """Start every (label, params) run at once, each in a process; {label: (status, outcome)}."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(runs)), ctx.Queue()
    procs = [ctx.Process(target=_one_run, args=(conn, p, barrier, results, label)) for label, p in runs]
    for proc in procs:
        proc.start()
    out = {}
    try:
        for dummy in runs:
            label, status, outcome = results.get(timeout=RUN_TIMEOUT)
            out[label] = (status, outcome)
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return out


@pytest.fixture(scope="module")
def conn(sandbox, istio_crds):
    return {"kubeconfig": sandbox.kubeconfig, "context": sandbox.clusters[0]}


@pytest.fixture
def ns(conn):
    svc = Service(conn)
    name = unique("vips")
    assert svc.ensure_namespace(name) is True
    yield name
    svc.delete("v1", "Namespace", name)


def cluster_state(conn, ns):
    """(the VIP map, {host: spec.addresses} of every ServiceEntry in ``ns``), as the API server has them."""
    svc = Service(conn)
    cm = svc.get("v1", "ConfigMap", fr.VIP_CONFIGMAP, ns)
    entries = svc.list("networking.istio.io/v1", "ServiceEntry", namespace=ns, required=True)
    return dict((cm or {}).get("data") or {}), dict((e["spec"]["hosts"][0], e["spec"]["addresses"]) for e in entries)


def assert_unique(entries):
    """No address on two of the ServiceEntries ``entries`` ({host: spec.addresses})."""
    hosts_by_address = {}
    for host, addresses in sorted(entries.items()):
        for addr in addresses:
            hosts_by_address.setdefault(addr, []).append(host)
    shared = dict((addr, hosts) for addr, hosts in hosts_by_address.items() if len(hosts) > 1)
    assert not shared, "VIPs given to two hosts: %s" % shared


def both_succeeded(outcomes):
    failed = dict((label, o) for label, (status, o) in outcomes.items() if status != "ok")
    assert not failed, "runs failed: %s" % failed
    return dict((label, o) for label, (dummy, o) in outcomes.items())


def test_the_code_under_test_is_this_checkout():
    assert os.path.realpath(fr.__file__).startswith(os.path.realpath(TOP) + os.sep), fr.__file__


def test_the_two_sets_collide_when_each_is_allocated_alone():
    # what makes the race dangerous: without the other's map, each set takes addresses of the other
    alone_a = vip.allocate(sorted(hosts_of(exports("a"))), {}, CIDR)[0]
    alone_b = vip.allocate(sorted(hosts_of(exports("b"))), {}, CIDR)[0]
    assert len(set(alone_a.values()) & set(alone_b.values())) > 0


@pytest.mark.parametrize("earlier", [0, 2], ids=["map-created", "map-replaced"])
def test_concurrent_runs_keep_vips_unique(conn, ns, earlier):
    """Without pruning, both sets stay: the map ends with all 60 (62) hosts, one address each,
    and every ServiceEntry has the map's address.  map-created: both runs found no map and
    race to create it; map-replaced: an earlier run wrote one, and they race to replace it."""
    wanted = set()
    if earlier:  # the earlier run fills the /26 with the two sets: 2 + 30 + 30 = 62 addresses
        first = fr.run_global_import(params(ns, exports("c", earlier), False), Service(conn), False, False)
        wanted |= set(first["vips"])
    a, b = exports("a"), exports("b")
    outcomes = both_succeeded(run_concurrently(conn, [("a", params(ns, a, False)), ("b", params(ns, b, False))]))
    wanted |= hosts_of(a) | hosts_of(b)

    vip_map, entries = cluster_state(conn, ns)
    assert_unique(entries)
    assert set(vip_map) == wanted
    assert len(set(vip_map.values())) == len(vip_map), "a VIP given to two hosts"
    assert all(ipaddress.ip_address(v) in ipaddress.ip_network(CIDR) for v in vip_map.values())
    assert entries == dict((h, [vip_map[h]]) for h in wanted)
    for label, exported in (("a", a), ("b", b)):
        assert dict((h, outcomes[label]["vips"][h]) for h in hosts_of(exported)) == \
            dict((h, vip_map[h]) for h in hosts_of(exported))
    # the barrier made both plan against the same map: exactly one lost and planned again
    retried = [label for label, o in outcomes.items() if any(RETRIED in w for w in o["warnings"])]
    assert len(retried) == 1, outcomes


def test_concurrent_runs_with_prune_never_share_a_vip(conn, ns):
    """With pruning, each run wants its own set only: the run that wrote the map last wins it;
    a ServiceEntry of the other run that it could not see (still being written) stays, with an
    address the winner did not give to any of its hosts."""
    a, b = exports("a"), exports("b")
    outcomes = both_succeeded(run_concurrently(conn, [("a", params(ns, a, True)), ("b", params(ns, b, True))]))

    vip_map, entries = cluster_state(conn, ns)
    assert_unique(entries)
    retried = [label for label, o in outcomes.items() if any(RETRIED in w for w in o["warnings"])]
    assert len(retried) == 1, outcomes
    assert set(vip_map) == hosts_of(a if retried == ["a"] else b)
    assert len(set(vip_map.values())) == len(vip_map)
    for host, addr in vip_map.items():
        assert entries[host] == [addr]
