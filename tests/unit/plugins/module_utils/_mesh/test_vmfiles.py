# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VM files, as istioctl x workload entry configure makes them (pure)."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess

import pytest
import yaml

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import vmfiles
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

MESH = yaml.safe_load("""
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  meshId: mesh1
  proxyMetadata:
    ISTIO_META_DNS_AUTO_ALLOCATE: "true"
  tracing:
    zipkin:
      address: zipkin.istio-system:9411
trustDomain: cluster.local
""")


def group(**over):
    spec = {"metadata": {"labels": {"app": "hello-vm"}},
            "template": {"serviceAccount": "hello-sa", "network": "vm-net", "ports": {"http": 8080, "grpc": 9090}}}
    spec.update(over.pop("spec", {}))
    return vmfiles.group_view(over.pop("name", "hello-vm"), over.pop("namespace", "vm-apps"), spec, over.pop("annotations", None))


def pc_of(g=None, **kw):
    return vmfiles.proxy_config(MESH, g or group(), kw.pop("cluster_id", "cluster1"), **kw)


# --- names -----------------------------------------------------------------------

def test_istiod_names_default_and_revision():
    assert vmfiles.istiod_host("istio-system") == "istiod.istio-system.svc"
    assert vmfiles.istiod_host("istio-system", "default") == "istiod.istio-system.svc"
    assert vmfiles.istiod_address("istio-system", "1-31") == "istiod-1-31.istio-system.svc:15012"
    assert vmfiles.mesh_configmap("") == "istio" and vmfiles.mesh_configmap("1-31") == "istio-1-31"
    assert vmfiles.injector_configmap("canary") == "istio-sidecar-injector-canary"


@pytest.mark.parametrize("labels,expected", [
    ({}, ("wg", "latest")),
    ({"app": "a", "version": "v1"}, ("a", "v1")),
    ({"app": "a", "app.kubernetes.io/name": "b"}, ("b", "latest")),
    ({"app": "a", "service.istio.io/canonical-name": "c", "app.kubernetes.io/version": "2",
      "service.istio.io/canonical-revision": "r"}, ("c", "r")),
])
def test_canonical_service_order(labels, expected):
    assert vmfiles.canonical_service(labels, "wg") == expected


def test_go_json_is_compact_sorted_and_escapes_html():
    assert vmfiles.go_json({"b": "<x&y>", "a": 1}) == '{"a":1,"b":"\\u003cx\\u0026y\\u003e"}'


def test_pod_ports_sorted_by_name_with_empty_protocol():
    assert vmfiles.pod_ports({"http": 8080, "grpc": 9090}) == (
        '[{"name":"grpc","containerPort":9090,"protocol":""},{"name":"http","containerPort":8080,"protocol":""}]')
    assert vmfiles.pod_ports({}) == ""


# --- cluster.env -------------------------------------------------------------------

def test_render_env_quotes_for_a_shell_and_round_trips():
    env = {"B": "plain-value:1,2/3", "A": '{"app":"it\'s"}', "E": ""}
    text = vmfiles.render_env(env)
    assert text.splitlines()[0].startswith("A=")
    assert "B=plain-value:1,2/3\n" in text
    assert "E=''\n" in text
    assert vmfiles.parse_env(text) == env
    # a shell reads back the same values
    out = subprocess.run(["bash", "-c", "set -a; . /dev/stdin; printf '%s\\n' \"$A\" \"$B\""], input=text.encode(),
                         capture_output=True, check=True).stdout.decode()
    assert out.splitlines() == [env["A"], env["B"]]


