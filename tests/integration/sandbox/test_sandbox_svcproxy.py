# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ClusterIPs of the istiod Services reach the sandbox's out-of-cluster istiods (svcproxy), as kube-proxy
and an istiod Pod make them in a real cluster: the API server's webhook calls to Service istio-system/istiod
inject sidecars and validate Istio objects, done by the real istiod of the cluster."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
import subprocess
import urllib.request

import pytest
from cryptography import x509
from kubernetes import client
from kubernetes.client.rest import ApiException
from playbook_runner import playbook

from sandbox_helpers import unique, wait_for
from tools.sandbox import cluster, common, svcproxy

pytestmark = pytest.mark.sandbox
NS = "istio-system"


@pytest.fixture(scope="module")
def relay(sandbox_istiod):
    why = svcproxy.why_not_possible()
    if why:
        pytest.skip("the relay cannot run here: %s" % why)
    assert svcproxy.pid(), "no svcproxy relay runs in this sandbox (`up` and `istiod` start it)"
    return sandbox_istiod


@pytest.fixture(scope="module")
def installed(relay):
    """install_istio.yml on the sandbox, then the istiods restarted: the injector needs its ConfigMap at
    start-up, and istiod takes a first cacerts Secret (after a self-signed start) only at start-up."""
    rc, dummy, raw = playbook("install_istio.yml")
    assert rc == 0, raw[-4000:]
    relay.run("istiod", "--restart")
    for name in relay.clusters:
        adm = client.AdmissionregistrationV1Api(relay.api_client(name))

        def patched(adm=adm):
            hooks = adm.read_mutating_webhook_configuration("istio-revision-tag-default").webhooks
            return all(h.client_config.ca_bundle for h in hooks)
        wait_for(patched, 60, what="%s: istiod to patch the caBundle of the injection webhooks" % name)
    return relay


def _istiod_services(api_client) -> list:
    return [s for s in client.CoreV1Api(api_client).list_namespaced_service(NS).items
            if (s.spec.selector or {}).get("app") == "istiod"]


def _relays() -> list:
    return svcproxy.read_status().get("relays", [])


def _relayed(address: str, port: int) -> dict:
    return next((r for r in _relays() if (r["address"], r["port"]) == (address, port)), None)


