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

# Istio.  Istio tags are not semver, so the Go module proxy serves them as
# pseudo-versions only.  The proxy reachable here serves exactly one commit of
# the release-1.30 branch (its VERSION file says 1.30); we pin that commit and
# report it the way upstream's own Makefile reports a branch build: "1.30-dev".
ISTIO_MODULE_VERSION = "v0.0.0-20260826214018-9739e10eb9d7"
ISTIO_VERSION = "1.30-dev"
ISTIO_COMMIT = "9739e10eb9d7"

# Lowest Go toolchain all of the above accept (their go.mod "go" lines).
GO_MIN = (1, 26, 0)


def cache_key() -> str:
    """Directory name of the build cache for this set of versions."""
    return "k8s-%s_etcd-%s_kwok-%s_istio-%s" % (KUBERNETES, ETCD, KWOK, ISTIO_COMMIT)
