# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""meshfed.istio.traffic_policy against the sandbox's real API servers (Istio's CRDs, the
validation of istiod's webhook), run by ansible-playbook as a user runs it.

In namespaces of its own (tp-test on cluster1; tp-hello on both clusters), with Pods labelled
version v1/v2/v3 that kwok schedules and runs: every stage of bookinfo's reviews rollout holds
the expected subsets, weights and matches, passes ``istioctl validate``, is unchanged on a
re-run, and moving to the next stage changes the VirtualService only; check mode writes
nothing; bad input is refused before any write, naming the field; another owner's objects are
untouched; state absent removes both objects; helloworld's stages go to both primaries.

Uses the running sandbox (``make sandbox-up``; ``kubeconfig`` and contexts cluster1, cluster2)
and never starts, restarts or stops it.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import traffic

pytestmark = pytest.mark.sandbox
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
KUBECONFIG = os.path.join(REPO_ROOT, ".sandbox", "kubeconfig")
ISTIOCTL = os.path.join(REPO_ROOT, ".sandbox", "bin", "istioctl")
NS, HELLO_NS = "tp-test", "tp-hello"
HOST = "reviews.%s.svc.cluster.local" % NS
GROUP, VERSION = "networking.istio.io", "v1"
PLURALS = {"DestinationRule": "destinationrules", "VirtualService": "virtualservices"}
OWNER_LABEL = "meshfed.istio/owner"


# --- running the module -----------------------------------------------------------------------

def run_tasks(tmp_path, tasks):
    """Run ``tasks`` (each a task dict) on localhost with ansible-playbook; the results of localhost,
    one per task (the json callback's), in order."""
    play = [{"name": "traffic_policy test", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable}, "tasks": tasks}]
    path = tmp_path / ("play-%d.yml" % time.monotonic_ns())
    path.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                          str(path)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    try:
        data = json.loads(res.stdout[res.stdout.index("{"):])
    except ValueError:
        pytest.fail("ansible-playbook gave no JSON (exit %d): %s %s" % (res.returncode, res.stdout, res.stderr))
    return [t["hosts"]["localhost"] for t in data["plays"][0]["tasks"]]


def traffic_policy(tmp_path, args, context="cluster1", check=False, diff=True, contexts=None):
    """One meshfed.istio.traffic_policy task; its result (with ``results`` when ``contexts`` loops)."""
    task = {"name": "traffic_policy", "meshfed.istio.traffic_policy": dict(args, kubeconfig=KUBECONFIG),
            "check_mode": check, "diff": diff, "ignore_errors": True}
    if contexts:
        task["meshfed.istio.traffic_policy"]["context"] = "{{ item }}"
        task["loop"] = list(contexts)
    else:
        task["meshfed.istio.traffic_policy"]["context"] = context
    return run_tasks(tmp_path, [task])[0]


# --- reading the cluster ------------------------------------------------------------------------

def api(context):
    return config.new_client_from_config(config_file=KUBECONFIG, context=context)


@pytest.fixture(scope="module")
def apis():
    """The sandbox's clusters, which must be running already."""
    if not os.path.exists(KUBECONFIG):
        pytest.fail("no sandbox kubeconfig at %s: start the sandbox first (make sandbox-up)" % KUBECONFIG,
                    pytrace=False)
    out = {}
    for context in ("cluster1", "cluster2"):
        out[context] = api(context)
        client.VersionApi(out[context]).get_code()  # reachable, or the test fails here, naming the cluster
        crds = client.ApiextensionsV1Api(out[context]).list_custom_resource_definition().items
        assert {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"} <= set(
            c.metadata.name for c in crds), "Istio's CRDs are not installed in %s" % context
    return out


def objects(api_client, namespace, kind):
    """{name: object} of one kind in namespace."""
    items = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind])["items"]
    return dict((o["metadata"]["name"], o) for o in items)


def snapshot(api_client, namespace):
    """{'Kind name': resourceVersion} of every DestinationRule and VirtualService in namespace."""
    return dict(("%s %s" % (kind, name), o["metadata"]["resourceVersion"])
                for kind in PLURALS for name, o in objects(api_client, namespace, kind).items())


