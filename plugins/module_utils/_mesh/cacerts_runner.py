# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""meshfed.istio.cacerts (I/O): one cluster's CA files into Secret istio-system/cacerts."""

from __future__ import annotations

import os

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, cacerts, files, names
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

ISTIOD_SELECTOR = "app=istiod"


def read_src(src):
    """The four files of a cluster directory; error naming the missing one."""
    files.check_dir(src, field="src")
    data = {}
    for name in ca.CLUSTER_FILES:
        content = files.read_optional(os.path.join(src, name), field="src")
        if content is None:
            raise CAError("src: %s is missing %s" % (src, name), field="src")
        data[name] = content
    return data


def run(params, service, check_mode, diff):
    ns, name = params["namespace"], params["name"]
    result = {"changed": False, "namespace_created": False, "restart_required": False,
              "secret": {"namespace": ns, "name": name}}
    existing = service.get("v1", "Secret", name, ns)
    current = cacerts.decode(existing.get("data")) if existing is not None else {}

    if params["state"] == "absent":
        if existing is not None:
            result["changed"] = True
            if diff:
                result["diff"] = {"before": cacerts.describe(current), "after": {}}
            if not check_mode:
                service.delete("v1", "Secret", name, ns)
        return result

    desired = cacerts.desired_data(read_src(params["src"]))
    changed_keys = cacerts.compare(current, desired)
    labels = names.labels_of(existing)
    label_missing = any(labels.get(k) != v for k, v in names.managed_labels().items())
    wrong_type = existing is not None and (existing.get("type") or "Opaque") != "Opaque"
    result["changed"] = bool(changed_keys) or label_missing or wrong_type
    result["changed_keys"] = changed_keys
    cert = ca.load_cert(desired["ca-cert.pem"], "ca-cert.pem")
    root = ca.load_cert(desired["root-cert.pem"], "root-cert.pem")
    result["secret"].update(keys=sorted(desired), ca_cert=ca.summary(cert), root_cert=ca.summary(root))

    istiods = service.list("apps/v1", "Deployment", namespace=ns, label_selector=ISTIOD_SELECTOR)
    result["istiod_deployments"] = sorted(d["metadata"]["name"] for d in istiods)
    # a running istiod reloads new material by itself where it can (cacerts.restart says when)
    result["restart_required"], result["restart_reason"] = cacerts.restart(
        current, desired, changed_keys, [cacerts.istiod_facts(d) for d in istiods])
    if diff and result["changed"]:
        result["diff"] = {"before": cacerts.describe(current) if existing is not None else {},
                          "after": cacerts.describe(desired)}
    if not result["changed"] or check_mode:
        if check_mode and result["changed"]:
            result["namespace_created"] = not service.namespace_exists(ns)
        return result

    result["namespace_created"] = service.ensure_namespace(ns)
    write_secret(service, desired, existing, ns, name, labels=labels, wrong_type=wrong_type)
    return result


def write_secret(service, data, existing, ns="istio-system", name="cacerts", labels=None, wrong_type=False):
    """Write the Secret ``ns``/``name`` with ``data`` ({file: bytes}) over ``existing`` (what a get
    returned, or None): the managed labels added, its other labels and annotations kept, at
    ``existing``'s resourceVersion (a conflict, not a lost update).  Used by meshfed.istio.cacerts
    and by the root rotation (meshfed.istio.root_rotation), whose bundles cacerts.desired_data refuses."""
    labels = names.labels_of(existing) if labels is None else labels
    meta = {"name": name, "namespace": ns, "labels": dict(labels, **names.managed_labels())}
    if existing is not None and existing["metadata"].get("annotations"):
        meta["annotations"] = existing["metadata"]["annotations"]
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "data": cacerts.encode(data)}
    if wrong_type:
        # the type of a Secret cannot change in place
        service.delete("v1", "Secret", name, ns)
        existing = None
    return service.create_or_replace(body, existing)
