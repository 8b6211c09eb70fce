# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/onboard_vm.yml against the sandbox: the real istiod of cluster2 and the real VM
host vm1 (a Debian root booted by systemd-nspawn, reached over SSH), with the sandbox's
Envoy-less istio-sidecar package built from the pinned Istio source.

Proof that the VM joined: the agent, started by systemd, authenticates to istiod with the
token the role wrote and writes a workload certificate that chains to the mesh root and
carries the VM's SPIFFE identity; istiod lists the VM's address as an endpoint of its
Service; the files equal what the sandbox's own istioctl writes, key by key.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request

import pytest
import yaml
from cryptography import x509
from kubernetes import client
from playbook_runner import REPO_ROOT, changed_tasks, failure_messages, playbook
from sandbox_helpers import wait_for

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import vmfiles
from tools.sandbox import vm as sandbox_vm

pytestmark = pytest.mark.sandbox
NS, APP, VM, CLUSTER = "vm-apps", "hello-vm", "vm1", "cluster2"
HOST = "%s.%s.svc.cluster.local" % (APP, NS)
SPIFFE = "spiffe://cluster.local/ns/%s/sa/%s" % (NS, APP)
FILES_DIR = os.path.join(REPO_ROOT, ".sandbox", "vm-files", VM)
ROOT_CERT = os.path.join(REPO_ROOT, ".sandbox", "ca", "root-cert.pem")
ISTIOCTL = os.path.join(REPO_ROOT, ".sandbox", "bin", "istioctl")
# tasks done from the cluster host (delegated) or on the controller; every other task runs on the VM
CLUSTER_TASKS = ("Namespaces of the VM workloads", "Service accounts of the VM workloads",
                 "WorkloadGroups of the VMs", "WorkloadEntries of the VMs", "Services selecting the VM workloads",
                 "Make the VM's files on the controller", "Remove the VM's files on the controller")


# --- helpers ---------------------------------------------------------------------------------------


def the_vm():
    return sandbox_vm.Vm(VM)


def ssh(*cmd, check=True):
    res = the_vm().ssh(*cmd)
    if check:
        assert res.returncode == 0, "ssh %s: %s %s" % (" ".join(cmd), res.stdout, res.stderr)
    return res


def onboard(*args):
    return playbook("onboard_vm.yml", *args)


def sides(data):
    """(cluster-side changed tasks, VM-side changed tasks)."""
    names = [n.split(" : ", 1)[-1] for n in changed_tasks(data)]
    cluster = [n for n in names if any(n.startswith(t) for t in CLUSTER_TASKS)]
    return cluster, [n for n in names if n not in cluster]


def custom(api):
    return client.CustomObjectsApi(api)


def workload_entries(api):
    return custom(api).list_namespaced_custom_object("networking.istio.io", "v1", NS, "workloadentries")["items"]


def workload_groups(api):
    return custom(api).list_namespaced_custom_object("networking.istio.io", "v1", NS, "workloadgroups")["items"]


def endpoint_addresses(sb, host=HOST):
    """The addresses cluster2's istiod has for ``host``, with their network, from /debug/endpointShardz."""
    url = "http://127.0.0.1:%d/debug/endpointShardz" % sb.istiod_ports[CLUSTER]["monitoring"]
    with urllib.request.urlopen(url, timeout=5) as r:
        shards = (json.loads(r.read()).get(host) or {}).get(NS, {}).get("Shards", {})
    out = {}
    for endpoints in shards.values():
        for ep in endpoints or []:
            for addr in ep.get("Addresses") or [ep.get("Address")]:
                if addr:
                    out[addr] = ep.get("Network", "")
    return out


def certs(pem):
    return x509.load_pem_x509_certificates(pem.encode())


def cert_chain():
    res = ssh("cat", "/etc/certs/cert-chain.pem", check=False)
    return res.stdout if res.returncode == 0 else ""


def assert_identity_and_chain(pem):
    chain = certs(pem)
    leaf = chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [SPIFFE]
    root = x509.load_pem_x509_certificate(open(ROOT_CERT, "rb").read())
    # each certificate is signed by the next one, the last by the mesh root
    for cert, issuer in zip(chain, chain[1:] + [root]):
        cert.verify_directly_issued_by(issuer)
    return leaf


