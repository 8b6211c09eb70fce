# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Session fixtures for integration tests against the local sandbox (docs/sandbox.md).

``sandbox``        brings the sandbox clusters up (``python3 -m tools.sandbox up``) or
                   reuses running ones, and describes them.
``sandbox_istiod`` additionally starts (or reuses) one out-of-cluster istiod per cluster.

The clusters are left running after the session (the next session reuses them in a
second); ``make sandbox-down`` stops them.  Set SANDBOX_CLUSTERS to ask for more clusters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # for `tools.sandbox` (state file layout, port plan, pinned versions)
HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (HERE, os.path.join(HERE, "sandbox")):  # for playbook_runner and sandbox_helpers
    if _path not in sys.path:
        sys.path.insert(0, _path)
# the collection's pure helpers (`make venv` links this checkout there), e.g. to read a cluster.env
_COLLECTIONS = os.path.join(REPO_ROOT, ".build", "collections")
if os.path.isdir(_COLLECTIONS) and _COLLECTIONS not in sys.path:
    sys.path.append(_COLLECTIONS)


@dataclasses.dataclass
class Sandbox:
    kubeconfig: str
    clusters: list  # cluster names, e.g. ["cluster1", "cluster2"] (= kubeconfig context names)
    api_servers: dict  # cluster name -> https://127.0.0.1:<port>
    istiod_ports: dict  # cluster name -> {"grpc": 15010, "monitoring": 15014, ...} (planned ports)
    state_file: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `python3 -m tools.sandbox <args>` from the checkout."""
        return _sandbox_cmd(*args, check=check)

    def api_client(self, cluster: str):
        """kubernetes.client.ApiClient for one cluster (admin credentials)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig, context=cluster)

    def reload(self) -> "Sandbox":
        return _load(self.state_file)


def _sandbox_cmd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # the sandbox CLI is stdlib-only; run it with this interpreter so no other Python is needed
    res = subprocess.run([sys.executable, "-m", "tools.sandbox", *args], cwd=REPO_ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    sys.stdout.write(res.stdout)
    if check and res.returncode != 0:
        pytest.fail("`python3 -m tools.sandbox %s` failed (exit %d):\n%s"
                    % (" ".join(args), res.returncode, res.stdout[-4000:]), pytrace=False)
    return res


def _load(state_file: str) -> Sandbox:
    with open(state_file) as f:
        st = json.load(f)
    from tools.sandbox import common, istiod

    names = sorted(st["clusters"], key=common.cluster_index)
    return Sandbox(
        kubeconfig=st["kubeconfig"],
        clusters=names,
        api_servers={n: st["clusters"][n]["api_server"] for n in names},
        istiod_ports={n: (st["istiods"].get(n) or {}).get("ports") or istiod.ports_for(common.cluster_index(n))
                      for n in names},
        state_file=state_file,
    )


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    from tools.sandbox import common

    n = os.environ.get("SANDBOX_CLUSTERS", "2")
    _sandbox_cmd("up", "--clusters", n)
    return _load(common.state_path())


@pytest.fixture(scope="session")
def sandbox_istiod(sandbox: Sandbox) -> Sandbox:
    sandbox.run("istiod")
    return sandbox.reload()
