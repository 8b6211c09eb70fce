# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pods/portforward to the simulated Pods: kwok serves it (its kubelet server), as its PortForward
and ClusterPortForward resources say, and `sandbox istiod` points istio-system's Pods at the
out-of-cluster istiod of their cluster (ClusterPortForward meshfed-sandbox-istiod).

The forwarding is tested with stand-in HTTP servers on ephemeral loopback ports in place of an
istiod's ports (the Istiod object's ``ports``), through the real `kubectl port-forward`; with the
real istiods only when they already run in this sandbox."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from sandbox_helpers import stand_in_server, unique, wait_for
from tools.sandbox import cluster, common, istiod

pytestmark = pytest.mark.sandbox


def test_port_forward_object_maps_pod_ports_to_the_clusters_ports():
    obj = istiod.port_forward_object(istiod.ports_for(2))
    assert obj["kind"] == "ClusterPortForward" and obj["metadata"]["name"] == istiod.PORT_FORWARD
    assert obj["spec"]["selector"] == {"matchNamespaces": ["istio-system"]}
    got = {f["ports"][0]: (f["target"]["address"], f["target"]["port"]) for f in obj["spec"]["forwards"]}
    o = istiod.port_offset()  # MESHFED_SANDBOX_ISTIOD_PORT_OFFSET, 0 unless a second sandbox runs here
    assert got == {15010: ("127.0.0.1", 15110 + o), 15012: ("127.0.0.1", 15112 + o), 15014: ("127.0.0.1", 15114 + o),
                   15017: ("127.0.0.1", 15117 + o), 8080: ("127.0.0.1", 8180 + o), 9876: ("127.0.0.1", 9976 + o)}
    assert all(len(f["ports"]) == 1 for f in obj["spec"]["forwards"])


def test_kwok_serves_port_forward_resources(sandbox):
    for name in sandbox.clusters:
        c = cluster.Cluster(name)
        assert c.port_forward_served(), name
        args = common.proc_cmdline(c.pids()["kwok-controller"])
        assert "--enable-crds=PortForward,ClusterPortForward" in args, (name, args)
        status, group = c.api().get("/apis/kwok.x-k8s.io/v1alpha1")
        assert status == 200, (name, status, group)
        assert {"portforwards", "clusterportforwards"} <= {r["name"] for r in group["resources"]}, group


def _kubectl(cluster_name, *args):
    return [common.binary("kubectl"), "--kubeconfig", common.kubeconfig_path(), "--context", cluster_name,
            "--cache-dir", os.path.join(common.sandbox_dir(), "kube-cache")] + list(args)


class _KubectlForward(object):
    """`kubectl port-forward -n <ns> pod/<pod> 0:<port> ...`: the local port of each Pod port."""

    def __init__(self, cluster_name, namespace, pod, ports):
        self.proc = subprocess.Popen(_kubectl(cluster_name, "port-forward", "-n", namespace, "pod/" + pod,
                                              "--address", "127.0.0.1") + ["0:%d" % p for p in ports],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.local = {}
        self.output = []
        while len(self.local) < len(ports):
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("kubectl port-forward ended: %s" % "".join(self.output))
            self.output.append(line)
            m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
            if m:
                self.local[int(m.group(2))] = int(m.group(1))

    def get(self, port, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.local[port], path), timeout=10) as r:
            return r.status, r.read().decode()

    def close(self):
        self.proc.terminate()
        try:
            out, _err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _err = self.proc.communicate()
        self.output.append(out or "")
        return "".join(self.output)


def _pod(namespace, name):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "istiod", "istio.io/rev": "default"}},
            "spec": {"containers": [{"name": "discovery", "image": "example.invalid/pilot:1"}]}}


def _ready(api, namespace, name):
    status, p = api.get("/api/v1/namespaces/%s/pods/%s" % (namespace, name))
    return status == 200 and any(c.get("type") == "Ready" and c.get("status") == "True"
                                 for c in (p.get("status") or {}).get("conditions") or [])


def _through(cluster_name, namespace, pod, ports, path, timeout=20):
    """{pod port: (status, body)} of a GET through kubectl port-forward; retried while kwok has not
    seen the (Cluster)PortForward yet (its watch), or still sees the old one."""
    def attempt():
        fwd = _KubectlForward(cluster_name, namespace, pod, ports)
        try:
            return {p: fwd.get(p, path) for p in ports}
        except (urllib.error.URLError, OSError):
            return None
        finally:
            fwd.close()
    return wait_for(attempt, timeout=timeout, what="a GET through kubectl port-forward to %s/%s" % (namespace, pod))


