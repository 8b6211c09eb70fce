#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owned_objects
short_description: Reconcile a set of objects of one owner (Istio Gateways, VirtualServices, ..., ConfigMaps)
version_added: 0.2.0
description:
  - Makes the objects labelled C(meshfed.istio/owner=<owner>) in O(namespaces) exactly the set given in
    O(objects), with the same reconciler as M(meshfed.istio.service_entry) - one LIST per kind and namespace,
    a comparison of the fields this collection manages, one write per object that differs, and (with O(prune))
    deletion of the owner's objects that are no longer listed.
  - Kinds - C(networking.istio.io/v1) C(Gateway), C(VirtualService), C(DestinationRule), C(ServiceEntry),
    C(WorkloadEntry), C(WorkloadGroup), and C(v1) C(ConfigMap) and C(Service). Istio kinds and Services are written
    with server-side apply (a Service's C(spec.ports) compares whole, so give each port's C(protocol)); ConfigMaps
    are replaced whole at the
    C(resourceVersion) read, so a concurrent writer fails instead of being overwritten.
  - Before anything is written, every object is checked (kind, names, hosts, labels), every namespace of an
    object to create must exist, and no object to create may already exist without the owner label; otherwise
    the module fails and writes nothing.
  - With O(state=absent), every object of the owner in O(namespaces) is deleted; a kind the cluster does not
    serve (its CRD is not installed) has none.
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
    details: Per changed object (C(Kind namespace/name)), its managed C(spec) (or C(data)) before and after.
  idempotent:
    support: full
options:
  objects:
    description:
      - The wanted objects, as full manifests (C(apiVersion), C(kind), C(metadata) with C(name), C(namespace) and
        optional C(labels) and C(annotations), and C(spec), or C(data) for a ConfigMap).
      - Label C(meshfed.istio/owner) is set from O(owner). Ignored with O(state=absent).
    type: list
    elements: dict
    default: []
  owner:
    description: Value of label C(meshfed.istio/owner) that marks this set (a label value).
    type: str
    required: true
  namespaces:
    description: The namespaces the set lives in; the scope of listing and pruning. Every object must be in one.
    type: list
    elements: str
    required: true
  adopt:
    description:
      - Objects, as C(Kind namespace/name), that an earlier version of this collection wrote with label
        C(app.kubernetes.io/managed-by=meshfed.istio) only (no owner label) and that belong to this set, so that
        they are pruned or removed like the owner's. An object wanted in O(objects) is adopted that way without
        being listed here; an object without the managed-by label is never adopted.
    type: list
    elements: str
    default: []
  prune:
    description: Delete the owner's objects in O(namespaces) that O(objects) does not list.
    type: bool
    default: true
  state:
    description: V(present) makes the set O(objects); V(absent) removes every object of the owner.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: meshfed.istio.service_entry
"""

EXAMPLES = r"""
- name: The east-west gateway passes *.local through, and nothing else of this owner remains
  meshfed.istio.owned_objects:
    context: cluster1
    owner: install-istio
    namespaces: [istio-system]
    objects:
      - apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: cross-network-gateway, namespace: istio-system}
        spec:
          selector: {istio: eastwestgateway}
          servers:
            - port: {number: 15443, name: tls, protocol: TLS}
              tls: {mode: AUTO_PASSTHROUGH}
              hosts: ["*.local"]

- name: Remove everything of that owner
  meshfed.istio.owned_objects:
    context: cluster1
    owner: install-istio
    namespaces: [istio-system]
    state: absent
"""

RETURN = r"""
pending:
  description:
    - In check mode, what the writes need and does not exist yet (the kind's API, a namespace), when an install in the
      same run would make it; the changes are then predicted without a dry run. A real run refuses instead.
  returned: in check mode, when something is missing
  type: list
  elements: str
  sample: ["the ServiceEntry API (networking.istio.io/v1) is not served yet"]
created:
  description: Objects created (or that would be), as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: [Gateway istio-system/cross-network-gateway]
updated:
  description: Objects updated (or that would be).
  returned: always
  type: list
  elements: str
deleted:
  description: Objects deleted (or that would be).
  returned: always
  type: list
  elements: str
unchanged:
  description: Objects already as wanted.
  returned: always
  type: list
  elements: str
counts:
  description: How many objects are in each of the lists above.
  returned: always
  type: dict
  sample: {created: 1, updated: 0, deleted: 0, unchanged: 2}
fields:
  description: Per updated object, the managed fields that differ.
  returned: always
  type: dict
  sample: {"Gateway istio-system/cross-network-gateway": ["spec.servers"]}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, reconcile_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(
        objects=dict(type="list", elements="dict", default=[]),
        adopt=dict(type="list", elements="str", default=[]),
    )
    spec.update(reconcile_runner.set_options(namespaces_required=True))
    return spec


def main():
    run_module(argument_spec(), reconcile_runner.run_owned_objects)


if __name__ == "__main__":
    main()
