#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: global_service_entries
short_description: One cluster's C(<name>.<namespace>.global) ServiceEntries and their VIPs
version_added: 0.1.0
description:
  - The explicit-export federation model of Istio's multi-control-plane documents, in the form that works on
    current Istio (sidecar DNS proxying, no istiocoredns).
  - For every Service of another cluster in O(exports), a ServiceEntry for C(<name>.<namespace>.global)
    (C(MESH_INTERNAL), resolution C(DNS)) whose endpoints are the exporting clusters' east-west gateways on port
    15443, with their network and the Pods' O(exports[].label_sets) so that versioned subsets work.
  - For this cluster's own exported Services, the same host with the local Service as endpoint, which is what the
    exporting cluster's gateway routes the C(.global) SNI to.
  - "Versioned subsets at the exporting cluster: when the Pods of one of this cluster's exported Services form more
    than one label set (O(exports[].label_sets), for example C(version=v1) and C(version=v2)), this cluster also gets,
    in the Service's namespace, one Service per non-empty label set, named C(global-<service>-<subset>) (a hash
    replaces the end of names longer than 63 characters), of type C(ClusterIP), whose selector is
    O(exports[].selector) plus the set's labels and whose ports are the Service's; the local endpoint of that set
    addresses it, so that the gateway's SNI cluster of subset C(v1) reaches only the C(v1) Pods. With one label set
    (or Pods without the label keys) the endpoint is the Service itself and no Service is written. These Services
    carry the labels C(meshfed.istio/owner) (O(owner)) and C(meshfed.istio/global-subset-of) (the exported Service);
    they are created before the ServiceEntries that address them and deleted (with O(prune)) after them, when the
    export is gone or down to one label set. M(meshfed.istio.exported_services) never exports them."
  - Each host gets a VIP from O(vip_cidr), allocated deterministically, persisted in ConfigMap
    C(meshfed-global-vips) (stable across runs and across added or removed services), unique in the cluster
    and never one that a ServiceEntry not managed here uses.
  - Every host also gets a DestinationRule (O(destination_rules)) with Istio mutual TLS, which the east-west
    gateway needs to pass the connection through by SNI, and one subset per distinct endpoint label set
    (C(version=v2) makes subset C(v2)); O(routes) adds a VirtualService that splits the host's traffic over its
    subsets by weight.
  - Each kind - the VIP ConfigMap first, then the label sets' Services, the ServiceEntries, DestinationRules,
    VirtualServices and the C(*.global) Gateway - goes through one reconciler (list once, diff, write what differs in parallel, delete
    what is no longer exported, refuse an object of the same name that another owner wrote); see
    M(meshfed.istio.owned_objects). Every object is computed and checked before anything is written.
  - "Two runs at once on one cluster (two AWX jobs): the VIP ConfigMap is created, or replaced at the
    resourceVersion this run read it at, before any other object is written. The run that loses that race has
    written nothing; it reads again and allocates around the other run's VIPs (up to 5 attempts, with a warning),
    then fails naming the cluster and the ConfigMap. A new host never gets an address released by the same run
    (while the range has others), which a ServiceEntry of a concurrent run may still carry."
author:
  - meshfed.istio contributors (@meshfed)
extends_documentation_fragment:
  - meshfed.istio.attributes
  - meshfed.istio.k8s_auth
  - meshfed.istio.writes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  cluster_name:
    description: This cluster's name in the mesh (as in O(exports[].cluster)).
    type: str
    required: true
  exports:
    description: Every exported Service of the mesh (usually built from M(meshfed.istio.exported_services) of each cluster).
    type: list
    elements: dict
    required: true
    suboptions:
      cluster:
        description: Exporting cluster.
        type: str
        required: true
      network:
        description: Its network.
        type: str
      gateway:
        description: Address of its east-west gateway.
        type: str
      name:
        description: Service name.
        type: str
        required: true
      namespace:
        description: Service namespace.
        type: str
        required: true
      selector:
        description:
          - The Service's selector. Needed for this cluster's own exports whose O(exports[].label_sets) has more than
            one set (the selector of each set's Service is this plus the set's labels); refused when missing there.
        type: dict
        default: {}
      ports:
        description:
          - Service ports (C(name), C(port), optional C(app_protocol); for the label sets' Services also
            C(target_port) and C(protocol), default the port and V(TCP)).
        type: list
        elements: dict
        required: true
      label_sets:
        description:
          - Label sets of the endpoints (one endpoint per set and exporting cluster).
          - On the exporting cluster, with more than one set, each non-empty set's endpoint is that set's Service
            (see the description).
        type: list
        elements: dict
        default: [{}]
  namespace:
    description: Namespace of the ServiceEntries and of the VIP ConfigMap.
    type: str
    default: istio-system
  vip_cidr:
    description: Range of the VIPs (inside 240.0.0.0/4; 127.255.0.0/16 is accepted with a warning).
    type: str
    default: 240.240.0.0/16
  via_egress:
    description: Route through the local egress gateway (a first endpoint at the egress gateway, remote ones on network C(external)).
    type: bool
    default: false
  global_gateway:
    description:
      - Whether this cluster's east-west gateway passes C(*.global) through (Gateway C(meshfed-global-gateway),
        C(AUTO_PASSTHROUGH) on 15443). Needed where the cluster exports services; removed otherwise, when it is
        ours (labelled with O(owner)).
    type: bool
    default: false
  destination_rules:
    description:
      - Write a DestinationRule per C(.global) host (C(ISTIO_MUTUAL), a subset per endpoint label set).
      - Turn off only where you manage DestinationRules for these hosts yourself; those written here before
        are then removed (with O(prune)).
    type: bool
    default: true
  routes:
    description:
      - Weighted routing over the subsets of C(.global) hosts, a mapping of host to a mapping of subset
        name to weight; the weights of a host are integers that add up to 100.
      - Each host gets a VirtualService with an C(http) route (HTTP, HTTP2, gRPC ports) and/or a C(tcp) route
        (other ports). Hosts with only TLS ports are refused.
      - Hosts left out get no VirtualService (one written before is removed, with O(prune)).
    type: dict
    default: {}
  variables:
    description:
      - The variables some options come from, as a mapping of option to variable, for messages. A refusal about an
        option then names the variable the user wrote, such as C(federate_clusters_vip_cidr) for O(vip_cidr).
    type: dict
    default: {}
  owner:
    description: Value of label C(meshfed.istio/owner) of the objects managed here.
    type: str
    default: meshfed-global
  prune:
    description:
      - Delete owned ServiceEntries, DestinationRules, VirtualServices and label sets' Services no longer wanted.
      - With V(false), the hosts whose ServiceEntries are kept also keep their VIPs in the VIP ConfigMap, so that
        no other host gets them.
    type: bool
    default: true
