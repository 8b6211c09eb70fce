# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's istiod reloads its plug-in CA from Secret istio-system/cacerts without a restart, as in a Pod:
the controller process keeps istiod's cacerts directory equal to the Secret (tools/sandbox/cacerts.py), and
istiod takes ISTIO_MULTIROOT_MESH from its Deployment's env (rollout.deployment_env).

Each test plugs a CA of its own (a new root, intermediate A) into cluster1 and restarts its istiod, changes the
Secret, and checks the directory, istiod's log, the chain istiod serves on its secure gRPC port (15012), the
istio-ca-root-cert ConfigMap and that istiod's pid did not change.  The finalizer puts the original Secret (and
Deployment env) back and restarts istiod on it.  It does not start the sandbox (it changes the CA of a running
one): `python3 -m tools.sandbox up --istiod` first; it fails, saying so, without a running cluster1 and istiod.
`make test` runs it in its CA stage, after the playbook tests installed Istio.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

import pytest
from kubernetes import client

from sandbox_helpers import served_chain, wait_for
from tools.sandbox import cacerts, cluster, common, istiod, lb, rollout

pytestmark = pytest.mark.sandbox

CLUSTER = "cluster1"
NS = "istio-system"
REPO_ROOT = common.REPO_ROOT
# istiod logs this when its file watcher fires, then one of the outcomes
RELOAD = "Update Istiod cacerts"
RELOADED = "Istiod has detected the newly added intermediate CA and updated its key and certs accordingly"
NEW_ROOT = "Updating new ROOT-CA"
MULTIROOT_OFF = "Multi root is disabled, updating new ROOT-CA not supported"
# seconds from the Secret change to istiod serving the new chain (a 1 s poll, istiod's 100 ms debounce)
FOLLOW_TIMEOUT = 20
FIELD_MANAGER = "meshfed-sandbox-test"


def ca_helpers():
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca  # noqa: E501 (from .build/collections)

    return ca


class CAForTest:
    """A root and intermediates issued from it (ECDSA P-256: fast), with the collection's CA helpers."""

    def __init__(self, name: str):
        self.ca = ca_helpers()
        self.params = self.ca.Params(root_key_type="ecdsa-p256", key_type="ecdsa-p256",
                                     root_common_name="sandbox test root " + name)
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.root_key = self.ca.generate_key("ecdsa-p256")
        self.root = self.ca.build_root(self.root_key, self.params, self.now)
        self.root_pem = self.ca.cert_pem(self.root)

    def intermediate(self):
        key = self.ca.generate_key("ecdsa-p256")
        cert, _capped = self.ca.build_intermediate(CLUSTER, key, self.root, self.root_key, self.params, self.now)
        return cert, key

    def secret_data(self, inter, roots_pem: bytes = b"") -> dict:
        cert, key = inter
        return {"ca-cert.pem": self.ca.cert_pem(cert), "ca-key.pem": self.ca.key_pem(key),
                "cert-chain.pem": self.ca.cert_pem(cert) + self.root_pem,
                "root-cert.pem": roots_pem or self.root_pem}


# ---------------------------------------------------------------- what istiod shows


def der(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.DER)


def der_of_pem(pem: bytes) -> bytes:
    from cryptography import x509

    return der(x509.load_pem_x509_certificate(pem))


def roots_in(pem: str) -> set:
    from cryptography import x509

    return {der(c) for c in x509.load_pem_x509_certificates(pem.encode())} if pem else set()


class Log:
    """istiod's log from a given point on."""

    def __init__(self, path: str):
        self.path = path
        self.mark()

    def mark(self) -> None:
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def since(self) -> str:
        with open(self.path, errors="replace") as f:
            f.seek(self.offset)
            return f.read()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def live():
    """cluster1 and its istiod, as they run (not started here), with the controller that syncs the Secret."""
    running = [c.name for c in cluster.running_clusters()]
    if CLUSTER not in running or not os.path.exists(common.kubeconfig_path()):
        pytest.fail("needs a running sandbox with %s (python3 -m tools.sandbox up --istiod)" % CLUSTER, pytrace=False)
    i = istiod.Istiod(CLUSTER)
    if not (i.pid() and i.ready()):
        pytest.fail("needs %s's istiod running (python3 -m tools.sandbox istiod)" % CLUSTER, pytrace=False)
    pid = lb.running_pid()
    assert pid, "the sandbox's controller process (lb-controller) does not run; `up` starts it"
    with open(lb.log_path(), errors="replace") as f:
        current = f.read().rsplit("\n==== ", 1)[-1]  # this controller's part of the log
    assert "%s: keeping istiod's cacerts directory" % CLUSTER in current, (
        "the controller process (pid %d) does not sync the cacerts Secret: it runs older code; restart it "
        "(stop it, then `up`)" % pid)
    from kubernetes import config

    api = config.new_client_from_config(config_file=common.kubeconfig_path(), context=CLUSTER)
    return i, client.CoreV1Api(api), client.AppsV1Api(api)


