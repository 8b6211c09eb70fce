# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""vm_files: read what the VM files need from the cluster (the WorkloadGroup, the mesh
config, the cluster ID, the mesh root, the gateway), request the token when the one on
the controller is due, and write the files that differ (vmfiles.py plans them)."""

from __future__ import annotations

import datetime
import os
import socket
import time

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import files, vmfiles
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

API = "networking.istio.io/v1"


def options():
    return dict(
        workload_group=dict(type="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            spec=dict(type="dict"),
            annotations=dict(type="dict"),
        )),
        dest=dict(type="path", required=True),
        istio_namespace=dict(type="str", default="istio-system"),
        revision=dict(type="str", default=""),
        cluster_id=dict(type="str"),
        ingress_service=dict(type="str", default=vmfiles.DEFAULT_GATEWAY),
        istiod_address=dict(type="str"),
        internal_ip=dict(type="str"),
        external_ip=dict(type="str"),
        autoregister=dict(type="bool", default=False),
        dns_capture=dict(type="bool", default=True),
        token_lifetime=dict(type="int", default=3600, no_log=False),
        token_renew_before=dict(type="int", default=900, no_log=False),
        variables=dict(type="dict"),
    )


def resolver(field):
    def resolve(hostname):
        try:
            infos = socket.getaddrinfo(hostname, None, 0, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise MeshError("%s: the hostname %s does not resolve on the controller (%s); give an IP address"
                            % (field, hostname, getattr(e, "strerror", None) or e), field=field)
        return sorted(set(i[4][0] for i in infos))[0]
    return resolve


def _configmap(service, name, namespace):
    return service.get("v1", "ConfigMap", name, namespace)


def istiod_ip(service, params):
    """(ip, how) of istiod for the VM's hosts file."""
    given = params.get("istiod_address")
    if given:
        if vmfiles.is_ip(given):
            return given, "istiod_address"
        return resolver("istiod_address")(given), "istiod_address %s resolved on the controller" % given
    ns, name = vmfiles.split_service(params["ingress_service"], params["istio_namespace"])
    svc = service.get("v1", "Service", name, ns)
    return vmfiles.gateway_address(svc, "%s/%s" % (ns, name), resolver("ingress_service"))


def read_inputs(service, params, check_mode):
    """Everything the files are made from; in check mode ahead of an install, ``pending`` says what is missing."""
    inputs = {"pending": []}
    wg = params["workload_group"]
    ref = "WorkloadGroup %s/%s" % (wg["namespace"], wg["name"])
    if wg.get("spec") is not None:
        inputs["group"] = vmfiles.group_view(wg["name"], wg["namespace"], wg["spec"], wg.get("annotations"))
    else:
        obj = service.get(API, "WorkloadGroup", wg["name"], wg["namespace"])
        if obj is None:
            raise MeshError("workload_group: %s does not exist (give its spec to make the files ahead of it)" % ref,
                            field="workload_group")
        inputs["group"] = vmfiles.group_of_object(obj)
    ins, rev = params["istio_namespace"], params["revision"]
    mesh_cm = _configmap(service, vmfiles.mesh_configmap(rev), ins)
    root_cm = (_configmap(service, vmfiles.ROOT_CERT_CONFIGMAP, wg["namespace"])
               or _configmap(service, vmfiles.ROOT_CERT_CONFIGMAP, ins))
    missing = []
    if mesh_cm is None:
        missing.append("ConfigMap %s/%s (the mesh config)" % (ins, vmfiles.mesh_configmap(rev)))
    if root_cm is None or not (root_cm.get("data") or {}).get(vmfiles.ROOT_CERT_KEY):
        missing.append("ConfigMap %s (the mesh root) in %s or %s" % (vmfiles.ROOT_CERT_CONFIGMAP, wg["namespace"], ins))
    cluster_id = params.get("cluster_id")
    if not cluster_id:
        inj = _configmap(service, vmfiles.injector_configmap(rev), ins)
        if inj is None:
            missing.append("ConfigMap %s/%s (the cluster ID; or give cluster_id)" % (ins, vmfiles.injector_configmap(rev)))
        else:
            cluster_id = vmfiles.cluster_id_of((inj.get("data") or {}).get(vmfiles.VALUES_KEY),
                                               "the values of ConfigMap %s/%s" % (ins, vmfiles.injector_configmap(rev)))
    if missing:
        hint = "is Istio%s installed in this cluster?" % (" revision %s" % rev if vmfiles.is_revisioned(rev) else "")
        if not check_mode:
            raise MeshError("missing %s: %s" % ("; ".join(missing), hint), field="revision" if rev else "istio_namespace")
        inputs["pending"] = missing
        return inputs
    inputs["mesh"] = vmfiles.mesh_config(mesh_cm["data"].get(vmfiles.MESH_KEY), "ConfigMap %s/%s key %s" % (
        ins, vmfiles.mesh_configmap(rev), vmfiles.MESH_KEY))
    inputs["root"] = root_cm["data"][vmfiles.ROOT_CERT_KEY]
    inputs["cluster_id"] = cluster_id
    inputs["istiod_ip"], inputs["istiod_source"] = istiod_ip(service, params)
    return inputs


