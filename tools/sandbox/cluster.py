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
import datetime
import os
import re
import shutil
import subprocess
import time

from . import common, repair, versions
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

# kwokctl port options (kwok.yaml `options`) of each component: it listens on all of them once it runs
COMPONENT_PORT_KEYS = {
    "etcd": ("etcdPort", "etcdPeerPort"),
    "kube-apiserver": ("kubeApiserverPort",),
    "kube-controller-manager": ("kubeControllerManagerPort",),
    "kube-scheduler": ("kubeSchedulerPort",),
    "kwok-controller": ("kwokControllerPort",),
}

# what a cluster's workdir must still have for a restart; without any of them `up` recreates the cluster
REQUIRED_FILES = ("kwok.yaml", "kubeconfig.yaml", os.path.join("pki", "ca.crt"), os.path.join("pki", "ca.key"),
                  os.path.join("pki", "admin.crt"), os.path.join("pki", "admin.key"), "etcd")

# kwok resources served as CRDs (kwokctl installs the CRDs at `create cluster` and runs the kwok-controller
# with --enable-crds): PortForward (one Pod, by name) and ClusterPortForward (Pods selected by namespace and
# name) tell kwok's kubelet server where pods/portforward of a simulated Pod goes, e.g. the istiods'
# loopback ports (istiod.py).  A cluster created without them is told apart by port_forward_served().
KWOK_CRDS = ("PortForward", "ClusterPortForward")

# components that elect a leader with a Lease kube-system/<component>
LEADER_ELECTED = ("kube-controller-manager", "kube-scheduler")

PROBE_NAMESPACE = "sandbox-system"
PROBE_DEPLOYMENT = "probe"

API_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_API_TIMEOUT", "120"))
READY_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_READY_TIMEOUT", "120"))
# seconds `up` waits for a dying component process (e.g. a SIGTERMed kube-apiserver, which takes
# up to 60 s to drain its clients' watches) to exit before it stops it (SIGTERM, SIGKILL after 5 s)
EXIT_GRACE = float(os.environ.get("MESHFED_SANDBOX_EXIT_GRACE", "10"))
# a live component not listening on its ports after this many seconds counts as dying
STARTUP_ALLOWANCE = 30.0
# how long `up` waits for a cluster it created to bind its ports, before it creates the next
CREATE_PORTS_TIMEOUT = 30.0
# a component that exits again after this many starts in one `up` fails it
MAX_STARTS = 3


