#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workload_entry
short_description: Reconcile a whole set of Istio WorkloadEntries (VM workloads) on one cluster in one call
version_added: 0.3.0
description:
  - Makes the Istio WorkloadEntries (C(networking.istio.io/v1)) labelled C(meshfed.istio/owner=<owner>) on one
    cluster exactly the set given in O(workload_entries) - creating, updating and (with O(prune=true)) deleting
    them - with one LIST of the WorkloadEntries in scope and one server-side apply or delete per object that
    differs. The same reconciler as M(meshfed.istio.service_entry).
  - A WorkloadEntry describes one workload outside Kubernetes (a VM, a bare-metal server) - its address,
    ports, labels, network, locality, weight and service account - so that a ServiceEntry or Service selecting
    its labels sends traffic to it.
  - Objects are compared with the live ones on the keys this module manages only (its labels, annotations and
    C(spec) keys, and those it applied before, read from C(metadata.managedFields)); a missing key and an empty
    list or mapping compare equal. A second run with the same input reports no change. The C(status) Istio
    writes (the health of the workload) is never compared or written.
  - Writes use server-side apply (field manager O(field_manager), conflicts forced) and run in parallel
    (O(workers)).
  - Before anything is written, the input is checked (see O(workload_entries[].spec)), every namespace of a
    WorkloadEntry to create must exist, and no WorkloadEntry to create may already exist without the owner
    label; otherwise the module fails, naming the entry and the field, and writes nothing.
  - WorkloadEntries that istiod registers for a WorkloadGroup (auto-registration) carry no owner label and are
    never listed as this module's, so never pruned.
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
  workload_entries:
    description:
      - The desired WorkloadEntries. With O(state=present) and O(prune=true), owned WorkloadEntries in scope that
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
          - The WorkloadEntry C(spec), with Istio's field names. Only these keys are accepted.
          - C(address) (required) - an IPv4 or IPv6 address, a DNS name, or a Unix domain socket as
            C(unix:///absolute/path) or C(unix://@abstract-name) (at most 256 characters).
          - C(ports) - a mapping of port name (letters, digits and C(-)) to port number (an integer from 1 to
            65535); not with a Unix socket address.
          - C(labels) - the workload's labels, which ServiceEntries and Services select (valid label keys and
            string label values); not C(meshfed.istio/owner).
          - C(serviceAccount) - the Kubernetes service account (a DNS-1123 subdomain) the workload's proxy runs as.
          - C(network) - the network the workload is on (a string), when it is not the cluster's.
          - C(locality) - C(region), C(region/zone) or C(region/zone/subzone).
          - C(weight) - load-balancing weight, an integer of at least 0.
        type: dict
        required: true
      labels:
        description:
          - Labels of the WorkloadEntry object itself (string values). The label C(meshfed.istio/owner) is always
            set to O(owner). The labels a selector matches are those of C(spec.labels).
        type: dict
      annotations:
        description: Annotations of the WorkloadEntry object (string values).
        type: dict
  owner:
    description:
      - Value of the label C(meshfed.istio/owner) put on every WorkloadEntry this module manages. Only
        WorkloadEntries with this label are compared and pruned, so separate owners do not touch each other's
        objects.
      - A valid label value.
    type: str
    required: true
  namespaces:
    description:
      - Limit listing and pruning to these namespaces (one LIST per namespace). Every entry of
        O(workload_entries) must then be in one of them.
      - Default is all namespaces (one cluster-wide LIST).
    type: list
    elements: str
  prune:
    description: Delete owned WorkloadEntries in scope that O(workload_entries) does not list.
    type: bool
    default: true
  state:
    description:
      - V(present) makes the owned set equal to O(workload_entries); V(absent) deletes every owned WorkloadEntry
        in scope (all namespaces, or O(namespaces)).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Fails naming the API when the cluster does not serve C(networking.istio.io/v1) WorkloadEntries (Istio's CRDs
    are not installed); in check mode that is reported as a warning instead.
  - When some writes fail, the module fails and returns what was done in RV(created), RV(updated), RV(deleted),
    and the failed objects in C(failed).
seealso:
  - module: meshfed.istio.workload_group
  - module: meshfed.istio.service_entry
  - name: Istio WorkloadEntry reference
    description: The fields of C(spec).
    link: https://istio.io/latest/docs/reference/config/networking/workload-entry/
"""

EXAMPLES = r"""
- name: Two VMs of the details service, on network vm-net
  meshfed.istio.workload_entry:
    kubeconfig: ~/.kube/config
    context: cluster1
    owner: vms-details
    namespaces: [bookinfo]
    workload_entries:
      - name: details-vm-1
        namespace: bookinfo
        spec:
          address: 10.10.0.11
          ports:
            http: 8080
          labels:
            app: details
            version: v1
          serviceAccount: details-legacy
          network: vm-net
          locality: eu-west/zone-a
          weight: 10
      - name: details-vm-2
        namespace: bookinfo
        spec:
          address: details-vm-2.vms.example.com
          ports:
            http: 8080
          labels:
            app: details
            version: v1
          serviceAccount: details-legacy
          network: vm-net
  register: vms

- name: Show what changed
  ansible.builtin.debug:
    msg: "created {{ vms.created }}, updated {{ vms.updated }}, deleted {{ vms.deleted }}"

- name: Remove every VM of that owner
  meshfed.istio.workload_entry:
    kubeconfig: ~/.kube/config
    context: cluster1
    owner: vms-details
    namespaces: [bookinfo]
    state: absent
"""

RETURN = r"""
created:
  description: WorkloadEntries created (or that would be created), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [bookinfo/details-vm-1]
updated:
  description: WorkloadEntries updated (or that would be updated), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: []
deleted:
  description: WorkloadEntries deleted (or that would be deleted), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [bookinfo/details-vm-0]
unchanged:
  description: WorkloadEntries that already were as desired, as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [bookinfo/details-vm-2]
counts:
  description: How many WorkloadEntries are in each of the lists above.
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
      sample: 1
fields:
  description: Per updated WorkloadEntry, the managed fields that differ (C(spec.<key>), C(metadata.labels.<key>), ...).
  returned: always
  type: dict
  sample: {"bookinfo/details-vm-1": ["spec.address"]}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, reconcile_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(
        workload_entries=dict(type="list", elements="dict", default=[], options=dict(
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
    run_module(argument_spec(), reconcile_runner.run_workload_entries)


if __name__ == "__main__":
    main()
