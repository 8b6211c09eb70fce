#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workload_group
short_description: Reconcile a whole set of Istio WorkloadGroups (VM workload templates) on one cluster in one call
version_added: 0.3.0
description:
  - Makes the Istio WorkloadGroups (C(networking.istio.io/v1)) labelled C(meshfed.istio/owner=<owner>) on one
    cluster exactly the set given in O(workload_groups) - creating, updating and (with O(prune=true)) deleting
    them - with one LIST of the WorkloadGroups in scope and one server-side apply or delete per object that
    differs. The same reconciler, options and results as M(meshfed.istio.service_entry) and
    M(meshfed.istio.workload_entry).
  - A WorkloadGroup is the template of the VMs of one workload - their service account, network, ports, labels
    and readiness probe - that a VM's proxy bootstraps from (C(istioctl x workload entry configure)) and that
    istiod copies into the WorkloadEntry it registers for each VM (auto-registration).
  - One call keeps a whole set, as for ServiceEntries, rather than one WorkloadGroup per call - one LIST instead
    of one GET per group, and pruning of the groups no longer wanted; a set of one is a single group.
  - Objects are compared with the live ones on the keys this module manages only (its labels, annotations and
    C(spec) keys, and those it applied before, read from C(metadata.managedFields)); a missing key and an empty
    list or mapping compare equal. A second run with the same input reports no change.
  - Before anything is written, the input is checked (see O(workload_groups[].spec)), every namespace of a
    WorkloadGroup to create must exist, and no WorkloadGroup to create may already exist without the owner
    label; otherwise the module fails, naming the entry and the field, and writes nothing.
  - Deleting a WorkloadGroup does not delete the WorkloadEntries istiod registered for it here; istiod removes
    those when their VMs disconnect.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
  - meshfed.istio.writes
attributes:
  check_mode:
    support: full
    details: Reads the cluster and reports what would be created, updated and deleted; writes nothing.
  diff_mode:
    support: full
    details:
      - Per changed object (C(namespace/name)), its managed C(spec) before and after, plus labels or annotations
        when those differ.
  idempotent:
    support: full
options:
  workload_groups:
    description:
      - The desired WorkloadGroups. With O(state=present) and O(prune=true), owned WorkloadGroups in scope that
        are not listed are deleted; an empty list deletes them all.
      - Ignored with O(state=absent).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name; a DNS-1123 subdomain.
        type: str
        required: true
      namespace:
        description: Namespace (a DNS-1123 label); must exist. Must be one of O(namespaces) when that is given.
        type: str
        required: true
      spec:
        description:
          - The WorkloadGroup C(spec), with Istio's field names. Only these keys are accepted.
          - C(template) (required, may be empty) - the WorkloadEntry fields every VM of the group gets -
            C(serviceAccount) (a DNS-1123 subdomain), C(network), C(locality) (C(region[/zone[/subzone]])),
            C(weight) (an integer of at least 0), C(ports) (a mapping of port name to a port number from 1 to
            65535) and C(labels). Not C(address), which each VM's registration fills in.
          - C(metadata) - C(labels) and C(annotations) (string values) of the WorkloadEntries istiod registers for
            the group; Istio recommends the workload's labels here rather than in C(template.labels). Labels must
            be valid label keys and values, and not C(meshfed.istio/owner).
          - C(probe) - the readiness probe of each VM - C(initialDelaySeconds), C(timeoutSeconds),
            C(periodSeconds), C(successThreshold), C(failureThreshold) (integers of at least 0) and exactly one of
            C(httpGet) (C(port) required, C(path), C(host), C(scheme) HTTP or HTTPS, C(httpHeaders) as a list of
            C(name) and C(value)), C(tcpSocket) (C(port) required, C(host)), C(exec) (C(command), a non-empty
            list of strings) or C(grpc) (C(port) required, C(service)).
        type: dict
        required: true
      labels:
        description:
          - Labels of the WorkloadGroup object itself (string values). The label C(meshfed.istio/owner) is always
            set to O(owner). Labels for the VMs go in C(spec.metadata.labels).
        type: dict
      annotations:
        description: Annotations of the WorkloadGroup object (string values).
        type: dict
  owner:
    description:
      - Value of the label C(meshfed.istio/owner) put on every WorkloadGroup this module manages. Only
        WorkloadGroups with this label are compared and pruned, so separate owners do not touch each other's
        objects.
      - A valid label value.
    type: str
    required: true
  namespaces:
    description:
      - Limit listing and pruning to these namespaces (one LIST per namespace). Every entry of
        O(workload_groups) must then be in one of them.
      - Default is all namespaces (one cluster-wide LIST).
    type: list
    elements: str
  prune:
    description: Delete owned WorkloadGroups in scope that O(workload_groups) does not list.
    type: bool
    default: true
  state:
    description:
      - V(present) makes the owned set equal to O(workload_groups); V(absent) deletes every owned WorkloadGroup
        in scope (all namespaces, or O(namespaces)).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Fails naming the API when the cluster does not serve C(networking.istio.io/v1) WorkloadGroups (Istio's CRDs
    are not installed); in check mode that is reported as a warning instead.
  - When some writes fail, the module fails and returns what was done in RV(created), RV(updated), RV(deleted),
    and the failed objects in C(failed).