def wanted_files(inputs, params):
    group = inputs["group"]
    ins, rev = params["istio_namespace"], params["revision"]
    pc = vmfiles.proxy_config(inputs["mesh"], group, inputs["cluster_id"], ins, rev, params["dns_capture"],
                              params["autoregister"])
    env = vmfiles.cluster_env(pc, group, ins, rev, params.get("internal_ip") or "", params.get("external_ip") or "")
    return {
        "cluster.env": vmfiles.render_env(env).encode("utf-8"),
        "mesh.yaml": vmfiles.mesh_yaml(pc).encode("utf-8"),
        "root-cert.pem": inputs["root"].encode("utf-8"),
        "hosts": vmfiles.hosts_file(inputs["istiod_ip"], ins, rev).encode("utf-8"),
    }


def _iso(ts):
    if not isinstance(ts, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_vm_files(params, service, check_mode, diff, clock=time.time):
    vmfiles.validate(params)
    dest = params["dest"]
    files.check_dir(dest, "dest")
    wg = params["workload_group"]
    inputs = read_inputs(service, params, check_mode)
    group = inputs["group"]
    sa = group["template"]["serviceAccount"]
    result = {"changed": False, "dest": dest, "files": {}, "pending": inputs["pending"]}
    if inputs["pending"]:
        result.update(changed=True, token={"renew": True, "reason": "Istio is not installed yet"})
        return result
    wanted = wanted_files(inputs, params)
    token_path = os.path.join(dest, "istio-token")
    have_token = files.read_optional(token_path, "dest")
    sa_obj = service.get("v1", "ServiceAccount", sa, wg["namespace"])
    sa_uid = ((sa_obj or {}).get("metadata") or {}).get("uid")
    renew, reason, expires = vmfiles.token_plan(have_token.decode("utf-8", "replace") if have_token is not None else None,
                                                clock(), params["token_renew_before"], wg["namespace"], sa, sa_uid)
    todo = files.plan(dest, wanted, vmfiles.mode_of)
    if renew:
        todo.append(("istio-token", "create" if have_token is None else "update"))
    elif files.current_mode(token_path) != vmfiles.SECRET_MODE:
        todo.append(("istio-token", "mode"))
    token_state = {"renew": renew, "reason": reason, "expires": _iso(expires), "service_account": sa,
                   "namespace": wg["namespace"]}
    if renew and not check_mode:
        token = service.create_token(wg["namespace"], sa, audiences=[vmfiles.TOKEN_AUDIENCE],
                                     expiration=params["token_lifetime"])
        if not token:
            raise MeshError("the API server returned no token for ServiceAccount %s/%s" % (wg["namespace"], sa),
                            field="workload_group")
        wanted["istio-token"] = token.encode("utf-8")
        token_state["expires"] = _iso((vmfiles.token_claims(token) or {}).get("exp"))
    if diff:
        result["diff"] = [vmfiles.file_diff(rel, files.read_optional(os.path.join(dest, rel), "dest"),
                                            wanted.get(rel, b"")) for rel, what in todo if what != "mode"]
    if not check_mode and todo:
        files.apply(dest, wanted, todo, vmfiles.mode_of)
    states = dict(todo)
    for rel in vmfiles.FILES:
        result["files"][rel] = {"path": os.path.join(dest, rel), "state": states.get(rel, "unchanged")}
    result.update(changed=bool(todo), changed_files=[rel for rel, _what in todo], token=token_state,
                  cluster_id=inputs["cluster_id"], istiod_host=vmfiles.istiod_host(params["istio_namespace"], params["revision"]),
                  istiod_ip=inputs["istiod_ip"], istiod_source=inputs["istiod_source"])
    return result
