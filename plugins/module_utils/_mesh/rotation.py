# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Root CA rotation across the clusters of a mesh, as pure logic (no I/O).

istiod hot-reloads its plug-in CA files and accepts a changed root bundle only with
ISTIO_MULTIROOT_MESH=true and only when one bundle is a subset of the other (before
Istio 1.30 a byte match, from 1.30 a set match).  The one path that works everywhere
is A -> A+B -> B, each step written to every cluster and verified there before the
next one starts:

====== ==================================================== ========================
phase  cacerts Secret                                       done when
====== ==================================================== ========================
1      unchanged (old intermediate, old bundle ``O``)       istiod has multi-root on
2      ``root-cert.pem`` = ``O`` + new root ``N``            every ``istio-ca-root-cert``
       (appended bytes; intermediate, key, chain unchanged) holds O's roots then N
3      new intermediate issued by N, ``cert-chain.pem`` =   the ConfigMaps hold O+N+N and
       intermediate + N, ``root-cert.pem`` = ``O+N+N``     a workload certificate from
                                                            that istiod chains to N (and
                                                            ``proxy_wait_seconds`` passed)
4      ``root-cert.pem`` = ``N`` (intermediate kept)         the ConfigMaps hold N only
====== ==================================================== ========================

Phase 3's bundle is ``O+N+N``, as Istio's own rotation test writes it: the bundle bytes must
change so that istiod pushes the bundle (and proxies with PROXY_CONFIG_XDS_AGENT re-request
their certificates at once), ``O+N`` is a byte prefix of ``O+N+N`` (the pre-1.30 subset test)
and the two are equal as sets (the 1.30 one), and ``N`` is a byte substring of ``O+N+N``, so
phase 4 passes both tests too.  The duplicated root is harmless (TLS stacks de-duplicate
trust anchors) and gone at phase 4.

Phase N+1 starts on a cluster only when every cluster has completed phase N; phase 4 only
when every cluster completed 3 -- so at any moment every workload certificate of the mesh
chains to a root every cluster trusts.  The old root's key is never needed; the new root's
key only to issue the phase-3 intermediates.

The state of a rotation lives in ``<ca dir>/rotation.json`` (``STATE_FILE``, see
``new_state``).  What is observed on the clusters decides each cluster's phase
(``observe_cluster``); the record is checked against it and refused when they disagree
(a Secret rolled back, a root that is neither old nor new).  ``plan`` gives every
cluster's phase and next action; ``record`` gives the next state.
"""

from __future__ import annotations

import copy
import datetime
import json

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

STATE_FILE = "rotation.json"
STATE_FORMAT = "meshfed.istio/root-rotation"
STATE_VERSION = 1

# what the cacerts Secret's root-cert.pem holds at each stage (0: the old bundle, untouched)
STAGES = (0, 2, 3, 4)
PHASE_NAMES = {
    0: "not started",
    1: "prerequisites checked",
    2: "trust bundle old+new",
    3: "intermediate from the new root",
    4: "new root only",
}

# next actions of a cluster (plan()["clusters"][name]["action"])
ACT_ENABLE_MULTIROOT = "enable_multiroot"   # refused: istiod must run with ISTIO_MULTIROOT_MESH=true
ACT_WRITE_BUNDLE = "write_bundle"           # phase 2: root-cert.pem = old + new
ACT_WAIT_BUNDLE = "wait_bundle"             # phase 2 written; ConfigMaps do not show both roots yet
ACT_ISSUE_INTERMEDIATE = "issue_intermediate"  # phase 3: new intermediate, root-cert.pem = old + new + new
ACT_WAIT_WORKLOADS = "wait_workloads"       # phase 3 written; workload certificates not from the new root yet
ACT_WRITE_NEW_ROOT = "write_new_root"       # phase 4: root-cert.pem = new
ACT_WAIT_NEW_ROOT = "wait_new_root"         # phase 4 written; ConfigMaps still show the old root
ACT_WAIT_OTHERS = "wait_others"             # this cluster completed its phase; others have not
ACT_DONE = "done"
WRITE_ACTIONS = (ACT_WRITE_BUNDLE, ACT_ISSUE_INTERMEDIATE, ACT_WRITE_NEW_ROOT)


def _iso(now):
    return ca._utc(now).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text, what):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        raise CAError("%s: %r is not a UTC time like 2026-01-31T12:00:00Z" % (what, text), field="state")


def _b(data):
    return data.encode("utf-8") if isinstance(data, str) else data


# --- certificates and bundles -------------------------------------------------------------

def load_bundle(data, what):
    """The certificates of a PEM bundle, in order (at least one); CAError naming ``what``."""
    if data is None:
        raise CAError("%s: no certificate (missing)" % what)
    try:
        certs = ca.x509.load_pem_x509_certificates(_b(data))
    except ValueError as e:
        raise CAError("%s: not a PEM certificate bundle (%s)" % (what, str(e).split(" See https", maxsplit=1)[0].rstrip(".")))
    if not certs:
        raise CAError("%s: holds no certificate" % what)
    return certs


def fingerprint(cert):
    """SHA-256 fingerprint, upper-case hex pairs joined by ':' (as ca.summary shows it)."""
    return cert.fingerprint(ca.hashes.SHA256()).hex(":").upper()


def fingerprints(data, what):
    """The fingerprints of a bundle, in order (duplicates kept)."""
    return [fingerprint(c) for c in load_bundle(data, what)]


def describe_bundle(data, what="bundle"):
    """For check/diff output: subject, issuer, serial, SHA-256 fingerprint, not_before, not_after
    and key type of every certificate of a PEM bundle, in order.  Never key material."""
    if data is None:
        return None
    return [ca.summary(c) for c in load_bundle(data, what)]


def append_root(bundle, root_pem):
    """``bundle`` with ``root_pem`` appended, bytes untouched (a newline added between them only
    when ``bundle`` does not end with one): what istiod's subset test needs before 1.30."""
    bundle, root_pem = _b(bundle), _b(root_pem)
    if bundle and not bundle.endswith(b"\n"):
        bundle += b"\n"
    return bundle + root_pem


