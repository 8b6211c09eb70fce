# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ClusterIPs of each cluster's istiod Services reach that cluster's out-of-cluster istiod.

In a real cluster kube-proxy sends a Service's ClusterIP to the istiod Pod; kube-apiserver
calls the injection and validation webhooks (``clientConfig.service: istio-system/istiod:443``)
that way.  The sandbox has no kube-proxy and its istiods run as local processes, so this
relay does the same job: for every Service in ``istio-system`` whose selector has
``app: istiod`` (``istiod``, ``istiod-<rev>``, ``istiod-revision-tag-*``) it adds the
ClusterIP as a /32 to ``lo`` (labelled with this sandbox's ``lo:sb<hash>``, so that
``down`` removes exactly its own addresses and another sandbox's are recognised) and
relays TCP from ClusterIP:port to 127.0.0.1:<the istiod port of the Service's targetPort>.

It also stands in for the east-west gateway where install_istio exposes istiod through it (Istio's
``expose-istiod.yaml``: Gateway ``istiod-gateway`` in istio-system, selector ``istio: eastwestgateway``,
TLS PASSTHROUGH servers on 15012 and 15017, what ``install_istio_expose_istiod: true`` applies): while
such a Gateway exists and the gateway's Service (type LoadBalancer, selecting the Gateway's Pods) has
an ingress IP from the sandbox LoadBalancer controller (``127.0.<index>.x``) and the server's port, it
relays <that IP>:15012 to the cluster's istiod XDS/CA port and :15017 to its webhook port, as the
gateway would pass the TLS through to istiod.  That is how a VM reaches istiod.  Addresses in
127.0.0.0/8 are local already and are not added to ``lo``.

One background process per sandbox (``python3 -m tools.sandbox.svcproxy --sandbox-dir DIR``,
pid file and log in ``.sandbox/svcproxy/``) follows the Services with a gentle poll, since
istioctl creates them after the sandbox and its istiods started.  Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from . import cluster, common, istiod
from .common import SandboxError, log

NAMESPACE = "istio-system"
SERVICES_PATH = "/api/v1/namespaces/%s/services" % NAMESPACE
MODULE = "tools.sandbox.svcproxy"
# seconds between two looks at the Services (MESHFED_SANDBOX_SVCPROXY_POLL)
POLL = float(os.environ.get("MESHFED_SANDBOX_SVCPROXY_POLL", "1"))
# seconds `ensure` waits for a (re)started relay's first pass
FIRST_PASS_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
# seconds a refused connect to istiod is tried again (its restart gap; below the webhooks' 10 s timeout)
UPSTREAM_WAIT = float(os.environ.get("MESHFED_SANDBOX_SVCPROXY_UPSTREAM_WAIT", "8"))
# seconds between ending connections and removing their address from lo
CLOSE_GRACE = 0.2

# istiod's container ports (a Service's targetPort) -> the key of istiod.ports_for()
TARGETS = {15010: "grpc", 15012: "secure_grpc", 15014: "monitoring", 15017: "https", 8080: "http"}

# the ports of the expose-istiod Gateway's servers -> the key of istiod.ports_for() they reach: Istio's
# expose-istiod VirtualService routes 15012 to istiod:15012 and 15017 to istiod:443 (targetPort 15017)
GATEWAY_TARGETS = {15012: "secure_grpc", 15017: "https"}
GATEWAYS_PATH = "/apis/networking.istio.io/v1/namespaces/%s/gateways" % NAMESPACE

CAP_NET_ADMIN = 12


def workdir() -> str:
    return os.path.join(common.sandbox_dir(), "svcproxy")


def pid_file() -> str:
    return os.path.join(workdir(), "svcproxy.pid")


def log_file() -> str:
    return os.path.join(workdir(), "svcproxy.log")


def status_file() -> str:
    return os.path.join(workdir(), "status.json")


def address_label(sdir: str) -> str:
    """The label of the lo addresses of the sandbox in `sdir`: ``lo:sb`` + 8 hex digits (at most 15 characters)."""
    return "lo:sb" + hashlib.sha256(os.path.abspath(sdir).encode()).hexdigest()[:8]


def enabled() -> bool:
    return os.environ.get("MESHFED_SANDBOX_SVCPROXY", "1").strip().lower() not in ("0", "false", "no", "off")