def _refused(cluster_name, namespace, pod, port):
    """What kubectl port-forward says (quotes unescaped) when the Pod's side refuses port ``port``."""
    fwd = _KubectlForward(cluster_name, namespace, pod, [port])
    try:
        with pytest.raises((urllib.error.URLError, OSError)):
            fwd.get(port, "/")
        time.sleep(0.5)
    finally:
        out = fwd.close()
    return out.replace('\\"', '"')


@pytest.fixture
def istio_system_pods(sandbox):
    """A Pod in istio-system and one in another namespace of the last cluster (labelled like istiod)."""
    name = sandbox.clusters[-1]
    api = cluster.Cluster(name).api()
    istiod.ensure_namespace(api)
    other = unique("pf-other")
    status, payload = api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                                 "metadata": {"name": other}})
    assert status == 201, payload
    pod = unique("istiod-pftest")
    for ns in ("istio-system", other):
        status, payload = api.request("POST", "/api/v1/namespaces/%s/pods" % ns, _pod(ns, pod))
        assert status == 201, payload
    wait_for(lambda: _ready(api, "istio-system", pod) and _ready(api, other, pod), timeout=60,
             what="the simulated Pods to become Ready")
    yield name, pod, other
    api.request("DELETE", "/api/v1/namespaces/istio-system/pods/%s?gracePeriodSeconds=0" % pod)
    api.request("DELETE", "/api/v1/namespaces/%s" % other)


def test_istio_system_pods_forward_to_their_clusters_istiod_ports(istio_system_pods):
    """ensure_port_forward with stand-ins for this cluster's istiod ports: each istiod Pod port reaches
    its own target, Pods outside istio-system are not forwarded, drop_port_forward ends it."""
    name, pod, other = istio_system_pods
    real = istiod.Istiod(name)
    try:
        with stand_in_server("monitoring") as monitoring, stand_in_server("http") as http_port:
            stand_in = istiod.Istiod(name)
            # every port at a stand-in (none at the fixed istiod ports, which another checkout's istiod may hold)
            stand_in.ports = dict({k: monitoring.server_address[1] for k in stand_in.ports},
                                  http=http_port.server_address[1])
            assert stand_in.ensure_port_forward() is True
            assert stand_in.ensure_port_forward() is False  # unchanged
            got = _through(name, "istio-system", pod, [15014, 8080], "/debug/clusterz")
            assert got == {15014: (200, "%s /debug/clusterz" % monitoring.token),
                           8080: (200, "%s /debug/clusterz" % http_port.token)}
            # selected by namespace: the same Pod name elsewhere has no forward
            out = _refused(name, other, pod, 15014)
            assert 'no forward found for port 15014 in pod "%s/%s"' % (other, pod) in out, out
            stand_in.drop_port_forward()
            status, _payload = cluster.Cluster(name).api().get("%s/%s" % (istiod.PORT_FORWARD_API, istiod.PORT_FORWARD))
            assert status == 404

            def dropped():
                said = _refused(name, "istio-system", pod, 15014)
                return said if "no forward found for port 15014" in said else None
            out = wait_for(dropped, timeout=20, what="kwok to drop the forward")
            assert 'in pod "istio-system/%s"' % pod in out
    finally:
        # leave what `sandbox istiod` would: the forward to a running istiod, none without
        if real.pid():
            real.ensure_port_forward()


def test_real_istiod_through_an_istiod_pod(sandbox, istio_system_pods):
    """Only where this sandbox's istiods already run (this test does not start them): a port-forward
    to an istio-system Pod of the cluster reaches that cluster's istiod (its /debug/clusterz names it)."""
    name, pod, _other = istio_system_pods
    real = istiod.Istiod(name)
    if not real.pid():
        pytest.skip("no istiod runs in this sandbox for %s (`python3 -m tools.sandbox istiod`)" % name)
    real.ensure_port_forward()
    got = _through(name, "istio-system", pod, [15014], "/debug/clusterz")
    status, body = got[15014]
    assert status == 200
    assert name in [c.get("id") for c in json.loads(body)], body
