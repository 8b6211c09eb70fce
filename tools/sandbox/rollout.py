# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's istiod follows its Deployment's pod template, as an istiod Pod would.

On a real cluster, a change of Deployment istio-system/istiod's pod template (its creation by
`istioctl install`, or install_istio's restart after new CA material) starts a new istiod Pod,
which reads the `cacerts` Secret then.  The sandbox's istiod runs outside the cluster: its start
records the template it stands for (a digest, in its working directory), and a watcher in the
sandbox's controller process restarts it when the Deployment's template differs.  Only an
istiod that runs is restarted; a deleted Deployment stops nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

from . import common

POLL_SECONDS = 2.0
DEPLOYMENT = "/apis/apps/v1/namespaces/istio-system/deployments/istiod"


def template_digest(deployment) -> str:
    """A digest of a Deployment's pod template; '' for no Deployment."""
    if not deployment:
        return ""
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def read_deployment(api: common.Api):
    """The cluster's istiod Deployment now (None when absent); raises on API errors."""
    status, payload = api.get(DEPLOYMENT, timeout=10)
    if status == 404:
        return None
    if status != 200:
        raise common.SandboxError("reading Deployment istio-system/istiod: HTTP %d %s" % (status, common.short(payload)))
    return payload


def read_digest(api: common.Api) -> str:
    """The digest of the cluster's istiod Deployment now ('' when absent); raises on API errors."""
    return template_digest(read_deployment(api))


# what the sandbox sets itself, or what only makes sense inside the Pod (its identity, its mounted files)
POD_ONLY_ENV = frozenset(("POD_NAME", "POD_NAMESPACE", "SERVICE_ACCOUNT", "KUBECONFIG", "CLUSTER_ID", "REVISION",
                          "ROOT_CA_DIR", "USE_REMOTE_CERTS", "ISTIOD_CUSTOM_HOST", "GOMAXPROCS", "JWKS_EXTRA_CACERTS"))
CONTAINER = "discovery"


def deployment_env(deployment) -> tuple:
    """(env, skipped) for the sandbox's istiod from the Deployment's ``discovery`` container, as its Pod would
    get it: every variable with a literal value (what `istioctl install` writes from values.pilot.env and the
    chart: ISTIO_MULTIROOT_MESH, PILOT_*, EXTERNAL_ISTIOD, ...), except POD_ONLY_ENV and ``valueFrom``
    entries (the Pod's own fields and resources), which are listed in `skipped`.  A later entry of the same
    name wins, as in Kubernetes."""
    env, skipped = {}, []
    if not deployment:
        return env, skipped
    spec = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = spec.get("containers") or []
    container = next((c for c in containers if c.get("name") == CONTAINER), containers[0] if containers else {})
    for entry in container.get("env") or []:
        name = entry.get("name") or ""
        if not name or name in POD_ONLY_ENV or "valueFrom" in entry:
            if name and name not in skipped:
                skipped.append(name)
            continue
        env[name] = str(entry.get("value") if entry.get("value") is not None else "")
    return env, skipped


def digest_path(workdir: str) -> str:
    return os.path.join(workdir, "template.sha256")


def record(workdir: str, digest: str) -> None:
    common.write_file_atomic(digest_path(workdir), digest + "\n", 0o644)


def recorded(workdir: str):
    """The digest the running istiod stands for; None when never recorded."""
    try:
        with open(digest_path(workdir)) as f:
            return f.read().strip()
    except OSError:
        return None


def needs_restart(recorded_digest, current: str) -> bool:
    """A new pod template (created or changed) means a new istiod; none (deleted) changes nothing."""
    return bool(current) and recorded_digest is not None and recorded_digest != current


class IstiodFollower(threading.Thread):
    """Polls something of one cluster every ``poll`` seconds while that cluster's sandbox istiod runs
    (``follow(istiod, api)``), and says each new failure once (``what`` names what it follows)."""

    poll = POLL_SECONDS
    what = "the istiod Deployment"
    prefix = "rollout"

    def __init__(self, name: str, say):
        super().__init__(name="%s-%s" % (self.prefix, name), daemon=True)
        self.name_ = name
        self.say = say
        self.halt = threading.Event()
        self.failure = None

    def started(self) -> None:
        """Said once when the thread starts."""

    def follow(self, i, api) -> None:
        raise NotImplementedError

    def run(self) -> None:
        from . import cluster, istiod  # istiod imports build, which this module's users need not load early

        self.started()
        while not self.halt.is_set():
            try:
                i = istiod.Istiod(self.name_)
                if i.pid():
                    self.follow(i, cluster.Cluster(self.name_).api())
                self.failure = None
            except Exception as e:  # pylint: disable=broad-except
                msg = "%s: %s" % (type(e).__name__, e)
                if msg != self.failure:
                    self.say("%s: cannot follow %s (%s); trying again" % (self.name_, self.what, msg))
                    self.failure = msg
            self.halt.wait(self.poll)


class Watcher(IstiodFollower):
    """Polls one cluster's istiod Deployment and restarts that cluster's sandbox istiod on a new template."""

    def follow(self, i, api) -> None:
        current = read_digest(api)
        if needs_restart(recorded(i.workdir), current):
            self.say("%s: Deployment istio-system/istiod has a new pod template (%s, was %s): restarting "
                     "the sandbox's istiod, as its Pod would be replaced" % (self.name_, current, recorded(i.workdir)))
            t0 = time.monotonic()
            # through the command line, which takes the sandbox's lock: the new istiod is then
            # no child of this long-lived process (nothing to reap here)
            res = subprocess.run([sys.executable, "-m", "tools.sandbox", "istiod", "--restart", "--cluster", self.name_],
                                 cwd=common.REPO_ROOT, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise common.SandboxError("`istiod --restart %s` failed (exit %d): %s" % (
                    self.name_, res.returncode, (res.stdout + res.stderr)[-800:]))
            self.say("%s: istiod restarted in %.1fs" % (self.name_, time.monotonic() - t0))