def why_not_possible() -> str:
    """Why this process cannot add addresses to lo (empty when it can)."""
    if not shutil.which("ip"):
        return "the `ip` command (iproute2) is missing"
    try:
        with open("/proc/self/status") as f:
            caps = next((int(line.split()[1], 16) for line in f if line.startswith("CapEff:")), 0)
    except OSError:
        caps = 0
    if not caps & (1 << CAP_NET_ADMIN):
        return "adding the ClusterIPs to lo needs CAP_NET_ADMIN (run as root)"
    return ""


# ---------------------------------------------------------------- plan (pure)


def istiod_services(services: list) -> list:
    """The Services that select istiod Pods (selector app=istiod), by name."""
    return sorted((s for s in services if ((s.get("spec") or {}).get("selector") or {}).get("app") == "istiod"),
                  key=lambda s: s["metadata"]["name"])


def service_ipv4s(spec: dict) -> list:
    """The IPv4 ClusterIPs of a Service spec (none for a headless Service)."""
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    out = []
    for ip in ips:
        with contextlib.suppress(ValueError, TypeError):
            if ipaddress.ip_address(ip).version == 4:
                out.append(ip)
    return out


def gateway_servers(gateway: dict) -> list:
    """(port, istiod port key) of the TLS PASSTHROUGH servers of a Gateway on the expose-istiod ports."""
    out = []
    for server in (gateway.get("spec") or {}).get("servers") or []:
        port = server.get("port") or {}
        number = port.get("number")
        if (number in GATEWAY_TARGETS and str(port.get("protocol", "")).upper() == "TLS"
                and str((server.get("tls") or {}).get("mode", "")).upper() == "PASSTHROUGH"):
            out.append((number, GATEWAY_TARGETS[number]))
    return sorted(set(out))


def gateway_services(gateway: dict, services: list) -> list:
    """The Services in front of a Gateway's Pods: every label of the Gateway's selector is in the Service's
    selector (the Pods the Service selects carry them)."""
    selector = (gateway.get("spec") or {}).get("selector") or {}
    if not selector:
        return []
    out = []
    for svc in services:
        sel = (svc.get("spec") or {}).get("selector") or {}
        if all(sel.get(k) == v for k, v in selector.items()):
            out.append(svc)
    return sorted(out, key=lambda s: s["metadata"]["name"])


def ingress_ipv4s(svc: dict) -> list:
    out = []
    for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        with contextlib.suppress(ValueError, TypeError):
            if ipaddress.ip_address(ing.get("ip")).version == 4:
                out.append(ing["ip"])
    return out


def _gateway_relays(name: str, services: list, gateways: list, ports: dict, owner: dict, relays: dict, problems: list):
    for gw in sorted(gateways, key=lambda g: g["metadata"]["name"]):
        servers = gateway_servers(gw)
        if not servers:
            continue
        ref = "%s Gateway %s/%s" % (name, NAMESPACE, gw["metadata"]["name"])
        svcs = gateway_services(gw, services)
        if not svcs:
            problems.append("%s: no Service in %s selects its Pods (selector %s); istiod is not exposed"
                            % (ref, NAMESPACE, json.dumps((gw.get("spec") or {}).get("selector"), sort_keys=True)))
            continue
        for svc in svcs:
            sref = "%s (Service %s)" % (ref, svc["metadata"]["name"])
            kind = (svc.get("spec") or {}).get("type") or "ClusterIP"
            if kind != "LoadBalancer":
                problems.append("%s: the Service is of type %s; the sandbox relays LoadBalancer addresses only "
                                "(istiod is not exposed at a gateway address)" % (sref, kind))
                continue
            ips = ingress_ipv4s(svc)
            if not ips:
                problems.append("%s: the Service has no LoadBalancer address yet; istiod is not exposed" % sref)
                continue
            svc_ports = {p.get("port") for p in (svc.get("spec") or {}).get("ports") or [] if p.get("protocol", "TCP") == "TCP"}
            for number, key in servers:
                if number not in svc_ports:
                    problems.append("%s: the Service has no port %d; not relayed" % (sref, number))
                    continue
                for ip in ips:
                    other = owner.setdefault(ip, name)
                    if other != name:
                        problems.append("%s has LoadBalancer address %s, which %s uses too; not relayed" % (sref, ip, other))
                        continue
                    relays[(ip, number)] = {
                        "cluster": name, "service": svc["metadata"]["name"], "gateway": gw["metadata"]["name"],
                        "address": ip, "port": number, "target_port": number, "istiod_port": ports[key]}


