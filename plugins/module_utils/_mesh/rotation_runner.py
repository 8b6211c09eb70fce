# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Orchestration of meshfed.istio.root_rotation (I/O): one step of a root CA rotation for
every cluster of the mesh at once.

One call: observe every cluster in parallel (Secret istio-system/cacerts, the
``istio-ca-root-cert`` ConfigMaps of every namespace in one LIST, whether istiod runs with
ISTIO_MULTIROOT_MESH, a workload certificate freshly signed by its CA), ``rotation.plan``,
the writes the plan allows, ``rotation.record``, and, once every cluster is at phase 4, the CA
directory made equal to what the clusters run (``final_files``).  Everything that reads or
writes the CA directory holds its lock (``files.locked``, shared in check mode), as mesh_ca does.

The CA directory during a rotation::

    <dir>/rotation.json                  the state (rotation.STATE_FILE): certificates only
    <dir>/rotation/new-root-cert.pem     the new root (generated, or a copy of the one given)
    <dir>/rotation/new-root-key.pem      its key (0600), only when this module generated it
    <dir>/rotation/<cluster>/ca-cert.pem, ca-key.pem (0600)   phase 3's intermediates
    <dir>/retired/<date>/...             the old root and intermediates, once the rotation completed
"""

from __future__ import annotations

import concurrent.futures
import datetime
import os

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import (ca, ca_client, cacerts, cacerts_runner, files,
                                                                          mesh_ca_runner, rotation)
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError, ClusterError, MeshError
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service

NAMESPACE = "istio-system"
SECRET = "cacerts"
CONFIGMAP = "istio-ca-root-cert"
CONFIGMAP_SELECTOR = "istio.io/config=true"
ISTIOD_SELECTOR = cacerts_runner.ISTIOD_SELECTOR
MULTIROOT_ENV = "ISTIO_MULTIROOT_MESH"
DEFAULT_ISTIOD_ADDRESS = "istiod.istio-system.svc:15012"
ROTATION_DIR = "rotation"
NEW_ROOT_CERT = "rotation/new-root-cert.pem"
NEW_ROOT_KEY = "rotation/new-root-key.pem"
RETIRED_DIR = "retired"
STAGE_OF_ACTION = {rotation.ACT_WRITE_BUNDLE: 2, rotation.ACT_ISSUE_INTERMEDIATE: 3, rotation.ACT_WRITE_NEW_ROOT: 4}
WAITS_FOR = {
    rotation.ACT_WRITE_BUNDLE: "nothing: this run writes the bundle old+new",
    rotation.ACT_WAIT_BUNDLE: "istiod to take the bundle old+new and write it into every istio-ca-root-cert",
    rotation.ACT_ISSUE_INTERMEDIATE: "nothing: this run writes the intermediate from the new root",
    rotation.ACT_WAIT_WORKLOADS: "workload certificates from the new root (and proxy_wait_seconds)",
    rotation.ACT_WRITE_NEW_ROOT: "nothing: this run drops the old root",
    rotation.ACT_WAIT_NEW_ROOT: "istiod to take the new root alone and write it into every istio-ca-root-cert",
    rotation.ACT_WAIT_OTHERS: "the other clusters to complete this phase",
    rotation.ACT_DONE: "nothing: done",
}


def _now(now):
    return ca._utc(now or datetime.datetime.now(datetime.timezone.utc))


def _mode(rel):
    return 0o600 if rel.rsplit("/", 1)[-1] in ("new-root-key.pem", "ca-key.pem", "root-key.pem") else 0o644


# --- inputs ---------------------------------------------------------------------------------

def cluster_specs(params):
    """The clusters option, checked: [{name, conn, address, target_name, multiroot}]."""
    out = []
    for i, c in enumerate(params.get("clusters") or []):
        if not c.get("name"):
            raise CAError("clusters[%d]: needs a name" % i, field="clusters")
        out.append({"name": c["name"],
                    "conn": {"kubeconfig": c.get("kubeconfig"), "context": c.get("context")},
                    "address": c.get("istiod_address") or DEFAULT_ISTIOD_ADDRESS,
                    "target_name": c.get("istiod_target_name") or ca_client.DEFAULT_TARGET_NAME,
                    "multiroot": c.get("multiroot")})
    if not out:
        raise CAError("clusters: give at least one cluster", field="clusters")
    ca.validate_cluster_names([c["name"] for c in out])
    return out


def ca_params(params, base):
    """CA parameters of the new root and intermediates: the options, key types defaulting to
    those of the CA directory's root and first intermediate."""
    root = files.read_optional(os.path.join(base, "root-cert.pem"))
    fields = ("organization", "root_common_name", "intermediate_common_name", "root_validity_days",
              "intermediate_validity_days")
    kw = dict((k, params.get(k)) for k in fields)
    kw["root_key_type"] = params.get("root_key_type")
    if kw["root_key_type"] is None and root is not None:
        kw["root_key_type"] = ca.key_type_of(ca.load_cert(root, "root-cert.pem").public_key())
    kw["key_type"] = params.get("key_type")
    if kw["key_type"] is None:
        for c in params.get("clusters") or []:
            cert = files.read_optional(os.path.join(base, c.get("name") or "-", "ca-cert.pem"))
            if cert is not None:
                kw["key_type"] = ca.key_type_of(ca.load_cert(cert, "%s/ca-cert.pem" % c["name"]).public_key())
                break
    return ca.Params(**kw)


