# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Istio's sample applications on the mesh's clusters (pure).

``samples_plan`` checks where the inventory puts which sample (``deploy_samples_placement``, or
the seeds' placement when it is not set) and says, per cluster, which namespaces to make (with
the injection label of the cluster's Istio: ``istio.io/rev`` for a revision, else
``istio-injection``) and which manifest file of the Istio release to apply for each app.
``app_manifests`` turns the documents of such a file into the manifests of one placement: the
versions asked for, the namespace, an image registry override.

The manifests always come from the release the user installed (``<istio_dir>/samples``), so they
match it: ``sleep`` became ``curl`` in Istio 1.24, and either name finds whichever the release has.
"""

from __future__ import annotations

import copy

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names, traffic
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

VAR = "deploy_samples_placement"
TRAFFIC_VAR = "deploy_samples_traffic"
# staged sample (traffic.SAMPLE_STAGES) -> the app whose versions it routes to (in the app's namespace)
TRAFFIC_APPS = {"bookinfo-reviews": "bookinfo", "helloworld": "helloworld", "httpbin-global": "httpbin"}
# staged samples of .global hosts: routed by the federation (its VirtualService of the host, from
# federate_clusters' routes), not by this role; the namespace their host names
GLOBAL_TRAFFIC = {"httpbin-global": "bar"}
FEDERATION_MODE = "service_entry"
# app -> (candidate files under samples/, in order of preference; versions one may choose; default
# namespace; the workloads the versions choose among: names starting so)
APPS = {
    "curl": (("curl/curl.yaml", "sleep/sleep.yaml"), (), "curl", None),
    "httpbin": (("httpbin/httpbin.yaml",), ("v1", "v2"), "httpbin", "httpbin"),
    "helloworld": (("helloworld/helloworld.yaml",), ("v1", "v2"), "sample", "helloworld-"),
    "bookinfo": (("bookinfo/platform/kube/bookinfo.yaml",), ("v1", "v2", "v3"), "bookinfo", "reviews-"),
}
ALIASES = {"sleep": "curl"}
# versions the release has no workload of: made as a copy of another version's workload with its own
# version label (Istio's traffic-mirroring task makes httpbin-v2 so), and only when asked for
COPIED_VERSIONS = {"httpbin": {"v2": "v1"}}
# versions an entry gets when it names none (default: every version of the app)
DEFAULT_VERSIONS = {"httpbin": ["v1"]}
ENTRY_KEYS = ("app", "namespace", "versions")
GATEWAY_FILE = "bookinfo/networking/bookinfo-gateway.yaml"
# the seeds' placement: cluster index -> [(app, namespace, versions)]
SEEDS = (
    (("curl", "foo", ()), ("helloworld", "sample", ("v1",)), ("curl", "sample", ()), ("bookinfo", "bookinfo", ())),
    (("httpbin", "bar", ("v1",)), ("helloworld", "sample", ("v2",)), ("curl", "sample", ())),
)


def seed_placement(cluster_hosts):
    """The seeds' placement over the first two clusters (one cluster: it takes the second's too)."""
    out = {}
    for i, host in enumerate(list(cluster_hosts)[:2]):
        out[host] = [{"app": a, "namespace": ns, "versions": list(v)} for a, ns, v in SEEDS[i]]
    if len(cluster_hosts) == 1:
        first = out[cluster_hosts[0]]
        first[1]["versions"] = ["v1", "v2"]
        first.append({"app": "httpbin", "namespace": "bar", "versions": ["v1"]})
    return out


def app_file(app, files):
    """The file of ``app`` the release has (relative to samples/), or None."""
    have = set(files)
    return next((f for f in APPS[app][0] if f in have), None)


def _entry(where, entry, files):
    if isinstance(entry, str):
        entry = {"app": entry}
    if not isinstance(entry, dict):
        raise MeshError("%s: must be an app name or a mapping with app, namespace, versions; got %s"
                        % (where, type(entry).__name__), field=VAR)
    unknown = sorted(str(k) for k in set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise MeshError("%s: unknown key(s) %s; allowed: %s" % (where, ", ".join(unknown), ", ".join(ENTRY_KEYS)),
                        field=VAR)
    app = ALIASES.get(entry.get("app"), entry.get("app"))
    if app not in APPS:
        raise MeshError("%s.app: %r is not a sample this role deploys (%s)"
                        % (where, entry.get("app"), ", ".join(sorted(set(APPS) | set(ALIASES)))), field=VAR)
    candidates, versions, default_ns, dummy = APPS[app]
    ns = entry.get("namespace") or default_ns
    if not names.is_dns1123_label(ns):
        raise MeshError("%s.namespace: %r is not a DNS-1123 label" % (where, ns), field=VAR)
    chosen = entry.get("versions")
    if chosen is None or chosen == []:
        chosen = list(DEFAULT_VERSIONS.get(app, versions))
    if not isinstance(chosen, list) or not all(isinstance(v, str) for v in chosen):
        raise MeshError("%s.versions: must be a list of version names, got %r" % (where, chosen), field=VAR)
    bad = [v for v in chosen if v not in versions]
    if bad:
        raise MeshError("%s.versions: %s %s; %s" % (
            where, ", ".join(bad), "is not a version of " + app if len(bad) == 1 else "are not versions of " + app,
            "choose from " + ", ".join(versions) if versions else "%s has no versions" % app), field=VAR)
    path = app_file(app, files)
    if path is None:
        raise MeshError("%s: the Istio release has no %s sample (looked for samples/%s)"
                        % (where, app, " and samples/".join(candidates)), field=VAR)
    return {"app": app, "name": path.split("/")[-1][:-len(".yaml")], "namespace": ns,
            "versions": sorted(set(chosen)), "file": path}


def _traffic_stages(stages):
    """``deploy_samples_traffic`` checked: {staged sample: stage}."""
    if stages is None:
        return {}
    if not isinstance(stages, dict):
        raise MeshError("%s: must be a mapping of staged sample (%s) to stage, got %s"
                        % (TRAFFIC_VAR, ", ".join(sorted(TRAFFIC_APPS)), type(stages).__name__), field=TRAFFIC_VAR)
    for name, stage in sorted(stages.items()):
        if name not in TRAFFIC_APPS:
            raise MeshError("%s.%s: not a staged sample (%s)" % (TRAFFIC_VAR, name, ", ".join(sorted(TRAFFIC_APPS))),
                            field=TRAFFIC_VAR)
        known = traffic.stage_names(traffic.SAMPLE_STAGES[name])
        if stage not in known:
            raise MeshError("%s.%s: %r is not a stage; stages: %s" % (TRAFFIC_VAR, name, stage, ", ".join(known)),
                            field=TRAFFIC_VAR)
    return dict(stages)


def traffic_policies(apps, stages):
    """The traffic policies of one cluster: each staged sample at its stage, in the namespace of
    its app on that cluster (multi-primary: on every cluster that runs the app, so each primary's
    sidecars route alike over the merged endpoints)."""
    out = []
    for name, stage in sorted(stages.items()):
        for app in apps:
            if app["app"] == TRAFFIC_APPS[name] and name not in GLOBAL_TRAFFIC:
                out.append(traffic.stage_policy(traffic.staged(name, namespace=app["namespace"]), stage,
                                                field=TRAFFIC_VAR))
    return out


def _check_routed_versions(clusters, stages):
    """Every version a stage routes to runs somewhere in the mesh (its subset has pods)."""
    placed = {}
    for c in clusters:
        for app in c["apps"]:
            placed.setdefault(app["app"], set()).update(app["versions"])
    for name, stage in sorted(stages.items()):
        app = TRAFFIC_APPS[name]
        if app not in placed:
            continue
        policy = traffic.stage_policy(traffic.staged(name), stage, field=TRAFFIC_VAR)
        if name in GLOBAL_TRAFFIC:
            routed = set(sub for weights in traffic.global_routes([policy], field=TRAFFIC_VAR).values() for sub in weights)
        else:
            policy = traffic.normalize_policy(policy, field=TRAFFIC_VAR)
            routed = set(sub for route in policy["routes"] for sub, weight in route["to"] if weight > 0)
        missing = sorted(routed - placed[app])
        if missing:
            raise MeshError("%s.%s: stage %s routes to %s, which no cluster runs (%s gives %s versions %s)" % (
                TRAFFIC_VAR, name, stage, ", ".join(missing), VAR, app, ", ".join(sorted(placed[app])) or "none"),
                field=TRAFFIC_VAR)


def _check_global_stages(clusters, cluster_hosts, stages, hostvars):
    """A staged .global sample needs the federation that makes its host (service_entry mode on every
    cluster) and its app in the namespace the host names."""
    for name in sorted(set(stages) & set(GLOBAL_TRAFFIC)):
        host = traffic.staged(name)["policy"]["host"]
        modes = [(h, (hostvars.get(h) or {}).get("federate_clusters_mode") or "multi_primary") for h in cluster_hosts]
        other = [(h, m) for h, m in modes if m != FEDERATION_MODE]
        if other:
            raise MeshError("%s.%s: %s is made by the federation in federate_clusters_mode %s only; %s" % (
                TRAFFIC_VAR, name, host, FEDERATION_MODE, ", ".join("%s has %s" % hm for hm in other)), field=TRAFFIC_VAR)
        app, ns = TRAFFIC_APPS[name], GLOBAL_TRAFFIC[name]
        if not any(a["app"] == app and a["namespace"] == ns for c in clusters for a in c["apps"]):
            raise MeshError("%s.%s: %s routes the %s of namespace %s; %s places none there" % (
                TRAFFIC_VAR, name, host, app, ns, VAR), field=TRAFFIC_VAR)


def global_routes(stages, routes=None):
    """The routes of ``.global`` hosts the federation writes (``federate_clusters_global_routes``
    given as ``routes``) with those of the staged ``.global`` samples of ``stages``
    (``deploy_samples_traffic``) at their stage: one variable selects the stage of
    ``httpbin.bar.global`` as it does the others'.  A host routed by both is refused."""
    stages = _traffic_stages(stages)
    policies = [traffic.stage_policy(traffic.staged(name), stage, field=TRAFFIC_VAR)
                for name, stage in sorted(stages.items()) if name in GLOBAL_TRAFFIC]
    ours = traffic.global_routes(policies, field=TRAFFIC_VAR)
    if routes is not None and not isinstance(routes, dict):
        raise MeshError("federate_clusters_global_routes: must be a mapping of .global host to {subset: weight}, got %s"
                        % type(routes).__name__, field="federate_clusters_global_routes")
    out = dict(routes or {})
    both = sorted(set(ours) & set(out))
    if both:
        raise MeshError("federate_clusters_global_routes: %s is routed by %s too; keep one of the two"
                        % (", ".join(both), TRAFFIC_VAR), field="federate_clusters_global_routes")
    out.update(ours)
    return out


