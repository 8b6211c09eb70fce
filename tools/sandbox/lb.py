# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's LoadBalancer controller: what a cloud provider (or kind's cloud-provider-kind) does
for Services of type LoadBalancer, without the traffic.

Every Service of type LoadBalancer (``spec.loadBalancerClass`` unset or ``LB_CLASS``) gets one address
in ``status.loadBalancer.ingress`` (``[{"ip": ..., "ipMode": "VIP"}]``, written through the status
subresource), so that e.g. istio's east-west gateway Service ``istio-system/istio-eastwestgateway`` has
an address istiod uses as its network's gateway.  Nothing listens on these addresses.

Addresses: cluster N takes them from 127.0.N.0/24 (``common.lb_pool``), lowest free first, starting at
127.0.N.1; ``spec.loadBalancerIP`` is used when set (unless another Service has it).  A Service keeps the
address its status shows (so a restarted controller changes nothing); a Service deleted or no longer of
type LoadBalancer frees its address (its status is emptied).

One process for the whole sandbox (``python3 -m tools.sandbox.lb --sandbox-dir DIR``, standard
library only), started by ``up`` (``ensure``), stopped by ``down`` (``stop``); one thread per cluster
whose kube-apiserver runs: it lists the Services, then watches them (re-listing after a 410 Gone or
an error), and writes its view to ``.sandbox/lb/lb-controller.json``.  Log: ``.sandbox/lb/lb-controller.log``.

The same process plays the kubelet for each cluster's out-of-cluster istiod: a new pod template of
Deployment istio-system/istiod restarts it (rollout.py), and its cacerts directory follows Secret
istio-system/cacerts (cacerts.py); both log here.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse

from . import cacerts, cluster, common, rollout
from .common import SandboxError, log

# the loadBalancerClass this controller serves besides none (Services of any other class are left alone)
LB_CLASS = "sandbox.meshfed.io/loadbalancer"
# seconds between looks for clusters whose kube-apiserver started or stopped
DISCOVERY_INTERVAL = 2.0
# server-side length of one watch request (the next one resumes at the last resourceVersion seen)
WATCH_SECONDS = 240
# reconnect delays after an error (doubling)
MIN_BACKOFF, MAX_BACKOFF = 0.5, 4.0
# seconds `up` waits for the controller to list and watch every running cluster
SYNC_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_LB_TIMEOUT", "30"))


# ---------------------------------------------------------------- paths


def lb_dir() -> str:
    return os.path.join(common.sandbox_dir(), "lb")


def pid_path() -> str:
    return os.path.join(lb_dir(), "lb-controller.pid")


def log_path() -> str:
    return os.path.join(lb_dir(), "lb-controller.log")


def report_path() -> str:
    return os.path.join(lb_dir(), "lb-controller.json")


def pool_addresses(index: int) -> list:
    """Cluster `index`'s addresses in the order they are given: 127.0.<index>.1 ... 127.0.<index>.254."""
    return [str(ip) for ip in ipaddress.ip_network(common.lb_pool(index)).hosts()]


# ---------------------------------------------------------------- what each Service gets (pure)


@dataclasses.dataclass(frozen=True)
class Svc:
    """What the address plan needs to know about one Service."""

    key: str  # namespace/name
    wants_lb: bool = False  # type LoadBalancer, class unset or ours
    foreign: bool = False  # type LoadBalancer of another class: not ours to touch
    requested: str = ""  # spec.loadBalancerIP
    current: tuple = ()  # the IPs in status.loadBalancer.ingress
    created: str = ""  # metadata.creationTimestamp (RFC 3339, sorts as text)


