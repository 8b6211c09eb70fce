# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``ansible_collections.meshfed.istio`` importable (the checkout, linked by `make venv`);
``istio_crds``: Istio's CRDs served by the first sandbox cluster."""

import os
import subprocess
import sys

import pytest
import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(TOP, ".build", "collections")
if os.path.isdir(COLLECTIONS) and COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

ISTIO_CRD_MANAGER = "meshfed-test-crds"


@pytest.fixture(scope="session")
def istio_crds(sandbox):
    """Istio's CRDs (ServiceEntry, DestinationRule, ...) served by the first sandbox cluster, as
    tests/integration/targets/service_entry installs them: rendered by the sandbox's istioctl
    (minimal profile), only the CustomResourceDefinitions applied, each waited for Established.
    They stay installed (the sandbox's other tests use them too).  Returns their names."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service

    istioctl = os.path.join(TOP, ".sandbox", "bin", "istioctl")
    rendered = subprocess.run([istioctl, "manifest", "generate", "--set", "profile=minimal"],
                              capture_output=True, text=True, check=False)
    assert rendered.returncode == 0, "istioctl manifest generate failed: %s" % rendered.stderr[-2000:]
    crds = [d for d in yaml.safe_load_all(rendered.stdout) if d and d.get("kind") == "CustomResourceDefinition"]
    assert any(c["spec"]["names"]["kind"] == "ServiceEntry" for c in crds), "no ServiceEntry CRD rendered"
    svc = Service({"kubeconfig": sandbox.kubeconfig, "context": sandbox.clusters[0]})
    for crd in crds:
        svc.apply(crd, ISTIO_CRD_MANAGER, force=True)

    def not_established():
        out = []
        for crd in crds:
            live = svc.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"]) or {}
            conditions = (live.get("status") or {}).get("conditions") or []
            if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                out.append(crd["metadata"]["name"])
        return out
    svc.wait("waiting for Istio's CRDs to be Established", not_established, timeout=120)
    # the discovery cache on disk is shared by every client of this API server: refresh it once
    svc._rediscover()
    svc.resource("networking.istio.io/v1", "ServiceEntry")
    return sorted(c["metadata"]["name"] for c in crds)
