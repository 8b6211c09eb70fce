# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local multi-cluster Kubernetes sandbox: kwokctl (binary runtime) clusters cluster1..N.

Each cluster is a real etcd + kube-apiserver + kube-controller-manager + kube-scheduler
with simulated nodes and pods (kwok controller), all bound to 127.0.0.1 and started
from the locally built binaries (nothing is downloaded).  kwokctl keeps its state under
``.sandbox/kwok`` (KWOK_WORKDIR), never in ~/.kwok or ~/.kube/config.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time

from . import common, versions
from .common import SandboxError, log

# kwokctl component name -> executable (pid files and logs are named after the component:
# kwokctl links each binary into <workdir>/bin/<component>)
COMPONENTS = {
    "etcd": "etcd",
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "kwok-controller": "kwok",
}

PROBE_NAMESPACE = "sandbox-system"
PROBE_DEPLOYMENT = "probe"

API_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_API_TIMEOUT", "120"))
READY_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_READY_TIMEOUT", "120"))


# ---------------------------------------------------------------- kwokctl


def kwokctl_config_path() -> str:
    return os.path.join(common.kwok_workdir(), "kwok.yaml")


def _kwokctl_kubeconfig() -> str:
    # kwokctl insists on merging its contexts into some kubeconfig; give it a
    # throw-away one inside the sandbox so ~/.kube/config is never touched.
    return os.path.join(common.kwok_workdir(), "kwokctl-contexts.yaml")


def write_kwokctl_config() -> None:
    b = common.binary
    opts = {
        "runtime": "binary",
        "kubeVersion": "v" + versions.KUBERNETES,
        "bindAddress": "127.0.0.1",
        "securePort": True,
        # KubeAuthorization=true makes kwokctl give kube-controller-manager
        # --service-account-private-key-file and --root-ca-file (kwok v0.8.0
        # pkg/kwokctl/components/kube_controller_manager.go), which the legacy
        # service-account token controller needs; up() verifies it on the process.
        "kubeAuthorization": True,
        "kubeAdmission": True,
        "etcdBinary": b("etcd"),
        "kubeApiserverBinary": b("kube-apiserver"),
        "kubeControllerManagerBinary": b("kube-controller-manager"),
        "kubeSchedulerBinary": b("kube-scheduler"),
        "kwokControllerBinary": b("kwok"),
        "kubectlBinary": b("kubectl"),
        "cacheDir": os.path.join(common.kwok_workdir(), "cache"),
    }
    lines = ["# written by `python3 -m tools.sandbox up`; do not edit",
             "apiVersion: config.kwok.x-k8s.io/v1alpha1",
             "kind: KwokctlConfiguration",
             "options:"]
    for k, v in opts.items():
        lines.append("  %s: %s" % (k, "true" if v is True else common.q(v)))
    common.write_file_atomic(kwokctl_config_path(), "\n".join(lines) + "\n", 0o644)


def _kwokctl_env() -> dict:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("KWOK_"):
            del env[k]  # a developer's own kwokctl settings must not leak in
    env["KWOK_WORKDIR"] = common.kwok_workdir()
    env["KUBECONFIG"] = _kwokctl_kubeconfig()
    env["PATH"] = os.path.dirname(common.binary("kubectl")) + os.pathsep + env.get("PATH", "")
    return env


