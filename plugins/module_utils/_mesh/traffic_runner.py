# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Runner of meshfed.istio.traffic_policy: the DestinationRules and VirtualServices of a list
of compact traffic policies (traffic.py), through the reconciler, on one cluster.

Everything is checked and planned before the first write of either kind: the policies
(traffic.validate), the scope, the Pods each subset selects (one LIST of Pods per
namespace), then both kinds' plans (namespaces exist, no object of another owner).  Writes
are make-before-break: the DestinationRules (new subsets) before the VirtualServices that
route to them; when no DestinationRule is created or updated (only deleted, or state
absent), the VirtualServices go first, so no route is left pointing at a subset that is gone.
"""

from __future__ import annotations

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import reconcile_runner, traffic
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError, MeshError

KINDS = ("DestinationRule", "VirtualService")
DEFAULT_OWNER = "traffic-policy"


def options():
    """The module's own options, beside the auth options."""
    spec = reconcile_runner.set_options()
    spec["owner"] = dict(type="str", default=DEFAULT_OWNER)
    spec.update(
        policies=dict(type="list", elements="dict", default=[]),
        require_subset_pods=dict(type="bool", default=True),
    )
    return spec


def pods_by_namespace(service, namespaces):
    """{namespace: [Pod]}: one LIST of Pods per namespace."""
    return dict((ns, service.list("v1", "Pod", namespace=ns)) for ns in namespaces)


def write_order(plans):
    """The plans ({kind: KindPlan}) in the order to write them (see the module docstring)."""
    rules = plans["DestinationRule"].todo
    if rules["create"] or rules["update"]:
        return [plans["DestinationRule"], plans["VirtualService"]]
    return [plans["VirtualService"], plans["DestinationRule"]]


def run(params, service, check_mode, diff):
    """Runner of meshfed.istio.traffic_policy."""
    field = traffic.FIELD
    present = params.get("state", "present") == "present"
    policies = params.get("policies") or []
    if present:
        checked = traffic.validate(policies, field)
        namespaces = traffic.scope(checked, params.get("namespaces"), field)
        by_kind = traffic.entries(policies, field)
    else:
        checked = []
        namespaces = traffic.absent_scope(policies, params.get("namespaces"), field)
        by_kind = dict((kind, []) for kind in KINDS)

    if present and params.get("require_subset_pods", True):
        missing = traffic.subsets_without_pods(checked, pods_by_namespace(service, namespaces), service.name, field)
        if missing:
            raise MeshError("%s; a route to such a subset fails (no healthy upstream). Deploy the pods first, or "
                            "set require_subset_pods=false (nothing was written)" % "; ".join(missing), field=field)

    # both kinds are checked and planned (and refused) before anything of either is written
    plans = dict((kind, reconcile_runner.prepare_kind(
        service, dict(params, namespaces=namespaces or None, service_entries=by_kind[kind]), diff, kind=kind,
        field=field, check_mode=check_mode)) for kind in KINDS)

    done = []
    for plan in write_order(plans):
        try:
            done.append((plan.kind, reconcile_runner.write_kind(service, plan, check_mode)))
        except ClusterError as e:
            # what was written (the kind before, the part of this one that went through) is returned
            done.append((plan.kind, e.result))
            partial = reconcile_runner.merge(done, False)
            partial["failed"] = ["%s %s" % (plan.kind, ref) for ref in e.result.get("failed") or []]
            raise ClusterError(str(e), field=e.field, result=partial, status=e.status)
    result = reconcile_runner.merge(sorted(done, key=lambda kv: KINDS.index(kv[0])), diff)
    result["namespaces"] = namespaces
    return result
