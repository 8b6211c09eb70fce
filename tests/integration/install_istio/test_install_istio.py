# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/install_istio.yml against the sandbox clusters (2 clusters, 2 networks).

Order matters and is the file's order: install, inspect, re-run, check mode,
the sandbox's real istiod, bad inventories, uninstall and re-install.
"""

from __future__ import annotations

import base64
import json
import os
import sys

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from playbook_runner import InventoryCopy, changed_tasks, failure_messages
from playbook_runner import playbook as run_playbook
from sandbox_helpers import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

pytestmark = pytest.mark.sandbox
INVENTORY = os.path.join(REPO_ROOT, "inventories", "sandbox", "hosts.yml")
CA_DIR = os.path.join(REPO_ROOT, ".sandbox", "ca")
CLUSTERS = {"cluster1": "network1", "cluster2": "network2"}


def playbook(*args, inventory=INVENTORY):
    return run_playbook("install_istio.yml", *args, inventory=inventory)


def api(sandbox, cluster):
    return sandbox.api_client(cluster)


def read_ca(cluster, name):
    with open(os.path.join(CA_DIR, cluster, name), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def installed(sandbox):
    rc, data, raw = playbook()
    assert rc == 0, raw[-5000:]
    return data


def test_istio_crds_established(sandbox, installed):
    for cluster in CLUSTERS:
        crds = client.ApiextensionsV1Api(api(sandbox, cluster)).list_custom_resource_definition().items
        istio_crds = [c for c in crds if c.spec.group.endswith("istio.io")]
        assert len(istio_crds) >= 10, [c.metadata.name for c in istio_crds]
        for crd in istio_crds:
            assert any(c.type == "Established" and c.status == "True" for c in crd.status.conditions), crd.metadata.name


def test_istiod_and_gateways_ready(sandbox, installed):
    for cluster in CLUSTERS:
        apps = client.AppsV1Api(api(sandbox, cluster))
        for name in ("istiod", "istio-ingressgateway", "istio-eastwestgateway"):
            d = apps.read_namespaced_deployment(name, "istio-system")
            assert d.spec.replicas >= 1
            assert d.status.ready_replicas == d.spec.replicas, (cluster, name, d.status)


def test_cacerts_hold_the_intermediate_and_the_shared_root(sandbox, installed):
    roots = set()
    for cluster in CLUSTERS:
        secret = client.CoreV1Api(api(sandbox, cluster)).read_namespaced_secret("cacerts", "istio-system")
        data = dict((k, base64.b64decode(v)) for k, v in secret.data.items())
        assert sorted(data) == ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"]
        for name, content in data.items():
            assert content == read_ca(cluster, name), (cluster, name)
        roots.add(data["root-cert.pem"])
    assert len(roots) == 1
    with open(os.path.join(CA_DIR, "root-cert.pem"), "rb") as f:
        assert roots == {f.read()}


def test_network_label_and_mesh_identity(sandbox, installed):
    for cluster, network in CLUSTERS.items():
        core = client.CoreV1Api(api(sandbox, cluster))
        assert core.read_namespace("istio-system").metadata.labels["topology.istio.io/network"] == network
        values = json.loads(core.read_namespaced_config_map("values", "istio-system").data["merged-values"])
        assert values["global"]["meshID"] == "mesh1"
        assert values["global"]["network"] == network
        assert values["global"]["multiCluster"]["clusterName"] == cluster
        istiod = client.AppsV1Api(api(sandbox, cluster)).read_namespaced_deployment("istiod", "istio-system")
        env = dict((e.name, e.value) for e in istiod.spec.template.spec.containers[0].env)
        assert env["CLUSTER_ID"] == cluster
        gw = client.AppsV1Api(api(sandbox, cluster)).read_namespaced_deployment("istio-eastwestgateway",
                                                                                "istio-system")
        assert gw.spec.template.metadata.labels["topology.istio.io/network"] == network
        genv = dict((e.name, e.value) for e in gw.spec.template.spec.containers[0].env)
        assert genv["ISTIO_META_ROUTER_MODE"] == "sni-dnat"
        assert genv["ISTIO_META_REQUESTED_NETWORK_VIEW"] == network
        svc = core.read_namespaced_service("istio-eastwestgateway", "istio-system")
        assert sorted(p.port for p in svc.spec.ports) == [15012, 15017, 15021, 15443]
        info = core.read_namespaced_config_map("meshfed-cluster-info", "istio-system").data
        assert info["clusterName"] == cluster and info["network"] == network and info["gatewayAddress"]


def test_cross_network_gateway(sandbox, installed):
    for cluster in CLUSTERS:
        gw = client.CustomObjectsApi(api(sandbox, cluster)).get_namespaced_custom_object(
            "networking.istio.io", "v1", "istio-system", "gateways", "cross-network-gateway")
        (server,) = gw["spec"]["servers"]
        assert server["port"]["number"] == 15443 and server["tls"]["mode"] == "AUTO_PASSTHROUGH"
        assert server["hosts"] == ["*.local"]


def test_second_run_changes_nothing(installed):
    rc, data, raw = playbook()
    assert rc == 0, raw[-3000:]
    assert changed_tasks(data) == []
    assert all(s["changed"] == 0 for s in data["stats"].values()), data["stats"]


def test_a_cluster_turned_back_from_remote_loses_the_annotation(sandbox, installed):
    core = client.CoreV1Api(api(sandbox, "cluster2"))
    core.patch_namespace("istio-system", {"metadata": {"annotations": {
        "topology.istio.io/controlPlaneClusters": "cluster1"}}})
    rc, data, raw = playbook()
    assert rc == 0, raw[-3000:]
    changed = changed_tasks(data)
    assert len(changed) == 1 and "of a primary names no control plane cluster" in changed[0] \
        and changed[0].endswith(" on cluster2"), changed
    assert "topology.istio.io/controlPlaneClusters" not in (core.read_namespace("istio-system").metadata.annotations
                                                            or {})
    rc, data, raw = playbook()
    assert rc == 0 and changed_tasks(data) == [], raw[-3000:]


def snapshot(sandbox):
    """resourceVersion of every object the install owns, in both clusters."""
    out = {}
    for cluster in CLUSTERS:
        c = api(sandbox, cluster)
        core, apps = client.CoreV1Api(c), client.AppsV1Api(c)
        for kind, items in (
                ("ConfigMap", core.list_namespaced_config_map("istio-system").items),
                ("Secret", core.list_namespaced_secret("istio-system").items),
                ("Service", core.list_namespaced_service("istio-system").items),
                ("ServiceAccount", core.list_namespaced_service_account("istio-system").items),
                ("Deployment", apps.list_namespaced_deployment("istio-system").items),
                ("Namespace", [core.read_namespace("istio-system")]),
                ("CRD", [d for d in client.ApiextensionsV1Api(c).list_custom_resource_definition().items
                         if d.spec.group.endswith("istio.io")]),
                ("MutatingWebhookConfiguration",
                 client.AdmissionregistrationV1Api(c).list_mutating_webhook_configuration().items)):
            for o in items:
                # leader-election records: the running istiod renews them continuously
                if "control-plane.alpha.kubernetes.io/leader" in (o.metadata.annotations or {}):
                    continue
                out["%s %s %s" % (cluster, kind, o.metadata.name)] = o.metadata.resource_version
    return out


def test_check_mode_changes_no_object(sandbox, installed):
    before = snapshot(sandbox)
    rc, data, raw = playbook("--check", "--diff")
    assert rc == 0, raw[-3000:]
    after = snapshot(sandbox)
    assert before == after
    assert changed_tasks(data) == []


def test_sandbox_istiod_publishes_our_root(sandbox, installed):
    with open(os.path.join(CA_DIR, "root-cert.pem"), "rb") as f:
        root = f.read().decode()
    # istiod reads cacerts when it starts: restart the sandbox's out-of-cluster istiods
    sandbox.run("istiod", "--restart")
    for cluster in CLUSTERS:
        core = client.CoreV1Api(api(sandbox, cluster))

        def published(core=core):
            cm = core.read_namespaced_config_map("istio-ca-root-cert", "default")
            return cm.data.get("root-cert.pem") == root
        wait_for(published, timeout=90, what="%s: istio-ca-root-cert in namespace default to hold our root" % cluster)


@pytest.mark.parametrize("case, mutate, extra, expect", [
    ("missing context", lambda h: h["cluster2"].update(mesh_context="no-such-context"), [],
     "no-such-context"),
    ("duplicate cluster names", lambda h: h["cluster2"].update(mesh_cluster_name="cluster1"), [],
     "hosts cluster1, cluster2: duplicate mesh_cluster_name 'cluster1'"),
    ("istioctl version mismatch", lambda h: None, ["-e", "install_istio_version=1.30"],
     "istioctl is version 1.31-dev but istio_version 1.30 was requested"),
])
def test_bad_input_fails_before_any_change(sandbox, installed, tmp_path, case, mutate, extra, expect):
    copy = InventoryCopy(tmp_path)
    inv = copy.write(lambda group: mutate(group["hosts"]))
    fresh_ca = str(tmp_path / "ca-must-not-exist")
    try:
        before = snapshot(sandbox)
        rc, data, raw = playbook("-e", "install_istio_ca_dir=" + fresh_ca, *extra, inventory=inv)
        assert rc != 0, case
        assert any(expect in m for m in failure_messages(data)), (case, failure_messages(data), raw[-2000:])
        assert changed_tasks(data) == [], case
        assert not os.path.exists(fresh_ca), case
        assert snapshot(sandbox) == before, case
    finally:
        copy.remove()


def test_uninstall_removes_then_reinstall_works(sandbox, installed):
    rc, data, raw = playbook("-e", "install_istio_state=absent")
    assert rc == 0, raw[-3000:]
    for cluster in CLUSTERS:
        c = api(sandbox, cluster)
        apps, core = client.AppsV1Api(c), client.CoreV1Api(c)
        names = [d.metadata.name for d in apps.list_namespaced_deployment("istio-system").items]
        assert not [n for n in names if n.startswith("istio")], (cluster, names)
        for kind, read in (("cacerts", lambda: core.read_namespaced_secret("cacerts", "istio-system")),
                           ("info", lambda: core.read_namespaced_config_map("meshfed-cluster-info", "istio-system"))):
            with pytest.raises(ApiException) as e:
                read()
            assert e.value.status == 404, (cluster, kind)
    rc, data, raw = playbook("-e", "install_istio_state=absent")
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data)
    # In a real cluster istiod goes with the uninstall; the sandbox runs it outside the
    # cluster, so stop it too. A surviving istiod keeps what it decided while the CRDs were
    # gone (its validation webhook "ready", so fail-closed) and applies it to the webhook of
    # the next install, which points at the in-cluster Service the API server cannot reach.
    sandbox.run("istiod", "--stop")
    rc, data, raw = playbook()
    assert rc == 0, raw[-3000:]
    sandbox.run("istiod")
    test_istiod_and_gateways_ready(sandbox, installed)
    test_cacerts_hold_the_intermediate_and_the_shared_root(sandbox, installed)


def adhoc(module, args, *extra):
    """Run one module on localhost (ansible ad-hoc, json output); (rc, result)."""
    import subprocess  # pylint: disable=import-outside-toplevel
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-m", module,
                          "-a", json.dumps(args)] + list(extra), cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, check=False)
    data = json.loads(res.stdout[res.stdout.index("{"):])
    return res.returncode, data["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_canary_revision_beside_the_default_then_removed(sandbox, installed):
    """Upgrade by revision: a second control plane beside the first, then the old one's removal path."""
    base = {"istioctl": os.path.join(REPO_ROOT, ".sandbox", "bin", "istioctl"), "istio_version": "1.31",
            "kubeconfig": sandbox.kubeconfig, "context": "cluster1", "mesh_id": "mesh1",
            "cluster_name": "cluster1", "network": "network1", "revision": "canary",
            "components": {"ingress_gateway": False}}
    apps = client.AppsV1Api(api(sandbox, "cluster1"))
    rc, r = adhoc("meshfed.istio.istioctl_install", base)
    assert rc == 0 and r["changed"] and r["revision"] == "canary", r
    names = [d.metadata.name for d in apps.list_namespaced_deployment("istio-system").items]
    assert "istiod-canary" in names and "istiod" in names, names
    rc, r = adhoc("meshfed.istio.istioctl_install", base)
    assert rc == 0 and not r["changed"], r.get("objects")
    rc, r = adhoc("meshfed.istio.istioctl_install", dict(base, state="absent"))
    assert rc == 0 and r["changed"], r
    names = [d.metadata.name for d in apps.list_namespaced_deployment("istio-system").items]
    assert "istiod-canary" not in names and "istiod" in names, names
    rc, r = adhoc("meshfed.istio.istioctl_install", dict(base, state="absent"))
    assert rc == 0 and not r["changed"], r