def service_cidr(index: int) -> str:
    """Service ClusterIP range of cluster `index`: distinct per cluster (10.101.128.0/17, 10.102.128.0/17, ...),
    so that the svcproxy relay can bind every cluster's istiod ClusterIPs on one lo; beside, not over,
    the pod CIDR 10.(100+index).0.0/24."""
    return "10.%d.128.0/17" % (100 + index)


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
        "enableCRDs": list(KWOK_CRDS),
    }
    lines = ["# written by `python3 -m tools.sandbox up`; do not edit",
             "apiVersion: config.kwok.x-k8s.io/v1alpha1",
             "kind: KwokctlConfiguration",
             "options:"]
    for k, v in opts.items():
        if isinstance(v, list):
            value = "[%s]" % ", ".join(common.q(x) for x in v)
        else:
            value = "true" if v is True else common.q(v)
        lines.append("  %s: %s" % (k, value))
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
        # what this `up` did to the cluster (for SANDBOX_CHANGED, after_restart and the summary)
        self.started = []  # components it started, in order
        self.start_counts = {}  # component -> how often it started it
        self.stopped = []  # processes it stopped: "kube-apiserver (pid 123)"

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

    def missing_files(self) -> list:
        """Files a restart needs that are gone (e.g. a workdir half deleted by an interrupted `down`)."""
        return [f for f in REQUIRED_FILES + tuple(os.path.join("bin", c) for c in COMPONENTS)
                if not os.path.exists(self.path(f))]

    def server(self) -> str:
        try:
            with open(self.path("kubeconfig.yaml")) as f:
                m = re.search(r"server:\s*(https://\S+)", f.read())
        except OSError:
            m = None
        if not m:
            raise SandboxError("%s: no API server URL in %s" % (self.name, self.path("kubeconfig.yaml")))
        return m.group(1).strip("'\"")

    def port_plan(self) -> dict:
        """kwokctl's port options of this cluster (etcdPort, kubeApiserverPort, ...) from its saved kwok.yaml."""
        try:
            with open(self.path("kwok.yaml")) as f:
                text = f.read()
        except OSError:
            return {}
        return {key: int(val) for key, val in re.findall(r"^\s*(\w+Port):\s*(\d+)\s*$", text, re.M) if int(val)}

    def configured_ports(self) -> dict:
        """Ports kwokctl fixed for this cluster: {port: description}."""
        return {port: "%s %s" % (self.name, key) for key, port in self.port_plan().items()}

    def component_ports(self, component: str) -> list:
        plan = self.port_plan()
        return [plan[k] for k in COMPONENT_PORT_KEYS[component] if k in plan]

    def api(self) -> common.Api:
        return common.Api(self.server(), self.path("pki", "ca.crt"), self.path("pki", "admin.crt"),
                          self.path("pki", "admin.key"))

    # processes
    def _runs_from_workdir(self, pid: int) -> bool:
        """The process's command line names this cluster's workdir (not merely one starting like it)."""
        prefix = self.workdir + os.sep
        return any(a == self.workdir or prefix in a for a in common.proc_cmdline(pid))

    def pids(self) -> dict:
        """component -> pid of a live process of ours (0 when not running)."""
        out = {}
        for comp, binname in COMPONENTS.items():
            pid = common.read_pid(self.path("pids", comp + ".pid"))
            ok = (common.pid_alive(pid) and os.path.basename(common.proc_exe(pid)) == binname
                  and self._runs_from_workdir(pid))
            out[comp] = pid if ok else 0
        return out

    def workdir_processes(self) -> list:
        """(pid, binary) of every sandbox process that runs from this cluster's workdir."""
        return [(pid, name) for pid, name in common.sandbox_processes() if self._runs_from_workdir(pid)]

    def strays(self) -> list:
        """(pid, binary) of processes of this cluster that no pid file names (kwokctl would start a twin)."""
        known = set(self.pids().values())
        return [(pid, name) for pid, name in self.workdir_processes() if pid not in known]

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

    def api_shutting_down(self) -> bool:
        """kube-apiserver's /readyz reports its `shutdown` check failed: it got SIGTERM and is draining."""
        try:
            status, body = self.api().get("/readyz?verbose", timeout=3)
        except (SandboxError,) + common.API_ERRORS:
            return False
        return status != 200 and "[-]shutdown" in str(body)

    def inspect(self, dying_pids=()) -> dict:
        """component -> repair.Proc: what its process does now (pid files, /proc, kube-apiserver's /readyz).

        dying_pids: pids already seen shutting down in this run (they stay dying).
        """
        procs = {}
        for comp, pid in self.pids().items():
            if not pid:
                procs[comp] = repair.Proc()
                continue
            ports = self.component_ports(comp)
            listening = set(ports) <= {p for _a, p in common.listening_ports(pid)}
            shutting_down = (pid in dying_pids
                             or (not listening and common.served_connections(pid, ports) > 0)
                             or (comp == "kube-apiserver" and listening and not self.api_ready()
                                 and self.api_shutting_down()))
            procs[comp] = repair.Proc(pid, common.proc_age(pid), listening, shutting_down)
        return procs

    def verdicts(self, procs: dict) -> dict:
        return {c: repair.classify(p, STARTUP_ALLOWANCE) for c, p in procs.items()}

    def healthy(self) -> bool:
        """Every component runs and listens, and the API server answers /readyz."""
        verdicts = self.verdicts(self.inspect())
        return all(v == repair.RUNNING for v in verdicts.values()) and self.api_ready()

    def describe_components(self) -> str:
        """e.g. "kube-apiserver dying (pid 123), kube-scheduler missing" or why it is not healthy."""
        procs = self.inspect()
        bad = ["%s %s%s" % (c, v, " (pid %d)" % procs[c].pid if procs[c].pid else "")
               for c, v in self.verdicts(procs).items() if v != repair.RUNNING]
        return ", ".join(bad) or "every component runs, but the API server does not answer /readyz"

    def dead_components(self) -> list:
        return [c for c, p in self.pids().items() if not p]

    def describe_failure(self, what: str, component: str) -> str:
        dead = self.dead_components()
        msg = "%s: %s; look at the %s log: %s" % (self.name, what, component, self.log_file(component))
        if dead:
            msg += "\n  exited components: %s" % ", ".join("%s (log %s)" % (c, self.log_file(c)) for c in dead)
        return msg

    # lifecycle
    def wait_listening(self, timeout: float) -> None:
        """Wait (bounded) until every port kwokctl gave this cluster is listening; a component
        that never binds is left to the repair that follows."""
        deadline = time.monotonic() + timeout
        while True:
            idle = sorted(p for p in self.configured_ports() if not common.port_listening(p))
            if not idle:
                return
            if time.monotonic() >= deadline:
                log("%s: port(s) %s not listening after %.0fs; going on" % (self.name, idle, timeout))
                return
            time.sleep(0.2)

    def create(self) -> None:
        log("%s: creating (kwokctl, binary runtime, 127.0.0.1)" % self.name)
        kwokctl(["create", "cluster", "--name", self.name, "--runtime", "binary",
                 "--extra-args", "kube-apiserver=service-cluster-ip-range=%s" % service_cidr(self.index),
                 "--kubeconfig", _kwokctl_kubeconfig(), "--timeout", "%ds" % int(API_TIMEOUT + 60)],
                self.kwokctl_log, timeout=API_TIMEOUT + 90)

    def start(self) -> None:
        """kwokctl start: starts every component without a live process, then waits until the API serves."""
        self.clear_stale_pid_files()
        common.check_ports_free({p: d for p, d in self.configured_ports().items()
                                 if not common.port_listening(p) or not self._ours_listening(p)})
        kwokctl(["start", "cluster", "--name", self.name], self.kwokctl_log, timeout=API_TIMEOUT + 60)

    def stop(self) -> None:
        """Stop the components but keep the cluster's data (used when a repair fails)."""
        kwokctl(["stop", "cluster", "--name", self.name], self.kwokctl_log, timeout=120, check=False)
        left = [p for p in self.pids().values() if p] + [pid for pid, _name in self.strays()]
        if left:
            common.terminate(left, "%s component" % self.name)

    # repair
    def ensure_running(self, deadline: float) -> list:
        """Repair the processes until every component runs and the API server answers /readyz.

        Stops strays, waits up to EXIT_GRACE seconds for a dying process to exit and stops it
        after that, starts what is missing (without stale pid files).  Returns the components
        this call started.
        """
        self.stop_strays()
        started, dying_since, announced = [], {}, set()
        progress, last = common.Progress(), None
        while True:
            procs = self.inspect(dying_since)
            verdicts = self.verdicts(procs)
            now = time.monotonic()
            for c in verdicts:
                if verdicts[c] == repair.DYING:
                    dying_since.setdefault(procs[c].pid, now)
            dying_for = {c: now - dying_since[procs[c].pid] for c, v in verdicts.items() if v == repair.DYING}
            step = repair.next_step(verdicts, dying_for, EXIT_GRACE, self.start_counts, MAX_STARTS)
            if step.action != last:
                progress, last = common.Progress(), step.action
            if step.action == "done" and self.api_ready():
                return started
            if step.action == "fail":
                comp = step.components[0]
                raise SandboxError(self.describe_failure(
                    "%s exited again after %d starts" % (comp, self.start_counts[comp]), comp))
            if now >= deadline:
                raise SandboxError(self._stuck(step))
            if step.action == "wait":
                self._announce_dying(step.components, procs, announced)
                time.sleep(0.5)
            elif step.action == "stop":
                self._stop_dying(step.components, procs, dying_for)
            elif step.action == "start":
                self._start(step.components)
                started += [c for c in step.components if c not in started]
            else:  # settle, or done while the API server is not ready yet
                progress.tick("%s: waiting for %s" % (self.name, self._waiting_for(step)))
                time.sleep(0.5)

    def _waiting_for(self, step: repair.Step) -> str:
        if step.action == "settle":
            return "%s to listen on %s" % (" and ".join(step.components), ", ".join(
                "port(s) %s" % ",".join(map(str, self.component_ports(c))) for c in step.components))
        return "the API server to answer /readyz"

    def _stuck(self, step: repair.Step) -> str:
        if step.action == "settle":
            comp = step.components[0]
            return self.describe_failure("%s did not listen on port(s) %s in time" % (
                comp, ",".join(map(str, self.component_ports(comp)))), comp)
        if step.action in ("wait", "stop"):
            return self.describe_failure("%s was still shutting down when MESHFED_SANDBOX_API_TIMEOUT (%gs) ran out"
                                         % (step.components[0], API_TIMEOUT), step.components[0])
        return self.describe_failure("the API server did not answer /readyz", "kube-apiserver")

    def _announce_dying(self, components, procs: dict, announced: set) -> None:
        for c in components:
            p = procs[c]
            if p.pid in announced:
                continue
            announced.add(p.pid)
            why = "shutting down" if p.shutting_down else "alive for %.0fs but not listening on port(s) %s" % (
                p.age, ",".join(map(str, self.component_ports(c))))
            log("%s: waiting up to %gs for %s (pid %d, %s) to exit" % (self.name, EXIT_GRACE, c, p.pid, why))

    def _stop_dying(self, components, procs: dict, dying_for: dict) -> None:
        for c in components:
            pid = procs[c].pid
            log("%s: %s (pid %d) has not exited after %.0fs; stopping it (SIGTERM, SIGKILL after 5s)"
                % (self.name, c, pid, dying_for[c]))
            common.terminate([pid], "%s %s" % (self.name, c), timeout=5)
            self.stopped.append("%s (pid %d)" % (c, pid))
        self.clear_stale_pid_files()

    def _start(self, components) -> None:
        for c in components:
            self.start_counts[c] = self.start_counts.get(c, 0) + 1
            if c not in self.started:
                self.started.append(c)
        log("%s: starting %s (kwokctl start cluster)" % (self.name, ", ".join(components)))
        self.start()

    def stop_strays(self) -> None:
        for pid, name in self.strays():
            log("%s: stopping stray %s (pid %d): it runs from %s but no pid file names it"
                % (self.name, name, pid, self.workdir))
            common.terminate([pid], "%s stray %s" % (self.name, name), timeout=5)
            self.stopped.append("stray %s (pid %d)" % (name, pid))

    def heal(self, deadline: float) -> None:
        """Restart components that exited while `up` waited for the node or the probe
        (kube-controller-manager and kube-scheduler exit when they lose their leader lease)."""
        dead = self.dead_components()
        if dead:
            log("%s: %s exited while waiting for readiness; restarting" % (self.name, ", ".join(dead)))
            self.after_restart(self.ensure_running(deadline))

    def after_restart(self, restarted_components) -> None:
        """Make a restarted cluster trustworthy again.

        A new kwok-controller waits for the node leases of its dead predecessor to expire
        (--node-lease-duration-seconds=200) before it simulates anything: drop those leases
        and start it again so it takes the nodes over at once.  A new kube-controller-manager
        or kube-scheduler waits (up to 15 s) for its predecessor's leader lease: drop that
        lease too (see _drop_stale_leader_lease).  Then replace the probe Pod,
        whose Ready status is stale, so ensure_probe() proves the whole chain works again.
        """
        if not restarted_components:
            return
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
        for comp in LEADER_ELECTED:
            if comp in restarted_components:
                self._drop_stale_leader_lease(api, comp)
        api.request("DELETE", "/api/v1/namespaces/%s/pods?labelSelector=app.kubernetes.io%%2Fname%%3Dsandbox-probe"
                    "&gracePeriodSeconds=0" % PROBE_NAMESPACE)

    def _drop_stale_leader_lease(self, api: common.Api, component: str) -> None:
        """Delete the leader lease kube-system/<component> if it was last renewed before the component's
        running process started (so it is a dead predecessor's), at the resourceVersion read: a lease
        the new process took over meanwhile is left alone."""
        pid = self.pids()[component]
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/%s" % component
        status, lease = api.get(path)
        if not pid or status != 200:
            return
        spec = lease.get("spec") or {}
        if not repair.lease_is_stale(_epoch(spec.get("renewTime")), time.time() - common.proc_age(pid)):
            return
        status, payload = api.request("DELETE", path, {
            "apiVersion": "v1", "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": lease["metadata"]["resourceVersion"]}})
        if status in (200, 404, 409):  # 409: the new process renewed it meanwhile
            log("%s: dropped the stale %s leader lease of %s, so the new %s (pid %d) leads at once"
                % (self.name, component, spec.get("holderIdentity", "?"), component, pid))
        else:
            raise SandboxError("%s: deleting the stale %s leader lease failed: HTTP %d %s"
                               % (self.name, component, status, payload))

    def _ours_listening(self, port: int) -> bool:
        return any(port == p for pid in self.pids().values() if pid for _addr, p in common.listening_ports(pid))

    def delete(self) -> None:
        """Stop every process of this cluster (also those no pid file names) and remove its workdir."""
        if not os.path.isdir(self.workdir):
            return
        kwokctl(["delete", "cluster", "--name", self.name, "--kubeconfig", _kwokctl_kubeconfig(), "--force"],
                self.kwokctl_log, timeout=120, check=False)
        # kwokctl SIGKILLs what its pid files name and does not wait; a half-deleted workdir names nothing
        left = self.workdir_processes()
        if left:
            log("%s: killing its remaining processes %s" % (self.name, ", ".join("%d (%s)" % pn for pn in left)))
            common.kill_now([pid for pid, _name in left])
        self._remove_workdir()

    def _remove_workdir(self) -> None:
        error = None
        for _attempt in range(5):
            if not os.path.isdir(self.workdir):
                return
            try:
                shutil.rmtree(self.workdir)
            except OSError as e:  # e.g. a process that was still exiting wrote a file meanwhile
                error = e
                time.sleep(0.5)
        if os.path.isdir(self.workdir):
            raise SandboxError("%s: could not remove %s: %s" % (self.name, self.workdir, error))

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
    def port_forward_served(self) -> bool:
        """Whether kwok serves port-forward to this cluster's Pods as its PortForward resources say: the
        kwok-controller runs (or, stopped, would run) with --enable-crds naming KWOK_CRDS.  Clusters created
        before the sandbox enabled them run without; `down` + `up` creates them again with them."""
        pid = self.pids()["kwok-controller"]
        if pid:
            args = common.proc_cmdline(pid)
        else:
            try:
                with open(self.path("kwok.yaml")) as f:
                    args = f.read().split()
            except OSError:
                args = []
        enabled = set()
        for a in args:
            if a.startswith("--enable-crds="):
                enabled |= set(a.split("=", 1)[1].split(","))
        return set(KWOK_CRDS) <= enabled

    def verify_controller_manager_flags(self) -> None:
        pid = self.pids()["kube-controller-manager"]
        if not pid:
            raise SandboxError(self.describe_failure("kube-controller-manager exited", "kube-controller-manager"))
        args = common.proc_cmdline(pid)
        missing = [f for f in ("--service-account-private-key-file", "--root-ca-file")
                   if not any(a.startswith(f + "=") for a in args)]
        if missing:
            raise SandboxError("%s: kube-controller-manager runs without %s, so legacy service-account "
                               "token Secrets would never be filled (check %s)"
                               % (self.name, ", ".join(missing), self.path("kwok.yaml")))

    def _items(self, api: common.Api, path: str):
        """The items of a list, or None while the API server does not answer."""
        try:
            status, payload = api.get(path)
        except common.API_ERRORS:
            return None
        return payload.get("items", []) if status == 200 and isinstance(payload, dict) else None

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
        progress = common.Progress()
        while time.monotonic() < deadline:
            items = self._items(api, "/api/v1/nodes")
            if items and all(_condition(n, "Ready") for n in items):
                return
            self.heal(deadline)
            progress.tick("%s: waiting for the simulated node to become Ready" % self.name)
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
        progress = common.Progress()
        while time.monotonic() < deadline:
            items = [p for p in self._items(api, pods_path) or [] if not p["metadata"].get("deletionTimestamp")]
            if items and all(_condition(p, "Ready") for p in items):
                return
            self.heal(deadline)
            progress.tick("%s: waiting for the probe Pod (%s/%s) to become Ready"
                          % (self.name, PROBE_NAMESPACE, PROBE_DEPLOYMENT))
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

    def service_cidr(self) -> str:
        """The ClusterIP range kwokctl gives its kube-apiserver (its saved kwok.yaml); Kubernetes' default
        10.0.0.0/24 for a cluster created before the sandbox gave each cluster its own."""
        try:
            with open(self.path("kwok.yaml")) as f:
                found = re.findall(r"--service-cluster-ip-range=([0-9./]+)", f.read())
        except OSError:
            found = []
        return found[-1] if found else "10.0.0.0/24"

    def info(self) -> dict:
        pids = self.pids()
        d = {"name": self.name, "index": self.index, "state": self.state(), "workdir": self.workdir,
             "logs": self.path("logs"), "pids": pids, "gateway_address": common.gateway_address(self.index),
             "service_cidr": self.service_cidr()}
        with contextlib.suppress(SandboxError):
            d["api_server"] = self.server()
        return d


