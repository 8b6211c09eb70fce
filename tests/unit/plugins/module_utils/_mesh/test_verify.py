# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""verify.evaluate and its rules, on hand-built facts shaped like verify_runner.gather's and
xDS snapshots shaped like xds.fetch's; the trust checks with real certificates."""

from __future__ import annotations

import collections
import datetime
import functools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify as v

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
REVIEWS = "reviews.bookinfo.svc.cluster.local"
DETAILS = "details.bookinfo.svc.cluster.local"
RATINGS = "ratings.bookinfo.global"
GW1, GW2, WRONG_GW = "192.0.2.1", "192.0.2.2", "198.51.100.9"
POD1, POD2 = "10.1.0.7", "10.2.0.5"
REVIEWS_SNI = "outbound_.9080_._.%s" % REVIEWS
DETAILS_SNI = "outbound_.9080_._.%s" % DETAILS
RATINGS_SNI = "outbound_.9080_._.%s" % RATINGS


# --- certificates: a mesh root, intermediates it signs, an unrelated root ------------------------


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshfed"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn, days, issuer=None):
    """(pem, cert, key) of a CA certificate valid until NOW + days; self-signed without issuer=(cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), cert, key


@functools.lru_cache(maxsize=None)
def pki():
    root_pem, root, root_key = _ca("Mesh Root CA", 3650)
    other_pem, other, other_key = _ca("Other Root CA", 3650)
    return {
        "root": root_pem,
        "other_root": other_pem,
        "inter1": _ca("Intermediate CA cluster1", 365, (root, root_key))[0],
        "inter2": _ca("Intermediate CA cluster2", 365, (root, root_key))[0],
        "inter_other": _ca("Intermediate CA cluster1", 365, (other, other_key))[0],
        "inter_10_days": _ca("Intermediate CA cluster1", 10, (root, root_key))[0],
    }


# --- xDS snapshots, as xds.fetch returns them ---------------------------------------------------------


def ep(address, port, cluster=None, tls_mode="istio"):
    return {"address": address, "port": port, "weight": 1, "workload": "", "cluster": cluster, "tls_mode": tls_mode,
            "healthy": True}


def snapshot(clusters=(), listeners=(), routes=()):
    """clusters: (name, endpoints, sni, mtls) tuples, each an EDS cluster; listeners and routes as decoded."""
    snap = {"clusters": {}, "endpoints": {}, "listeners": {}, "routes": {}}
    for name, eps, sni, mtls in clusters:
        snap["clusters"][name] = {"name": name, "type": "EDS", "sni": sni, "mtls": mtls, "endpoints": [], "eds_name": name}
        snap["endpoints"][name] = list(eps)
    for lst in listeners:
        snap["listeners"][lst["name"]] = lst
    for rc in routes:
        snap["routes"][rc["name"]] = rc
    return snap


def sidecar(host, eps, sni=None, mtls=True, port=9080):
    """A sidecar's snapshot with the one cluster outbound|port||host."""
    return snapshot([(v.outbound(port, host), eps, sni if sni is not None else v.sni(port, host), mtls)])


def gateway(backends, port=v.GATEWAY_PORT):
    """An east-west gateway's snapshot: {sni: endpoints of its backend}, one listener on ``port``."""
    chains = [{"server_names": [name], "tcp_cluster": name, "route_config": None} for name in backends]
    return snapshot([(name, eps, None, False) for name, eps in backends.items()],
                    listeners=[{"name": "0.0.0.0_%d" % port, "address": "0.0.0.0", "port": port, "chains": chains}])


def route_config(host, routes, port=9080, name=None):
    vh = {"name": "%s:%s" % (host, port), "domains": [host, "%s:%s" % (host, port)],
          "routes": [{"name": "r%d" % i, "prefix": "/", "headers": [], "clusters": cl} for i, cl in enumerate(routes)]}
    return {"name": name or str(port), "virtual_hosts": [vh]}


def gateways_of(network):
    return {"net1": {GW1}, "net2": {GW2}}.get(network, set())


# --- facts, as verify_runner.gather returns them --------------------------------------------------


def cluster(name, network, gateway_address, peer, peer_network, service, peer_gateway, xds, gateway_xds, cacerts):
    return {
        "name": name, "network": network, "role": "primary", "control_plane": None, "discovers": [peer],
        "gateway_address": gateway_address, "host": None, "kubernetes_version": "v1.30.2",
        "root_cert_pems": [pki()["root"]], "cacerts": {"ca-cert.pem": cacerts},
        "lb_addresses": [gateway_address], "has_eastwest": True,
        "webhook": {"status": "pass", "reason": "%s: a Pod in namespace bookinfo gets the istio-proxy sidecar" % name,
                    "namespace": "bookinfo"},
        "live": {"status": "pass", "reason": "%s: a request reached its peer" % name},
        "services": [{"host": service, "namespace": "bookinfo", "name": service.split(".")[0], "ports": [9080], "ready": 2}],
        "istiod": {"ready": True, "ready_reason": "GET /ready answered HTTP 200", "version": "1.24.2", "revision": "default",
                   "clusterz": [{"id": peer, "secretName": "istio-remote-secret-%s" % peer, "syncStatus": "synced"}],
                   "networkz": [{"Network": peer_network, "Cluster": peer, "Addr": peer_gateway, "Port": 15443}]},
        "remote_secrets": {peer: {"secret": "istio-system/istio-remote-secret-%s" % peer, "server": "https://%s:6443" % peer,
                                  "target": peer, "list": {"ok": True, "count": 7},
                                  "writes": {"create pods": False, "delete services": False, "update secrets": False}}},
        "global_entries": [], "route_hosts": {}, "xds": {"bookinfo": xds}, "gateway_xds": gateway_xds,
    }


def healthy_mesh():
    """cluster1 (net1) and cluster2 (net2) discover each other; cluster2 runs reviews, cluster1 details;
    cluster1 has a `.global` entry for cluster2's ratings and splits reviews 90/10 between v1 and v2."""
    at_gw2, at_gw1 = [ep(GW2, 15443)], [ep(GW1, 15443)]
    xds1 = snapshot([(v.outbound(9080, REVIEWS), at_gw2, REVIEWS_SNI, True),
                     (v.outbound(9080, REVIEWS, "v1"), at_gw2, "outbound_.9080_.v1_.%s" % REVIEWS, True),
                     (v.outbound(9080, REVIEWS, "v2"), at_gw2, "outbound_.9080_.v2_.%s" % REVIEWS, True),
                     (v.outbound(9080, RATINGS), at_gw2, RATINGS_SNI, True),
                     (v.outbound(9080, DETAILS), [ep(POD1, 9080, "cluster1")], None, False)],
                    routes=[route_config(REVIEWS, [[[v.outbound(9080, REVIEWS, "v1"), 90],
                                                    [v.outbound(9080, REVIEWS, "v2"), 10]]])])
    xds2 = snapshot([(v.outbound(9080, DETAILS), at_gw1, DETAILS_SNI, True),
                     (v.outbound(9080, REVIEWS), [ep(POD2, 9080, "cluster2")], None, False)])
    gw1 = gateway({DETAILS_SNI: [ep(POD1, 9080, "cluster1")]})
    gw2 = gateway({REVIEWS_SNI: [ep(POD2, 9080, "cluster2")], RATINGS_SNI: [ep("10.2.0.9", 9080, "cluster2")]})
    c1 = cluster("cluster1", "net1", GW1, "cluster2", "net2", DETAILS, GW2, xds1, gw1, pki()["inter1"])
    c2 = cluster("cluster2", "net2", GW2, "cluster1", "net1", REVIEWS, GW1, xds2, gw2, pki()["inter2"])
    c1["global_entries"] = [{"host": RATINGS, "name": "ratings-global", "namespace": "bookinfo", "ports": [9080],
                             "address": GW2, "network": "net2", "cluster": "cluster2", "mtls_label": True}]
    c1["route_hosts"] = {"bookinfo": [(REVIEWS, 9080)]}
    return {"mesh_id": "mesh1", "generated": "2026-11-21T12:00:00Z", "mesh_roots": [pki()["root"]],
            "clusters": [c1, c2], "vms": []}