def traffic_summary(clusters, stages):
    """One line per staged sample: its stage and where it is routed."""
    lines = []
    for name, stage in sorted(stages.items()):
        app = TRAFFIC_APPS[name]
        where = [c["cluster"] for c in clusters if app in [a["app"] for a in c["apps"]]]
        if not where:
            continue
        if name in GLOBAL_TRAFFIC:
            lines.append("traffic: %s at stage %s (%s, by the federation)" % (name, stage, traffic.staged(name)["policy"]["host"]))
        else:
            lines.append("traffic: %s at stage %s (%s)" % (name, stage, ", ".join(where)))
    return lines


def samples_plan(placement, cluster_hosts, hostvars, files, stages=None):
    """Per cluster host: {host, cluster, namespaces: [{name, labels}], apps: [...]} and a summary.

    ``placement``: {cluster host: [app entries]} (None: the seeds'); ``files``: the paths under the
    release's samples/ directory.  MeshError naming the cluster host and the variable."""
    cluster_hosts = list(cluster_hosts or [])
    stages = _traffic_stages(stages)
    if placement is None:
        placement = seed_placement(cluster_hosts)
    if not isinstance(placement, dict):
        raise MeshError("%s: must be a mapping of cluster host to a list of apps, got %s"
                        % (VAR, type(placement).__name__), field=VAR)
    clusters = []
    for host in sorted(placement):
        if host not in cluster_hosts:
            raise MeshError("%s.%s: %s is not a host of mesh_clusters (%s)" % (
                VAR, host, host, ", ".join(cluster_hosts) or "none"), field=VAR)
        entries = placement[host] or []
        if not isinstance(entries, list):
            raise MeshError("%s.%s: must be a list of apps, got %s" % (VAR, host, type(entries).__name__), field=VAR)
        hv = hostvars.get(host) or {}
        apps, seen = [], {}
        for i, entry in enumerate(entries):
            where = "%s.%s[%d]" % (VAR, host, i)
            app = _entry(where, entry, files)
            key = (app["app"], app["namespace"])
            if key in seen:
                raise MeshError("%s: %s in namespace %s is placed twice on %s (also [%d]); give one entry its "
                                "versions" % (where, app["app"], app["namespace"], host, seen[key]), field=VAR)
            seen[key] = i
            apps.append(app)
        revision = hv.get("install_istio_revision") or ""
        inject = {"istio.io/rev": revision} if revision else {"istio-injection": "enabled"}
        namespaces = [{"name": ns, "labels": dict(inject)} for ns in sorted(set(a["namespace"] for a in apps))]
        files_needed = sorted(set(a["file"] for a in apps) | (
            set([GATEWAY_FILE]) if "bookinfo" in [a["app"] for a in apps] and GATEWAY_FILE in files else set()))
        clusters.append({"host": host, "cluster": hv.get("mesh_cluster_name") or host, "revision": revision,
                         "namespaces": namespaces, "apps": apps, "files": files_needed,
                         "traffic": traffic_policies(apps, stages)})
    _check_routed_versions(clusters, stages)
    _check_global_stages(clusters, cluster_hosts, stages, hostvars)
    summary = ["%s: %s" % (c["cluster"], ", ".join(
        "%s%s in %s" % (a["name"], " " + "+".join(a["versions"]) if a["versions"] else "", a["namespace"])
        for a in c["apps"]) or "no samples") for c in clusters] + traffic_summary(clusters, stages)
    return {"clusters": clusters, "summary": summary}