def key_of(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return "%s/%s" % (meta.get("namespace", ""), meta.get("name", ""))


def status_ingress(obj: dict) -> list:
    return ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []


def view(obj: dict) -> Svc:
    spec = obj.get("spec") or {}
    is_lb = spec.get("type") == "LoadBalancer"
    ours = spec.get("loadBalancerClass") in (None, "", LB_CLASS)
    return Svc(key=key_of(obj), wants_lb=is_lb and ours, foreign=is_lb and not ours,
               requested=spec.get("loadBalancerIP") or "",
               current=tuple(i["ip"] for i in status_ingress(obj) if i.get("ip")),
               created=(obj.get("metadata") or {}).get("creationTimestamp") or "")


def ingress(ip) -> list:
    """status.loadBalancer.ingress for the address `ip` (None: no address)."""
    return [{"ip": ip, "ipMode": "VIP"}] if ip else []


def _ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
        return True
    except ValueError:
        return False


def plan(svcs, pool: list) -> tuple:
    """(addresses, pending) for one cluster's Services.

    addresses: every Service this controller is responsible for (all but LoadBalancers of another
    class) -> the one address its status should show, or None (no address: not a LoadBalancer, or
    pending).  pending: LoadBalancers left without an address -> why.

    In this order, oldest Service first (creationTimestamp, then namespace/name): 1. an address a
    Service's status already shows stays its own (if it is the spec.loadBalancerIP asked for, or,
    without one, a pool address); 2. a spec.loadBalancerIP not held by another Service is given;
    3. the others get the lowest free pool address.
    """
    in_pool = set(pool)
    addresses = {s.key: None for s in svcs if not s.foreign}
    pending = {}
    taken = {ip: s.key for s in svcs if s.foreign for ip in s.current}
    lbs = sorted((s for s in svcs if s.wants_lb), key=lambda s: (s.created, s.key))

    def give(svc: Svc, ip: str) -> None:
        addresses[svc.key] = ip
        taken[ip] = svc.key

    for s in lbs:
        keep = next((ip for ip in s.current
                     if ip not in taken and (ip == s.requested if s.requested else ip in in_pool)), None)
        if keep:
            give(s, keep)
    for s in lbs:
        if addresses[s.key] or not s.requested:
            continue
        if not _ipv4(s.requested):
            pending[s.key] = "spec.loadBalancerIP %s is not an IPv4 address" % s.requested
        elif s.requested in taken:
            pending[s.key] = "spec.loadBalancerIP %s is in use by %s" % (s.requested, taken[s.requested])
        else:
            give(s, s.requested)
    free = iter([ip for ip in pool if ip not in taken])
    for s in lbs:
        if addresses[s.key] or s.requested:
            continue
        ip = next(free, None)
        if ip is None:
            pending[s.key] = "every address of the pool %s-%s is in use" % (pool[0], pool[-1])
        else:
            give(s, ip)
    return addresses, pending


# ---------------------------------------------------------------- the controller process


def _say(msg: str) -> None:
    print("%s %s" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg), flush=True)


