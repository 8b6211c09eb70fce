# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of the kubeconfig file. Defaults to C(~/.kube/config) (or E(KUBECONFIG)) when neither this nor
        O(host) is given. Can also be set with E(K8S_AUTH_KUBECONFIG).
    type: path
  context:
    description:
      - Context of the kubeconfig to use; the kubeconfig's current context when omitted.
        Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the API server, to connect without a kubeconfig (with O(api_key)). Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token for O(host). Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's certificate. Can also be set with E(K8S_AUTH_VERIFY_SSL).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path of a CA bundle to verify the API server with. Can also be set with E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
requirements:
  - kubernetes >= 30.1.0
notes:
  - The option names and environment variables are those of M(kubernetes.core.k8s), so one
    C(module_defaults) block can serve both collections.
"""
