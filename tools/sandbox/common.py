# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers of the sandbox runtime: paths, state file, processes, ports, API calls.

Standard library only: ``python3 -m tools.sandbox up|down|status|istiod`` must run
with the system Python, without the project's virtualenv.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import http.client
import json
import os
import re
import signal
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request

from . import build, versions

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sandbox_dir() -> str:
    """All runtime state lives here (git-ignored); MESHFED_SANDBOX_DIR overrides it."""
    return os.path.abspath(os.environ.get("MESHFED_SANDBOX_DIR") or os.path.join(REPO_ROOT, ".sandbox"))


def kwok_workdir() -> str:
    return os.path.join(sandbox_dir(), "kwok")


def kubeconfig_path() -> str:
    return os.path.join(sandbox_dir(), "kubeconfig")


def state_path() -> str:
    return os.path.join(sandbox_dir(), "state.json")


def cluster_name(index: int) -> str:
    return "cluster%d" % index


def cluster_index(name: str) -> int:
    m = re.fullmatch(r"cluster([1-9][0-9]?)", name)
    if not m:
        raise SandboxError("%r is not a sandbox cluster name (cluster1, cluster2, ...)" % name)
    return int(m.group(1))


def gateway_address(index: int) -> str:
    """The fixed east-west gateway address the sandbox inventories give a cluster (``mesh_gateway_address``:
    127.0.0.11, 127.0.0.12, ...), recorded in state.json as ``gateway_address``.

    It is an override, not what the cluster's LoadBalancer controller (``lb.py``) assigns: Services of
    type LoadBalancer get addresses from ``lb_pool(index)`` (127.0.<index>.0/24), which never contains it.
    """
    return "127.0.0.%d" % (10 + index)


def lb_pool(index: int) -> str:
    """The CIDR the sandbox LoadBalancer controller (``lb.py``) takes cluster ``index``'s Service addresses from."""
    return "127.0.%d.0/24" % index


class SandboxError(Exception):
    """A failure with a message that names its cause."""


def log(msg: str) -> None:
    print("[sandbox] %s" % msg, flush=True)


class Progress:
    """Says what a long wait waits for: once it has lasted `first` seconds, then every `every` seconds."""

    def __init__(self, first: float = 10.0, every: float = 15.0):
        self.t0 = time.monotonic()
        self.due = first
        self.every = every

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def tick(self, what: str) -> None:
        """Log `what` (e.g. "cluster2: waiting for the node to become Ready") when it is due."""
        if self.elapsed() >= self.due:
            log("%s (%.0fs so far)" % (what, self.elapsed()))
            self.due = self.elapsed() + self.every


# ---------------------------------------------------------------- files


def write_file_atomic(path: str, data: str, mode: int = 0o600) -> None:
    """Write via a temporary file and rename; leave the file alone when its content is unchanged."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(OSError):
        with open(path) as f:
            if f.read() == data and (os.stat(path).st_mode & 0o777) == mode:
                return
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_state() -> dict:
    try:
        with open(state_path()) as f:
            st = json.load(f)
    except (OSError, ValueError):
        st = {}
    st.setdefault("clusters", {})
    st.setdefault("istiods", {})
    return st


def save_state(st: dict) -> None:
    st["schema"] = 1
    st["sandbox_dir"] = sandbox_dir()
    st["kubeconfig"] = kubeconfig_path()
    st["kubernetes_version"] = "v" + versions.KUBERNETES
    st["istio_version"] = versions.ISTIO_VERSION
    st["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_file_atomic(state_path(), json.dumps(st, indent=2, sort_keys=True) + "\n", 0o644)


@contextlib.contextmanager
def dir_lock(directory: str, waiting: str, name: str = ".lock"):
    """An exclusive lock on ``directory``/``name``; ``waiting`` is said when another holder makes us wait."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(waiting)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def sandbox_lock():
    """Serialise sandbox commands (pytest and molecule may call `up` at the same time)."""
    return dir_lock(sandbox_dir(), "another sandbox command is running; waiting for it")


# ---------------------------------------------------------------- binaries


def binary(name: str) -> str:
    path = os.path.join(build.bin_dir(), name)
    if not os.access(path, os.X_OK):
        raise SandboxError("missing binary %s (run `make sandbox-build` / `python3 -m tools.sandbox build`)" % path)
    return path


CLUSTER_COMPONENTS = ("kwok", "etcd", "kubernetes")
ALL_COMPONENTS = CLUSTER_COMPONENTS + ("istio",)


def _brief(text: str, lines: int = 6) -> str:
    """First line and a few distinct later lines of a long build error."""
    seen, out = set(), []
    for line in text.splitlines():
        key = re.sub(r"^\S+\.go:\d+:\d+: ", "", line.strip())
        if key and key not in seen:
            seen.add(key)
            out.append(line.strip()[:300])
    more = len(out) - lines
    return "\n  ".join(out[:lines]) + ("\n  ... (%d more lines)" % more if more > 0 else "")