def bundles(old_bundle, new_root_pem):
    """The root-cert.pem bytes of every stage: {0: O, 2: O+N, 3: O+N+N, 4: N}."""
    two = append_root(old_bundle, new_root_pem)
    return {0: _b(old_bundle), 2: two, 3: append_root(two, new_root_pem), 4: _b(new_root_pem)}


def _walk(leaf, pool, roots, now):
    """The root of ``roots`` that ``leaf`` chains to through CA certificates of ``pool``, or None;
    every certificate of the path must be valid at ``now``."""
    current, used = leaf, set()
    for _depth in range(len(pool) + 1):
        if not ca.not_before(current) <= now <= ca.not_after(current):
            return None
        for root in roots:
            if ca.issued_by(current, root) and ca.not_before(root) <= now <= ca.not_after(root):
                return root
        nxt = None
        for i, cand in enumerate(pool):
            if i in used or cand.subject == cand.issuer:
                continue  # self-signed certificates of a chain are not trust anchors
            bc = ca._ext(cand, ca.x509.BasicConstraints)
            if bc is not None and bc.ca and ca.issued_by(current, cand):
                nxt, current = i, cand
                break
        if nxt is None:
            return None
        used.add(nxt)
    return None


def verify_chain(chain, bundle, now, what="certificate chain"):
    """The summary of the root of ``bundle`` (PEM bytes) that ``chain`` chains to, or None.

    ``chain`` is a list of PEM strings or bytes, leaf first, as istiod's CA returns it (its last
    element, the root bundle istiod holds, is used only as path material: trust comes from
    ``bundle`` alone).  Signatures, names and validity at ``now`` are checked."""
    now = ca._utc(now)
    certs = []
    for i, pem in enumerate(chain or []):
        certs.extend(load_bundle(pem, "%s element %d" % (what, i)))
    if not certs:
        raise CAError("%s: empty" % what)
    root = _walk(certs[0], certs[1:], load_bundle(bundle, "trust bundle"), now)
    return ca.summary(root) if root is not None else None


def chain_roots(chain, old_bundle, new_root_pem, now):
    """Which roots ``chain`` verifies against: {"old": bool, "new": bool}."""
    return {"old": verify_chain(chain, old_bundle, now) is not None,
            "new": verify_chain(chain, new_root_pem, now) is not None}


