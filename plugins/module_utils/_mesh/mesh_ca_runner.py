# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Orchestration of meshfed.istio.mesh_ca: read, reconcile, write, report.

Two runs on one directory at once (two AWX jobs) take turns: the whole read-plan-write
holds an exclusive lock on ``<dir>/.lock`` (files.locked), so the second run reads what
the first wrote (one root, adopted) instead of making a root of its own.  Check mode
writes nothing, not even the lock: it takes a shared lock when the lock file exists.
"""

from __future__ import annotations

import datetime
import json
import os

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, files, rotation
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError, MeshError

PARAM_NAMES = tuple(ca.Params.FIELDS)
DEFAULT_LOCK_TIMEOUT = 300


def read_existing(base, cluster_names, root_cert_path=None, root_key_path=None, root_key_passphrase=None):
    if root_key_path and not root_cert_path:
        raise CAError("root_key_path needs root_cert_path", field="root_cert_path")
    if root_cert_path:
        root_cert = files.read_optional(root_cert_path, "root_cert_path")
        if root_cert is None:
            raise CAError("root_cert_path: %s does not exist" % root_cert_path, field="root_cert_path")
        root_key = None
        if root_key_path:
            root_key = files.read_optional(root_key_path, "root_key_path")
            if root_key is None:
                raise CAError("root_key_path: %s does not exist" % root_key_path, field="root_key_path")
        provided = True
    else:
        root_cert = files.read_optional(os.path.join(base, "root-cert.pem"))
        root_key = files.read_optional(os.path.join(base, "root-key.pem"))
        provided = False
    clusters = {}
    for name in cluster_names:
        clusters[name] = dict((f, files.read_optional(os.path.join(base, name, f))) for f in ca.CLUSTER_FILES)
    return ca.Existing(root_cert=root_cert, root_key=root_key, clusters=clusters, root_provided=provided,
                       root_key_passphrase=root_key_passphrase)


def refuse_while_rotating(base):
    """A CAError when a root rotation is in progress in ``base`` (rotation.json there
    and not completed): a run of mesh_ca, then cacerts, would write the old root back."""
    text = files.read_optional(os.path.join(base, rotation.STATE_FILE))
    if text is None:
        return
    path = os.path.join(base, rotation.STATE_FILE)
    try:
        state = json.loads(text.decode("utf-8"))
    except ValueError:
        state = {}
    if isinstance(state, dict) and state.get("completed"):
        return
    raise CAError("dir: a root CA rotation is in progress in %s (%s, started %s): this run would write the old root "
                  "back into the clusters. Finish the rotation first (ansible-playbook playbooks/rotate_root_ca.yml)"
                  % (base, path, state.get("started", "?") if isinstance(state, dict) else "?"), field="dir")


def lock_timeout(params):
    """The lock_timeout option, checked (seconds, at least 0)."""
    value = params.get("lock_timeout")
    value = DEFAULT_LOCK_TIMEOUT if value is None else value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MeshError("lock_timeout: must be a number of seconds, at least 0, got %r" % (value,),
                        field="lock_timeout")
    return value


def run(params, service, check_mode, want_diff, now=None):
    """Runner of meshfed.istio.mesh_ca (``service`` is None: it talks to no cluster).  Raises MeshError.
    Reads, plans and writes under the directory's lock (module docstring)."""
    base = params["dir"]
    names = ca.validate_cluster_names(params.get("clusters") or [])
    ca_params = ca.Params(**dict((k, params.get(k)) for k in PARAM_NAMES))
    timeout = lock_timeout(params)
    files.check_dir(base)
    with files.locked(base, timeout, shared=check_mode) as lock:
        result = _run_locked(params, base, names, ca_params, check_mode, want_diff, now)
    if lock["waited"]:
        result["warnings"].append("dir: waited %.1f s for another run to release %s (lock last taken by %s) "
                                  "before reading %s"
                                  % (lock["waited"], lock["path"], lock["holder"], base))
    return result


def _run_locked(params, base, names, ca_params, check_mode, want_diff, now):
    """Read, reconcile, write (not in check mode) and report; the caller holds the lock."""
    refuse_while_rotating(base)
    existing = read_existing(base, names, params.get("root_cert_path"), params.get("root_key_path"),
                             params.get("root_key_passphrase"))
    plan = ca.reconcile(existing, names, ca_params, now or datetime.datetime.now(datetime.timezone.utc))
    wanted = plan["files"]
    todo = files.plan(base, wanted, ca.file_mode)
    diff = _diff(base, wanted, todo) if want_diff and todo else None
    if todo and not check_mode:
        try:
            files.apply(base, wanted, todo, ca.file_mode)
        except OSError as e:
            raise MeshError("dir: writing %s failed: %s" % (base, e), field="dir")

    root_provided = existing.root_provided
    result = {
        "changed": bool(todo),
        "dir": base,
        "changed_files": [os.path.join(base, rel) for rel, dummy in todo],
        "root": dict(plan["root"]["summary"], action=plan["root"]["action"],
                     cert_path=os.path.join(base, "root-cert.pem"),
                     key_path=(params.get("root_key_path") if root_provided
                               else os.path.join(base, "root-key.pem") if "root-key.pem" in wanted else None),
                     source_cert_path=params.get("root_cert_path") if root_provided else None),
        "clusters": {},
    }
    for name, info in plan["clusters"].items():
        d = os.path.join(base, name)
        entry = dict(info["summary"] or {}, action=info["action"], reasons=info["reasons"], dir=d,
                     ca_cert_path=os.path.join(d, "ca-cert.pem"), ca_key_path=os.path.join(d, "ca-key.pem"),
                     root_cert_path=os.path.join(d, "root-cert.pem"), cert_chain_path=os.path.join(d, "cert-chain.pem"))
        result["clusters"][name] = entry
    if diff is not None:
        result["diff"] = diff
    result["warnings"] = plan["warnings"]
    return result


def _diff(base, wanted, todo):
    """before/after of every file to write: certificate summaries, key sizes, modes; never key material."""
    before, after = {}, {}
    for rel, what in todo:
        path = os.path.join(base, rel)
        if what == "mode":
            before[rel] = "mode %04o" % files.current_mode(path)
            after[rel] = "mode %04o" % ca.file_mode(rel)
        else:
            before[rel] = ca.describe(rel, files.read_optional(path))
            after[rel] = ca.describe(rel, wanted[rel])
    return {"before": before, "after": after, "before_header": base, "after_header": base}