def plan(services: dict, istiod_ports: dict, gateways=None):
    """What to relay.

    services: {cluster: [Service objects of its istio-system]}; istiod_ports: {cluster: istiod.ports_for() dict};
    gateways: {cluster: [Gateway objects of its istio-system]} (none: no gateway relays).
    Returns (relays, problems): relays {(ip, port): {"cluster", "service", "address", "port", "target_port",
    "istiod_port"}, plus "gateway" for a relay of the expose-istiod Gateway}, problems a list of messages (a port
    that maps to no istiod port, a ClusterIP that two clusters both use, an expose-istiod Gateway without an
    addressed Service).
    """
    relays, problems, owner = {}, [], {}
    for name in sorted(gateways or {}, key=common.cluster_index):
        if name in istiod_ports:
            _gateway_relays(name, services.get(name) or [], gateways[name], istiod_ports[name], owner, relays, problems)
    for name in sorted(services, key=common.cluster_index):
        for svc in istiod_services(services[name]):
            ref = "%s Service %s/%s" % (name, NAMESPACE, svc["metadata"]["name"])
            spec = svc.get("spec") or {}
            for ip in service_ipv4s(spec):
                other = owner.setdefault(ip, name)
                if other != name:
                    problems.append("%s has ClusterIP %s, which %s uses too: the clusters share a service CIDR "
                                    "(created before the sandbox gave each its own); `down` and `up` recreate "
                                    "them; not relayed" % (ref, ip, other))
                    continue
                for p in spec.get("ports") or []:
                    if p.get("protocol", "TCP") != "TCP":
                        continue
                    target = p.get("targetPort", p.get("port"))
                    key = TARGETS.get(target) if isinstance(target, int) else None
                    if key is None:
                        problems.append("%s port %s: targetPort %r is none of istiod's ports %s; not relayed"
                                        % (ref, p.get("port"), target, ", ".join(map(str, sorted(TARGETS)))))
                        continue
                    relays[(ip, p["port"])] = {
                        "cluster": name, "service": svc["metadata"]["name"], "address": ip, "port": p["port"],
                        "target_port": target, "istiod_port": istiod_ports[name][key]}
    return relays, problems


def parse_addresses(text: str) -> list:
    """(address, prefix length, device, label) of every IPv4 address in the output of `ip -o -4 addr show`."""
    out = []
    for line in text.splitlines():
        m = re.match(r"\d+:\s+(\S+)\s+inet\s+([\d.]+)/(\d+)\s.*?\s(\S+)\\", line)
        if m:
            out.append((m.group(2), int(m.group(3)), m.group(1), m.group(4)))
    return out


# ---------------------------------------------------------------- addresses on lo


def _ip(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, check=False)


def addresses() -> list:
    res = _ip("-o", "-4", "addr", "show")
    if res.returncode != 0:
        raise SandboxError("`ip -o -4 addr show` failed: %s" % res.stderr.strip())
    return parse_addresses(res.stdout)


def own_addresses(label: str) -> list:
    """The addresses on lo that carry `label` (this sandbox's)."""
    return sorted(a for a, _plen, dev, lab in addresses() if dev == "lo" and lab == label)


def holder(ip: str) -> str:
    """Who holds `ip` on this machine: '' (nobody) or e.g. "lo (label lo:sb1a2b3c4d)"."""
    for a, plen, dev, lab in addresses():
        if a == ip:
            return "%s/%d on %s (label %s)" % (a, plen, dev, lab)
    return ""


def add_address(ip: str, label: str) -> str:
    """Add ip/32 to lo with `label`; return '' or why not (the address is someone else's)."""
    res = _ip("addr", "add", ip + "/32", "dev", "lo", "label", label)
    if res.returncode == 0:
        return ""
    held = holder(ip)
    if held.endswith("(label %s)" % label):
        return ""  # ours already (e.g. left by a relay that was killed)
    if held:
        return ("%s is already on this machine: %s. Another sandbox (another checkout's relay; its label differs "
                "from this sandbox's %s) or the host holds it; not relayed" % (ip, held, label))
    return "`ip addr add %s/32 dev lo` failed: %s" % (ip, res.stderr.strip())


def remove_address(ip: str, label: str) -> None:
    if ip in own_addresses(label):
        _ip("addr", "del", ip + "/32", "dev", "lo")


