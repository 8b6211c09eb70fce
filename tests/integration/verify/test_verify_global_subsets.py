# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned `.global` subsets hold at the exporting cluster's last hop, read from the real istiod's
xDS: cluster2 exports httpbin with v1 and v2 pods behind one Service; its east-west gateway's SNI
cluster of subset v1 must reach the v1 pods only (a Service of that label set), v2 likewise, while
the SNI cluster without a subset still reaches every pod of the Service."""

from __future__ import annotations

import pytest
from kubernetes import client
from playbook_runner import InventoryCopy, changed_tasks, playbook
from sandbox_helpers import gateway_of, wait_for
from test_verify_multi_primary import delete_namespace, deploy

pytestmark = pytest.mark.sandbox
NS = "meshfed-verify-subsets"
HOST = "httpbin.%s.global" % NS
SUBSET_OF = "meshfed.istio/global-subset-of"


def sni(subset=""):
    return "outbound_.8000_.%s_.%s" % (subset, HOST)


def fqdn(name):
    return "%s.%s.svc.cluster.local" % (name, NS)


def host_clusters(sb, cluster, kind, namespace, network, labels=None):
    """{cluster name: [(address, port)]} of the httpbin `.global` clusters that ``cluster``'s istiod
    sends a ``kind`` proxy (DNS clusters hold their endpoints, EDS ones get them by EDS)."""
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import xds
    from tools.sandbox.versions import ISTIO_VERSION

    snap = xds.fetch("127.0.0.1:%d" % sb.istiod_ports[cluster]["grpc"], kind, cluster, namespace, network,
                     "mesh1", ISTIO_VERSION, labels=labels, timeout=20)
    out = {}
    for name, c in snap["clusters"].items():
        if name.endswith(HOST):
            eps = c.get("endpoints") or snap["endpoints"].get(c.get("eds_name") or name) or []
            out[name] = sorted((e["address"], e["port"]) for e in eps)
    return out


def gateway_clusters(sb, cluster, network):
    """What ``cluster``'s east-west gateway gets: a router labelled istio=eastwestgateway, as the
    Gateways select it (its SNI-DNAT clusters come with the AUTO_PASSTHROUGH servers)."""
    return host_clusters(sb, cluster, "router", "istio-system", network, {"istio": "eastwestgateway"})


def settled(done, read, timeout=60):
    """What ``read()`` returns once ``done`` holds for it (istiod pushes after a debounce), else what
    it returned last, for the assertions to show."""
    last = {}

    def check():
        last["value"] = read()
        return done(last["value"])
    try:
        wait_for(check, timeout=timeout, what="istiod's push")
    except AssertionError:
        pass
    return last["value"]


def pod_ips(api, version=None):
    sel = "app=httpbin" + (",version=%s" % version if version else "")
    return sorted(p.status.pod_ip for p in client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=sel).items
                  if p.status.pod_ip and not p.metadata.deletion_timestamp)


def slice_ips(api, service):
    """The addresses the EndpointSlices of ``service`` list."""
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        NS, label_selector="kubernetes.io/service-name=%s" % service).items
    return sorted(a for s in slices for e in s.endpoints or [] for a in e.addresses)


def subset_services(api):
    return dict((s.metadata.name, s) for s in client.CoreV1Api(api).list_namespaced_service(
        NS, label_selector=SUBSET_OF).items)


@pytest.fixture(scope="module")
def exported_versions(sandbox_istiod, tmp_path_factory):
    sb = sandbox_istiod
    apis = {c: sb.api_client(c) for c in sb.clusters}
    for c in sb.clusters:
        delete_namespace(apis[c], NS)
    deploy(apis["cluster2"], "httpbin", "v1", port=8000, ns=NS)
    deploy(apis["cluster2"], "httpbin", "v2", port=8000, ns=NS)
    wait_for(lambda: len(pod_ips(apis["cluster2"])) == 2 and len(slice_ips(apis["cluster2"], "httpbin")) == 2,
             timeout=60, what="httpbin v1 and v2 pods with addresses")
    inv = InventoryCopy(tmp_path_factory.mktemp("global-subsets"))

    def mutate(group):
        group["vars"]["federate_clusters_mode"] = "service_entry"
        group["hosts"]["cluster2"]["mesh_exports"] = [{"namespace": NS, "names": ["httpbin"]}]
    path = inv.write(mutate)
    yield sb, apis, path
    inv.remove()
    for c in sb.clusters:
        delete_namespace(apis[c], NS)
    rc, data, raw = playbook("federate_clusters.yml")  # back to the multi-primary mesh of the sandbox inventory
    assert rc == 0, raw[-4000:]


def test_each_subset_reaches_only_its_pods_at_the_exporting_gateway(exported_versions):
    sb, apis, inventory = exported_versions
    api = apis["cluster2"]

    # check mode reports the change and writes no Service
    rc, data, raw = playbook("federate_clusters.yml", "--check", inventory=inventory)
    assert rc == 0 and changed_tasks(data), raw[-4000:]
    assert subset_services(api) == {}

    rc, data, raw = playbook("federate_clusters.yml", inventory=inventory)
    assert rc == 0, raw[-4000:]
    services = subset_services(api)
    assert sorted(services) == ["global-httpbin-v1", "global-httpbin-v2"]

    got = settled(lambda got: all(got.get(sni(s)) for s in ("", "v1", "v2")) and got[sni("v1")] != got[sni("v2")],
                  lambda: gateway_clusters(sb, "cluster2", "network2"))

    everything = pod_ips(api)
    assert len(everything) == 2
    for version, other in (("v1", "v2"), ("v2", "v1")):
        name = "global-httpbin-%s" % version
        # the SNI cluster of the subset holds one endpoint: the Service of that label set ...
        assert got[sni(version)] == [(fqdn(name), 8000)], got
        svc = services[name]
        assert svc.spec.selector == {"app": "httpbin", "version": version}
        assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip
        assert [(p.name, p.port, p.target_port, p.protocol) for p in svc.spec.ports] == [("http", 8000, 8000, "TCP")]
        assert svc.metadata.labels["meshfed.istio/owner"] == "meshfed-global"
        assert svc.metadata.labels[SUBSET_OF] == "httpbin"
        # ... whose endpoints are the pods of that version, and no other
        ips = wait_for(lambda name=name: slice_ips(api, name), timeout=60, what="the EndpointSlice of %s" % name)
        assert ips == pod_ips(api, version) and len(ips) == 1, (ips, everything)
        assert not set(ips) & set(pod_ips(api, other))
    # without a subset: the Services of both sets, together every pod of the exported Service
    assert got[sni()] == [(fqdn("global-httpbin-v1"), 8000), (fqdn("global-httpbin-v2"), 8000)], got
    assert sorted(slice_ips(api, "global-httpbin-v1") + slice_ips(api, "global-httpbin-v2")) \
        == slice_ips(api, "httpbin") == everything

    # the importing side: cluster1's sidecars send each subset to cluster2's gateway
    clusters = host_clusters(sb, "cluster1", "sidecar", "default", "network1")
    for version in ("v1", "v2"):
        assert clusters["outbound|8000|%s|%s" % (version, HOST)] == [(gateway_of(sb, "cluster2"), 15443)], clusters

    # a re-run changes nothing, the Services included
    versions = dict((n, s.metadata.resource_version) for n, s in services.items())
    rc, data, raw = playbook("federate_clusters.yml", inventory=inventory)
    assert rc == 0 and changed_tasks(data) == [], (changed_tasks(data), raw[-3000:])
    assert dict((n, s.metadata.resource_version) for n, s in subset_services(api).items()) == versions


def test_one_version_left_removes_the_subset_services(exported_versions):
    sb, apis, inventory = exported_versions
    api = apis["cluster2"]
    rc, data, raw = playbook("federate_clusters.yml", inventory=inventory)
    assert rc == 0, raw[-4000:]
    assert sorted(subset_services(api)) == ["global-httpbin-v1", "global-httpbin-v2"]

    client.AppsV1Api(api).delete_namespaced_deployment("httpbin-v2", NS)
    wait_for(lambda: pod_ips(api) == pod_ips(api, "v1") and len(pod_ips(api)) == 1 and
             client.CoreV1Api(api).list_namespaced_pod(NS, label_selector="version=v2").items == [],
             timeout=60, what="the v2 pod to go")
    rc, data, raw = playbook("federate_clusters.yml", inventory=inventory)
    assert rc == 0, raw[-4000:]
    assert subset_services(api) == {}

    # one label set: the endpoint of subset v1 is the exported Service itself (all its pods are v1)
    got = settled(lambda got: got.get(sni("v1")) and sni("v2") not in got, lambda: gateway_clusters(sb, "cluster2", "network2"))
    assert got[sni("v1")] == got[sni()] == [(fqdn("httpbin"), 8000)], got
    rc, data, raw = playbook("federate_clusters.yml", inventory=inventory)
    assert rc == 0 and changed_tasks(data) == [], (changed_tasks(data), raw[-3000:])
