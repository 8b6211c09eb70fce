# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Federation at scale: N services exported over 3 sandbox clusters (service_entry mode).

Measures, in one run, on the local sandbox (3 clusters):
  first   the first federation (playbooks/federate_clusters.yml): every cluster gets a
          ServiceEntry and a DestinationRule for every exported service (2N per cluster, 6N in all)
  noop    the same playbook again (nothing to change)
  (a)     the same objects applied with one `kubectl apply --server-side` per cluster
          (the three run at the same time, as the playbook's hosts do), and again (no-op)
  (b)     a loop of kubernetes.core.k8s tasks over a sample of 100 of those objects,
          extrapolated to 6N
  verify  playbooks/verify_mesh.yml on the federated mesh, the istiods running: every `.global`
          host of every cluster checked from its istiod's xDS (sidecar and east-west gateway)
and prints the figures and ratios.  Not a test: it prints, it does not assert targets.

    .venv/bin/python bench/federation_scale.py            # N=1000
    BENCH_SERVICES=300 .venv/bin/python bench/federation_scale.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("BENCH_SERVICES", "1000"))
CLUSTERS = ["cluster1", "cluster2", "cluster3"]
KUBECONFIG = os.path.join(TOP, ".sandbox", "kubeconfig")
KUBECTL = os.path.join(TOP, ".sandbox", "bin", "kubectl")
INVENTORY = os.path.join(TOP, "inventories", "sandbox3", "hosts.yml")
SAMPLE = 100
NS = "bench"
OWNER = "meshfed-global"


def log(msg):
    print("[bench] %s" % msg, flush=True)


def api(cluster):
    return config.new_client_from_config(config_file=KUBECONFIG, context=cluster)


def sh(argv, **kw):
    return subprocess.run(argv, cwd=TOP, check=True, **kw)


def playbook(path, *args, inventory=INVENTORY):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    t0 = time.monotonic()
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory, path]
                         + list(args), cwd=TOP, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit("playbook %s failed:\n%s" % (path, (res.stdout + res.stderr)[-4000:]))
    stats = json.loads(res.stdout[res.stdout.index("{"):])["stats"]
    return took, sum(s["changed"] for s in stats.values())


def ensure_namespace(core, name):
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as e:
        if e.status != 409:
            raise


def delete_namespace(core, name):
    try:
        core.delete_namespace(name)
    except ApiException as e:
        if e.status != 404:
            raise
    while True:
        try:
            core.read_namespace(name)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(1)


def reset(cluster):
    """Remove what an earlier run left: owned objects, the VIP map, the bench namespaces."""
    c = api(cluster)
    co, core = client.CustomObjectsApi(c), client.CoreV1Api(c)
    for plural in ("serviceentries", "destinationrules", "virtualservices"):
        co.delete_collection_namespaced_custom_object("networking.istio.io", "v1", "istio-system", plural,
                                                      label_selector="meshfed.istio/owner=" + OWNER)
    try:
        core.delete_namespaced_config_map("meshfed-global-vips", "istio-system")
    except ApiException as e:
        if e.status != 404:
            raise
    for ns in (NS, "bench-kubectl", "bench-k8s"):
        delete_namespace(core, ns)


def make_services(cluster, names):
    core = client.CoreV1Api(api(cluster))
    ensure_namespace(core, NS)

    def one(name):
        core.create_namespaced_service(NS, client.V1Service(
            metadata=client.V1ObjectMeta(name=name),
            # headless: the sandbox's Service CIDR has fewer addresses than the benchmark's Services
            spec=client.V1ServiceSpec(selector={"app": name}, cluster_ip="None",
                                      ports=[client.V1ServicePort(name="http", port=8000, target_port=8080)])))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))


