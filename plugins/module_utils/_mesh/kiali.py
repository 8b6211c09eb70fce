# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Kiali across clusters, and Prometheus federation for it (pure).

What the Kiali server (v2, as in Istio's samples/addons/kiali.yaml) reads to see
remote clusters: every directory under ``/kiali-remote-cluster-secrets`` is a
mounted Secret, every file in it a kubeconfig with one cluster, and the file's
name (the Secret's data key) is the cluster's name, which must be the Istio
cluster name (``values.global.multiCluster.clusterName``).  Kiali's own tooling
names such a Secret ``kiali-remote-cluster-secret-<cluster>``, labels it
``kiali.io/multiCluster=true`` (the label of ``clustering.autodetect_secrets``)
and annotates it ``kiali.io/cluster``; we do the same, one Secret per remote
cluster, each mounted at ``/kiali-remote-cluster-secrets/<secret name>``.

The kubeconfig, token and reader pieces are remote_secret's; kiali_runner talks
to the clusters.
"""

from __future__ import annotations

import copy
import hashlib
import json

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names, remote_secret as rs
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

MULTICLUSTER_LABEL = "kiali.io/multiCluster"
CLUSTER_ANNOTATION = "kiali.io/cluster"
SECRET_PREFIX = "kiali-remote-cluster-secret-"
SECRETS_DIR = "/kiali-remote-cluster-secrets"
# the pod template annotation: a hash of the remote secrets' data, never the data
HASH_ANNOTATION = "meshfed.istio/kiali-remote-secrets-sha256"
FIELD_MANAGER = "meshfed-istio-kiali"
# a volume name is a DNS-1123 label (63): the prefix leaves 35 characters for the cluster name
MAX_CLUSTER_NAME = 63 - len(SECRET_PREFIX)

READ = list(rs.READ)

# What a view-only Kiali reads in a remote cluster (the kiali-server chart's viewer role,
# kiali.yaml's own ClusterRole without its writes): get, list and watch only.  Left out:
# secrets (Kiali does not read them), pods/portforward and pods/proxy (the Envoy tabs of a
# remote workload need them, and they are not reads), and OpenShift's kinds.
READER_RULES = [
    {"apiGroups": [""], "resources": ["configmaps", "endpoints", "namespaces", "nodes", "pods", "pods/log",
                                      "replicationcontrollers", "services"], "verbs": READ},
    {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"], "verbs": READ},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": READ},
    {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
    {"apiGroups": ["networking.istio.io", "security.istio.io", "extensions.istio.io", "telemetry.istio.io",
                   "gateway.networking.k8s.io", "inference.networking.k8s.io"], "resources": ["*"], "verbs": READ},
    {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"], "verbs": READ},
    {"apiGroups": ["monitoring.kiali.io"], "resources": ["monitoringdashboards"], "verbs": READ},
]

# Istio's multi-cluster monitoring guide: what each cluster's Prometheus gives the one Kiali uses
FEDERATE_JOB_PREFIX = "federate-"
FEDERATE_MATCH = ['{job="kubernetes-pods"}']
PROMETHEUS_KEY = "prometheus.yml"


def secret_name(cluster):
    return SECRET_PREFIX + cluster


def validate_remotes(remotes, kiali_cluster=None):
    """Refuse remote clusters Kiali cannot take, naming the field: a name that is no
    DNS-1123 label of at most MAX_CLUSTER_NAME characters (it names a Secret, its data key
    and a volume), a name given twice, or the Kiali cluster itself."""
    seen = set()
    for i, remote in enumerate(remotes or []):
        name = (remote or {}).get("name")
        field = "remotes[%d].name" % i
        if not names.is_dns1123_label(name) or len(name) > MAX_CLUSTER_NAME:
            raise MeshError("%s: %r is not a cluster name Kiali can use (a DNS-1123 label of at most %d characters: "
                            "lower case letters, digits and '-')" % (field, name, MAX_CLUSTER_NAME), field="remotes")
        if name in seen:
            raise MeshError("%s: cluster %s is given twice" % (field, name), field="remotes")
        if kiali_cluster and name == kiali_cluster:
            raise MeshError("%s: %s is Kiali's own cluster (cluster_name), not a remote one" % (field, name),
                            field="remotes")
        seen.add(name)


def secret_manifest(cluster, namespace, kubeconfig_text, token_expiration=None):
    """The Secret Kiali reads one remote cluster from: its kubeconfig under the cluster's name."""
    return rs.secret_manifest(cluster, namespace, kubeconfig_text, token_expiration, name=secret_name(cluster),
                              label=MULTICLUSTER_LABEL, annotation=CLUSTER_ANNOTATION)


def label_reasons(existing, cluster):
    return rs.label_reasons(existing, cluster, label=MULTICLUSTER_LABEL, annotation=CLUSTER_ANNOTATION)


def written_by_us(secrets):
    """{cluster: secret name} of the Kiali remote secrets (dicts) this collection wrote."""
    return rs.written_by_us(secrets, label=MULTICLUSTER_LABEL, annotation=CLUSTER_ANNOTATION)


def kubeconfig_text(cluster, server, ca, token):
    """The kubeconfig of one remote cluster, as the Secret holds it (deterministic text)."""
    return yaml.safe_dump(rs.build_kubeconfig(cluster, server, ca, token), default_flow_style=False)


def secrets_hash(data_by_secret):
    """SHA-256 of the remote secrets' data ({secret name: its data, base64 values}): the
    pod template annotation that restarts Kiali when, and only when, that data changed.
    Empty when there is no remote secret."""
    if not data_by_secret:
        return ""
    canonical = json.dumps(data_by_secret, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def secret_data(secret):
    """The data of a Secret (dict) as the hash takes it."""
    return dict((secret or {}).get("data") or {})


def deployment_apply(name, namespace, container, clusters, digest):
    """The server-side apply body of the Kiali Deployment under FIELD_MANAGER: one read-only
    Secret volume and mount per remote cluster (sorted), and the hash annotation.  With no
    cluster, the body owns nothing, so that applying it removes what an earlier apply added."""
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace}}
    if not clusters:
        return body
    secrets = [secret_name(c) for c in sorted(clusters)]
    body["spec"] = {"template": {
        "metadata": {"annotations": {HASH_ANNOTATION: digest}},
        "spec": {
            "containers": [{"name": container, "volumeMounts": [
                {"name": s, "mountPath": "%s/%s" % (SECRETS_DIR, s), "readOnly": True} for s in secrets]}],
            "volumes": [{"name": s, "secret": {"secretName": s}} for s in secrets],
        }}}
    return body


def template_view(deployment, container):
    """What of a Deployment's pod template this collection writes, for diffs: the remote
    secret volumes and mounts and the hash annotation (never any secret content)."""
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    spec = template.get("spec") or {}
    volumes = sorted(v.get("name") for v in spec.get("volumes") or []
                     if ((v.get("secret") or {}).get("secretName") or "").startswith(SECRET_PREFIX))
    mounts = []
    for c in spec.get("containers") or []:
        if c.get("name") == container:
            mounts = sorted(m.get("mountPath") for m in c.get("volumeMounts") or []
                            if (m.get("mountPath") or "").startswith(SECRETS_DIR + "/" + SECRET_PREFIX))
    out = {"volumes": volumes, "mounts": mounts}
    digest = ((template.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    if digest:
        out["secrets_sha256"] = digest
    return out


def has_container(deployment, container):
    spec = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(c.get("name") == container for c in spec.get("containers") or [])


def template_differs(live, planned):
    """Whether the pod template (what a change of restarts) or the Deployment's spec of
    ``planned`` (a dry-run apply's answer) differs from ``live``."""
    return ((live or {}).get("spec") or {}) != ((planned or {}).get("spec") or {})


def restarts(live, planned):
    """Whether applying ``planned`` restarts Kiali (its pod template changes)."""
    return (((live or {}).get("spec") or {}).get("template") or {}) != \
        (((planned or {}).get("spec") or {}).get("template") or {})


# --- Prometheus federation ---------------------------------------------------------


def validate_federation(targets):
    """Refuse federation targets that cannot make a scrape job, naming the field."""
    seen = set()
    for i, t in enumerate(targets or []):
        where = "federation[%d]" % i
        if not isinstance(t, dict):
            raise MeshError("%s: expected a dict with cluster and address, got %s" % (where, type(t).__name__),
                            field="federation")
        cluster, address = t.get("cluster"), t.get("address")
        if not isinstance(cluster, str) or not names.is_label_value(cluster) or not cluster:
            raise MeshError("%s.cluster: %r is not a cluster name" % (where, cluster), field="federation")
        if not isinstance(address, str) or not address or "/" in address or " " in address:
            raise MeshError("%s.address: %r is not a host:port of a Prometheus (no scheme, no path)"
                            % (where, address), field="federation")
        if t.get("scheme", "http") not in ("http", "https"):
            raise MeshError("%s.scheme: %r is not http or https" % (where, t.get("scheme")), field="federation")
        if cluster in seen:
            raise MeshError("%s.cluster: %s is given twice" % (where, cluster), field="federation")
        seen.add(cluster)


def federation_jobs(targets, interval="15s", match=None):
    """One scrape job per other cluster's Prometheus, as Istio's multi-cluster monitoring
    guide writes it: ``federate-<cluster>`` scraping ``/federate`` with honor_labels, the
    guide's match[] and a ``cluster`` label naming the cluster (its Istio cluster name)."""
    validate_federation(targets)
    jobs = []
    for t in sorted(targets or [], key=lambda t: t["cluster"]):
        job = {"job_name": FEDERATE_JOB_PREFIX + t["cluster"], "scrape_interval": interval, "honor_labels": True,
               "metrics_path": "/federate", "params": {"match[]": list(match or FEDERATE_MATCH)}}
        if t.get("scheme", "http") != "http":
            job["scheme"] = t["scheme"]
        job["static_configs"] = [{"targets": [t["address"]], "labels": {"cluster": t["cluster"]}}]
        jobs.append(job)
    return jobs


def is_federation_job(job):
    """A scrape job this collection writes (and so may replace or remove)."""
    return isinstance(job, dict) and str(job.get("job_name", "")).startswith(FEDERATE_JOB_PREFIX) \
        and job.get("metrics_path") == "/federate"


def federated_config(text, jobs):
    """prometheus.yml ``text`` with its federation jobs (``is_federation_job``) replaced by
    ``jobs``; the text itself when that changes nothing (no reformatting)."""
    try:
        config = yaml.safe_load(text or "") or {}
    except yaml.YAMLError as e:
        raise MeshError("%s: not YAML: %s" % (PROMETHEUS_KEY, str(e).splitlines()[0]), field="configmap")
    if not isinstance(config, dict):
        raise MeshError("%s: not a Prometheus configuration (a mapping)" % PROMETHEUS_KEY, field="configmap")
    scrape = config.get("scrape_configs") or []
    if not isinstance(scrape, list):
        raise MeshError("%s: scrape_configs is not a list" % PROMETHEUS_KEY, field="configmap")
    kept = [j for j in scrape if not is_federation_job(j)]
    ours = [j for j in scrape if is_federation_job(j)]
    if ours == list(jobs):
        return text
    new = copy.deepcopy(config)
    new["scrape_configs"] = kept + copy.deepcopy(list(jobs))
    return yaml.safe_dump(new, default_flow_style=False, sort_keys=False)


def federated_configmap_data(configmap, targets, interval="15s", match=None):
    """The data of the Prometheus ConfigMap (a dict, as k8s_info or the manifest gives it)
    with the federation jobs of ``targets`` in its prometheus.yml; other keys unchanged."""
    data = dict(((configmap or {}).get("data")) or {})
    if PROMETHEUS_KEY not in data:
        meta = (configmap or {}).get("metadata") or {}
        raise MeshError("configmap: ConfigMap %s/%s has no %s (is it samples/addons/prometheus.yaml's?)"
                        % (meta.get("namespace"), meta.get("name"), PROMETHEUS_KEY), field="configmap")
    data[PROMETHEUS_KEY] = federated_config(data[PROMETHEUS_KEY], federation_jobs(targets, interval, match))
    return data