def jwt(claims):
    enc = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return "eyJhbGciOiJSUzI1NiJ9.%s.c2lnbmF0dXJl" % enc


def service_active():
    return ssh("systemctl", "is-active", "istio", check=False).stdout.strip()


# --- the mesh with vm1 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh(sandbox_istiod):
    sb = sandbox_istiod
    sb.run("up", "--clusters", str(len(sb.clusters)), "--vms", "1")
    started = time.monotonic()
    rc, data, raw = playbook("site.yml", "--skip-tags", "verify_mesh")
    assert rc == 0, raw[-5000:]
    print("site.yml with vm1: %.1f s" % (time.monotonic() - started))
    yield sb


@pytest.fixture
def api(mesh):
    return mesh.api_client(CLUSTER)


def test_the_agent_holds_a_certificate_of_the_vm_identity_from_the_mesh_root(mesh):
    wait_for(lambda: cert_chain() != "", timeout=60, what="the agent on vm1 to write /etc/certs/cert-chain.pem")
    leaf = assert_identity_and_chain(cert_chain())
    assert service_active() == "active"
    # the root on the VM is the mesh root
    assert ssh("cat", "/etc/certs/root-cert.pem").stdout.strip() == open(ROOT_CERT).read().strip()
    print("vm1 certificate: %s, issuer %s" % (SPIFFE, leaf.issuer.rfc4514_string()))


def test_the_workload_entry_is_an_endpoint_of_the_vm_service_in_istiod(mesh, api):
    entries = [e for e in workload_entries(api) if e["metadata"]["name"] == "%s-%s" % (APP, VM)]
    assert len(entries) == 1, workload_entries(api)
    address = entries[0]["spec"]["address"]
    assert entries[0]["spec"]["serviceAccount"] == APP and entries[0]["spec"]["network"] == "network2"
    wait_for(lambda: address in endpoint_addresses(mesh), timeout=60,
             what="cluster2's istiod to list %s as an endpoint of %s" % (address, HOST))
    print("istiod endpoints of %s: %s" % (HOST, endpoint_addresses(mesh)))


def test_the_files_match_istioctl_key_by_key(mesh, tmp_path):
    hosts = open(os.path.join(FILES_DIR, "hosts")).read()
    ingress_ip = hosts.split()[0]
    res = subprocess.run([ISTIOCTL, "--kubeconfig", mesh.kubeconfig, "--context", CLUSTER, "x", "workload", "entry",
                          "configure", "--name", APP, "--namespace", NS, "-o", str(tmp_path), "--ingressIP", ingress_ip],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    ours = vmfiles.parse_env(open(os.path.join(FILES_DIR, "cluster.env")).read())
    theirs = vmfiles.parse_env((tmp_path / "cluster.env").read_text())
    assert sorted(ours) == sorted(theirs), "keys only ours: %s; only istioctl's: %s" % (
        sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours)))
    differing = dict((k, (ours[k], theirs[k])) for k in ours if ours[k] != theirs[k])
    assert differing == {}, differing
    mine = yaml.safe_load(open(os.path.join(FILES_DIR, "mesh.yaml")))["defaultConfig"]
    istioctl = yaml.safe_load((tmp_path / "mesh.yaml").read_text())["defaultConfig"]
    # istioctl passes the mesh config through protobuf, which drops keys at their zero value
    zero = (False, 0, "", None, [], {})
    assert dict((k, v) for k, v in mine.items() if k not in istioctl and v not in zero) == {}
    assert dict((k, v) for k, v in istioctl.items() if mine.get(k) != v) == {}
    assert open(os.path.join(FILES_DIR, "root-cert.pem")).read() == (tmp_path / "root-cert.pem").read_text()
    assert hosts == (tmp_path / "hosts").read_text()
    for path in (os.path.join(FILES_DIR, "istio-token"), str(tmp_path / "istio-token")):
        claims = vmfiles.token_claims(open(path).read())
        assert claims["sub"] == "system:serviceaccount:%s:%s" % (NS, APP) and "istio-ca" in claims["aud"]
    assert oct(os.stat(os.path.join(FILES_DIR, "istio-token")).st_mode & 0o777) == "0o600"
    print("cluster.env: %d keys equal; mesh.yaml: %d keys equal" % (len(ours), len(istioctl)))