def leaf_identity(chain):
    """The URI SANs (SPIFFE identity) and summary of a chain's leaf."""
    return ca.identity(_b(chain[0]), "the leaf certificate")


# --- input validation ---------------------------------------------------------------------

def validate_new_root(cert_pem, key_pem, old_bundle, now, key_passphrase=None):
    """Check the new root before any change.  Returns (summary, warnings).

    Raises CAError naming ``new_root_cert`` or ``new_root_key``: not exactly one certificate,
    not a CA (basicConstraints CA:TRUE, keyUsage keyCertSign), not valid now, the same
    certificate as a root of ``old_bundle``, or a key (when given) that does not match."""
    now = ca._utc(now)
    certs = load_bundle(cert_pem, "new_root_cert")
    if len(certs) != 1:
        raise CAError("new_root_cert: holds %d certificates; give the new root alone" % len(certs), field="new_root_cert")
    cert = certs[0]
    key = ca.load_key(_b(key_pem), "new_root_key", key_passphrase) if key_pem is not None else None
    problems = []
    bc = ca._ext(cert, ca.x509.BasicConstraints)
    if bc is None or not bc.ca:
        problems.append("it is not a CA certificate (basicConstraints CA:TRUE missing)")
    ku = ca._ext(cert, ca.x509.KeyUsage)
    if ku is None or not ku.key_cert_sign:
        problems.append("its keyUsage lacks keyCertSign")
    if ca.not_before(cert) > now:
        problems.append("it is not valid before %s" % ca.not_before(cert).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if ca.not_after(cert) <= now:
        problems.append("it expired on %s" % ca.not_after(cert).strftime("%Y-%m-%d"))
    if problems:
        raise CAError("new_root_cert: %s cannot be the new root: %s"
                      % (cert.subject.rfc4514_string(), "; ".join(problems)), field="new_root_cert")
    if key is not None and not ca.same_public_key(cert, key):
        raise CAError("new_root_key: does not match new_root_cert (%s)" % cert.subject.rfc4514_string(),
                      field="new_root_key")
    warnings = []
    for old in load_bundle(old_bundle, "the current root bundle"):
        if fingerprint(old) == fingerprint(cert):
            raise CAError("new_root_cert: is the current root (%s, sha256 %s); a rotation needs another root"
                          % (cert.subject.rfc4514_string(), fingerprint(cert)), field="new_root_cert")
        if ca.same_public_key(old, cert):  # (a certificate has public_key() too)
            warnings.append("new_root_cert has the same key as the current root %s: a rotation that keeps the key "
                            "protects against nothing but the old certificate's expiry" % old.subject.rfc4514_string())
        elif old.subject == cert.subject:
            warnings.append("new_root_cert has the same subject as the current root (%s): give it another name so "
                            "that chains and logs tell them apart" % cert.subject.rfc4514_string())
        if ca.not_after(cert) < ca.not_after(old):
            warnings.append("new_root_cert expires on %s, before the current root %s (%s)"
                            % (ca.not_after(cert).strftime("%Y-%m-%d"), old.subject.rfc4514_string(),
                               ca.not_after(old).strftime("%Y-%m-%d")))
    if cert.subject != cert.issuer:
        warnings.append("new_root_cert is not self-signed (issuer %s): it is trusted as an anchor all the same"
                        % cert.issuer.rfc4514_string())
    return ca.summary(cert), warnings


def generate_new_root(params, now, old_bundle=None):
    """A new root with ca.py's helpers: (cert PEM, key PEM).  When its subject would equal one of
    ``old_bundle``'s roots, the common name gets the date (``Root CA 2026-11-30``)."""
    key = ca.generate_key(params.root_key_type)
    cert = ca.build_root(key, params, now)
    if old_bundle is not None and any(o.subject == cert.subject for o in load_bundle(old_bundle, "old bundle")):
        dated = ca.Params(**dict((k, getattr(params, k)) for k in ca.Params.FIELDS))
        dated.root_common_name = "%s %s" % (params.root_common_name, ca._utc(now).strftime("%Y-%m-%d"))
        cert = ca.build_root(key, dated, now)
    return ca.cert_pem(cert), ca.key_pem(key)


def issue_intermediate(cluster, new_root_pem, new_root_key_pem, params, now, key_passphrase=None):
    """Phase 3's intermediate of ``cluster``, issued by the new root: (cert PEM, key PEM, capped)."""
    root = ca.load_cert(_b(new_root_pem), "new_root_cert")
    root_key = ca.load_key(_b(new_root_key_pem), "new_root_key", key_passphrase)
    key = ca.generate_key(params.key_type)
    cert, capped = ca.build_intermediate(cluster, key, root, root_key, params, now)
    return ca.cert_pem(cert), ca.key_pem(key), capped


def cluster_files(stage, state, current, intermediate=None):
    """The four cacerts files of a cluster at ``stage`` (2, 3 or 4).

    ``current``: the files the Secret holds now ({name: bytes}); stage 2 keeps its intermediate,
    key and chain, stage 4 keeps the (phase 3) intermediate.  ``intermediate``: (cert PEM, key
    PEM) issued by the new root, for stage 3.  Validated with ``validate_cluster_files``."""
    want = bundles(state["old_bundle"], state["new_root"])
    if stage in (2, 4):
        files = dict((k, _b(current[k])) for k in ("ca-cert.pem", "ca-key.pem", "cert-chain.pem"))
    elif stage == 3:
        if intermediate is None:
            raise CAError("stage 3 needs the intermediate issued by the new root")
        cert_b, key_b = _b(intermediate[0]), _b(intermediate[1])
        files = {"ca-cert.pem": cert_b, "ca-key.pem": key_b,
                 "cert-chain.pem": append_root(cert_b, state["new_root"])}
    else:
        raise CAError("no cacerts files for stage %r (one of 2, 3, 4)" % (stage,))
    files["root-cert.pem"] = want[stage]
    validate_cluster_files(files)
    return files


def validate_cluster_files(files, what="cacerts"):
    """What istiod checks before it takes new plug-in files: ca-key.pem matches ca-cert.pem, and
    ca-cert.pem chains through cert-chain.pem to one of the roots of root-cert.pem (a bundle,
    unlike cacerts.desired_data, which wants one root)."""
    cert = ca.load_cert(_b(files["ca-cert.pem"]), "%s ca-cert.pem" % what)
    key = ca.load_key(_b(files["ca-key.pem"]), "%s ca-key.pem" % what)
    if not ca.same_public_key(cert, key):
        raise CAError("%s: ca-key.pem does not match ca-cert.pem" % what, field="src")
    chain = load_bundle(files["cert-chain.pem"], "%s cert-chain.pem" % what)
    if chain[0] != cert:
        raise CAError("%s: cert-chain.pem does not start with ca-cert.pem" % what, field="src")
    roots = load_bundle(files["root-cert.pem"], "%s root-cert.pem" % what)
    if not any(ca.issued_by(c, r) for c in chain for r in roots):
        raise CAError("%s: ca-cert.pem does not chain through cert-chain.pem to a root of root-cert.pem" % what,
                      field="src")
    return files


# --- the state record -----------------------------------------------------------------------

def new_state(old_bundle, new_root_pem, clusters, now, new_root_source="provided", proxy_wait_seconds=0):
    """The record of a rotation that starts now (format version STATE_VERSION)::

        {format, version, started, updated, completed (null until every cluster is at 4),
         old_bundle (PEM text, the bytes every cacerts Secret held), old_roots ([fingerprint]),
         new_root (PEM text), new_root_fingerprint, new_root_source (provided|generated),
         proxy_wait_seconds,
         clusters: {name: {phase (completed, 0-4), written (stage in the Secret: 0, 2, 3, 4),
                           at: {"<phase>": time completed}, written_at: {"<stage>": time written}}}}

    Certificates only: no key is ever recorded."""
    ca.validate_cluster_names(clusters)
    if proxy_wait_seconds is None or int(proxy_wait_seconds) < 0:
        raise CAError("proxy_wait_seconds: must be at least 0, got %r" % (proxy_wait_seconds,), field="proxy_wait_seconds")
    ts = _iso(now)
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "started": ts,
        "updated": ts,
        "completed": None,
        "old_bundle": _b(old_bundle).decode("ascii"),
        "old_roots": fingerprints(old_bundle, "old_bundle"),
        "new_root": _b(new_root_pem).decode("ascii"),
        "new_root_fingerprint": fingerprints(new_root_pem, "new_root")[0],
        "new_root_source": new_root_source,
        "proxy_wait_seconds": int(proxy_wait_seconds),
        "clusters": dict((c, {"phase": 0, "written": 0, "at": {}, "written_at": {}}) for c in clusters),
    }


