#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: istioctl_info
short_description: Check istioctl and a cluster before installing Istio
version_added: 0.1.0
description:
  - Reads the version of C(istioctl) and of the cluster's Kubernetes, and fails, naming the field, when
    C(istioctl) is not the requested O(istio_version), when the context cannot be reached, or when the
    cluster's Kubernetes is older than that Istio supports.
  - Changes nothing; meant for the preflight of a play, so that a bad setup is refused before any change.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  istioctl:
    description: Path of the C(istioctl) binary (or its name on E(PATH)).
    type: path
    default: istioctl
  istio_version:
    description: Istio version C(istioctl) must be (C(1.31) for any 1.31 build, C(1.31.2) for that one).
    type: str
seealso:
  - module: meshfed.istio.istioctl_install
"""

EXAMPLES = r"""
- name: Refuse a wrong istioctl or an unreachable cluster before any change
  meshfed.istio.istioctl_info:
    istioctl: /opt/istio-1.31/bin/istioctl
    istio_version: "1.31"
    kubeconfig: ~/.kube/config
    context: cluster1
"""

RETURN = r"""
version:
  description: Version of istioctl.
  returned: always
  type: str
  sample: 1.31.2
kubernetes_version:
  description: The cluster's Kubernetes version.
  returned: always
  type: str
  sample: v1.36.3
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, istioctl_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def main():
    spec = client.auth_argument_spec()
    spec.update(istioctl=dict(type="path", default="istioctl"), istio_version=dict(type="str"))
    run_module(spec, istioctl_runner.run_info, run_commands=True)


if __name__ == "__main__":
    main()
