# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's VM hosts: a real Debian VM (systemd-nspawn, sshd on a loopback port) that SSH reaches,
whose systemd is running, whose /run is volatile across a restart, that `up` leaves alone when it runs,
whose changes stay out of the cached root, and that `down` stops.

The VM runs in a sandbox directory of its own (MESHFED_SANDBOX_DIR) with its own SSH port
(MESHFED_SANDBOX_VM_PORT_OFFSET), so `down` here touches neither the checkout's clusters nor its VMs.
No cluster is needed (`up --clusters 0 --vms 1`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest

from tools.sandbox import common, vm

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

pytestmark = [pytest.mark.sandbox, pytest.mark.vm]


def _visible(config):
    """Output that reaches the terminal even when pytest captures it: the cold costs stay visible."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()


def _say(config, msg: str) -> None:
    with _visible(config):
        print("\n[vm test] " + msg, flush=True)


def _free_offset() -> int:
    """A port offset whose vm1 port is free (away from the default 2222 of the checkout's own VMs)."""
    for offset in range(100, 400, 7):
        if common.port_free(vm.ssh_port(1, offset)) and not common.port_listening(vm.ssh_port(1, offset)):
            return offset
    pytest.skip("no free port for the test VM's sshd between %d and %d" % (vm.ssh_port(1, 100), vm.ssh_port(1, 400)))


class VmSandbox:
    def __init__(self, sdir: str, offset: int, config):
        self.sdir = sdir
        self.env = dict(os.environ, MESHFED_SANDBOX_DIR=sdir, MESHFED_SANDBOX_VM_PORT_OFFSET=str(offset))
        self.config = config
        self.vm = vm.Vm("vm1")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`python3 -m tools.sandbox <args>` in the test's sandbox; its output is shown on failure."""
        res = subprocess.run([sys.executable, "-m", "tools.sandbox", *args], cwd=REPO_ROOT, env=self.env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        sys.stdout.write(res.stdout)
        if check and res.returncode != 0:
            pytest.fail("`python3 -m tools.sandbox %s` failed (exit %d):\n%s" % (" ".join(args), res.returncode,
                                                                                 res.stdout[-4000:]), pytrace=False)
        return res

    def ssh(self, command: str) -> str:
        res = self.vm.ssh(command)  # one string: the login shell of root in the VM runs it
        assert res.returncode == 0, "ssh %s: exit %d: %s%s" % (command, res.returncode, res.stdout, res.stderr)
        return res.stdout.strip()


@pytest.fixture(scope="module")
def vms(tmp_path_factory, pytestconfig):
    why = vm.why_not_possible()
    if why:
        pytest.skip("sandbox VMs cannot run here: %s" % why)
    sdir = str(tmp_path_factory.mktemp("vm-sandbox"))
    offset = _free_offset()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MESHFED_SANDBOX_DIR", sdir)  # for vm.Vm and common.* in this process
        mp.setenv("MESHFED_SANDBOX_VM_PORT_OFFSET", str(offset))
        cached = os.path.isdir(vm.root_cache_dir())
        t0 = time.monotonic()
        with _visible(pytestconfig):  # debootstrap's progress (about a minute, cold)
            root = vm.ensure_root()
        _say(pytestconfig, "Debian root %s: %s" % (
            root, "cached" if cached else "built by debootstrap in %.0fs" % (time.monotonic() - t0)))
        box = VmSandbox(sdir, offset, pytestconfig)
        t0 = time.monotonic()
        box.run("up", "--clusters", "0", "--vms", "1")
        _say(pytestconfig, "vm1 up (copy, boot, SSH and systemd running) in %.1fs, ssh 127.0.0.1:%d"
             % (time.monotonic() - t0, box.vm.port))
        try:
            yield box
        finally:
            box.run("down", check=False)


def test_ssh_answers_and_systemd_is_running(vms):
    assert vms.ssh("systemctl is-system-running") == "running", vms.ssh("systemctl list-units --failed --no-legend")
    assert vms.ssh("hostname") == "vm1"
    assert vms.ssh("id -un") == "root"
    # istio-start.sh asks for the host's addresses this way; the VM shares the machine's network
    assert vms.ssh("hostname --all-ip-addresses").split(), "hostname --all-ip-addresses printed nothing"
    assert vms.ssh("python3 -c 'import sys; print(sys.version_info[0])'") == "3"
    # sshd listens on the loopback address only
    assert [a for a, p, _inode in common._listening_sockets() if p == vms.vm.port] == ["127.0.0.1"]


def test_run_is_a_tmpfs_that_a_restart_empties_while_var_lib_stays(vms):
    assert vms.ssh("stat -f -c %T /run") == "tmpfs"
    assert vms.ssh("readlink /var/run") == "/run"
    vms.ssh("echo volatile > /run/meshfed-test-marker && echo kept > /var/lib/meshfed-test-marker")
    before = vms.vm.pid()
    t0 = time.monotonic()
    vms.run("vm", "--restart", "vm1")
    _say(vms.config, "vm1 restart (stop, boot, SSH and systemd running) in %.1fs" % (time.monotonic() - t0))
    assert vms.vm.pid() and vms.vm.pid() != before
    assert not common.pid_alive(before), "the old systemd-nspawn %d still runs" % before
    assert vms.ssh("systemctl is-system-running") == "running"
    assert vms.ssh("test -e /run/meshfed-test-marker && echo present || echo gone") == "gone"
    assert vms.ssh("cat /var/lib/meshfed-test-marker") == "kept"


def test_a_second_up_leaves_the_running_vm_alone(vms):
    pid = vms.vm.pid()
    sshd = vms.ssh("cat /run/sshd.pid")
    out = vms.run("up", "--clusters", "0", "--vms", "1").stdout
    assert "vm1: already running (pid %d), left alone" % pid in out, out
    assert out.rstrip().endswith("SANDBOX_CHANGED=false"), out
    assert vms.vm.pid() == pid
    assert vms.ssh("cat /run/sshd.pid") == sshd


def test_the_vm_is_found_by_its_command_line_when_its_pid_file_is_gone(vms):
    pid = vms.vm.pid()
    os.unlink(vms.vm.pid_file)
    assert vms.vm.pid() == pid
    out = vms.run("up", "--clusters", "0", "--vms", "1").stdout
    assert "left alone" in out, out
    status = vms.run("status", "--json").stdout
    assert '"pid": %d' % pid in status, status


def test_changes_in_the_vm_do_not_reach_the_cached_root(vms):
    vms.ssh("echo mine > /etc/meshfed-test-marker && apt-get --version >/dev/null")
    assert vms.vm.root != vm.root_cache_dir()
    assert os.path.exists(os.path.join(vms.vm.root, "etc/meshfed-test-marker"))
    assert not os.path.exists(os.path.join(vm.root_cache_dir(), "etc/meshfed-test-marker"))
    # per VM: its machine id, host keys, authorized key; the cache has none of them
    with open(os.path.join(vm.root_cache_dir(), "etc/machine-id")) as f:
        assert f.read().strip() == ""
    assert len(vms.ssh("cat /etc/machine-id")) == 32
    assert not [f for f in os.listdir(os.path.join(vm.root_cache_dir(), "etc/ssh")) if f.startswith("ssh_host_")]
    assert not os.path.exists(os.path.join(vm.root_cache_dir(), "root/.ssh/authorized_keys"))


def test_a_container_that_exits_while_booting_is_booted_once_more(vms, monkeypatch, capsys):
    vms.run("vm", "--stop", "vm1")
    assert not vms.vm.pid()
    real = vm.nspawn_argv
    calls = []

    def first_exits_at_once(*args):
        calls.append(args)
        return ["/bin/true"] if len(calls) == 1 else real(*args)
    monkeypatch.setattr(vm, "nspawn_argv", first_exits_at_once)
    v = vm.Vm("vm1")
    vm._start(v)
    out = capsys.readouterr()
    out = out.out + out.err
    assert "vm: vm1: systemd-nspawn exited (status 0) while booting" in out, out
    assert "vm: vm1: booting it once more" in out, out
    assert vm.is_nspawn_of(common.proc_cmdline(v.pid()), v.root)
    assert vms.ssh("systemctl is-system-running") == "running"
    assert len(calls) == 2


def test_down_stops_the_vm_and_closes_its_port(vms):
    pid, port, root = vms.vm.pid(), vms.vm.port, vms.vm.root
    assert pid and common.port_listening(port)
    out = vms.run("down").stdout
    assert "SANDBOX_CHANGED=true" in out, out
    assert not common.pid_alive(pid)
    left = [int(e) for e in os.listdir("/proc") if e.isdigit() and vm.is_nspawn_of(common.proc_cmdline(int(e)), root)]
    assert left == [], "systemd-nspawn process(es) of %s left: %s" % (root, left)
    assert not common.port_listening(port), common.port_owner(port)
    assert not os.path.exists(root)
    assert "SANDBOX_CHANGED=false" in vms.run("down").stdout
