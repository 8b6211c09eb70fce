# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ca_client against the sandbox's real istiods: each cluster's istiod CA signs a certificate for
a ServiceAccount token of audience istio-ca, the SPIFFE identity is the token's, and the chain
verifies against that cluster's istio-ca-root-cert bundle AND the other cluster's (one shared
root: a certificate from cluster1's istiod is trusted in cluster2 -- what a rotation must keep
true at every phase).

Needs Istio installed with the shared CA (the cacerts Secret in every cluster: install_istio.yml)
and the sandbox's istiods running.  It only reads, and creates (then deletes) its own namespace
and ServiceAccount.  It does not start the sandbox (the shared sandbox is someone else's to start):
it reads the sandbox state file and fails, saying so, when the istiods do not answer.

    flock /tmp/sandbox.lock python -m pytest tests/integration/ca -q -p no:cacheprovider
"""

from __future__ import annotations

import datetime
import json
import urllib.request
import uuid

import pytest
import yaml

from conftest import _load  # tests/integration/conftest.py: the sandbox state file, read

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, ca_client, cacerts, rotation
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service

SA = "ca-client-probe"
# istiod's serving certificate in the sandbox: ISTIOD_CUSTOM_HOST=localhost (tools/sandbox/istiod.py)
TARGET_NAME = "localhost"


@pytest.fixture(scope="module")
def running():
    """The sandbox as its state file describes it; fails when its istiods do not answer."""
    from tools.sandbox import common

    sb = _load(common.state_path())
    with open(sb.state_file) as f:
        istiods = json.load(f).get("istiods") or {}
    for name in sb.clusters:
        url = (istiods.get(name) or {}).get("ready_url")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                ok = r.status == 200
        except (OSError, ValueError, TypeError):
            ok = False
        if not ok:
            pytest.fail("the sandbox's istiod of %s does not answer at %s: start the sandbox and its istiods "
                        "(python3 -m tools.sandbox up; python3 -m tools.sandbox istiod)" % (name, url), pytrace=False)
    return sb


@pytest.fixture(scope="module")
def probe_ns(running):
    """A namespace and ServiceAccount of this test in every cluster, deleted afterwards."""
    ns = "meshfed-ca-probe-%s" % uuid.uuid4().hex[:6]
    services = dict((c, Service({"kubeconfig": running.kubeconfig, "context": c}, name=c)) for c in running.clusters)
    try:
        for svc in services.values():
            svc.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            svc.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": ns}})
        yield ns, services
    finally:
        for svc in services.values():
            svc.delete("v1", "Namespace", ns)


def root_bundle(svc, ns, timeout=60):
    """root-cert.pem of the istio-ca-root-cert ConfigMap istiod writes into ``ns``."""
    def missing():
        cm = svc.get("v1", "ConfigMap", "istio-ca-root-cert", ns)
        return [] if cm and (cm.get("data") or {}).get("root-cert.pem") else ["ConfigMap %s/istio-ca-root-cert" % ns]
    svc.wait("istiod writing the mesh root into namespace %s" % ns, missing, timeout)
    return svc.get("v1", "ConfigMap", "istio-ca-root-cert", ns)["data"]["root-cert.pem"].encode("ascii")


def trust_domain(svc):
    cm = svc.get("v1", "ConfigMap", "istio", "istio-system") or {}
    mesh = yaml.safe_load((cm.get("data") or {}).get("mesh") or "") or {}
    return mesh.get("trustDomain") or "cluster.local"


def address(sandbox, cluster):
    return "127.0.0.1:%d" % sandbox.istiod_ports[cluster]["secure_grpc"]


def test_every_istiod_signs_for_the_token_and_the_chain_is_trusted_everywhere(running, probe_ns):
    ns, services = probe_ns
    now = datetime.datetime.now(datetime.timezone.utc)
    bundles, chains, secrets = {}, {}, {}
    for name, svc in services.items():
        secret = svc.get("v1", "Secret", "cacerts", "istio-system")
        assert secret is not None, "%s has no Secret istio-system/cacerts: run playbooks/install_istio.yml" % name
        secrets[name] = cacerts.decode(secret["data"])
        bundles[name] = root_bundle(svc, ns)
    for name, svc in services.items():
        out = ca_client.workload_certificate(svc, address(running, name), ns, SA, bundles[name], target_name=TARGET_NAME,
                                             validity_seconds=600)
        chain = chains[name] = out["chain"]
        print("%s: %d elements, leaf %s issued by %s, not_after %s" % (
            name, len(chain), out["identity"]["uris"], out["identity"]["issuer"], out["identity"]["not_after"]))
        # the identity is the token's
        assert out["identity"]["uris"] == ["spiffe://%s/ns/%s/sa/%s" % (trust_domain(svc), ns, SA)]
        # signed by this cluster's intermediate (the cacerts Secret's ca-cert.pem)
        inter = ca.load_cert(secrets[name]["ca-cert.pem"], "%s ca-cert.pem" % name)
        leaf = ca.load_cert(chain[0].encode("ascii"), "leaf")
        assert ca.issued_by(leaf, inter), "%s: the leaf is not signed by its cacerts intermediate %s" % (
            name, inter.subject.rfc4514_string())
        # the last element is the whole root bundle istiod holds: that of its cacerts Secret
        assert rotation.fingerprints(chain[-1], "last element") == rotation.fingerprints(
            secrets[name]["root-cert.pem"], "cacerts root-cert.pem")
        # about 600 s asked, istiod may cap or keep it
        lifetime = ca.not_after(leaf) - ca.not_before(leaf)
        assert datetime.timedelta(seconds=60) < lifetime <= datetime.timedelta(hours=25)
    for name, chain in chains.items():
        for other, bundle in bundles.items():
            root = rotation.verify_chain(chain, bundle, now)
            assert root is not None, "a certificate from %s's istiod does not verify against %s's bundle" % (name, other)
            print("%s's certificate verifies against %s's istio-ca-root-cert (root %s, %s)" % (
                name, other, root["subject"], root["fingerprint_sha256"][:23]))
        # and not against a root of nobody's: the check can fail
        stranger = ca.cert_pem(ca.build_root(ca.generate_key("ecdsa-p256"),
                                             ca.Params(root_key_type="ecdsa-p256", key_type="ecdsa-p256"), now))
        assert rotation.verify_chain(chain, stranger, now) is None


def test_a_token_for_another_audience_is_refused(running, probe_ns):
    ns, services = probe_ns
    name = running.clusters[0]
    svc = services[name]
    token = svc.create_token(ns, SA, audiences=["not-istio-ca"], expiration=600)
    with pytest.raises(ca_client.CAClientError) as e:
        ca_client.request_certificate(address(running, name), token, root_bundle(svc, ns), target_name=TARGET_NAME)
    assert str(e.value).startswith("istiod's CA at %s: CreateCertificate failed: UNAUTHENTICATED" % address(running, name))


def test_an_untrusted_serving_certificate_is_named(running, probe_ns):
    ns, services = probe_ns
    name = running.clusters[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    stranger = ca.cert_pem(ca.build_root(ca.generate_key("ecdsa-p256"),
                                         ca.Params(root_key_type="ecdsa-p256", key_type="ecdsa-p256"), now))
    token = services[name].create_token(ns, SA, audiences=[ca_client.TOKEN_AUDIENCE], expiration=600)
    with pytest.raises(ca_client.CAClientError) as e:
        ca_client.request_certificate(address(running, name), token, stranger, target_name=TARGET_NAME, timeout=3)
    assert "connecting over TLS" in str(e.value) and address(running, name) in str(e.value)
