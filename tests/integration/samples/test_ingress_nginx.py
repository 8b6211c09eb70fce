# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role deploy_samples' ingress parts against the running sandbox: bookinfo's URL (tasks_from ingress_url) of
cluster1's real istio-ingressgateway (a LoadBalancer with the sandbox LB's address) and of a gateway without a
LoadBalancer address (a NodePort Service of this test's namespace ing-test); then the nginx load balancer
(tasks_from nginx) on the sandbox VM host vm1: nginx from Debian, its conf checked by ``nginx -t``, the upstream
servers read back from the VM equal to the nodes' InternalIPs with the NodePort, check mode changing nothing, a
re-run changing nothing, absent removing the conf file.

The sandbox must be running (clusters, istiods, vm1); this test does not start it: it is shared with other work.
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from playbook_runner import REPO_ROOT, changed_tasks, failure_messages, playbook
from sandbox_helpers import wait_for

from tools.sandbox import vm as sandbox_vm

pytestmark = pytest.mark.sandbox
HERE = os.path.dirname(os.path.abspath(__file__))
# an absolute path: playbook() joins it to playbooks/, which keeps an absolute one as it is
PLAYBOOK = os.path.join(HERE, "ingress_nginx.yml")
KUBECONFIG = os.path.join(REPO_ROOT, ".sandbox", "kubeconfig")
CLUSTER, VM = "cluster1", "vm1"
NS, SVC = "ing-test", "ing-gateway"  # this test's own namespace and NodePort "gateway"
HOST = "bookinfo.example.com"
CONF = "/etc/nginx/conf.d/meshfed-ingress.conf"
# the load balancer listens on a port of its own (vm1 shares the machine's network)
LISTEN_PORT = 18480
NGINX = ["-e", "ingress_url_hosts=!all", "-e", "deploy_samples_nginx_host=" + VM,
         "-e", "deploy_samples_ingress_namespace=" + NS, "-e", "deploy_samples_ingress_service=" + SVC,
         "-e", "deploy_samples_nginx_listen=127.0.0.1:%d" % LISTEN_PORT]


# --- helpers ---------------------------------------------------------------------------------------


def run(*args):
    started = time.monotonic()
    rc, data, raw = playbook(PLAYBOOK, *args)
    print("ingress_nginx.yml %s: rc %d, %.1f s" % (" ".join(args), rc, time.monotonic() - started))
    return rc, data, raw


def results(data, task, host):
    """The results of the tasks whose name ends with ``task`` on ``host``."""
    return [t["hosts"][host] for p in data.get("plays", []) for t in p["tasks"]
            if t["task"]["name"].split(" : ", 1)[-1] == task and host in t["hosts"]]


def endpoints_fact(data, host):
    (res,) = results(data, "Derive where bookinfo is reached (pure; meshfed.istio.mesh_ingress_endpoints)", host)
    return res["ansible_facts"]["deploy_samples_ingress_endpoints"]


def changed_on(data, host):
    return sorted(n.split(" : ", 1)[-1].rsplit(" on ", 1)[0] for n in changed_tasks(data) if n.endswith(" on " + host))


def ssh(command, check=True):
    res = sandbox_vm.Vm(VM).ssh(command)
    if check:
        assert res.returncode == 0, "ssh %s: %s %s" % (command, res.stdout, res.stderr)
    return res


def conf_on_vm():
    res = ssh("cat " + CONF, check=False)
    return res.stdout if res.returncode == 0 else None


def upstream_servers(conf):
    block = re.search(r"upstream meshfed_ingress \{(.*?)\}", conf, re.S).group(1)
    return re.findall(r"^\s*server\s+(\S+);", block, re.M)


def through_nginx():
    """HTTP status of bookinfo's product page through the load balancer on vm1 (0: nothing listens)."""
    req = urllib.request.Request("http://127.0.0.1:%d/productpage" % LISTEN_PORT, headers={"Host": HOST})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError):
        return 0


def ready_internal_ips(core):
    out = []
    for node in core.list_node().items:
        if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
            out.extend(a.address for a in node.status.addresses if a.type == "InternalIP")
    return sorted(set(out))


def http2(svc):
    (port,) = [p for p in svc.spec.ports if p.name == "http2"]
    return port


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def core():
    assert os.path.exists(KUBECONFIG), "the sandbox is not running (no %s): make sandbox-up" % KUBECONFIG
    return client.CoreV1Api(config.new_client_from_config(config_file=KUBECONFIG, context=CLUSTER))


