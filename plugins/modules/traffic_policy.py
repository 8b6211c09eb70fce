#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: traffic_policy
short_description: Subsets and weighted or matched routes of any mesh service, from a compact spec, on one cluster
version_added: 0.4.0
description:
  - Writes, per policy of O(policies), the DestinationRule (subsets by pod labels, traffic policy) and the
    VirtualService (HTTP routes, in order - matches by header, user or URI, weights over subsets) of one host,
    with the reconciler of M(meshfed.istio.owned_objects) - one LIST per kind and namespace, a comparison of the
    fields this collection manages, one server-side apply per object that differs, and (with O(prune=true))
    deletion of the owner's objects in scope that no policy makes any more.
  - "One call writes both kinds for one cluster. Both are checked and planned first - the policies, the Pods of
    each subset (O(require_subset_pods)), the namespaces, objects of the same names written by someone else - and
    the module refuses before the first write of either kind, naming the policy (its index and host) and the key
    at fault, for example - policies[0] (reviews.bookinfo.svc.cluster.local).routes[1].to: weights 50 + 49 = 99,
    must sum to 100."
  - Writes are make-before-break - DestinationRules (the subsets) before the VirtualServices that route to them;
    when no DestinationRule is created or updated, the VirtualServices go first.
  - The DestinationRule depends on the host, namespace, name, subsets, C(traffic_policy) and C(export_to) only, never
    on the routes. Moving a host from one stage of a rollout to the next (changing only C(routes), C(blue_green) or
    C(canary)) therefore updates its VirtualService alone; the filter M(meshfed.istio.mesh_traffic_stage) makes the
    policy of a named stage.
  - C(.global) hosts (the explicit-export federation) are refused - their DestinationRule and VirtualService belong to
    the federation (M(meshfed.istio.global_service_entries)); route them with C(federate_clusters_global_routes),
    which the filter M(meshfed.istio.mesh_global_routes) makes from policies of the same shape.
  - In a multi-primary mesh, give every primary the same policies (one task per cluster, or a loop); each primary's
    istiod routes over the endpoints of every cluster.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
  - meshfed.istio.writes
attributes:
  check_mode:
    support: full
    details:
      - Reads the cluster, checks everything a real run checks (the Pods of the subsets included) and reports what
        would be created, updated and deleted; writes nothing.
  diff_mode:
    support: full
    details: Per changed object (C(Kind namespace/name)), its managed C(spec) before and after.
  idempotent:
    support: full