def ensure_built(needed=ALL_COMPONENTS) -> None:
    """Build the missing `needed` components (waits for a build running elsewhere),
    link this version set's bin/ and point .sandbox/bin at it."""
    missing = [c for c in needed if c in build.missing_components()]
    if missing:
        log("binaries missing for: %s -> building (a cold build takes 30-60 min)" % ", ".join(missing))
        try:
            build.build(missing)
        except build.BuildError as e:
            raise SandboxError("building %s failed: %s" % (", ".join(missing), _brief(str(e)))) from e
    still = [c for c in needed if c in build.missing_components()]
    if still:
        raise SandboxError("binaries of %s are missing in %s after the build" % (", ".join(still), build.bin_dir()))
    build.link_bin_dir()  # also links components built under another version set
    # a stable path to this version set's binaries, for inventories and docs
    os.makedirs(sandbox_dir(), exist_ok=True)
    link = os.path.join(sandbox_dir(), "bin")
    if not (os.path.islink(link) and os.readlink(link) == build.bin_dir()):
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(build.bin_dir(), tmp)
        os.replace(tmp, link)


# ---------------------------------------------------------------- processes


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            # field 3 is the state; Z = zombie (exited, not yet reaped)
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def proc_cmdline(pid: int) -> list:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def proc_exe(pid: int) -> str:
    try:
        return os.path.realpath("/proc/%d/exe" % pid)
    except OSError:
        return ""


