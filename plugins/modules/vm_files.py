#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vm_files
short_description: Make the files a VM needs to join the mesh, as istioctl x workload entry configure does
version_added: 0.2.0
description:
  - The native equivalent of C(istioctl x workload entry configure), read from the cluster. Writes into O(dest)
    on the machine the module runs on (the controller, or the cluster host the task is delegated to) the five
    files of one VM, and only those that differ.
  - C(cluster.env) - the proxy metadata of the mesh config's C(defaultConfig) and what the WorkloadGroup gives
    (canonical service and revision, namespace, service account, trust domain, cluster ID, mesh ID, network, pod
    ports, workload name, labels as JSON, DNS capture, autoregistration), the inbound ports, the excluded ports,
    C(CA_ADDR) for a revision, C(ISTIO_SVC_IP) for O(internal_ip) or O(external_ip); sorted C(KEY=value) lines,
    values shell-quoted.
  - C(mesh.yaml) - C(defaultConfig) of the mesh config (ConfigMap C(istio) or C(istio-<revision>)) with that
    metadata, the WorkloadGroup's probe as C(readinessProbe) and its C(proxy.istio.io/config) annotations applied.
  - C(root-cert.pem) - the mesh root, from the ConfigMap C(istio-ca-root-cert) of the WorkloadGroup's namespace
    (or of the Istio namespace when that namespace does not have it yet).
  - C(hosts) - one line, the address the VM reaches istiod at and istiod's name (C(istiod.istio-system.svc), or
    C(istiod-<revision>.istio-system.svc)). The address is O(istiod_address) (a hostname is resolved on the
    controller), else the first LoadBalancer IP of O(ingress_service), else its LoadBalancer hostname resolved on
    the controller, else its first external IP; without any, the module fails naming the Service and the option.
  - C(istio-token) - a service account token of the WorkloadGroup's service account with audience C(istio-ca)
    (TokenRequest), lifetime O(token_lifetime). A run requests a new one only when the token on disk is missing,
    not of that service account or audience, or expires within O(token_renew_before). Mode 0600. The token never
    appears in a result, a diff or a log.
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
attributes:
  check_mode:
    support: full
    details:
      - Reads the cluster and reports which files would change and whether the token would be renewed; requests no
        token and writes nothing. Ahead of an Istio install in the same run, reports a change and what is missing.
  diff_mode:
    support: full
    details: Per changed file, its text before and after; for the token only that it is replaced.
  idempotent:
    support: full
options:
  workload_group:
    description: The WorkloadGroup the VM belongs to.
    type: dict
    required: true
    suboptions:
      name:
        description: Name of the WorkloadGroup.
        type: str
        required: true
      namespace:
        description: Its namespace, the VM's namespace.
        type: str
        required: true
      spec:
        description:
          - The WorkloadGroup C(spec) (C(metadata), C(template), C(probe)), as C(istioctl -f) takes a file. When
            given, the group is not read from the cluster, so the files can be made before it exists (check mode).
        type: dict
      annotations:
        description: The WorkloadGroup's own annotations (with O(workload_group.spec)).
        type: dict
  dest:
    description: Directory the files are written to (created when missing).
    type: path
    required: true
  istio_namespace:
    description: Namespace of istiod.
    type: str
    default: istio-system
  revision:
    description: The Istio revision the VM connects to; empty or C(default) for the default one.
    type: str
    default: ""
  cluster_id:
    description:
      - The cluster ID the VM announces. Default the C(global.multiCluster.clusterName) of the injector ConfigMap
        (C(istio-sidecar-injector[-<revision>])), as istioctl reads it.
    type: str
  ingress_service:
    description: The Service the VM reaches istiod through, C(name) or C(name.namespace) (default namespace O(istio_namespace)).
    type: str
    default: istio-eastwestgateway
  istiod_address:
    description:
      - The address the VM reaches istiod at, instead of the gateway's (an IP, or a hostname resolved on the
        controller; istioctl's C(--ingressIP)).
    type: str
  internal_ip:
    description: The VM's internal IP, written as C(ISTIO_SVC_IP). Mutually exclusive with O(external_ip).
    type: str
  external_ip:
    description:
      - The VM's external IP, written as C(ISTIO_SVC_IP) with C(REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION=true).
    type: str
  autoregister:
    description: The VM registers itself (istiod creates its WorkloadEntry when the proxy connects).
    type: bool
    default: false
  dns_capture:
    description: The agent captures the VM's DNS (C(ISTIO_META_DNS_CAPTURE)).
    type: bool
    default: true
  token_lifetime:
    description: Lifetime of a new token in seconds (at least 600).
    type: int
    default: 3600
  token_renew_before:
    description: A token that expires within this many seconds is renewed.
    type: int
    default: 900
  variables:
    description:
      - The variables some options come from, as a mapping of option to variable, for messages. A refusal about an
        option names the variable instead.
    type: dict