def _metric(port: int, name: str) -> float:
    """The sum of every series of an istiod metric (0 before its first sample)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))


def _namespace(core, labels=None) -> str:
    name = unique("sbtest-svcproxy")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    return name


def test_each_cluster_gives_cluster_ips_from_its_own_service_cidr(installed):
    seen = {}
    for name in installed.clusters:
        c = cluster.Cluster(name)
        cidr = cluster.service_cidr(c.index)
        assert c.service_cidr() == cidr
        assert "--service-cluster-ip-range=" + cidr in common.proc_cmdline(c.pids()["kube-apiserver"])
        assert common.load_state()["clusters"][name]["service_cidr"] == cidr
        api = installed.api_client(name)
        ips = {s.spec.cluster_ip for s in client.CoreV1Api(api).list_service_for_all_namespaces().items}
        assert "10.%d.128.1" % (100 + c.index) in ips  # default/kubernetes: the first address of the range
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(cidr) for ip in ips), (name, ips, cidr)
        seen[name] = ips
    for name in installed.clusters:
        others = set().union(*(ips for other, ips in seen.items() if other != name))
        assert not seen[name] & others, name


def test_every_istiod_service_port_is_relayed_to_its_clusters_istiod(installed):
    label = svcproxy.address_label(common.sandbox_dir())
    on_lo = svcproxy.own_addresses(label)
    for name in installed.clusters:
        ports = installed.istiod_ports[name]
        services = _istiod_services(installed.api_client(name))
        assert {s.metadata.name for s in services} >= {"istiod", "istiod-revision-tag-default"}, services
        for s in services:
            assert s.spec.cluster_ip in on_lo, (name, s.metadata.name, s.spec.cluster_ip, on_lo)
            for p in s.spec.ports:
                r = _relayed(s.spec.cluster_ip, p.port)
                want = {15010: ports["grpc"], 15012: ports["secure_grpc"], 15014: ports["monitoring"],
                        15017: ports["https"]}[p.target_port]
                assert r and r["cluster"] == name and r["istiod_port"] == want, (name, s.metadata.name, p, r)
            # the cluster's own istiod answers on the ClusterIP (not another cluster's)
            with urllib.request.urlopen("http://%s:15014/debug/clusterz" % s.spec.cluster_ip, timeout=10) as resp:
                assert name in [c.get("id") for c in json.loads(resp.read())]


def test_the_webhook_port_presents_istiods_certificate_for_the_service_name(installed):
    for name in installed.clusters:
        svc = client.CoreV1Api(installed.api_client(name)).read_namespaced_service("istiod", NS)
        # the same certificate as istiod's own https port serves
        pems = [ssl.get_server_certificate((host, port), timeout=10)
                for host, port in ((svc.spec.cluster_ip, 443), ("127.0.0.1", installed.istiod_ports[name]["https"]))]
        assert pems[0] == pems[1], name
        sans = x509.load_pem_x509_certificate(pems[0].encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert "istiod.istio-system.svc" in sans, sans


def test_a_pod_in_an_injection_enabled_namespace_gets_the_sidecar_from_the_real_istiod(installed):
    for name in installed.clusters:
        core = client.CoreV1Api(installed.api_client(name))
        mon = installed.istiod_ports[name]["monitoring"]
        svc = core.read_namespaced_service("istiod", NS)
        before = _metric(mon, "sidecar_injection_success_total")
        ns = _namespace(core, {"istio-injection": "enabled"})
        try:
            pod = client.V1Pod(metadata=client.V1ObjectMeta(name="app", labels={"app": "app"}),
                               spec=client.V1PodSpec(containers=[client.V1Container(
                                   name="app", image="registry.k8s.io/pause:3.10")]))
            dry = core.create_namespaced_pod(ns, pod, dry_run="All")
            made = core.create_namespaced_pod(ns, pod)
            for p in (dry, made):
                print("\n%s: %s pod %s/app: initContainers %s, containers %s" % (
                    name, "dry-run" if p is dry else "created", ns, [c.name for c in p.spec.init_containers or []],
                    [c.name for c in p.spec.containers]))
                assert [c.name for c in p.spec.containers] == ["app", "istio-proxy"], p.spec.containers
                assert [c.name for c in p.spec.init_containers] == ["istio-init"]
                status = json.loads(p.metadata.annotations["sidecar.istio.io/status"])
                assert status["containers"] == ["istio-proxy"] and status["revision"] == "default"
            proxy = next(c for c in made.spec.containers if c.name == "istio-proxy")
            env = {e.name: e.value for e in proxy.env or []}
            # rendered by this cluster's istiod: its cluster ID and network, and its own XDS address
            assert env["ISTIO_META_CLUSTER_ID"] == name, env
            assert env["ISTIO_META_NETWORK"] == "network%d" % common.cluster_index(name), env
            assert "istiod.istio-system.svc:15012" in proxy.args or any(
                "istiod.istio-system.svc:15012" in (e.value or "") for e in proxy.env or []), proxy
            assert _metric(mon, "sidecar_injection_success_total") >= before + 2
            # the API server reached istiod through the relay (it keeps its connection open between calls)
            wait_for(lambda ip=svc.spec.cluster_ip: _relayed(ip, 443)["connections"] >= 1, 10,
                     what="a connection through the relay of %s:443" % svc.spec.cluster_ip)
            # and an uninjected namespace stays uninjected
            plain = _namespace(core)
            try:
                p = core.create_namespaced_pod(plain, pod, dry_run="All")
                assert [c.name for c in p.spec.containers] == ["app"]
            finally:
                core.delete_namespace(plain)
        finally:
            core.delete_namespace(ns)


def _established_on(addresses) -> list:
    """(address, port) of the established TCP connections whose local end is one of `addresses`."""
    return [(a, p) for a, p, state, _ino in common._tcp_sockets() if a in addresses and state == "01"]


def test_without_the_relay_the_api_server_cannot_call_the_webhook(installed):
    """The control: the injection above went through the relay.  Stopped (as `down` stops it), the ClusterIP is
    no local address any more and the API server's call goes nowhere useful; started again, injection works at
    the first call in every cluster: the relay ended the API servers' pooled connections before it removed the
    addresses (a FIN sent after that never arrives, and the next call failed with "use of closed network
    connection")."""
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="app"), spec=client.V1PodSpec(
        containers=[client.V1Container(name="app", image="registry.k8s.io/pause:3.10")]))
    cores = {name: client.CoreV1Api(installed.api_client(name)) for name in installed.clusters}
    namespaces = {name: _namespace(core, {"istio-injection": "enabled"}) for name, core in cores.items()}
    label = svcproxy.address_label(common.sandbox_dir())
    try:
        for name, core in cores.items():  # every API server now holds a connection through the relay
            core.create_namespaced_pod(namespaces[name], pod, dry_run="All")
        relayed = set(svcproxy.own_addresses(label))
        assert _established_on(relayed)
        assert svcproxy.stop()
        assert not set(svcproxy.own_addresses(label)) & relayed
        wait_for(lambda: not _established_on(relayed), 10, what="the API servers' connections to end")
        name = installed.clusters[0]
        with pytest.raises(ApiException) as err:
            cores[name].create_namespaced_pod(namespaces[name], pod, dry_run="All")
        message = json.loads(err.value.body)["message"]
        print("\n%s without the relay: HTTP %d %s" % (name, err.value.status, message))
        assert err.value.status == 500
        assert 'failed calling webhook "namespace.sidecar-injector.istio.io"' in message, message
        assert 'Post "https://istiod.istio-system.svc:443/inject' in message, message
        assert svcproxy.ensure()
        for name, core in cores.items():
            injected = core.create_namespaced_pod(namespaces[name], pod, dry_run="All")
            assert [c.name for c in injected.spec.containers] == ["app", "istio-proxy"], name
    finally:
        svcproxy.ensure()
        for name, core in cores.items():
            core.delete_namespace(namespaces[name])


