#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: owned_manifests
short_description: Reconcile a set of Kubernetes manifests of any kind that one owner keeps (samples, add-ons)
version_added: 0.3.0
description:
  - Makes the objects labelled C(meshfed.istio/owner=<owner>) exactly the set given in O(manifests), whatever their
    kind (Deployments, ServiceAccounts, Services, RBAC objects, Namespaces...) - one LIST per kind (by the owner
    label), one server-side apply per object that differs, and (with O(prune)) deletion of the owner's objects that
    are no longer listed.
  - An object is unchanged when its annotation C(meshfed.istio/applied) holds the hash of the manifest applied now
    and every field of the manifest has the wanted value in the live object (which may hold more - the defaults the
    API server adds). So a manifest that dropped a field is applied again (server-side apply removes the field), and
    a field someone changed by hand is put back.
  - For the Istio kinds and the diff of the single fields this collection manages, M(meshfed.istio.owned_objects) is
    the finer tool; this module is for manifests as a project ships them (Istio's samples and add-ons).
  - Before anything is written, every manifest is checked (apiVersion, kind served by the cluster, names,
    namespace), every namespace of an object to create must exist (or be created by the same call), and no object
    to create may already exist without the owner label; otherwise the module fails and writes nothing.
  - With O(state=absent), every object of the owner of the kinds of O(manifests) and O(prune_kinds) is deleted.
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
    details: Per changed object (C(Kind namespace/name)), its body and labels before and after; a Secret's values are
      shown as C(<hidden>).
  idempotent:
    support: full
options:
  manifests:
    description:
      - The wanted objects, as full manifests (C(apiVersion), C(kind), C(metadata) with C(name), optional
        C(namespace), C(labels) and C(annotations), and the body - C(spec), C(data), C(rules)...). C(status) is
        ignored.
      - Labels C(meshfed.istio/owner) (from O(owner)) and C(app.kubernetes.io/managed-by) are added.
      - With O(state=absent), only their kinds are read (which kinds to delete).
    type: list
    elements: dict
    default: []
  namespace:
    description: The namespace of namespaced objects whose manifest has none.
    type: str
  owner:
    description: Value of label C(meshfed.istio/owner) that marks this set (a label value).
    type: str
    required: true
  prune:
    description: Delete the owner's objects (of the kinds in play) that O(manifests) does not list.
    type: bool
    default: true
  prune_kinds:
    description:
      - More kinds, as C(apiVersion/Kind) (C(apps/v1/Deployment)), whose objects of the owner are pruned (or removed,
        with O(state=absent)) although no manifest of O(manifests) has that kind any more.
    type: list
    elements: str
    default: []
  state:
    description: V(present) makes the set O(manifests); V(absent) removes every object of the owner.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: meshfed.istio.owned_objects
"""

EXAMPLES = r"""
- name: Istio's httpbin sample in namespace bar, kept by owner deploy-samples
  meshfed.istio.owned_manifests:
    context: cluster2
    owner: deploy-samples
    namespace: bar
    manifests: "{{ lookup('ansible.builtin.file', istio_dir ~ '/samples/httpbin/httpbin.yaml') | ansible.builtin.from_yaml_all | list }}"

- name: Remove the owner's Deployments, Services and ServiceAccounts
  meshfed.istio.owned_manifests:
    context: cluster2
    owner: deploy-samples
    prune_kinds: [apps/v1/Deployment, v1/Service, v1/ServiceAccount]
    state: absent
"""

RETURN = r"""
pending:
  description:
    - In check mode, what the writes need and does not exist yet (a namespace), when an earlier task of the same run
      would make it; the changes are then predicted without a dry run. A real run refuses instead.
  returned: in check mode, when something is missing
  type: list
  elements: str
  sample: ["namespace bar does not exist yet (needed by Deployment bar/httpbin)"]
created:
  description: Objects created (or that would be), as C(Kind namespace/name) (C(Kind name) when cluster-scoped).
  returned: always
  type: list
  elements: str
  sample: [Deployment bar/httpbin]
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
  sample: {created: 3, updated: 0, deleted: 0, unchanged: 0}
fields:
  description: Per updated object, the top-level fields (or labels, annotations) that differ.
  returned: always
  type: dict
  sample: {"Deployment bar/httpbin": ["spec"]}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, manifests_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(manifests_runner.options())
    return spec


def main():
    run_module(argument_spec(), manifests_runner.run)


if __name__ == "__main__":
    main()