def restart_istiod() -> None:
    res = subprocess.run([sys.executable, "-m", "tools.sandbox", "istiod", "--restart", "--cluster", CLUSTER],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def write_secret(core, data, labels=None, annotations=None) -> None:
    """Secret istio-system/cacerts = data ({key: bytes}), with the labels and annotations given (default: those
    it has, e.g. install_istio's managed-by label); None deletes it."""
    import base64

    if data is None:
        try:
            core.delete_namespaced_secret(cacerts.SECRET, NS)
        except client.ApiException as e:
            if e.status != 404:
                raise
        return
    have = read_secret_object(core)
    if have is not None and labels is None and annotations is None:
        labels, annotations = have.metadata.labels, have.metadata.annotations
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=cacerts.SECRET, namespace=NS, labels=labels, annotations=annotations),
                           data={k: base64.b64encode(v).decode() for k, v in data.items()})
    if have is None:
        core.create_namespaced_secret(NS, body)
    else:
        core.replace_namespaced_secret(cacerts.SECRET, NS, body)


def read_secret_object(core):
    try:
        return core.read_namespaced_secret(cacerts.SECRET, NS)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def read_secret(core):
    import base64

    s = read_secret_object(core)
    return None if s is None else {k: base64.b64decode(v) for k, v in (s.data or {}).items()}


def wait_rollout(i, before_pid: int, apps) -> None:
    """Wait until the controller restarted istiod for the Deployment's current pod template."""
    def done():
        raw = apps.read_namespaced_deployment("istiod", NS, _preload_content=False)
        dep = json.loads(raw.data)  # the API's JSON, as the sandbox digests it
        return (i.pid() not in (0, before_pid) and i.ready()
                and rollout.recorded(i.workdir) == rollout.template_digest(dep))
    wait_for(done, timeout=90, what="%s's istiod to be restarted for its Deployment's new pod template" % CLUSTER)


@pytest.fixture
def plugged(live):
    """cluster1's istiod on a CA of this test's own (root R1, intermediate A), restarted on it; afterwards the
    original Secret is put back and istiod restarted on it (a changed root is no reload: a restart it is)."""
    i, core, _apps = live
    original = read_secret(core)
    kept = read_secret_object(core)
    meta = {"labels": kept.metadata.labels, "annotations": kept.metadata.annotations} if kept is not None else {}
    test_ca = CAForTest("r1")
    inter_a = test_ca.intermediate()
    write_secret(core, test_ca.secret_data(inter_a))
    try:
        restart_istiod()
        yield test_ca, inter_a
    finally:
        write_secret(core, original, **meta)
        restart_istiod()
        if original:
            want = der_of_pem(original["ca-cert.pem"])
            wait_for(lambda: served_chain(i.ports["secure_grpc"])[1:2] == [want], timeout=30,
                     what="istiod to serve its original intermediate again")
        assert cacerts.read_dir(i.cadir) == (original or {})
        after = read_secret_object(core)
        if kept is not None:
            assert (after.metadata.labels, after.metadata.annotations) == (kept.metadata.labels, kept.metadata.annotations)


