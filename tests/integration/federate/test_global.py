# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""federate_clusters_mode=service_entry (`.global` hosts) against the sandbox."""

from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from playbook_runner import InventoryCopy, changed_tasks, failure_messages, playbook
from sandbox_helpers import gateway_of, wait_for

pytestmark = pytest.mark.sandbox
NS = "bar"
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def objects(sandbox):
    """resourceVersion of the ServiceEntries, DestinationRules, VirtualServices and VIP ConfigMaps
    in both clusters."""
    out = {}
    for cluster in ("cluster1", "cluster2"):
        api = sandbox.api_client(cluster)
        for plural in ("serviceentries", "destinationrules", "virtualservices"):
            for item in client.CustomObjectsApi(api).list_namespaced_custom_object(
                    "networking.istio.io", "v1", "istio-system", plural)["items"]:
                out["%s %s %s" % (cluster, plural, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
        try:
            cm = client.CoreV1Api(api).read_namespaced_config_map("meshfed-global-vips", "istio-system")
            out["%s CM vips" % cluster] = cm.metadata.resource_version
        except ApiException as e:
            assert e.status == 404
    return out


def service_entry(sandbox, cluster, name, plural="serviceentries"):
    return client.CustomObjectsApi(sandbox.api_client(cluster)).get_namespaced_custom_object(
        "networking.istio.io", "v1", "istio-system", plural, name)


def istio_validate(sandbox, cluster, plural, name, tmp_path):
    """`istioctl validate` (Istio's own validation, as its webhook runs it) of the object as stored."""
    obj = service_entry(sandbox, cluster, name, plural)
    meta = obj["metadata"]
    obj["metadata"] = {"name": meta["name"], "namespace": meta["namespace"], "labels": meta.get("labels") or {}}
    path = tmp_path / ("%s-%s-%s.yaml" % (cluster, plural, name))
    path.write_text(yaml.safe_dump(obj))
    res = subprocess.run([os.path.join(TOP, ".sandbox", "bin", "istioctl"), "validate", "-f", str(path)],
                         capture_output=True, text=True, check=False)
    return res.returncode, res.stdout + res.stderr


def vips(sandbox, cluster):
    return client.CoreV1Api(sandbox.api_client(cluster)).read_namespaced_config_map(
        "meshfed-global-vips", "istio-system").data


def make_service(sandbox, cluster, name, port, version):
    api = sandbox.api_client(cluster)
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    except ApiException as e:
        assert e.status == 409
    labels = {"app": name, "version": version}
    apps.create_namespaced_deployment(NS, client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                                     template=client.V1PodTemplateSpec(
                                         metadata=client.V1ObjectMeta(labels=labels),
                                         spec=client.V1PodSpec(containers=[client.V1Container(
                                             name=name, image="example.invalid/%s" % name)])))))
    core.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(selector={"app": name},
                                  ports=[client.V1ServicePort(port=port, name="http", target_port=80)])))


class Inventory(InventoryCopy):
    """The sandbox inventory in service_entry mode with the given exports."""

    def write_exports(self, exports, **group_vars):
        def mutate(group):
            group["vars"].update(federate_clusters_mode="service_entry", **group_vars)
            for host, ex in exports.items():
                group["hosts"][host]["mesh_exports"] = ex
        return super().write(mutate)