def test_the_validation_webhook_rejects_an_invalid_virtual_service_with_istiods_message(installed):
    for name in installed.clusters:
        api = installed.api_client(name)
        core, co = client.CoreV1Api(api), client.CustomObjectsApi(api)
        mon = installed.istiod_ports[name]["monitoring"]
        ns = _namespace(core)
        try:
            route = {"destination": {"host": "reviews"}, "weight": -5}
            vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                  "metadata": {"name": "reviews", "namespace": ns},
                  "spec": {"hosts": ["reviews"], "http": [{"route": [route]}]}}
            failed = _metric(mon, "galley_validation_failed")
            with pytest.raises(ApiException) as err:
                co.create_namespaced_custom_object("networking.istio.io", "v1", ns, "virtualservices", vs)
            message = json.loads(err.value.body)["message"]
            print("\n%s: HTTP %d %s" % (name, err.value.status, message))
            assert err.value.status == 400
            assert message == ('admission webhook "validation.istio.io" denied the request: '
                               'configuration is invalid: weight -5 < 0'), message
            assert _metric(mon, "galley_validation_failed") >= failed + 1
            # the same object with a valid weight passes the same webhook
            route["weight"] = 100
            co.create_namespaced_custom_object("networking.istio.io", "v1", ns, "virtualservices", vs)
            hooks = client.AdmissionregistrationV1Api(api).read_validating_webhook_configuration(
                "istiod-default-validator").webhooks
            # istiod sets Fail only after the API server rejected an invalid object through its webhook
            assert [h.failure_policy for h in hooks] == ["Fail"]
        finally:
            core.delete_namespace(ns)


