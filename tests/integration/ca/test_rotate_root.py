# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root CA rotation (playbooks/rotate_root_ca.yml, meshfed.istio.root_rotation) on the sandbox's real
istiods, which hot-reload their CA from a directory kept equal to Secret istio-system/cacerts.

Needs the sandbox's istiods running; the first test installs Istio without, then with, multi-root support:

    flock /tmp/sandbox.lock python -m pytest tests/integration/ca/test_rotate_root.py -q -p no:cacheprovider

The tests run in order and share the mesh: the rotation refused without multi-root support; bad input
refused before any change; the rotation stopped
after phase 2 (an interrupted run) with that phase's evidence; resumed to phase 3, then to the end, with
each phase's evidence (every namespace's istio-ca-root-cert, a certificate from each istiod verified
against every cluster's bundle); istiod pids unchanged and no refusal in istiod's log; a second run
changes nothing; install_istio.yml afterwards changes nothing in the CA.  It leaves the mesh on the new
root (the CA directory consistent with it), which is a valid end state for the next run.
"""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest
import yaml

from conftest import _load
from playbook_runner import changed_tasks, failure_messages, playbook

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, ca_client, cacerts, rotation
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service

PROBE_NS, PROBE_SA = "istio-system", "default"
TARGET_NAME = "localhost"  # the sandbox's istiods serve 15012 as localhost
REFUSALS = ("Failed to update new Plug-in CA certs", "Multi root is disabled")
TIMES = {}


@pytest.fixture(scope="module")
def sb():
    from tools.sandbox import common
    return _load(common.state_path())


@pytest.fixture(scope="module")
def services(sb):
    return dict((c, Service({"kubeconfig": sb.kubeconfig, "context": c}, name=c)) for c in sb.clusters)


@pytest.fixture(scope="module")
def ca_dir(sb):
    return os.path.join(os.path.dirname(sb.state_file), "ca")


@pytest.fixture(scope="module")
def extra_vars(sb, tmp_path_factory):
    path = tmp_path_factory.mktemp("rotate") / "vars.yml"
    path.write_text(yaml.safe_dump({
        "install_istio_rotate_istiod_addresses": dict(
            (c, "127.0.0.1:%d" % sb.istiod_ports[c]["secure_grpc"]) for c in sb.clusters),
        "install_istio_rotate_istiod_target_name": TARGET_NAME,
        "install_istio_rotate_delay": 1,
        "install_istio_rotate_retries": 90,
    }))
    return "@%s" % path


def istiod_pids(sb):
    base = os.path.dirname(sb.state_file)
    out = {}
    for c in sb.clusters:
        with open(os.path.join(base, "istiod", c, "istiod.pid")) as f:
            out[c] = int(f.read().strip())
    return out


def log_sizes(sb):
    base = os.path.dirname(sb.state_file)
    return dict((c, os.path.getsize(os.path.join(base, "istiod", c, "istiod.log"))) for c in sb.clusters)


def log_since(sb, sizes):
    base = os.path.dirname(sb.state_file)
    out = {}
    for c, size in sizes.items():
        with open(os.path.join(base, "istiod", c, "istiod.log"), "rb") as f:
            f.seek(size)
            out[c] = f.read().decode("utf-8", "replace")
    return out


def multiroot_on(services):
    for svc in services.values():
        d = svc.get("apps/v1", "Deployment", "istiod", "istio-system") or {}
        env = dict((e.get("name"), e.get("value")) for c in d["spec"]["template"]["spec"]["containers"]
                   for e in c.get("env") or [])
        if env.get("ISTIO_MULTIROOT_MESH") != "true":
            return False
    return True


def mesh_view(sb, services):
    """Per cluster: the fingerprints of every namespace's istio-ca-root-cert, its Secret's bundle, and
    a certificate its istiod signs now (the chain), asked with the ConfigMap's bundle as TLS trust."""
    view = {}
    for c, svc in services.items():
        cms = dict((cm["metadata"]["namespace"], cm["data"]["root-cert.pem"].encode("ascii"))
                   for cm in svc.list("v1", "ConfigMap") if cm["metadata"]["name"] == "istio-ca-root-cert")
        secret = cacerts.decode(svc.get("v1", "Secret", "cacerts", "istio-system")["data"])
        chain = ca_client.workload_certificate(svc, "127.0.0.1:%d" % sb.istiod_ports[c]["secure_grpc"], PROBE_NS,
                                               PROBE_SA, cms["istio-system"], target_name=TARGET_NAME,
                                               validity_seconds=600)["chain"]
        view[c] = {"configmaps": dict((ns, rotation.fingerprints(b, ns)) for ns, b in cms.items()),
                   "bundles": cms, "secret_roots": rotation.fingerprints(secret["root-cert.pem"], "secret"),
                   "chain": chain}
    return view


