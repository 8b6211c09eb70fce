# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure CA logic, with the real cryptography library and `openssl verify`."""

from __future__ import annotations

import datetime
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
FAST = dict(root_key_type="ecdsa-p256", key_type="ecdsa-p256")


def params(**kw):
    return ca.Params(**dict(FAST, **kw))


def fresh(clusters=("cluster1", "cluster2"), now=NOW, **kw):
    return ca.reconcile(ca.Existing(), list(clusters), params(**kw), now)


def existing_from(files, clusters=("cluster1", "cluster2"), **kw):
    """Existing material as the module would read it back from disk."""
    return ca.Existing(
        root_cert=files.get("root-cert.pem"), root_key=files.get("root-key.pem"),
        clusters=dict((c, dict((f, files.get("%s/%s" % (c, f))) for f in ca.CLUSTER_FILES)) for c in clusters), **kw)


def cert(files, rel):
    return x509.load_pem_x509_certificate(files[rel])


def ext(c, cls):
    return c.extensions.get_extension_for_class(cls)


# --- parameters and names ---------------------------------------------------

@pytest.mark.parametrize("kw, field, fragment", [
    (dict(key_type="rsa1024"), "key_type", "unknown key type 'rsa1024'"),
    (dict(root_key_type="ed25519"), "root_key_type", "unknown key type 'ed25519'"),
    (dict(regenerate="sometimes"), "regenerate", "unknown policy 'sometimes'"),
    (dict(intermediate_validity_days=4000, root_validity_days=3650), "intermediate_validity_days",
     "longer than root_validity_days"),
    (dict(renew_before_days=730), "renew_before_days", "shorter than intermediate_validity_days"),
    (dict(renew_before_days=-1), "renew_before_days", "at least 0"),
    (dict(root_validity_days=0), "root_validity_days", "at least 1"),
    (dict(organization=" "), "organization", "must not be empty"),
])
def test_bad_params_name_the_field(kw, field, fragment):
    with pytest.raises(CAError) as e:
        ca.Params(**kw)
    assert e.value.field == field
    assert fragment in str(e.value)


@pytest.mark.parametrize("names, fragment", [
    (["Cluster1"], "'Cluster1' is not a DNS-1123 label"),
    (["cluster_1"], "'cluster_1' is not a DNS-1123 label"),
    (["-c1"], "'-c1' is not a DNS-1123 label"),
    (["c" * 64], "is not a DNS-1123 label"),
    ([""], "'' is not a DNS-1123 label"),
    (["c1", "c2", "c1"], "duplicate cluster name 'c1'"),
])
def test_bad_cluster_names(names, fragment):
    with pytest.raises(CAError) as e:
        ca.validate_cluster_names(names)
    assert e.value.field == "clusters"
    assert fragment in str(e.value)


def test_good_cluster_names():
    assert ca.validate_cluster_names(["c1", "east-1", "a" * 63]) == ["c1", "east-1", "a" * 63]


# --- generation -------------------------------------------------------------

def test_fresh_layout_and_actions():
    plan = fresh()
    assert sorted(plan["files"]) == sorted(["root-cert.pem", "root-key.pem"] + [
        "%s/%s" % (c, f) for c in ("cluster1", "cluster2") for f in ca.CLUSTER_FILES])
    assert plan["root"]["action"] == "created"
    assert {c: i["action"] for c, i in plan["clusters"].items()} == {"cluster1": "created", "cluster2": "created"}
    assert plan["warnings"] == []


