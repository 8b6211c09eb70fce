# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VM hosts of the sandbox: a Debian root booted by systemd in a container that shares this machine's
network namespace (``systemd-nspawn -b``), reached over SSH on a loopback port.

A stand-in for a cloud VM joining the mesh (the onboard_vm role): real sshd, real systemd, real
Debian packages, its own /etc, a volatile /run (a tmpfs, as on any VM).

* The Debian root (debootstrap --variant=minbase) is built once into the build cache,
  ``<cache>/components/vmroot-<hash of suite, variant and packages>``, in a temporary directory that
  is renamed into place only when complete.
* Every VM (vm1..vmN) boots a copy of it, ``.sandbox/vm/<name>/root``: what the VM changes never
  reaches the cache.  sshd listens on 127.0.0.1:(2222 + index - 1 + $MESHFED_SANDBOX_VM_PORT_OFFSET)
  and lets in root with the controller key ``.sandbox/vm/id_ed25519``; the VMs' host keys are
  written to ``.sandbox/vm/known_hosts``.
* The nspawn process is started in the background (pid file and log in ``.sandbox/vm/<name>/``)
  and stopped by its pid (SIGTERM halts the container cleanly), never by machine name.

Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from . import build, common
from .common import SandboxError, log

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("openssh-server", "systemd", "systemd-sysv", "dbus", "python3", "sudo", "iproute2",
            "hostname", "procps", "ca-certificates", "apt-utils")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SOURCES = "/etc/apt/sources.list.d/debian.sources"
BASE_SSH_PORT = 2222
MAX_VMS = 9
NSPAWN_PROPAGATION_DIR = "/run/systemd/nspawn"
# seconds: boot until SSH answers and systemd says running; stop until nspawn exits after SIGTERM
BOOT_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_VM_BOOT_TIMEOUT", "180"))
STOP_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_VM_STOP_TIMEOUT", "60"))
DEBOOTSTRAP_TIMEOUT = 30 * 60


# ---------------------------------------------------------------- names, ports, paths (pure)


def vm_name(index: int) -> str:
    return "vm%d" % index


def vm_index(name: str) -> int:
    m = re.fullmatch(r"vm([1-9][0-9]?)", name)
    if not m:
        raise SandboxError("%r is not a sandbox VM name (vm1, vm2, ...)" % name)
    return int(m.group(1))


