# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two mesh_ca runs on one directory at once take turns under <dir>/.lock: one root, and
intermediates that chain to it; a run that cannot get the lock in time fails naming the
directory; check mode writes nothing, not even the lock file."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import stat
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import files, mesh_ca_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

CLUSTERS = ["cluster%d" % i for i in range(1, 5)]


def params(base, **kw):
    out = dict((k, None) for k in mesh_ca_runner.PARAM_NAMES)
    out.update(dir=base, clusters=CLUSTERS, root_key_type="ecdsa-p256", key_type="ecdsa-p256", lock_timeout=30)
    out.update(kw)
    return out


def read(base, rel):
    with open(os.path.join(base, rel), "rb") as f:
        return f.read()


def public(key_or_cert):
    return key_or_cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


def assert_one_consistent_ca(base):
    """One root (its key matches) and, per cluster, an intermediate signed by it, its key,
    the same root and the chain of the two."""
    root_pem = read(base, "root-cert.pem")
    root = x509.load_pem_x509_certificate(root_pem)
    root_key = serialization.load_pem_private_key(read(base, "root-key.pem"), None)
    assert public(root) == public(root_key), "root-key.pem is not the key of root-cert.pem"
    for cluster in CLUSTERS:
        inter_pem = read(base, "%s/ca-cert.pem" % cluster)
        inter = x509.load_pem_x509_certificate(inter_pem)
        inter.verify_directly_issued_by(root)  # raises when another root signed it
        key = serialization.load_pem_private_key(read(base, "%s/ca-key.pem" % cluster), None)
        assert public(inter) == public(key), "%s: ca-key.pem is not the key of ca-cert.pem" % cluster
        assert read(base, "%s/root-cert.pem" % cluster) == root_pem
        assert read(base, "%s/cert-chain.pem" % cluster) == inter_pem + root_pem


def _generate(base, barrier, results):
    """One run in a process of its own, started with the other one (the barrier)."""
    barrier.wait(30)
    try:
        out = mesh_ca_runner.run(params(base), None, False, False)
        results.put(("ok", out["root"]["action"], sorted(c["action"] for c in out["clusters"].values()),
                     out["warnings"]))
    except Exception as e:  # reported to the test
        results.put(("error", "%s: %s" % (type(e).__name__, e), None, None))


@pytest.mark.parametrize("round_", range(5))
def test_two_processes_generating_into_one_empty_dir_end_with_one_ca(tmp_path, round_):
    base = str(tmp_path / "ca")
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_generate, args=(base, barrier, results)) for dummy in range(2)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for dummy in procs]
    for proc in procs:
        proc.join(10)
    assert [o[0] for o in outcomes] == ["ok", "ok"], outcomes
    assert_one_consistent_ca(base)
    # one run made the root and the intermediates, the other adopted and kept them
    assert sorted((o[1], o[2][0]) for o in outcomes) == [("adopted", "kept"), ("created", "created")]
    assert sorted(os.listdir(base)) == sorted([".lock", "root-cert.pem", "root-key.pem"] + CLUSTERS)


def hold(base, text="pid 4242 on elsewhere at 2026-11-29T10:00:00Z"):
    """Take the directory's lock as another run would; returns the descriptor (close it to release)."""
    os.makedirs(base, exist_ok=True)
    fd = os.open(os.path.join(base, files.LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)
    return fd


def test_a_lock_held_too_long_fails_naming_dir_and_holder_and_writes_nothing(tmp_path):
    base = str(tmp_path / "ca")
    fd = hold(base)
    try:
        start = time.monotonic()
        with pytest.raises(MeshError) as e:
            mesh_ca_runner.run(params(base, lock_timeout=1), None, False, False)
        assert 0.9 < time.monotonic() - start < 5
    finally:
        os.close(fd)
    assert e.value.field == "dir"
    assert str(e.value).startswith("dir: %s is still locked by another run after 1 s (lock last taken by pid 4242 "
                                   "on elsewhere at 2026-11-29T10:00:00Z); nothing was written" % base)
    assert os.listdir(base) == [".lock"]


def test_a_run_that_waited_says_for_whom(tmp_path):
    base = str(tmp_path / "ca")
    fd = hold(base)
    threading.Timer(0.6, os.close, (fd,)).start()
    out = mesh_ca_runner.run(params(base), None, False, False)
    assert out["root"]["action"] == "created"
    (warning,) = [w for w in out["warnings"] if "waited" in w]
    assert warning.startswith("dir: waited ")
    assert "for another run to release %s/.lock (lock last taken by pid 4242 on elsewhere at 2026-11-29T10:00:00Z) " \
        "before reading %s" % (base, base) in warning
    assert_one_consistent_ca(base)


def test_a_free_lock_means_no_warning_and_says_who_holds_it(tmp_path):
    base = str(tmp_path / "ca")
    out = mesh_ca_runner.run(params(base), None, False, False)
    assert out["warnings"] == []
    lock = os.path.join(base, files.LOCK_FILE)
    assert read(base, files.LOCK_FILE).decode().startswith("pid %d on " % os.getpid())
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o644 & ~_umask()
    assert stat.S_IMODE(os.stat(base).st_mode) == files.DIR_MODE & ~_umask()
    # a lock file left behind by a run that ended does not block the next one
    again = mesh_ca_runner.run(params(base, lock_timeout=0), None, False, False)
    assert again["changed"] is False


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_check_mode_on_a_missing_dir_creates_nothing(tmp_path):
    base = str(tmp_path / "ca")
    out = mesh_ca_runner.run(params(base), None, True, False)
    assert out["changed"] is True and out["root"]["action"] == "created"
    assert not os.path.exists(base)


def test_check_mode_waits_for_a_writer_and_leaves_the_lock_file_alone(tmp_path):
    base = str(tmp_path / "ca")
    mesh_ca_runner.run(params(base), None, False, False)
    lock = os.path.join(base, files.LOCK_FILE)
    before = (read(base, files.LOCK_FILE), os.stat(lock).st_mtime_ns)
    out = mesh_ca_runner.run(params(base), None, True, False)
    assert out["changed"] is False
    assert (read(base, files.LOCK_FILE), os.stat(lock).st_mtime_ns) == before
    fd = hold(base)
    try:
        with pytest.raises(MeshError, match=r"is still locked by another run after 0 s \(lock last taken by pid 4242"):
            mesh_ca_runner.run(params(base, lock_timeout=0), None, True, False)
    finally:
        os.close(fd)


def test_check_mode_runs_share_the_lock(tmp_path):
    base = str(tmp_path / "ca")
    mesh_ca_runner.run(params(base), None, False, False)
    with files.locked(base, 0, shared=True) as first:
        out = mesh_ca_runner.run(params(base, lock_timeout=0), None, True, False)
    assert first["waited"] == 0.0 and out["changed"] is False


@pytest.mark.parametrize("value", [-1, "soon", True])
def test_bad_lock_timeout(tmp_path, value):
    with pytest.raises(MeshError) as e:
        mesh_ca_runner.run(params(str(tmp_path / "ca"), lock_timeout=value), None, False, False)
    assert e.value.field == "lock_timeout"
    assert not os.path.exists(str(tmp_path / "ca"))


def test_without_lock_timeout_the_default_of_the_module_applies(tmp_path):
    from ansible_collections.meshfed.istio.plugins.modules import mesh_ca

    p = params(str(tmp_path / "ca"))
    del p["lock_timeout"]
    assert mesh_ca_runner.lock_timeout(p) == mesh_ca_runner.DEFAULT_LOCK_TIMEOUT \
        == mesh_ca.argument_spec()["lock_timeout"]["default"] == 300