def read_state(base):
    text = files.read_optional(os.path.join(base, rotation.STATE_FILE))
    return None if text is None else rotation.load_state(text.decode("utf-8"), os.path.join(base, rotation.STATE_FILE))


# --- observing the clusters -------------------------------------------------------------------

def multiroot_of(deployments):
    """True when every istiod container of ``deployments`` has ISTIO_MULTIROOT_MESH=true, False when
    one has not, None when there is no istiod Deployment (an istiod outside the cluster)."""
    seen = None
    for d in deployments:
        for c in ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
            if c.get("name") not in ("discovery", "istiod"):
                continue
            env = dict((e.get("name"), e.get("value")) for e in c.get("env") or [])
            on = str(env.get(MULTIROOT_ENV, "")).strip().lower() == "true"
            seen = on if seen is None else (seen and on)
    return seen


def observe(svc, spec, trust_bundle, probe_ns, probe_sa, timeout=15.0):
    """One cluster as rotation.observe_cluster reads it.  ClusterError when its API server does not
    answer; a CA that does not sign leaves workload_chain None and says why in ``probe_error``."""
    secret = svc.get("v1", "Secret", SECRET, NAMESPACE)
    cms = svc.list("v1", "ConfigMap", label_selector=CONFIGMAP_SELECTOR)
    configmaps = dict(((cm.get("metadata") or {}).get("namespace"),
                       ((cm.get("data") or {}).get("root-cert.pem") or "").encode("ascii") or None)
                      for cm in cms if (cm.get("metadata") or {}).get("name") == CONFIGMAP)
    multiroot = multiroot_of(svc.list("apps/v1", "Deployment", namespace=NAMESPACE, label_selector=ISTIOD_SELECTOR))
    if multiroot is None and spec.get("multiroot") is not None:
        multiroot = bool(spec["multiroot"])
    out = {"multiroot": multiroot, "secret": cacerts.decode(secret.get("data")) if secret else None,
           "secret_object": secret, "configmaps": configmaps, "workload_chain": None, "probe_error": None}
    try:
        got = ca_client.workload_certificate(svc, spec["address"], probe_ns, probe_sa, trust_bundle,
                                             target_name=spec["target_name"], validity_seconds=600, timeout=timeout)
        out["workload_chain"] = got["chain"]
    except (ca_client.CAClientError, ClusterError) as e:
        out["probe_error"] = str(e)
    return out