def port_offset() -> int:
    raw = os.environ.get("MESHFED_SANDBOX_VM_PORT_OFFSET", "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise SandboxError("MESHFED_SANDBOX_VM_PORT_OFFSET must be an integer (got %r)" % raw) from None


def ssh_port(index: int, offset: int = None) -> int:
    """sshd's port of VM `index` on 127.0.0.1: 2222, 2223, ... plus the port offset."""
    return BASE_SSH_PORT + index - 1 + (port_offset() if offset is None else offset)


def root_key(suite: str = SUITE, variant: str = VARIANT, packages=PACKAGES) -> str:
    """The cache name of a Debian root: ``vmroot-`` + a short hash of what debootstrap is asked for
    (the package order does not matter)."""
    text = "%s\n%s\n%s\n" % (suite, variant, ",".join(sorted(set(packages))))
    return "vmroot-%s-%s" % (suite, hashlib.sha256(text.encode()).hexdigest()[:12])


def mirror_from_sources(text: str, suite: str = SUITE) -> str:
    """The URIs: of the deb822 stanza of debian.sources that carries `suite` itself (not -security
    or -updates only); comment lines (e.g. a snapshot URL) do not count.  Empty when there is none."""
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        if suite in fields.get("suites", []) and fields.get("uris") and "deb" in fields.get("types", ["deb"]):
            return fields["uris"][0]
    return ""


def mirror() -> str:
    """MESHFED_SANDBOX_VM_MIRROR, else this machine's Debian mirror, else deb.debian.org."""
    if os.environ.get("MESHFED_SANDBOX_VM_MIRROR"):
        return os.environ["MESHFED_SANDBOX_VM_MIRROR"]
    with contextlib.suppress(OSError):
        with open(DEBIAN_SOURCES) as f:
            found = mirror_from_sources(f.read())
        if found:
            return found
    return DEFAULT_MIRROR


def debootstrap_argv(target: str, mirror_url: str, suite: str = SUITE, variant: str = VARIANT,
                     packages=PACKAGES) -> list:
    return ["debootstrap", "--variant=" + variant, "--include=" + ",".join(packages), suite, target, mirror_url]


class BootExited(SandboxError):
    """systemd-nspawn exited before the VM was ready."""


def nspawn_argv(root: str, machine: str, hostname: str) -> list:
    """The container: booted by its systemd, in this machine's network namespace, not registered with
    machined and kept in the caller's cgroup (PID 1 here is not systemd: there is no system bus to ask),
    its console a pty nobody reads."""
    return ["systemd-nspawn", "-q", "-b", "--register=no", "--keep-unit", "--console=passive",
            "-D", root, "-M", machine, "--hostname=" + hostname]


def machine_name(name: str, sdir: str) -> str:
    """nspawn's machine name: the VM's name and this sandbox's label, so that two sandboxes' vm1 do not
    share /run/systemd/nspawn/propagate/<machine>."""
    return "%s-sb%s" % (name, hashlib.sha256(os.path.abspath(sdir).encode()).hexdigest()[:8])


def is_nspawn_of(args: list, root: str) -> bool:
    """The command line is that of a systemd-nspawn booting `root`."""
    return (bool(args) and os.path.basename(args[0]) == "systemd-nspawn"
            and any(a == "-D" and b == root for a, b in zip(args, args[1:])))


def known_hosts_lines(port: int, host_keys: list) -> list:
    """known_hosts lines for 127.0.0.1:`port` from the public host keys ('type base64 [comment]')."""
    out = []
    for key in host_keys:
        parts = key.split()
        if len(parts) >= 2:
            out.append("[127.0.0.1]:%d %s %s" % (port, parts[0], parts[1]))
    return out


# ---------------------------------------------------------------- the cached Debian root


def root_cache_dir() -> str:
    return os.path.join(build.cache_base(), "components", root_key())


def _root_complete(path: str) -> bool:
    return os.path.isfile(os.path.join(path, ".meshfed-vmroot")) and os.path.exists(os.path.join(path, "usr/sbin/sshd"))


def why_not_possible() -> str:
    """Why this machine cannot run sandbox VMs (empty when it can)."""
    if os.geteuid() != 0:
        return "debootstrap and systemd-nspawn need root"
    missing = [tool for tool, pkg in (("debootstrap", "debootstrap"), ("systemd-nspawn", "systemd-container"),
                                      ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client"))
               if not shutil.which(tool)]
    if missing:
        return "missing command(s) %s (Debian packages debootstrap, systemd-container, openssh-client; " \
               "`make venv` installs them)" % ", ".join(missing)
    return ""


def _debootstrap(target: str, mirror_url: str) -> float:
    """Run debootstrap into `target`, saying what it does; return its seconds."""
    argv = debootstrap_argv(target, mirror_url)
    log("vm: building the Debian root (%s) with debootstrap (%s %s, %s); this takes about 2-3 minutes"
        % (root_key(), SUITE, VARIANT, mirror_url))
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    tail, phase, due = [], "", 15.0
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-40:]
        step = re.match(r"I: (Retrieving|Validating|Checking|Unpacking|Configuring|Installing|Base system)", line)
        elapsed = time.monotonic() - t0
        if step and step.group(1) != phase:
            phase = step.group(1)
            log("vm: debootstrap: %s (%.0fs)" % (line[3:], elapsed))
            due = elapsed + 15.0
        elif elapsed >= due:
            log("vm: debootstrap: %s (%.0fs)" % (line[3:] if line.startswith("I: ") else line, elapsed))
            due = elapsed + 15.0
        if elapsed > DEBOOTSTRAP_TIMEOUT:
            proc.kill()
    rc = proc.wait()
    if rc != 0:
        log_file = os.path.join(target, "debootstrap", "debootstrap.log")
        more = ""
        with contextlib.suppress(OSError):
            with open(log_file) as f:
                more = "\n".join(f.read().splitlines()[-20:])
        raise SandboxError("debootstrap of the VM root failed (exit %d): %s\n%s\n%s"
                           % (rc, " ".join(argv), "\n".join(tail[-15:]), more))
    return time.monotonic() - t0


def _clean_root(root: str) -> None:
    """What must differ per VM, or is not needed, out of the cached root: the downloaded packages,
    sshd's host keys (each VM makes its own) and the machine id."""
    subprocess.run(["chroot", root, "apt-get", "clean"], check=False, capture_output=True)
    for f in os.listdir(os.path.join(root, "etc/ssh")):
        if f.startswith("ssh_host_"):
            os.unlink(os.path.join(root, "etc/ssh", f))
    common.write_file_atomic(os.path.join(root, "etc/machine-id"), "", 0o444)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(root, "var/lib/dbus/machine-id"))