def test_out_then_four_passes_check_apply_check_apply(mesh, api):
    rc, data, raw = onboard("-e", "onboard_vm_state=absent")
    assert rc == 0, raw[-4000:]
    assert service_active() != "active"
    assert ssh("test", "-e", "/var/lib/istio/envoy/cluster.env", check=False).returncode != 0
    assert ssh("grep", "-q", "istiod.istio-system.svc", "/etc/hosts", check=False).returncode != 0
    assert workload_entries(api) == [] and workload_groups(api) == []
    assert not os.path.exists(FILES_DIR)
    passes = []
    for args in (["--check", "--diff"], ["--diff"], ["--check", "--diff"], ["--diff"]):
        started = time.monotonic()
        rc, data, raw = onboard(*args)
        assert rc == 0, raw[-4000:]
        passes.append(sides(data) + (time.monotonic() - started,))
    print("four passes (cluster changed, VM changed, seconds): %s" % [(len(c), len(v), round(t, 1)) for c, v, t in passes])
    (c1, v1, _t1), (c2, v2, _t2), (c3, v3, _t3), (c4, v4, _t4) = passes
    assert c1 and v1 and c2 and v2, passes[:2]
    assert (c3, v3, c4, v4) == ([], [], [], []), passes[2:]
    # check mode changed nothing: the apply after it still had the changes to make
    assert any("WorkloadGroups" in n for n in c2) and any("token" in n for n in v2)
    wait_for(lambda: cert_chain() != "", timeout=60, what="the agent to write its certificate again")
    assert_identity_and_chain(cert_chain())


def test_a_vm_off_longer_than_its_token_rejoins_by_re_running_the_play(mesh):
    # as after a long time off: the token on the controller has expired, the VM's is no longer
    # valid and its certificate is gone
    expired = jwt({"sub": "system:serviceaccount:%s:%s" % (NS, APP), "aud": ["istio-ca"], "exp": int(time.time()) - 60})
    with open(os.path.join(FILES_DIR, "istio-token"), "w") as f:
        f.write(expired)
    for path in ("/var/lib/istio/tokens/istio-token", "/var/run/secrets/tokens/istio-token"):
        ssh("printf %%s '%s' > %s" % (expired, path))  # one string: the VM's shell runs it
    ssh("rm", "-f", "/etc/certs/cert-chain.pem", "/etc/certs/key.pem")
    seen = int(ssh("wc", "-l", "/var/log/istio/istio.log").stdout.split()[0])
    ssh("systemctl", "restart", "istio")
    time.sleep(15)
    assert cert_chain() == "", "the agent got a certificate with an invalid token"
    # the agent's own log (the package's istio-start.sh writes it there): istiod refused the token
    log = "".join(ssh("cat", "/var/log/istio/istio.log").stdout.splitlines(True)[seen:])
    assert "authentication failure" in log, log[-2000:]
    rc, data, raw = onboard()
    assert rc == 0, raw[-4000:]
    assert any("token" in n for n in sides(data)[1]), changed_tasks(data)
    wait_for(lambda: cert_chain() != "", timeout=60, what="the agent to rejoin with the renewed token")
    assert_identity_and_chain(cert_chain())


def test_the_token_survives_a_reboot(mesh):
    before = ssh("sha256sum", "/var/run/secrets/tokens/istio-token").stdout.split()[0]
    mesh.run("vm", "--restart", VM)
    wait_for(lambda: service_active() == "active", timeout=90, what="istio to start again after vm1's reboot")
    assert ssh("sha256sum", "/var/run/secrets/tokens/istio-token").stdout.split()[0] == before
    ssh("rm", "-f", "/etc/certs/cert-chain.pem")
    ssh("systemctl", "restart", "istio")
    wait_for(lambda: cert_chain() != "", timeout=60, what="a certificate with the token put back after the reboot")
    rc, data, raw = onboard()
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data)