def kwokctl(args, logfile: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    argv = [common.binary("kwokctl"), "-c", kwokctl_config_path()] + list(args)
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    with open(logfile, "a") as lf:
        lf.write("\n$ %s\n" % " ".join(argv))
        lf.flush()
        try:
            res = subprocess.run(argv, env=_kwokctl_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, timeout=timeout, cwd=common.sandbox_dir(), check=False)
        except subprocess.TimeoutExpired as e:
            lf.write((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
            raise SandboxError("kwokctl %s did not finish within %.0fs; see %s" % (" ".join(args), timeout, logfile))
        lf.write(res.stdout)
    if check and res.returncode != 0:
        tail = "\n".join(res.stdout.strip().splitlines()[-15:])
        raise SandboxError("kwokctl %s failed (exit %d); see %s\n%s" % (" ".join(args), res.returncode, logfile, tail))
    return res


# ---------------------------------------------------------------- one cluster


class Cluster:
    def __init__(self, name: str):
        self.name = name
        self.index = common.cluster_index(name)
        self.workdir = os.path.join(common.kwok_workdir(), "clusters", name)

    # paths
    def path(self, *p) -> str:
        return os.path.join(self.workdir, *p)

    @property
    def pki(self) -> str:
        return self.path("pki")

    def log_file(self, component: str) -> str:
        return self.path("logs", component + ".log")

    @property
    def kwokctl_log(self) -> str:
        return os.path.join(common.sandbox_dir(), "logs", "kwokctl-%s.log" % self.name)

    def exists(self) -> bool:
        return os.path.isfile(self.path("kwok.yaml"))

    def server(self) -> str:
        try:
            with open(self.path("kubeconfig.yaml")) as f:
                m = re.search(r"server:\s*(https://\S+)", f.read())
        except OSError:
            m = None
        if not m:
            raise SandboxError("%s: no API server URL in %s" % (self.name, self.path("kubeconfig.yaml")))
        return m.group(1).strip("'\"")

    def configured_ports(self) -> dict:
        """Ports kwokctl fixed for this cluster (from its saved kwok.yaml)."""
        ports = {}
        try:
            with open(self.path("kwok.yaml")) as f:
                text = f.read()
        except OSError:
            return ports
        for key, val in re.findall(r"^\s*(\w+Port):\s*(\d+)\s*$", text, re.M):
            if int(val):
                ports[int(val)] = "%s %s" % (self.name, key)
        return ports

    def api(self) -> common.Api:
        return common.Api(self.server(), self.path("pki", "ca.crt"), self.path("pki", "admin.crt"),
                          self.path("pki", "admin.key"))

    # processes
    def pids(self) -> dict:
        """component -> pid of a live process of ours (0 when not running)."""
        out = {}
        for comp, binname in COMPONENTS.items():
            pid = common.read_pid(self.path("pids", comp + ".pid"))
            ok = (common.pid_alive(pid) and os.path.basename(common.proc_exe(pid)) == binname
                  and any(self.workdir in a for a in common.proc_cmdline(pid)))
            out[comp] = pid if ok else 0
        return out

    def clear_stale_pid_files(self) -> None:
        """Remove pid files whose pid is dead or reused by a foreign process (e.g. after a reboot)."""
        live = self.pids()
        for comp in COMPONENTS:
            pf = self.path("pids", comp + ".pid")
            if not live[comp] and os.path.exists(pf):
                os.unlink(pf)

    def state(self) -> str:
        if not self.exists():
            return "absent"
        pids = self.pids()
        if all(pids.values()):
            return "running"
        if any(pids.values()):
            return "partial"
        return "stopped"

    def api_ready(self) -> bool:
        try:
            return self.api().ok("/readyz")
        except (SandboxError, OSError):
            return False

    def dead_components(self) -> list:
        return [c for c, p in self.pids().items() if not p]

    def describe_failure(self, what: str, component: str) -> str:
        dead = self.dead_components()
        msg = "%s: %s; look at the %s log: %s" % (self.name, what, component, self.log_file(component))
        if dead:
            msg += "\n  exited components: %s" % ", ".join("%s (log %s)" % (c, self.log_file(c)) for c in dead)
        return msg

    # lifecycle
    def create(self) -> None:
        log("%s: creating (kwokctl, binary runtime, 127.0.0.1)" % self.name)
        kwokctl(["create", "cluster", "--name", self.name, "--runtime", "binary",
                 "--kubeconfig", _kwokctl_kubeconfig(), "--timeout", "%ds" % int(API_TIMEOUT + 60)],
                self.kwokctl_log, timeout=API_TIMEOUT + 90)

    def start(self) -> None:
        self.clear_stale_pid_files()
        common.check_ports_free({p: d for p, d in self.configured_ports().items()
                                 if not common.port_listening(p) or not self._ours_listening(p)})
        log("%s: restarting its stopped components (kwokctl start cluster)" % self.name)
        kwokctl(["start", "cluster", "--name", self.name], self.kwokctl_log, timeout=API_TIMEOUT + 60)

    def stop(self) -> None:
        """Stop the components but keep the cluster's data (used when a restart fails)."""
        kwokctl(["stop", "cluster", "--name", self.name], self.kwokctl_log, timeout=120, check=False)
        left = [p for p in self.pids().values() if p]
        if left:
            common.terminate(left, "%s component" % self.name)

    def after_restart(self, restarted_components) -> None:
        """Make a restarted cluster trustworthy again.

        A new kwok-controller waits for the node leases of its dead predecessor to expire
        (--node-lease-duration-seconds=200) before it simulates anything: drop those leases
        and start it again so it takes the nodes over at once.  Then replace the probe Pod,
        whose Ready status is stale, so ensure_probe() proves the whole chain works again.
        """
        api = self.api()
        if "kwok-controller" in restarted_components:
            pid = self.pids()["kwok-controller"]
            if pid:
                common.terminate([pid], "%s kwok-controller" % self.name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path("pids", "kwok-controller.pid"))
            status, payload = api.request("DELETE", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
            if status != 200:
                raise SandboxError("%s: deleting stale node leases failed: HTTP %d %s" % (self.name, status, payload))
            kwokctl(["start", "cluster", "--name", self.name], self.kwokctl_log, timeout=120)
        api.request("DELETE", "/api/v1/namespaces/%s/pods?labelSelector=app.kubernetes.io%%2Fname%%3Dsandbox-probe"
                    "&gracePeriodSeconds=0" % PROBE_NAMESPACE)

    def _ours_listening(self, port: int) -> bool:
        return any(port == p for pid in self.pids().values() if pid for _addr, p in common.listening_ports(pid))

    def delete(self) -> None:
        if not os.path.isdir(self.workdir):
            return
        kwokctl(["delete", "cluster", "--name", self.name, "--kubeconfig", _kwokctl_kubeconfig(), "--force"],
                self.kwokctl_log, timeout=120, check=False)
        left = [p for p in self.pids().values() if p]
        if left:
            common.terminate(left, "%s component" % self.name)
        if os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def preserve_logs(self) -> str:
        """Copy the component logs out of the workdir (which `delete` removes); return the copy's dir."""
        dest = os.path.join(common.sandbox_dir(), "failed", "%s-%s" % (self.name, time.strftime("%Y%m%d-%H%M%S")))
        os.makedirs(dest, exist_ok=True)
        if os.path.isdir(self.path("logs")):
            shutil.copytree(self.path("logs"), dest, dirs_exist_ok=True)
        if os.path.exists(self.kwokctl_log):
            shutil.copy(self.kwokctl_log, dest)
        return dest

    # readiness
    def wait_api(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.api_ready():
                return
            if "kube-apiserver" in self.dead_components() or "etcd" in self.dead_components():
                break
            time.sleep(0.5)
        raise SandboxError(self.describe_failure("the API server did not answer /readyz", "kube-apiserver"))

    def verify_controller_manager_flags(self) -> None:
        pid = self.pids()["kube-controller-manager"]
        args = common.proc_cmdline(pid)
        missing = [f for f in ("--service-account-private-key-file", "--root-ca-file")
                   if not any(a.startswith(f + "=") for a in args)]
        if missing:
            raise SandboxError("%s: kube-controller-manager runs without %s, so legacy service-account "
                               "token Secrets would never be filled (check %s)"
                               % (self.name, ", ".join(missing), self.path("kwok.yaml")))

    def ensure_node(self, deadline: float) -> None:
        api = self.api()
        status, nodes = api.get("/api/v1/nodes")
        if status != 200:
            raise SandboxError("%s: listing nodes failed: HTTP %d" % (self.name, status))
        if not nodes.get("items"):
            log("%s: adding a simulated node" % self.name)
            # distinct pod CIDR and node IP per cluster, so endpoints of different clusters differ
            kwokctl(["scale", "node", "--name", self.name, "--replicas", "1",
                     "--param", '.podCIDRs=["10.%d.0.0/24"]' % (self.index + 100),
                     "--param", '.nodeIPs=["192.0.2.%d"]' % self.index],
                    self.kwokctl_log, timeout=120)
        while time.monotonic() < deadline:
            status, nodes = api.get("/api/v1/nodes")
            items = nodes.get("items", []) if status == 200 else []
            if items and all(_condition(n, "Ready") for n in items):
                return
            time.sleep(0.5)
        raise SandboxError(self.describe_failure("the simulated node did not become Ready", "kwok-controller"))

    def ensure_probe(self, deadline: float) -> None:
        """A Deployment whose Pods must become Ready: proves KCM, scheduler and kwok all work."""
        api = self.api()
        api.apply("/api/v1/namespaces/%s" % PROBE_NAMESPACE,
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROBE_NAMESPACE}})
        labels = {"app.kubernetes.io/name": "sandbox-probe"}
        api.apply("/apis/apps/v1/namespaces/%s/deployments/%s" % (PROBE_NAMESPACE, PROBE_DEPLOYMENT), {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": PROBE_DEPLOYMENT, "namespace": PROBE_NAMESPACE, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]}}},
        })
        pods_path = "/api/v1/namespaces/%s/pods?labelSelector=app.kubernetes.io%%2Fname%%3Dsandbox-probe" % (
            PROBE_NAMESPACE)
        items = []
        while time.monotonic() < deadline:
            status, pods = api.get(pods_path)
            items = [p for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")] \
                if status == 200 else []
            if items and all(_condition(p, "Ready") for p in items):
                return
            time.sleep(0.5)
        # name the component that is stuck
        if not items:
            comp, what = "kube-controller-manager", "the probe Deployment got no Pods"
        elif not all(p.get("spec", {}).get("nodeName") for p in items):
            comp, what = "kube-scheduler", "the probe Pods were not scheduled"
        else:
            comp, what = "kwok-controller", "the probe Pods were scheduled but never became Ready"
        raise SandboxError(self.describe_failure(what + " in time", comp))

    def kubeconfig_entry(self) -> dict:
        return {
            "name": self.name,
            "server": self.server(),
            "ca": common.b64file(self.path("pki", "ca.crt")),
            "cert": common.b64file(self.path("pki", "admin.crt")),
            "key": common.b64file(self.path("pki", "admin.key")),
        }

    def info(self) -> dict:
        pids = self.pids()
        d = {"name": self.name, "index": self.index, "state": self.state(), "workdir": self.workdir,
             "logs": self.path("logs"), "pids": pids, "gateway_address": common.gateway_address(self.index)}
        with contextlib.suppress(SandboxError):
            d["api_server"] = self.server()
        return d


def _condition(obj: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions", []))


# ---------------------------------------------------------------- kubeconfig


def render_kubeconfig(entries: list) -> str:
    """A self-contained kubeconfig (embedded certificates); context = cluster = user = cluster name."""
    out = ["# written by `python3 -m tools.sandbox up`; regenerated on every run", "apiVersion: v1", "kind: Config",
           "preferences: {}", "current-context: %s" % common.q(entries[0]["name"] if entries else ""), "clusters:"]
    for e in entries:
        out += ["- name: %s" % common.q(e["name"]), "  cluster:",
                "    server: %s" % common.q(e["server"]),
                "    certificate-authority-data: %s" % common.q(e["ca"])]
    out.append("contexts:")
    for e in entries:
        out += ["- name: %s" % common.q(e["name"]), "  context:",
                "    cluster: %s" % common.q(e["name"]), "    user: %s" % common.q(e["name"])]
    out.append("users:")
    for e in entries:
        out += ["- name: %s" % common.q(e["name"]), "  user:",
                "    client-certificate-data: %s" % common.q(e["cert"]),
                "    client-key-data: %s" % common.q(e["key"])]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- commands


def existing_clusters() -> list:
    d = os.path.join(common.kwok_workdir(), "clusters")
    names = []
    if os.path.isdir(d):
        for n in os.listdir(d):
            with contextlib.suppress(SandboxError):
                common.cluster_index(n)
                names.append(n)
    return sorted(names, key=common.cluster_index)


def running_clusters() -> list:
    return [Cluster(n) for n in existing_clusters() if Cluster(n).state() == "running"]


def write_outputs(st: dict) -> list:
    """(Re)write .sandbox/kubeconfig and the clusters part of state.json from what runs."""
    running = running_clusters()
    common.write_file_atomic(common.kubeconfig_path(), render_kubeconfig([c.kubeconfig_entry() for c in running]))
    st["clusters"] = {c.name: c.info() for c in running}
    return running


def up(n: int) -> bool:
    """Ensure cluster1..N run and are ready.  Returns True when anything was started."""
    if not 1 <= n <= 9:
        raise SandboxError("--clusters must be between 1 and 9 (got %d)" % n)
    t0 = time.monotonic()
    common.ensure_built()
    changed = []
    with common.sandbox_lock():
        os.makedirs(common.kwok_workdir(), exist_ok=True)
        write_kwokctl_config()
        wanted = [Cluster(common.cluster_name(i)) for i in range(1, n + 1)]
        created, restarted = [], []  # what this run started: torn down again if the run fails
        try:
            for c in wanted:
                state = c.state()
                if state == "running" and c.api_ready():
                    log("%s: running (%s)" % (c.name, c.server()))
                    continue
                if state == "absent":
                    if os.path.isdir(c.workdir):  # leftovers of an interrupted create
                        c.delete()
                    created.append(c)
                    c.create()
                else:
                    dead = c.dead_components()
                    restarted.append((c, dead))
                    c.start()
                changed.append(c.name)
            deadline = time.monotonic() + API_TIMEOUT
            for c in wanted:
                c.wait_api(deadline)
                c.verify_controller_manager_flags()
            for c, dead in restarted:
                c.after_restart(dead)
            deadline = time.monotonic() + READY_TIMEOUT
            for c in wanted:
                c.ensure_node(deadline)
            for c in wanted:
                c.ensure_probe(deadline)
                log("%s: ready: API server %s, node Ready, probe Deployment Ready" % (c.name, c.server()))
        except BaseException as e:
            msg = str(e)
            for c in created:
                kept = c.preserve_logs()
                msg = msg.replace(c.path("logs"), kept).replace(
                    c.kwokctl_log, os.path.join(kept, os.path.basename(c.kwokctl_log)))
                log("%s: start failed; deleting what this run created (logs kept in %s)" % (c.name, kept))
                c.delete()
            for c, _dead in restarted:
                log("%s: restart failed; stopping it again (data and logs kept in %s)" % (c.name, c.workdir))
                c.stop()
            st = common.load_state()
            write_outputs(st)
            common.save_state(st)
            if isinstance(e, SandboxError) and created:
                raise SandboxError(msg + "\n(the cluster was removed; its logs were kept under %s/failed/)"
                                   % common.sandbox_dir()) from e
            raise
        st = common.load_state()
        running = write_outputs(st)
        common.save_state(st)
        extra = [c.name for c in running if c.index > n]
        if extra:
            log("also running (left alone; `down` stops them): %s" % ", ".join(extra))
    log("kubeconfig: %s (contexts: %s)" % (common.kubeconfig_path(), ", ".join(c.name for c in running)))
    if changed:
        log("started %s in %.1fs" % (", ".join(changed), time.monotonic() - t0))
    else:
        log("nothing to do: %d cluster(s) already running (%.1fs)" % (len(wanted), time.monotonic() - t0))
    print("SANDBOX_CHANGED=%s" % ("true" if changed else "false"), flush=True)
    return bool(changed)