def settle(timeout=600):
    """Wait until the controllers are done with what the setup created (one EndpointSlice
    per Service, no namespace still terminating), so that every measurement below runs
    on quiet clusters, as the kubectl and k8s-loop ones do."""
    t0 = time.monotonic()
    for c in CLUSTERS:
        want = len(range(CLUSTERS.index(c), N, 3))
        disc, core = client.DiscoveryV1Api(api(c)), client.CoreV1Api(api(c))
        while True:
            slices = len(disc.list_namespaced_endpoint_slice(NS).items)
            terminating = [n.metadata.name for n in core.list_namespace().items if n.status.phase == "Terminating"]
            if slices >= want and not terminating:
                break
            if time.monotonic() - t0 > timeout:
                sys.exit("clusters did not settle in %ds (%s: %d/%d EndpointSlices, terminating: %s)"
                         % (timeout, c, slices, want, terminating))
            time.sleep(2)
    time.sleep(5)
    log("clusters settled in %.0fs" % (time.monotonic() - t0))


KINDS = (("serviceentries", "ServiceEntry"), ("destinationrules", "DestinationRule"))


def owned_entries(cluster, kinds=KINDS):
    """What the playbook wrote in ``cluster`` (a ServiceEntry and a DestinationRule per
    exported service), as manifests for kubectl."""
    out = []
    for plural, kind in kinds:
        items = client.CustomObjectsApi(api(cluster)).list_namespaced_custom_object(
            "networking.istio.io", "v1", "istio-system", plural,
            label_selector="meshfed.istio/owner=" + OWNER)["items"]
        out.extend({"apiVersion": "networking.istio.io/v1", "kind": kind,
                    "metadata": {"name": i["metadata"]["name"], "labels": {"bench": "kubectl"}},
                    "spec": i["spec"]} for i in items)
    return out


def verify_federated(extra, timeout=300):
    """playbooks/verify_mesh.yml on the federated mesh: (seconds of the first passing run, its summary).

    The istiods are started (they are stopped during the other measurements) and given until
    they know every `.global` host: runs that fail before are repeated, and said."""
    sh([sys.executable, "-m", "tools.sandbox", "istiod"], stdout=subprocess.DEVNULL)
    report = tempfile.mkdtemp(prefix="meshfed-bench-verify-")
    pb = os.path.join(TOP, "playbooks", "verify_mesh.yml")
    t_start = time.monotonic()
    while True:
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
        t0 = time.monotonic()
        res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", INVENTORY, pb,
                              "-e", "verify_mesh_mode=service_entry", "-e", "verify_mesh_report_dir=%s" % report] + extra,
                             cwd=TOP, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - t0
        with open(os.path.join(report, "mesh-verify.json")) as f:
            doc = json.load(f)
        s = doc["summary"]
        summary = "%d checks, %d passed, %d failed, %d not run" % (len(doc["checks"]), s["pass"], s["fail"], s["not_run"])
        log("verify_mesh.yml: %.1fs, %s (exit %d)" % (took, summary, res.returncode))
        if res.returncode == 0 or time.monotonic() - t_start > timeout:
            break
        log("  the istiods may not know every host yet; again in 10s")
        time.sleep(10)
    sh([sys.executable, "-m", "tools.sandbox", "istiod", "--stop"], stdout=subprocess.DEVNULL)
    return took, summary