options:
  policies:
    description:
      - The traffic policies, one per host. Ignored with O(state=absent), except for the C(namespace) of each when
        O(namespaces) is not given.
      - With O(state=present) and O(prune=true), the owner's DestinationRules and VirtualServices in scope that no
        policy makes are deleted; an empty list deletes them all.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description:
          - The service - a lower-case DNS name (C(reviews.bookinfo.svc.cluster.local), or the short C(reviews) that
            Istio reads relative to O(policies[].namespace)); the DestinationRule's C(host) and every route's
            destination. No wildcard, no C(.global) host.
        type: str
        required: true
      namespace:
        description: The namespace of both objects (it must exist). Must be one of O(namespaces) when that is given.
        type: str
        required: true
      name:
        description:
          - The name of both objects. Default the first label of O(policies[].host) (C(reviews)).
          - Two policies whose objects would get one name in one namespace are refused.
        type: str
      subsets:
        description:
          - "Subset name (a DNS-1123 label) to the pod labels it selects (label keys, string values - quote a number
            such as C('1')), such as C({v1: {version: v1}, v2: {version: v2}})."
          - With O(require_subset_pods=true), each subset must select a Pod of the namespace on this cluster.
        type: dict
      routes:
        description:
          - The HTTP routes, in order; the first that matches a request wins. Each route has C(to) (required) and
            C(match).
          - C(to) - a subset name (all of that route's traffic) or a mapping of subset to weight, integers from 0 to
            100 that sum to 100, every subset one of O(policies[].subsets). Zero weights are left out of the
            VirtualService; a route with one destination carries no weight.
          - "C(match) - a condition or a list of conditions (any one matches), each with one or more of C(headers)
            (lower-case header name to C({exact|prefix|regex: value}) or a string for C(exact)), C(uri) (the same
            shape) and C(user) (the C(end-user) header bookinfo's productpage sets, exact). Regular expressions
            are RE2 - no lookaround, no backreferences."
          - At most one route has no C(match), and it is the last. Without O(policies[].gateways) the routes need
            that default route (a request no route matches would get a 404), or a shortcut that makes it.
        type: list
        elements: dict
      blue_green:
        description:
          - "C({active: <subset>}) - all traffic to one subset; switching is changing C(active). Makes the default
            route, after any O(policies[].routes) (all of which must then have a match)."
        type: dict
      canary:
        description:
          - "C({stable: <subset>, canary: <subset>, percent: <0-100>}) - C(percent) of the traffic to C(canary), the
            rest to C(stable). Makes the default route like O(policies[].blue_green); at most one of the two."
        type: dict
      traffic_policy:
        description:
          - "The DestinationRule's C(trafficPolicy), in Istio's shape (C({tls: {mode: ISTIO_MUTUAL}}),
            C(loadBalancer), C(connectionPool), C(outlierDetection), ...); unknown top-level keys are refused."
        type: dict
      gateways:
        description: Gateways the VirtualService is bound to (C(mesh), C(<gateway>) or C(<namespace>/<gateway>)).
          Without it the routes apply to the sidecars of the mesh.
        type: list
        elements: str
      hosts:
        description: The VirtualService's hosts (default O(policies[].host)); C(*) and C(*.example.com) allowed, for
          an ingress gateway.
        type: list
        elements: str
      port:
        description: The destination port number, for a service with several ports.
        type: int
      export_to:
        description: C(exportTo) of both objects - C(.), C(*) or namespaces.
        type: list
        elements: str
  owner:
    description:
      - Value of the label C(meshfed.istio/owner) put on every DestinationRule and VirtualService this module writes.
        Only objects with this label are compared and pruned; an object of one of the names to create that carries
        another owner's label (or none) is refused, never taken over.
      - A valid label value.
    type: str
    default: traffic-policy
  namespaces:
    description:
      - The scope of listing and pruning (one LIST per kind and namespace). Every policy's namespace must be one of
        them.
      - Default the namespaces of O(policies); with no policies and no O(namespaces), every namespace.
    type: list
    elements: str
  prune:
    description: Delete the owner's DestinationRules and VirtualServices in scope that no policy makes.
    type: bool
    default: true
  require_subset_pods:
    description:
      - Refuse, before anything is written (in check mode too), a subset whose labels select no Pod (not terminating,
        not finished) in its policy's namespace on this cluster, naming the policy and the subset; one LIST of Pods
        per namespace. A route to such a subset would fail.
      - Set V(false) when the subset's Pods run in another cluster of a multi-primary mesh only, or are deployed
        after the routes.
    type: bool
    default: true
  state:
    description:
      - V(present) makes the owner's DestinationRules and VirtualServices in scope those of O(policies);
        V(absent) deletes every one of the owner's in scope (VirtualServices first).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Fails naming the API when the cluster does not serve C(networking.istio.io/v1) (Istio's CRDs are not
    installed); in check mode that is reported as a warning instead.
  - When some writes fail, the module fails and returns what was done in RV(created), RV(updated), RV(deleted) and
    the failed objects in C(failed).
seealso:
  - module: meshfed.istio.owned_objects
  - module: meshfed.istio.global_service_entries
  - plugin: meshfed.istio.mesh_traffic_stage
    plugin_type: filter
  - plugin: meshfed.istio.mesh_global_routes
    plugin_type: filter
  - name: Istio traffic management
    description: Request routing, traffic shifting and the DestinationRule and VirtualService references.
    link: https://istio.io/latest/docs/tasks/traffic-management/