def test_multi_network_vm(mesh, api):
    rc, data, raw = onboard("-e", "onboard_vm_network=vm-network")
    assert rc == 0, raw[-4000:]
    (wg,) = workload_groups(api)
    assert wg["spec"]["template"]["network"] == "vm-network"
    env = vmfiles.parse_env(open(os.path.join(FILES_DIR, "cluster.env")).read())
    assert env["ISTIO_META_NETWORK"] == "vm-network"
    address = workload_entries(api)[0]["spec"]["address"]
    wait_for(lambda: endpoint_addresses(mesh).get(address) == "vm-network", timeout=60,
             what="istiod to list the VM's endpoint on network vm-network")
    wait_for(lambda: cert_chain() != "", timeout=60, what="the agent's certificate")
    rc, data, raw = onboard()
    assert rc == 0, raw[-4000:]
    wait_for(lambda: endpoint_addresses(mesh).get(address) == "network2", timeout=60,
             what="istiod to list the VM's endpoint on network2 again")


def test_autoregistration_by_the_real_istiod(mesh, api):
    rc, data, raw = onboard("-e", "onboard_vm_autoregister=true", "-e", "onboard_vm_address=")
    assert rc == 0, raw[-4000:]

    def registered():
        return [e for e in workload_entries(api)
                if (e["metadata"].get("annotations") or {}).get("istio.io/autoRegistrationGroup") == APP]
    wait_for(registered, timeout=90, what="cluster2's istiod to register vm1 (a WorkloadEntry of group %s)" % APP)
    (entry,) = registered()
    assert [e["metadata"]["name"] for e in workload_entries(api)] == [entry["metadata"]["name"]], \
        "the role's own WorkloadEntry is pruned when the VM registers itself"
    address = entry["spec"]["address"]
    wait_for(lambda: address in endpoint_addresses(mesh), timeout=60, what="the registered address as an endpoint")
    print("autoregistered: %s at %s" % (entry["metadata"]["name"], address))
    ssh("systemctl", "stop", "istio")
    wait_for(lambda: not registered(), timeout=120,
             what="istiod to remove the registered WorkloadEntry after the agent stopped (its grace period)")
    rc, data, raw = onboard()
    assert rc == 0, raw[-4000:]
    assert [e["metadata"]["name"] for e in workload_entries(api)] == ["%s-%s" % (APP, VM)]


# --- bad input: refused before any change, naming the VM and the variable --------------------------


@pytest.mark.parametrize("args,words", [
    (["-e", "onboard_vm_address="], ["vm1", "onboard_vm_address"]),
    (["-e", "onboard_vm_cluster=cluster9"], ["vm1", "onboard_vm_cluster", "cluster9"]),
    (["-e", "onboard_vm_namespace=VM_Apps"], ["vm1", "onboard_vm_namespace"]),
    (["-e", "onboard_vm_package=/nonexistent/istio-sidecar.deb"], ["vm1", "onboard_vm_package"]),
    (["-e", "ansible_port=1"], ["vm1", "Connection refused"]),
])
def test_bad_input_is_refused_before_any_change(mesh, api, args, words):
    before = [(e["metadata"]["name"], e["metadata"]["resourceVersion"]) for e in workload_entries(api)]
    mtime = ssh("stat", "-c", "%Y", "/var/lib/istio/envoy/cluster.env").stdout
    rc, data, raw = onboard(*args)
    assert rc != 0
    assert changed_tasks(data) == []
    text = " ".join(str(m) for m in failure_messages(data)) or raw
    if "Connection refused" in words:
        text = raw
    for w in words:
        assert w in text, (w, text[-2000:])
    assert [(e["metadata"]["name"], e["metadata"]["resourceVersion"]) for e in workload_entries(api)] == before
    assert ssh("stat", "-c", "%Y", "/var/lib/istio/envoy/cluster.env").stdout == mtime


def test_an_unsupported_os_family_is_refused(mesh):
    saved = ssh("cat", "/etc/os-release").stdout
    ssh("printf 'NAME=\"Alpine Linux\"\\nID=alpine\\nVERSION_ID=3.20.0\\n' > /etc/os-release")
    try:
        rc, data, raw = onboard()
    finally:
        ssh("cat > /etc/os-release << 'EOF'\n%sEOF" % saved)
    assert rc != 0 and changed_tasks(data) == []
    text = " ".join(str(m) for m in failure_messages(data))
    assert "vm1" in text and "ansible_os_family" in text and "Alpine" in text, text