def assert_phase(view, want_fps, old, new, signed_by):
    """Every ConfigMap holds ``want_fps``; each istiod's certificate chains to ``signed_by`` (old/new)
    and verifies against every namespace's bundle of every cluster (zero downtime)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for c, v in view.items():
        for ns, fps in v["configmaps"].items():
            assert fps == want_fps, "%s: ConfigMap %s/istio-ca-root-cert holds %s, expected %s" % (c, ns, fps, want_fps)
        if new is not None:
            roots = rotation.chain_roots(v["chain"], old, new, now)
            assert roots == {"old": signed_by == "old", "new": signed_by == "new"}, (c, roots)
        else:
            assert rotation.verify_chain(v["chain"], old, now) is not None
        for other, w in view.items():
            for ns, bundle in w["bundles"].items():
                assert rotation.verify_chain(v["chain"], bundle, now) is not None, \
                    "%s's certificate does not verify against %s's bundle in %s" % (c, other, ns)
        print("%s: %d ConfigMaps hold %d root(s) %s; its istiod's certificate chains to the %s root and verifies "
              "against every bundle of %s"
              % (c, len(v["configmaps"]), len(want_fps), [f[:11] for f in want_fps], signed_by, ", ".join(sorted(view))))


def rotate(extra_vars, *args):
    start = time.monotonic()
    rc, data, raw = playbook("rotate_root_ca.yml", "-e", extra_vars, *args)
    took = time.monotonic() - start
    return rc, data, raw, took


def rotation_results(data):
    """The root_rotation results (the looped task's last result) of a run."""
    out = []
    for play in data.get("plays", []):
        for task in play["tasks"]:
            for r in task["hosts"].values():
                if "phase" in r and "clusters" in r:
                    out.append(r)
    return out


def secrets_of(services):
    return dict((c, svc.get("v1", "Secret", "cacerts", "istio-system")["metadata"]["resourceVersion"])
                for c, svc in services.items())


def read_state(ca_dir):
    st = os.path.join(ca_dir, rotation.STATE_FILE)
    if not os.path.exists(st):
        return None
    with open(st) as f:
        return f.read()


def test_00_multiroot_off_is_refused_then_install_turns_it_on(sb, services, ca_dir, extra_vars):
    """Without multi-root support (install_istio's default) the rotation is refused before any change,
    naming the cluster and install_istio_multiroot; install_istio_multiroot=true then turns it on."""
    rc, data, raw = playbook("install_istio.yml")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    assert not multiroot_on(services)
    secrets, state = secrets_of(services), read_state(ca_dir)
    rc, data, raw, took = rotate(extra_vars, "-e", "install_istio_rotate_new_rotation=true")
    assert rc != 0 and changed_tasks(data) == [], changed_tasks(data)
    msgs = failure_messages(data)
    assert any("install_istio_multiroot" in m and "cluster1: istiod does not run with multi-root support" in m
               for m in msgs), msgs
    assert secrets_of(services) == secrets and read_state(ca_dir) == state, "the refused run changed something"
    rc, data, raw = playbook("install_istio.yml", "-e", "install_istio_multiroot=true")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    assert multiroot_on(services)
    if state is not None:
        assert json.loads(state)["completed"], "a rotation is in progress in %s: finish it first" % ca_dir


@pytest.mark.parametrize("case", ["not_a_ca", "key_mismatch", "unreachable"])
def test_01_bad_input_refused_before_any_change(sb, services, ca_dir, extra_vars, tmp_path, case):
    now = datetime.datetime.now(datetime.timezone.utc)
    before_secrets = secrets_of(services)
    before_files = sorted(os.listdir(ca_dir))
    p = ca.Params(root_key_type="ecdsa-p256", key_type="ecdsa-p256", root_common_name="Next Root")
    key = ca.generate_key("ecdsa-p256")
    args = ["-e", "install_istio_rotate_new_rotation=true"]
    if case == "not_a_ca":
        # a leaf certificate (an intermediate of a throw-away root, pathlen 0 but CA...): use a real leaf
        root_key = ca.generate_key("ecdsa-p256")
        root = ca.build_root(root_key, p, now)
        leaf = (ca.x509.CertificateBuilder().subject_name(ca.x509.Name([ca.x509.NameAttribute(ca.NameOID.COMMON_NAME,
                                                                                              "not a ca")]))
                .issuer_name(root.subject).public_key(key.public_key()).serial_number(ca.x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(ca.x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(root_key, ca.hashes.SHA256()))
        (tmp_path / "cert.pem").write_bytes(ca.cert_pem(leaf))
        (tmp_path / "key.pem").write_bytes(ca.key_pem(key))
        args += ["-e", "install_istio_rotate_new_root_cert_path=%s" % (tmp_path / "cert.pem"),
                 "-e", "install_istio_rotate_new_root_key_path=%s" % (tmp_path / "key.pem")]
        expect = "install_istio_rotate_new_root_cert_path: CN=not a ca cannot be the new root: it is not a CA"
    elif case == "key_mismatch":
        (tmp_path / "cert.pem").write_bytes(ca.cert_pem(ca.build_root(key, p, now)))
        (tmp_path / "key.pem").write_bytes(ca.key_pem(ca.generate_key("ecdsa-p256")))
        args += ["-e", "install_istio_rotate_new_root_cert_path=%s" % (tmp_path / "cert.pem"),
                 "-e", "install_istio_rotate_new_root_key_path=%s" % (tmp_path / "key.pem")]
        expect = "install_istio_rotate_new_root_key_path: does not match new_root_cert"
    else:
        (tmp_path / "bad.yml").write_text(yaml.safe_dump({"install_istio_rotate_istiod_addresses": {}}))
        # cluster2 reached at an API server where nothing listens
        kc = yaml.safe_load(open(sb.kubeconfig))
        for cl in kc["clusters"]:
            if cl["name"] == "cluster2" or cl["name"].endswith("cluster2"):
                cl["cluster"]["server"] = "https://127.0.0.1:9"
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kc))
        args += ["-e", "mesh_kubeconfig=%s" % (tmp_path / "kubeconfig")]
        expect = "clusters: cluster2 could not be observed, nothing was written"
    rc, data, raw, _took = rotate(extra_vars, *args)
    msgs = failure_messages(data)
    print(case, "->", msgs)
    assert rc != 0
    assert any(expect in m for m in msgs), msgs
    assert secrets_of(services) == before_secrets
    assert sorted(os.listdir(ca_dir)) == before_files
    assert "BEGIN" not in raw and "PRIVATE KEY" not in raw


def test_02_rotation_phase_by_phase(sb, services, ca_dir, extra_vars):
    pids, sizes = istiod_pids(sb), log_sizes(sb)
    with open(os.path.join(ca_dir, "root-cert.pem"), "rb") as f:
        old = f.read()
    before = mesh_view(sb, services)
    assert_phase(before, rotation.fingerprints(old, "old"), old, None, "old")

    # phase 2 only: the run stops there (an interrupted rotation)
    rc, data, raw, took = rotate(extra_vars, "-e", "install_istio_rotate_new_rotation=true",
                                 "-e", "install_istio_rotate_until_phase=2")
    assert rc == 0, raw[-3000:]
    TIMES["phase 2"] = took
    last = rotation_results(data)[-1]
    assert last["phase"] == 2 and last["done"] and not last["completed"]
    with open(os.path.join(ca_dir, rotation.STATE_FILE)) as f:
        state = json.load(f)
    new = state["new_root"].encode("ascii")
    assert state["completed"] is None
    old_fps, new_fp = rotation.fingerprints(old, "old"), rotation.fingerprints(new, "new")[0]
    assert_phase(mesh_view(sb, services), old_fps + [new_fp], old, new, "old")
    # an install run now refuses instead of writing the old root back
    rc, data2, raw2 = playbook("install_istio.yml", "-e", "install_istio_multiroot=true", "--tags", "install_istio_ca")
    assert rc != 0 and any("root CA rotation is in progress" in m for m in failure_messages(data2)), raw2[-2000:]

    # resumed, to phase 3
    rc, data, raw, took = rotate(extra_vars, "-e", "install_istio_rotate_until_phase=3")
    assert rc == 0, raw[-3000:]
    TIMES["phase 3"] = took
    last = rotation_results(data)[-1]
    assert last["phase"] == 3 and last["done"]
    assert_phase(mesh_view(sb, services), old_fps + [new_fp, new_fp], old, new, "new")

    # resumed, to the end
    rc, data, raw, took = rotate(extra_vars)
    assert rc == 0, raw[-3000:]
    TIMES["phase 4"] = took
    last = rotation_results(data)[-1]
    assert last["phase"] == 4 and last["done"] and last["completed"]
    assert "cluster1: phase 4 (new root only)" in raw
    final = mesh_view(sb, services)
    assert_phase(final, [new_fp], old, new, "new")
    now = datetime.datetime.now(datetime.timezone.utc)
    for c, v in final.items():
        assert rotation.verify_chain(v["chain"], old, now) is None, "%s's certificate still verifies with the old root" % c
        assert v["secret_roots"] == [new_fp]

    # no istiod restarted, none refused a bundle
    assert istiod_pids(sb) == pids
    logs = log_since(sb, sizes)
    for c, text in logs.items():
        for bad in REFUSALS:
            assert bad not in text, "%s's istiod logged %r during the rotation" % (c, bad)
        print("%s: istiod pid %d unchanged; %d 'Update Istiod cacerts' lines, no refusal"
              % (c, pids[c], text.count("Update Istiod cacerts")))
        assert text.count("Update Istiod cacerts") >= 3
    print("wall time: %s, total %.1f s" % (", ".join("%s %.1f s" % kv for kv in TIMES.items()), sum(TIMES.values())))

    # the CA directory is the new root's: root-cert.pem, each cluster's files as its Secret
    with open(os.path.join(ca_dir, "root-cert.pem"), "rb") as f:
        assert f.read() == new
    for c, svc in services.items():
        secret = cacerts.decode(svc.get("v1", "Secret", "cacerts", "istio-system")["data"])
        for name in ca.CLUSTER_FILES:
            with open(os.path.join(ca_dir, c, name), "rb") as f:
                assert f.read() == secret[name], "%s/%s differs from the Secret" % (c, name)
        assert oct(os.stat(os.path.join(ca_dir, c, "ca-key.pem")).st_mode & 0o777) == "0o600"
    assert os.path.isdir(os.path.join(ca_dir, "retired"))


def test_03_second_run_changes_nothing(sb, services, ca_dir, extra_vars):
    secrets = secrets_of(services)
    with open(os.path.join(ca_dir, rotation.STATE_FILE), "rb") as f:
        state = f.read()
    rc, data, raw, _took = rotate(extra_vars)
    assert rc == 0, raw[-3000:]
    assert changed_tasks(data) == []
    assert secrets_of(services) == secrets
    with open(os.path.join(ca_dir, rotation.STATE_FILE), "rb") as f:
        assert f.read() == state


def test_04_install_afterwards_changes_nothing_in_the_ca(sb, services, ca_dir):
    secrets = secrets_of(services)
    rc, data, raw = playbook("install_istio.yml", "-e", "install_istio_multiroot=true")
    assert rc == 0, raw[-3000:]
    ca_changes = [t for t in changed_tasks(data) if "CA" in t or "cacerts" in t]
    assert ca_changes == [], ca_changes
    assert secrets_of(services) == secrets