class Gone(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class Watcher(threading.Thread):
    """Lists and watches the Services of one cluster and keeps their LoadBalancer status right."""

    def __init__(self, ctrl: "Controller", name: str):
        super().__init__(name="lb-" + name, daemon=True)
        self.ctrl = ctrl
        self.cluster = cluster.Cluster(name)
        self.pool = pool_addresses(self.cluster.index)
        self.halt = threading.Event()
        self.services = {}  # namespace/name -> the Service as last seen
        self.told = set()  # messages about one Service already logged (pending reasons, failed patches)
        self.failure = None  # the last connection failure logged (None: connected, or not tried yet)

    def say(self, msg: str) -> None:
        _say("%s: %s" % (self.cluster.name, msg))

    def run(self) -> None:
        backoff = MIN_BACKOFF
        while not self.halt.is_set():
            try:
                self.sync_and_watch()
                backoff = MIN_BACKOFF
            except Gone:
                self.say("the watch's resourceVersion is too old (410 Gone); listing the Services again")
            except Exception as e:  # pylint: disable=broad-except
                # API server down or restarting (API_ERRORS, SandboxError), a malformed answer, or a bug:
                # say so once, then list again after a growing pause
                expected = isinstance(e, (SandboxError, ValueError, KeyError) + common.API_ERRORS)
                msg = "%s: %s" % (type(e).__name__, e)
                self.ctrl.update(self.cluster.name, synced=False, error=msg)
                if msg != self.failure:
                    self.say("cannot list or watch the Services (%s); trying again" % msg
                             + ("" if expected else "\n" + traceback.format_exc()))
                    self.failure = msg
                self.halt.wait(backoff)
                backoff = min(2 * backoff, MAX_BACKOFF)

    def sync_and_watch(self) -> None:
        apiserver_pid = self.cluster.pids()["kube-apiserver"]
        api = self.cluster.api()
        status, payload = api.get("/api/v1/services", timeout=30)
        if status != 200:
            raise SandboxError("listing the Services: HTTP %d %s" % (status, common.short(payload)))
        self.services = {key_of(o): o for o in payload.get("items") or []}
        rv = payload["metadata"]["resourceVersion"]
        self.reconcile(api)
        if self.failure is not None or not self.ctrl.ever_synced(self.cluster.name):
            self.say("watching the Services (API server %s, pid %d; pool %s)"
                     % (api.server, apiserver_pid, common.lb_pool(self.cluster.index)))
        self.failure = None
        self.ctrl.update(self.cluster.name, synced=True, api_server=api.server, api_server_pid=apiserver_pid,
                         error="")
        while not self.halt.is_set():
            rv = self.watch_once(api, rv)

    def watch_once(self, api: common.Api, rv: str) -> str:
        """One watch request from resourceVersion `rv`; returns the last resourceVersion seen."""
        path = "/api/v1/services?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%d" % (
            urllib.parse.quote(rv), WATCH_SECONDS)
        try:
            for event in api.watch(path, timeout=WATCH_SECONDS + 30):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise SandboxError("the watch failed: %s" % common.short(obj))
                rv = obj["metadata"]["resourceVersion"]
                if kind == "BOOKMARK":
                    continue
                key = key_of(obj)
                before = view(self.services.get(key) or {})
                if kind == "DELETED":
                    self.services.pop(key, None)
                    self.told = {t for t in self.told if t[0] != key}
                    if before.wants_lb and before.current:
                        self.say("%s deleted: %s is free again" % (key, ", ".join(before.current)))
                else:
                    self.services[key] = obj
                    now = view(obj)
                    if before.wants_lb and before.current and not now.wants_lb and not now.current:
                        # the API server empties the status itself when the type changes
                        self.say("%s is no longer of type LoadBalancer: %s is free again"
                                 % (key, ", ".join(before.current)))
                self.reconcile(api)
                if self.halt.is_set():
                    break
        except urllib.error.HTTPError as e:
            if e.code == 410:
                raise Gone() from e
            raise
        return rv

    def reconcile(self, api: common.Api) -> None:
        """Give every Service the status the plan says, then report what the Services show."""
        addresses, pending = plan([view(o) for o in self.services.values()], self.pool)
        for key, ip in sorted(addresses.items()):
            obj = self.services.get(key)
            if obj is not None and status_ingress(obj) != ingress(ip):
                self.patch(api, obj, ip, pending.get(key))
        for key, why in sorted(pending.items()):
            self.tell(key, "%s: no address: %s" % (key, why))
        shown = {}
        for key, obj in sorted(self.services.items()):
            s = view(obj)
            if s.wants_lb and s.current:
                shown[key] = s.current[0]
        self.ctrl.update(self.cluster.name, addresses=shown, pending=pending)

    def patch(self, api: common.Api, obj: dict, ip, why_pending) -> None:
        meta = obj["metadata"]
        key, old = key_of(obj), view(obj).current
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]},  # a precondition: 409 if it changed
                "status": {"loadBalancer": {"ingress": ingress(ip) or None}}}  # null removes the list
        status, payload = api.request("PATCH", "/api/v1/namespaces/%s/services/%s/status" % (
            meta["namespace"], meta["name"]), body, content_type="application/merge-patch+json")
        if status == 200 and isinstance(payload, dict):
            self.services[key] = payload
            if ip:
                self.say("%s: %s%s" % (key, ip, " (was %s)" % ", ".join(old) if old else ""))
            else:
                what = "%s released" % ", ".join(old) if old else "status emptied"
                self.say("%s: %s (%s)" % (key, what, why_pending or "not of type LoadBalancer"))
        elif status not in (404, 409):  # 404: deleted, 409: changed meanwhile; its watch event follows
            self.tell(key, "%s: writing its status failed: HTTP %d %s" % (key, status, common.short(payload)))

    def tell(self, key: str, msg: str) -> None:
        """Log a message about one Service once (until the Service is deleted)."""
        if (key, msg) not in self.told:
            self.told.add((key, msg))
            self.say(msg)


