# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a VM needs from Istio, proven on the host (no VM): the sandbox's pilot-agent, Envoy-less as the sandbox
istio-sidecar package runs it, gets its workload certificate from a real istiod through the east-west gateway
address (the svcproxy gateway relay of install_istio's expose-istiod Gateway), and with the xDS stand-in beside it
istiod autoregisters it (WorkloadEntry from the WorkloadGroup) and removes the entry after it stops.

Real API servers, real istiod, real pilot-agent; nothing mocked.  Each step prints how long it took (pytest -s).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID
from kubernetes import client
from kubernetes.client.rest import ApiException
from playbook_runner import REPO_ROOT, playbook

from sandbox_helpers import eastwest_address, unique, wait_for
from tools.sandbox import common, sidecar_deb, svcproxy

pytestmark = pytest.mark.sandbox

CLUSTER = "cluster2"  # the inventory's cluster with a LoadBalancer east-west gateway (cluster1's is a NodePort)
NETWORK = "network2"
NS = "istio-system"
GROUP, VERSION = "networking.istio.io", "v1"
# the CA directory of the sandbox inventory (install_istio_ca_dir): the mesh root every istiod's CA chains to
MESH_ROOT = os.path.join(REPO_ROOT, ".sandbox", "ca", "root-cert.pem")
ISTIOD_HOST = "istiod.istio-system.svc"
TIMINGS = {}


def _timed(what: str, t0: float) -> None:
    TIMINGS[what] = time.monotonic() - t0
    print("\n[timing] %s: %.1fs" % (what, TIMINGS[what]), flush=True)


@pytest.fixture(scope="module")
def exposed(sandbox_istiod):
    """install_istio.yml with install_istio_expose_istiod=true, the istiods restarted (a first cacerts is taken at start-up),
    and the relay of cluster2's gateway address to its istiod."""
    why = svcproxy.why_not_possible()
    if why:
        pytest.skip("the relay cannot run here: %s" % why)
    assert svcproxy.pid(), "no svcproxy relay runs in this sandbox (`up` and `istiod` start it)"
    t0 = time.monotonic()
    rc, dummy, raw = playbook("install_istio.yml", "-e", "install_istio_expose_istiod=true")
    assert rc == 0, raw[-4000:]
    _timed("install_istio.yml with install_istio_expose_istiod=true", t0)
    t0 = time.monotonic()
    sandbox_istiod.run("istiod", "--restart")
    _timed("istiod --restart (both clusters)", t0)
    address = wait_for(lambda: eastwest_address(sandbox_istiod.api_client(CLUSTER)), 30,
                       what="%s: the east-west gateway Service's LoadBalancer address" % CLUSTER)
    t0 = time.monotonic()
    _wait_gateway_relay(address)
    _timed("gateway relay after the Gateway exists", t0)
    return sandbox_istiod, address


def _foreign_holders(address: str, port: int) -> list:
    """'pid (command line)' of the processes other than this sandbox's relay listening on address:port."""
    out = subprocess.run(["ss", "-Hltnp", "src", "%s:%d" % (address, port)], capture_output=True, text=True,
                         check=False).stdout
    pids = {int(p) for p in re.findall(r"pid=(\d+)", out)} - {svcproxy.pid()}
    return ["%d (%s)" % (p, " ".join(common.proc_cmdline(p))) for p in sorted(pids)]


def _wait_gateway_relay(address: str) -> None:
    """Wait for this sandbox's relay of address:15012 and :15017; skip when another sandbox's relay holds them
    (two sandboxes' LoadBalancer pools are the same: docs/sandbox.md, istiod at the east-west gateway address)."""
    def ready():
        if _gateway_relay(address, 15012) and _gateway_relay(address, 15017):
            return True
        other = sorted(set(_foreign_holders(address, 15012) + _foreign_holders(address, 15017)))
        return other and "another sandbox holds the gateway address: %s" % ", ".join(other)
    got = wait_for(ready, 30, what="the svcproxy relay of %s:15012 and :15017 (Gateway istio-system/istiod-gateway)"
                   % address)
    if got is not True:
        pytest.skip("%s; this sandbox's relay cannot listen there (the collision docs/sandbox.md describes)" % got)


def _gateway_relay(address: str, port: int) -> dict:
    return next((r for r in svcproxy.read_status().get("relays", [])
                 if (r["address"], r["port"]) == (address, port) and r.get("gateway")), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _package_env() -> dict:
    """The KEY=VALUE settings of the package's sidecar.env sandbox section."""
    env = {}
    for line in sidecar_deb.SANDBOX_ENV.splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


class Workload:
    """A temporary working directory laid out as a VM's / (the agent's relative paths: ./etc/certs,
    ./var/run/secrets/tokens, ./etc/istio/proxy) and the agent and stand-in run in it."""

    def __init__(self, sandbox, address: str, namespace: str, sa: str, group: str, token: str, root_pem: str):
        self.dir = tempfile.mkdtemp(prefix="sbtest-vm-")
        self.ip = "127.0.77.%d" % (os.getpid() % 200 + 20)  # INSTANCE_IP: only recorded, nothing binds it
        self.namespace, self.sa = namespace, sa
        self.procs = {}
        os.makedirs(os.path.join(self.dir, "var/run/secrets/tokens"))
        os.makedirs(os.path.join(self.dir, "etc/certs"))
        with open(os.path.join(self.dir, "var/run/secrets/tokens/istio-token"), "w") as f:
            f.write(token)
        with open(os.path.join(self.dir, "etc/certs/root-cert.pem"), "w") as f:
            f.write(root_pem)
        istiod = "%s:15012" % address
        self.env = dict(os.environ)
        self.env.pop("KUBECONFIG", None)
        self.env.update(_package_env())
        self.env.update({
            # the package's GRPC_XDS_BOOTSTRAP is /etc/istio/proxy/...: here, the same path under the working dir
            "GRPC_XDS_BOOTSTRAP": "./etc/istio/proxy/grpc-bootstrap.json",
            # what istio-start.sh gives the agent from cluster.env (ISTIO_NAMESPACE -> POD_NAMESPACE)
            "POD_NAME": "vm-%s" % namespace[-8:], "POD_NAMESPACE": namespace, "INSTANCE_IP": self.ip,
            "ISTIO_META_AUTO_REGISTER_GROUP": group, "ISTIO_META_NETWORK": NETWORK, "ISTIO_META_CLUSTER_ID": CLUSTER,
            "SERVICE_ACCOUNT": sa, "TRUST_DOMAIN": "cluster.local",
            "PROV_CERT": "./etc/certs", "OUTPUT_CERTS": "./etc/certs",
            # a VM resolves istiod.istio-system.svc to the gateway (/etc/hosts); here the address is given and
            # ISTIOD_SAN names the host to verify (it is used for the CA too only while CA_ADDR is unset)
            "ISTIOD_SAN": ISTIOD_HOST,
            "PROXY_CONFIG": "discoveryAddress: %s\ncontrolPlaneAuthPolicy: MUTUAL_TLS\nserviceCluster: vm\n"
                            "statusPort: %d\n" % (istiod, _free_port()),
        })
        self.env.pop("CA_ADDR", None)

    def path(self, *rel) -> str:
        return os.path.join(self.dir, *rel)

    def start(self, name: str, argv: list) -> subprocess.Popen:
        log = open(self.path(name + ".log"), "w")
        proc = subprocess.Popen(argv, cwd=self.dir, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def start_agent(self) -> subprocess.Popen:
        return self.start("agent", [common.binary("pilot-agent"), "proxy"])

    def start_standin(self) -> subprocess.Popen:
        return self.start("standin", [common.binary("xds-standin"), "-wait", "60s", "-give-up", "60s"])

    def log(self, name: str) -> str:
        try:
            with open(self.path(name + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        shutil.rmtree(self.dir, ignore_errors=True)

    def certs_written(self) -> bool:
        return all(os.path.isfile(self.path("etc/certs", f)) for f in ("key.pem", "cert-chain.pem"))


@pytest.fixture(scope="module")
def vm_identity(exposed):
    """Namespace, ServiceAccount and WorkloadGroup (networking.istio.io/v1) on cluster2, and the root the VM
    trusts (ConfigMap istio-ca-root-cert of its namespace, as `istioctl x workload entry configure` takes it)."""
    sandbox, address = exposed
    api = sandbox.api_client(CLUSTER)
    core = client.CoreV1Api(api)
    ns = unique("sbtest-vm")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="vm-sa")))
    group = {"apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "WorkloadGroup",
             "metadata": {"name": "vmapp", "namespace": ns},
             "spec": {"metadata": {"labels": {"app": "vmapp"}},
                      "template": {"serviceAccount": "vm-sa", "network": NETWORK}}}
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "workloadgroups", group)
    root = wait_for(lambda: core.read_namespaced_config_map("istio-ca-root-cert", ns).data["root-cert.pem"], 60,
                    what="%s: istiod to publish ConfigMap %s/istio-ca-root-cert" % (CLUSTER, ns))
    yield sandbox, address, ns, root
    try:
        core.delete_namespace(ns)
    except ApiException:
        pass


def _token(sandbox, ns: str, audience: str) -> str:
    core = client.CoreV1Api(sandbox.api_client(CLUSTER))
    spec = client.V1TokenRequestSpec(audiences=[audience], expiration_seconds=3600)
    req = client.AuthenticationV1TokenRequest(spec=spec)
    return core.create_namespaced_service_account_token("vm-sa", ns, req).status.token


def _workload_entries(sandbox, ns: str) -> list:
    return client.CustomObjectsApi(sandbox.api_client(CLUSTER)).list_namespaced_custom_object(
        GROUP, VERSION, ns, "workloadentries")["items"]


def _load_pems(data: bytes) -> list:
    return x509.load_pem_x509_certificates(data)


def test_the_gateway_address_reaches_istiod_with_its_certificate(exposed):
    sandbox, address = exposed
    ports = sandbox.istiod_ports[CLUSTER]
    assert _gateway_relay(address, 15012)["istiod_port"] == ports["secure_grpc"]
    assert _gateway_relay(address, 15017)["istiod_port"] == ports["https"]
    ctx = ssl.create_default_context(cafile=MESH_ROOT)
    for port in (15012, 15017):
        with socket.create_connection((address, port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=ISTIOD_HOST) as tls:
                leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        sans = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        assert ISTIOD_HOST in sans.get_values_for_type(x509.DNSName), (port, sans)
        assert "L=%s" % CLUSTER in leaf.issuer.rfc4514_string(), leaf.issuer  # signed by cluster2's intermediate


def test_agent_gets_its_certificate_and_istiod_autoregisters_and_removes_the_workload(vm_identity):
    sandbox, address, ns, root_pem = vm_identity
    vm = Workload(sandbox, address, ns, "vm-sa", "vmapp", _token(sandbox, ns, "istio-ca"), root_pem)
    try:
        t0 = time.monotonic()
        agent = vm.start_agent()
        wait_for(lambda: vm.certs_written() or agent.poll() is not None, 60,
                 what="pilot-agent to write key.pem and cert-chain.pem (CA through %s:15012)" % address)
        assert agent.poll() is None, "pilot-agent exited %s:\n%s" % (agent.returncode, vm.log("agent")[-3000:])
        assert vm.certs_written(), vm.log("agent")[-3000:]
        _timed("agent start -> workload certificate written", t0)

        # the chain: leaf (URI SAN of the ServiceAccount) -> cluster2's intermediate -> the mesh root of the CA dir
        with open(vm.path("etc/certs/cert-chain.pem"), "rb") as f:
            chain = _load_pems(f.read())
        with open(MESH_ROOT, "rb") as f:
            mesh_root = _load_pems(f.read())[0]
        leaf = chain[0]
        uris = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value.get_values_for_type(
            x509.UniformResourceIdentifier)
        assert uris == ["spiffe://cluster.local/ns/%s/sa/vm-sa" % ns]
        issuers = [c for c in chain[1:] if c != mesh_root] + [mesh_root]
        cert = leaf
        for issuer in issuers:
            cert.verify_directly_issued_by(issuer)
            cert = issuer
        with open(vm.path("etc/certs/root-cert.pem"), "rb") as f:
            assert _load_pems(f.read())[0] == mesh_root
        assert os.path.isfile(vm.path("etc/istio/proxy/grpc-bootstrap.json"))

        # no stand-in, no xDS stream: no WorkloadEntry (the certificate request alone registers nothing)
        assert _workload_entries(sandbox, ns) == []

        t0 = time.monotonic()
        standin = vm.start_standin()
        entries = wait_for(lambda: _workload_entries(sandbox, ns) or (standin.poll() is not None and ["exited"]), 60,
                           what="istiod to autoregister the workload (WorkloadEntry in %s)" % ns)
        assert standin.poll() is None, "xds-standin exited %s:\n%s" % (standin.returncode, vm.log("standin")[-3000:])
        _timed("stand-in start -> WorkloadEntry created", t0)
        assert len(entries) == 1, entries
        entry = entries[0]
        assert entry["metadata"]["name"] == "vmapp-%s-%s" % (vm.ip, NETWORK)
        assert entry["spec"]["address"] == vm.ip
        assert entry["spec"]["serviceAccount"] == "vm-sa"
        assert entry["spec"]["network"] == NETWORK
        assert entry["spec"]["labels"] == {"app": "vmapp"}
        assert entry["metadata"]["annotations"]["istio.io/autoRegistrationGroup"] == "vmapp"
        assert "istio.io/connectedAt" in entry["metadata"]["annotations"]
        assert "xDS stream open through" in vm.log("standin"), vm.log("standin")
        assert "connected to upstream XDS server: %s:15012" % address in vm.log("agent")

        # the agent and the stand-in stop (as `systemctl stop istio` stops both): istiod marks the entry
        # disconnected and deletes it after its grace period (PILOT_WORKLOAD_ENTRY_GRACE_PERIOD, 10 s)
        t0 = time.monotonic()
        vm.stop("standin")
        vm.stop("agent")
        _timed("agent and stand-in stopped (SIGTERM)", t0)
        t0 = time.monotonic()
        wait_for(lambda: not _workload_entries(sandbox, ns), 60, interval=1,
                 what="istiod to remove WorkloadEntry %s/%s after its 10 s grace period" % (ns, entry["metadata"]["name"]))
        _timed("stop -> WorkloadEntry removed", t0)
        assert "stopping (signal)" in vm.log("standin")
    finally:
        vm.close()


def test_a_token_for_another_audience_is_refused(vm_identity):
    sandbox, address, ns, root_pem = vm_identity
    vm = Workload(sandbox, address, ns, "vm-sa", "vmapp", _token(sandbox, ns, "not-istio-ca"), root_pem)
    try:
        t0 = time.monotonic()
        agent = vm.start_agent()
        wait_for(lambda: "Unauthenticated" in vm.log("agent") or agent.poll() is not None, 60,
                 what="pilot-agent's certificate request with the wrong-audience token to be refused")
        _timed("wrong audience -> refused", t0)
        assert "failed to sign CSR: create certificate: rpc error: code = Unauthenticated" in vm.log("agent")
        time.sleep(2)  # it keeps retrying; still nothing written
        assert not vm.certs_written()
    finally:
        vm.close()


def test_the_relay_stops_when_the_gateway_goes_and_follows_it_back(exposed):
    sandbox, address = exposed
    custom = client.CustomObjectsApi(sandbox.api_client(CLUSTER))
    gw = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "gateways", "istiod-gateway")
    t0 = time.monotonic()
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, "gateways", "istiod-gateway")
    try:
        wait_for(lambda: not _gateway_relay(address, 15012) and not _gateway_relay(address, 15017), 30,
                 what="the relay to stop relaying %s:15012/15017 after Gateway istiod-gateway was deleted" % address)
        _timed("Gateway deleted -> relay stopped", t0)
        if not _foreign_holders(address, 15012):  # else another sandbox's relay took the freed address
            def refused():
                try:
                    socket.create_connection((address, 15012), timeout=5).close()
                except ConnectionRefusedError:
                    return True
                except ConnectionResetError:  # queued on the listener the relay was closing
                    return False
                return False
            wait_for(refused, 10, what="a connect to %s:15012 to be refused once the relay stopped" % address)
    finally:
        meta = {k: gw["metadata"][k] for k in ("name", "namespace", "labels", "annotations") if gw["metadata"].get(k)}
        meta.get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
        t0 = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "gateways",
                                               {"apiVersion": gw["apiVersion"], "kind": gw["kind"], "metadata": meta,
                                                "spec": gw["spec"]})
    _wait_gateway_relay(address)
    _timed("Gateway recreated -> relay back", t0)
    socket.create_connection((address, 15012), timeout=5).close()


def test_status_names_the_gateway_relays(exposed):
    sandbox, address = exposed
    _wait_gateway_relay(address)
    out = sandbox.run("status").stdout
    assert "%s istio-eastwestgateway (Gateway istiod-gateway) %s:15012 -> 127.0.0.1:%d" % (
        CLUSTER, address, sandbox.istiod_ports[CLUSTER]["secure_grpc"]) in out, out
