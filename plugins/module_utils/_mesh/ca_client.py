# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Ask an istiod's CA for a workload certificate, as an Istio agent does (I/O).

``request_certificate`` makes a key and a CSR, calls
``istio.v1.auth.IstioCertificateService/CreateCertificate`` over TLS (istiod's port 15012),
trusting the mesh root bundle it is given, with a ServiceAccount token (audience
``istio-ca``) in ``authorization: Bearer``, and returns the chain istiod signed: the leaf,
the intermediates, and the whole root bundle istiod holds as the last element.  istiod takes
the identity from the token, not from the CSR.  ``workload_certificate`` gets that token
through the shared service layer (``Service.create_token``) first.

The two messages are built at run time from a FileDescriptorProto (no generated code): the
fields of Istio's security/v1alpha1/ca.proto that matter here.  The key made for the CSR is
thrown away: the certificate is for checking which root it chains to, not for serving.
Needs ``grpcio``, ``protobuf`` and ``cryptography``; without them ``HAS_CA_CLIENT`` is False.
"""

from __future__ import annotations

import traceback

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, vmfiles
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

try:
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2
except ImportError:  # pragma: no cover - reported by the module as a missing library
    HAS_CA_CLIENT = False
    CA_CLIENT_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CA_CLIENT = ca.HAS_CRYPTOGRAPHY
    CA_CLIENT_IMPORT_ERROR = ca.CRYPTOGRAPHY_IMPORT_ERROR

PACKAGE = "istio.v1.auth"
METHOD = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
TOKEN_AUDIENCE = vmfiles.TOKEN_AUDIENCE  # "istio-ca"
# the name istiod's serving certificate carries in every install (ISTIOD_CUSTOM_HOST adds others)
DEFAULT_TARGET_NAME = "istiod.istio-system.svc"
DEFAULT_VALIDITY = 3600


class CAClientError(MeshError):
    """istiod's CA did not sign: the message names the address and the step that failed."""


def messages():
    """(IstioCertificateRequest, IstioCertificateResponse) classes, made from a descriptor in a
    pool of their own (so that they never clash with generated Istio modules):

        IstioCertificateRequest  {string csr = 1; int64 validity_duration = 3; google.protobuf.Struct metadata = 4}
        IstioCertificateResponse {repeated string cert_chain = 1}
    """
    fd = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(name="meshfed/istio/ca_client.proto", package=PACKAGE, syntax="proto3",
                                               dependency=[struct_pb2.DESCRIPTOR.name])
    req = proto.message_type.add(name="IstioCertificateRequest")
    req.field.add(name="csr", number=1, type=fd.TYPE_STRING, label=fd.LABEL_OPTIONAL, json_name="csr")
    req.field.add(name="validity_duration", number=3, type=fd.TYPE_INT64, label=fd.LABEL_OPTIONAL,
                  json_name="validityDuration")
    req.field.add(name="metadata", number=4, type=fd.TYPE_MESSAGE, label=fd.LABEL_OPTIONAL,
                  type_name=".google.protobuf.Struct", json_name="metadata")
    resp = proto.message_type.add(name="IstioCertificateResponse")
    resp.field.add(name="cert_chain", number=1, type=fd.TYPE_STRING, label=fd.LABEL_REPEATED, json_name="certChain")
    pool.Add(proto)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName("%s.%s" % (PACKAGE, name)))
                 for name in ("IstioCertificateRequest", "IstioCertificateResponse"))


def make_csr(key_type="ecdsa-p256"):
    """A CSR (PEM text) with a throw-away key: istiod ignores its subject and SANs."""
    key = ca.generate_key(key_type)
    csr = (ca.x509.CertificateSigningRequestBuilder()
           .subject_name(ca.x509.Name([ca.x509.NameAttribute(ca.NameOID.ORGANIZATION_NAME, "meshfed.istio ca_client")]))
           .sign(key, ca.hashes.SHA256()))
    return csr.public_bytes(ca.serialization.Encoding.PEM).decode("ascii")


def build_request(csr, validity_seconds=DEFAULT_VALIDITY, metadata=None):
    """The serialized IstioCertificateRequest (bytes)."""
    request_cls, _response_cls = messages()
    req = request_cls(csr=csr, validity_duration=int(validity_seconds))
    for key, value in (metadata or {}).items():
        req.metadata.fields[key].string_value = str(value)
    return req.SerializeToString()