def _epoch(timestamp):
    """Seconds since the epoch of a Kubernetes (Micro)Time such as 2026-11-29T14:57:11.277758Z, or None."""
    try:
        return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


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


def _triage(c: Cluster) -> str:
    """ok (healthy: nothing to do), create, recreate (a half-gone workdir) or repair."""
    if not c.exists():
        return "recreate" if os.path.isdir(c.workdir) else "create"
    if c.missing_files():
        return "recreate"
    return "ok" if c.healthy() else "repair"


def _prepare(wanted: list, created: list, to_repair: list) -> None:
    """Create what is absent, recreate what is half gone (appending to `created` before it starts, so a
    failed creation is cleaned up too); note in `to_repair` what runs but is not healthy."""
    for c in wanted:
        action = _triage(c)
        if action == "ok":
            log("%s: running (%s)" % (c.name, c.server()))
            continue
        if action == "repair":
            log("%s: not healthy (%s); repairing it" % (c.name, c.describe_components()))
            to_repair.append(c)
            continue
        if action == "recreate":
            log("%s: its workdir %s is incomplete (missing %s); deleting and creating the cluster again"
                % (c.name, c.workdir, ", ".join(c.missing_files())))
            _for(c, c.delete)
        created.append(c)
        _for(c, c.create)
        # kwokctl picks each new cluster's ports among the free ones: the next cluster must
        # not be given a port this one's components have not bound yet
        c.wait_listening(CREATE_PORTS_TIMEOUT)