def test_proxy_metadata_istioctl_writes():
    md = pc_of()["proxyMetadata"]
    assert md["CANONICAL_SERVICE"] == "hello-vm" and md["CANONICAL_REVISION"] == "latest"
    assert md["POD_NAMESPACE"] == "vm-apps" and md["SERVICE_ACCOUNT"] == "hello-sa"
    assert md["TRUST_DOMAIN"] == "cluster.local"
    assert md["ISTIO_META_CLUSTER_ID"] == "cluster1" and md["ISTIO_META_MESH_ID"] == "mesh1"
    assert md["ISTIO_META_NETWORK"] == "vm-net" and md["ISTIO_META_WORKLOAD_NAME"] == "hello-vm"
    assert json.loads(md["ISTIO_META_POD_PORTS"])[0]["name"] == "grpc"
    assert json.loads(md["ISTIO_METAJSON_LABELS"]) == {
        "app": "hello-vm", "service.istio.io/canonical-name": "hello-vm", "service.istio.io/canonical-revision": "latest"}
    assert md["ISTIO_META_DNS_CAPTURE"] == "true"
    assert "ISTIO_META_AUTO_REGISTER_GROUP" not in md
    # the mesh's own proxy metadata stays
    assert md["ISTIO_META_DNS_AUTO_ALLOCATE"] == "true"


def test_autoregister_and_no_dns_capture():
    md = pc_of(dns_capture=False, autoregister=True)["proxyMetadata"]
    assert md["ISTIO_META_AUTO_REGISTER_GROUP"] == "hello-vm"
    assert "ISTIO_META_DNS_CAPTURE" not in md


def test_template_labels_override_metadata_labels():
    g = group(spec={"metadata": {"labels": {"app": "a", "version": "v1"}},
                    "template": {"serviceAccount": "s", "labels": {"version": "v2"}}})
    md = pc_of(g)["proxyMetadata"]
    assert md["CANONICAL_REVISION"] == "v2"
    assert json.loads(md["ISTIO_METAJSON_LABELS"])["version"] == "v2"


def test_no_service_account_is_default():
    g = vmfiles.group_view("g", "ns", {"template": {}})
    assert g["template"]["serviceAccount"] == "default"
    assert vmfiles.group_view("g", "ns", None)["template"]["serviceAccount"] == "default"


def test_revision_sets_discovery_address_only_when_the_mesh_has_none():
    assert pc_of(revision="canary")["discoveryAddress"] == "istiod.istio-system.svc:15012"
    bare = {"defaultConfig": {}, "trustDomain": "td"}
    pc = vmfiles.proxy_config(bare, group(), "c1", revision="canary")
    assert pc["discoveryAddress"] == "istiod-canary.istio-system.svc:15012"
    assert pc["proxyMetadata"]["TRUST_DOMAIN"] == "td"