@pytest.fixture(scope="module")
def exported(sandbox, tmp_path_factory):
    rc, data, raw = playbook("install_istio.yml")
    assert rc == 0, raw[-3000:]
    for cluster in ("cluster1", "cluster2"):
        try:
            client.CoreV1Api(sandbox.api_client(cluster)).delete_namespace(NS)
        except ApiException as e:
            assert e.status == 404
    for cluster in ("cluster1", "cluster2"):
        api = client.CoreV1Api(sandbox.api_client(cluster))

        def gone(api=api):
            try:
                api.read_namespace(NS)
            except ApiException as e:
                return e.status == 404
            return False
        wait_for(gone, timeout=120, what="namespace %s to be deleted in %s" % (NS, cluster))
    for cluster in ("cluster1", "cluster2"):  # what an interrupted earlier session may have left
        api = sandbox.api_client(cluster)
        for plural in ("serviceentries", "destinationrules", "virtualservices"):
            client.CustomObjectsApi(api).delete_collection_namespaced_custom_object(
                "networking.istio.io", "v1", "istio-system", plural, label_selector="meshfed.istio/owner=meshfed-global")
        try:
            client.CoreV1Api(api).delete_namespaced_config_map("meshfed-global-vips", "istio-system")
        except ApiException as e:
            assert e.status == 404
    make_service(sandbox, "cluster2", "httpbin", 8000, "v1")
    make_service(sandbox, "cluster2", "other", 9000, "v1")
    inv = Inventory(tmp_path_factory.mktemp("global"))
    yield inv
    inv.remove()
    for cluster in ("cluster1", "cluster2"):
        try:
            client.CoreV1Api(sandbox.api_client(cluster)).delete_namespace(NS)
        except ApiException as e:
            assert e.status == 404


EXPORT_HTTPBIN = {"cluster2": [{"namespace": NS, "names": ["httpbin", "other"]}]}


def test_four_passes(sandbox, exported):
    path = exported.write_exports(EXPORT_HTTPBIN)
    results = [playbook("federate_clusters.yml", *args, inventory=path)
               for args in (["--check"], [], ["--check"], [])]
    for rc, data, raw in results:
        assert rc == 0, raw[-3000:]
    changed = [bool(changed_tasks(data)) for rc, data, raw in results]
    assert changed == [True, True, False, False], [changed_tasks(d) for r, d, w in results]


def test_importer_entry_points_at_the_exporting_gateway(sandbox, exported):
    se = service_entry(sandbox, "cluster1", "global-httpbin-bar")
    spec = se["spec"]
    assert spec["hosts"] == ["httpbin.bar.global"]
    assert spec["location"] == "MESH_INTERNAL" and spec["resolution"] == "DNS"
    assert ipaddress.ip_address(spec["addresses"][0]) in ipaddress.ip_network("240.240.0.0/16")
    assert spec["ports"] == [{"name": "http", "number": 8000, "protocol": "HTTP"}]
    assert spec["endpoints"] == [{"address": gateway_of(sandbox, "cluster2"), "ports": {"http": 15443},
                                  "network": "network2", "labels": {"security.istio.io/tlsMode": "istio", "version": "v1"}}]
    assert vips(sandbox, "cluster1")["httpbin.bar.global"] == spec["addresses"][0]


def test_exporter_entry_points_at_the_local_service_and_gateway_accepts_global(sandbox, exported):
    spec = service_entry(sandbox, "cluster2", "global-httpbin-bar")["spec"]
    assert spec["endpoints"] == [{"address": "httpbin.bar.svc.cluster.local", "ports": {"http": 8000},
                                  "labels": {"security.istio.io/tlsMode": "istio", "version": "v1"}}]
    gw = client.CustomObjectsApi(sandbox.api_client("cluster2")).get_namespaced_custom_object(
        "networking.istio.io", "v1", "istio-system", "gateways", "meshfed-global-gateway")
    assert gw["spec"]["servers"][0]["hosts"] == ["*.global"]
    assert gw["spec"]["servers"][0]["tls"]["mode"] == "AUTO_PASSTHROUGH"