def ensure_root() -> str:
    """The cached Debian root (built when missing; waits for a build running elsewhere); its path."""
    final = root_cache_dir()
    if _root_complete(final):
        return final
    why = why_not_possible()
    if why:
        raise SandboxError("vm: cannot build the Debian root: %s" % why)
    base = os.path.join(build.cache_base(), "components")
    with common.dir_lock(base, "vm: another process builds the Debian root; waiting for it", ".vmroot.lock"):
        if _root_complete(final):
            return final
        # build beside the final place, rename when complete: an interrupted build leaves nothing behind
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix=".tmp-vmroot-", dir=base)
        try:
            target = os.path.join(tmp, "root")
            secs = _debootstrap(target, mirror())
            _clean_root(target)
            with open(os.path.join(target, ".meshfed-vmroot"), "w") as f:
                f.write("%s %s %s\n" % (SUITE, VARIANT, ",".join(PACKAGES)))
            if os.path.exists(final):
                shutil.rmtree(final)
            os.rename(target, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log("vm: Debian root built in %.0fs (debootstrap %.0fs): %s" % (time.monotonic() - t0, secs, final))
    return final


# ---------------------------------------------------------------- one VM


def workdir() -> str:
    return os.path.join(common.sandbox_dir(), "vm")


def key_file() -> str:
    """The controller's SSH key (root's authorized key in every VM)."""
    return os.path.join(workdir(), "id_ed25519")


def known_hosts_file() -> str:
    return os.path.join(workdir(), "known_hosts")


def existing_vms() -> list:
    """Names of the VMs that have a root in this sandbox, vm1 first."""
    names = []
    with contextlib.suppress(OSError):
        for n in os.listdir(workdir()):
            with contextlib.suppress(SandboxError):
                vm_index(n)
                if os.path.isdir(os.path.join(workdir(), n)):
                    names.append(n)
    return sorted(names, key=vm_index)


def ensure_key() -> str:
    if not os.path.exists(key_file()):
        os.makedirs(workdir(), exist_ok=True)
        res = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "meshfed-sandbox-controller",
                              "-f", key_file()], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise SandboxError("vm: ssh-keygen of the controller key %s failed: %s" % (key_file(), res.stderr.strip()))
    return key_file()


def _write(root: str, rel: str, data: str, mode: int = 0o644) -> None:
    path = os.path.join(root, rel)
    if os.path.islink(path):  # e.g. resolv.conf: never write through a link out of the root
        os.unlink(path)
    common.write_file_atomic(path, data, mode)


def ensure_nspawn_propagation_dir() -> None:
    """nspawn cleans up its propagation directory under /run/systemd/nspawn; it refuses to when that is
    not on a tmpfs (/run is not one on every machine): mount one there unless something is mounted."""
    os.makedirs(NSPAWN_PROPAGATION_DIR, exist_ok=True)
    if os.path.ismount(NSPAWN_PROPAGATION_DIR):
        return
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", NSPAWN_PROPAGATION_DIR],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SandboxError("vm: mounting a tmpfs on %s (systemd-nspawn needs one) failed: %s"
                           % (NSPAWN_PROPAGATION_DIR, res.stderr.strip()))
    log("vm: mounted a tmpfs on %s (systemd-nspawn's propagation directories)" % NSPAWN_PROPAGATION_DIR)


