# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Validation of the mesh topology an inventory describes (pure)."""

from __future__ import annotations

import re

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def topology_errors(clusters):
    """Problems of a list of clusters, each a dict with host, mesh_id, cluster_name,
    network, context (and optionally gateway_address).  Every message names the
    inventory host and the field; [] when the topology is usable."""
    errors = []
    names, contexts, mesh_ids, networks = {}, {}, {}, {}
    for c in clusters:
        host = c.get("host")
        name = c.get("cluster_name")
        if not name:
            errors.append("host %s: mesh_cluster_name is not set" % host)
        elif len(str(name)) > 63 or not DNS1123_LABEL.match(str(name)):
            errors.append("host %s: mesh_cluster_name %r is not a DNS-1123 label" % (host, name))
        else:
            names.setdefault(name, []).append(host)
        if not c.get("network"):
            errors.append("host %s: mesh_network is not set (every cluster needs a network)" % host)
        else:
            networks.setdefault(c["network"], []).append(host)
        if not c.get("mesh_id"):
            errors.append("host %s: mesh_id is not set" % host)
        else:
            mesh_ids.setdefault(c["mesh_id"], []).append(host)
        if not c.get("context"):
            errors.append("host %s: mesh_context is not set" % host)
        else:
            key = (c.get("kubeconfig"), c["context"])
            contexts.setdefault(key, []).append(host)
    for name, hosts in sorted(names.items()):
        if len(hosts) > 1:
            errors.append("hosts %s: duplicate mesh_cluster_name %r" % (", ".join(sorted(hosts)), name))
    for (kubeconfig, ctx), hosts in sorted(contexts.items(), key=lambda kv: str(kv[0])):
        if len(hosts) > 1:
            errors.append("hosts %s: the same mesh_context %r (of the same kubeconfig) for several clusters"
                          % (", ".join(sorted(hosts)), ctx))
    if len(mesh_ids) > 1:
        errors.append("mesh_id differs between hosts: %s" % "; ".join(
            "%s on %s" % (m, ", ".join(sorted(h))) for m, h in sorted(mesh_ids.items())))
    return errors