def _service(name: str, cluster_ip: str = None) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"sbtest": "svcproxy"}),
        spec=client.V1ServiceSpec(selector={"app": "istiod", "istio.io/rev": name}, cluster_ip=cluster_ip, ports=[
            client.V1ServicePort(name="http-monitoring", port=15014, target_port=15014),
            client.V1ServicePort(name="https-webhook", port=443, target_port=15017)]))


def test_the_relay_follows_a_service_that_comes_and_goes(installed):
    name = installed.clusters[-1]
    core = client.CoreV1Api(installed.api_client(name))
    label = svcproxy.address_label(common.sandbox_dir())
    svc = core.create_namespaced_service(NS, _service(unique("istiod-sbtest")))
    ip = svc.spec.cluster_ip
    try:
        wait_for(lambda: _relayed(ip, 15014) and _relayed(ip, 443), 30, what="the relay of %s" % ip)
        assert ip in svcproxy.own_addresses(label)
        with urllib.request.urlopen("http://%s:15014/debug/clusterz" % ip, timeout=10) as resp:
            assert name in [c.get("id") for c in json.loads(resp.read())]
    finally:
        core.delete_namespaced_service(svc.metadata.name, NS)
    wait_for(lambda: not _relayed(ip, 15014) and not _relayed(ip, 443), 30, what="the relay of %s to stop" % ip)
    assert ip not in svcproxy.own_addresses(label)


def test_an_address_another_sandbox_holds_is_refused_and_left_alone(installed):
    """Two checkouts' sandboxes give the same ClusterIPs: the second relay names the holder and binds nothing."""
    name = installed.clusters[0]
    core = client.CoreV1Api(installed.api_client(name))
    # a free address of the cluster's service range, taken by a "foreign" sandbox first
    used = {s.spec.cluster_ip for s in core.list_service_for_all_namespaces().items}
    ip = next(str(a) for a in reversed(list(ipaddress.ip_network(cluster.service_cidr(cluster.Cluster(name).index))
                                            .hosts())) if str(a) not in used)
    foreign = "lo:sbforeign0"
    subprocess.run(["ip", "addr", "add", ip + "/32", "dev", "lo", "label", foreign], check=True)
    svc = None
    try:
        svc = core.create_namespaced_service(NS, _service(unique("istiod-sbtest"), cluster_ip=ip))
        problem = wait_for(lambda: next((p for p in svcproxy.read_status().get("problems", []) if ip in p), None), 30,
                           what="the relay to report %s" % ip)
        print("\n" + problem)
        assert "%s is already on this machine: %s/32 on lo (label %s)" % (ip, ip, foreign) in problem
        assert "Another sandbox" in problem and "not relayed" in problem
        assert not _relayed(ip, 443)
        assert svcproxy.holder(ip).endswith("(label %s)" % foreign)
        res = installed.run("status")
        assert "problem: %s Service istio-system/%s: %s is already on this machine" % (
            name, svc.metadata.name, ip) in res.stdout
    finally:
        if svc is not None:
            core.delete_namespaced_service(svc.metadata.name, NS)
        subprocess.run(["ip", "addr", "del", ip + "/32", "dev", "lo"], check=False)
    wait_for(lambda: not any(ip in p for p in svcproxy.read_status().get("problems", [])), 30,
             what="the problem of %s to go" % ip)


def test_status_lists_the_relays(installed):
    data = json.loads(installed.run("status", "--json").stdout)
    sp = data["svcproxy"]
    assert sp["pid"] == svcproxy.pid() and os.path.isfile(sp["log"])
    assert {r["cluster"] for r in sp["relays"]} == set(installed.clusters)


def test_a_relay_whose_pid_file_is_gone_is_still_found(installed):
    """`down` stops the relay by svcproxy.pid(): without its pid file it is found by its command line."""
    running = svcproxy.pid()
    assert running
    with open(svcproxy.pid_file()) as f:
        saved = f.read()
    os.unlink(svcproxy.pid_file())
    try:
        assert svcproxy.pid() == running
    finally:
        with open(svcproxy.pid_file(), "w") as f:
            f.write(saved)
