# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pinned versions of everything the local sandbox builds from source.

The build cache is keyed by these values: change one and the next
``make sandbox-up`` builds the affected component into a new cache directory.
"""

from __future__ import annotations

# Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl), built from the k8s.io/kubernetes module.
KUBERNETES = "1.36.3"

# etcd server, built from go.etcd.io/etcd/server/v3.
ETCD = "3.6.16"

# kwok and kwokctl (sigs.k8s.io/kwok).  v0.8.0 supports Kubernetes 1.32-1.36.
KWOK = "0.8.0"

# Istio.  Istio tags are not semver, so the Go module proxy serves Istio only
# as pseudo-versions, and the proxy reachable from our machines serves a
# selection of module versions only.  Its one commit of the release-1.30 branch
# cannot be built (its istio.io/api, istio.io/client-go and go-control-plane
# pseudo-versions are refused).  The commit of the 1.31 branch below builds once
# the four dependencies it pins to refused pseudo-versions are replaced by the
# nearest versions the proxy serves (ISTIO_REPLACES; found by trying, see
# docs/sandbox.md).  We report it the way upstream's Makefile reports a branch
# build: "1.31-dev".
ISTIO_MODULE_VERSION = "v0.0.0-20260827124520-eed52ebb66ad"
ISTIO_VERSION = "1.31-dev"
ISTIO_COMMIT = "eed52ebb66ad"
ISTIO_REPLACES = (
    ("github.com/envoyproxy/go-control-plane/contrib", "v1.36.1-0.20260713214202-ca8ce173c36f",
     "v1.36.1-0.20260729145720-a2d8c7492908"),
    ("github.com/envoyproxy/go-control-plane/envoy", "v1.37.1-0.20260713214202-ca8ce173c36f",
     "v1.37.1-0.20260729145720-a2d8c7492908"),
    ("istio.io/api", "v1.31.0-rc.0.0.20260824154656-b943409680a7", "v1.31.1"),
    ("istio.io/client-go", "v1.31.0-rc.0.0.20260824155257-512e1cfc6c15", "v1.31.1"),
)

# Lowest Go toolchain all of the above accept (their go.mod "go" lines).
GO_MIN = (1, 26, 0)


COMPONENT_VERSIONS = {
    "kwok": KWOK,
    "kubernetes": KUBERNETES,
    "etcd": ETCD,
    "istio": ISTIO_COMMIT,
    # pilot-agent and our xDS stand-in (built apart, so that the istio cache stays valid), and the
    # istio-sidecar Debian package; build.py adds a digest of our own inputs to their keys
    "istio-agent": ISTIO_COMMIT,
    "istio-sidecar": ISTIO_COMMIT,
}


def cache_key() -> str:
    """Directory name of the combined bin/ view for this set of versions."""
    return "k8s-%s_etcd-%s_kwok-%s_istio-%s" % (KUBERNETES, ETCD, KWOK, ISTIO_COMMIT)


def component_key(component: str) -> str:
    """Directory name of one component's build (shared by every set that pins it)."""
    return "%s-%s" % (component, COMPONENT_VERSIONS[component])