def load_state(text, what=STATE_FILE):
    """Parse and validate a state file's text; CAError naming the file and the field."""
    try:
        state = json.loads(text)
    except ValueError as e:
        raise CAError("%s: not JSON: %s" % (what, e), field="state")
    validate_state(state, what)
    return state


def dump_state(state):
    """The state file's text (sorted keys, stable for diffs)."""
    return json.dumps(state, indent=2, sort_keys=True) + "\n"


def validate_state(state, what=STATE_FILE):
    def bad(field, why):
        raise CAError("%s: %s %s" % (what, field, why), field="state")

    if not isinstance(state, dict):
        bad("(top level)", "is not an object")
    if state.get("format") != STATE_FORMAT:
        bad("format", "is %r, expected %r" % (state.get("format"), STATE_FORMAT))
    if state.get("version") != STATE_VERSION:
        bad("version", "is %r; this collection reads version %d (a newer collection wrote it?)"
            % (state.get("version"), STATE_VERSION))
    for field in ("started", "updated"):
        _parse_iso(state.get(field), "%s: %s" % (what, field))
    if state.get("completed") is not None:
        _parse_iso(state["completed"], "%s: completed" % what)
    try:
        old = fingerprints(state.get("old_bundle"), "old_bundle")
        new = fingerprints(state.get("new_root"), "new_root")
    except CAError as e:
        bad("", str(e))
    if old != state.get("old_roots"):
        bad("old_roots", "do not match old_bundle's certificates")
    if len(new) != 1 or new[0] != state.get("new_root_fingerprint"):
        bad("new_root_fingerprint", "does not match new_root")
    if new[0] in old:
        bad("new_root", "is one of the old roots")
    if state.get("new_root_source") not in ("provided", "generated"):
        bad("new_root_source", "is %r, expected provided or generated" % (state.get("new_root_source"),))
    if not isinstance(state.get("proxy_wait_seconds"), int) or state["proxy_wait_seconds"] < 0:
        bad("proxy_wait_seconds", "must be a whole number of seconds, at least 0")
    clusters = state.get("clusters")
    if not isinstance(clusters, dict) or not clusters:
        bad("clusters", "must name at least one cluster")
    for name, c in clusters.items():
        if not isinstance(c, dict) or c.get("phase") not in PHASE_NAMES or c.get("written") not in STAGES:
            bad("clusters.%s" % name, "needs phase (0-4) and written (0, 2, 3 or 4)")
        if c["phase"] not in (_needs(c["written"]), _needs(c["written"]) + 1):
            bad("clusters.%s" % name, "phase %d does not go with written stage %d" % (c["phase"], c["written"]))
        for key in ("at", "written_at"):
            for k, v in (c.get(key) or {}).items():
                _parse_iso(v, "%s: clusters.%s.%s.%s" % (what, name, key, k))
    return state


