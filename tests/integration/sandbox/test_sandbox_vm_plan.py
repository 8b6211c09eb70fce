# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox VM hosts' names, SSH ports, cache key, mirror and command lines: plain tests, no VM needed."""

from __future__ import annotations

import pytest

from tools.sandbox import common, vm

DEBIAN_SOURCES = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_ssh_ports_start_at_2222_and_follow_the_offset(monkeypatch):
    monkeypatch.delenv("MESHFED_SANDBOX_VM_PORT_OFFSET", raising=False)
    assert [vm.ssh_port(i) for i in (1, 2, 3)] == [2222, 2223, 2224]
    monkeypatch.setenv("MESHFED_SANDBOX_VM_PORT_OFFSET", "100")
    assert vm.ssh_port(1) == 2322
    assert vm.ssh_port(2, offset=0) == 2223
    monkeypatch.setenv("MESHFED_SANDBOX_VM_PORT_OFFSET", "ten")
    with pytest.raises(common.SandboxError, match="MESHFED_SANDBOX_VM_PORT_OFFSET"):
        vm.ssh_port(1)


def test_vm_names():
    assert [vm.vm_name(i) for i in (1, 2)] == ["vm1", "vm2"]
    assert vm.vm_index("vm7") == 7
    for bad in ("vm0", "vm", "cluster1", "vm1/../x"):
        with pytest.raises(common.SandboxError, match="not a sandbox VM name"):
            vm.vm_index(bad)


def test_the_cache_key_follows_suite_and_packages_not_their_order():
    key = vm.root_key()
    assert key.startswith("vmroot-bookworm-") and len(key) == len("vmroot-bookworm-") + 12
    assert vm.root_key(packages=tuple(reversed(vm.PACKAGES))) == key
    assert vm.root_key(packages=vm.PACKAGES + ("nginx",)) != key
    assert vm.root_key(suite="trixie") != key
    assert vm.root_key(variant="buildd") != key


def test_the_packages_have_what_the_mesh_onboarding_needs():
    for pkg in ("openssh-server", "systemd", "systemd-sysv", "dbus", "python3", "sudo", "iproute2", "hostname",
                "procps", "ca-certificates"):
        assert pkg in vm.PACKAGES


def test_the_mirror_is_the_uris_line_of_the_suites_stanza_not_a_comment():
    assert vm.mirror_from_sources(DEBIAN_SOURCES) == "http://deb.debian.org/debian"
    only_security = DEBIAN_SOURCES.split("\n\n")[1]
    assert vm.mirror_from_sources(only_security) == ""
    assert vm.mirror_from_sources("") == ""


def test_the_mirror_can_be_overridden(monkeypatch):
    monkeypatch.setenv("MESHFED_SANDBOX_VM_MIRROR", "http://mirror.example/debian")
    assert vm.mirror() == "http://mirror.example/debian"


def test_debootstrap_command_line():
    argv = vm.debootstrap_argv("/c/root", "http://deb.debian.org/debian")
    assert argv[:2] == ["debootstrap", "--variant=minbase"]
    assert argv[-3:] == ["bookworm", "/c/root", "http://deb.debian.org/debian"]
    assert "--include=" + ",".join(vm.PACKAGES) in argv


def test_nspawn_command_line_needs_no_system_bus_and_is_recognised_by_its_root():
    argv = vm.nspawn_argv("/w/a/.sandbox/vm/vm1/root", "vm1-sb12345678", "vm1")
    for opt in ("-b", "--register=no", "--keep-unit", "--console=passive", "--hostname=vm1"):
        assert opt in argv
    assert "--private-network" not in argv and not any(a.startswith("--network") for a in argv)
    assert vm.is_nspawn_of(["/usr/bin/systemd-nspawn"] + argv[1:], "/w/a/.sandbox/vm/vm1/root")
    assert not vm.is_nspawn_of(argv, "/w/b/.sandbox/vm/vm1/root")
    assert not vm.is_nspawn_of(argv, "/w/a/.sandbox/vm/vm1")
    assert not vm.is_nspawn_of(["/usr/bin/python3", "-D", "/w/a/.sandbox/vm/vm1/root"], "/w/a/.sandbox/vm/vm1/root")


def test_machine_names_differ_between_sandboxes():
    a, b = vm.machine_name("vm1", "/w/a/.sandbox"), vm.machine_name("vm1", "/w/b/.sandbox")
    assert a != b and a.startswith("vm1-sb") and len(a) <= 64
    assert vm.machine_name("vm1", "/w/a/.sandbox") == a


def test_known_hosts_lines_name_the_loopback_port():
    keys = ["ssh-ed25519 AAAAC3Nza root@build", "ecdsa-sha2-nistp256 AAAAE2Vj", "garbage"]
    assert vm.known_hosts_lines(2223, keys) == ["[127.0.0.1]:2223 ssh-ed25519 AAAAC3Nza",
                                                "[127.0.0.1]:2223 ecdsa-sha2-nistp256 AAAAE2Vj"]


def test_no_vm_means_nothing_to_do():
    assert vm.ensure(0) is False
    with pytest.raises(common.SandboxError, match="--vms must be between 0 and 9"):
        vm.ensure(10)
