# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's LoadBalancer controller: Services of type LoadBalancer get an address, as in a real cluster."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from sandbox_helpers import unique, wait_for
from tools.sandbox import common, lb

pytestmark = pytest.mark.sandbox

# how long a new LoadBalancer Service may wait for its address
ADDRESS_SECONDS = 5.0


class Services:
    """Creates Services in fresh namespaces and reads their LoadBalancer status; deletes them afterwards."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.namespaces = {}  # cluster -> namespace of this test
        self.created = []  # (cluster, namespace, name) of the Services
        self.owned = []  # (cluster, namespace) of the namespaces it created

    def core(self, cluster: str) -> client.CoreV1Api:
        return client.CoreV1Api(self.sandbox.api_client(cluster))

    def namespace(self, cluster: str) -> str:
        if cluster not in self.namespaces:
            name = unique("sbtest-lb")
            self.core(cluster).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
                name=name, labels={"app.kubernetes.io/part-of": "meshfed-sandbox-tests"})))
            self.namespaces[cluster] = name
            self.owned.append((cluster, name))
        return self.namespaces[cluster]

    def create(self, cluster: str, name: str, svc_type: str = "LoadBalancer", namespace: str = "", labels=None,
               ports=None, **spec) -> float:
        """Create the Service; return the time it was created (time.monotonic())."""
        ns = namespace or self.namespace(cluster)
        ports = ports or [client.V1ServicePort(name="http", port=80, target_port=8080)]
        self.core(cluster).create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1ServiceSpec(type=svc_type, selector={"app": name}, ports=ports, **spec)))
        self.created.append((cluster, ns, name))
        return time.monotonic()

    def read(self, cluster: str, name: str, namespace: str = "") -> client.V1Service:
        return self.core(cluster).read_namespaced_service(name, namespace or self.namespace(cluster))

    def ingress(self, cluster: str, name: str, namespace: str = "") -> list:
        status = self.read(cluster, name, namespace).status
        return (status.load_balancer.ingress if status and status.load_balancer else None) or []

    def address(self, cluster: str, name: str, namespace: str = "", since: float = 0.0) -> str:
        """Wait for the Service's LoadBalancer address; check its form and, with `since`, how soon it came."""
        ingress = wait_for(lambda: self.ingress(cluster, name, namespace), timeout=30, interval=0.1,
                           what="%s: an address in the status of Service %s" % (cluster, name))
        took = time.monotonic() - since
        assert len(ingress) == 1, ingress
        assert ingress[0].ip_mode == "VIP" and not ingress[0].hostname, ingress
        if since:
            print("\n%s: Service %s got %s after %.2fs" % (cluster, name, ingress[0].ip, took))
            assert took < ADDRESS_SECONDS, "the address came after %.1fs" % took
        return ingress[0].ip

    def delete(self, cluster: str, name: str, namespace: str = "") -> None:
        self.core(cluster).delete_namespaced_service(name, namespace or self.namespace(cluster))

    def cleanup(self) -> None:
        for cluster, ns, name in self.created:
            try:
                self.core(cluster).delete_namespaced_service(name, ns)
            except ApiException as e:
                if e.status != 404:
                    raise
        for cluster, ns in self.owned:
            self.core(cluster).delete_namespace(ns)


@pytest.fixture
def services(sandbox):
    made = Services(sandbox)
    yield made
    made.cleanup()