def test_root_extensions_and_subject():
    plan = fresh()
    root = cert(plan["files"], "root-cert.pem")
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Istio"
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length is None
    ku = ext(root, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert (root.not_valid_after_utc - NOW).days == 3650


def test_intermediate_extensions_subject_and_validity():
    plan = fresh()
    root = cert(plan["files"], "root-cert.pem")
    for c in ("cluster1", "cluster2"):
        inter = cert(plan["files"], "%s/ca-cert.pem" % c)
        assert inter.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)[0].value == c
        assert inter.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Intermediate CA"
        assert inter.issuer == root.subject
        bc = ext(inter, x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == 0
        ku = ext(inter, x509.KeyUsage).value
        assert ku.key_cert_sign and ku.crl_sign and ku.digital_signature
        assert ext(inter, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [ca.ISTIOD_SAN]
        assert root.not_valid_before_utc <= inter.not_valid_before_utc
        assert inter.not_valid_after_utc <= root.not_valid_after_utc
        assert (inter.not_valid_after_utc - NOW).days == 730
        # the chain verifies with cryptography's X.509 signature verification
        inter.verify_directly_issued_by(root)
        assert ca.issued_by(inter, root)


def test_chain_files_are_consistent():
    plan = fresh()
    f = plan["files"]
    for c in ("cluster1", "cluster2"):
        assert f["%s/root-cert.pem" % c] == f["root-cert.pem"]
        chain = x509.load_pem_x509_certificates(f["%s/cert-chain.pem" % c])
        assert [x.fingerprint(hashes.SHA256()) for x in chain] == [
            cert(f, "%s/ca-cert.pem" % c).fingerprint(hashes.SHA256()), cert(f, "root-cert.pem").fingerprint(hashes.SHA256())]
        key = ca.load_key(f["%s/ca-key.pem" % c], "k")
        assert ca.same_public_key(cert(f, "%s/ca-cert.pem" % c), key)


def test_openssl_verify_accepts_each_cluster(tmp_path):
    plan = fresh(root_key_type="rsa2048", key_type="rsa2048")
    for rel, data in plan["files"].items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for c in ("cluster1", "cluster2"):
        out = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(tmp_path / "root-cert.pem"),
                              str(tmp_path / c / "ca-cert.pem")], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith(": OK")


@pytest.mark.parametrize("key_type, hash_name", [
    ("rsa2048", "sha256"), ("rsa3072", "sha256"), ("ecdsa-p256", "sha256"), ("ecdsa-p384", "sha384"),
])
def test_key_types(key_type, hash_name):
    plan = ca.reconcile(ca.Existing(), ["c1"], ca.Params(root_key_type=key_type, key_type=key_type), NOW)
    for rel in ("root-cert.pem", "c1/ca-cert.pem"):
        c = cert(plan["files"], rel)
        assert ca.key_type_of(c.public_key()) == key_type
        assert c.signature_hash_algorithm.name == hash_name
    assert plan["clusters"]["c1"]["summary"]["key_type"] == key_type


def test_default_key_type_is_rsa4096():
    assert ca.Params().root_key_type == "rsa4096" and ca.Params().key_type == "rsa4096"


# --- idempotence and renewal ---------------------------------------------------

def test_second_reconcile_keeps_everything_byte_for_byte():
    first = fresh()
    second = ca.reconcile(existing_from(first["files"]), ["cluster1", "cluster2"], params(), NOW)
    assert second["files"] == first["files"]
    assert second["root"]["action"] == "adopted"
    assert {i["action"] for i in second["clusters"].values()} == {"kept"}


def test_adding_a_cluster_issues_only_that_one():
    first = fresh()
    second = ca.reconcile(existing_from(first["files"], clusters=("cluster1", "cluster2", "cluster3")),
                          ["cluster1", "cluster2", "cluster3"], params(), NOW)
    assert {c: i["action"] for c, i in second["clusters"].items()} == {
        "cluster1": "kept", "cluster2": "kept", "cluster3": "created"}
    assert second["files"]["cluster1/ca-cert.pem"] == first["files"]["cluster1/ca-cert.pem"]


@pytest.mark.parametrize("days_later, action", [
    (0, "kept"), (699, "kept"), (700, "reissued"), (729, "reissued"), (731, "reissued"),
])
def test_renewal_window(days_later, action):
    first = fresh()
    later = NOW + datetime.timedelta(days=days_later)
    plan = ca.reconcile(existing_from(first["files"]), ["cluster1", "cluster2"], params(), later)
    assert plan["clusters"]["cluster1"]["action"] == action
    if action == "reissued":
        reason = plan["clusters"]["cluster1"]["reasons"][0]
        assert ("within renew_before_days (30)" in reason) or reason.startswith("expired on")
        new = cert(plan["files"], "cluster1/ca-cert.pem")
        assert new.not_valid_after_utc > first_not_after(first)


def first_not_after(plan):
    return cert(plan["files"], "cluster1/ca-cert.pem").not_valid_after_utc


def expiring_material():
    return fresh(), NOW + datetime.timedelta(days=710)


def test_policy_never_keeps_and_warns():
    first, later = expiring_material()
    plan = ca.reconcile(existing_from(first["files"]), ["cluster1", "cluster2"], params(regenerate="never"), later)
    assert plan["files"] == first["files"]
    assert {i["action"] for i in plan["clusters"].values()} == {"kept"}
    assert any("kept despite" in w and "renew_before_days" in w for w in plan["warnings"])


def test_policy_fail_raises():
    first, later = expiring_material()
    with pytest.raises(CAError) as e:
        ca.reconcile(existing_from(first["files"]), ["cluster1", "cluster2"], params(regenerate="fail"), later)
    assert e.value.field == "regenerate"
    assert "cluster cluster1: intermediate must be re-issued" in str(e.value)


def test_policy_fail_still_creates_missing():
    plan = fresh(regenerate="fail")
    assert {i["action"] for i in plan["clusters"].values()} == {"created"}


def test_policy_always_reissues_valid_material():
    first = fresh()
    plan = ca.reconcile(existing_from(first["files"]), ["cluster1", "cluster2"], params(regenerate="always"), NOW)
    assert {i["action"] for i in plan["clusters"].values()} == {"reissued"}
    assert plan["files"]["cluster1/ca-cert.pem"] != first["files"]["cluster1/ca-cert.pem"]
    assert plan["files"]["root-cert.pem"] == first["files"]["root-cert.pem"]  # the root is never re-issued


def test_unreadable_intermediate_partial_fails_full_replaces():
    first = fresh()
    files = dict(first["files"])
    files["cluster1/ca-cert.pem"] = b"garbage"
    with pytest.raises(CAError) as e:
        ca.reconcile(existing_from(files), ["cluster1", "cluster2"], params(), NOW)
    assert "cannot be read" in str(e.value) and "full_idempotence" in str(e.value)
    plan = ca.reconcile(existing_from(files), ["cluster1", "cluster2"], params(regenerate="full_idempotence"), NOW)
    assert plan["clusters"]["cluster1"]["action"] == "reissued"
    assert plan["clusters"]["cluster2"]["action"] == "kept"


def test_intermediate_from_another_root_is_reissued():
    mine, other = fresh(), fresh()
    files = dict(mine["files"])
    for f in ("ca-cert.pem", "ca-key.pem"):
        files["cluster1/" + f] = other["files"]["cluster1/" + f]
    plan = ca.reconcile(existing_from(files), ["cluster1", "cluster2"], params(), NOW)
    assert plan["clusters"]["cluster1"]["action"] == "reissued"
    assert "does not chain to the root" in plan["clusters"]["cluster1"]["reasons"]
    assert ca.issued_by(cert(plan["files"], "cluster1/ca-cert.pem"), cert(plan["files"], "root-cert.pem"))


def test_mismatched_intermediate_key_is_reissued():
    first = fresh()
    files = dict(first["files"])
    files["cluster1/ca-key.pem"] = first["files"]["cluster2/ca-key.pem"]
    plan = ca.reconcile(existing_from(files), ["cluster1", "cluster2"], params(), NOW)
    assert "ca-key.pem does not match ca-cert.pem" in plan["clusters"]["cluster1"]["reasons"]


def test_changed_key_type_reissues_intermediates_but_not_the_root():
    first = fresh()
    plan = ca.reconcile(existing_from(first["files"]), ["cluster1", "cluster2"],
                        params(key_type="ecdsa-p384", root_key_type="ecdsa-p384"), NOW)
    assert plan["clusters"]["cluster1"]["reasons"] == ["key type is ecdsa-p256, requested ecdsa-p384"]
    assert plan["files"]["root-cert.pem"] == first["files"]["root-cert.pem"]
    assert any("never re-issued automatically" in w for w in plan["warnings"])


def test_changed_organization_reissues():
    first = fresh()
    plan = ca.reconcile(existing_from(first["files"]), ["cluster1"], params(organization="Example"), NOW)
    assert plan["clusters"]["cluster1"]["action"] == "reissued"
    assert plan["clusters"]["cluster1"]["reasons"][0].startswith("subject is")


def test_validity_capped_by_root():
    first = fresh()
    late = cert(first["files"], "root-cert.pem").not_valid_after_utc - datetime.timedelta(days=100)
    plan = ca.reconcile(existing_from(first["files"]), ["cluster1", "cluster2"], params(), late)
    info = plan["clusters"]["cluster1"]
    assert info["action"] == "reissued" and info["capped"]
    assert cert(plan["files"], "cluster1/ca-cert.pem").not_valid_after_utc == \
        cert(plan["files"], "root-cert.pem").not_valid_after_utc
    assert any("capped at the root's expiry" in w for w in plan["warnings"])


# --- root: adopt, bring your own ----------------------------------------------

def test_root_key_without_cert_is_refused():
    first = fresh()
    with pytest.raises(CAError) as e:
        ca.reconcile(ca.Existing(root_key=first["files"]["root-key.pem"]), ["c1"], params(), NOW)
    assert "refusing to overwrite a root key" in str(e.value)


def test_byo_root_with_key_is_used_and_not_copied():
    org = fresh(clusters=())
    existing = ca.Existing(root_cert=org["files"]["root-cert.pem"], root_key=org["files"]["root-key.pem"],
                           root_provided=True)
    plan = ca.reconcile(existing, ["east"], params(), NOW)
    assert plan["root"]["action"] == "provided"
    assert "root-key.pem" not in plan["files"]
    assert plan["files"]["root-cert.pem"] == org["files"]["root-cert.pem"]
    assert ca.issued_by(cert(plan["files"], "east/ca-cert.pem"), cert(org["files"], "root-cert.pem"))


def test_byo_root_key_mismatch_names_root_key_path():
    a, b = fresh(clusters=()), fresh(clusters=())
    existing = ca.Existing(root_cert=a["files"]["root-cert.pem"], root_key=b["files"]["root-key.pem"],
                           root_provided=True)
    with pytest.raises(CAError) as e:
        ca.reconcile(existing, ["east"], params(), NOW)
    assert e.value.field == "root_key_path"
    assert "the root key does not match the root certificate" in str(e.value)


def test_byo_root_cert_only_validates_premade_intermediates():
    org = fresh(clusters=("east", "west"))
    files = dict(org["files"])
    del files["root-key.pem"]
    existing = existing_from(files, clusters=("east", "west"), root_provided=True)
    plan = ca.reconcile(existing, ["east", "west"], params(), NOW)
    assert {i["action"] for i in plan["clusters"].values()} == {"kept"}
    assert "root-key.pem" not in plan["files"]
    # a cluster without an intermediate cannot be served without the root key
    with pytest.raises(CAError) as e:
        ca.reconcile(existing_from(files, clusters=("east", "north"), root_provided=True),
                     ["east", "north"], params(), NOW)
    assert e.value.field == "root_key_path"
    assert "cluster north: the intermediate must be issued (missing) but no root key is available" in str(e.value)


def test_byo_root_cert_only_ignores_foreign_subjects():
    """An organisation's own intermediates keep their subjects: no drift check without the root key."""
    org = fresh(clusters=("east",), organization="Example Corp")
    existing = existing_from(org["files"], clusters=("east",), root_provided=True)
    existing.root_key = None
    plan = ca.reconcile(existing, ["east"], params(organization="Istio"), NOW)
    assert plan["clusters"]["east"]["action"] == "kept"


def test_byo_root_that_is_not_a_ca_is_refused():
    key = ca.generate_key("ecdsa-p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a ca")])
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=10)).sign(key, hashes.SHA256()))
    existing = ca.Existing(root_cert=ca.cert_pem(leaf), root_key=ca.key_pem(key), root_provided=True)
    with pytest.raises(CAError) as e:
        ca.reconcile(existing, ["c1"], params(), NOW)
    assert e.value.field == "root_cert_path"
    assert "not a CA certificate" in str(e.value)