seealso:
  - module: meshfed.istio.workload_entry
  - module: meshfed.istio.service_entry
  - name: Istio WorkloadGroup reference
    description: The fields of C(spec).
    link: https://istio.io/latest/docs/reference/config/networking/workload-group/
"""

EXAMPLES = r"""
- name: The template of the reviews VMs
  meshfed.istio.workload_group:
    kubeconfig: ~/.kube/config
    context: cluster1
    owner: vms-reviews
    namespaces: [bookinfo]
    workload_groups:
      - name: reviews
        namespace: bookinfo
        spec:
          metadata:
            labels:
              app: reviews
              version: v3
          template:
            serviceAccount: reviews
            network: vm-net
            ports:
              http: 9080
          probe:
            initialDelaySeconds: 5
            periodSeconds: 4
            failureThreshold: 3
            httpGet:
              path: /health
              port: 9080
              scheme: HTTP
  register: groups

- name: Show what changed
  ansible.builtin.debug:
    msg: "created {{ groups.created }}, updated {{ groups.updated }}, deleted {{ groups.deleted }}"

- name: Remove the groups of that owner
  meshfed.istio.workload_group:
    kubeconfig: ~/.kube/config
    context: cluster1
    owner: vms-reviews
    namespaces: [bookinfo]
    state: absent
"""

RETURN = r"""
created:
  description: WorkloadGroups created (or that would be created), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [bookinfo/reviews]
updated:
  description: WorkloadGroups updated (or that would be updated), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: []
deleted:
  description: WorkloadGroups deleted (or that would be deleted), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [bookinfo/ratings]
unchanged:
  description: WorkloadGroups that already were as desired, as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: []
counts:
  description: How many WorkloadGroups are in each of the lists above.
  returned: always
  type: dict
  contains:
    created:
      description: Number created.
      type: int
      sample: 1
    updated:
      description: Number updated.
      type: int
      sample: 0
    deleted:
      description: Number deleted.
      type: int
      sample: 1
    unchanged:
      description: Number unchanged.
      type: int
      sample: 0
fields:
  description: Per updated WorkloadGroup, the managed fields that differ (C(spec.template), C(spec.probe), C(metadata.labels.<key>), ...).
  returned: always
  type: dict
  sample: {"bookinfo/reviews": ["spec.template"]}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, reconcile_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(
        workload_groups=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            spec=dict(type="dict", required=True),
            labels=dict(type="dict"),
            annotations=dict(type="dict"),
        )),
    )
    spec.update(reconcile_runner.set_options())
    return spec


def main():
    run_module(argument_spec(), reconcile_runner.run_workload_groups)


if __name__ == "__main__":
    main()