def _for(c: Cluster, fn, *args):
    """Run one step for one cluster; its failure names the cluster (so that `up` cleans up only that one)."""
    try:
        return fn(*args)
    except SandboxError as e:
        e.cluster = c.name
        raise
    except common.API_ERRORS as e:
        err = SandboxError("%s: the API server did not answer: %s" % (c.name, e))
        err.cluster = c.name
        raise err from e


def _bring_up(wanted: list, fixing: list) -> None:
    """Repair the processes of `fixing`, then wait for every wanted cluster's API, node and probe."""
    deadline = time.monotonic() + API_TIMEOUT
    for c in fixing:
        _for(c, c.ensure_running, deadline)
    for c in wanted:
        _for(c, c.verify_controller_manager_flags)
        _for(c, c.after_restart, c.started)
    deadline = time.monotonic() + READY_TIMEOUT
    for c in wanted:
        _for(c, c.ensure_node, deadline)
    for c in wanted:
        _for(c, c.ensure_probe, deadline)
        log("%s: ready: API server %s, node Ready, probe Deployment Ready" % (c.name, c.server()))


def _clean_up_failed(e: BaseException, created: list, to_repair: list) -> str:
    """After a failed `up`: delete the clusters it created (logs kept), stop the one whose repair failed.

    Clusters that were running before, or that it repaired, are left as they are.  Returns the
    error message with log paths pointing at the kept copies.
    """
    msg = str(e)
    for c in created:
        kept = c.preserve_logs()
        msg = msg.replace(c.path("logs"), kept).replace(
            c.kwokctl_log, os.path.join(kept, os.path.basename(c.kwokctl_log)))
        log("%s: start failed; deleting what this run created (logs kept in %s)" % (c.name, kept))
        c.delete()
    for c in to_repair:
        if c.name == getattr(e, "cluster", None):
            log("%s: repair failed; stopping it (data and logs kept in %s; the next `up` tries again)"
                % (c.name, c.workdir))
            c.stop()
    st = common.load_state()
    write_outputs(st)
    common.save_state(st)
    return msg


