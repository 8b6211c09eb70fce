# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The istiod CA client: its messages against the protobuf wire format written out by hand, and
the call against an in-process gRPC server (plaintext through channel_factory; the TLS path is
the integration test's, against the sandbox's istiods)."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from cryptography import x509

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca_client


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def ld(field, payload):
    """A length-delimited field."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def test_request_wire_format():
    # csr = 1 (string), validity_duration = 3 (int64), metadata = 4 (Struct {fields = 1: map<string, Value>})
    value = ld(3, b"c1")  # Value.string_value = 3
    entry = ld(1, b"ClusterID") + ld(2, value)
    want = ld(1, b"CSR") + varint(3 << 3 | 0) + varint(86400) + ld(4, ld(1, entry))
    assert ca_client.build_request("CSR", 86400, {"ClusterID": "c1"}) == want


def test_response_wire_format():
    data = ld(1, b"leaf\n") + ld(1, b"inter\n") + ld(1, b"rootA\nrootB\n")
    assert ca_client.parse_response(data) == ["leaf\n", "inter\n", "rootA\nrootB\n"]


def test_csr_is_a_csr():
    csr = x509.load_pem_x509_csr(ca_client.make_csr().encode())
    assert csr.is_signature_valid


class FakeCA(object):
    """A CreateCertificate server that records what it got and answers ``answer``."""

    def __init__(self, answer=None, code=None):
        self.answer, self.code, self.seen = answer, code, []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler("istio.v1.auth.IstioCertificateService", {
            "CreateCertificate": grpc.unary_unary_rpc_method_handler(self.create)})
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def create(self, request, context):
        self.seen.append((request, dict(context.invocation_metadata())))
        if self.code is not None:
            context.abort(self.code, "request authenticate failure")
        return self.answer

    def stop(self):
        self.server.stop(0)


@pytest.fixture
def fake_ca():
    made = []

    def make(**kw):
        made.append(FakeCA(**kw))
        return made[-1]
    yield make
    for f in made:
        f.stop()


def test_call_sends_token_and_cluster_and_returns_the_chain(fake_ca):
    srv = fake_ca(answer=ld(1, b"leaf\n") + ld(1, b"inter\n") + ld(1, b"roots\n"))
    chain = ca_client.request_certificate("127.0.0.1:%d" % srv.port, "TOKEN", b"", cluster_id="cluster1",
                                          validity_seconds=120, timeout=5, channel_factory=grpc.insecure_channel)
    assert chain == ["leaf\n", "inter\n", "roots\n"]
    request, headers = srv.seen[0]
    assert headers["authorization"] == "Bearer TOKEN" and headers["clusterid"] == "cluster1"
    request_cls, _resp = ca_client.messages()
    msg = request_cls.FromString(request)
    assert msg.validity_duration == 120 and "BEGIN CERTIFICATE REQUEST" in msg.csr


def test_refused_token_is_named(fake_ca):
    srv = fake_ca(code=grpc.StatusCode.UNAUTHENTICATED)
    with pytest.raises(ca_client.CAClientError) as e:
        ca_client.request_certificate("127.0.0.1:%d" % srv.port, "T", b"", timeout=5, channel_factory=grpc.insecure_channel)
    assert str(e.value).startswith("istiod's CA at 127.0.0.1:%d: CreateCertificate failed: UNAUTHENTICATED" % srv.port)
    assert "audience istio-ca" in str(e.value)


def test_short_answer_and_garbage(fake_ca):
    srv = fake_ca(answer=ld(1, b"leaf only\n"))
    with pytest.raises(ca_client.CAClientError) as e:
        ca_client.request_certificate("127.0.0.1:%d" % srv.port, "T", b"", timeout=5, channel_factory=grpc.insecure_channel)
    assert "reading the response: istiod returned 1 certificate(s)" in str(e.value)
    srv = fake_ca(answer=b"\xff\xff\xff")
    with pytest.raises(ca_client.CAClientError) as e:
        ca_client.request_certificate("127.0.0.1:%d" % srv.port, "T", b"", timeout=5, channel_factory=grpc.insecure_channel)
    assert "reading the response failed" in str(e.value)


def test_nothing_listening():
    with pytest.raises(ca_client.CAClientError) as e:
        ca_client.request_certificate("127.0.0.1:1", "T", b"", timeout=1, channel_factory=grpc.insecure_channel)
    assert str(e.value).startswith("istiod's CA at 127.0.0.1:1: connecting over TLS")
    assert "no TLS connection within 1s" in str(e.value)


def test_no_token_from_the_api():
    class Svc(object):
        name = "cluster9"

        def create_token(self, *a, **kw):
            assert kw["audiences"] == ["istio-ca"]
            return None
    with pytest.raises(ca_client.CAClientError) as e:
        ca_client.workload_certificate(Svc(), "127.0.0.1:1", "ns", "sa", b"")
    assert "cluster9: the API server returned no token for ServiceAccount ns/sa" in str(e.value)