def by_id(result):
    return dict((c["id"], c) for c in result["checks"])


def pair_facts(network2="net2"):
    """(cluster1, cluster2) facts of the healthy mesh, for the pair rules."""
    facts = healthy_mesh()
    c1, c2 = facts["clusters"]
    c2["network"] = network2
    return c1, c2


def one(checks, cid):
    found = [c for c in checks if c["id"] == cid]
    assert len(found) == 1, [c["id"] for c in checks]
    return found[0]


# --- the whole mesh: healthy -----------------------------------------------------------------------


def test_healthy_mesh_every_check_passes():
    result = v.evaluate(healthy_mesh(), NOW, 30)
    bad = [(c["id"], c["status"], c["reason"]) for c in result["checks"] if c["status"] != v.PASS]
    assert bad == []
    assert result["ok"] is True
    assert v.failures(result) == []
    assert result["schema"] == "meshfed.istio/verify/v1"
    assert (result["mesh_id"], result["generated"], result["vms"]) == ("mesh1", "2026-11-21T12:00:00Z", [])


def test_healthy_mesh_ids_are_unique_and_summary_counts_match():
    result = v.evaluate(healthy_mesh(), NOW, 30)
    ids = [c["id"] for c in result["checks"]]
    assert len(ids) == len(set(ids))
    # per cluster 7 (api, istiod, webhook, root-cert, cacerts, 2 lifetimes) + live; per pair 5 + service + gateway SNI;
    # cluster1: the `.global` entry (sidecar and gateway) and the 90/10 route
    assert len(ids) == 2 * 8 + 2 * 7 + 2 + 1
    counts = collections.Counter(c["status"] for c in result["checks"])
    assert result["summary"] == {"pass": 33, "fail": 0, "warn": 0, "not_run": 0}
    assert result["summary"] == dict((s, counts.get(s, 0)) for s in ("pass", "fail", "warn", "not_run"))
    kinds = collections.Counter(c["kind"] for c in result["checks"])
    assert kinds == {"api": 2, "istiod": 2, "webhook": 2, "trust": 8, "remote_secret": 2, "rbac": 4, "sync": 2,
                     "network_gateway": 2, "service": 3, "gateway_sni": 3, "route": 1, "live_probe": 2}


def test_healthy_mesh_reasons_name_what_was_verified():
    checks = by_id(v.evaluate(healthy_mesh(), NOW, 30))
    svc = checks["cluster1->cluster2/service/%s:9080" % REVIEWS]
    assert (svc["subject"], svc["source"], svc["target"], svc["service"]) == (
        "cluster1 -> cluster2", "cluster1", "cluster2", "%s:9080" % REVIEWS)
    assert svc["reason"] == ("cluster1 → cluster2: reviews.bookinfo:9080: cluster1's sidecars go through cluster2's gateway "
                             "192.0.2.2:15443 with mTLS, SNI %s" % REVIEWS_SNI)
    assert "routes SNI %s to 1 endpoint(s) of cluster2" % REVIEWS_SNI in checks[
        "cluster1->cluster2/gateway-sni/%s" % REVIEWS_SNI]["reason"]
    assert "knows network net2's gateway 192.0.2.2:15443" in checks["cluster1->cluster2/network-gateway"]["reason"]
    assert "reports cluster2 synced" in checks["cluster1->cluster2/sync"]["reason"]
    assert "lists cluster2's Services (7)" in checks["cluster1->cluster2/remote-secret/list"]["reason"]
    assert "cannot write (create pods, delete services, update secrets denied)" in checks[
        "cluster1->cluster2/remote-secret/read-only"]["reason"]
    assert "reach cluster2's gateway 192.0.2.2:15443 with mTLS, SNI %s" % RATINGS_SNI in checks[
        "cluster1->cluster2/global/%s:9080" % RATINGS]["reason"]
    assert "v1 90%, v2 10%" in checks["cluster1/route/%s:9080/0" % REVIEWS]["reason"]
    assert checks["cluster1/istiod"]["reason"] == "cluster1: istiod 1.24.2 (revision default) is Ready"
    assert checks["cluster2/api"]["reason"] == "cluster2's API server answers (Kubernetes v1.30.2)"


def test_healthy_mesh_cluster_entries():
    result = v.evaluate(healthy_mesh(), NOW, 30)
    assert result["clusters"] == [
        {"name": "cluster1", "network": "net1", "role": "primary", "istio_version": "1.24.2", "revision": "default",
         "gateway_address": GW1, "ok": True},
        {"name": "cluster2", "network": "net2", "role": "primary", "istio_version": "1.24.2", "revision": "default",
         "gateway_address": GW2, "ok": True},
    ]


def test_no_live_probe_is_not_run():
    facts = healthy_mesh()
    del facts["clusters"][0]["live"]
    live = by_id(v.evaluate(facts, NOW, 30))["cluster1/live"]
    assert (live["kind"], live["status"]) == ("live_probe", v.NOT_RUN)
    assert "no live probe was asked for" in live["reason"]


def test_istiod_without_a_gateway_for_the_other_network_shows_in_two_checks():
    """The known Istio mistake end to end: no gateway in networkz, so istiod sends cluster2's pod IPs."""
    facts = healthy_mesh()
    c1 = facts["clusters"][0]
    c1["istiod"]["networkz"] = []
    c1["xds"]["bookinfo"]["endpoints"][v.outbound(9080, REVIEWS)] = [ep(POD2, 9080, "cluster2")]
    result = v.evaluate(facts, NOW, 30)
    checks = by_id(result)
    gw = checks["cluster1->cluster2/network-gateway"]
    assert gw["status"] == v.FAIL and "knows no gateway for network net2" in gw["reason"]
    svc = checks["cluster1->cluster2/service/%s:9080" % REVIEWS]
    assert svc["status"] == v.FAIL and "pod IPs (10.2.0.5:9080)" in svc["reason"]
    assert result["ok"] is False
    assert sorted(c["id"] for c in v.failures(result)) == sorted([gw["id"], svc["id"]])
    # failures between clusters do not mark a cluster itself as broken
    assert [c["ok"] for c in result["clusters"]] == [True, True]


# --- service_check: what A's sidecar gets for B's Service ----------------------------------------


def svc_check(eps=None, snap=None, network2="net2", **kw):
    c1, c2 = pair_facts(network2)
    svc = {"host": REVIEWS, "namespace": "bookinfo", "name": "reviews", "ports": [9080], "ready": 2}
    return v.service_check(c1, c2, svc, 9080, snap if snap is not None else sidecar(REVIEWS, eps, **kw), gateways_of)


def test_service_cross_network_through_the_gateway_passes():
    c = svc_check([ep(GW2, 15443)])
    assert (c["kind"], c["id"], c["status"]) == ("service", "cluster1->cluster2/service/%s:9080" % REVIEWS, v.PASS)
    assert "through cluster2's gateway 192.0.2.2:15443 with mTLS, SNI %s" % REVIEWS_SNI in c["reason"]
    assert c["details"] == {"endpoints": ["192.0.2.2:15443"], "sni": REVIEWS_SNI}