def _summary(c: Cluster) -> str:
    parts = []
    if c.stopped:
        parts.append("stopped %s" % ", ".join(c.stopped))
    if c.started:
        parts.append("started %s" % ", ".join(c.started))
    return "%s (%s)" % (c.name, "; ".join(parts)) if parts else c.name


def up(n: int, also=None) -> bool:
    """Ensure cluster1..N run and are ready, repairing damaged ones.  Returns True when anything changed.

    also(state, running clusters): run under the same lock once the clusters are ready (e.g. the
    LoadBalancer controller's lb.ensure); it may add to the state and returns True when it changed
    something."""
    if not 1 <= n <= 9:
        raise SandboxError("--clusters must be between 1 and 9 (got %d)" % n)
    t0 = time.monotonic()
    common.ensure_built()
    with common.sandbox_lock():
        os.makedirs(common.kwok_workdir(), exist_ok=True)
        write_kwokctl_config()
        wanted = [Cluster(common.cluster_name(i)) for i in range(1, n + 1)]
        created, to_repair = [], []  # created: torn down again if the run fails
        try:
            _prepare(wanted, created, to_repair)
            _bring_up(wanted, [c for c in wanted if c in created or c in to_repair])
        except BaseException as e:
            msg = _clean_up_failed(e, created, to_repair)
            if isinstance(e, SandboxError) and created:
                raise SandboxError(msg + "\n(the cluster was removed; its logs were kept under %s/failed/)"
                                   % common.sandbox_dir()) from e
            raise
        st = common.load_state()
        running = write_outputs(st)
        common.save_state(st)
        old = [c.name for c in running if not c.port_forward_served()]
        if old:
            log("%s: created before the sandbox enabled kwok's PortForward resources: pods/portforward to "
                "the istiod Pods is not served there; `down` then `up` creates them with it" % ", ".join(old))
        extra = [c.name for c in running if c.index > n]
        if extra:
            log("also running (left alone; `down` stops them): %s" % ", ".join(extra))
        also_changed = False
        if also:
            also_changed = bool(also(st, running))
            common.save_state(st)
    changed = [c for c in wanted if c in created or c.started or c.stopped]
    log("kubeconfig: %s (contexts: %s)" % (common.kubeconfig_path(), ", ".join(c.name for c in running)))
    if changed:
        log("%s in %.1fs" % ("; ".join(("created %s" if c in created else "repaired %s") % _summary(c)
                                       for c in changed), time.monotonic() - t0))
    elif also_changed:  # it said what it did
        log("%d cluster(s) already running (%.1fs)" % (len(wanted), time.monotonic() - t0))
    else:
        log("nothing to do: %d cluster(s) already running (%.1fs)" % (len(wanted), time.monotonic() - t0))
    print("SANDBOX_CHANGED=%s" % ("true" if changed or also_changed else "false"), flush=True)
    return bool(changed) or also_changed