def _needs(stage):
    """The phase every cluster had completed when a Secret was written at ``stage`` (stage 0:
    nothing written).  A cluster at ``stage`` has completed that phase or the next one."""
    return {0: 0, 2: 1, 3: 2, 4: 3}[stage]


def check_same_rotation(state, new_root_pem, clusters):
    """A re-run must continue the recorded rotation: same new root (when given), same clusters."""
    if new_root_pem is not None:
        given = fingerprints(new_root_pem, "new_root_cert")[0]
        if given != state["new_root_fingerprint"]:
            raise CAError("new_root_cert: sha256 %s differs from the new root of the rotation in progress (sha256 %s, "
                          "started %s); finish that rotation first" % (given, state["new_root_fingerprint"], state["started"]),
                          field="new_root_cert")
    if sorted(clusters) != sorted(state["clusters"]):
        raise CAError("clusters: %s differ from the clusters of the rotation in progress (%s)"
                      % (", ".join(sorted(clusters)), ", ".join(sorted(state["clusters"]))), field="clusters")


# --- observing a cluster --------------------------------------------------------------------

def _stage_of_bundle(data, state, want, cluster, field):
    """The stage whose bundle ``data`` holds (0, 2, 3 or 4), compared as an ordered list of
    fingerprints; CAError naming cluster and field for a root that is neither old nor new, or a
    bundle this rotation never writes."""
    have = fingerprints(data, "%s: %s" % (cluster, field))
    known = set(state["old_roots"]) | {state["new_root_fingerprint"]}
    strangers = [fp for fp in have if fp not in known]
    if strangers:
        raise CAError("%s: %s holds a root that is neither the old nor the new root (sha256 %s); refusing to go on"
                      % (cluster, field, ", ".join(strangers)), field=field)
    for stage in STAGES:
        if have == want[stage]:
            return stage
    raise CAError("%s: %s holds roots in an order no phase of this rotation writes (%s); expected one of: old %s, "
                  "old+new, old+new+new, new" % (cluster, field, ", ".join(have), ", ".join(state["old_roots"])),
                  field=field)