def _version(doc):
    """A workload's version label: on the object, else on its pod template (httpbin's)."""
    meta = doc.get("metadata") or {}
    template = ((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return (meta.get("labels") or {}).get("version") or (template.get("labels") or {}).get("version")


def _images(doc):
    """The container dicts of a workload document (Deployment, Pod, ...)."""
    spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c for key in ("containers", "initContainers") for c in spec.get(key) or []]


def override_image(image, registry):
    """``image`` from ``registry``: what precedes the image's last path segment replaced
    (``registry.istio.io/release/examples-helloworld-v1:1.0`` -> ``<registry>/examples-helloworld-v1:1.0``)."""
    return "%s/%s" % (registry.rstrip("/"), image.rsplit("/", 1)[-1])


def app_manifests(docs, app, registry=None):
    """The manifests of one planned app from the documents of its file: only the workloads of the
    versions asked for (among the app's versioned workloads: helloworld-*, bookinfo's reviews-*; the
    other documents are kept: Services, ServiceAccounts, bookinfo's other workloads),
    in the app's namespace, images from ``registry`` when given."""
    prefix = APPS[app["app"]][3]
    copied = COPIED_VERSIONS.get(app["app"]) or {}
    out = []
    for doc in docs or []:
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue  # an empty document (a trailing ---)
        version = _version(doc)
        versioned = prefix and str((doc.get("metadata") or {}).get("name") or "").startswith(prefix)
        made = [doc]
        if versioned and version:
            made = ([doc] if version in app["versions"] else []) + [
                copy_version(doc, version, v) for v in sorted(copied) if copied[v] == version and v in app["versions"]]
        for one in made:
            one = copy.deepcopy(one)
            one.setdefault("metadata", {})["namespace"] = app["namespace"]
            if registry:
                for container in _images(one):
                    if container.get("image"):
                        container["image"] = override_image(container["image"], registry)
            out.append(one)
    return out


def copy_version(doc, version, new):
    """A workload of ``version`` as one of version ``new``: named ``<name>-<new>`` (``-<version>``
    replaced), its version label changed in its metadata, selector and pod template."""
    doc = copy.deepcopy(doc)
    meta = doc.setdefault("metadata", {})
    name = str(meta.get("name") or "")
    meta["name"] = (name[:-len(version)] + new) if name.endswith("-" + version) else "%s-%s" % (name, new)
    spec = doc.get("spec") or {}
    for labels in (meta.get("labels"), (spec.get("selector") or {}).get("matchLabels"),
                   ((spec.get("template") or {}).get("metadata") or {}).get("labels")):
        if isinstance(labels, dict) and labels.get("version") == version:
            labels["version"] = new
    return doc


def gateway_manifests(docs, host, namespace):
    """bookinfo's Gateway and VirtualService of the release, serving ``host`` instead of ``*``."""
    out = []
    for doc in docs or []:
        if not isinstance(doc, dict) or doc.get("kind") not in ("Gateway", "VirtualService"):
            continue
        doc = copy.deepcopy(doc)
        doc.setdefault("metadata", {})["namespace"] = namespace
        spec = doc.setdefault("spec", {})
        if doc["kind"] == "Gateway":
            for server in spec.get("servers") or []:
                server["hosts"] = [host]
        else:
            spec["hosts"] = [host]
        out.append(doc)
    return out


# kinds the samples' objects have: what the role prunes and removes
KINDS = ("v1/Namespace", "v1/Service", "v1/ServiceAccount", "apps/v1/Deployment",
         "networking.istio.io/v1/Gateway", "networking.istio.io/v1/VirtualService")


def cluster_manifests(cluster, docs_by_file, existing_namespaces, owner, registry=None, ingress_host=None):
    """Everything the samples make on one cluster of the plan, as manifests, and the namespaces that
    exist without being the samples' (they only get the injection label, and stay on removal).

    ``docs_by_file``: {file under samples/: its documents}; ``existing_namespaces``: {name: labels}
    of the cluster's namespaces; ``ingress_host``: the host bookinfo's ingress Gateway serves (the
    release's GATEWAY_FILE), or None for no Gateway.
    Returns {"manifests": [...], "labelled": [{name, labels}]}."""
    out, labelled = [], []
    for ns in cluster["namespaces"]:
        have = existing_namespaces.get(ns["name"])
        if have is None or have.get(names.OWNER_LABEL) == owner:
            out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns["name"], "labels": ns["labels"]}})
        else:
            labelled.append(ns)
    for app in cluster["apps"]:
        if app["file"] not in docs_by_file:
            raise MeshError("%s: the documents of samples/%s were not read" % (cluster["host"], app["file"]), field=VAR)
        out.extend(app_manifests(docs_by_file[app["file"]], app, registry))
        if app["app"] == "bookinfo" and ingress_host:
            if GATEWAY_FILE not in docs_by_file:
                raise MeshError("%s: the Istio release has no samples/%s for bookinfo's ingress; set "
                                "deploy_samples_ingress: false" % (cluster["host"], GATEWAY_FILE), field=VAR)
            out.extend(gateway_manifests(docs_by_file[GATEWAY_FILE], ingress_host, app["namespace"]))
    return {"manifests": out, "labelled": labelled}


