# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's istiod follows its Deployment's pod template, as its Pod would: a new template
(install_istio's restart after new CA material) restarts that cluster's istiod, and no other."""

from __future__ import annotations

import json
import os

import pytest
from kubernetes import client

from sandbox_helpers import unique, wait_for
from tools.sandbox import common, istiod, rollout

pytestmark = pytest.mark.sandbox


def test_a_new_pod_template_restarts_that_clusters_istiod_only(sandbox_istiod):
    if "cluster2" not in sandbox_istiod.clusters:
        pytest.skip("needs two clusters")
    apps = client.AppsV1Api(sandbox_istiod.api_client("cluster1"))
    try:
        apps.read_namespaced_deployment("istiod", "istio-system")
    except client.ApiException as e:
        if e.status == 404:
            pytest.skip("Istio is not installed in cluster1 (no istiod Deployment)")
        raise
    one, two = istiod.Istiod("cluster1"), istiod.Istiod("cluster2")
    before = {"cluster1": one.pid(), "cluster2": two.pid()}
    assert all(before.values()), before
    old = rollout.recorded(one.workdir)
    apps.patch_namespaced_deployment("istiod", "istio-system", {"spec": {"template": {"metadata": {"annotations": {
        "meshfed.istio/sandbox-test": unique("rollout")}}}}})
    raw = apps.read_namespaced_deployment("istiod", "istio-system", _preload_content=False)
    new = rollout.template_digest(json.loads(raw.data))  # the API's JSON, as the sandbox reads it
    assert new and new != old
    # `istiod --restart` records the template once it has seen the new istiod ready (polling every 0.5 s,
    # as this wait does): wait for the record too, not only for a ready istiod
    wait_for(lambda: one.pid() not in (0, before["cluster1"]) and one.ready() and rollout.recorded(one.workdir) == new,
             timeout=60, what="cluster1's istiod to be restarted for its new pod template")
    assert two.pid() == before["cluster2"]
    with open(os.path.join(common.sandbox_dir(), "lb", "lb-controller.log")) as f:
        log = f.read()
    assert "cluster1: Deployment istio-system/istiod has a new pod template (%s, was %s)" % (new, old) in log