"""

EXAMPLES = r"""
# bookinfo A/B: the user jason sees reviews v2 (black stars), everyone else v3 (red stars)
- name: Reviews - jason to v2, the others to v3
  meshfed.istio.traffic_policy:
    kubeconfig: ~/.kube/config
    context: cluster1
    policies:
      - host: reviews.bookinfo.svc.cluster.local
        namespace: bookinfo
        subsets:
          v1: {version: v1}
          v2: {version: v2}
          v3: {version: v3}
        routes:
          - match: {user: jason}
            to: v2
          - to: v3
  register: reviews

- name: Show what changed
  ansible.builtin.debug:
    msg: "created {{ reviews.created }}, updated {{ reviews.updated }}"

# canary: 10 % to v2, then 50 %, then all (each step changes the VirtualService only)
- name: Helloworld - 10 % to the canary
  meshfed.istio.traffic_policy:
    context: "{{ item }}"
    owner: helloworld-rollout
    require_subset_pods: false   # multi-primary: v1 runs in cluster1, v2 in cluster2
    policies:
      - host: helloworld.sample.svc.cluster.local
        namespace: sample
        subsets:
          v1: {version: v1}
          v2: {version: v2}
        canary: {stable: v1, canary: v2, percent: 10}
  loop: [cluster1, cluster2]   # every primary gets the same routes

# blue-green: everything to blue (v1); switching is changing active to v2
- name: Httpbin - all to the active colour
  meshfed.istio.traffic_policy:
    context: cluster1
    owner: httpbin-release
    policies:
      - host: httpbin.foo.svc.cluster.local
        namespace: foo
        subsets:
          blue: {version: v1}
          green: {version: v2}
        blue_green: {active: blue}
        traffic_policy:
          tls: {mode: ISTIO_MUTUAL}

# a stage of bookinfo's reviews rollout (all-v1, v2-10, v2-v3-50, all-v3, jason), by name
- name: Reviews at the stage chosen by one variable
  meshfed.istio.traffic_policy:
    context: cluster1
    policies:
      - "{{ 'bookinfo-reviews' | meshfed.istio.mesh_traffic_stage(reviews_stage | default('all-v1')) }}"

- name: Remove every policy of that owner in bookinfo
  meshfed.istio.traffic_policy:
    context: cluster1
    namespaces: [bookinfo]
    state: absent
"""

RETURN = r"""
created:
  description: Objects created (or that would be), as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: [DestinationRule bookinfo/reviews, VirtualService bookinfo/reviews]
updated:
  description: Objects updated (or that would be), as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: [VirtualService bookinfo/reviews]
deleted:
  description: Objects deleted (or that would be), as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: []
unchanged:
  description: Objects already as wanted, as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: [DestinationRule bookinfo/reviews]
counts:
  description: How many objects are in each of the lists above.
  returned: always
  type: dict
  sample: {created: 0, updated: 1, deleted: 0, unchanged: 1}
fields:
  description: Per updated object, the managed fields that differ.
  returned: always
  type: dict
  sample: {"VirtualService bookinfo/reviews": ["spec.http"]}
namespaces:
  description: The namespaces listed and pruned (empty for every namespace).
  returned: always
  type: list
  elements: str
  sample: [bookinfo]
pending:
  description:
    - In check mode, what the writes need and does not exist yet (the kinds' API, a namespace); the changes are then
      predicted without a dry run. A real run refuses instead.
  returned: in check mode, when something is missing
  type: list
  elements: str
  sample: ["namespace bookinfo does not exist yet"]
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, traffic_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(traffic_runner.options())
    spec["policies"]["options"] = dict(
        host=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        name=dict(type="str"),
        subsets=dict(type="dict"),
        routes=dict(type="list", elements="dict"),
        blue_green=dict(type="dict"),
        canary=dict(type="dict"),
        traffic_policy=dict(type="dict"),
        gateways=dict(type="list", elements="str"),
        hosts=dict(type="list", elements="str"),
        port=dict(type="int"),
        export_to=dict(type="list", elements="str"),
    )
    return spec


def main():
    run_module(argument_spec(), traffic_runner.run)


if __name__ == "__main__":
    main()
