# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""reconcile_runner.merge: one result for several kinds (owned_objects), pending included."""

from __future__ import annotations

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile_runner


def sub(created=(), pending=None):
    out = {"changed": bool(created), "created": list(created), "updated": [], "deleted": [], "unchanged": [],
           "fields": {}, "counts": {"created": len(created), "updated": 0, "deleted": 0, "unchanged": 0}}
    if pending:
        out["pending"] = list(pending)
    return out


def test_no_kind_at_all():
    # owned_objects with prune false and no objects plans no kind
    out = reconcile_runner.merge([], True)
    assert out["changed"] is False and out["counts"]["created"] == 0
    assert "pending" not in out and "diff" not in out


def test_pending_of_every_kind_is_gathered():
    out = reconcile_runner.merge([("Gateway", sub(["istio-system/g"], ["the Gateway API is not served yet"])),
                                  ("ConfigMap", sub(["istio-system/c"])),
                                  ("VirtualService", sub(pending=["namespace x does not exist yet"]))], False)
    assert out["created"] == ["Gateway istio-system/g", "ConfigMap istio-system/c"]
    assert out["pending"] == ["the Gateway API is not served yet", "namespace x does not exist yet"]
    assert "pending" not in reconcile_runner.merge([("ConfigMap", sub(["istio-system/c"]))], False)