def remove_own_addresses(sdir: str) -> list:
    """Remove every lo address of the sandbox in `sdir`; return them."""
    label = address_label(sdir)
    gone = own_addresses(label)
    for ip in gone:
        _ip("addr", "del", ip + "/32", "dev", "lo")
    return gone


# ---------------------------------------------------------------- the relay process


def _say(msg: str) -> None:
    print("%s %s" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg), flush=True)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class Listener:
    """Accepts on ClusterIP:port and relays every connection to 127.0.0.1:istiod_port."""

    def __init__(self, relay: dict):
        self.relay = relay
        self.connections = 0
        self.failures = 0
        self.counting = threading.Lock()
        self.clients = set()  # accepted connections still open
        self.closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((relay["address"], relay["port"]))
            self.sock.listen(128)
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(0.5)
        threading.Thread(target=self._accept, daemon=True).start()

    def describe(self) -> str:
        r = self.relay
        via = " (Gateway %s)" % r["gateway"] if r.get("gateway") else ""
        return "%s %s%s %s:%d -> 127.0.0.1:%d" % (r["cluster"], r["service"], via, r["address"], r["port"], r["istiod_port"])

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with self.counting:
            self.connections += 1
            self.clients.add(client)
        try:
            self._forward(client)
        finally:
            with self.counting:
                self.clients.discard(client)
            client.close()

    def _connect_upstream(self) -> socket.socket:
        """A connection to the istiod port.  Refused connects are tried again for UPSTREAM_WAIT
        seconds: while the sandbox restarts an istiod (a new pod template, `istiod --restart`)
        its port is closed for a few seconds, where a real cluster's rolling update keeps the
        old Pod serving until the new one is Ready, so kube-proxy always has an endpoint."""
        deadline = time.monotonic() + UPSTREAM_WAIT
        while True:
            try:
                return socket.create_connection(("127.0.0.1", self.relay["istiod_port"]), timeout=CONNECT_TIMEOUT)
            except ConnectionRefusedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = self._connect_upstream()
        except OSError as e:
            with self.counting:
                self.failures += 1
            _say("%s: istiod does not answer: %s" % (self.describe(), e))
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        upstream.close()

    def close(self) -> int:
        """Stop listening and end the open connections (their peers see a FIN: it must leave while the
        address is still on lo, or a client such as the API server keeps a dead pooled connection and
        fails its next call with "use of closed network connection").  Returns how many were open."""
        self.closed = True
        self.sock.close()
        with self.counting:
            clients = list(self.clients)
        for c in clients:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        return len(clients)