def make_namespace(api_client, namespace, pods):
    """A fresh namespace with Pods {name: labels}, each Running (kwok)."""
    core = client.CoreV1Api(api_client)
    delete_namespace(api_client, namespace, wait=True)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"meshfed-test": "traffic-policy"}}})
    for name, labels in pods.items():
        core.create_namespaced_pod(namespace, {"metadata": {"name": name, "labels": labels},
                                               "spec": {"containers": [{"name": "app", "image": "busybox"}]}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phases = [p.status.phase for p in core.list_namespaced_pod(namespace).items]
        if len(phases) == len(pods) and all(ph == "Running" for ph in phases):
            return
        time.sleep(0.5)
    pytest.fail("the Pods of %s did not run within 60 s: %s" % (namespace, phases))


def delete_namespace(api_client, namespace, wait=False):
    core = client.CoreV1Api(api_client)
    try:
        core.delete_namespace(namespace)
    except ApiException as e:
        if e.status != 404:
            raise
    deadline = time.monotonic() + 120
    while wait and time.monotonic() < deadline:
        try:
            core.read_namespace(namespace)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.5)


def istioctl_validate(tmp_path, objs):
    """``istioctl validate -f`` over the objects as read back (metadata reduced to what a user writes)."""
    docs = [{"apiVersion": o["apiVersion"], "kind": o["kind"],
             "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"],
                          "labels": o["metadata"].get("labels") or {}},
             "spec": o["spec"]} for o in objs]
    path = tmp_path / ("objects-%d.yaml" % time.monotonic_ns())
    path.write_text(yaml.safe_dump_all(docs))
    res = subprocess.run([ISTIOCTL, "validate", "-f", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, "istioctl validate: %s %s" % (res.stdout, res.stderr)
    assert "is valid" in res.stdout + res.stderr
    return res


# --- what each stage must hold (written out, not computed by traffic.py) -------------------------

def dest(subset, weight=None, host=HOST):
    out = {"destination": {"host": host, "subset": subset}}
    if weight is not None:
        out["weight"] = weight
    return out


JASON = [{"headers": {"end-user": {"exact": "jason"}}}]
BOOKINFO_HTTP = {
    "all-v1": [{"route": [dest("v1")]}],
    "v2-10": [{"route": [dest("v1", 90), dest("v2", 10)]}],
    "v2-v3-50": [{"route": [dest("v2", 50), dest("v3", 50)]}],
    "all-v3": [{"route": [dest("v3")]}],
    "jason": [{"match": JASON, "route": [dest("v2")]}, {"route": [dest("v3")]}],
}
SUBSETS = [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]


def stage(name, namespace=NS):
    return traffic.stage_policy(traffic.staged("bookinfo-reviews", namespace), name)


@pytest.fixture(scope="module")
def bookinfo(apis):
    make_namespace(apis["cluster1"], NS, dict(("reviews-%s" % v, {"app": "reviews", "version": v})
                                              for v in ("v1", "v2", "v3")))
    yield apis["cluster1"]
    delete_namespace(apis["cluster1"], NS)


# --- the tests ----------------------------------------------------------------------------------

def test_every_bookinfo_stage(bookinfo, tmp_path):
    names = traffic.stage_names(traffic.SAMPLE_STAGES["bookinfo-reviews"])
    assert names == list(BOOKINFO_HTTP)
    rule_version = None
    for i, name in enumerate(names):
        args = {"policies": [stage(name)]}
        before = snapshot(bookinfo, NS)

        check = traffic_policy(tmp_path, args, check=True)
        assert not check.get("failed"), check.get("msg")
        assert check["changed"], name
        assert snapshot(bookinfo, NS) == before, "check mode wrote something at stage %s" % name

        applied = traffic_policy(tmp_path, args)
        assert not applied.get("failed"), applied.get("msg")
        assert applied["changed"]
        if i == 0:
            assert applied["created"] == ["DestinationRule %s/reviews" % NS, "VirtualService %s/reviews" % NS]
            assert check["created"] == applied["created"]
        else:
            # moving to the next stage changes the routes only
            assert applied["updated"] == ["VirtualService %s/reviews" % NS], name
            assert applied["unchanged"] == ["DestinationRule %s/reviews" % NS], name
            assert applied["fields"] == {"VirtualService %s/reviews" % NS: ["spec.http"]}
            assert list(applied["diff"]["before"]) == ["VirtualService %s/reviews" % NS]
            assert applied["diff"]["after"]["VirtualService %s/reviews" % NS]["spec"]["http"] == BOOKINFO_HTTP[name]
            assert check["updated"] == applied["updated"]

        rules, services = objects(bookinfo, NS, "DestinationRule"), objects(bookinfo, NS, "VirtualService")
        assert sorted(rules) == ["reviews"] and sorted(services) == ["reviews"]
        rule, service = rules["reviews"], services["reviews"]
        assert rule["spec"] == {"host": HOST, "subsets": SUBSETS}
        assert service["spec"] == {"hosts": [HOST], "http": BOOKINFO_HTTP[name]}, name
        assert rule["metadata"]["labels"][OWNER_LABEL] == "traffic-policy"
        assert service["metadata"]["labels"][OWNER_LABEL] == "traffic-policy"
        if rule_version is not None:
            assert rule["metadata"]["resourceVersion"] == rule_version, "the DestinationRule was written at %s" % name
        rule_version = rule["metadata"]["resourceVersion"]
        istioctl_validate(tmp_path, [rule, service])

        written = snapshot(bookinfo, NS)
        again = traffic_policy(tmp_path, args)
        assert not again["changed"] and again["counts"]["unchanged"] == 2, name
        assert snapshot(bookinfo, NS) == written and "diff" not in again


@pytest.mark.parametrize("bad, message", [
    ({"routes": [{"to": {"v1": 50, "v2": 49}}]},
     "policies[1] (%s).routes[0].to: weights 50 + 49 = 99, must sum to 100" % HOST),
    ({"routes": [{"match": {"user": "jason"}, "to": "v7"}, {"to": "v1"}]},
     "policies[1] (%s).routes[0].to: subset 'v7' is not defined (subsets: v1, v2, v3)" % HOST),
    ({"subsets": {"v1": {"version": "v1"}, "v4": {"version": "v4"}}, "routes": [{"to": "v4"}]},
     "policies[1] (%s).subsets.v4: labels version=v4 select no Pod in namespace %s of cluster1" % (HOST, NS)),
    ({"host": "httpbin.bar.global"},
     "policies[1] (httpbin.bar.global): host: httpbin.bar.global is a .global host"),
])
def test_bad_input_is_refused_before_any_write(bookinfo, tmp_path, bad, message):
    # a good policy first: refused with the bad one, so nothing of it may be written either
    good = {"host": "ratings.%s.svc.cluster.local" % NS, "namespace": NS, "subsets": {"v1": {"version": "v1"}},
            "routes": [{"to": "v1"}]}
    base = dict(stage("all-v1"), blue_green=None, routes=[{"to": "v1"}])
    args = {"policies": [good, dict(base, **bad)]}
    before = snapshot(bookinfo, NS)
    for check in (True, False):
        result = traffic_policy(tmp_path, args, check=check)
        assert result.get("failed") and not result.get("changed")
        assert message in result["msg"] and result["field"] == "policies"
        assert snapshot(bookinfo, NS) == before
    if "global" in message:
        assert "federate_clusters_global_routes" in result["msg"]


def test_another_owners_objects_are_untouched(bookinfo, tmp_path):
    theirs = {"host": "details.%s.svc.cluster.local" % NS, "namespace": NS, "subsets": {"v1": {"version": "v1"}},
              "routes": [{"to": "v1"}]}
    made = traffic_policy(tmp_path, {"owner": "tp-other", "policies": [theirs]})
    assert made["created"] == ["DestinationRule %s/details" % NS, "VirtualService %s/details" % NS]
    theirs_before = dict((k, v) for k, v in snapshot(bookinfo, NS).items() if k.endswith(" details"))

    # ours (the reviews rollout) is re-run with prune: theirs is not ours to prune
    ours = traffic_policy(tmp_path, {"policies": [stage("jason")]})
    assert not ours["changed"] and ours["deleted"] == []
    # ours may not take theirs over
    taken = traffic_policy(tmp_path, {"policies": [stage("jason"), theirs]})
    assert taken.get("failed") and "details already exists and is not managed by owner traffic-policy" in taken["msg"]
    assert dict((k, v) for k, v in snapshot(bookinfo, NS).items() if k.endswith(" details")) == theirs_before

    gone = traffic_policy(tmp_path, {"owner": "tp-other", "namespaces": [NS], "state": "absent"})
    assert gone["deleted"] == ["DestinationRule %s/details" % NS, "VirtualService %s/details" % NS]
    assert sorted(snapshot(bookinfo, NS)) == ["DestinationRule reviews", "VirtualService reviews"]


def test_state_absent_removes_both_objects(bookinfo, tmp_path):
    args = {"policies": [stage("jason")], "state": "absent"}
    check = traffic_policy(tmp_path, args, check=True)
    assert check["changed"] and check["deleted"] == ["DestinationRule %s/reviews" % NS, "VirtualService %s/reviews" % NS]
    assert sorted(snapshot(bookinfo, NS)) == ["DestinationRule reviews", "VirtualService reviews"]
    gone = traffic_policy(tmp_path, args)
    assert gone["changed"] and gone["counts"]["deleted"] == 2
    assert snapshot(bookinfo, NS) == {}
    assert not traffic_policy(tmp_path, args)["changed"]


# --- multi-primary: helloworld v1 in cluster1, v2 in cluster2, the routes on both primaries -----------

@pytest.fixture(scope="module")
def hello(apis):
    make_namespace(apis["cluster1"], HELLO_NS, {"helloworld-v1": {"app": "helloworld", "version": "v1"}})
    make_namespace(apis["cluster2"], HELLO_NS, {"helloworld-v2": {"app": "helloworld", "version": "v2"}})
    yield apis
    for context in ("cluster1", "cluster2"):
        delete_namespace(apis[context], HELLO_NS)


def test_helloworld_stages_on_both_primaries(hello, tmp_path):
    host = "helloworld.%s.svc.cluster.local" % HELLO_NS
    staged = traffic.staged("helloworld", HELLO_NS)
    want = {"all-v1": [{"route": [dest("v1", host=host)]}],
            "v2-10": [{"route": [dest("v1", 90, host), dest("v2", 10, host)]}],
            "v2-50": [{"route": [dest("v1", 50, host), dest("v2", 50, host)]}],
            "all-v2": [{"route": [dest("v2", host=host)]}]}
    assert traffic.stage_names(staged) == list(want)

    # each cluster runs one version only: with the Pods check, cluster1 has no Pod of v2
    refused = traffic_policy(tmp_path, {"policies": [traffic.stage_policy(staged, "all-v1")]})
    assert refused.get("failed")
    assert "policies[0] (%s).subsets.v2: labels version=v2 select no Pod in namespace %s of cluster1" % (
        host, HELLO_NS) in refused["msg"]

    for i, name in enumerate(want):
        args = {"owner": "tp-hello", "require_subset_pods": False,
                "policies": [traffic.stage_policy(staged, name)]}
        result = traffic_policy(tmp_path, args, contexts=["cluster1", "cluster2"])
        assert not result.get("failed"), result
        written = ["VirtualService %s/helloworld" % HELLO_NS]
        if not i:
            written.insert(0, "DestinationRule %s/helloworld" % HELLO_NS)
        for item in result["results"]:
            assert item["changed"], (name, item["item"])
            assert item["updated" if i else "created"] == written, (name, item["item"])
        specs = []
        for context in ("cluster1", "cluster2"):
            rule = objects(hello[context], HELLO_NS, "DestinationRule")["helloworld"]
            service = objects(hello[context], HELLO_NS, "VirtualService")["helloworld"]
            assert service["spec"] == {"hosts": [host], "http": want[name]}, (name, context)
            assert rule["spec"]["subsets"] == [{"name": "v1", "labels": {"version": "v1"}},
                                               {"name": "v2", "labels": {"version": "v2"}}]
            specs.append((rule["spec"], service["spec"]))
        assert specs[0] == specs[1]
        again = traffic_policy(tmp_path, args, contexts=["cluster1", "cluster2"])
        assert not any(item["changed"] for item in again["results"]), name

    gone = traffic_policy(tmp_path, {"owner": "tp-hello", "namespaces": [HELLO_NS], "state": "absent"},
                          contexts=["cluster1", "cluster2"])
    assert all(item["counts"]["deleted"] == 2 for item in gone["results"])
    assert snapshot(hello["cluster1"], HELLO_NS) == {} and snapshot(hello["cluster2"], HELLO_NS) == {}


def test_stage_policy_is_what_the_filter_gives(tmp_path):
    # the filter a playbook uses gives the same policy as the test's stage()
    task = {"name": "filter", "ansible.builtin.set_fact": {
        "policy": "{{ 'bookinfo-reviews' | meshfed.istio.mesh_traffic_stage('jason', namespace='%s') }}" % NS}}
    result = run_tasks(tmp_path, [task])[0]
    assert result["ansible_facts"]["policy"] == copy.deepcopy(stage("jason"))