def test_service_cross_network_pod_ips_fail_naming_clusters_pod_ip_and_gateway():
    c = svc_check([ep(POD2, 9080, "cluster2"), ep("10.2.0.6", 9080, "cluster2")])
    assert c["status"] == v.FAIL
    assert c["reason"].startswith("cluster1 → cluster2: reviews.bookinfo:9080: ")
    assert "cluster1's istiod sends cluster2's pod IPs (10.2.0.5:9080, 10.2.0.6:9080) across networks" in c["reason"]
    assert "not cluster2's gateway 192.0.2.2:15443" in c["reason"]
    assert "cannot be reached from net1" in c["reason"]


def test_service_cross_network_pod_ips_without_known_gateway():
    c1, c2 = pair_facts()
    svc = {"host": REVIEWS, "namespace": "bookinfo", "ports": [9080], "ready": 1}
    c = v.service_check(c1, c2, svc, 9080, sidecar(REVIEWS, [ep(POD2, 9080, "cluster2")]), lambda network: set())
    assert c["status"] == v.FAIL
    assert "pod IPs (10.2.0.5:9080)" in c["reason"] and "gateway (none known)" in c["reason"]


def test_service_cross_network_wrong_gateway_address_fails():
    c = svc_check([ep(WRONG_GW, 15443)])
    assert c["status"] == v.FAIL
    assert "sends network net2's traffic to 198.51.100.9:15443, not cluster2's gateway 192.0.2.2" in c["reason"]
    assert c["details"]["endpoints"] == ["198.51.100.9:15443"]


def test_service_cross_network_without_any_endpoint_fails():
    c = svc_check([])
    assert c["status"] == v.FAIL
    assert "sends no endpoint in cluster2 (neither pod IPs nor its gateway)" in c["reason"]


def test_service_cross_network_without_mtls_fails():
    c = svc_check([ep(GW2, 15443)], mtls=False)
    assert c["status"] == v.FAIL
    assert "does not use mTLS with SNI %s (mtls False" % REVIEWS_SNI in c["reason"]
    assert "cluster2's gateway cannot route it" in c["reason"]


def test_service_cross_network_wrong_sni_fails():
    wrong = "outbound_.9080_._.reviews.other.svc.cluster.local"
    c = svc_check([ep(GW2, 15443)], sni=wrong)
    assert c["status"] == v.FAIL
    assert "does not use mTLS with SNI %s (mtls True, sni %s)" % (REVIEWS_SNI, wrong) in c["reason"]
    assert c["details"] == {"sni": wrong}


def test_service_cross_network_gateway_endpoint_without_tls_mode_fails():
    c = svc_check([ep(GW2, 15443, tls_mode=None)])
    assert c["status"] == v.FAIL
    assert "gateway endpoint is not marked for mTLS (tlsMode istio)" in c["reason"]


def test_service_without_cluster_fails():
    c = svc_check(snap=snapshot([(v.outbound(9080, DETAILS), [], None, False)]))
    assert c["status"] == v.FAIL
    assert "cluster1's istiod sends a sidecar of namespace bookinfo no cluster outbound|9080||%s" % REVIEWS in c["reason"]


def test_service_same_network_direct_endpoints_pass():
    c = svc_check([ep(POD2, 9080, "cluster2"), ep(POD1, 9080, "cluster1")], network2="net1", sni="", mtls=False)
    assert c["status"] == v.PASS
    assert "cluster1's sidecars get cluster2's 1 endpoint(s) directly (same network)" in c["reason"]
    assert c["details"] == {"endpoints": ["10.2.0.5:9080"]}


def test_service_same_network_without_endpoints_of_b_fails():
    c = svc_check([ep(POD1, 9080, "cluster1")], network2="net1")
    assert c["status"] == v.FAIL
    assert "cluster1's istiod sends no endpoint of cluster2 (it has 2 ready)" in c["reason"]
    assert c["details"]["endpoints"] == ["10.1.0.7:9080"]


def test_service_unreadable_snapshot_is_not_run():
    c = svc_check(snap={"error": "xds: connection refused"})
    assert c["status"] == v.NOT_RUN
    assert c["reason"] == "cluster1 → cluster2: reviews.bookinfo:9080: not run: xds: connection refused"


def test_service_gateway_endpoint_carrying_the_cluster_id_passes():
    c = svc_check([ep(GW2, 15443, "cluster2")])
    assert c["status"] == v.PASS, c["reason"]
    assert "through cluster2's gateway 192.0.2.2:15443" in c["reason"]


# --- network_gateway_check ------------------------------------------------------------------------


def test_network_gateway_unknown_fails():
    c1, c2 = pair_facts()
    c1["istiod"]["networkz"] = []
    (c,) = v.network_gateway_check(c1, c2)
    assert (c["kind"], c["id"], c["status"]) == ("network_gateway", "cluster1->cluster2/network-gateway", v.FAIL)
    assert "cluster1's istiod knows no gateway for network net2" in c["reason"]
    assert "it would send cluster2's pod IPs, which cluster1 cannot reach" in c["reason"]


def test_network_gateway_of_another_network_only_fails():
    c1, c2 = pair_facts()
    c1["istiod"]["networkz"] = [{"Network": "net3", "Cluster": "cluster3", "Addr": "192.0.2.3", "Port": 15443}]
    (c,) = v.network_gateway_check(c1, c2)
    assert c["status"] == v.FAIL and "knows no gateway for network net2" in c["reason"]


def test_network_gateway_wrong_address_fails_with_both_addresses():
    c1, c2 = pair_facts()
    c1["istiod"]["networkz"] = [{"Network": "net2", "Cluster": "cluster2", "Addr": WRONG_GW, "Port": 15443}]
    (c,) = v.network_gateway_check(c1, c2)
    assert c["status"] == v.FAIL
    assert "sends network net2 to 198.51.100.9:15443, but cluster2's east-west gateway is 192.0.2.2:15443" in c["reason"]
    assert c["details"] == {"gateways": ["198.51.100.9:15443"], "expected": GW2}


def test_network_gateway_known_passes():
    c1, c2 = pair_facts()
    (c,) = v.network_gateway_check(c1, c2)
    assert c["status"] == v.PASS
    assert "cluster1's istiod knows network net2's gateway 192.0.2.2:15443" in c["reason"]


def test_network_gateway_unreadable_debug_is_not_run():
    c1, c2 = pair_facts()
    c1["istiod"]["networkz"] = None
    (c,) = v.network_gateway_check(c1, c2)
    assert c["status"] == v.NOT_RUN
    assert "cluster1's istiod debug endpoint cannot be read" in c["reason"]


# --- pair_checks: A discovers B -------------------------------------------------------------------


def test_pair_healthy_across_networks():
    c1, c2 = pair_facts()
    checks = v.pair_checks(c1, c2)
    assert [(c["id"], c["status"]) for c in checks] == [
        ("cluster1->cluster2/remote-secret", v.PASS), ("cluster1->cluster2/remote-secret/list", v.PASS),
        ("cluster1->cluster2/remote-secret/read-only", v.PASS), ("cluster1->cluster2/sync", v.PASS),
        ("cluster1->cluster2/network-gateway", v.PASS)]
    assert "remote secret istio-system/istio-remote-secret-cluster2 points at https://cluster2:6443" in checks[0]["reason"]
    assert all((c["source"], c["target"], c["subject"]) == ("cluster1", "cluster2", "cluster1 -> cluster2") for c in checks)


def test_pair_same_network_has_no_network_gateway_check():
    c1, c2 = pair_facts(network2="net1")
    assert [c["id"] for c in v.pair_checks(c1, c2)][-1] == "cluster1->cluster2/sync"


