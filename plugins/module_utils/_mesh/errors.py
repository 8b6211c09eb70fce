# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The collection's one exception hierarchy: module_utils raise, modules fail.

Every error the collection raises on purpose is a ``MeshError``; the module
helper (``module_runner.run_module``) turns it into ``fail_json`` with ``msg``,
``field`` and the partial ``result``.
"""

from __future__ import annotations


class MeshError(Exception):
    """Base of every error the collection raises on purpose.

    ``field`` names the module option or inventory field at fault, when there is
    one, so that the module can say which input to fix.  ``result`` carries
    whatever partial result the caller should still return.
    """

    def __init__(self, msg, field=None, result=None):
        super().__init__(msg)
        self.msg = msg
        self.field = field
        self.result = result or {}

    def __str__(self):
        return self.msg


class CAError(MeshError):
    """Bad CA input or material that cannot be used."""


class ClusterError(MeshError):
    """A Kubernetes API call failed or returned something unusable; the message names
    the cluster, the object (kind, namespace/name) and the API's reason.  ``status``
    is the HTTP status the API answered with (None when it did not answer)."""

    def __init__(self, msg, field=None, result=None, status=None):
        super().__init__(msg, field=field, result=result)
        self.status = status


class InstallError(MeshError):
    """Bad install input, version skew, or a failed istioctl run."""


class RemoteSecretError(MeshError):
    """Bad input or a cluster that cannot serve a remote secret."""


class FederationError(MeshError):
    """Exports that cannot be federated as asked."""


class TopologyError(MeshError):
    """Input the topology functions cannot read (not an inventory problem: those are
    what ``topology.topology_errors`` reports)."""


def in_terms_of(msg, field, variables):
    """``msg`` about the option ``field``, told in terms of the variable the user wrote.

    ``variables`` maps options to the variables they come from (a role passes them, such
    as {"vip_cidr": "federate_clusters_vip_cidr"}).  A message that starts with the option
    (``vip_cidr: ...``, ``routes[h]: ...``) starts with the variable instead; any other
    message about the option is prefixed with the variable.  Unchanged otherwise."""
    variable = (variables or {}).get(field) if field else None
    if not variable:
        return msg
    if msg.startswith(field) and msg[len(field):len(field) + 1] in (":", "["):
        return variable + msg[len(field):]
    return "%s: %s" % (variable, msg)