def test_expired_root_is_refused():
    first = fresh()
    later = NOW + datetime.timedelta(days=3651)
    with pytest.raises(CAError) as e:
        ca.reconcile(existing_from(first["files"]), ["cluster1"], params(), later)
    assert "expired on" in str(e.value) and e.value.field == "dir"


def test_garbage_byo_root_is_refused():
    with pytest.raises(CAError) as e:
        ca.reconcile(ca.Existing(root_cert=b"nope", root_provided=True), ["c1"], params(), NOW)
    assert "root_cert_path is not a PEM certificate" in str(e.value)


def test_root_key_passphrase_encrypts_and_is_needed():
    plan = ca.reconcile(ca.Existing(root_key_passphrase="s3cret"), ["c1"], params(), NOW)
    assert b"ENCRYPTED PRIVATE KEY" in plan["files"]["root-key.pem"]
    assert b"ENCRYPTED" not in plan["files"]["c1/ca-key.pem"]
    again = existing_from(plan["files"], clusters=("c1",), root_key_passphrase="s3cret")
    assert ca.reconcile(again, ["c1"], params(regenerate="always"), NOW)["clusters"]["c1"]["action"] == "reissued"
    wrong = existing_from(plan["files"], clusters=("c1",), root_key_passphrase="wrong")
    with pytest.raises(CAError) as e:
        ca.reconcile(wrong, ["c1"], params(), NOW)
    assert "root-key.pem cannot be loaded" in str(e.value)


# --- reporting never shows keys ---------------------------------------------------

def test_describe_never_shows_key_material():
    plan = fresh()
    for rel, data in plan["files"].items():
        text = repr(ca.describe(rel, data))
        assert "PRIVATE KEY" not in text and "BEGIN" not in text
    assert ca.describe("cluster1/ca-key.pem", plan["files"]["cluster1/ca-key.pem"]).startswith("<private key")
    chain = ca.describe("cluster1/cert-chain.pem", plan["files"]["cluster1/cert-chain.pem"])
    assert len(chain) == 2 and "L=cluster1" in chain[0] and "sha256=" in chain[0]


def test_file_modes():
    assert ca.file_mode("root-key.pem") == 0o600
    assert ca.file_mode("c1/ca-key.pem") == 0o600
    assert ca.file_mode("c1/cert-chain.pem") == 0o644
    assert ca.file_mode("root-cert.pem") == 0o644


def test_summary_fields():
    s = fresh()["root"]["summary"]
    assert set(s) == {"subject", "issuer", "serial", "not_before", "not_after", "fingerprint_sha256", "key_type"}
    assert s["subject"] == "CN=Root CA,O=Istio"
    assert len(s["fingerprint_sha256"].split(":")) == 32
