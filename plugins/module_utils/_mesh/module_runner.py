# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The one runner contract, and the helper every module's ``main()`` calls.

A runner is ``run(params, service, check_mode, diff) -> result``:

- ``params``: the module's parsed options;
- ``service``: a ``service.Service`` for the cluster the module's connection
  options name (``connection``), or None for a module that talks to no cluster;
  a runner reaches another cluster with ``service.connect(other_params, name)``;
- ``result``: a dict with ``changed``, optional ``diff`` and ``warnings`` (a list
  of strings), and the module's own return values beside them.

``run_module`` parses the options, checks the libraries, builds the service,
calls the runner, shows the warnings, and turns a ``MeshError`` into
``fail_json`` naming the field.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError, in_terms_of
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.service import Service

LIBRARIES = {"kubernetes": lambda: (client.HAS_KUBERNETES, client.KUBERNETES_IMPORT_ERROR)}


def _cryptography():
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca
    return ca.HAS_CRYPTOGRAPHY, ca.CRYPTOGRAPHY_IMPORT_ERROR


LIBRARIES["cryptography"] = _cryptography


def _xds():
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import xds
    return xds.HAS_XDS, xds.XDS_IMPORT_ERROR


LIBRARIES["grpcio and xds-protos"] = _xds


def _ca_client():
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca_client
    return ca_client.HAS_CA_CLIENT, ca_client.CA_CLIENT_IMPORT_ERROR


LIBRARIES["grpcio and protobuf"] = _ca_client


def run_module(argument_spec, runner, connection="params", name_option=None, libraries=("kubernetes",),
               run_commands=False, **module_kwargs):
    """Run ``runner`` as an Ansible module.

    ``connection``: where the auth options are: ``"params"`` (the module's own top-level
    options), the name of a dict option holding them (``"target"``), or None (no cluster).
    ``name_option``: the option whose value names the cluster in messages (default its context).
    A module with a ``variables`` option ({option: variable}) tells its refusals in terms of
    the variables the user wrote (``errors.in_terms_of``).
    ``run_commands``: the runner also gets ``run_command=module.run_command`` (argv, never a
    shell), for the modules that run istioctl.
    """
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    for lib in libraries:
        ok, error = LIBRARIES[lib]()
        if not ok:
            module.fail_json(msg=missing_required_lib(lib), exception=error)
    try:
        service = None
        if connection is not None:
            conn = module.params if connection == "params" else (module.params.get(connection) or {})
            service = Service(conn, module.params.get(name_option) if name_option else None)
        extra = {"run_command": module.run_command} if run_commands else {}
        result = runner(module.params, service, module.check_mode, module._diff, **extra)
    except MeshError as e:
        module.fail_json(msg=in_terms_of(str(e), e.field, module.params.get("variables")), field=e.field, **e.result)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    if result.get("pending"):
        # check mode ahead of an install in the same run: told, not failed
        module.warn("check mode: predicted without a dry run, as what the writes need does not exist yet: %s"
                    % "; ".join(result["pending"]))
    module.exit_json(**result)
