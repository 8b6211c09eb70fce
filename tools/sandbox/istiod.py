# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One real istiod (pilot-discovery) per sandbox cluster, running out of cluster.

kwok clusters run no containers, so istiod runs as a local process against its
cluster's API server.  Everything it would read from files in a Pod lives in its
own working directory ``.sandbox/istiod/<cluster>/``; its ports are loopback only
and offset by 100 per cluster index (cluster1: 15010/15012/15014/15017/8080/9876,
cluster2: 15110/15112/15114/15117/8180/9976, ...), plus MESHFED_SANDBOX_ISTIOD_PORT_OFFSET
(default 0) for a second sandbox on the same machine.

While it runs, a kwok ClusterPortForward sends pods/portforward to any Pod of istio-system
(e.g. ``kubectl port-forward deploy/istiod 15010``, the istiod Pods that `istioctl install`
created and kwok simulates) to these loopback ports, as a real cluster would reach istiod
in its Pod: the Pod port is cluster1's port (15010, ...), the target this cluster's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

from . import build, cacerts, cluster, common, rollout, versions
from .common import SandboxError, log

NAMESPACE = "istio-system"
READY_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_ISTIOD_TIMEOUT", "120"))

BASE_PORTS = {
    "http": 8080,  # readiness (/ready) and debug (/debug/*)
    "grpc": 15010,  # plaintext XDS
    "secure_grpc": 15012,  # mTLS XDS + CA
    "monitoring": 15014,  # metrics and debug (/debug/*)
    "https": 15017,  # webhooks (sidecar injection /inject, validation /validate)
    "ctrlz": 9876,  # ControlZ introspection
}


PORT_OFFSET_VAR = "MESHFED_SANDBOX_ISTIOD_PORT_OFFSET"


def port_offset() -> int:
    """MESHFED_SANDBOX_ISTIOD_PORT_OFFSET (default 0), added to every istiod port: a second checkout's
    sandbox on the same machine runs its istiods with e.g. 5000 (ports 20010, 20012, ...)."""
    raw = os.environ.get(PORT_OFFSET_VAR, "").strip() or "0"
    try:
        offset = int(raw)
    except ValueError:
        raise SandboxError("%s=%r is not an integer" % (PORT_OFFSET_VAR, raw)) from None
    highest = max(BASE_PORTS.values()) + 100 * 8  # cluster9
    if offset < 0 or highest + offset > 65535:
        raise SandboxError("%s=%d is out of range: the ports must stay within 1..65535 (0 <= offset <= %d)"
                           % (PORT_OFFSET_VAR, offset, 65535 - highest))
    return offset


def ports_for(index: int) -> dict:
    offset = port_offset()
    return {k: v + 100 * (index - 1) + offset for k, v in BASE_PORTS.items()}


# the kwok ClusterPortForward (cluster-scoped) that sends port-forwards to istio-system's Pods to this istiod
PORT_FORWARD = "meshfed-sandbox-istiod"
PORT_FORWARD_API = "/apis/kwok.x-k8s.io/v1alpha1/clusterportforwards"