def test_pair_without_remote_secret_fails():
    c1, c2 = pair_facts()
    c1["remote_secrets"] = {}
    checks = v.pair_checks(c1, c2)
    rs = one(checks, "cluster1->cluster2/remote-secret")
    assert (rs["kind"], rs["status"]) == ("remote_secret", v.FAIL)
    assert "cluster1 holds no remote secret for cluster2" in rs["reason"]
    assert "its istiod does not discover cluster2" in rs["reason"]
    assert not [c for c in checks if c["kind"] == "rbac"]


def test_pair_remote_secret_token_forbidden_fails():
    c1, c2 = pair_facts()
    rs = c1["remote_secrets"]["cluster2"]
    rs["list"] = {"ok": False, "status": 403, "reason": 'services is forbidden: User "system:serviceaccount:istio-system:'
                  'istio-reader-service-account" cannot list resource "services" (403)'}
    del rs["writes"]
    checks = v.pair_checks(c1, c2)
    lst = one(checks, "cluster1->cluster2/remote-secret/list")
    assert (lst["kind"], lst["status"]) == ("rbac", v.FAIL)
    assert "cannot list services (" in lst["reason"] and "403" in lst["reason"]
    assert lst["details"] == {"http_status": 403}
    ro = one(checks, "cluster1->cluster2/remote-secret/read-only")
    assert ro["status"] == v.NOT_RUN and "token could not be used" in ro["reason"]


def test_pair_remote_secret_token_unusable_without_reason():
    c1, c2 = pair_facts()
    c1["remote_secrets"]["cluster2"]["list"] = {}
    lst = one(v.pair_checks(c1, c2), "cluster1->cluster2/remote-secret/list")
    assert lst["status"] == v.FAIL and "cannot list services (unknown error)" in lst["reason"]


def test_pair_remote_secret_token_that_may_write_fails_naming_the_verb():
    c1, c2 = pair_facts()
    c1["remote_secrets"]["cluster2"]["writes"] = {"create pods": True, "delete services": False, "update secrets": False}
    ro = one(v.pair_checks(c1, c2), "cluster1->cluster2/remote-secret/read-only")
    assert ro["status"] == v.FAIL
    assert "the remote secret's token may create pods in cluster2: it must only read" in ro["reason"]
    assert ro["details"] == {"allowed": ["create pods"]}


@pytest.mark.parametrize("clusterz, status, fragment", [
    ([], v.FAIL, "cluster1's istiod does not know cluster cluster2 (/debug/clusterz)"),
    ([{"id": "cluster3", "syncStatus": "synced"}], v.FAIL, "does not know cluster cluster2"),
    ([{"id": "cluster2", "syncStatus": "timeout"}], v.FAIL, "cluster1's istiod has not synced cluster2: timeout"),
    ([{"id": "cluster2"}], v.FAIL, "has not synced cluster2: None"),
    ([{"id": "cluster2", "syncStatus": "synced"}], v.PASS, "cluster1's istiod reports cluster2 synced"),
])
def test_pair_sync(clusterz, status, fragment):
    c1, c2 = pair_facts()
    c1["istiod"]["clusterz"] = clusterz
    sync = one(v.pair_checks(c1, c2), "cluster1->cluster2/sync")
    assert (sync["kind"], sync["status"]) == ("sync", status)
    assert fragment in sync["reason"]


def test_pair_istiod_unreadable_sync_is_not_run_with_the_error():
    c1, c2 = pair_facts()
    c1["istiod"] = {"ready": False, "error": "cluster1: istiod does not answer at http://127.0.0.1:15014/ready"}
    checks = v.pair_checks(c1, c2)
    sync = one(checks, "cluster1->cluster2/sync")
    assert sync["status"] == v.NOT_RUN
    assert "cluster1's istiod debug endpoint cannot be read: cluster1: istiod does not answer" in sync["reason"]
    assert one(checks, "cluster1->cluster2/network-gateway")["status"] == v.NOT_RUN


def test_pair_source_api_error_is_not_run():
    c1, c2 = pair_facts()
    c1["api_error"] = "cluster1: the API server does not answer: connection refused"
    checks = v.pair_checks(c1, c2)
    assert [(c["id"], c["status"]) for c in checks] == [("cluster1->cluster2/remote-secret", v.NOT_RUN)]
    assert "not run: cluster1's API server does not answer" in checks[0]["reason"]


def test_pair_from_a_remote_cluster_has_no_sync_check():
    c1, c2 = pair_facts()
    c1["role"] = "remote"
    assert [c["kind"] for c in v.pair_checks(c1, c2)] == ["remote_secret", "rbac", "rbac"]


# --- gateway_check: B's east-west gateway routes the SNI A sends --------------------------------------


def gw_check(gw_snap, host=REVIEWS):
    c1, c2 = pair_facts()
    return v.gateway_check(c1, c2, host, 9080, gw_snap)


def test_gateway_sni_routed_to_endpoints_passes():
    c = gw_check(gateway({REVIEWS_SNI: [ep(POD2, 9080, "cluster2"), ep("10.2.0.6", 9080, None)]}))
    assert (c["kind"], c["id"], c["status"]) == ("gateway_sni", "cluster1->cluster2/gateway-sni/%s" % REVIEWS_SNI, v.PASS)
    assert "cluster2's east-west gateway routes SNI %s to 2 endpoint(s) of cluster2" % REVIEWS_SNI in c["reason"]
    assert c["details"] == {"backend": REVIEWS_SNI}


def test_gateway_without_chain_for_the_sni_fails():
    c = gw_check(gateway({DETAILS_SNI: [ep(POD2, 9080, "cluster2")]}))
    assert c["status"] == v.FAIL
    assert "cluster2's east-west gateway has no filter chain for SNI %s" % REVIEWS_SNI in c["reason"]
    assert "does not know %s on port 9080" % REVIEWS in c["reason"]


def test_gateway_chain_on_another_port_does_not_count():
    c = gw_check(gateway({REVIEWS_SNI: [ep(POD2, 9080, "cluster2")]}, port=15017))
    assert c["status"] == v.FAIL and "no filter chain for SNI %s" % REVIEWS_SNI in c["reason"]


@pytest.mark.parametrize("eps", [
    [],
    [ep(GW1, 15443, None)],          # only another network's gateway
    [ep("10.3.0.4", 9080, "cluster3")],  # only another cluster's pods
], ids=["no endpoint", "gateway only", "other cluster only"])
def test_gateway_chain_whose_backend_has_no_endpoint_in_b_fails(eps):
    c = gw_check(gateway({REVIEWS_SNI: eps}))
    assert c["status"] == v.FAIL
    assert "routes SNI %s to %s, which has no endpoint in cluster2" % (REVIEWS_SNI, REVIEWS_SNI) in c["reason"]


def test_gateway_chain_whose_backend_cluster_is_missing_fails():
    snap = gateway({REVIEWS_SNI: []})
    del snap["clusters"][REVIEWS_SNI]
    c = gw_check(snap)
    assert c["status"] == v.FAIL and "which has no endpoint in cluster2" in c["reason"]


def test_gateway_snapshot_with_error_is_not_run():
    c = gw_check({"error": "xds: DeadlineExceeded"})
    assert c["status"] == v.NOT_RUN
    assert "cluster2's east-west gateway configuration could not be read: xds: DeadlineExceeded" in c["reason"]
    c = gw_check(None)
    assert c["status"] == v.NOT_RUN and c["reason"].endswith("could not be read")


# --- route_checks: traffic splits as the sidecar sees them ------------------------------------------


def routes_snap(routes, empty=(), **kw):
    """A sidecar snapshot with a route config for reviews and a cluster with one endpoint per subset
    (none for the subsets in ``empty``)."""
    clusters = [(v.outbound(9080, REVIEWS, s), [] if s in empty else [ep(POD2, 9080, "cluster2")], None, True)
                for s in ("", "v1", "v2", "v3")]
    return snapshot(clusters, routes=[route_config(REVIEWS, routes, **kw)])