def test_proxy_config_annotation_and_probe():
    g = group(annotations={"proxy.istio.io/config": "statusPort: 15999\nproxyMetadata:\n  FOO: bar\n"},
              spec={"probe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5}})
    pc = pc_of(g)
    assert pc["statusPort"] == 15999
    assert pc["proxyMetadata"]["FOO"] == "bar" and pc["proxyMetadata"]["ISTIO_META_DNS_AUTO_ALLOCATE"] == "true"
    assert pc["readinessProbe"] == {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5}
    env = vmfiles.cluster_env(pc, g)
    assert env["ISTIO_LOCAL_EXCLUDE_PORTS"] == "22,15090,15021,15999"


def test_bad_annotation_names_the_group():
    g = group(annotations={"proxy.istio.io/config": "a: [unclosed"})
    with pytest.raises(MeshError, match="WorkloadGroup vm-apps/hello-vm"):
        pc_of(g)


def test_cluster_env_keys():
    g = group()
    env = vmfiles.cluster_env(pc_of(g), g)
    assert env["ISTIO_INBOUND_PORTS"] in ("8080,9090", "9090,8080")
    assert env["ISTIO_SERVICE"] == "hello-vm.vm-apps" and env["ISTIO_NAMESPACE"] == "vm-apps"
    assert env["ISTIO_SERVICE_CIDR"] == "*" and env["ISTIO_LOCAL_EXCLUDE_PORTS"] == "22,15090,15021,15020"
    assert env["SERVICE_ACCOUNT"] == "hello-sa"
    assert "CA_ADDR" not in env and "ISTIO_SVC_IP" not in env
    # everything of the proxy metadata is there too
    assert env["ISTIO_META_NETWORK"] == "vm-net"


def test_cluster_env_no_ports_captures_all_and_options():
    g = vmfiles.group_view("g", "ns", {"template": {"serviceAccount": "s"}})
    pc = vmfiles.proxy_config(MESH, g, "c")
    assert vmfiles.cluster_env(pc, g)["ISTIO_INBOUND_PORTS"] == "*"
    env = vmfiles.cluster_env(pc, g, revision="canary", internal_ip="10.0.0.5")
    assert env["CA_ADDR"] == "istiod-canary.istio-system.svc:15012" and env["ISTIO_SVC_IP"] == "10.0.0.5"
    env = vmfiles.cluster_env(pc, g, external_ip="203.0.113.5")
    assert env["ISTIO_SVC_IP"] == "203.0.113.5" and env["REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION"] == "true"


def test_status_port_15021_not_excluded_twice():
    g = group(annotations={"proxy.istio.io/config": "statusPort: 15021"})
    assert vmfiles.cluster_env(pc_of(g), g)["ISTIO_LOCAL_EXCLUDE_PORTS"] == "22,15090,15021"


def test_mesh_yaml_has_default_config_only():
    doc = yaml.safe_load(vmfiles.mesh_yaml(pc_of()))
    assert list(doc) == ["defaultConfig"]
    assert doc["defaultConfig"]["tracing"]["zipkin"]["address"] == "zipkin.istio-system:9411"


def test_hosts_file():
    assert vmfiles.hosts_file("127.0.2.1") == "127.0.2.1 istiod.istio-system.svc\n"
    assert vmfiles.hosts_file("10.0.0.1", "istio-system", "canary") == "10.0.0.1 istiod-canary.istio-system.svc\n"


def test_cluster_id_from_injector_values():
    assert vmfiles.cluster_id_of(json.dumps({"global": {"multiCluster": {"clusterName": "cluster2"}}})) == "cluster2"
    assert vmfiles.cluster_id_of("{}") == ""
    with pytest.raises(MeshError, match="not valid JSON"):
        vmfiles.cluster_id_of("{", "the values of ConfigMap istio-system/istio-sidecar-injector")


# --- the gateway ------------------------------------------------------------------

def no_resolve(hostname):
    raise AssertionError("no resolution expected")


def test_gateway_address_sources():
    lb = {"status": {"loadBalancer": {"ingress": [{"ip": "127.0.2.1"}]}}, "spec": {"externalIPs": ["1.2.3.4"]}}
    assert vmfiles.gateway_address(lb, "istio-system/gw", no_resolve)[0] == "127.0.2.1"
    host = {"status": {"loadBalancer": {"ingress": [{"hostname": "gw.example.com"}]}}}
    ip, how = vmfiles.gateway_address(host, "istio-system/gw", lambda h: "192.0.2.7")
    assert ip == "192.0.2.7" and "gw.example.com" in how
    ext = {"spec": {"externalIPs": ["198.51.100.1"]}, "status": {}}
    assert vmfiles.gateway_address(ext, "istio-system/gw", no_resolve) == ("198.51.100.1", "external IP of istio-system/gw")


def test_gateway_without_address_names_service_and_option():
    with pytest.raises(MeshError, match="istio-system/gw has no LoadBalancer address.*istiod_address") as e:
        vmfiles.gateway_address({"spec": {"type": "NodePort"}, "status": {}}, "istio-system/gw", no_resolve)
    assert e.value.field == "ingress_service"
    with pytest.raises(MeshError, match="does not exist"):
        vmfiles.gateway_address(None, "istio-system/gw", no_resolve)


def test_split_service():
    assert vmfiles.split_service("istio-eastwestgateway", "istio-system") == ("istio-system", "istio-eastwestgateway")
    assert vmfiles.split_service("gw.other", "istio-system") == ("other", "gw")


# --- the token -----------------------------------------------------------------------

def jwt(claims):
    enc = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return "eyJhbGciOiJSUzI1NiJ9.%s.c2ln" % enc


SUB = "system:serviceaccount:vm-apps:hello-sa"


@pytest.mark.parametrize("token,now,renew,reason", [
    (None, 1000, True, "no token yet"),
    ("garbage", 1000, True, "not a readable JWT"),
    (jwt({"sub": SUB, "aud": ["istio-ca"], "exp": 10000}), 1000, False, "valid for 9000 s more"),
    (jwt({"sub": SUB, "aud": "istio-ca", "exp": 10000}), 9500, True, "expires in 500 s"),
    (jwt({"sub": SUB, "aud": ["istio-ca"], "exp": 10000}), 10500, True, "expired 500 s ago"),
    (jwt({"sub": "system:serviceaccount:vm-apps:other", "aud": ["istio-ca"], "exp": 10000}), 1000, True, "not of"),
    (jwt({"sub": SUB, "aud": ["api"], "exp": 10000}), 1000, True, "audience"),
    (jwt({"sub": SUB, "aud": ["istio-ca"]}), 1000, True, "no expiry"),
])
def test_token_plan(token, now, renew, reason):
    got = vmfiles.token_plan(token, now, 900, "vm-apps", "hello-sa", "uid-1")
    assert got[0] is renew
    assert reason in got[1]


def test_token_of_an_earlier_service_account_is_renewed():
    claims = {"sub": SUB, "aud": ["istio-ca"], "exp": 10000, "kubernetes.io": {"serviceaccount": {"uid": "uid-old"}}}
    renew, reason, dummy = vmfiles.token_plan(jwt(claims), 1000, 900, "vm-apps", "hello-sa", "uid-new")
    assert renew and "earlier ServiceAccount vm-apps/hello-sa (uid uid-old, now uid-new)" in reason
    assert vmfiles.token_plan(jwt(claims), 1000, 900, "vm-apps", "hello-sa", "uid-old")[0] is False
    renew, reason, dummy = vmfiles.token_plan(jwt(claims), 1000, 900, "vm-apps", "hello-sa", None)
    assert renew and "does not exist yet" in reason


def test_token_never_in_a_diff():
    d = vmfiles.file_diff("istio-token", b"eyJold", b"eyJnew")
    assert "eyJ" not in json.dumps(d)
    d = vmfiles.file_diff("hosts", None, b"1.2.3.4 istiod.istio-system.svc\n")
    assert d["after"].startswith("1.2.3.4") and d["before"] == ""


def test_modes():
    assert vmfiles.mode_of("istio-token") == 0o600 and vmfiles.mode_of("cluster.env") == 0o644


# --- options -----------------------------------------------------------------------

def params(**over):
    p = {"workload_group": {"name": "hello-vm", "namespace": "vm-apps", "spec": None}, "token_lifetime": 3600,
         "token_renew_before": 900, "revision": "", "internal_ip": None, "external_ip": None}
    p.update(over)
    return p


@pytest.mark.parametrize("over,field,text", [
    ({"workload_group": {"name": "Hello_VM", "namespace": "vm-apps"}}, "workload_group", "workload_group.name"),
    ({"workload_group": {"name": "hello", "namespace": "VM.apps"}}, "workload_group", "workload_group.namespace"),
    ({"workload_group": {"name": "hello", "namespace": "ns", "spec": {"template": {"serviceAccount": "Bad SA"}}}},
     "workload_group", "serviceAccount"),
    ({"internal_ip": "10.0.0.300"}, "internal_ip", "not an IP"),
    ({"internal_ip": "10.0.0.3", "external_ip": "10.0.0.4"}, "internal_ip", "mutually exclusive"),
    ({"token_lifetime": 300}, "token_lifetime", "shorter than the 600 s"),
    ({"token_renew_before": 3600}, "token_renew_before", "less than token_lifetime"),
    ({"revision": "1.31"}, "revision", "DNS-1123"),
])
def test_validate_refuses(over, field, text):
    with pytest.raises(MeshError, match=text) as e:
        vmfiles.validate(params(**over))
    assert e.value.field == field


def test_validate_accepts():
    vmfiles.validate(params(internal_ip="10.0.0.3", revision="canary"))


def test_parse_env_reads_a_quoted_json_value():
    assert vmfiles.parse_env("X=%s\n# c\n\n" % shlex.quote('{"a":"b c"}')) == {"X": '{"a":"b c"}'}