@pytest.fixture(scope="module")
def nodeport_gateway(core):
    """A Service of type NodePort with the gateway's port name, in this test's namespace: a gateway without a
    LoadBalancer address.  The namespace goes at the end."""
    def gone():
        try:
            core.read_namespace(NS)
            return False
        except ApiException as e:
            return e.status == 404

    try:
        if core.read_namespace(NS).metadata.deletion_timestamp:
            wait_for(gone, timeout=90, what="namespace %s of an earlier run to go" % NS)
    except ApiException as e:
        assert e.status == 404, e
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    except ApiException as e:
        assert e.status == 409, e
    try:
        core.delete_namespaced_service(SVC, NS)
    except ApiException as e:
        assert e.status == 404, e
    core.create_namespaced_service(NS, client.V1Service(
        metadata=client.V1ObjectMeta(name=SVC),
        spec=client.V1ServiceSpec(type="NodePort", selector={"app": SVC},
                                  ports=[client.V1ServicePort(name="http2", port=80, target_port=8080)])))
    yield core.read_namespaced_service(SVC, NS)
    core.delete_namespace(NS)


# --- the URL -------------------------------------------------------------------------------------


def test_url_of_each_cluster_is_its_loadbalancer_address(core):
    rc, data, raw = run("-e", "ingress_url_hosts=mesh_clusters")
    assert rc == 0, raw[-4000:]
    assert changed_tasks(data) == []
    gw = core.read_namespaced_service("istio-ingressgateway", "istio-system")
    (lb,) = gw.status.load_balancer.ingress
    assert gw.spec.type == "LoadBalancer" and lb.ip.startswith("127.0.1.")
    url = "http://%s:%d/productpage" % (lb.ip, http2(gw).port)
    e = endpoints_fact(data, CLUSTER)
    assert e["kind"] == "loadbalancer" and e["addresses"] == [lb.ip] and e["port"] == 80 and e["urls"] == [url]
    assert e["cluster"] == CLUSTER and e["host"] == HOST and e["node_port"] == http2(gw).node_port
    curl = "curl -H 'Host: %s' %s" % (HOST, url)
    assert e["curl"] == [curl]
    (shown,) = results(data, "How to reach bookinfo from outside the cluster", CLUSTER)
    assert shown["msg"][-1] == curl
    # cluster2 reports its own gateway
    e2 = endpoints_fact(data, "cluster2")
    assert e2["cluster"] == "cluster2" and e2["kind"] == "loadbalancer" and e2["addresses"][0].startswith("127.0.2.")
    print("cluster1: %s; cluster2: %s" % (curl, e2["curl"][0]))


def test_url_of_a_gateway_without_loadbalancer_address_is_every_node_with_the_nodeport(core, nodeport_gateway):
    rc, data, raw = run("-e", "ingress_url_hosts=" + CLUSTER, "-e", "deploy_samples_ingress_namespace=" + NS,
                        "-e", "deploy_samples_ingress_service=" + SVC, "-e", "deploy_samples_ingress_host=shop.example.org")
    assert rc == 0, raw[-4000:]
    node_port = http2(nodeport_gateway).node_port
    ips = ready_internal_ips(core)
    assert ips and node_port
    e = endpoints_fact(data, CLUSTER)
    assert e["kind"] == "nodeport" and e["addresses"] == ips and e["port"] == node_port
    assert e["urls"] == ["http://%s:%d/productpage" % (ip, node_port) for ip in ips]
    assert e["upstreams"] == ["%s:%d" % (ip, node_port) for ip in ips]
    assert e["curl"][0] == "curl -H 'Host: shop.example.org' http://%s:%d/productpage" % (ips[0], node_port)
    print("NodePort gateway: %s" % e["curl"])


@pytest.mark.parametrize("extra, message", [
    (["-e", "deploy_samples_ingress_port_name=web"],
     "mesh_ingress_endpoints: Service ing-test/ing-gateway has no port named 'web' (spec.ports: http2)"),
    (["-e", "deploy_samples_ingress_service=no-such-gateway"],
     "cluster1: there is no Service ing-test/no-such-gateway (deploy_samples_ingress_namespace, "
     "deploy_samples_ingress_service)"),
    (["-e", "deploy_samples_ingress_cluster=vm1"],
     "cluster1: deploy_samples_ingress_cluster \"vm1\" is not a host of the inventory group mesh_clusters "
     "(cluster1, cluster2)"),
], ids=["port-name", "no-service", "not-a-cluster"])
def test_refusals_name_the_service_and_the_variable(nodeport_gateway, extra, message):
    rc, data, raw = run("-e", "ingress_url_hosts=" + CLUSTER, "-e", "deploy_samples_ingress_namespace=" + NS,
                        "-e", "deploy_samples_ingress_service=" + SVC, *extra)
    assert rc != 0
    msgs = failure_messages(data)
    assert any(message in m for m in msgs), msgs