def observe_all(specs, service, trust_bundle, params):
    """Every cluster observed in parallel; CAError naming every cluster that could not be read."""
    services = dict((s["name"], service.connect(s["conn"], s["name"]) if service is not None else Service(s["conn"], s["name"]))
                    for s in specs)
    workers = max(1, min(int(params.get("workers") or 4), len(specs)))
    results, failures = {}, {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = dict((pool.submit(observe, services[s["name"]], s, trust_bundle, params["probe_namespace"],
                                    params["probe_service_account"]), s["name"]) for s in specs)
        for fut in concurrent.futures.as_completed(futures):
            name = futures[fut]
            try:
                results[name] = fut.result()
            except MeshError as e:
                failures[name] = str(e)
    if failures:
        raise CAError("clusters: %s could not be observed, nothing was written: %s"
                      % (", ".join(sorted(failures)), "; ".join(failures[n] for n in sorted(failures))),
                      field="clusters")
    return services, results


# --- the new root and the intermediates --------------------------------------------------------

def _given_new_root(params):
    cert_path, key_path = params.get("new_root_cert_path"), params.get("new_root_key_path")
    if key_path and not cert_path:
        raise CAError("new_root_key_path needs new_root_cert_path", field="new_root_cert_path")
    cert = key = None
    if cert_path:
        cert = files.read_optional(cert_path, "new_root_cert_path")
        if cert is None:
            raise CAError("new_root_cert_path: %s does not exist" % cert_path, field="new_root_cert_path")
    if key_path:
        key = files.read_optional(key_path, "new_root_key_path")
        if key is None:
            raise CAError("new_root_key_path: %s does not exist" % key_path, field="new_root_key_path")
    return cert, key


def _old_bundle(base, observed):
    """The root bundle every cluster's Secret holds (the same bytes everywhere), which the CA
    directory's root-cert.pem must be part of."""
    bundles = {}
    for name, o in sorted(observed.items()):
        if not o["secret"] or not o["secret"].get("root-cert.pem"):
            raise CAError("%s: Secret istio-system/cacerts has no root-cert.pem: install the mesh CA first "
                          "(install_istio)" % name, field="cacerts")
        bundles.setdefault(o["secret"]["root-cert.pem"], []).append(name)
    if len(bundles) > 1:
        raise CAError("clusters: their cacerts Secrets hold different root bundles (%s): run install_istio so that every "
                      "cluster has the CA directory's root before a rotation"
                      % "; ".join("%s: %s" % (", ".join(n), ", ".join(rotation.fingerprints(b, "bundle")))
                                  for b, n in bundles.items()), field="cacerts")
    old = next(iter(bundles))
    root = files.read_optional(os.path.join(base, "root-cert.pem"))
    if root is None:
        raise CAError("dir: %s has no root-cert.pem: not the CA directory of this mesh?" % base, field="dir")
    if not set(rotation.fingerprints(root, "root-cert.pem")) <= set(rotation.fingerprints(old, "bundle")):
        raise CAError("dir: %s/root-cert.pem is not a root the clusters' cacerts Secrets hold: run install_istio first"
                      % base, field="dir")
    return old


def start(base, params, ca_p, observed, now):
    """A new rotation: (state, {relpath: bytes} to write, new root key or None, warnings)."""
    old = _old_bundle(base, observed)
    cert, key = _given_new_root(params)
    passphrase = params.get("new_root_key_passphrase")
    if cert is None:
        cert, key = rotation.generate_new_root(ca_p, now, old)
        source, passphrase = "generated", None
    else:
        source = "provided"
    _summary, warnings = rotation.validate_new_root(cert, key, old, now, key_passphrase=passphrase)
    names = list(observed)
    state = rotation.new_state(old, cert, sorted(names), now, source, params.get("proxy_wait_seconds") or 0)
    todo = {NEW_ROOT_CERT: cert}
    if source == "generated":
        todo[NEW_ROOT_KEY] = key
    return state, todo, key, warnings


def new_root_key(base, params, state):
    """The new root's key (PEM bytes) or None: the one given, else the one generated."""
    if params.get("new_root_key_path"):
        return _given_new_root(params)[1]
    if state["new_root_source"] == "generated":
        return files.read_optional(os.path.join(base, NEW_ROOT_KEY))
    return None


def intermediate(base, name, state, root_key, ca_p, now, passphrase=None):
    """Phase 3's intermediate of ``name``: the one kept in ``<dir>/rotation/<name>`` when it comes from
    the new root and its key matches (a run interrupted after writing it), else a new one.
    Returns (cert PEM, key PEM, {relpath: bytes} to write)."""
    cert_b = files.read_optional(os.path.join(base, ROTATION_DIR, name, "ca-cert.pem"))
    key_b = files.read_optional(os.path.join(base, ROTATION_DIR, name, "ca-key.pem"))
    if cert_b is not None and key_b is not None:
        try:
            cert, key = ca.load_cert(cert_b, "ca-cert.pem"), ca.load_key(key_b, "ca-key.pem")
            root = ca.load_cert(state["new_root"].encode("ascii"), "new root")
            if ca.same_public_key(cert, key) and ca.issued_by(cert, root) and ca.not_after(cert) > now:
                return cert_b, key_b, {}
        except CAError:
            pass
    cert_b, key_b, _capped = rotation.issue_intermediate(name, state["new_root"], root_key, ca_p, now, passphrase)
    rel = "%s/%s" % (ROTATION_DIR, name)
    return cert_b, key_b, {rel + "/ca-cert.pem": cert_b, rel + "/ca-key.pem": key_b}


def final_files(base, state, observed, now):
    """The CA directory once every cluster is at phase 4: root-cert.pem the new root (root-key.pem its
    key when it was generated here), each cluster's files those its Secret holds, the old root's
    and intermediates' files under retired/<date of start>/.  {relpath: bytes}, and the relpaths to
    remove (the rotation's copies of keys now in place)."""
    new_root = state["new_root"].encode("ascii")
    want, remove = {}, []
    cur_root = files.read_optional(os.path.join(base, "root-cert.pem"))
    retired = "%s/%s" % (RETIRED_DIR, state["started"].replace(":", "").replace("-", ""))
    if cur_root != new_root:
        want[retired + "/root-cert.pem"] = cur_root
        old_key = files.read_optional(os.path.join(base, "root-key.pem"))
        if old_key is not None:
            want[retired + "/root-key.pem"] = old_key
    want["root-cert.pem"] = new_root
    gen_key = files.read_optional(os.path.join(base, NEW_ROOT_KEY))
    if gen_key is not None:
        want["root-key.pem"] = gen_key
        remove.append(NEW_ROOT_KEY)
    elif cur_root != new_root and files.read_optional(os.path.join(base, "root-key.pem")) is not None:
        remove.append("root-key.pem")  # the old root's key, kept under retired/; a brought key stays where it is
    for name, o in observed.items():
        sec = o["secret"]
        for f in ca.CLUSTER_FILES:
            rel = "%s/%s" % (name, f)
            have = files.read_optional(os.path.join(base, rel))
            if have is not None and have != sec[f] and f in ("ca-cert.pem", "ca-key.pem"):
                want.setdefault("%s/%s" % (retired, rel), have)
            want[rel] = sec[f]
        for f in ("ca-cert.pem", "ca-key.pem"):
            remove.append("%s/%s/%s" % (ROTATION_DIR, name, f))
    remove.append(NEW_ROOT_CERT)
    return want, [r for r in remove if os.path.exists(os.path.join(base, r))]


# --- the run ---------------------------------------------------------------------------------

def run(params, service, check_mode, want_diff, now=None):
    """Runner of meshfed.istio.root_rotation.  Raises MeshError (nothing written when it does
    before the writes: every refusal comes from reading and planning)."""
    base = params["dir"]
    specs = cluster_specs(params)
    files.check_dir(base)
    timeout = mesh_ca_runner.lock_timeout(params)
    with files.locked(base, timeout, shared=check_mode):
        return _run_locked(params, base, specs, service, check_mode, want_diff, _now(now))


def _write(base, todo):
    plan = files.plan(base, todo, _mode)
    if plan:
        files.apply(base, todo, plan, _mode)
    return [rel for rel, _what in plan]


def _run_locked(params, base, specs, service, check_mode, want_diff, now):
    ca_p = ca_params(params, base)
    names = [s["name"] for s in specs]
    state = read_state(base)
    warnings, dir_todo, changed_files, archive = [], {}, [], None
    until = int(params.get("until_phase") or 4)
    if not 2 <= until <= 4:
        raise CAError("until_phase: must be 2, 3 or 4, got %d" % until, field="until_phase")
    given_cert, _given_key = _given_new_root(params)
    if state is not None and state["completed"]:
        if params.get("new_rotation"):
            archive, state = state, None
        elif given_cert is not None and rotation.fingerprints(given_cert, "new_root_cert")[0] != state["new_root_fingerprint"]:
            raise CAError("new_root_cert_path: the recorded rotation (to sha256 %s) completed on %s; set new_rotation "
                          "to start another one" % (state["new_root_fingerprint"], state["completed"]),
                          field="new_root_cert_path")
    if state is not None:
        rotation.check_same_rotation(state, given_cert, names)

    trust = files.read_optional(os.path.join(base, "root-cert.pem")) or b""
    if state is not None:
        trust = rotation.append_root(trust, state["new_root"])
    services, observed = observe_all(specs, service, trust, params)

    started = state is None
    root_key = None
    if started:
        state, dir_todo, root_key, more = start(base, params, ca_p, observed, now)
        warnings.extend(more)
        if archive is not None:
            dir_todo["%s/%s-%s.json" % (RETIRED_DIR, "rotation", archive["started"].replace(":", "").replace("-", ""))] = \
                rotation.dump_state(archive).encode("utf-8")
    else:
        root_key = new_root_key(base, params, state)
    passphrase = params.get("new_root_key_passphrase") if params.get("new_root_key_path") else None
    result = rotation.plan(state, observed, now, new_root_key_available=root_key is not None)

    # the writes this call may do: those of the phases up to until_phase
    writes = [n for n in result["writes"] if STAGE_OF_ACTION[result["clusters"][n]["action"]] <= until]
    written, diff_before, diff_after = {}, {}, {}
    for name in writes:
        action = result["clusters"][name]["action"]
        stage = STAGE_OF_ACTION[action]
        current = observed[name]["secret"]
        inter = None
        if stage == 3:
            cert_b, key_b, inter_todo = intermediate(base, name, state, root_key, ca_p, now, passphrase)
            inter = (cert_b, key_b)
            dir_todo.update(inter_todo)
        new_files = rotation.cluster_files(stage, state, current, inter)
        if want_diff:
            diff_before[name] = _describe_secret(current)
            diff_after[name] = _describe_secret(new_files)
        written[name] = (stage, new_files)

    if not check_mode:
        # the new root, its key and the intermediates are on disk before any Secret holds them
        changed_files.extend(_write(base, dir_todo))
        for name, (stage, new_files) in sorted(written.items()):
            cacerts_runner.write_secret(services[name], new_files, observed[name]["secret_object"])
    else:
        changed_files.extend(rel for rel, _w in files.plan(base, dir_todo, _mode))

    new_state = rotation.record(state, result, now, dict((n, s) for n, (s, _f) in written.items()))
    state_changed = started or _strip(new_state) != _strip(state)
    if state_changed and not check_mode:
        files.write_atomic(os.path.join(base, rotation.STATE_FILE), rotation.dump_state(new_state).encode("utf-8"),
                           0o644)
    if state_changed:
        changed_files.append(rotation.STATE_FILE)

    finalized = []
    if result["done"]:
        want, remove = final_files(base, new_state, observed, now)
        todo = files.plan(base, want, _mode)
        if todo or remove:
            if not check_mode:
                files.apply(base, want, todo, _mode)
                for rel in remove:
                    os.unlink(os.path.join(base, rel))
            finalized = [rel for rel, _w in todo] + ["-" + rel for rel in remove]
            if want_diff:
                diff_before["dir"] = dict((rel, ca.describe(rel, files.read_optional(os.path.join(base, rel))))
                                          for rel, _w in todo)
                diff_after["dir"] = dict((rel, ca.describe(rel, want[rel])) for rel, _w in todo)
    changed_files.extend(r for r in finalized if not r.startswith("-"))
    return _report(params, base, state, new_state, result, observed, written, changed_files, finalized, until,
                   warnings, started, want_diff, diff_before, diff_after, check_mode)


def _strip(state):
    return dict((k, v) for k, v in state.items() if k != "updated")


def _describe_secret(data):
    out = {}
    for f in ("root-cert.pem", "cert-chain.pem", "ca-cert.pem"):
        out[f] = rotation.describe_bundle(data.get(f), f) if data and data.get(f) else None
    return out


def _report(params, base, state, new_state, result, observed, written, changed_files, finalized, until, warnings,
            started, want_diff, diff_before, diff_after, check_mode):
    clusters = {}
    for name, c in sorted(result["clusters"].items()):
        stage_written = written.get(name, (None,))[0]
        action = c["action"]
        if action in STAGE_OF_ACTION and (stage_written is None or check_mode):
            why = "until_phase %d" % until if STAGE_OF_ACTION[action] > until else "check mode"
            waits = "nothing: the next run does %s (not written: %s)" % (action, why)
        else:
            waits = WAITS_FOR.get(action, action)
        entry = {"phase": c["phase"], "phase_name": c["phase_name"], "secret_stage": c["written"],
                 "action": action, "waits_for": waits, "pending": c["pending"], "workload_root": c["workload"],
                 "multiroot": observed[name]["multiroot"]}
        if stage_written is not None and not check_mode:
            entry["wrote_stage"] = stage_written
        if observed[name]["probe_error"]:
            entry["probe_error"] = observed[name]["probe_error"]
        clusters[name] = entry
    phase = result["phase"]
    complete = result["done"] and not (check_mode and finalized)
    out = {
        "changed": bool(written) or bool(changed_files) or bool(finalized),
        "phase": phase,
        "phase_name": rotation.PHASE_NAMES[phase],
        "done": complete or (phase >= until and not written),
        "completed": complete,
        "until_phase": until,
        "started": started,
        "dir": base,
        "state_path": os.path.join(base, rotation.STATE_FILE),
        "new_root": rotation.describe_bundle(new_state["new_root"], "new root")[0],
        "new_root_source": new_state["new_root_source"],
        "old_roots": rotation.describe_bundle(new_state["old_bundle"], "old bundle"),
        "clusters": clusters,
        "changed_files": sorted(set(changed_files)),
        "finalized": bool(finalized),
        "warnings": warnings,
    }
    if want_diff and (diff_before or diff_after):
        out["diff"] = {"before": diff_before, "after": diff_after}
    return out
