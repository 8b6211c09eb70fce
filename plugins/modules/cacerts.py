#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cacerts
short_description: Put one cluster's CA material into the Secret istiod reads (istio-system/cacerts)
version_added: 0.1.0
description:
  - Reads the four files of one cluster made by M(meshfed.istio.mesh_ca) (C(ca-cert.pem), C(ca-key.pem),
    C(root-cert.pem), C(cert-chain.pem)), checks that they form one coherent chain, and writes them into
    the Secret C(cacerts) of namespace C(istio-system), creating the namespace when needed.
  - The Secret should exist before istiod starts. A running istiod (Istio 1.19 or later) that started with its plug-in
    CA reloads a changed intermediate by itself, and a changed root bundle too when it runs with C(ISTIO_MULTIROOT_MESH)
    and one bundle holds the other; RV(restart_required) tells when it must be restarted instead, and
    RV(restart_reason) why.
  - Reports changed only when the Secret's content differs. Key material never appears in a result or a diff.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
attributes:
  check_mode:
    support: full
    details: Reads the cluster and reports what would change; writes nothing.
  diff_mode:
    support: full
    details: Shows certificate summaries per key; the key only as its size.
  idempotent:
    support: full
options:
  src:
    description:
      - Directory holding the four files, usually C(<mesh_ca dir>/<cluster>). Required with O(state=present).
    type: path
  namespace:
    description: Namespace of the Secret (istiod's namespace).
    type: str
    default: istio-system
  name:
    description: Name of the Secret.
    type: str
    default: cacerts
  state:
    description: Whether the Secret should exist.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: meshfed.istio.mesh_ca
"""

EXAMPLES = r"""
- name: Plug the mesh CA into cluster1
  meshfed.istio.cacerts:
    src: "{{ playbook_dir }}/ca/cluster1"
    kubeconfig: ~/.kube/config
    context: cluster1
  register: cacerts

- name: Restart istiod when its CA material changed (a rollout, as kubectl rollout restart does)
  kubernetes.core.k8s:
    kubeconfig: ~/.kube/config
    context: cluster1
    kind: Deployment
    name: istiod
    namespace: istio-system
    state: patched
    definition:
      spec:
        template:
          metadata:
            annotations:
              kubectl.kubernetes.io/restartedAt: "{{ now(utc=true).isoformat() }}"
  when: cacerts.restart_required
"""

RETURN = r"""
secret:
  description: The Secret and a summary of what it holds.
  returned: always
  type: dict
  contains:
    namespace:
      description: Namespace.
      type: str
      sample: istio-system
    name:
      description: Name.
      type: str
      sample: cacerts
    keys:
      description: Data keys.
      type: list
      elements: str
      sample: [ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem]
    ca_cert:
      description: Summary of the intermediate (subject, serial, not_after, fingerprint_sha256, ...).
      type: dict
    root_cert:
      description: Summary of the root.
      type: dict
changed_keys:
  description: Data keys whose content differs (or would differ).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [ca-cert.pem, ca-key.pem, cert-chain.pem]
namespace_created:
  description: Whether the namespace was (or would be) created.
  returned: always
  type: bool
restart_required:
  description:
    - Whether an istiod Deployment (label C(app=istiod)) of the namespace must be restarted to use the new material -
      the content changed and istiod cannot reload it by itself - it started without a complete plug-in CA
      (self-signed), its Istio version (image tag, else label C(operator.istio.io/version)) is unknown or before 1.19,
      or the root changed without C(ISTIO_MULTIROOT_MESH=true) or to a bundle that neither holds nor is held by the
      current one.
  returned: always
  type: bool
restart_reason:
  description: Why istiod is restarted, or how it takes the new material without a restart; null when nothing changed.
  returned: when O(state=present)
  type: str
  sample: istiod istiod reloads a new intermediate by itself (Istio 1.19 or later), without a restart
istiod_deployments:
  description: istiod Deployments found in the namespace.
  returned: when O(state=present)
  type: list
  elements: str
  sample: [istiod]
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import cacerts_runner, client
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(
        src=dict(type="path"),
        namespace=dict(type="str", default="istio-system"),
        name=dict(type="str", default="cacerts"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    return spec


def main():
    run_module(argument_spec(), cacerts_runner.run, libraries=("kubernetes", "cryptography"),
               required_if=[("state", "present", ("src",))])


if __name__ == "__main__":
    main()