# the add-ons of the release's samples/addons: on every cluster, and on the cluster whose Kiali sees the mesh
ADDONS_EVERYWHERE = ("addons/prometheus.yaml",)
ADDONS_KIALI_CLUSTER = ("addons/grafana.yaml", "addons/kiali.yaml", "addons/jaeger.yaml")
ADDON_KINDS = ("v1/ConfigMap", "v1/Service", "v1/ServiceAccount", "apps/v1/Deployment",
               "rbac.authorization.k8s.io/v1/ClusterRole", "rbac.authorization.k8s.io/v1/ClusterRoleBinding")


def addon_files(kiali_cluster, files, where="deploy_samples_addons"):
    """The add-on files one cluster gets, checked against the release's ``files`` (under samples/)."""
    wanted = ADDONS_EVERYWHERE + (ADDONS_KIALI_CLUSTER if kiali_cluster else ())
    missing = [f for f in wanted if f not in set(files)]
    if missing:
        raise MeshError("%s: the Istio release has no samples/%s" % (where, ", samples/".join(missing)), field=where)
    return list(wanted)


def addon_manifests(docs_by_file, wanted_files, configmap=None, prometheus_data=None):
    """The add-ons' manifests from the documents of ``wanted_files``, as the release writes them
    (namespace istio-system); the Prometheus ConfigMap named ``configmap`` gets ``prometheus_data``
    (its data with the federation jobs) when given."""
    out = []
    for path in wanted_files:
        for doc in docs_by_file.get(path) or []:
            if not isinstance(doc, dict) or not doc.get("kind"):
                continue
            doc = copy.deepcopy(doc)
            if prometheus_data is not None and doc["kind"] == "ConfigMap" and \
                    (doc.get("metadata") or {}).get("name") == configmap and path in ADDONS_EVERYWHERE:
                doc["data"] = dict(prometheus_data)
            out.append(doc)
    return out
