# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """The token options of a module that gives a reader service account's token to another
    cluster (remote_secret, kiali_remote_access): remote_secret.token_argument_spec()."""

    DOCUMENTATION = r"""
options:
  token_mode:
    description:
      - V(secret) uses a C(kubernetes.io/service-account-token) Secret (long-lived; revoked by deleting that Secret).
      - V(request) uses a TokenRequest token that expires after O(token_expiration) seconds and is renewed by a run
        within O(renew_before) seconds of its expiry.
    type: str
    choices: [secret, request]
    default: secret
  token_expiration:
    description: Lifetime of a TokenRequest token, in seconds.
    type: int
    default: 2592000
  renew_before:
    description: Renew a TokenRequest token this many seconds before it expires.
    type: int
    default: 604800
  token_timeout:
    description: Seconds to wait for the token controller to fill a new token Secret.
    type: int
    default: 60
"""
