# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The .global explicit-export model."""

from __future__ import annotations

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import federation as fed
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def export(cluster, name="httpbin", namespace="bar", ports=None, label_sets=None, gateway=None, network=None):
    return {"cluster": cluster, "network": network or "net-" + cluster, "gateway": gateway or "gw-" + cluster,
            "name": name, "namespace": namespace,
            "ports": ports or [{"name": "http", "port": 8000}], "label_sets": label_sets or [{}]}


VIPS = {"httpbin.bar.global": "240.240.0.10", "helloworld.sample.global": "240.240.0.11"}
MTLS = {"security.istio.io/tlsMode": "istio"}


def test_importer_gets_gateway_endpoint_on_15443():
    (se,) = fed.global_entries("cluster1", [export("cluster2")], VIPS)
    assert se["name"] == "global-httpbin-bar" and se["namespace"] == "istio-system"
    assert se["spec"] == {
        "hosts": ["httpbin.bar.global"], "location": "MESH_INTERNAL", "resolution": "DNS",
        "addresses": ["240.240.0.10"], "ports": [{"name": "http", "number": 8000, "protocol": "HTTP"}],
        # the mTLS label: without it istiod drops an endpoint of another network for this cluster's clients
        "endpoints": [{"address": "gw-cluster2", "ports": {"http": 15443}, "network": "net-cluster2", "labels": MTLS}],
    }


def test_exporter_gets_local_service_endpoint():
    (se,) = fed.global_entries("cluster2", [export("cluster2")], VIPS)
    # the mTLS label: without it the east-west gateway's SNI-DNAT cluster for the host has no endpoint
    assert se["spec"]["endpoints"] == [{"address": "httpbin.bar.svc.cluster.local", "ports": {"http": 8000}, "labels": MTLS}]


def test_versioned_subsets_from_two_clusters():
    exports = [export("cluster1", "helloworld", "sample", [{"name": "http", "port": 5000}], [{"version": "v1"}]),
               export("cluster2", "helloworld", "sample", [{"name": "http", "port": 5000}], [{"version": "v2"}])]
    (se,) = fed.global_entries("cluster1", exports, VIPS)
    assert se["spec"]["endpoints"] == [
        {"address": "helloworld.sample.svc.cluster.local", "ports": {"http": 5000}, "labels": dict(MTLS, version="v1")},
        {"address": "gw-cluster2", "ports": {"http": 15443}, "network": "net-cluster2", "labels": dict(MTLS, version="v2")},
    ]


def test_via_egress_gateway():
    (se,) = fed.global_entries("cluster1", [export("cluster2")], VIPS, via_egress=True)
    assert se["spec"]["endpoints"] == [
        {"address": fed.EGRESS_GATEWAY, "ports": {"http": 15443}, "labels": MTLS},
        {"address": "gw-cluster2", "ports": {"http": 15443}, "network": "external", "labels": MTLS},
    ]


def test_conflicting_ports_are_refused():
    with pytest.raises(MeshError) as e:
        fed.global_entries("cluster1", [export("cluster2"), export("cluster3", ports=[{"name": "http", "port": 9000}])],
                           VIPS)
    assert "httpbin.bar.global is exported by cluster2 and cluster3 with conflicting ports (8000/HTTP vs 9000/HTTP)" \
        in str(e.value)
    assert e.value.field == "mesh_exports"


def test_missing_gateway_and_vip():
    with pytest.raises(MeshError) as e:
        fed.global_entries("cluster1", [dict(export("cluster2"), gateway="")], VIPS)
    assert "cluster cluster2 exports httpbin.bar.global but has no gateway address" in str(e.value)
    with pytest.raises(MeshError):
        fed.global_entries("cluster1", [export("cluster2", name="other")], VIPS)


@pytest.mark.parametrize("port, proto", [
    ({"name": "http"}, "HTTP"), ({"name": "http-web"}, "HTTP"), ({"name": "http2"}, "HTTP2"),
    ({"name": "grpc-api"}, "GRPC"), ({"name": "tcp-db"}, "TCP"), ({"name": "metrics"}, "TCP"),
    ({"name": "x", "app_protocol": "https"}, "HTTPS"), ({"name": "http1"}, "HTTP"),
])
def test_protocol(port, proto):
    assert fed.istio_protocol(port) == proto


def test_endpoint_labels():
    pods = [{"app": "a", "version": "v1", "pod-template-hash": "x"}, {"app": "a", "version": "v1"},
            {"app": "a", "version": "v2"}]
    assert fed.endpoint_labels(pods, ["version"]) == [{"version": "v1"}, {"version": "v2"}]
    assert fed.endpoint_labels([], ["version"]) == [{}]


def test_legacy_form_refused_on_current_istio():
    for v in ("1.31-dev", "1.9.0", "1.8.6"):
        with pytest.raises(MeshError) as e:
            fed.check_legacy_form(v)
        assert e.value.field == "federate_clusters_global_form"
    fed.check_legacy_form("1.6.8")
    fed.check_legacy_form("1.8.5")