def _fp_want(state):
    return dict((s, fingerprints(b, "bundle")) for s, b in bundles(state["old_bundle"], state["new_root"]).items())


def secret_stage(name, state, secret):
    """The stage (0, 2, 3 or 4) of a cluster's cacerts Secret ({file: bytes}, or None), from its
    root-cert.pem: the roots in this rotation's order and its exact bytes, or CAError."""
    if not secret or secret.get("root-cert.pem") is None:
        raise CAError("%s: Secret istio-system/cacerts has no root-cert.pem: the mesh does not use the plug-in CA"
                      % name, field="cacerts")
    field = "Secret istio-system/cacerts root-cert.pem"
    stage = _stage_of_bundle(secret["root-cert.pem"], state, _fp_want(state), name, field)
    if _b(secret["root-cert.pem"]) != bundles(state["old_bundle"], state["new_root"])[stage]:
        raise CAError("%s: %s holds the roots of stage %d but not the bytes this rotation writes (re-encoded or "
                      "reordered?): istiod before 1.30 compares bundles byte by byte" % (name, field, stage),
                      field="cacerts")
    return stage


def observe_cluster(name, state, observed, now):
    """What ``observed`` says of one cluster: {phase (completed), written (the Secret's stage),
    pending (what is not there yet), workload ('old', 'new', 'both' or None)}.

    ``observed``: {multiroot: True|False|None (unknown), secret: {cacerts file: bytes} or None,
    configmaps: {namespace: root-cert.pem of istio-ca-root-cert}, workload_chain: [PEM] or None
    (a certificate freshly signed by this cluster's istiod)}.  Raises CAError naming the cluster
    and the field when what is there fits no phase."""
    now = ca._utc(now)
    fp_want = _fp_want(state)
    stage = secret_stage(name, state, observed.get("secret"))
    secret = observed["secret"]
    # the intermediate must come from the root this stage expects
    inter = ca.load_cert(_b(secret.get("ca-cert.pem") or b""), "%s: Secret istio-system/cacerts ca-cert.pem" % name)
    from_new = ca.issued_by(inter, load_bundle(state["new_root"], "new_root")[0])
    if stage in (0, 2) and from_new:
        raise CAError("%s: Secret istio-system/cacerts ca-cert.pem is issued by the new root while root-cert.pem is at "
                      "stage %d (%s): written by something else than this rotation" % (name, stage, PHASE_NAMES[stage]),
                      field="cacerts")
    if stage in (3, 4) and not from_new:
        raise CAError("%s: Secret istio-system/cacerts ca-cert.pem is not issued by the new root while root-cert.pem is "
                      "at stage %d (%s)" % (name, stage, PHASE_NAMES[stage]), field="cacerts")

    pending = []
    cm_stages = {}
    for ns, data in sorted((observed.get("configmaps") or {}).items()):
        if not data:
            pending.append("ConfigMap %s/istio-ca-root-cert has no root-cert.pem" % ns)
            continue
        cm_stages[ns] = _stage_of_bundle(data, state, fp_want, name, "ConfigMap %s/istio-ca-root-cert" % ns)
    if not cm_stages:
        pending.append("no istio-ca-root-cert ConfigMap was read")
    behind = sorted(ns for ns, s in cm_stages.items() if s < stage)
    ahead = sorted(ns for ns, s in cm_stages.items() if s > stage)
    if ahead:
        raise CAError("%s: ConfigMap istio-ca-root-cert in %s shows stage %d, ahead of the Secret's stage %d"
                      % (name, ", ".join(ahead), max(cm_stages[n] for n in ahead), stage), field="istio-ca-root-cert")
    if behind:
        pending.append("ConfigMap istio-ca-root-cert in %s does not show stage %d yet" % (", ".join(behind), stage))

    multiroot = observed.get("multiroot")
    if stage < 4 and multiroot is not True:
        pending.append("istiod has multi-root support %s (ISTIO_MULTIROOT_MESH=true)"
                       % ("off" if multiroot is False else "unknown"))

    workload = None
    chain = observed.get("workload_chain")
    if chain:
        roots = chain_roots(chain, state["old_bundle"], state["new_root"], now)
        workload = "both" if roots["old"] and roots["new"] else "old" if roots["old"] else "new" if roots["new"] else None
        if workload is None:
            raise CAError("%s: the workload certificate istiod signed chains to neither the old nor the new root"
                          % name, field="workload_chain")

    if stage == 0:
        phase = 1 if multiroot is True else 0
    elif stage == 2:
        phase = 2 if not pending else 1
    elif stage == 3:
        if workload != "new":
            pending.append("the workload certificate istiod signs chains to %s, not to the new root"
                           % (workload or "an unknown root (none was requested)"))
        wait = _wait_left(state, name, now)
        if wait > 0:
            pending.append("proxy_wait_seconds: %d s left for proxies that get no push" % wait)
        phase = 3 if not pending else 2
    else:
        phase = 4 if not pending else 3
    return {"phase": phase, "written": stage, "pending": pending, "workload": workload,
            "multiroot": multiroot, "configmaps": cm_stages}