notes:
  - Differences from istioctl, on purpose - the mesh config is used as the ConfigMap writes it (istioctl passes it
    through protobuf, which drops keys set to their zero value); a gateway without an address fails (istioctl writes
    an empty C(hosts)); C(proxy.istio.io/config) annotations replace top-level keys and merge C(proxyMetadata).
seealso:
  - module: meshfed.istio.workload_group
  - name: istioctl x workload entry configure
    description: The istioctl command this module does natively.
    link: https://istio.io/latest/docs/reference/commands/istioctl/#istioctl-experimental-workload-entry-configure
"""

EXAMPLES = r"""
- name: Make vm1's files on the controller
  meshfed.istio.vm_files:
    kubeconfig: ~/.kube/config
    context: cluster1
    workload_group:
      name: hello-vm
      namespace: vm-apps
    dest: "{{ playbook_dir }}/vm-files/vm1"
    token_lifetime: 86400
    token_renew_before: 21600
  register: vm1_files

- name: The same, ahead of the WorkloadGroup (check mode of a first run), with istiod reached at an address of ours
  meshfed.istio.vm_files:
    context: cluster1
    workload_group:
      name: hello-vm
      namespace: vm-apps
      spec:
        metadata:
          labels:
            app: hello-vm
        template:
          serviceAccount: hello-vm
          network: vm-network
          ports:
            http: 8080
    istiod_address: istiod.example.com
    autoregister: true
    dest: /srv/vm-files/vm1
"""

RETURN = r"""
dest:
  description: The directory of the files.
  returned: always
  type: str
files:
  description: Per file (C(cluster.env), C(mesh.yaml), C(root-cert.pem), C(hosts), C(istio-token)), its path and what
    this run did to it (C(create), C(update), C(mode), C(unchanged)).
  returned: always
  type: dict
  sample: {"hosts": {"path": "/srv/vm-files/vm1/hosts", "state": "update"}}
changed_files:
  description: The files written (or that would be written).
  returned: success
  type: list
  elements: str
  sample: ["hosts", "istio-token"]
token:
  description: What was decided about the token (never the token itself).
  returned: always
  type: dict
  contains:
    renew:
      description: Whether a new token was (or would be) requested.
      type: bool
    reason:
      description: Why.
      type: str
      sample: the token expires in 512 s (renewed 900 s ahead)
    expires:
      description: When the token on disk expires (UTC, ISO 8601).
      type: str
      sample: "2026-11-30T10:00:00Z"
cluster_id:
  description: The cluster ID written into the files.
  returned: success
  type: str
istiod_host:
  description: The name the VM resolves istiod by.
  returned: success
  type: str
  sample: istiod.istio-system.svc
istiod_ip:
  description: The address written for it.
  returned: success
  type: str
istiod_source:
  description: Where that address came from.
  returned: success
  type: str
  sample: LoadBalancer IP of istio-system/istio-eastwestgateway
pending:
  description: In check mode ahead of an Istio install, what is missing to make the files.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, vmfiles_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def argument_spec():
    spec = client.auth_argument_spec()
    spec.update(vmfiles_runner.options())
    return spec


def main():
    run_module(argument_spec(), vmfiles_runner.run_vm_files)


if __name__ == "__main__":
    main()