class Relay:
    """The loop of the relay process: look at the Services, bind and relay, report in status.json."""

    def __init__(self, sdir: str):
        self.sdir = sdir
        self.label = address_label(sdir)
        self.listeners = {}  # (ip, port) -> Listener
        self.known = {}  # cluster -> its istio-system Services at the last successful look
        self.known_gateways = {}  # cluster -> its istio-system Gateways at the last successful look
        self.apis = {}  # cluster -> (server URL, common.Api)
        self.problems = []
        self.stopping = threading.Event()
        self.passes = 0
        self.last_status = None

    def _api(self, c: cluster.Cluster) -> common.Api:
        # a recreated cluster may have the same URL but a new CA
        key = (c.server(), os.stat(c.path("pki", "ca.crt")).st_mtime_ns)
        cached = self.apis.get(c.name)
        if not cached or cached[0] != key:
            cached = self.apis[c.name] = (key, c.api())
        return cached[1]

    def look(self) -> tuple:
        """({cluster: Services}, {cluster: istiod ports}, problems).  A cluster whose API server does not
        answer, or that runs only partly (e.g. while `up` repairs it), keeps the Services seen last, as
        kube-proxy keeps its rules; those of a stopped or deleted cluster go."""
        states = {n: cluster.Cluster(n).state() for n in cluster.existing_clusters()}
        problems = []
        for name in list(self.known):
            if states.get(name) not in ("running", "partial"):
                del self.known[name]
                self.known_gateways.pop(name, None)
        for name in (n for n, state in states.items() if state == "running"):
            c = cluster.Cluster(name)
            try:
                status, payload = self._api(c).get(SERVICES_PATH, timeout=5)
                gw_status, gw_payload = self._api(c).get(GATEWAYS_PATH, timeout=5)
            except (SandboxError,) + common.API_ERRORS as e:
                problems.append("%s: listing Services and Gateways in %s failed: %s" % (name, NAMESPACE, e))
                continue
            if status == 200 and isinstance(payload, dict):
                self.known[name] = payload.get("items") or []
            else:
                problems.append("%s: listing Services in %s failed: HTTP %s" % (name, NAMESPACE, status))
            if gw_status == 200 and isinstance(gw_payload, dict):
                self.known_gateways[name] = gw_payload.get("items") or []
            elif gw_status == 404:  # no Istio CRDs (yet)
                self.known_gateways[name] = []
            else:
                problems.append("%s: listing Gateways in %s failed: HTTP %s" % (name, NAMESPACE, gw_status))
        state_istiods = common.load_state().get("istiods", {})
        ports = {n: (state_istiods.get(n) or {}).get("ports") or istiod.ports_for(common.cluster_index(n))
                 for n in self.known}
        return self.known, ports, problems

    def sync(self) -> None:
        services, ports, problems = self.look()
        wanted, more = plan(services, ports, {n: g for n, g in self.known_gateways.items() if n in services})
        problems += more
        ended = 0
        for key in list(self.listeners):
            lst = self.listeners[key]
            if wanted.get(key) != lst.relay:
                _say("stop %s" % lst.describe())
                ended += lst.close()
                del self.listeners[key]
        if ended:
            time.sleep(CLOSE_GRACE)  # let the FINs reach the peers before an address goes
        refused = {}  # address -> why it is not ours (asked once per pass)
        for key, relay in sorted(wanted.items()):
            if key in self.listeners:
                continue
            ip = relay["address"]
            if ip not in refused and ip not in {a for a, _port in self.listeners}:
                # 127.0.0.0/8 (the LoadBalancer pools) is on lo already
                refused[ip] = "" if ipaddress.ip_address(ip).is_loopback else add_address(ip, self.label)
            if refused.get(ip):
                msg = "%s Service %s/%s: %s" % (relay["cluster"], NAMESPACE, relay["service"], refused[ip])
                if msg not in problems:
                    problems.append(msg)
                continue
            try:
                self.listeners[key] = Listener(relay)
            except OSError as e:
                problems.append("%s Service %s/%s: listening on %s:%d failed: %s" % (
                    relay["cluster"], NAMESPACE, relay["service"], relay["address"], relay["port"], e))
                continue
            _say("relay %s" % self.listeners[key].describe())
        in_use = {ip for ip, _port in self.listeners}
        for ip in own_addresses(self.label):
            if ip not in in_use:
                _say("remove %s/32 from lo" % ip)
                remove_address(ip, self.label)
        for p in problems:
            if p not in self.problems:
                _say("problem: %s" % p)
        for p in self.problems:
            if p not in problems:
                _say("resolved: %s" % p)
        self.problems = problems
        self.passes += 1
        self.write_status()

    def status(self) -> dict:
        return {
            "pid": os.getpid(), "label": self.label, "sandbox_dir": self.sdir,
            "relays": [dict(lst.relay, connections=lst.connections, failures=lst.failures)
                       for _key, lst in sorted(self.listeners.items())],
            "addresses": sorted({ip for ip, _port in self.listeners}),
            "problems": self.problems, "first_pass_done": self.passes > 0,
        }

    def write_status(self) -> None:
        st = self.status()
        if st != self.last_status:
            common.write_file_atomic(status_file(), json.dumps(st, indent=2, sort_keys=True) + "\n", 0o644)
            self.last_status = st

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_a: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_a: self.stopping.set())
        _say("relay for %s started (pid %d, lo label %s, poll %gs)" % (self.sdir, os.getpid(), self.label, POLL))
        try:
            while not self.stopping.is_set():
                try:
                    self.sync()
                except (SandboxError, OSError) as e:
                    _say("pass failed: %s" % e)
                self.stopping.wait(POLL)
        finally:
            if sum(lst.close() for lst in self.listeners.values()):
                time.sleep(CLOSE_GRACE)
            gone = remove_own_addresses(self.sdir)
            _say("stopped; removed %s from lo" % (", ".join(gone) or "nothing"))
            with contextlib.suppress(OSError):
                os.unlink(status_file())


# ---------------------------------------------------------------- control (up, istiod, down, status)


def _is_relay(p: int) -> bool:
    """Process `p` is this sandbox's relay: ``-m tools.sandbox.svcproxy --sandbox-dir <this sandbox>``."""
    args = common.proc_cmdline(p)
    return (common.pid_alive(p) and any(a == "-m" and b == MODULE for a, b in zip(args, args[1:]))
            and any(a == "--sandbox-dir" and b == common.sandbox_dir() for a, b in zip(args, args[1:])))


