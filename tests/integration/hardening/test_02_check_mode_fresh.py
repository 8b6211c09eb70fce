# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`site.yml --check --diff` on fresh clusters: succeeds, changes no object, writes no CA file,
and reports what a real run would change (what it cannot dry-run, as predicted).

The sandbox clusters are recreated empty (down, up); their istiods are started again at
the end, for the tests that follow."""

from __future__ import annotations

import json
import os

import pytest
from playbook_runner import changed_tasks, playbook
from sandbox_helpers import cluster_state, state_diff

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def fresh(sandbox):
    sandbox.run("down")
    sandbox.run("up", "--clusters", str(len(sandbox.clusters)))
    yield sandbox.reload()
    sandbox.run("istiod")


def test_check_mode_on_fresh_clusters(fresh, tmp_path):
    clients = {c: fresh.api_client(c) for c in fresh.clusters}
    before = {c: cluster_state(api) for c, api in clients.items()}
    assert not any("Namespace /istio-system" in ref for state in before.values() for ref in state)
    fresh_ca = str(tmp_path / "ca")
    rc, data, raw = playbook("site.yml", "--check", "--diff", "-e", json.dumps({"install_istio_ca_dir": fresh_ca}))
    assert rc == 0, raw[-4000:]
    assert {c: state_diff(before[c], cluster_state(api)) for c, api in clients.items()} == {c: [] for c in clients}
    assert not os.path.exists(fresh_ca)
    changed = changed_tasks(data)
    for host in fresh.clusters:
        for task in ("Root CA and one intermediate per cluster",
                     "Namespace istio-system carries the network label (and, on a remote cluster, its control "
                     "plane's cluster)",
                     "Control plane and gateways",
                     "Changes check mode can only predict (the run creates what they need first)",
                     "Remote secrets - this cluster's istiod discovers the other clusters"):
            # run_once: reported on the first host
            hosts = fresh.clusters[:1] if task.startswith("Root CA") else [host]
            assert any(t.endswith("%s on %s" % (task, h)) for t in changed for h in hosts), (task, host, changed)


def test_global_import_on_clusters_without_istio(fresh, tmp_path):
    """service_entry mode where Istio is not installed yet: --check predicts the .global
    import (its API is not served yet: a warning, no failure); a real run is refused before
    any change, naming the host."""
    from kubernetes import client
    from playbook_runner import InventoryCopy, failure_messages

    ns = "meshfed-fresh-export"
    core = client.CoreV1Api(fresh.api_client("cluster2"))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="a"),
        spec=client.V1ServiceSpec(selector={"app": "a"}, ports=[client.V1ServicePort(port=80, name="http")])))
    copy = InventoryCopy(tmp_path)
    # the gateway address given: without Istio, cluster2's east-west gateway has no LoadBalancer address to export at
    inv = copy.write(lambda group: group["hosts"]["cluster2"].update(mesh_exports=[{"namespace": ns}],
                                                                     mesh_gateway_address="127.0.0.12"))
    clients = {c: fresh.api_client(c) for c in fresh.clusters}
    try:
        before = {c: cluster_state(api) for c, api in clients.items()}
        rc, data, raw = playbook("federate_clusters.yml", "--check", "--diff", "-e",
                                 "federate_clusters_mode=service_entry", inventory=inv)
        assert rc == 0, raw[-4000:]
        warnings = [w for p in data["plays"] for t in p["tasks"] for r in t["hosts"].values()
                    for w in r.get("warnings") or []]
        assert any("check mode: predicted without a dry run" in w and "the ServiceEntry API (networking.istio.io/v1) "
                   "is not served yet" in w for w in warnings), warnings
        assert any(t.endswith("ServiceEntries, VIPs, DestinationRules, VirtualServices and the *.global gateway of "
                              "this cluster on cluster1") for t in changed_tasks(data)), changed_tasks(data)
        rc, data, raw = playbook("federate_clusters.yml", "-e", "federate_clusters_mode=service_entry", inventory=inv)
        assert rc != 0, raw[-4000:]
        assert any("is not served yet" in m and "install Istio on it first" in m and m.startswith("host cluster")
                   for m in failure_messages(data)), failure_messages(data)
        assert {c: state_diff(before[c], cluster_state(api)) for c, api in clients.items()} == {c: [] for c in clients}
    finally:
        copy.remove()
        core.delete_namespace(ns)