def parse_response(data):
    """The cert_chain of a serialized IstioCertificateResponse: [PEM text]."""
    _request_cls, response_cls = messages()
    return list(response_cls.FromString(data).cert_chain)


def _status(exc):
    code = exc.code() if hasattr(exc, "code") else None
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    return (code.name if code is not None else "error"), (detail or "")


def request_certificate(address, token, root_bundle, target_name=DEFAULT_TARGET_NAME, cluster_id=None,
                        validity_seconds=DEFAULT_VALIDITY, timeout=15.0, channel_factory=None):
    """The chain istiod's CA at ``address`` (host:port of its secure gRPC port, 15012) signs for
    the identity of ``token``: [leaf, intermediates..., root bundle] as PEM texts.

    ``root_bundle``: PEM bytes trusted for istiod's serving certificate (the mesh roots, e.g.
    an istio-ca-root-cert ConfigMap).  ``target_name``: the name checked in that certificate
    (istiod.istio-system.svc; ``localhost`` for the sandbox's istiods).  ``cluster_id``: sent as
    the ``clusterid`` header for an istiod that validates tokens of several clusters.
    Raises CAClientError naming the address and the step."""
    where = "istiod's CA at %s" % address
    step = "making the certificate request"
    try:
        body = build_request(make_csr(), validity_seconds)
    except (ValueError, TypeError) as e:
        raise CAClientError("%s: %s failed: %s" % (where, step, e))
    headers = [("authorization", "Bearer " + token)]
    if cluster_id:
        headers.append(("clusterid", cluster_id))
    step = "connecting over TLS (trusting the given root bundle, name %s)" % target_name
    if channel_factory is None:
        creds = grpc.ssl_channel_credentials(root_certificates=root_bundle if isinstance(root_bundle, bytes)
                                             else root_bundle.encode("ascii"))
        options = [("grpc.ssl_target_name_override", target_name)] if target_name else []
        channel = grpc.secure_channel(address, creds, options)
    else:
        channel = channel_factory(address)
    try:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise CAClientError("%s: %s: no TLS connection within %.0fs (not listening, or its certificate is not "
                                "trusted by the given bundle or lacks the name %s)" % (where, step, timeout, target_name))
        step = "CreateCertificate"
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        try:
            data = call(body, metadata=headers, timeout=timeout)
        except grpc.RpcError as e:
            code, detail = _status(e)
            hint = " (the token was refused: audience %s? does the ServiceAccount exist?)" % TOKEN_AUDIENCE \
                if code == "UNAUTHENTICATED" else ""
            raise CAClientError("%s: %s failed: %s%s%s" % (where, step, code, ": " + detail if detail else "", hint))
    finally:
        channel.close()
    step = "reading the response"
    try:
        chain = parse_response(data)
    except Exception as e:  # protobuf's DecodeError has no stable public base class
        raise CAClientError("%s: %s failed: %s" % (where, step, e))
    if len(chain) < 2:
        raise CAClientError("%s: %s: istiod returned %d certificate(s), expected the leaf, its chain and the root bundle"
                            % (where, step, len(chain)))
    return chain


def workload_certificate(service, address, namespace, service_account, root_bundle, target_name=DEFAULT_TARGET_NAME,
                         cluster_id=None, token_lifetime=600, validity_seconds=DEFAULT_VALIDITY, timeout=15.0):
    """A certificate istiod signs for ``namespace``/``service_account``: a TokenRequest token of
    audience istio-ca through ``service`` (the cluster that istiod validates tokens with), then
    ``request_certificate``.  Returns {chain, identity (the leaf's summary and URI SANs)}; never
    the token or a key."""
    token = service.create_token(namespace, service_account, audiences=[TOKEN_AUDIENCE], expiration=token_lifetime)
    if not token:
        raise CAClientError("%s: the API server returned no token for ServiceAccount %s/%s"
                            % (service.name, namespace, service_account))
    chain = request_certificate(address, token, root_bundle, target_name=target_name, cluster_id=cluster_id,
                                validity_seconds=validity_seconds, timeout=timeout)
    return {"chain": chain, "identity": ca.identity(chain[0].encode("ascii"), "the leaf from %s" % address)}