def multiroot_env(live, value: bool):
    """istiod with ISTIO_MULTIROOT_MESH=true from its Deployment's env (values.pilot.env, as install_istio_multiroot
    writes it), or without it.  On: an installation without it gets one entry appended to the discovery container's
    env (the controller restarts istiod for the new pod template), removed again afterwards (istiod restarted
    again).  Off: an installation with it is skipped, not changed: taking istioctl's entry out and putting it back
    would leave it to this test's field manager, and a later install without multi-root would keep it."""
    i, _core, apps = live
    try:
        raw = apps.read_namespaced_deployment("istiod", NS, _preload_content=False)
    except client.ApiException as e:
        if e.status != 404:
            raise
        if value:
            pytest.skip("Istio is not installed in %s (no istiod Deployment to carry the env)" % CLUSTER)
        yield  # no Deployment: istiod's env has no ISTIO_MULTIROOT_MESH
        return
    dep = json.loads(raw.data)
    now = rollout.deployment_env(dep)[0].get("ISTIO_MULTIROOT_MESH") == "true"
    if now == value:
        yield
        return
    if not value:
        pytest.skip("Deployment %s/istiod sets ISTIO_MULTIROOT_MESH (install_istio_multiroot); this test needs it off" % NS)
    containers = dep["spec"]["template"]["spec"]["containers"]
    index = next((n for n, c in enumerate(containers) if c["name"] == rollout.CONTAINER), None)
    if index is None:
        pytest.fail("Deployment %s/istiod has no %s container" % (NS, rollout.CONTAINER))
    env_path = "/spec/template/spec/containers/%d/env" % index
    entry = {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}
    added = len(containers[index].get("env") or [])
    add = ([{"op": "add", "path": env_path + "/-", "value": entry}] if containers[index].get("env")
           else [{"op": "add", "path": env_path, "value": [entry]}])
    pid = i.pid()
    apps.patch_namespaced_deployment("istiod", NS, add, field_manager=FIELD_MANAGER)
    try:
        wait_rollout(i, pid, apps)
        yield
    finally:
        pid = i.pid()
        item = "%s/%d" % (env_path, added)
        apps.patch_namespaced_deployment("istiod", NS, [{"op": "test", "path": item, "value": entry},
                                                        {"op": "remove", "path": item}], field_manager=FIELD_MANAGER)
        wait_rollout(i, pid, apps)


@pytest.fixture
def multiroot_on(live):
    yield from multiroot_env(live, True)


@pytest.fixture
def multiroot_off(live):
    yield from multiroot_env(live, False)


def environ(pid: int) -> dict:
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)


def root_configmap(core, namespace: str = "default") -> str:
    return (core.read_namespaced_config_map("istio-ca-root-cert", namespace).data or {}).get("root-cert.pem", "")


# ---------------------------------------------------------------- tests


def test_a_new_intermediate_is_loaded_without_restart(live, plugged):
    i, core, _apps = live
    test_ca, inter_a = plugged
    port = i.ports["secure_grpc"]
    assert served_chain(port)[1] == der(inter_a[0]), "istiod does not serve the plugged intermediate A after its restart"
    assert cacerts.read_dir(i.cadir) == read_secret(core)
    assert os.path.islink(os.path.join(i.cadir, "..data")) and os.readlink(os.path.join(i.cadir, "ca-cert.pem")) == "..data/ca-cert.pem"
    pid, log = i.pid(), Log(i.log_file)
    inter_b = test_ca.intermediate()
    want = test_ca.secret_data(inter_b)
    t0 = time.monotonic()
    write_secret(core, want)
    wait_for(lambda: cacerts.read_dir(i.cadir) == want, timeout=FOLLOW_TIMEOUT, interval=0.1,
             what="istiod's cacerts directory to follow the Secret (see %s)" % lb.log_path())
    t_dir = time.monotonic() - t0
    wait_for(lambda: RELOADED in log.since(), timeout=FOLLOW_TIMEOUT, interval=0.1, what="istiod to log %r" % RELOADED)
    t_log = time.monotonic() - t0
    wait_for(lambda: served_chain(port)[1] == der(inter_b[0]), timeout=FOLLOW_TIMEOUT, interval=0.1,
             what="istiod to serve intermediate B on its secure gRPC port %d" % port)
    t_chain = time.monotonic() - t0
    chain = served_chain(port)
    assert chain[2] == der(test_ca.root)
    assert RELOAD in log.since() and "Failed to update" not in log.since()
    assert i.pid() == pid, "istiod was restarted (pid %d, was %d): it should have reloaded" % (i.pid(), pid)
    with open(lb.log_path(), errors="replace") as f:
        assert "%s: Secret istio-system/cacerts changed: %s updated (changed ca-cert.pem, ca-key.pem, cert-chain.pem;" % (
            CLUSTER, i.cadir) in f.read()
    print("\nintermediate A -> B: directory after %.2fs, istiod's reload logged after %.2fs, new chain served after %.2fs; "
          "pid %d unchanged" % (t_dir, t_log, t_chain, pid))