seealso:
  - module: meshfed.istio.exported_services
  - module: meshfed.istio.service_entry
"""

EXAMPLES = r"""
- name: ServiceEntries of cluster1 for what cluster2 exports
  meshfed.istio.global_service_entries:
    context: cluster1
    cluster_name: cluster1
    exports:
      - cluster: cluster2
        network: network2
        gateway: 203.0.113.7
        name: httpbin
        namespace: bar
        ports: [{name: http, port: 8000}]

- name: helloworld v1 in cluster1 and v2 in cluster2, 90/10 from everywhere
  meshfed.istio.global_service_entries:
    context: "{{ item }}"
    cluster_name: "{{ item }}"
    exports:
      - {cluster: cluster1, network: network1, gateway: 203.0.113.6, name: helloworld, namespace: sample,
         ports: [{name: http, port: 5000}], label_sets: [{version: v1}]}
      - {cluster: cluster2, network: network2, gateway: 203.0.113.7, name: helloworld, namespace: sample,
         ports: [{name: http, port: 5000}], label_sets: [{version: v2}]}
    routes:
      helloworld.sample.global: {v1: 90, v2: 10}
  loop: [cluster1, cluster2]
"""

RETURN = r"""
pending:
  description:
    - In check mode, what the writes need and does not exist yet (the kind's API, a namespace), when an install in the
      same run would make it; the changes are then predicted without a dry run. A real run refuses instead.
  returned: in check mode, when something is missing
  type: list
  elements: str
  sample: ["the ServiceEntry API (networking.istio.io/v1) is not served yet"]
gateway:
  description: What happened to the C(*.global) Gateway (V(created), V(updated), V(deleted)), when anything did.
  returned: when it changed
  type: str
vips:
  description: The VIP of every C(.global) host in this cluster.
  returned: always
  type: dict
  sample: {httpbin.bar.global: 240.240.12.34}
released:
  description: Hosts whose VIP was released (no longer exported, with O(prune)).
  returned: always
  type: list
  elements: str
created:
  description: ServiceEntries created (namespace/name).
  returned: always
  type: list
  elements: str
updated:
  description: ServiceEntries updated.
  returned: always
  type: list
  elements: str
deleted:
  description: ServiceEntries deleted.
  returned: always
  type: list
  elements: str
unchanged:
  description: ServiceEntries already as wanted.
  returned: always
  type: list
  elements: str
counts:
  description: Number of each.
  returned: always
  type: dict
destination_rules:
  description: The DestinationRules, as for the ServiceEntries (C(changed), C(created), C(updated), C(deleted),
    C(unchanged), C(counts)).
  returned: always
  type: dict
  sample: {changed: true, created: [istio-system/global-httpbin-bar], updated: [], deleted: [], unchanged: [],
           counts: {created: 1, updated: 0, deleted: 0, unchanged: 0}}
virtual_services:
  description: The VirtualServices, likewise.
  returned: always
  type: dict
subset_services:
  description: The Services of the label sets of this cluster's own exports, likewise (namespace/name).
  returned: always
  type: dict
  sample: {changed: true, created: [bar/global-httpbin-v1, bar/global-httpbin-v2], updated: [], deleted: [],
           unchanged: [], counts: {created: 2, updated: 0, deleted: 0, unchanged: 0}}
"""

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import client, federation_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.module_runner import run_module


def main():
    spec = client.auth_argument_spec()
    spec.update(
        cluster_name=dict(type="str", required=True),
        exports=dict(type="list", elements="dict", required=True, options=dict(
            cluster=dict(type="str", required=True),
            network=dict(type="str"),
            gateway=dict(type="str"),
            name=dict(type="str", required=True),
            namespace=dict(type="str", required=True),
            selector=dict(type="dict", default={}),
            ports=dict(type="list", elements="dict", required=True),
            label_sets=dict(type="list", elements="dict", default=[{}]),
        )),
        namespace=dict(type="str", default="istio-system"),
        vip_cidr=dict(type="str", default="240.240.0.0/16"),
        via_egress=dict(type="bool", default=False),
        global_gateway=dict(type="bool", default=False),
        destination_rules=dict(type="bool", default=True),
        routes=dict(type="dict", default={}),
        owner=dict(type="str", default="meshfed-global"),
        prune=dict(type="bool", default=True),
        workers=dict(type="int", default=8),
        field_manager=dict(type="str", default="meshfed.istio"),
        variables=dict(type="dict", default={}),
    )
    run_module(spec, federation_runner.run_global_import, name_option="cluster_name")


if __name__ == "__main__":
    main()