def test_destination_rule_per_host_with_mtls_and_version_subset(sandbox, exported, tmp_path):
    for cluster in ("cluster1", "cluster2"):
        dr = service_entry(sandbox, cluster, "global-httpbin-bar", "destinationrules")
        assert dr["metadata"]["labels"]["meshfed.istio/owner"] == "meshfed-global"
        assert dr["spec"] == {"host": "httpbin.bar.global", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                              "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}
        for plural in ("destinationrules", "serviceentries"):
            rc, out = istio_validate(sandbox, cluster, plural, "global-httpbin-bar", tmp_path)
            assert rc == 0 and "is valid" in out, out


def test_vips_unique_per_cluster(sandbox, exported):
    for cluster in ("cluster1", "cluster2"):
        data = vips(sandbox, cluster)
        assert sorted(data) == ["httpbin.bar.global", "other.bar.global"]
        assert len(set(data.values())) == 2


def test_schema_rejects_a_bad_entry(sandbox, exported):
    """The real API server validates ServiceEntries against Istio's CRD schema (what ours pass)."""
    bad = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
           "metadata": {"name": "meshfed-schema-probe", "namespace": "istio-system"},
           "spec": {"hosts": ["x.global"], "location": "NOT_A_LOCATION"}}
    with pytest.raises(ApiException) as e:
        client.CustomObjectsApi(sandbox.api_client("cluster1")).create_namespaced_custom_object(
            "networking.istio.io", "v1", "istio-system", "serviceentries", bad)
    assert e.value.status == 422


def test_via_egress_gateway_variant(sandbox, exported):
    """Istio 1.6's "send remote traffic via an egress gateway": the local egress gateway first,
    the remote gateway on network external; the exporter's own entry does not change."""
    path = exported.write_exports(EXPORT_HTTPBIN, federate_clusters_via_egress_gateway=True)
    exporter = service_entry(sandbox, "cluster2", "global-httpbin-bar")["spec"]
    # no egress gateway yet: refused before anything is written
    before = objects(sandbox)
    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc != 0
    assert any("federate_clusters_via_egress_gateway is true but these clusters have no Service "
               "istio-system/istio-egressgateway for .global traffic to leave through: cluster1, cluster2;" in m
               for m in failure_messages(data)), raw[-3000:]
    assert objects(sandbox) == before
    rc, data, raw = playbook("install_istio.yml", "-e", "install_istio_egress_gateway=true")
    assert rc == 0, raw[-3000:]
    try:
        rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    finally:
        rc2, data2, raw2 = playbook("install_istio.yml")  # the egress gateway goes again
        assert rc2 == 0, raw2[-3000:]
    assert rc == 0, raw[-3000:]
    assert service_entry(sandbox, "cluster1", "global-httpbin-bar")["spec"]["endpoints"] == [
        {"address": "istio-egressgateway.istio-system.svc.cluster.local", "ports": {"http": 15443},
         "labels": {"security.istio.io/tlsMode": "istio"}},
        {"address": gateway_of(sandbox, "cluster2"), "ports": {"http": 15443}, "network": "external",
         "labels": {"security.istio.io/tlsMode": "istio", "version": "v1"}}]
    assert service_entry(sandbox, "cluster2", "global-httpbin-bar")["spec"] == exporter
    rc, data, raw = playbook("federate_clusters.yml", inventory=exported.write_exports(EXPORT_HTTPBIN))
    assert rc == 0, raw[-3000:]
    assert [e["address"] for e in service_entry(sandbox, "cluster1", "global-httpbin-bar")["spec"]["endpoints"]] \
        == [gateway_of(sandbox, "cluster2")]


def test_conflicting_ports_refused_before_any_change(sandbox, exported):
    make_service(sandbox, "cluster1", "httpbin", 9999, "v2")
    try:
        path = exported.write_exports({"cluster1": [{"namespace": NS, "names": ["httpbin"]}], **EXPORT_HTTPBIN})
        before = objects(sandbox)
        rc, data, raw = playbook("federate_clusters.yml", inventory=path)
        assert rc != 0
        assert any("httpbin.bar.global is exported by cluster1 and cluster2 with conflicting ports" in m
                   for m in failure_messages(data)), raw[-3000:]
        assert objects(sandbox) == before
    finally:
        api = sandbox.api_client("cluster1")
        client.AppsV1Api(api).delete_namespaced_deployment("httpbin", NS)
        client.CoreV1Api(api).delete_namespaced_service("httpbin", NS)


def test_exhausted_vip_range_refused_before_any_change(sandbox, exported):
    path = exported.write_exports(EXPORT_HTTPBIN, federate_clusters_vip_cidr="240.240.0.0/31")
    before = objects(sandbox)
    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc != 0
    assert any("240.240.0.0/31" in m for m in failure_messages(data)), raw[-3000:]
    assert objects(sandbox) == before