def _in_pool(ip: str, cluster: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(common.lb_pool(common.cluster_index(cluster)))


def _reported(cluster: str) -> dict:
    """What the controller reports for a cluster: {"namespace/name": address} (lb-controller.json)."""
    return ((lb.read_report().get("clusters") or {}).get(cluster) or {}).get("addresses") or {}


def test_a_load_balancer_service_gets_a_cluster1_address_within_seconds(services):
    since = services.create("cluster1", "web")
    ip = services.address("cluster1", "web", since=since)
    assert _in_pool(ip, "cluster1") and ip.startswith("127.0.1."), ip
    assert _reported("cluster1")["%s/web" % services.namespace("cluster1")] == ip


def test_a_second_service_gets_a_different_address(services):
    first = services.address("cluster1", "one", since=services.create("cluster1", "one"))
    second = services.address("cluster1", "two", since=services.create("cluster1", "two"))
    assert first != second
    assert _in_pool(first, "cluster1") and _in_pool(second, "cluster1")
    assert services.address("cluster1", "one") == first  # unchanged by the second one


def test_a_cluster_ip_service_gets_no_address(services):
    services.create("cluster1", "plain", svc_type="ClusterIP")
    services.create("cluster1", "node-port", svc_type="NodePort")
    # the controller handles the watch events in order: once the later LoadBalancer has its
    # address, it has seen the two Services before it
    services.address("cluster1", "marker", since=services.create("cluster1", "marker"))
    for name in ("plain", "node-port"):
        assert services.ingress("cluster1", name) == [], name
        assert "%s/%s" % (services.namespace("cluster1"), name) not in _reported("cluster1")


def test_deleting_frees_the_address_and_recreating_reuses_it(services):
    ns = services.namespace("cluster1")
    first = services.address("cluster1", "again", since=services.create("cluster1", "again"))
    other = services.address("cluster1", "stays", since=services.create("cluster1", "stays"))
    services.delete("cluster1", "again")
    wait_for(lambda: first not in _reported("cluster1").values(), timeout=10, interval=0.1,
             what="the controller to free %s" % first)
    assert _reported("cluster1")["%s/stays" % ns] == other
    # the lowest free address again
    assert services.address("cluster1", "again", since=services.create("cluster1", "again")) == first
    assert services.address("cluster1", "stays") == other


def test_a_service_that_stops_being_a_load_balancer_frees_its_address(services):
    ns = services.namespace("cluster1")
    ip = services.address("cluster1", "was-lb", since=services.create("cluster1", "was-lb"))
    services.core("cluster1").patch_namespaced_service("was-lb", ns, {"spec": {"type": "ClusterIP"}})
    wait_for(lambda: services.ingress("cluster1", "was-lb") == [], timeout=10, interval=0.1,
             what="the status of was-lb to be emptied")
    assert services.address("cluster1", "next", since=services.create("cluster1", "next")) == ip


def test_load_balancer_ip_and_class_are_respected(services):
    wanted = "127.0.1.200"
    assert services.address("cluster1", "fixed", since=services.create(
        "cluster1", "fixed", load_balancer_ip=wanted)) == wanted
    services.create("cluster1", "other-class", load_balancer_class="example.com/other-lb")
    ours = services.address("cluster1", "our-class", since=services.create(
        "cluster1", "our-class", load_balancer_class=lb.LB_CLASS))
    assert _in_pool(ours, "cluster1") and ours != wanted
    assert services.ingress("cluster1", "other-class") == []  # seen before our-class, left alone


def test_cluster2_addresses_come_from_its_own_pool(services):
    two = services.address("cluster2", "web", since=services.create("cluster2", "web"))
    one = services.address("cluster1", "web", since=services.create("cluster1", "web"))
    assert two.startswith("127.0.2.") and _in_pool(two, "cluster2"), two
    assert one.startswith("127.0.1.") and _in_pool(one, "cluster1"), one


def test_addresses_stay_when_the_controller_is_killed_and_up_restarts_it(sandbox, services):
    for cluster, name in (("cluster1", "a"), ("cluster1", "b"), ("cluster2", "a")):
        services.create(cluster, name)
    before = {(c, n): (services.address(c, n), services.read(c, n).metadata.resource_version)
              for c, n in (("cluster1", "a"), ("cluster1", "b"), ("cluster2", "a"))}
    old = lb.running_pid()
    assert old
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not common.pid_alive(old), timeout=10, what="the controller to die")
    t0 = time.monotonic()
    res = sandbox.run("up", "--clusters", str(len(sandbox.clusters)))
    print("\n`up` restarted the LoadBalancer controller in %.1fs" % (time.monotonic() - t0))
    assert "LoadBalancer controller (pid %d) is gone; starting it again" % old in res.stdout
    assert "SANDBOX_CHANGED=true" in res.stdout.splitlines()
    new = lb.running_pid()
    assert new and new != old
    # `up` returned once the new controller had listed every cluster and set what needed setting:
    # the same addresses, and not even rewritten (same resourceVersions)
    after = {(c, n): (services.address(c, n), services.read(c, n).metadata.resource_version) for c, n in before}
    assert after == before
    held = {ip for ip, dummy in before.values()}
    fresh = services.address("cluster1", "c", since=services.create("cluster1", "c"))
    assert fresh not in held and _in_pool(fresh, "cluster1")
    assert "SANDBOX_CHANGED=false" in sandbox.run("up", "--clusters", str(len(sandbox.clusters))).stdout.splitlines()
    assert lb.running_pid() == new


def test_the_east_west_gateway_service_gets_an_address(services):
    """What `istioctl install` creates for a multi-network cluster (without istiod here: only the Service)."""
    core = services.core("cluster1")
    try:
        core.read_namespaced_service("istio-eastwestgateway", "istio-system")
        pytest.skip("cluster1 already has istio-system/istio-eastwestgateway")
    except ApiException as e:
        if e.status != 404:
            raise
    try:
        core.read_namespace("istio-system")
    except ApiException as e:
        if e.status != 404:
            raise
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="istio-system")))
        services.owned.append(("cluster1", "istio-system"))  # deleted afterwards
    ports = [client.V1ServicePort(name=n, port=p, target_port=p)
             for n, p in (("status-port", 15021), ("tls", 15443), ("tls-istiod", 15012), ("tls-webhook", 15017))]
    since = services.create("cluster1", "istio-eastwestgateway", namespace="istio-system", ports=ports,
                            labels={"istio": "eastwestgateway", "topology.istio.io/network": "network1"})
    ip = services.address("cluster1", "istio-eastwestgateway", namespace="istio-system", since=since)
    assert _in_pool(ip, "cluster1")
    assert _reported("cluster1")["istio-system/istio-eastwestgateway"] == ip


def test_status_and_state_describe_the_controller(sandbox, services):
    ip = services.address("cluster1", "shown", since=services.create("cluster1", "shown"))
    key = "%s/shown" % services.namespace("cluster1")
    pid = lb.running_pid()
    text = sandbox.run("status").stdout
    assert "lb-controller: running pid %d  log %s" % (pid, lb.log_path()) in text
    assert "watching, pool 127.0.1.0/24" in text and "watching, pool 127.0.2.0/24" in text
    assert any(line.split() == [key, ip] for line in text.splitlines()), text
    data = json.loads(sandbox.run("status", "--json").stdout)
    assert data["lb_controller"]["pid"] == pid
    assert data["lb_controller"]["clusters"]["cluster1"]["addresses"][key] == ip
    assert {"pid": pid, "name": common.LB_PROCESS} in [{k: p[k] for k in ("pid", "name")} for p in data["processes"]]
    st = common.load_state()
    assert st["lb_controller"]["pid"] == pid and st["lb_controller"]["log"] == lb.log_path()
    assert st["lb_controller"]["pools"] == {c: "127.0.%d.0/24" % common.cluster_index(c) for c in sandbox.clusters}
    with open(lb.log_path()) as f:
        assert "cluster1: %s: %s" % (key, ip) in f.read()
