# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The one way this collection reaches a Kubernetes API server.

The auth options mirror kubernetes.core's names and environment variables
(K8S_AUTH_*) so that the same module_defaults serve both collections.  ``connect``
turns them into a ``Connection`` (an ApiClient and, on first use, a
DynamicClient), cached per set of options within a module run.  Only the
dynamic client is used: importing the typed ``CoreV1Api`` alone costs about a
second per module run.  ``service.Service`` is what runners use; they do not
call this module directly.
"""

from __future__ import annotations

import copy
import json
import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import ClusterError

try:
    import urllib3
    from kubernetes import config as k8s_config
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
except ImportError:  # pragma: no cover - reported through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
    urllib3 = k8s_config = ApiClient = Configuration = DynamicClient = None

    class ApiException(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses still parse without the library."""

        status = None

    class ConfigException(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses still parse without the library."""

    class ResourceNotFoundError(Exception):  # type: ignore[no-redef]
        """Stand-in so that except clauses still parse without the library."""
else:
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None

AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="path", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
)
AUTH_KEYS = tuple(AUTH_ARG_SPEC)


def auth_argument_spec():
    """The auth options of a module that talks to one cluster."""
    return copy.deepcopy(AUTH_ARG_SPEC)


def connection_spec():
    """The auth options of one of several clusters of a task (a suboption dict), without the
    K8S_AUTH_* environment fallbacks and aliases: with two clusters in one task, they
    would be ambiguous."""
    spec = auth_argument_spec()
    for option in spec.values():
        option.pop("fallback", None)
        option.pop("aliases", None)
    return spec


def describe(params):
    """How a connection is named in messages: its context, its host, or the default context."""
    if params.get("context"):
        return "context %s" % params["context"]
    if params.get("host"):
        return params["host"]
    return "the kubeconfig's current context"


class Connection(object):
    """An ApiClient from the auth options, and a DynamicClient made when first needed."""

    def __init__(self, api):
        self.api = api
        self._dynamic = None

    @property
    def host(self):
        return self.api.configuration.host

    @property
    def ca_cert_path(self):
        return self.api.configuration.ssl_ca_cert

    @property
    def dynamic(self):
        if self._dynamic is None:
            # discovery reads /version and the API groups; connection errors surface here
            self._dynamic = DynamicClient(self.api)
        return self._dynamic

    def with_host(self, host):
        """A new ApiClient like this one (same CA and credentials) for another URL."""
        conf = copy.copy(self.api.configuration)
        conf.host = host
        return ApiClient(conf)


_CONNECTIONS = {}


def _key(params):
    return json.dumps(dict((k, params.get(k)) for k in AUTH_KEYS), sort_keys=True, default=str)


def api_client(params):
    """An ApiClient from the auth options: host (+api_key), else kubeconfig (+context)."""
    if params.get("host"):
        conf = Configuration()
        conf.host = params["host"]
        if params.get("api_key"):
            conf.api_key = {"authorization": "Bearer " + params["api_key"]}
        if params.get("validate_certs") is not None:
            conf.verify_ssl = params["validate_certs"]
        if params.get("ca_cert"):
            conf.ssl_ca_cert = params["ca_cert"]
        return ApiClient(conf)
    what = "context %r of kubeconfig %s" % (params.get("context"), params.get("kubeconfig") or "~/.kube/config")
    try:
        api = k8s_config.new_client_from_config(
            config_file=params.get("kubeconfig"), context=params.get("context"), persist_config=False)
    except ConfigException as e:
        field = "context" if params.get("context") and "context" in str(e).lower() else "kubeconfig"
        raise ClusterError("%s: cannot use %s: %s" % (field, what, e), field=field)
    except OSError as e:
        raise ClusterError("kubeconfig: cannot read %s: %s" % (params.get("kubeconfig"), e), field="kubeconfig")
    if params.get("validate_certs") is False:
        api.configuration.verify_ssl = False
    if params.get("ca_cert"):
        api.configuration.ssl_ca_cert = params["ca_cert"]
    return api


def connect(params):
    """The Connection for these auth options, made once per module run."""
    key = _key(params)
    if key not in _CONNECTIONS:
        _CONNECTIONS[key] = Connection(api_client(params))
    return _CONNECTIONS[key]


def is_api_error(exc):
    """Whether ``exc`` is the API server's answer (an HTTP error status)."""
    return isinstance(exc, ApiException)


def is_unserved(exc):
    """Whether ``exc`` says the cluster does not serve a kind (API discovery found none)."""
    return isinstance(exc, ResourceNotFoundError)


def is_unreachable(exc):
    """Whether ``exc`` means the API server did not answer (refused, DNS, TLS, timeout)."""
    return urllib3 is not None and isinstance(exc, urllib3.exceptions.HTTPError)


def unreachable_reason(exc):
    """'connection refused', 'timed out', ... from a urllib3 error, in plain words."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    for needle, plain in (("Connection refused", "connection refused"), ("timed out", "timed out"),
                          ("Name or service not known", "its name does not resolve"),
                          ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
                          ("No route to host", "no route to host")):
        if needle in text:
            return plain
    return text.splitlines()[0][:300] if text else type(exc).__name__


def api_reason(exc):
    """The API's own message of an ApiException, and its HTTP status."""
    reason = getattr(exc, "reason", None) or str(exc)
    body = getattr(exc, "body", None)
    if body:
        try:
            reason = json.loads(body).get("message") or reason
        except (ValueError, AttributeError, TypeError):
            pass
    return reason, getattr(exc, "status", None)