def test_removing_an_export_prunes_it_everywhere(sandbox, exported):
    path = exported.write_exports({"cluster2": [{"namespace": NS, "names": ["other"]}]})
    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc == 0, raw[-3000:]
    for cluster in ("cluster1", "cluster2"):
        with pytest.raises(ApiException) as e:
            service_entry(sandbox, cluster, "global-httpbin-bar")
        assert e.value.status == 404
        assert sorted(vips(sandbox, cluster)) == ["other.bar.global"]
    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc == 0 and changed_tasks(data) == []


HELLO = {"cluster1": [{"namespace": NS, "names": ["helloworld"]}],
         "cluster2": [{"namespace": NS, "names": ["helloworld"]}]}
ROUTES = {"helloworld.bar.global": {"v1": 90, "v2": 10}}


@pytest.fixture()
def helloworld(sandbox, exported):
    """helloworld v1 in cluster1 and v2 in cluster2, as in Istio's multicluster samples."""
    make_service(sandbox, "cluster1", "helloworld", 5000, "v1")
    make_service(sandbox, "cluster2", "helloworld", 5000, "v2")
    yield
    for cluster in ("cluster1", "cluster2"):
        api = sandbox.api_client(cluster)
        client.AppsV1Api(api).delete_namespaced_deployment("helloworld", NS)
        client.CoreV1Api(api).delete_namespaced_service("helloworld", NS)


def test_versioned_subsets_and_weighted_routes_across_clusters(sandbox, exported, helloworld, tmp_path):
    path = exported.write_exports(HELLO, federate_clusters_global_routes=ROUTES)
    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc == 0, raw[-3000:]
    for cluster, local, remote, gateway, network in (("cluster1", "v1", "v2", gateway_of(sandbox, "cluster2"), "network2"),
                                                     ("cluster2", "v2", "v1", gateway_of(sandbox, "cluster1"), "network1")):
        se = service_entry(sandbox, cluster, "global-helloworld-bar")["spec"]
        # the local version through the local Service, the other one through the other cluster's gateway
        assert se["endpoints"] == [
            {"address": "helloworld.bar.svc.cluster.local", "ports": {"http": 5000},
             "labels": {"security.istio.io/tlsMode": "istio", "version": local}},
            {"address": gateway, "ports": {"http": 15443}, "network": network,
             "labels": {"security.istio.io/tlsMode": "istio", "version": remote}}]
        dr = service_entry(sandbox, cluster, "global-helloworld-bar", "destinationrules")["spec"]
        assert dr["subsets"] == [{"name": "v1", "labels": {"version": "v1"}},
                                 {"name": "v2", "labels": {"version": "v2"}}]
        vs = service_entry(sandbox, cluster, "global-helloworld-bar", "virtualservices")["spec"]
        assert vs == {"hosts": ["helloworld.bar.global"], "http": [{"route": [
            {"destination": {"host": "helloworld.bar.global", "subset": "v1"}, "weight": 90},
            {"destination": {"host": "helloworld.bar.global", "subset": "v2"}, "weight": 10}]}]}
        for plural in ("virtualservices", "destinationrules"):
            rc, out = istio_validate(sandbox, cluster, plural, "global-helloworld-bar", tmp_path)
            assert rc == 0 and "is valid" in out, out

    # shift to 50/50: only the VirtualServices change
    path = exported.write_exports(HELLO, federate_clusters_global_routes={"helloworld.bar.global": {"v1": 50,
                                                                                                    "v2": 50}})
    before = objects(sandbox)
    rc, data, raw = playbook("federate_clusters.yml", "--diff", inventory=path)
    assert rc == 0, raw[-3000:]
    after = objects(sandbox)
    assert sorted(k for k in after if after[k] != before.get(k)) == [
        "cluster1 virtualservices global-helloworld-bar", "cluster2 virtualservices global-helloworld-bar"]

    # routes dropped: the VirtualServices go, the DestinationRules stay
    path = exported.write_exports(HELLO)
    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc == 0, raw[-3000:]
    for cluster in ("cluster1", "cluster2"):
        with pytest.raises(ApiException) as e:
            service_entry(sandbox, cluster, "global-helloworld-bar", "virtualservices")
        assert e.value.status == 404
        assert service_entry(sandbox, cluster, "global-helloworld-bar", "destinationrules")


