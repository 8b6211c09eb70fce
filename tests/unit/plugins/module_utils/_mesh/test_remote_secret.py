# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote secret: kubeconfig round trip, token expiry, rewrite decision, RBAC."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
import yaml

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import remote_secret as rs

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def jwt(exp=None):
    def enc(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    claims = {"sub": "system:serviceaccount:istio-system:r"}
    if exp is not None:
        claims["exp"] = int(exp.timestamp())
    return "%s.%s.sig" % (enc({"alg": "RS256"}), enc(claims))


def test_kubeconfig_round_trip_in_istio_format():
    cfg = rs.build_kubeconfig("cluster2", "https://10.0.0.2:6443", CA, "tok")
    assert cfg["current-context"] == "cluster2"
    assert cfg["clusters"][0] == {"name": "cluster2", "cluster": {
        "server": "https://10.0.0.2:6443", "certificate-authority-data": base64.b64encode(CA).decode()}}
    assert rs.parse_kubeconfig(yaml.safe_dump(cfg)) == ("https://10.0.0.2:6443", CA, "tok")


def test_unusable_kubeconfig_parses_to_nones():
    assert rs.parse_kubeconfig("not: [a kubeconfig") == (None, None, None)
    assert rs.parse_kubeconfig("current-context: x\n") == (None, None, None)


def test_token_expiry():
    exp = NOW + datetime.timedelta(days=3)
    assert rs.token_expiry(jwt(exp)) == exp
    assert rs.token_expiry(jwt()) is None
    assert rs.token_expiry("garbage") is None


def test_rewrite_reasons():
    good = ("https://s", CA, "t")
    assert rs.rewrite_reasons(None, "https://s", CA, None, NOW, 60) == ["missing"]
    assert rs.rewrite_reasons(good, "https://s", CA, None, NOW, 60) == []
    assert rs.rewrite_reasons(good, "https://s2", CA, None, NOW, 60) == ["server is https://s, wanted https://s2"]
    assert rs.rewrite_reasons(good, "https://s", b"other", None, NOW, 60) == ["CA changed"]
    assert rs.rewrite_reasons(("https://s", CA, None), "https://s", CA, None, NOW, 60) == ["no token"]
    soon = NOW + datetime.timedelta(seconds=30)
    assert rs.rewrite_reasons(good, "https://s", CA, soon, NOW, 60) == ["token expires at 2026-11-21T12:00:30Z"]
    later = NOW + datetime.timedelta(days=1)
    assert rs.rewrite_reasons(good, "https://s", CA, later, NOW, 60) == []


def test_token_reasons():
    legacy, fresh, other = jwt(), jwt(NOW + datetime.timedelta(days=30)), jwt(NOW + datetime.timedelta(days=1))
    assert rs.token_reasons("request", fresh, fresh) == []
    assert rs.token_reasons("request", None, fresh) == []  # no token at all: rewrite_reasons says so
    assert rs.token_reasons("request", legacy, fresh) == ["token has no expiry (token_mode is request)"]
    assert rs.token_reasons("request", other, fresh) == ["token renewed"]
    assert rs.token_reasons("secret", fresh, legacy) == ["token differs from the service account's token Secret"]
    assert rs.token_reasons("secret", legacy, legacy) == []


def test_describe_never_shows_the_token():
    token = jwt(NOW + datetime.timedelta(days=1))
    d = rs.describe("https://s", CA, token)
    assert token not in json.dumps(d)
    assert d["token"] == "<hidden, expires 2026-11-22T12:00:00Z>"
    assert rs.describe(None, None, None) == {}


def test_reader_rules_are_read_only():
    for rule in rs.READER_RULES:
        if rule["verbs"] == ["create"]:
            # reviews only: they create no object
            assert rule["resources"] in (["tokenreviews"], ["subjectaccessreviews"])
        else:
            assert rule["verbs"] == ["get", "list", "watch"]


def test_names():
    assert rs.secret_name("cluster2") == "istio-remote-secret-cluster2"
    assert rs.token_secret_name("meshfed-istio-reader") == "meshfed-istio-reader-token"


def remote(cluster, name=None, managed=True, multicluster="true", annotated=True):
    labels = {rs.MULTICLUSTER_LABEL: multicluster}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "meshfed.istio"
    meta = {"name": name or rs.secret_name(cluster), "labels": labels}
    if annotated:
        meta["annotations"] = {rs.CLUSTER_ANNOTATION: cluster}
    return {"metadata": meta, "data": {cluster: "c2VjcmV0"}}


def test_written_by_us_only_our_annotated_remote_secrets():
    secrets = [remote("c2"), remote("c3", name="custom-name"), remote("c4", managed=False),
               remote("c5", annotated=False), remote("c6", multicluster="false")]
    assert rs.written_by_us(secrets) == {"c2": "istio-remote-secret-c2", "c3": "custom-name"}


@pytest.mark.parametrize("existing, keep, stale", [
    (["c2", "c3"], ["c2"], ["c3"]),
    (["c2"], ["c2", "c3"], []),
    (["c3", "c2"], [], ["c2", "c3"]),
    ([], ["c2"], []),
])
def test_stale_remote_secrets(existing, keep, stale):
    assert rs.stale(rs.written_by_us([remote(c) for c in existing]), keep) == stale


def _secret_with(annotations):
    return {"metadata": {"annotations": annotations}}


def test_a_requested_token_records_its_lifetime_and_a_change_re_issues_it():
    m = rs.secret_manifest("c2", "istio-system", "kubeconfig", token_expiration=86400)
    assert m["metadata"]["annotations"][rs.TOKEN_EXPIRATION_ANNOTATION] == "86400"
    assert rs.issued_for(m) == 86400
    assert rs.lifetime_reasons(m, 86400) == []
    assert rs.lifetime_reasons(m, 3600) == ["token lifetime is 3600 s (the current token was issued for 86400 s)"]
    # a secret of token_mode secret, or written before the lifetime was recorded
    plain = rs.secret_manifest("c2", "istio-system", "kubeconfig")
    assert rs.TOKEN_EXPIRATION_ANNOTATION not in plain["metadata"]["annotations"]
    assert rs.lifetime_reasons(plain, 3600) == [
        "token lifetime is 3600 s (the current token was issued for an unrecorded lifetime)"]
    assert rs.issued_for(_secret_with({rs.TOKEN_EXPIRATION_ANNOTATION: "soon"})) is None
    # nothing to re-issue when there is no secret yet
    assert rs.lifetime_reasons(None, 3600) == []


class _Source(object):
    """What plan_secret asks of the source cluster, in request mode: its CA and new tokens."""

    def __init__(self, token):
        self.token, self.requests = token, 0

    def ca_cert(self):
        return CA

    def create_token(self, namespace, service_account, expiration=None):
        self.requests += 1
        return self.token


REQUEST = {"service_account": "r", "token_mode": "request", "token_expiration": 86400, "renew_before": 3600,
           "token_timeout": 5}


def _existing(lifetime=86400):
    return {"metadata": {"annotations": {rs.TOKEN_EXPIRATION_ANNOTATION: str(lifetime)}}}


@pytest.mark.parametrize("current_exp, lifetime, requests, reasons", [
    (NOW + datetime.timedelta(hours=20), 86400, 0, []),                               # valid: kept
    (NOW + datetime.timedelta(minutes=30), 86400, 1, ["token renewed"]),              # expiring: renewed
    (NOW + datetime.timedelta(hours=20), 600, 1, ["token lifetime is 86400 s (the current token was issued for 600 s)",
                                                  "token renewed"]),                  # other lifetime
])
def test_plan_secret_requests_a_token_only_when_missing_or_expiring(current_exp, lifetime, requests, reasons):
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import remote_secret_runner as rsr
    old, new = jwt(current_exp), jwt(NOW + datetime.timedelta(hours=24))
    source = _Source(new)
    ca, token, until, why, created = rsr.plan_secret(REQUEST, source, "ns", _existing(lifetime), ("https://s", CA, old),
                                                     "https://s", NOW, False, lambda: [])
    assert source.requests == requests and not created and ca == CA
    assert token == (old if requests == 0 else new)
    assert [r for r in why if not r.startswith("token expires")] == reasons


def test_plan_secret_in_check_mode_requests_nothing():
    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import remote_secret_runner as rsr
    source = _Source(jwt(NOW))
    ca, token, until, why, created = rsr.plan_secret(REQUEST, source, "ns", None, None, "https://s", NOW, True,
                                                     lambda: [])
    assert (token, until, why, source.requests) == (None, None, ["missing"], 0)
