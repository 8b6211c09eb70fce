# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cluster whose API server died: the run stops before any change, naming the cluster in
plain words; after `sandbox up` brings the server back, one run converges and the next
changes nothing.

Policy (docs/federate_clusters.md): the playbooks set any_errors_fatal, and each role's
first tasks read every cluster (install_istio: istioctl_info; federate_clusters:
mesh_status), so a cluster that does not answer stops every host before the first change.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from playbook_runner import changed_tasks, failure_messages, playbook
from sandbox_helpers import api_server_pid, cluster_state, state_diff, wait_quiet

from tools.sandbox import cluster as sandbox_cluster

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def converged(sandbox_istiod):
    rc, data, raw = playbook("site.yml")
    assert rc == 0, raw[-4000:]
    wait_quiet({c: sandbox_istiod.api_client(c) for c in sandbox_istiod.clusters})
    return sandbox_istiod


def kill_apiserver(name):
    c = sandbox_cluster.Cluster(name)
    os.kill(api_server_pid(name), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while c.pids()["kube-apiserver"] and time.monotonic() < deadline:
        time.sleep(0.2)
    return c


@pytest.mark.parametrize("book", ["federate_clusters.yml", "install_istio.yml", "site.yml"])
def test_a_dead_api_server_is_named_and_nothing_changes(converged, book, request):
    c1 = converged.api_client("cluster1")
    before = cluster_state(c1)
    dead = kill_apiserver("cluster2")
    try:
        rc, data, raw = playbook(book)
        assert rc != 0, raw[-3000:]
        server = converged.reload().api_servers["cluster2"]  # the cluster may have been recreated since
        msgs = failure_messages(data)
        assert any(m.startswith("cluster2: API server %s does not answer: connection refused" % server)
                   or "cluster2: API server %s does not answer: connection refused" % server in m for m in msgs), msgs
        assert changed_tasks(data) == []
        assert state_diff(before, cluster_state(c1)) == []
    finally:
        converged.run("up", "--clusters", str(len(converged.clusters)))
    assert dead.api_ready()


def test_after_recovery_one_run_converges_and_the_next_changes_nothing(converged):
    kill_apiserver("cluster2")
    converged.run("up", "--clusters", str(len(converged.clusters)))
    rc, data, raw = playbook("site.yml")
    assert rc == 0, raw[-4000:]
    rc, data, raw = playbook("site.yml")
    assert rc == 0, raw[-4000:]
    assert changed_tasks(data) == []