class Controller:
    """One Watcher per cluster whose kube-apiserver runs; their views are written to lb-controller.json."""

    def __init__(self):
        self.lock = threading.Lock()
        self.report = {}  # cluster -> {"synced", "api_server", "api_server_pid", "addresses", "pending", ...}
        self.synced_once = set()
        self.watchers = {}
        self.rollouts = {}  # cluster -> rollout.Watcher: its sandbox istiod follows its Deployment
        self.cacerts = {}  # cluster -> cacerts.Syncer: its istiod's cacerts directory follows the Secret

    def ever_synced(self, name: str) -> bool:
        with self.lock:
            return name in self.synced_once

    def update(self, name: str, **fields) -> None:
        with self.lock:
            entry = self.report.setdefault(name, {"pool": common.lb_pool(common.cluster_index(name)),
                                                  "synced": False, "addresses": {}, "pending": {}})
            entry.update(fields)
            if entry["synced"]:
                self.synced_once.add(name)
            self._write()

    def forget(self, name: str) -> None:
        with self.lock:
            self.report.pop(name, None)
            self._write()

    def _write(self) -> None:
        data = {"pid": os.getpid(), "class": LB_CLASS, "clusters": self.report}
        common.write_file_atomic(report_path(), json.dumps(data, indent=2, sort_keys=True) + "\n", 0o644)

    def run(self) -> None:
        _say("LoadBalancer controller started (pid %d, sandbox %s): cluster N's Services of type LoadBalancer "
             "(class unset or %s) get addresses from 127.0.N.0/24" % (os.getpid(), common.sandbox_dir(), LB_CLASS))
        with self.lock:
            self._write()
        while True:
            if common.read_pid(pid_path()) != os.getpid():
                _say("%s no longer names this process; exiting" % pid_path())
                return
            self.discover()
            time.sleep(DISCOVERY_INTERVAL)

    def discover(self) -> None:
        """Start a Watcher for each cluster whose kube-apiserver runs; stop those of the others."""
        live = {n for n in cluster.existing_clusters() if cluster.Cluster(n).pids()["kube-apiserver"]}
        for name in sorted(live):
            w = self.watchers.get(name)
            if w is None or not w.is_alive():
                self.watchers[name] = Watcher(self, name)
                self.watchers[name].start()
            r = self.rollouts.get(name)
            if r is None or not r.is_alive():
                self.rollouts[name] = rollout.Watcher(name, _say)
                self.rollouts[name].start()
            c = self.cacerts.get(name)
            if c is None or not c.is_alive():
                self.cacerts[name] = cacerts.Syncer(name, _say)
                self.cacerts[name].start()
        for threads in (self.rollouts, self.cacerts):
            for name, r in list(threads.items()):
                if name not in live:
                    r.halt.set()
                    del threads[name]
        for name, w in list(self.watchers.items()):
            if name in live:
                continue
            if not w.halt.is_set():
                _say("%s: its kube-apiserver does not run; no longer watching it" % name)
                w.halt.set()
            if not w.is_alive():
                del self.watchers[name]
                self.forget(name)


def _exit_on_sigterm(signum, _frame) -> None:
    _say("stopping (signal %d)" % signum)
    os._exit(0)  # the watcher threads hold blocking reads; nothing needs to be flushed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m tools.sandbox.lb", description=__doc__.split("\n", 1)[0])
    p.add_argument("--sandbox-dir", required=True, help="the sandbox's state directory (.sandbox)")
    args = p.parse_args(argv)
    os.environ["MESHFED_SANDBOX_DIR"] = args.sandbox_dir
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    common.write_file_atomic(pid_path(), "%d\n" % os.getpid(), 0o644)
    Controller().run()
    return 0


# ---------------------------------------------------------------- managed by up / down / status


def running_pid() -> int:
    """The pid of this sandbox's controller named by its pid file, or 0."""
    pid = common.read_pid(pid_path())
    if common.pid_alive(pid) and common.is_lb_controller(common.proc_cmdline(pid), common.sandbox_dir()):
        return pid
    return 0


