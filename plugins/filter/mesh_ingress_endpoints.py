# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
name: mesh_ingress_endpoints
short_description: Where an ingress gateway Service is reached from outside its cluster, and the upstreams of a load balancer
version_added: 0.5.0
description:
  - Takes the ingress gateway Service (for example C(istio-system/istio-ingressgateway)) and the cluster's Nodes, both as
    the API returns them (the C(resources) of M(kubernetes.core.k8s_info)), and returns where bookinfo's
    C(/productpage) is reached from outside the cluster.
  - A Service with a LoadBalancer address (C(status.loadBalancer.ingress), an C(ip) or a C(hostname)) is reached at
    each of those addresses and the port's C(port) (RV(_value.kind=loadbalancer)).
  - Any other Service (type NodePort, or a LoadBalancer that has no address yet) is reached at the address of every
    Ready node and the port's C(nodePort) (RV(_value.kind=nodeport)).
  - RV(_value.upstreams) are the servers of a load balancer in front of the nodes (the role
    C(meshfed.istio.deploy_samples) writes them into nginx) - every Ready node's address with the port's C(nodePort),
    sorted, once each - whatever the kind.
  - Fails naming the Service and the field when the port does not exist, when it has neither a C(nodePort) nor a
    LoadBalancer address, or when the nodes are to be used and no Ready node has an address.
author:
  - meshfed.istio contributors (@meshfed)
positional: _input, nodes
options:
  _input:
    description: The ingress gateway Service, as the API returns it (C(metadata), C(spec), C(status)).
    type: dict
    required: true
  nodes:
    description: The cluster's Nodes, as the API returns them.
    type: list
    elements: dict
    required: true
  port_name:
    description: The name of the Service port bookinfo is served on (C(http2) in Istio's gateway charts).
    type: str
    default: http2
  host:
    description: The host name the Gateway and VirtualService of bookinfo serve; the C(Host) header of RV(_value.curl).
    type: str
  address_type:
    description:
      - Which node address to use - a node without one of this type is reached at its address of the other type.
    type: str
    choices: [InternalIP, ExternalIP]
    default: InternalIP
"""

EXAMPLES = r"""
- name: Read the ingress gateway Service
  kubernetes.core.k8s_info:
    kind: Service
    namespace: istio-system
    name: istio-ingressgateway
  register: gateway

- name: Read the Nodes
  kubernetes.core.k8s_info:
    kind: Node
  register: nodes

- name: Show how to reach bookinfo
  ansible.builtin.debug:
    msg: "{{ (gateway.resources | first | meshfed.istio.mesh_ingress_endpoints(nodes.resources, host='bookinfo.example.com')).curl }}"
"""

RETURN = r"""
_value:
  description: Where the gateway is reached.
  type: dict
  contains:
    kind:
      description: C(loadbalancer) (the Service's LoadBalancer addresses) or C(nodeport) (every Ready node's address).
      type: str
      sample: loadbalancer
    addresses:
      description: The LoadBalancer addresses (IPs or host names, in the order of the status), or the nodes' addresses (sorted).
      type: list
      elements: str
      sample: [127.0.1.1]
    port:
      description: The Service port (kind C(loadbalancer)) or its C(nodePort) (kind C(nodeport)).
      type: int
      sample: 80
    urls:
      description: C(http://<address>:<port>/productpage) for each address (an IPv6 address in brackets).
      type: list
      elements: str
      sample: [http://127.0.1.1:80/productpage]
    host:
      description: The O(host) given, or null.
      type: str
      sample: bookinfo.example.com
    curl:
      description: A C(curl) command per URL, with the C(Host) header when O(host) is given.
      type: list
      elements: str
      sample: ["curl -H 'Host: bookinfo.example.com' http://127.0.1.1:80/productpage"]
    node_port:
      description: The port's C(nodePort), null when it has none.
      type: int
      sample: 30601
    upstreams:
      description: C(<node address>:<nodePort>) of every Ready node, sorted, once each; empty when the port has no C(nodePort).
      type: list
      elements: str
      sample: ["192.0.2.1:30601"]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ingress
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def mesh_ingress_endpoints(service, nodes, port_name="http2", host=None, address_type="InternalIP"):
    if not isinstance(nodes, list):
        raise AnsibleFilterError("mesh_ingress_endpoints: nodes must be the list of the cluster's Nodes, got %s"
                                 % type(nodes).__name__)
    try:
        return ingress.ingress_endpoints(service, nodes, port_name=port_name, host=host or None, address_type=address_type)
    except MeshError as e:
        raise AnsibleFilterError("mesh_ingress_endpoints: %s" % e)


class FilterModule(object):

    def filters(self):
        return {"mesh_ingress_endpoints": mesh_ingress_endpoints}