@pytest.mark.parametrize("routes, message", [
    ({"helloworld.bar.global": {"v1": 90, "v3": 10}}, "subset 'v3' does not exist; its endpoints make subsets v1, v2"),
    ({"helloworld.bar.global": {"v1": 90, "v2": 20}}, "weights add up to 110, not 100"),
    ({"nothere.bar.global": {"v1": 100}}, "routes[nothere.bar.global]: is not an exported host"),
])
def test_bad_routes_refused_before_any_change(sandbox, exported, helloworld, routes, message):
    rc, data, raw = playbook("federate_clusters.yml", inventory=exported.write_exports(HELLO))
    assert rc == 0, raw[-3000:]
    before = objects(sandbox)
    rc, data, raw = playbook("federate_clusters.yml",
                             inventory=exported.write_exports(HELLO, federate_clusters_global_routes=routes))
    assert rc != 0
    assert any(message in m for m in failure_messages(data)), (message, failure_messages(data))
    assert objects(sandbox) == before


def remote_secrets(sandbox, cluster):
    return sorted(s.metadata.name for s in client.CoreV1Api(sandbox.api_client(cluster)).list_namespaced_secret(
        "istio-system", label_selector="istio/multiCluster=true").items)


def owned_global(sandbox, cluster):
    api = client.CustomObjectsApi(sandbox.api_client(cluster))
    out = ["%s/%s" % (plural, item["metadata"]["name"])
           for plural in ("serviceentries", "destinationrules", "virtualservices")
           for item in api.list_namespaced_custom_object("networking.istio.io", "v1", "istio-system", plural,
                                                         label_selector="meshfed.istio/owner=meshfed-global")["items"]]
    gateways = [g["metadata"]["name"] for g in api.list_namespaced_custom_object(
        "networking.istio.io", "v1", "istio-system", "gateways")["items"]]
    return sorted(out + (["gateways/meshfed-global-gateway"] if "meshfed-global-gateway" in gateways else []))


def test_a_change_of_mode_converges(sandbox, exported):
    """service_entry -> multi_primary removes the .global objects and writes remote secrets;
    back to service_entry removes those secrets and brings the same VIPs back."""
    path = exported.write_exports(EXPORT_HTTPBIN)
    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc == 0, raw[-3000:]
    assert remote_secrets(sandbox, "cluster1") == [] and remote_secrets(sandbox, "cluster2") == []
    assert "gateways/meshfed-global-gateway" in owned_global(sandbox, "cluster2")
    before_vips = vips(sandbox, "cluster1")

    rc, data, raw = playbook("federate_clusters.yml", "--check")  # the sandbox's inventory: multi_primary
    assert rc == 0 and changed_tasks(data), raw[-3000:]
    assert "gateways/meshfed-global-gateway" in owned_global(sandbox, "cluster2")  # check mode wrote nothing
    rc, data, raw = playbook("federate_clusters.yml")
    assert rc == 0, raw[-3000:]
    assert remote_secrets(sandbox, "cluster1") == ["istio-remote-secret-cluster2"]
    assert remote_secrets(sandbox, "cluster2") == ["istio-remote-secret-cluster1"]
    assert owned_global(sandbox, "cluster1") == [] and owned_global(sandbox, "cluster2") == []
    rc, data, raw = playbook("federate_clusters.yml")
    assert rc == 0 and changed_tasks(data) == [], raw[-3000:]

    rc, data, raw = playbook("federate_clusters.yml", inventory=path)
    assert rc == 0, raw[-3000:]
    assert remote_secrets(sandbox, "cluster1") == [] and remote_secrets(sandbox, "cluster2") == []
    assert "serviceentries/global-httpbin-bar" in owned_global(sandbox, "cluster1")
    assert vips(sandbox, "cluster1") == before_vips