class Vm:
    """One sandbox VM: its copy of the root, its nspawn process and its sshd."""

    def __init__(self, name: str):
        self.name = name
        self.index = vm_index(name)
        self.dir = os.path.join(workdir(), name)
        self.root = os.path.join(self.dir, "root")
        self.pid_file = os.path.join(self.dir, "nspawn.pid")
        self.log_file = os.path.join(self.dir, "nspawn.log")
        self.port = ssh_port(self.index)
        self.machine = machine_name(name, common.sandbox_dir())
        self.proc = None  # the nspawn process this process booted, if any

    # ---- process

    def _is_mine(self, p: int) -> bool:
        return common.pid_alive(p) and is_nspawn_of(common.proc_cmdline(p), self.root)

    def pid(self) -> int:
        """The pid of this VM's nspawn process, or 0: the one its pid file names, else one found by its
        command line (``-D <this VM's root>``), e.g. after the pid file was removed."""
        p = common.read_pid(self.pid_file)
        if p and self._is_mine(p):
            return p
        return next((int(e) for e in os.listdir("/proc")
                     if e.isdigit() and int(e) != os.getpid() and self._is_mine(int(e))), 0)

    def ssh_argv(self, *command: str, timeout: int = 10) -> list:
        return ["ssh", "-i", key_file(), "-p", str(self.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", "ConnectTimeout=%d" % timeout, "-o", "UserKnownHostsFile=%s" % known_hosts_file(),
                "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1"] + list(command)

    def ssh(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run a command in the VM over SSH (as root)."""
        return subprocess.run(self.ssh_argv(*command), capture_output=True, text=True, timeout=timeout, check=False)

    def system_state(self) -> str:
        """What `systemctl is-system-running` says over SSH, or '' when SSH does not answer."""
        try:
            res = self.ssh("systemctl", "is-system-running", timeout=15)
        except subprocess.TimeoutExpired:
            return ""
        return res.stdout.strip() if res.returncode != 255 else ""

    def state(self) -> str:
        """running (nspawn runs, SSH answers), booting (nspawn runs, SSH does not answer yet), stopped, absent."""
        if not os.path.isdir(self.root):
            return "absent"
        if not self.pid():
            return "stopped"
        return "running" if self.system_state() else "booting"

    # ---- the root

    def create_root(self) -> bool:
        """Copy the cached root into this VM's directory (once); a fresh machine id. True when created."""
        if os.path.isdir(self.root):
            return False
        cached = ensure_root()
        os.makedirs(self.dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-root-", dir=self.dir)
        try:
            t0 = time.monotonic()
            res = subprocess.run(["cp", "-a", "--reflink=auto", cached + "/.", tmp + "/"], capture_output=True,
                                 text=True, check=False)
            if res.returncode != 0:
                raise SandboxError("vm: %s: copying the root %s failed: %s" % (self.name, cached, res.stderr.strip()[-400:]))
            _write(tmp, "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
            os.chmod(tmp, 0o755)
            os.rename(tmp, self.root)
            log("vm: %s: copied the Debian root into %s (%.1fs)" % (self.name, self.root, time.monotonic() - t0))
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
        return True

    def configure(self) -> None:
        """What the sandbox sets before every boot: hostname, resolver, the controller's key, sshd on its
        loopback port, host keys (made once).  No unit needs masking: a bookworm minbase root boots
        to `running` in the container."""
        r = self.root
        _write(r, "etc/hostname", self.name + "\n")
        # /etc/hosts is the VM's own once it has its name: what the VM adds (onboard_vm's istiod
        # entry) survives a reboot, as on a real VM
        hosts = os.path.join(r, "etc/hosts")
        mine = "127.0.1.1\t%s\n" % self.name
        if not os.path.exists(hosts) or mine not in open(hosts).read():
            _write(r, "etc/hosts", "127.0.0.1\tlocalhost\n%s::1\tlocalhost ip6-localhost ip6-loopback\n" % mine)
        with open("/etc/resolv.conf") as f:
            _write(r, "etc/resolv.conf", f.read())
        os.makedirs(os.path.join(r, "root/.ssh"), mode=0o700, exist_ok=True)
        os.chmod(os.path.join(r, "root/.ssh"), 0o700)
        with open(ensure_key() + ".pub") as f:
            _write(r, "root/.ssh/authorized_keys", f.read(), 0o600)
        _write(r, "etc/ssh/sshd_config.d/meshfed-sandbox.conf",
               "# written by the meshfed sandbox (tools/sandbox/vm.py) before every boot\n"
               "Port %d\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
               "UseDNS no\n" % self.port)
        if not os.path.exists(os.path.join(r, "etc/ssh/ssh_host_ed25519_key")):
            res = subprocess.run(["ssh-keygen", "-A", "-f", r], capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise SandboxError("vm: %s: making sshd's host keys failed: %s" % (self.name, res.stderr.strip()))
        self.write_known_hosts()

    def host_keys(self) -> list:
        d = os.path.join(self.root, "etc/ssh")
        keys = []
        with contextlib.suppress(OSError):
            for f in sorted(os.listdir(d)):
                if f.startswith("ssh_host_") and f.endswith(".pub"):
                    with open(os.path.join(d, f)) as fh:
                        keys.append(fh.read().strip())
        return keys

    def write_known_hosts(self) -> None:
        """known_hosts gets this VM's lines (replacing older ones of its port)."""
        prefix = "[127.0.0.1]:%d " % self.port
        lines = []
        with contextlib.suppress(OSError):
            with open(known_hosts_file()) as f:
                lines = [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith(prefix)]
        lines += known_hosts_lines(self.port, self.host_keys())
        common.write_file_atomic(known_hosts_file(), "\n".join(lines) + "\n", 0o644)

    # ---- boot, stop

    def check_port(self) -> None:
        """Fail naming the holder when this (stopped) VM's SSH port is taken."""
        if common.port_holders(self.port) or not common.port_free(self.port):
            raise SandboxError("vm: %s: its SSH port 127.0.0.1:%d is in use by %s (another sandbox? set "
                               "MESHFED_SANDBOX_VM_PORT_OFFSET)" % (self.name, self.port, common.port_owner(self.port)))

    def boot(self) -> int:
        """Start the container in the background; return the nspawn pid."""
        self.check_port()
        ensure_nspawn_propagation_dir()
        self.configure()
        argv = nspawn_argv(self.root, self.machine, self.name)
        with open(self.log_file, "a") as lf:
            lf.write("---- %s boot: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), " ".join(argv)))
            lf.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
        common.write_file_atomic(self.pid_file, "%d\n" % proc.pid, 0o644)
        log("vm: %s: booting (systemd-nspawn pid %d, log %s)" % (self.name, proc.pid, self.log_file))
        self.proc = proc
        return proc.pid

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait until SSH answers and systemd has finished booting; return its state (running, or
        degraded: the failed units are logged)."""
        deadline = time.monotonic() + timeout
        progress = common.Progress(first=5.0, every=10.0)
        state = ""
        while True:
            p = self.pid()
            if not p:
                status = self.proc.poll() if self.proc is not None else None
                raise BootExited("vm: %s: systemd-nspawn exited%s while booting; see %s:\n%s"
                                 % (self.name, "" if status is None else " (status %d)" % status,
                                    self.log_file, _tail(self.log_file)))
            state = self.system_state()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise SandboxError("vm: %s: not ready after %gs (SSH 127.0.0.1:%d %s); see %s"
                                   % (self.name, timeout, self.port,
                                      "answers, systemd says %s" % state if state else "does not answer", self.log_file))
            progress.tick("vm: %s: waiting for %s" % (
                self.name, "SSH on 127.0.0.1:%d to answer" % self.port if not state
                else "systemd to finish booting (is-system-running: %s)" % state))
            time.sleep(0.5)
        if state == "degraded":
            res = self.ssh("systemctl", "list-units", "--failed", "--plain", "--no-legend")
            log("vm: %s: systemd is degraded; failed units: %s" % (
                self.name, ", ".join(ln.split()[0] for ln in res.stdout.splitlines() if ln.strip()) or "?"))
        return state

    def stop(self) -> bool:
        """SIGTERM the nspawn process (the container halts), SIGKILL after STOP_TIMEOUT; wait for the SSH
        port to close.  True when it was running."""
        p = self.pid()
        if not p:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.pid_file)
            return False
        t0 = time.monotonic()
        log("vm: %s: stopping (SIGTERM to systemd-nspawn pid %d; the container shuts down)" % (self.name, p))
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGTERM)
        progress = common.Progress(first=5.0, every=10.0)
        while common.pid_alive(p) and time.monotonic() - t0 < STOP_TIMEOUT:
            progress.tick("vm: %s: waiting up to %gs for systemd-nspawn pid %d to exit" % (self.name, STOP_TIMEOUT, p))
            _reap(self, p)
            time.sleep(0.2)
        if common.pid_alive(p):
            log("vm: %s: systemd-nspawn pid %d did not exit %gs after SIGTERM; sending SIGKILL" % (self.name, p, STOP_TIMEOUT))
            common.kill_now([p])
        _reap(self, p)
        busy = common.wait_ports_closed([self.port], 15, "vm: %s" % self.name)
        if busy:
            raise SandboxError("vm: %s: port 127.0.0.1:%d still open after its container stopped: %s"
                               % (self.name, self.port, common.port_owner(self.port)))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)
        log("vm: %s: stopped in %.1fs" % (self.name, time.monotonic() - t0))
        return True

    def info(self) -> dict:
        p = self.pid()
        state = self.state() if p else ("stopped" if os.path.isdir(self.root) else "absent")
        return {"name": self.name, "ssh": "127.0.0.1:%d" % self.port, "port": self.port, "user": "root",
                "key": key_file(), "known_hosts": known_hosts_file(), "pid": p, "state": state,
                "root": self.root, "log": self.log_file, "machine": self.machine}


def _reap(v: Vm, p: int) -> None:
    """Collect our own child (a VM booted by this process) once it exited."""
    proc = v.proc
    if proc is not None and proc.pid == p:
        proc.poll()


def _tail(path: str, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])
    return ""


# ---------------------------------------------------------------- control (up, vm, down, status)


def _lock():
    return common.dir_lock(workdir(), "vm: another sandbox command works on the VMs; waiting for it")


def _start(v: Vm) -> None:
    """Boot the VM and wait until it is ready; a container that exits while booting is booted once
    more (a clean-clone CI run saw one nspawn exit at once, silently, and the next boot work)."""
    t0 = time.monotonic()
    v.boot()
    try:
        state = v.wait_ready()
    except BootExited as e:
        log("%s\nvm: %s: booting it once more" % (e, v.name))
        v.boot()
        state = v.wait_ready()
    log("vm: %s: %s in %.1fs; ssh -i %s -p %d root@127.0.0.1" % (
        v.name, state, time.monotonic() - t0, key_file(), v.port))


def ensure(n: int) -> bool:
    """vm1..vmN run and answer SSH (a running VM is left alone).  Returns True when one was started."""
    if not 0 <= n <= MAX_VMS:
        raise SandboxError("--vms must be between 0 and %d (got %d)" % (MAX_VMS, n))
    if n == 0:
        return False
    why = why_not_possible()
    if why:
        raise SandboxError("vm: cannot run VMs here: %s" % why)
    started = False
    with _lock():
        ensure_key()
        for i in range(1, n + 1):
            v = Vm(vm_name(i))
            if not v.pid():
                v.check_port()  # before copying the root
            v.create_root()
            if v.pid():
                state = v.wait_ready()
                log("vm: %s: already %s (pid %d), left alone; ssh 127.0.0.1:%d" % (v.name, state, v.pid(), v.port))
                continue
            _start(v)
            started = True
        extra = [name for name in existing_vms() if vm_index(name) > n and Vm(name).pid()]
        if extra:
            log("vm: also running (left alone; `down` stops them): %s" % ", ".join(extra))
    return started


def restart(name: str) -> None:
    """Stop the VM and boot it again from the same root (what survives a reboot survives this)."""
    v = Vm(name)
    if not os.path.isdir(v.root):
        raise SandboxError("vm: %s does not exist in this sandbox (`up --vms N` creates it)" % name)
    with _lock():
        t0 = time.monotonic()
        v.stop()
        _start(v)
        log("vm: %s: restarted in %.1fs" % (name, time.monotonic() - t0))


def stop(name: str) -> bool:
    v = Vm(name)
    if not os.path.isdir(v.dir) and not v.pid():
        raise SandboxError("vm: %s does not exist in this sandbox (`up --vms N` creates it)" % name)
    with _lock():
        return v.stop()


def down() -> list:
    """Stop every VM of this sandbox and remove their roots, key and known_hosts; return their names."""
    names = existing_vms()
    if not os.path.isdir(workdir()):
        return []
    with _lock():
        for name in names:
            Vm(name).stop()
        for name in names:
            v = Vm(name)
            if v.pid():  # never remove a root a container still runs on
                raise SandboxError("vm: %s still runs (pid %d); its root %s was kept" % (name, v.pid(), v.root))
            shutil.rmtree(v.dir)
        for f in (key_file(), key_file() + ".pub", known_hosts_file()):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f)
    if names:
        log("vm: removed %s" % ", ".join(names))
    return names


def status_data() -> list:
    return [Vm(name).info() for name in existing_vms()]