def read_report() -> dict:
    try:
        with open(report_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _lagging(pid: int, running: list) -> list:
    """Names of the running clusters the controller `pid` does not watch (yet) at their current API server."""
    report = read_report()
    clusters = report.get("clusters") or {} if report.get("pid") == pid else {}
    out = []
    for c in running:
        entry = clusters.get(c.name) or {}
        if not entry.get("synced") or entry.get("api_server_pid") != c.pids()["kube-apiserver"]:
            out.append(c.name)
    return out


def _tail(n: int = 12) -> str:
    try:
        with open(log_path(), errors="replace") as f:
            return "\n".join("  | " + line.rstrip() for line in f.readlines()[-n:])
    except OSError:
        return ""


def _wait_synced(pid: int, running: list, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    progress = common.Progress()
    while True:
        if not common.pid_alive(pid):
            raise SandboxError("the LoadBalancer controller (pid %d) exited; see %s\n%s" % (pid, log_path(), _tail()))
        lagging = _lagging(pid, running)
        if not lagging:
            return
        if time.monotonic() >= deadline:
            raise SandboxError("the LoadBalancer controller (pid %d) did not list and watch the Services of %s "
                               "within %gs (MESHFED_SANDBOX_LB_TIMEOUT); see %s\n%s"
                               % (pid, ", ".join(lagging), timeout, log_path(), _tail()))
        progress.tick("waiting for the LoadBalancer controller to watch the Services of %s" % ", ".join(lagging))
        time.sleep(0.2)


def _start() -> int:
    os.makedirs(lb_dir(), exist_ok=True)
    if os.path.exists(report_path()):
        os.unlink(report_path())
    argv = [sys.executable, "-m", common.LB_MODULE, "--sandbox-dir", common.sandbox_dir()]
    env = dict(os.environ, MESHFED_SANDBOX_DIR=common.sandbox_dir(), PYTHONUNBUFFERED="1")
    with open(log_path(), "a") as lf:
        lf.write("\n==== %s start: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), " ".join(argv)))
        lf.flush()
        proc = subprocess.Popen(argv, cwd=common.REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=lf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    common.write_file_atomic(pid_path(), "%d\n" % proc.pid, 0o644)
    return proc.pid


def _strays(keep: int) -> list:
    return [pid for pid, name in common.sandbox_processes() if name == common.LB_PROCESS and pid != keep]


def ensure(st: dict, running: list) -> bool:
    """Run the controller (start it when it does not run) and wait until it watches the Services of every
    running cluster; a running one that does not is restarted once.  Records it in `st`.  Returns True
    when it started the controller."""
    pid = running_pid()
    strays = _strays(pid)
    if strays:
        log("stopping stray LoadBalancer controller(s) %s (no pid file names them)" % ", ".join(map(str, strays)))
        common.terminate(strays, "stray LoadBalancer controller", timeout=5)
    started = False
    if pid:
        try:
            _wait_synced(pid, running, min(SYNC_TIMEOUT, 15.0))
            log("LoadBalancer controller: running (pid %d, log %s)" % (pid, log_path()))
        except SandboxError as e:
            log("LoadBalancer controller (pid %d) is not well (%s); restarting it"
                % (pid, str(e).split("\n", maxsplit=1)[0]))
            common.terminate([pid], "LoadBalancer controller", timeout=5)
            pid = 0
    else:
        old = common.read_pid(pid_path())
        if old:
            log("LoadBalancer controller (pid %d) is gone; starting it again" % old)
    if not pid:
        pid = _start()
        started = True
        log("LoadBalancer controller: started (pid %d, log %s)" % (pid, log_path()))
        _wait_synced(pid, running, SYNC_TIMEOUT)
    st["lb_controller"] = info()
    return started


def stop() -> bool:
    """Stop the controller (and any stray one); True when one was running."""
    pids = sorted({p for p in [running_pid()] + _strays(0) if p})
    if pids:
        log("stopping the LoadBalancer controller (pid %s)" % ", ".join(map(str, pids)))
        common.terminate(pids, "LoadBalancer controller", timeout=5)
    for path in (pid_path(), report_path()):
        if os.path.exists(path):
            os.unlink(path)
    return bool(pids)


def info() -> dict:
    return {"pid": running_pid(), "log": log_path(), "report": report_path(), "class": LB_CLASS,
            "pools": {n: common.lb_pool(common.cluster_index(n)) for n in cluster.existing_clusters()}}


if __name__ == "__main__":
    sys.exit(main())