def test_route_default_only_gives_no_check():
    c1 = pair_facts()[0]
    assert v.route_checks(c1, REVIEWS, 9080, routes_snap([[[v.outbound(9080, REVIEWS), 100]]])) == []
    assert v.route_checks(c1, REVIEWS, 9080, routes_snap([])) == []


def test_route_for_another_host_or_port_or_unreadable_gives_no_check():
    c1 = pair_facts()[0]
    split = [[[v.outbound(9080, REVIEWS, "v1"), 90], [v.outbound(9080, REVIEWS, "v2"), 10]]]
    assert v.route_checks(c1, DETAILS, 9080, routes_snap(split)) == []
    assert v.route_checks(c1, REVIEWS, 9090, routes_snap(split)) == []
    assert v.route_checks(c1, REVIEWS, 9080, {"error": "not read"}) == []


def test_route_90_10_split_passes_with_the_weights():
    c1 = pair_facts()[0]
    split = [[[v.outbound(9080, REVIEWS, "v1"), 90], [v.outbound(9080, REVIEWS, "v2"), 10]]]
    (c,) = v.route_checks(c1, REVIEWS, 9080, routes_snap(split))
    assert (c["kind"], c["id"], c["status"]) == ("route", "cluster1/route/%s:9080/0" % REVIEWS, v.PASS)
    assert "90%" in c["reason"] and "10%" in c["reason"]
    assert c["reason"] == "cluster1: reviews.bookinfo:9080 (prefix /) as the sidecar sees it: v1 90%, v2 10%"
    assert (c["source"], c["target"], c["service"]) == ("cluster1", None, "%s:9080" % REVIEWS)


def test_route_config_named_host_port_is_found_too():
    c1 = pair_facts()[0]
    split = [[[v.outbound(9080, REVIEWS, "v1"), 3], [v.outbound(9080, REVIEWS, "v2"), 1]]]
    (c,) = v.route_checks(c1, REVIEWS, 9080, routes_snap(split, name="%s:9080" % REVIEWS))
    assert c["status"] == v.PASS and "v1 75%, v2 25%" in c["reason"]


def test_route_weighted_subset_without_endpoints_fails_naming_it():
    c1 = pair_facts()[0]
    split = [[[v.outbound(9080, REVIEWS, "v1"), 90], [v.outbound(9080, REVIEWS, "v3"), 10]]]
    (c,) = v.route_checks(c1, REVIEWS, 9080, routes_snap(split, empty=("v3",)))
    assert c["status"] == v.FAIL
    assert "sends v1 90%, v3 10%, but outbound|9080|v3|" + REVIEWS + " has no endpoints" in c["reason"]
    assert "outbound|9080|v1|" not in c["reason"].split("but")[1]
    assert c["details"]["empty"] == [v.outbound(9080, REVIEWS, "v3")]


def test_route_zero_weight_subset_without_endpoints_passes():
    c1 = pair_facts()[0]
    split = [[[v.outbound(9080, REVIEWS, "v1"), 100], [v.outbound(9080, REVIEWS, "v3"), 0]]]
    (c,) = v.route_checks(c1, REVIEWS, 9080, routes_snap(split, empty=("v3",)))
    assert c["status"] == v.PASS and "v1 100%, v3 0%" in c["reason"]


def test_route_header_match_and_one_check_per_route():
    c1 = pair_facts()[0]
    snap = routes_snap([[[v.outbound(9080, REVIEWS, "v2"), 100]], [[v.outbound(9080, REVIEWS), 100]]])
    snap["routes"]["9080"]["virtual_hosts"][0]["routes"][0]["headers"] = ["end-user"]
    checks = v.route_checks(c1, REVIEWS, 9080, snap)
    assert [(c["id"], c["status"]) for c in checks] == [("cluster1/route/%s:9080/0" % REVIEWS, v.PASS),
                                                        ("cluster1/route/%s:9080/1" % REVIEWS, v.PASS)]
    assert "(headers end-user) as the sidecar sees it: v2 100%" in checks[0]["reason"]
    assert "(prefix /) as the sidecar sees it: all 100%" in checks[1]["reason"]


# --- global_checks: `.global` ServiceEntries ----------------------------------------------------------


def global_facts(eps, mtls_label=True):
    c1, c2 = pair_facts()
    entry = dict(c1["global_entries"][0], mtls_label=mtls_label)
    snap = sidecar(RATINGS, eps)
    return c1, entry, c2, snap


def test_global_entry_healthy_passes_with_the_gateway_check():
    c1, entry, c2, snap = global_facts([ep(GW2, 15443)])
    checks = v.global_checks(c1, entry, c2, snap, c2["gateway_xds"], gateways_of)
    assert [(c["kind"], c["id"], c["status"]) for c in checks] == [
        ("service", "cluster1->cluster2/global/%s:9080" % RATINGS, v.PASS),
        ("gateway_sni", "cluster1->cluster2/gateway-sni/%s" % RATINGS_SNI, v.PASS)]
    assert "cluster1's sidecars reach cluster2's gateway 192.0.2.2:15443 with mTLS, SNI %s" % RATINGS_SNI in checks[0]["reason"]
    assert "routes SNI %s to 1 endpoint(s) of cluster2" % RATINGS_SNI in checks[1]["reason"]


def test_global_entry_without_mtls_label_on_another_network_fails_naming_the_label():
    c1, entry, c2, snap = global_facts([], mtls_label=False)
    checks = v.global_checks(c1, entry, c2, snap, c2["gateway_xds"], gateways_of)
    assert [c["kind"] for c in checks] == ["service", "gateway_sni"]
    c = checks[0]
    assert c["status"] == v.FAIL
    assert "cluster1's sidecars get no endpoint at cluster2's gateway 192.0.2.2:15443" in c["reason"]
    assert "has no label security.istio.io/tlsMode: istio" in c["reason"]
    assert "drops it for clients of network net1" in c["reason"]


def test_global_entry_labelled_without_endpoint_fails_pointing_at_the_endpoints():
    c1, entry, c2, snap = global_facts([ep(WRONG_GW, 15443)])
    c = v.global_checks(c1, entry, c2, snap, c2["gateway_xds"], gateways_of)[0]
    assert c["status"] == v.FAIL
    assert "get no endpoint at cluster2's gateway 192.0.2.2:15443; see the ServiceEntry's endpoints" in c["reason"]
    assert "tlsMode" not in c["reason"]


def test_global_entry_not_visible_fails():
    c1, entry, c2, snap = global_facts([])
    snap = sidecar(REVIEWS, [])
    c = v.global_checks(c1, entry, c2, snap, c2["gateway_xds"], gateways_of)[0]
    assert c["status"] == v.FAIL
    assert "sends no cluster outbound|9080||%s (the ServiceEntry ratings-global is not visible to namespace bookinfo)" % RATINGS \
        in c["reason"]


def test_global_entry_with_wrong_sni_fails():
    c1, entry, c2, snap = global_facts([ep(GW2, 15443)])
    snap["clusters"][v.outbound(9080, RATINGS)]["sni"] = REVIEWS_SNI
    c = v.global_checks(c1, entry, c2, snap, c2["gateway_xds"], gateways_of)[0]
    assert c["status"] == v.FAIL
    assert "does not use mTLS with SNI %s (sni %s)" % (RATINGS_SNI, REVIEWS_SNI) in c["reason"]