def _wait_left(state, name, now):
    written = (state["clusters"].get(name, {}).get("written_at") or {}).get("3")
    if written is None:
        return state["proxy_wait_seconds"]
    end = _parse_iso(written, "written_at") + datetime.timedelta(seconds=state["proxy_wait_seconds"])
    return max(0, int((end - now).total_seconds() + 0.999))


# --- planning -------------------------------------------------------------------------------

def plan(state, observed, now, new_root_key_available=True):
    """Every cluster's phase and next action.  ``observed``: {cluster: observation} (see
    ``observe_cluster``); every cluster of the rotation must be there (an unreachable one
    stops the rotation).  Returns::

        {phase: the mesh's phase (the lowest completed), done: bool,
         clusters: {name: {phase, phase_name, written, action, pending, workload}},
         writes: [names whose action writes the Secret]}

    Raises CAError for an inconsistent situation, naming the cluster and the field."""
    now = ca._utc(now)
    missing = sorted(set(state["clusters"]) - set(observed))
    if missing:
        raise CAError("clusters: %s could not be observed (unreachable?); a rotation step needs every cluster"
                      % ", ".join(missing), field="clusters")
    for name in sorted(state["clusters"]):
        stage, rec = secret_stage(name, state, observed[name].get("secret")), state["clusters"][name]
        if STAGES.index(stage) < STAGES.index(rec["written"]):
            raise CAError("%s: Secret istio-system/cacerts root-cert.pem is at stage %d (%s) but the rotation wrote "
                          "stage %d (%s) on %s: it was rolled back; restore it or abandon the rotation (remove %s)"
                          % (name, stage, PHASE_NAMES[stage], rec["written"], PHASE_NAMES[rec["written"]],
                             (rec.get("written_at") or {}).get(str(rec["written"]), "?"), STATE_FILE), field="cacerts")
        if STAGES.index(stage) > STAGES.index(rec["written"]) + 1:
            raise CAError("%s: Secret istio-system/cacerts root-cert.pem is at stage %d, more than one step past what "
                          "the rotation recorded (%d)" % (name, stage, rec["written"]), field="cacerts")
    seen = dict((name, observe_cluster(name, state, observed[name], now)) for name in sorted(state["clusters"]))
    # no cluster may have been written further than every other cluster's completed phase allows;
    # a phase once verified (recorded) counts, so that a ConfigMap of a namespace created since
    # does not make a rotation in progress look broken
    mesh_phase = min(s["phase"] for s in seen.values())
    reached = dict((n, max(s["phase"], state["clusters"][n]["phase"])) for n, s in seen.items())
    for name, s in seen.items():
        need = _needs(s["written"])
        laggards = sorted(n for n, p in reached.items() if p < need)
        if laggards:
            verb = "has" if len(laggards) == 1 else "have"
            raise CAError("%s: its cacerts Secret is at stage %d (%s) while %s %s not completed phase %d: workloads "
                          "of %s may not be trusted there"
                          % (name, s["written"], PHASE_NAMES[s["written"]], ", ".join(laggards), verb, need, name),
                          field="cacerts")
    out = {}
    for name, s in sorted(seen.items()):
        action = _action(s, mesh_phase)
        if action == ACT_ENABLE_MULTIROOT:
            raise CAError("%s: istiod %s multi-root support (ISTIO_MULTIROOT_MESH=true): without it istiod refuses a new "
                          "root until it restarts; turn it on (install_istio) and run again"
                          % (name, "does not run with" if s["multiroot"] is False else "could not be shown to have"),
                          field="multiroot")
        if action == ACT_ISSUE_INTERMEDIATE and not new_root_key_available:
            raise CAError("new_root_key: phase 3 issues %s's intermediate from the new root and needs its key" % name,
                          field="new_root_key")
        out[name] = {"phase": s["phase"], "phase_name": PHASE_NAMES[s["phase"]], "written": s["written"],
                     "action": action, "pending": s["pending"], "workload": s["workload"]}
    return {"phase": mesh_phase, "done": mesh_phase == 4, "clusters": out,
            "writes": sorted(n for n, c in out.items() if c["action"] in WRITE_ACTIONS)}


