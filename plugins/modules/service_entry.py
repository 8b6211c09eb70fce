#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_entry
short_description: Reconcile a whole set of Istio ServiceEntries on one cluster in one call
version_added: 0.1.0
description:
  - Makes the Istio ServiceEntries (C(networking.istio.io/v1)) labelled C(meshfed.istio/owner=<owner>) on one
    cluster exactly the set given in O(service_entries) - creating, updating and (with O(prune=true)) deleting
    them - with one LIST of the ServiceEntries in scope and one server-side apply or delete per object that
    differs.
  - Objects are compared with the live ones on the keys this module manages only (its labels, annotations and
    C(spec) keys, and those it applied before, read from C(metadata.managedFields)); a missing key and an empty
    list or mapping compare equal. A second run with the same input reports no change.
  - Writes use server-side apply (field manager O(field_manager), conflicts forced) and run in parallel
    (O(workers)).
  - Before anything is written, the input is checked (names, C(spec.hosts), duplicates), every namespace of a
    ServiceEntry to create must exist, and no ServiceEntry to create may already exist without the owner label;
    otherwise the module fails and writes nothing.
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
  service_entries:
    description:
      - The desired ServiceEntries. With O(state=present) and O(prune=true), owned ServiceEntries in scope that
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
        description: Namespace; must exist. Must be one of O(namespaces) when that is given.
        type: str
        required: true
      spec:
        description:
          - The ServiceEntry C(spec), passed through as is (C(hosts), C(addresses), C(ports), C(location),
            C(resolution), C(endpoints), C(exportTo), ...). C(hosts) is required.
        type: dict
        required: true
      labels:
        description:
          - Labels (string values). The label C(meshfed.istio/owner) is always set to O(owner).
        type: dict
      annotations:
        description: Annotations (string values).
        type: dict
  owner:
    description:
      - Value of the label C(meshfed.istio/owner) put on every ServiceEntry this module manages. Only
        ServiceEntries with this label are compared and pruned, so separate owners (for example one per
        remote cluster whose services are imported) do not touch each other's objects.
      - A valid label value.
    type: str
    required: true
  namespaces:
    description:
      - Limit listing and pruning to these namespaces (one LIST per namespace). Every entry of
        O(service_entries) must then be in one of them.
      - Default is all namespaces (one cluster-wide LIST).
    type: list
    elements: str
  prune:
    description: Delete owned ServiceEntries in scope that O(service_entries) does not list.
    type: bool
    default: true
  state:
    description:
      - V(present) makes the owned set equal to O(service_entries); V(absent) deletes every owned ServiceEntry
        in scope (all namespaces, or O(namespaces)).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Fails with C(Istio's ServiceEntry CRD (networking.istio.io/v1) is not installed in this cluster) when the
    cluster does not serve the API.
  - When some writes fail, the module fails and returns what was done in RV(created), RV(updated), RV(deleted),
    and the failed objects in C(failed).
seealso:
  - module: meshfed.istio.istioctl_install
  - name: Istio ServiceEntry reference
    description: The fields of C(spec).
    link: https://istio.io/latest/docs/reference/config/networking/service-entry/
"""

EXAMPLES = r"""
- name: Import the services of cluster2 into cluster1
  meshfed.istio.service_entry:
    kubeconfig: ~/.kube/config
    context: cluster1
    owner: import-cluster2
    namespaces: [istio-system]
    service_entries:
      - name: httpbin-bar-global
        namespace: istio-system
        labels:
          app: httpbin
        spec:
          hosts: [httpbin.bar.global]
          location: MESH_INTERNAL
          resolution: STATIC
          addresses: [240.240.0.7]
          ports:
            - name: http
              number: 8000
              protocol: HTTP
          endpoints:
            - address: 172.18.0.12
              network: network2
              ports:
                http: 15443
              labels:
                cluster: cluster2
  register: imported

- name: Show what changed
  ansible.builtin.debug:
    msg: "created {{ imported.created }}, updated {{ imported.updated }}, deleted {{ imported.deleted }}"

- name: Stop importing cluster2's services
  meshfed.istio.service_entry:
    kubeconfig: ~/.kube/config
    context: cluster1
    owner: import-cluster2
    state: absent
"""

RETURN = r"""
created:
  description: ServiceEntries created (or that would be created), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [istio-system/httpbin-bar-global]
updated:
  description: ServiceEntries updated (or that would be updated), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: []
deleted:
  description: ServiceEntries deleted (or that would be deleted), as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: [istio-system/old-svc-global]
unchanged:
  description: ServiceEntries that already were as desired, as C(namespace/name).
  returned: always
  type: list
  elements: str
  sample: []
counts:
  description: How many ServiceEntries are in each of the lists above.
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
  description: Per updated ServiceEntry, the managed fields that differ (C(spec.<key>), C(metadata.labels.<key>), ...).
  returned: always
  type: dict
  sample: {"istio-system/httpbin-bar-global": ["spec.endpoints"]}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, reconcile_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(
        service_entries=dict(type="list", elements="dict", default=[], options=dict(
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
    run_module(argument_spec(), reconcile_runner.run_service_entries)


if __name__ == "__main__":
    main()