def test_global_entry_unreadable_snapshot_is_not_run():
    c1, entry, c2, snap = global_facts([])
    checks = v.global_checks(c1, entry, c2, {"error": "not read"}, c2["gateway_xds"], gateways_of)
    # the gateway side is still checked: it does not depend on the importing side's snapshot
    assert [(c["id"], c["status"]) for c in checks] == [
        ("cluster1->cluster2/global/%s:9080" % RATINGS, v.NOT_RUN),
        ("cluster1->cluster2/gateway-sni/outbound_.9080_._.%s" % RATINGS, v.PASS)]
    assert checks[0]["reason"] == "cluster1 → cluster2: %s:9080: not run: not read" % RATINGS


# --- trust_checks: real certificates --------------------------------------------------------------------


def trust(root_cert_pems=None, cacerts="inter1", mesh_roots=("root",), warn_days=30, role="primary"):
    p = pki()
    c = {"name": "cluster1", "role": role,
         "root_cert_pems": [p["root"]] if root_cert_pems is None else root_cert_pems,
         "cacerts": None if cacerts is None else {"ca-cert.pem": p.get(cacerts, cacerts)}}
    return v.trust_checks(c, [p[r] for r in mesh_roots], NOW, warn_days)


def test_trust_all_good():
    checks = trust()
    assert [(c["id"], c["status"]) for c in checks] == [
        ("cluster1/trust/root-cert", v.PASS), ("cluster1/trust/cacerts", v.PASS),
        ("cluster1/trust/intermediate-lifetime", v.PASS), ("cluster1/trust/root-lifetime", v.PASS)]
    assert checks[0]["reason"] == "cluster1: istio-ca-root-cert holds the mesh's root"
    assert "cacerts' intermediate CN=Intermediate CA cluster1,O=meshfed chains to the mesh's root" in checks[1]["reason"]
    assert "the intermediate CA expires in 365 days" in checks[2]["reason"]
    assert "the root CA expires in 3650 days" in checks[3]["reason"]
    assert checks[2]["details"]["days_left"] == 365


def test_trust_root_cert_with_another_root_fails():
    c = trust(root_cert_pems=[pki()["other_root"]])[0]
    assert (c["id"], c["status"]) == ("cluster1/trust/root-cert", v.FAIL)
    have, want = c["details"]["roots"], c["details"]["mesh_roots"]
    assert have != want and len(have) == len(want) == 1
    assert c["reason"] == "cluster1: istio-ca-root-cert holds roots %s, the mesh's are %s" % (have[0][:11], want[0][:11])


def test_trust_root_cert_with_an_extra_root_fails():
    c = trust(root_cert_pems=[pki()["root"], pki()["other_root"]])[0]
    assert c["status"] == v.FAIL and "istio-ca-root-cert holds roots" in c["reason"]


def test_trust_root_cert_without_a_certificate_fails():
    c = trust(root_cert_pems=[])[0]
    assert c["status"] == v.FAIL and "istio-ca-root-cert holds roots none, the mesh's are" in c["reason"]


def test_trust_missing_root_cert_configmap_fails():
    p = pki()
    c = v.trust_checks({"name": "cluster1", "root_cert_pems": None, "cacerts": {"ca-cert.pem": p["inter1"]}},
                       [p["root"]], NOW, 30)[0]
    assert (c["id"], c["status"]) == ("cluster1/trust/root-cert", v.FAIL)
    assert "ConfigMap istio-system/istio-ca-root-cert is missing" in c["reason"]


def test_trust_cacerts_from_another_root_fails():
    checks = trust(cacerts="inter_other")
    c = one(checks, "cluster1/trust/cacerts")
    assert c["status"] == v.FAIL
    assert "the intermediate in cacerts (CN=Intermediate CA cluster1,O=meshfed) is not issued by the mesh's root" in c["reason"]
    assert "workloads of cluster1 are not trusted by the other clusters" in c["reason"]


def test_trust_cacerts_missing_or_unreadable_fails():
    (root, cacerts) = trust(cacerts=None)
    assert root["status"] == v.PASS
    assert (cacerts["id"], cacerts["status"]) == ("cluster1/trust/cacerts", v.FAIL)
    assert "Secret istio-system/cacerts is missing: istiod signs with its own self-signed root" in cacerts["reason"]
    checks = trust(cacerts="not a certificate")
    assert [c["id"] for c in checks] == ["cluster1/trust/root-cert", "cluster1/trust/cacerts"]
    assert checks[1]["status"] == v.FAIL and "cacerts' ca-cert.pem is not a certificate" in checks[1]["reason"]


def test_trust_intermediate_expiring_soon_warns():
    c = one(trust(cacerts="inter_10_days", warn_days=30), "cluster1/trust/intermediate-lifetime")
    assert c["status"] == v.WARN
    assert "cluster1: the intermediate CA expires in 10 days" in c["reason"]
    assert "under the 30-day threshold" in c["reason"]
    assert c["details"]["days_left"] == 10
    assert one(trust(cacerts="inter_10_days", warn_days=5), "cluster1/trust/intermediate-lifetime")["status"] == v.PASS


def test_trust_without_mesh_roots_is_not_run():
    checks = trust(mesh_roots=())
    c = one(checks, "cluster1/trust/root-cert")
    assert c["status"] == v.NOT_RUN
    assert "no mesh root bundle was given (ca_dir)" in c["reason"]
    assert not [x for x in checks if x["id"] == "cluster1/trust/root-lifetime"]


def test_trust_of_a_remote_cluster_checks_the_root_cert_only():
    checks = trust(cacerts=None, role="remote")
    assert [(c["id"], c["status"]) for c in checks] == [("cluster1/trust/root-cert", v.PASS)]


def test_trust_with_two_mesh_roots_keeps_ids_unique():
    checks = trust(root_cert_pems=[pki()["root"], pki()["other_root"]], mesh_roots=("root", "other_root"))
    assert one(checks, "cluster1/trust/root-cert")["status"] == v.PASS
    assert one(checks, "cluster1/trust/root-cert")["reason"].endswith("holds the mesh's roots")
    ids = [c["id"] for c in checks]
    assert len(ids) == len(set(ids)), ids


def test_trust_without_mesh_roots_does_not_claim_cacerts_chains():
    c = one(trust(cacerts="inter_other", mesh_roots=()), "cluster1/trust/cacerts")
    assert c["status"] != v.PASS or "chains to the mesh's root" not in c["reason"], c["reason"]


def test_pem_blocks_and_cert_facts():
    p = pki()
    assert v.pem_blocks("junk\n%s\n%s" % (p["root"], p["other_root"])) == [p["root"].strip(), p["other_root"].strip()]
    assert v.pem_blocks(None) == []
    assert v.cert_facts("no certificate", NOW) is None
    f = v.cert_facts(p["root"], NOW)
    assert (f["subject"], f["days_left"]) == ("CN=Mesh Root CA,O=meshfed", 3650)
    assert v.cert_facts(p["inter_10_days"], NOW + datetime.timedelta(days=11))["days_left"] == -1
    assert v.chains_to(p["inter1"], [p["other_root"], p["root"]]) is True
    assert v.chains_to(p["inter_other"], [p["root"], "garbage"]) is False
    assert v.chains_to("garbage", [p["root"]]) is False


# --- cluster_checks ---------------------------------------------------------------------------------------


def test_cluster_api_error_fails_api_and_does_not_run_the_rest():
    checks = v.cluster_checks({"name": "cluster2", "api_error": "cluster2: cannot reach https://cluster2:6443: timed out"},
                              [pki()["root"]], NOW, 30)
    assert [(c["kind"], c["id"], c["status"]) for c in checks] == [
        ("api", "cluster2/api", v.FAIL), ("istiod", "cluster2/istiod", v.NOT_RUN), ("webhook", "cluster2/webhook", v.NOT_RUN),
        ("trust", "cluster2/trust", v.NOT_RUN)]
    assert checks[0]["reason"] == "cluster2: cannot reach https://cluster2:6443: timed out"
    assert all(c["reason"] == "not run: cluster2's API server does not answer" for c in checks[1:])