def pid() -> int:
    """The pid of this sandbox's relay process, or 0: the one its pid file names, else one found by its
    command line (e.g. after the pid file was removed), so that `down` stops it all the same."""
    p = common.read_pid(pid_file())
    if p and _is_relay(p):
        return p
    return next((int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != os.getpid() and _is_relay(int(e))), 0)


def read_status() -> dict:
    try:
        with open(status_file()) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return {}
    return st if st.get("pid") == pid() else {}


@contextlib.contextmanager
def _lock():
    os.makedirs(workdir(), exist_ok=True)
    with open(os.path.join(workdir(), ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure() -> bool:
    """Start the relay unless it runs (or is disabled, or cannot bind addresses here); report what it
    relays and its problems.  Returns True when it was started."""
    if not enabled():
        return False
    why = why_not_possible()
    if why:
        log("svcproxy: not started: %s; webhooks and clients that reach istiod through its Service's "
            "ClusterIP get no answer (docs/sandbox.md)" % why)
        return False
    with _lock():
        started = False
        if not pid():
            sdir = common.sandbox_dir()
            env = dict(os.environ, MESHFED_SANDBOX_DIR=sdir)
            with open(log_file(), "a") as lf:
                proc = subprocess.Popen([sys.executable, "-m", MODULE, "--sandbox-dir", sdir], cwd=common.REPO_ROOT,
                                        env=env, stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            common.write_file_atomic(pid_file(), "%d\n" % proc.pid, 0o644)
            log("svcproxy: started the ClusterIP relay for istiod Services (pid %d, log %s)" % (proc.pid, log_file()))
            started = True
            deadline = time.monotonic() + FIRST_PASS_TIMEOUT
            while not read_status().get("first_pass_done"):
                if proc.poll() is not None:
                    raise SandboxError("svcproxy: the relay exited with code %s; see %s"
                                       % (proc.returncode, log_file()))
                if time.monotonic() > deadline:
                    raise SandboxError("svcproxy: the relay did not finish its first pass within %gs; see %s"
                                       % (FIRST_PASS_TIMEOUT, log_file()))
                time.sleep(0.1)
        report(read_status())
    return started


def report(st: dict) -> None:
    """One line per relayed Service, one per problem."""
    services = {}
    for r in st.get("relays", []):
        services.setdefault((r["cluster"], r["service"], r["address"], r.get("gateway") or ""), []).append(
            "%d->%d" % (r["port"], r["istiod_port"]))
    for (name, service, address, gateway), ports in sorted(services.items()):
        if gateway:
            log("svcproxy: %s Gateway %s/%s: east-west gateway %s LoadBalancer address %s, ports %s (-> istiod on 127.0.0.1)"
                % (name, NAMESPACE, gateway, service, address, " ".join(ports)))
        else:
            log("svcproxy: %s %s/%s %s, ports %s (ClusterIP port -> istiod on 127.0.0.1)"
                % (name, NAMESPACE, service, address, " ".join(ports)))
    for p in st.get("problems", []):
        log("svcproxy: problem: %s" % p)


def stop() -> bool:
    """Stop the relay (it removes its lo addresses) and remove what a killed one left on lo."""
    p = pid()
    if p:
        log("svcproxy: stopping the ClusterIP relay (pid %d)" % p)
        common.terminate([p], "svcproxy", timeout=10)
    if os.path.exists(pid_file()):
        os.unlink(pid_file())
    gone = remove_own_addresses(common.sandbox_dir()) if not why_not_possible() else []
    if gone:
        log("svcproxy: removed %s from lo" % ", ".join(gone))
    with contextlib.suppress(OSError):
        os.unlink(status_file())
    return bool(p or gone)


def status_data() -> dict:
    st = read_status()
    return {"pid": pid(), "log": log_file(), "label": address_label(common.sandbox_dir()),
            "relays": st.get("relays", []), "problems": st.get("problems", [])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m %s" % MODULE, description=__doc__.splitlines()[0])
    ap.add_argument("--sandbox-dir", required=True, help="the sandbox's state directory (.sandbox)")
    args = ap.parse_args(argv)
    os.environ["MESHFED_SANDBOX_DIR"] = args.sandbox_dir
    Relay(args.sandbox_dir).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
