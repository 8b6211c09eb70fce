# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The out-of-cluster istiods the sandbox runs: one per cluster, real pilot-discovery."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox_helpers import unique, wait_for
from tools.sandbox import common

pytestmark = pytest.mark.sandbox


def _get(port: int, path: str):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


def test_one_istiod_per_cluster_on_distinct_loopback_ports(sandbox_istiod):
    st = common.load_state()
    assert sorted(st["istiods"]) == sorted(sandbox_istiod.clusters)
    seen = set()
    for cluster in sandbox_istiod.clusters:
        info = st["istiods"][cluster]
        ports = info["ports"]
        assert set(ports) == {"http", "grpc", "secure_grpc", "monitoring", "https", "ctrlz"}
        assert not seen & set(ports.values())
        seen |= set(ports.values())
        listening = common.listening_ports(info["pid"])
        assert {port for _addr, port in listening} >= set(ports.values()), (cluster, listening)
        for addr, port in listening:
            assert ipaddress.ip_address(addr).is_loopback, (cluster, addr, port)


def test_istiod_debug_endpoints(sandbox_istiod):
    for cluster in sandbox_istiod.clusters:
        mon = sandbox_istiod.istiod_ports[cluster]["monitoring"]
        clusters = _get(mon, "/debug/clusterz")
        assert cluster in [c.get("id") for c in clusters], clusters
        services = _get(mon, "/debug/registryz")
        hosts = [s.get("hostname") for s in services]
        assert "kubernetes.default.svc.cluster.local" in hosts
        assert isinstance(_get(mon, "/debug/endpointShardz"), dict)
        # the same debug handlers answer on the http port
        assert cluster in [c.get("id") for c in _get(sandbox_istiod.istiod_ports[cluster]["http"], "/debug/clusterz")]


def test_istiod_sees_deployments_of_its_cluster(sandbox_istiod):
    cluster = sandbox_istiod.clusters[-1]
    api = sandbox_istiod.api_client(cluster)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = unique("sbtest-istiod")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    try:
        labels = {"app": "echo"}
        apps.create_namespaced_deployment(ns, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="echo"),
            spec=client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                                         template=client.V1PodTemplateSpec(
                                             metadata=client.V1ObjectMeta(labels=labels),
                                             spec=client.V1PodSpec(containers=[client.V1Container(
                                                 name="echo", image="example.invalid/echo:1")])))))
        core.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name="echo"),
            spec=client.V1ServiceSpec(selector=labels, ports=[
                client.V1ServicePort(name="http", port=80, target_port=8080)])))
        host = "echo.%s.svc.cluster.local" % ns
        mon = sandbox_istiod.istiod_ports[cluster]["monitoring"]
        shards = wait_for(lambda: _get(mon, "/debug/endpointShardz").get(host, {}).get(ns, {}).get("Shards"), 60,
                          what="endpoint shard of %s in istiod" % host)
        assert any(k.endswith("/" + cluster) or k == cluster for k in shards), shards
    finally:
        core.delete_namespace(ns)


# ---------------------------------------------------------------- plugged-in CA


def _ca_pair():
    now = datetime.datetime.now(datetime.timezone.utc)

    def make(subject_cn, issuer_name, issuer_key, key, path_len):
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshfed sandbox test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
        b = (x509.CertificateBuilder()
             .subject_name(name).issuer_name(issuer_name or name).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        return b.sign(issuer_key or key, hashes.SHA256()), name

    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root, root_name = make("sandbox test root CA", None, None, root_key, None)
    int_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter = make("sandbox test intermediate CA cluster1", root_name, root_key, int_key, 0)[0]

    def pem(cert):
        return cert.public_bytes(serialization.Encoding.PEM)

    return {
        "root-cert.pem": pem(root),
        "ca-cert.pem": pem(inter),
        "ca-key.pem": int_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()),
        "cert-chain.pem": pem(inter) + pem(root),
    }, root


def test_istiod_publishes_the_plugged_in_root(sandbox_istiod):
    cluster = "cluster1"
    core = client.CoreV1Api(sandbox_istiod.api_client(cluster))
    files, root = _ca_pair()
    try:
        backup = core.read_namespaced_secret("cacerts", "istio-system")
    except ApiException as e:
        if e.status != 404:
            raise
        backup = None
    ns = unique("sbtest-ca")
    body = client.V1Secret(metadata=client.V1ObjectMeta(name="cacerts", namespace="istio-system"),
                           data={k: base64.b64encode(v).decode() for k, v in files.items()})
    log_path = common.load_state()["istiods"][cluster]["log"]
    try:
        if backup:
            core.replace_namespaced_secret("cacerts", "istio-system", body)
        else:
            core.create_namespaced_secret("istio-system", body)
        # another root (no reload without ISTIO_MULTIROOT_MESH), or the first cacerts after a self-signed
        # start (istiod watches only a directory it started with): restart it
        with open(log_path, "rb") as f:
            offset = f.seek(0, 2)
        sandbox_istiod.run("istiod", "--restart", "--cluster", cluster)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        for namespace in ("istio-system", ns):
            def published():
                cm = core.read_namespaced_config_map("istio-ca-root-cert", namespace)
                pem = (cm.data or {}).get("root-cert.pem", "")
                return pem if x509.load_pem_x509_certificates(pem.encode()) == [root] else None
            pem = wait_for(published, 90, what="istio-ca-root-cert in %s carrying the plugged-in root" % namespace)
            assert pem.strip() == files["root-cert.pem"].decode().strip()
        with open(log_path, errors="replace") as f:
            f.seek(offset)
            started = f.read()
        # the Secret as the Pod's cacerts volume would hold it (tools/sandbox/cacerts.py), taken as a plugged-in CA
        assert "Use local CA certificate" in started and "Added cacerts files watcher" in started
    finally:
        try:
            core.delete_namespace(ns)
        except ApiException as e:
            if e.status != 404:
                raise
        if backup:
            backup.metadata = client.V1ObjectMeta(name="cacerts", namespace="istio-system",
                                                  labels=backup.metadata.labels,
                                                  annotations=backup.metadata.annotations)
            core.replace_namespaced_secret("cacerts", "istio-system", backup)
        else:
            core.delete_namespaced_secret("cacerts", "istio-system")
        sandbox_istiod.run("istiod", "--restart", "--cluster", cluster)


@pytest.mark.parametrize("path", ["/debug/registryz", "/debug/endpointShardz", "/debug/clusterz"])
def test_debug_endpoints_are_json_on_every_istiod(sandbox_istiod, path):
    for cluster in sandbox_istiod.clusters:
        _get(sandbox_istiod.istiod_ports[cluster]["monitoring"], path)