def test_cluster_checks_of_a_healthy_cluster():
    c1 = healthy_mesh()["clusters"][0]
    checks = v.cluster_checks(c1, [pki()["root"]], NOW, 30)
    assert [c["id"] for c in checks] == ["cluster1/api", "cluster1/istiod", "cluster1/webhook", "cluster1/trust/root-cert",
                                         "cluster1/trust/cacerts", "cluster1/trust/intermediate-lifetime",
                                         "cluster1/trust/root-lifetime"]
    assert all(c["status"] == v.PASS for c in checks)
    assert checks[1]["details"] == {"version": "1.24.2", "revision": "default"}
    assert checks[2]["details"] == {"namespace": "bookinfo"}


@pytest.mark.parametrize("istiod, fragment", [
    ({"ready": False, "error": "cluster1: istiod does not answer at http://127.0.0.1:15021/ready"},
     "cluster1: istiod cannot be reached: cluster1: istiod does not answer"),
    ({"ready": False, "ready_reason": "GET /ready answered HTTP 503"}, "cluster1: istiod is not Ready (GET /ready answered HTTP 503)"),
    (None, "cluster1: istiod is not Ready (GET /ready failed)"),
])
def test_cluster_istiod_not_ready_fails(istiod, fragment):
    c1 = healthy_mesh()["clusters"][0]
    c1["istiod"] = istiod
    c = one(v.cluster_checks(c1, [pki()["root"]], NOW, 30), "cluster1/istiod")
    assert c["status"] == v.FAIL
    assert fragment in c["reason"]


def test_cluster_remote_role():
    c2 = healthy_mesh()["clusters"][1]
    c2.update(role="remote", control_plane="cluster1", cacerts=None)
    checks = v.cluster_checks(c2, [pki()["root"]], NOW, 30)
    assert [(c["id"], c["status"]) for c in checks] == [
        ("cluster2/api", v.PASS), ("cluster2/istiod", v.PASS), ("cluster2/webhook", v.PASS),
        ("cluster2/trust/root-cert", v.PASS)]
    assert checks[1]["reason"] == "cluster2 is a remote cluster: its control plane runs in cluster1"
    c2["control_plane"] = None
    c = one(v.cluster_checks(c2, [pki()["root"]], NOW, 30), "cluster2/istiod")
    assert c["status"] == v.FAIL and "remote cluster without a control plane cluster" in c["reason"]


def test_cluster_webhook_unchecked_is_not_run():
    c1 = healthy_mesh()["clusters"][0]
    del c1["webhook"]
    c = one(v.cluster_checks(c1, [pki()["root"]], NOW, 30), "cluster1/webhook")
    assert (c["status"], c["reason"]) == (v.NOT_RUN, "not run: not checked")


# --- evaluate: a dead cluster never hides the others --------------------------------------------------


def dead_cluster2_mesh():
    facts = healthy_mesh()
    c1 = facts["clusters"][0]
    facts["clusters"][1] = {"name": "cluster2", "network": "net2", "role": "primary", "control_plane": None,
                            "discovers": ["cluster1"], "gateway_address": GW2, "host": None,
                            "api_error": "cluster2: cannot reach https://cluster2:6443: connection refused"}
    rs = c1["remote_secrets"]["cluster2"]
    rs["list"] = {"ok": False, "reason": "dial tcp 203.0.113.2:6443: connect: connection refused"}
    del rs["writes"]
    c1["istiod"]["clusterz"] = [{"id": "cluster2", "syncStatus": "timeout"}]
    return facts


def test_evaluate_dead_cluster2_keeps_cluster1s_checks():
    result = v.evaluate(dead_cluster2_mesh(), NOW, 30)
    checks = by_id(result)
    own = [c for c in result["checks"] if c["source"] == "cluster1" and not c["target"]]
    assert sorted(c["id"] for c in own) == sorted(["cluster1/api", "cluster1/istiod", "cluster1/webhook",
                                                   "cluster1/trust/root-cert", "cluster1/trust/cacerts",
                                                   "cluster1/trust/intermediate-lifetime", "cluster1/trust/root-lifetime",
                                                   "cluster1/route/%s:9080/0" % REVIEWS, "cluster1/live"])
    assert all(c["status"] == v.PASS for c in own)
    # cluster2 itself
    assert checks["cluster2/api"]["status"] == v.FAIL and "connection refused" in checks["cluster2/api"]["reason"]
    assert checks["cluster2/istiod"]["status"] == checks["cluster2/trust"]["status"] == v.NOT_RUN
    assert checks["cluster2/live"]["status"] == v.NOT_RUN
    assert checks["cluster2/webhook"]["status"] == v.NOT_RUN
    # cluster1 -> cluster2: failures and not_run, no crash
    lst = checks["cluster1->cluster2/remote-secret/list"]
    assert lst["status"] == v.FAIL and "cannot list services (dial tcp 203.0.113.2:6443: connect: connection refused)" in lst["reason"]
    assert checks["cluster1->cluster2/remote-secret/read-only"]["status"] == v.NOT_RUN
    assert checks["cluster1->cluster2/sync"]["status"] == v.FAIL
    assert "has not synced cluster2: timeout" in checks["cluster1->cluster2/sync"]["reason"]
    gw = checks["cluster1->cluster2/gateway-sni/%s" % RATINGS_SNI]
    assert gw["status"] == v.NOT_RUN and "cluster2's east-west gateway configuration could not be read" in gw["reason"]
    assert not [c for c in result["checks"] if c["kind"] == "service" and c["id"].startswith("cluster1->cluster2/service/")]
    # cluster2 -> cluster1: not run
    back = [c for c in result["checks"] if c["id"].startswith("cluster2->cluster1/")]
    assert [(c["id"], c["status"]) for c in back] == [("cluster2->cluster1/remote-secret", v.NOT_RUN)]


def test_evaluate_dead_cluster2_result_flags():
    result = v.evaluate(dead_cluster2_mesh(), NOW, 30)
    assert result["ok"] is False
    assert [(c["name"], c["ok"]) for c in result["clusters"]] == [("cluster1", True), ("cluster2", False)]
    cluster2 = result["clusters"][1]
    assert (cluster2["istio_version"], cluster2["revision"], cluster2["role"]) == (None, None, "primary")
    assert sorted(c["id"] for c in v.failures(result)) == sorted([
        "cluster2/api", "cluster1->cluster2/remote-secret/list", "cluster1->cluster2/sync"])
    ids = [c["id"] for c in result["checks"]]
    assert len(ids) == len(set(ids))


def test_evaluate_dead_cluster2_without_remote_secret_still_reports_cluster1():
    """The same dead cluster2 on a path that does not reach the list failure: evaluate completes."""
    facts = dead_cluster2_mesh()
    facts["clusters"][0]["remote_secrets"] = {}
    result = v.evaluate(facts, NOW, 30)
    checks = by_id(result)
    own = [c for c in result["checks"] if c["source"] == "cluster1" and not c["target"]]
    assert len(own) == 9 and all(c["status"] == v.PASS for c in own)
    assert checks["cluster2/api"]["status"] == v.FAIL and "connection refused" in checks["cluster2/api"]["reason"]
    assert (checks["cluster2/istiod"]["status"], checks["cluster2/trust"]["status"]) == (v.NOT_RUN, v.NOT_RUN)
    rs = checks["cluster1->cluster2/remote-secret"]
    assert rs["status"] == v.FAIL and "cluster1 holds no remote secret for cluster2" in rs["reason"]
    assert checks["cluster1->cluster2/sync"]["status"] == v.FAIL
    assert checks["cluster1->cluster2/gateway-sni/%s" % RATINGS_SNI]["status"] == v.NOT_RUN
    assert [c["id"] for c in result["checks"] if c["id"].startswith("cluster2->")] == ["cluster2->cluster1/remote-secret"]
    assert checks["cluster2->cluster1/remote-secret"]["status"] == v.NOT_RUN
    assert result["ok"] is False
    assert [(c["name"], c["ok"]) for c in result["clusters"]] == [("cluster1", True), ("cluster2", False)]
    ids = [c["id"] for c in result["checks"]]
    assert len(ids) == len(set(ids))