def proc_rss_kib(pid: int) -> int:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_age(pid: int) -> float:
    """Seconds since the process started (0.0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


SANDBOX_EXES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "pilot-discovery")

# the sandbox's LoadBalancer controller (lb.py): <python> -m tools.sandbox.lb --sandbox-dir <dir>
LB_MODULE = "tools.sandbox.lb"
LB_PROCESS = "lb-controller"


def is_lb_controller(args: list, sdir: str) -> bool:
    """The command line is that of the LoadBalancer controller of the sandbox in `sdir`."""
    return (any(a == "-m" and b == LB_MODULE for a, b in zip(args, args[1:]))
            and any(a == "--sandbox-dir" and b == sdir for a, b in zip(args, args[1:])))


def sandbox_processes() -> list:
    """Processes started by this checkout's sandbox: one of our binaries, with our state dir in argv,
    or its LoadBalancer controller (a Python process, named ``lb-controller``)."""
    # anything under the binary cache (clusters started before a version bump still run older builds)
    roots = [os.path.realpath(build.cache_base()) + os.sep]
    if os.environ.get("MESHFED_SANDBOX_PILOT_DISCOVERY"):
        roots.append(os.path.dirname(os.path.realpath(os.environ["MESHFED_SANDBOX_PILOT_DISCOVERY"])) + os.sep)
    sdir = sandbox_dir()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == os.getpid():
            continue
        exe = proc_exe(pid)
        name = os.path.basename(exe)
        if exe.startswith(tuple(roots)) and name in SANDBOX_EXES:
            if any(sdir in a for a in proc_cmdline(pid)) and pid_alive(pid):
                found.append((pid, name))
        elif name.startswith("python") and is_lb_controller(proc_cmdline(pid), sdir) and pid_alive(pid):
            found.append((pid, LB_PROCESS))
    return sorted(found)


def terminate(pids, what: str = "process", timeout: float = 15.0) -> None:
    """SIGTERM the given pids, SIGKILL what is left after `timeout` seconds."""
    pids = [p for p in pids if pid_alive(p)]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for p in pids:
        if pid_alive(p):
            log("%s %d ignored SIGTERM for %.0fs; sending SIGKILL" % (what, p, timeout))
    kill_now(pids)


def kill_now(pids) -> None:
    """SIGKILL the given pids (those still alive) and wait until they are gone (for processes whose
    data is thrown away anyway, e.g. of a cluster being deleted)."""
    for p in pids:
        if pid_alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    # also wait (briefly) until exited processes are reaped: a zombie's pid still answers kill(pid, 0),
    # which is how kwokctl decides that a component is running
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % p) for p in pids):
        time.sleep(0.1)


# ---------------------------------------------------------------- sockets


def _socket_inodes(pid: int) -> set:
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            with contextlib.suppress(OSError):
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def _listening_sockets() -> list:
    """(address, port, inode) of every listening TCP socket of this network namespace."""
    return [(addr, port, ino) for addr, port, state, ino in _tcp_sockets() if state == "0A"]  # 0A = LISTEN


def _tcp_sockets() -> list:
    """(local address, local port, state (hex, as in /proc/net/tcp), inode) of every TCP socket."""
    out = []
    for fname, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(fname) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            hexaddr, hexport = parts[1].split(":")
            raw = bytes.fromhex(hexaddr)
            if v6:
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                addr = socket.inet_ntop(socket.AF_INET6, raw)
            else:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.append((addr, int(hexport, 16), parts[3], parts[9]))
    return out


def listening_ports(pid: int) -> list:
    """Sorted (address, port) pairs a process listens on."""
    inodes = _socket_inodes(pid)
    return sorted({(a, p) for a, p, ino in _listening_sockets() if ino in inodes})


def served_connections(pid: int, ports) -> int:
    """How many connections the process holds on its own (server) `ports` that are not listeners:
    accepted ones, still open or half closed.  A process that no longer listens but still holds
    some was serving and is shutting down (a starting one has accepted nothing yet)."""
    inodes = _socket_inodes(pid)
    ports = set(ports)
    return sum(1 for _a, port, state, ino in _tcp_sockets() if port in ports and state != "0A" and ino in inodes)


def port_owner(port: int) -> str:
    """'pid 123 (name)' of a process listening on the port, or a note that it is unknown."""
    inodes = {ino for _addr, p, ino in _listening_sockets() if p == port}
    if not inodes:
        return "no listener (maybe a socket in TIME_WAIT or another network namespace)"
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _socket_inodes(int(entry)) & inodes:
            args = proc_cmdline(int(entry))
            return "pid %s (%s)" % (entry, os.path.basename(args[0]) if args else "?")
    return "a process this user cannot inspect"


def port_listening(port: int) -> bool:
    return any(p == port for _addr, p, _ino in _listening_sockets())


def port_holders(port: int) -> list:
    """Pids of the processes (of this user) that hold a listening socket on the port."""
    inodes = {ino for _addr, p, ino in _listening_sockets() if p == port}
    if not inodes:
        return []
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit() and _socket_inodes(int(e)) & inodes)


def wait_ports_closed(ports, timeout: float, what: str, ignore=lambda port: False) -> list:
    """Wait until none of `ports` is listening any more; return those still listening after `timeout`.

    A port for which ignore(port) is true does not count (e.g. one that a foreign process took
    over since).  Says once what it waits for, then every 15 s.
    """
    deadline = time.monotonic() + timeout
    progress = Progress(first=0.0)
    while True:
        busy = [p for p in ports if port_listening(p) and not ignore(p)]
        if not busy or time.monotonic() >= deadline:
            return busy
        progress.tick("%s: waiting up to %gs for port(s) %s to close (%s)" % (
            what, timeout, ",".join(map(str, busy)), "; ".join("%d: %s" % (p, port_owner(p)) for p in busy)))
        time.sleep(0.2)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a Go program could listen on host:port (Go sets SO_REUSEADDR too)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def check_ports_free(ports: dict) -> None:
    """ports: {port: description}; raise naming every busy one."""
    busy = ["%d (%s) is in use by %s" % (p, what, port_owner(p))
            for p, what in sorted(ports.items()) if not port_free(p)]
    if busy:
        raise SandboxError("port(s) busy: " + "; ".join(busy))


# ---------------------------------------------------------------- Kubernetes API (admin client cert)


# what a request to an API server that is (re)starting or shutting down can raise
API_ERRORS = (OSError, ssl.SSLError, http.client.HTTPException)


class Api:
    """Minimal JSON client for one sandbox API server, authenticated with kwok's admin cert."""

    def __init__(self, server: str, ca_file: str, cert_file: str, key_file: str):
        self.server = server.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.ctx.load_cert_chain(cert_file, key_file)

    def request(self, method: str, path: str, body=None, timeout: float = 10.0,
                content_type: str = "application/json"):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        return status, payload

    def get(self, path: str, timeout: float = 10.0):
        return self.request("GET", path, timeout=timeout)

    def watch(self, path: str, timeout: float):
        """Yield the events of a watch request (``...?watch=1&...``), one dict per line, until the server
        ends it (its ``timeoutSeconds``).  `timeout` bounds every read: give the server's time plus a margin.
        Raises an API_ERRORS exception (an urllib.error.HTTPError for an HTTP error status) or ValueError
        (a line that is no JSON)."""
        req = urllib.request.Request(self.server + path, method="GET")
        req.add_header("Accept", "application/json")
        with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
            for line in r:
                if line.strip():
                    yield json.loads(line)

    def ok(self, path: str, timeout: float = 3.0) -> bool:
        try:
            return self.get(path, timeout=timeout)[0] == 200
        except API_ERRORS:
            return False

    def apply(self, path: str, obj: dict, manager: str = "meshfed-sandbox"):
        """Server-side apply (idempotent)."""
        status, payload = self.request("PATCH", "%s?fieldManager=%s&force=true" % (path, manager), obj,
                                       content_type="application/apply-patch+yaml")
        if status not in (200, 201):
            raise SandboxError("apply %s failed: HTTP %d %s" % (path, status, short(payload)))
        return payload


def short(payload) -> str:
    """The message of an API error answer (a Status), else its beginning."""
    if isinstance(payload, dict):
        return payload.get("message") or json.dumps(payload)[:300]
    return str(payload)[:300]


def b64file(path: str) -> str:
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def q(s) -> str:
    """A YAML scalar: JSON strings are valid YAML double-quoted scalars."""
    return json.dumps(str(s))


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