def test_a_second_root_is_refused_without_multiroot(live, plugged, multiroot_off):
    i, core, _apps = live
    test_ca, inter_a = plugged
    assert "ISTIO_MULTIROOT_MESH" not in environ(i.pid())
    pid, log = i.pid(), Log(i.log_file)
    other = CAForTest("r2")
    want = test_ca.secret_data(inter_a, test_ca.root_pem + other.root_pem)  # A -> A+B, the first rotation step
    write_secret(core, want)
    wait_for(lambda: MULTIROOT_OFF in log.since(), timeout=FOLLOW_TIMEOUT, interval=0.1, what="istiod to log %r" % MULTIROOT_OFF)
    assert cacerts.read_dir(i.cadir) == want
    time.sleep(2)  # nothing else follows
    assert NEW_ROOT not in log.since() and RELOADED not in log.since()
    assert roots_in(root_configmap(core)) == {der(test_ca.root)}
    assert served_chain(i.ports["secure_grpc"])[1:] == [der(inter_a[0]), der(test_ca.root)]
    assert i.pid() == pid


def test_with_multiroot_a_root_bundle_is_taken_and_published(live, plugged, multiroot_on):
    i, core, _apps = live
    test_ca, inter_a = plugged
    assert environ(i.pid()).get("ISTIO_MULTIROOT_MESH") == "true", "istiod did not get ISTIO_MULTIROOT_MESH from its Deployment"
    assert served_chain(i.ports["secure_grpc"])[1] == der(inter_a[0])
    wait_for(lambda: roots_in(root_configmap(core)) == {der(test_ca.root)}, timeout=FOLLOW_TIMEOUT,
             what="istio-ca-root-cert in namespace default to hold root R1")
    pid, log = i.pid(), Log(i.log_file)
    other = CAForTest("r2")
    t0 = time.monotonic()
    write_secret(core, test_ca.secret_data(inter_a, test_ca.root_pem + other.root_pem))
    wait_for(lambda: RELOADED in log.since(), timeout=FOLLOW_TIMEOUT, interval=0.1, what="istiod to log %r" % RELOADED)
    t_log = time.monotonic() - t0
    text = log.since()
    assert NEW_ROOT in text and MULTIROOT_OFF not in text
    both = {der(test_ca.root), der(other.root)}
    wait_for(lambda: roots_in(root_configmap(core)) == both, timeout=FOLLOW_TIMEOUT, interval=0.2,
             what="istio-ca-root-cert in namespace default to hold roots R1 and R2")
    t_cm = time.monotonic() - t0
    assert i.pid() == pid
    print("\nroot bundle R1 -> R1+R2 with ISTIO_MULTIROOT_MESH: reload logged after %.2fs, both roots in "
          "default/istio-ca-root-cert after %.2fs; pid %d unchanged" % (t_log, t_cm, pid))


def test_without_the_secret_istiod_uses_its_self_signed_ca(live, plugged):
    i, core, _apps = live
    test_ca, _inter_a = plugged
    write_secret(core, None)
    # an optional Secret volume whose Secret is gone is emptied: istiod's reload fails and it keeps its CA
    wait_for(lambda: cacerts.read_dir(i.cadir) == {}, timeout=FOLLOW_TIMEOUT, interval=0.1,
             what="istiod's cacerts directory to be emptied")
    log = Log(i.log_file)
    restart_istiod()
    text = log.since()
    assert "Use self-signed certificate as the CA certificate" in text and "Use local CA certificate" not in text
    chain = served_chain(i.ports["secure_grpc"])
    assert der(test_ca.root) not in chain
    from cryptography import x509

    issuer = x509.load_der_x509_certificate(chain[-1]).issuer.rfc4514_string()
    assert "cluster.local" in issuer, issuer  # istio-ca-secret's root: O=cluster.local