def test_evaluate_unknown_peer_and_unread_namespace():
    facts = healthy_mesh()
    c1 = facts["clusters"][0]
    c1["discovers"] = ["cluster2", "cluster9"]
    c1["xds"] = {}
    c1["global_entries"][0]["cluster"] = "cluster9"
    checks = by_id(v.evaluate(facts, NOW, 30))
    assert not [cid for cid in checks if "cluster9" in cid]
    svc = checks["cluster1->cluster2/service/%s:9080" % REVIEWS]
    assert svc["status"] == v.NOT_RUN and svc["reason"].endswith("not run: not read")
    # the gateway side is still checked from cluster2's own configuration
    assert checks["cluster1->cluster2/gateway-sni/%s" % REVIEWS_SNI]["status"] == v.PASS
    assert "cluster1/route/%s:9080/0" % REVIEWS not in checks


def test_evaluate_remote_cluster_gets_no_data_plane_checks():
    facts = healthy_mesh()
    c1 = facts["clusters"][0]
    c1.update(role="remote", control_plane="cluster2")
    checks = by_id(v.evaluate(facts, NOW, 30))
    assert not [cid for cid in checks if cid.startswith("cluster1/route/") or cid.startswith("cluster1->cluster2/service/")
                or cid.startswith("cluster1->cluster2/global/") or cid.startswith("cluster1->cluster2/gateway-sni/")]
    assert [cid for cid in checks if cid.startswith("cluster1->")] == [
        "cluster1->cluster2/remote-secret", "cluster1->cluster2/remote-secret/list", "cluster1->cluster2/remote-secret/read-only"]
    # cluster2's sidecars are still checked toward cluster1
    assert checks["cluster2->cluster1/service/%s:9080" % DETAILS]["status"] == v.PASS
    assert checks["cluster1/istiod"]["reason"] == "cluster1 is a remote cluster: its control plane runs in cluster2"


def test_evaluate_empty_facts():
    result = v.evaluate({}, NOW)
    assert result["ok"] is True
    assert (result["checks"], result["clusters"], result["summary"]) == ([], [], {"pass": 0, "fail": 0, "warn": 0, "not_run": 0})


# --- result_of and failures -------------------------------------------------------------------------------


def facts_of(*names):
    return {"mesh_id": "m", "clusters": [{"name": n, "network": "n", "istiod": {"version": "1.24.2"}} for n in names]}


def test_result_ok_iff_a_failure_exists():
    passing = v.check("api", "a/api", "a", v.PASS, "a answers", source="a")
    warning = v.check("trust", "a/trust/root-lifetime", "a", v.WARN, "a: expires soon", source="a")
    not_run = v.check("live_probe", "a/live", "a", v.NOT_RUN, "not run", source="a")
    failing = v.check("api", "b/api", "b", v.FAIL, "b does not answer", source="b")
    r = v.result_of(facts_of("a", "b"), [passing, warning, not_run])
    assert r["ok"] is True and v.failures(r) == []
    assert r["summary"] == {"pass": 1, "fail": 0, "warn": 1, "not_run": 1}
    r = v.result_of(facts_of("a", "b"), [passing, warning, not_run, failing])
    assert r["ok"] is False and v.failures(r) == [failing]
    assert r["summary"]["fail"] == 1


def test_result_cluster_ok_flags_come_from_the_clusters_own_failures():
    own = v.check("trust", "a/trust/cacerts", "a", v.FAIL, "a: cacerts is missing", source="a")
    pair_failure = v.check("sync", "b->c/sync", "b -> c", v.FAIL, "b has not synced c", source="b", target="c")
    r = v.result_of(facts_of("a", "b", "c"), [own, pair_failure])
    assert [(c["name"], c["ok"]) for c in r["clusters"]] == [("a", False), ("b", True), ("c", True)]
    assert r["clusters"][0] == {"name": "a", "network": "n", "role": "primary", "istio_version": "1.24.2", "revision": None,
                                "gateway_address": None, "ok": False}
    assert [c["reason"] for c in v.failures(r)] == ["a: cacerts is missing", "b has not synced c"]


def test_check_shape():
    c = v.check("service", "a->b/service/h:1", "a -> b", v.PASS, "fine", source="a", target="b", service="h:1")
    assert c == {"id": "a->b/service/h:1", "kind": "service", "subject": "a -> b", "source": "a", "target": "b",
                 "service": "h:1", "status": "pass", "reason": "fine", "details": {}}
    assert v.pair("a", "b") == "a -> b"
    assert v.sni(9080, REVIEWS) == REVIEWS_SNI
    assert v.outbound(9080, REVIEWS, "v1") == "outbound|9080|v1|%s" % REVIEWS


def test_network_gateway_an_unexpected_gateway_of_the_network_is_a_warning():
    c1 = {"name": "cluster1", "network": "network1",
          "istiod": {"networkz": [{"Network": "network2", "Addr": "192.0.2.2", "Port": 15443},
                                  {"Network": "network2", "Addr": "198.51.100.7", "Port": 15443}]}}
    c2 = {"name": "cluster2", "network": "network2", "gateway_address": "192.0.2.2"}
    (c,) = v.network_gateway_check(c1, c2, {"192.0.2.2"})
    assert c["status"] == v.WARN
    assert c["reason"].startswith("cluster1 → cluster2: cluster1's istiod knows network network2's gateway 192.0.2.2:15443, "
                                  "and also 198.51.100.7:15443, which no cluster of the mesh gives as its gateway")
    # a second cluster of that network with its own gateway is expected, not a warning
    (c,) = v.network_gateway_check(c1, c2, {"192.0.2.2", "198.51.100.7"})
    assert c["status"] == v.PASS


def test_global_gateway_endpoint_kept_without_the_mtls_label_fails():
    """istiod keeps a `.global` endpoint of another network as it is when it knows no gateway of
    that network for the entry's registry: without the label the sidecar would speak plaintext."""
    c1, entry, c2, snap = global_facts([ep(GW2, 15443, cluster="cluster1", tls_mode=None)])
    (svc, gw) = v.global_checks(c1, entry, c2, snap, c2["gateway_xds"], gateways_of)
    assert svc["status"] == v.FAIL
    assert "without mTLS: the ServiceEntry's endpoint has no label security.istio.io/tlsMode: istio" in svc["reason"]


def test_trust_a_root_bundle_that_does_not_exist_yet_is_not_run():
    c = {"name": "cluster1", "root_cert_pems": [pki()["root"]], "cacerts": {"ca-cert.pem": pki()["inter1"]}}
    checks = v.trust_checks(c, [], NOW, 30, "/srv/ca/root-cert.pem")
    want = [("cluster1/trust/root-cert", v.NOT_RUN), ("cluster1/trust/cacerts", v.NOT_RUN)]
    assert [(x["id"], x["status"]) for x in checks][:2] == want
    assert checks[0]["reason"] == "not run: the mesh root bundle /srv/ca/root-cert.pem does not exist (yet)"