def _action(s, mesh_phase):
    phase, written = s["phase"], s["written"]
    if phase == 4:
        return ACT_DONE
    if written == 0:
        if s["multiroot"] is not True:
            return ACT_ENABLE_MULTIROOT
        return ACT_WRITE_BUNDLE if mesh_phase >= 1 else ACT_WAIT_OTHERS
    if written == 2:
        if phase < 2:
            return ACT_ENABLE_MULTIROOT if s["multiroot"] is not True else ACT_WAIT_BUNDLE
        return ACT_ISSUE_INTERMEDIATE if mesh_phase >= 2 else ACT_WAIT_OTHERS
    if written == 3:
        if phase < 3:
            return ACT_ENABLE_MULTIROOT if s["multiroot"] is not True else ACT_WAIT_WORKLOADS
        return ACT_WRITE_NEW_ROOT if mesh_phase >= 3 else ACT_WAIT_OTHERS
    return ACT_WAIT_NEW_ROOT


def record(state, result, now, written=None):
    """The next state: every cluster's completed phase from ``result`` (plan's output), and the
    stages written since (``written``: {cluster: stage}), with their times.  Pure: returns a copy."""
    ts = _iso(now)
    new = copy.deepcopy(state)
    for name, c in result["clusters"].items():
        rec = new["clusters"][name]
        stage = (written or {}).get(name, c["written"])
        if stage != rec["written"]:
            rec["written"] = stage
            rec["written_at"][str(stage)] = ts
        for p in range(rec["phase"] + 1, c["phase"] + 1):
            rec["at"].setdefault(str(p), ts)
        rec["phase"] = max(rec["phase"], c["phase"])
    new["updated"] = ts
    if all(c["phase"] == 4 for c in new["clusters"].values()) and new["completed"] is None:
        new["completed"] = ts
    return new