def port_forward_object(ports: dict) -> dict:
    """Every Pod of istio-system, port p of BASE_PORTS (istiod's ports in its Pod) -> 127.0.0.1:ports[p].

    kwok selects by namespace and Pod name only (ObjectSelector: matchNamespaces, matchNames), not by
    label, and istiod Pod names change with every rollout: so the whole namespace, these ports only."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
        "metadata": {"name": PORT_FORWARD, "labels": {"app.kubernetes.io/managed-by": "meshfed-sandbox"}},
        "spec": {
            "selector": {"matchNamespaces": [NAMESPACE]},
            "forwards": [{"ports": [BASE_PORTS[k]], "target": {"address": "127.0.0.1", "port": ports[k]}}
                         for k in BASE_PORTS],
        },
    }


def pilot_discovery() -> str:
    """The built pilot-discovery, or MESHFED_SANDBOX_PILOT_DISCOVERY (a binary built elsewhere)."""
    override = os.environ.get("MESHFED_SANDBOX_PILOT_DISCOVERY")
    if override:
        if not os.access(override, os.X_OK):
            raise SandboxError("MESHFED_SANDBOX_PILOT_DISCOVERY=%s is not an executable file" % override)
        return os.path.abspath(override)
    return common.binary("pilot-discovery")


class Istiod:
    def __init__(self, name: str):
        self.name = name
        self.index = common.cluster_index(name)
        self.cluster = cluster.Cluster(name)
        self.workdir = os.path.join(common.sandbox_dir(), "istiod", name)
        self.ports = ports_for(self.index)

    @property
    def pid_file(self) -> str:
        return os.path.join(self.workdir, "istiod.pid")

    @property
    def log_file(self) -> str:
        return os.path.join(self.workdir, "istiod.log")

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.workdir, "kubeconfig")

    @property
    def cadir(self) -> str:
        """istiod's ROOT_CA_DIR: the Pod's /etc/cacerts, kept equal to Secret istio-system/cacerts (cacerts.py)."""
        return os.path.join(self.workdir, "etc", "cacerts")

    def pid(self) -> int:
        pid = common.read_pid(self.pid_file)
        if (common.pid_alive(pid) and os.path.basename(common.proc_exe(pid)) == "pilot-discovery"
                and any(self.workdir in a for a in common.proc_cmdline(pid))):
            return pid
        return 0

    def url(self, port: str, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.ports[port], path)

    def http_get(self, port: str, path: str, timeout: float = 3.0):
        try:
            with urllib.request.urlopen(self.url(port, path), timeout=timeout) as r:
                return r.status, r.read()
        except OSError as e:
            code = getattr(e, "code", 0)
            return code, b""

    def ready(self) -> bool:
        return self.http_get("http", "/ready")[0] == 200

    def info(self) -> dict:
        return {
            "cluster": self.name, "cluster_id": self.name, "pid": self.pid(), "ports": self.ports,
            "workdir": self.workdir, "log": self.log_file, "kubeconfig": self.kubeconfig,
            "debug_url": "http://127.0.0.1:%d/debug/" % self.ports["monitoring"],
            "ready_url": self.url("http", "/ready"),
            "injection_url": "https://localhost:%d/inject" % self.ports["https"],
            "validation_url": "https://localhost:%d/validate" % self.ports["https"],
            "xds_address": "127.0.0.1:%d" % self.ports["grpc"],
        }

    # ------------------------------------------------------------ lifecycle

    def stop(self) -> bool:
        pid = self.pid()
        if pid:
            log("%s: stopping istiod (pid %d)" % (self.name, pid))
            common.terminate([pid], "istiod", timeout=15)
        if os.path.exists(self.pid_file):
            os.unlink(self.pid_file)
        self.drop_port_forward()
        return bool(pid)

    # ------------------------------------------------------------ pods/portforward to the istiod Pods

    def ensure_port_forward(self) -> bool:
        """Apply the ClusterPortForward to this istiod's ports; True when it was created or changed.
        A cluster whose kwok does not serve it (created before the sandbox enabled it) is told, not failed."""
        if not self.cluster.port_forward_served():
            log("%s: kwok runs without PortForward resources (cluster created before the sandbox enabled "
                "them): `kubectl port-forward` to istio-system's Pods will not reach this istiod; "
                "`down` then `up` creates the cluster with them" % self.name)
            return False
        api = self.cluster.api()
        want = port_forward_object(self.ports)
        status, have = api.get("%s/%s" % (PORT_FORWARD_API, PORT_FORWARD))
        if status == 200 and have.get("spec") == want["spec"]:
            return False
        if status not in (200, 404):
            raise SandboxError("%s: reading ClusterPortForward %s failed: HTTP %d %s"
                               % (self.name, PORT_FORWARD, status, have))
        api.apply("%s/%s" % (PORT_FORWARD_API, PORT_FORWARD), want)
        log("%s: port-forwards to istio-system's Pods reach this istiod (ClusterPortForward %s: %s)"
            % (self.name, PORT_FORWARD, ", ".join("%d->%d" % (BASE_PORTS[k], self.ports[k]) for k in BASE_PORTS)))
        return True

    def drop_port_forward(self) -> None:
        """Delete the ClusterPortForward, so that nothing forwards to these ports while another process
        (e.g. another checkout's istiod) may hold them.  Quiet when the cluster does not run; a failure
        is told, not raised (it must not stop `down`)."""
        if self.cluster.state() != "running" or not self.cluster.api_ready():
            return
        try:
            status, payload = self.cluster.api().request("DELETE", "%s/%s" % (PORT_FORWARD_API, PORT_FORWARD))
        except common.API_ERRORS as e:
            status, payload = 0, str(e)
        if status == 200:
            log("%s: deleted ClusterPortForward %s" % (self.name, PORT_FORWARD))
        elif status != 404:
            log("%s: deleting ClusterPortForward %s failed: HTTP %d %s" % (self.name, PORT_FORWARD, status, payload))

    def start(self) -> bool:
        """Start istiod unless it already runs; return True when it was started."""
        if self.cluster.state() != "running" or not self.cluster.api_ready():
            raise SandboxError("%s is not running; start the sandbox first (python3 -m tools.sandbox up)" % self.name)
        if self.pid():
            if self.ready():
                log("%s: istiod running (pid %d, debug %s)" % (self.name, self.pid(), self.info()["debug_url"]))
                return False
            # running but not ready yet (e.g. started by a concurrent call): wait for it
            self._wait_ready(self.pid())
            return False
        common.check_ports_free({p: "%s istiod %s" % (self.name, k) for k, p in self.ports.items()})
        binary = pilot_discovery()
        api = self.cluster.api()
        # the pod template this istiod stands for: a new one restarts it (rollout.py), as it would its Pod
        deployment = rollout.read_deployment(api)
        template = rollout.template_digest(deployment)
        ensure_namespace(api)
        ensure_crds(self.cluster, api)
        os.makedirs(self.workdir, exist_ok=True)
        common.write_file_atomic(self.kubeconfig, cluster.render_kubeconfig([self.cluster.kubeconfig_entry()]))
        # the Pod's cacerts volume (Secret istio-system/cacerts, optional): written now, as the kubelet
        # mounts it before the container starts, and kept equal to the Secret by the controller process
        # (cacerts.Syncer in lb.py); istiod watches it and reloads its plug-in CA without a restart
        changed, _before, payload = cacerts.sync(api, self.cadir)
        log("%s: istiod's cacerts directory %s: %s (%s)" % (
            self.name, self.cadir, "written from Secret istio-system/cacerts" if changed else "up to date",
            cacerts.describe(payload) if payload else "no Secret: istiod uses its self-signed CA"))
        # the env of the Deployment's istiod container (values.pilot.env, the chart's feature flags), then ours
        pod_env, skipped = rollout.deployment_env(deployment)
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        env.update(pod_env)
        env.update({
            "CLUSTER_ID": self.name,
            "POD_NAMESPACE": NAMESPACE,
            "POD_NAME": "istiod-%s-sandbox" % self.name,
            "REVISION": "default",
            "ROOT_CA_DIR": self.cadir,
            # SAN "localhost" in istiod's serving cert, so webhooks can call https://localhost:<https>/...
            "ISTIOD_CUSTOM_HOST": "localhost",
        })
        env.pop("USE_REMOTE_CERTS", None)  # istiod would write into the directory the sync owns
        p = self.ports
        argv = [binary, "discovery",
                "--kubeconfig", self.kubeconfig,
                "--httpAddr", "127.0.0.1:%d" % p["http"],
                "--grpcAddr", "127.0.0.1:%d" % p["grpc"],
                "--secureGRPCAddr", "127.0.0.1:%d" % p["secure_grpc"],
                "--monitoringAddr", "127.0.0.1:%d" % p["monitoring"],
                "--httpsAddr", "127.0.0.1:%d" % p["https"],
                "--ctrlz_address", "127.0.0.1", "--ctrlz_port", str(p["ctrlz"]),
                "--clusterID", self.name,
                "--domain", "cluster.local",
                "--log_output_level", "default:info"]
        log("%s: starting istiod (CLUSTER_ID=%s, ports %s; env from its Deployment: %s)" % (
            self.name, self.name, ", ".join("%s %d" % kv for kv in p.items()),
            " ".join("%s=%s" % kv for kv in sorted(pod_env.items())) or "none"))
        with open(self.log_file, "a") as lf:
            lf.write("\n==== %s start: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), " ".join(argv)))
            lf.write("==== env from Deployment istio-system/istiod: %s%s\n" % (
                " ".join("%s=%s" % kv for kv in sorted(pod_env.items())) or "-",
                " (not taken: %s)" % ", ".join(skipped) if skipped else ""))
            lf.flush()
            proc = subprocess.Popen(argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=lf,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        common.write_file_atomic(self.pid_file, "%d\n" % proc.pid, 0o644)
        try:
            self._wait_ready(proc.pid, proc)
        except BaseException:
            common.terminate([proc.pid], "istiod")
            if os.path.exists(self.pid_file):
                os.unlink(self.pid_file)
            raise
        rollout.record(self.workdir, template)
        log("%s: istiod ready (pid %d); debug: %s{clusterz,registryz,endpointShardz}"
            % (self.name, proc.pid, self.info()["debug_url"]))
        return True

    def _wait_ready(self, pid: int, proc=None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise SandboxError("%s: istiod exited with code %s during start-up; see %s\n%s"
                                   % (self.name, proc.returncode, self.log_file, _tail(self.log_file)))
            if not common.pid_alive(pid):
                raise SandboxError("%s: istiod (pid %d) exited; see %s" % (self.name, pid, self.log_file))
            if self.ready() and self.http_get("monitoring", "/debug/clusterz")[0] == 200:
                return
            time.sleep(0.5)
        raise SandboxError("%s: istiod did not become ready (GET %s) within %.0fs; see %s\n%s"
                           % (self.name, self.url("http", "/ready"), READY_TIMEOUT, self.log_file,
                              _tail(self.log_file)))


def _tail(path: str, n: int = 12) -> str:
    try:
        with open(path, errors="replace") as f:
            return "\n".join("  | " + line.rstrip() for line in f.readlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------- cluster prerequisites


def ensure_namespace(api: common.Api) -> None:
    status = api.get("/api/v1/namespaces/%s" % NAMESPACE)[0]
    if status == 404:
        status, payload = api.request("POST", "/api/v1/namespaces",
                                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        if status not in (201, 409):
            raise SandboxError("creating namespace %s failed: HTTP %d %s" % (NAMESPACE, status, payload))
    elif status != 200:
        raise SandboxError("reading namespace %s failed: HTTP %d" % (NAMESPACE, status))


def _gomodcache() -> str:
    if os.environ.get("GOMODCACHE"):
        return os.environ["GOMODCACHE"]
    go = shutil.which("go")
    if go:
        res = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=False)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    return os.path.join(os.environ.get("GOPATH") or os.path.expanduser("~/go"), "pkg", "mod")


CRD_REL = os.path.join("manifests", "charts", "base", "files", "crd-all.gen.yaml")


def crd_file() -> str:
    """Istio's CRDs from the pinned module, copied next to the built binaries on first use."""
    cached = os.path.join(build.cache_root(), "istio", "crd-all.gen.yaml")
    if os.path.isfile(cached):
        return cached
    src = os.path.join(_gomodcache(), "istio.io", "istio@" + versions.ISTIO_MODULE_VERSION, CRD_REL)
    if not os.path.isfile(src) and shutil.which("go"):
        log("fetching the Istio module source for its CRDs (go mod download)")
        res = subprocess.run(["go", "mod", "download", "-json", "istio.io/istio@" + versions.ISTIO_MODULE_VERSION],
                             capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)
        m = re.search(r'"Dir":\s*"([^"]+)"', res.stdout)
        if m:
            src = os.path.join(m.group(1), CRD_REL)
    if not os.path.isfile(src):
        raise SandboxError("Istio CRDs not found: %s is missing and `go mod download istio.io/istio@%s` "
                           "did not provide it" % (src, versions.ISTIO_MODULE_VERSION))
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    shutil.copyfile(src, cached + ".tmp")
    os.replace(cached + ".tmp", cached)
    return cached


def crd_names(path: str) -> list:
    names = []
    with open(path) as f:
        for doc in re.split(r"^---\s*$", f.read(), flags=re.M):
            if re.search(r"^kind:\s*CustomResourceDefinition\s*$", doc, re.M):
                m = re.search(r"^metadata:\s*\n(?:[ ]{2}.*\n)*?[ ]{2}name:\s*(\S+)", doc, re.M)
                if m:
                    names.append(m.group(1).strip("'\""))
    return names


def ensure_crds(c: cluster.Cluster, api: common.Api) -> None:
    path = crd_file()
    want = crd_names(path)
    status, crds = api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", timeout=30)
    have = {i["metadata"]["name"] for i in crds.get("items", [])} if status == 200 else set()
    missing = [n for n in want if n not in have]
    if want and not missing:
        return
    log("%s: installing %d Istio CRDs (server-side apply of %s)" % (c.name, len(want), path))
    kc = os.path.join(common.sandbox_dir(), "istiod", c.name, "kubeconfig")
    os.makedirs(os.path.dirname(kc), exist_ok=True)
    common.write_file_atomic(kc, cluster.render_kubeconfig([c.kubeconfig_entry()]))
    kubectl = common.binary("kubectl")
    cache = ["--cache-dir", os.path.join(common.sandbox_dir(), "kube-cache")]  # not ~/.kube/cache
    base = [kubectl, "--kubeconfig", kc] + cache
    steps = (
        ["apply", "--server-side", "--force-conflicts", "--field-manager", "meshfed-sandbox", "-f", path],
        ["wait", "--for", "condition=Established", "--timeout", "60s", "-f", path],
    )
    for step in steps:
        argv = base + step
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise SandboxError("%s: `%s` failed: %s" % (c.name, step[0], (res.stderr or res.stdout)[-800:]))


# ---------------------------------------------------------------- commands


def _targets(names) -> list:
    running = [c.name for c in cluster.running_clusters()]
    if not names:
        if not running:
            raise SandboxError("no sandbox cluster is running; run `python3 -m tools.sandbox up` first")
        return running
    for n in names:
        if n not in running:
            raise SandboxError("%s is not a running sandbox cluster (running: %s)" % (n, ", ".join(running) or "none"))
    return list(names)


def start(names=None, restart: bool = False) -> bool:
    changed = False
    if not os.environ.get("MESHFED_SANDBOX_PILOT_DISCOVERY"):
        common.ensure_built(("istio",))
    with common.sandbox_lock():
        targets = [Istiod(n) for n in _targets(names)]
        if restart:
            for i in targets:
                changed |= i.stop()
        started = []
        try:
            for i in targets:
                if i.start():
                    started.append(i)
                # also for a running istiod: its cluster may have been recreated meanwhile
                changed |= i.ensure_port_forward()
        except BaseException:
            for i in started:
                i.stop()
            raise
        finally:
            st = common.load_state()
            refresh_state(st)
            common.save_state(st)
        changed |= bool(started)
    print("SANDBOX_CHANGED=%s" % ("true" if changed else "false"), flush=True)
    return changed


def stop(names=None) -> bool:
    with common.sandbox_lock():
        changed = stop_all(names)
        st = common.load_state()
        refresh_state(st)
        common.save_state(st)
    print("SANDBOX_CHANGED=%s" % ("true" if changed else "false"), flush=True)
    return changed


def known() -> list:
    d = os.path.join(common.sandbox_dir(), "istiod")
    return sorted(os.listdir(d), key=common.cluster_index) if os.path.isdir(d) else []


def stop_all(names=None) -> bool:
    changed = False
    for n in names or known():
        changed |= Istiod(n).stop()
    return changed


def refresh_state(st: dict) -> None:
    st["istiods"] = {n: Istiod(n).info() for n in known() if Istiod(n).pid()}


def summary() -> str:
    return json.dumps({n: Istiod(n).info() for n in known()}, indent=2)