# --- the nginx load balancer on vm1 ------------------------------------------------------------------


def test_nginx_on_vm1_check_apply_check_apply_then_absent(core, nodeport_gateway):
    expected = ["%s:%d" % (ip, http2(nodeport_gateway).node_port) for ip in ready_internal_ips(core)]

    # a clean start: no conf file of ours (nginx may be there from an earlier run; absent leaves the package)
    rc, data, raw = run(*NGINX, "-e", "deploy_samples_state=absent")
    assert rc == 0, raw[-4000:]
    assert conf_on_vm() is None

    rc, data, raw = run(*NGINX, "--check", "--diff")
    assert rc == 0, raw[-4000:]
    assert changed_on(data, VM), "check mode must say the conf file comes"
    assert conf_on_vm() is None, "check mode wrote the conf file"

    rc, data, raw = run(*NGINX, "--diff")
    assert rc == 0, raw[-4000:]
    changed = changed_on(data, VM)
    assert "Write the load balancer's conf file (checked with nginx -t first)" in changed and "Reload nginx" in changed
    # nginx from Debian's packages, enabled and running, its whole config valid
    assert ssh("dpkg-query -W -f '${Status}' nginx").stdout == "install ok installed"
    assert "deb.debian.org" in ssh("apt-cache policy nginx").stdout
    assert ssh("systemctl is-enabled nginx").stdout.strip() == "enabled"
    assert ssh("systemctl is-active nginx").stdout.strip() == "active"
    assert "test is successful" in ssh("nginx -t").stderr
    # the upstream servers are the nodes' InternalIPs with the gateway's NodePort
    conf = conf_on_vm()
    assert upstream_servers(conf) == expected, conf
    assert re.search(r"^\s*listen 127\.0\.0\.1:%d;$" % LISTEN_PORT, conf, re.M) and "server_name %s;" % HOST in conf
    # the running nginx serves it: the product page goes to the upstreams (which nothing serves in kwok: a 502)
    assert wait_for(lambda: through_nginx() in (502, 504), timeout=20, what="nginx on vm1 to proxy to the nodes")
    print("vm1 upstreams: %s" % expected)

    # a re-run, in check mode and for real, changes nothing (and reloads nothing)
    for args in (("--check", "--diff"), ()):
        rc, data, raw = run(*NGINX, *args)
        assert rc == 0, raw[-4000:]
        assert changed_on(data, VM) == [], (args, changed_on(data, VM))

    # check mode with another gateway (cluster1's istio-ingressgateway, another NodePort) says so, writes nothing
    rc, data, raw = run(*(NGINX[:4] + ["-e", "deploy_samples_nginx_listen=127.0.0.1:%d" % LISTEN_PORT]), "--check", "--diff")
    assert rc == 0, raw[-4000:]
    assert "Write the load balancer's conf file (checked with nginx -t first)" in changed_on(data, VM)
    assert conf_on_vm() == conf

    # absent: check mode leaves the file; then the file goes, nginx reloaded, the package stays
    rc, data, raw = run(*NGINX, "-e", "deploy_samples_state=absent", "--check")
    assert rc == 0, raw[-4000:]
    assert changed_on(data, VM) and conf_on_vm() == conf
    rc, data, raw = run(*NGINX, "-e", "deploy_samples_state=absent")
    assert rc == 0, raw[-4000:]
    assert sorted(changed_on(data, VM)) == ["Reload nginx", "Remove the load balancer's conf file (the nginx package stays)"]
    assert conf_on_vm() is None
    assert ssh("dpkg-query -W -f '${Status}' nginx").stdout == "install ok installed"
    assert "test is successful" in ssh("nginx -t").stderr
    assert wait_for(lambda: through_nginx() == 0, timeout=20, what="nginx on vm1 to stop listening on %d" % LISTEN_PORT)
    rc, data, raw = run(*NGINX, "-e", "deploy_samples_state=absent")
    assert rc == 0 and changed_on(data, VM) == [], raw[-4000:]