def main():
    log("sandbox: 3 clusters with Istio's CRDs (istiods stopped during the measurement)")
    sh([sys.executable, "-m", "tools.sandbox", "up", "--clusters", "3"], stdout=subprocess.DEVNULL)
    sh([sys.executable, "-m", "tools.sandbox", "istiod"], stdout=subprocess.DEVNULL)
    sh([sys.executable, "-m", "tools.sandbox", "istiod", "--stop"], stdout=subprocess.DEVNULL)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(reset, CLUSTERS))
    names = ["svc-%04d" % i for i in range(N)]
    log("creating %d Services in namespace %s, spread over %s" % (N, NS, ", ".join(CLUSTERS)))
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda c: make_services(c, names[CLUSTERS.index(c)::3]), CLUSTERS))

    settle()
    pb = os.path.join(TOP, "playbooks", "federate_clusters.yml")
    extra = ["-e", "federate_clusters_mode=service_entry", "-e", json.dumps({"mesh_exports": [{"namespace": NS}]})]
    log("first federation ...")
    first, changed = playbook(pb, *extra)
    counts = dict((c, len(owned_entries(c))) for c in CLUSTERS)
    log("first federation: %.1fs, %d tasks changed, objects per cluster: %s" % (first, changed, counts))
    if any(v != N * len(KINDS) for v in counts.values()):
        sys.exit("expected %d ServiceEntries and %d DestinationRules in every cluster, got %s" % (N, N, counts))
    log("no-op re-run ...")
    noop, changed = playbook(pb, *extra)
    log("no-op re-run: %.1fs, %d tasks changed" % (noop, changed))

    verify_secs, verify_summary = verify_federated(extra)

    tmp = tempfile.mkdtemp(prefix="meshfed-bench-")
    files = {}
    for c in CLUSTERS:
        files[c] = os.path.join(tmp, "%s.yaml" % c)
        with open(files[c], "w") as f:
            yaml.safe_dump_all(owned_entries(c), f)
        ensure_namespace(client.CoreV1Api(api(c)), "bench-kubectl")

    def kubectl(c):
        sh([KUBECTL, "--kubeconfig", KUBECONFIG, "--context", c, "apply", "--server-side", "--field-manager",
            "bench", "-n", "bench-kubectl", "-f", files[c]], stdout=subprocess.DEVNULL)
    for label in ("(a) kubectl apply --server-side", "(a) again, no-op"):
        t0 = time.monotonic()
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(kubectl, CLUSTERS))
        took = time.monotonic() - t0
        log("%s, 3 clusters at once: %.1fs" % (label, took))
        if label.startswith("(a) kubectl"):
            kubectl_first = took
        else:
            kubectl_noop = took

    with open(files["cluster1"]) as f:
        sample = [o for o in yaml.safe_load_all(f) if o["kind"] == "ServiceEntry"][:SAMPLE]
    ensure_namespace(client.CoreV1Api(api("cluster1")), "bench-k8s")
    loop_pb = os.path.join(tmp, "k8s_loop.yml")
    with open(loop_pb, "w") as f:
        yaml.safe_dump([{"name": "kubernetes.core.k8s, one task iteration per object", "hosts": "localhost",
                         "connection": "local", "gather_facts": False,
                         "vars": {"ansible_python_interpreter": sys.executable},
                         "tasks": [{"name": "Apply one ServiceEntry", "kubernetes.core.k8s": {
                             "kubeconfig": KUBECONFIG, "context": "cluster1", "namespace": "bench-k8s",
                             "definition": "{{ item }}"}, "loop": sample, "loop_control": {"label": "x"}}]}], f)
    k8s_sample, dummy = playbook(loop_pb, inventory="localhost,")
    total = 3 * N * len(KINDS)
    k8s_total = k8s_sample * total / len(sample)
    log("(b) kubernetes.core.k8s loop: %d objects in %.1fs -> %.0fs extrapolated to %d objects"
        % (len(sample), k8s_sample, k8s_total, total))

    log("cleanup (un-export: the playbook prunes every .global ServiceEntry) ...")
    prune, dummy = playbook(pb, "-e", "federate_clusters_mode=service_entry", "-e", json.dumps({"mesh_exports": []}))
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(reset, CLUSTERS))
    sh([sys.executable, "-m", "tools.sandbox", "istiod"], stdout=subprocess.DEVNULL)

    print()
    print("federation of %d services over %d clusters (%d ServiceEntries and %d DestinationRules), service_entry mode"
          % (N, 3, 3 * N, 3 * N))
    rows = [
        ("first federation (playbook)", first),
        ("no-op re-run (playbook)", noop),
        ("(a) kubectl apply --server-side, per cluster, concurrent", kubectl_first),
        ("(a) kubectl apply again (no-op)", kubectl_noop),
        ("(b) kubernetes.core.k8s loop, extrapolated from %d" % len(sample), k8s_total),
        ("un-export everything (playbook, prune)", prune),
    ]
    rows.append(("verify_mesh.yml: %s" % verify_summary, verify_secs))
    for label, secs in rows:
        print("  %-58s %8.1f s" % (label, secs))
    print("  ratios: first/(a) = %.2f (target <= 1.5)   no-op/(a) = %.2f (target < 1)   (b)/first = %.1f "
          "(target >= 20)" % (first / kubectl_first, noop / kubectl_first, k8s_total / first))


if __name__ == "__main__":
    main()
