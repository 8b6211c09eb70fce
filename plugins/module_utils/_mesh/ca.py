# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The mesh CA: one root and one intermediate per cluster, as pure logic.

Nothing here touches the file system or Ansible.  ``reconcile()`` takes the
PEM bytes that exist now and the parameters, and returns the complete set of
files that should exist, with a report of what was kept, created or re-issued
and why.  The caller writes what differs.

File layout (the one of Istio's tools/certs)::

    <dir>/root-cert.pem            root certificate
    <dir>/root-key.pem             root key (only when this module generated it)
    <dir>/<cluster>/ca-cert.pem    intermediate certificate of <cluster>
    <dir>/<cluster>/ca-key.pem     its key
    <dir>/<cluster>/root-cert.pem  the root certificate again
    <dir>/<cluster>/cert-chain.pem ca-cert.pem then root-cert.pem
"""

from __future__ import annotations

import datetime
import traceback

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import names as names_mod
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# Key types the module offers.  RSA sizes in bits; EC curves by NIST name.
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ecdsa-p256", "ecdsa-p384")
REGENERATE_POLICIES = ("never", "fail", "partial_idempotence", "full_idempotence", "always")

ISTIOD_SAN = "istiod.istio-system.svc"
CLUSTER_FILES = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")
KEY_FILES = ("root-key.pem", "ca-key.pem")


def file_mode(relpath):
    """0600 for private keys, 0644 for certificates."""
    return 0o600 if relpath.rsplit("/", 1)[-1] in KEY_FILES else 0o644


class Params(object):
    """The CA parameters, validated.  Raises CAError naming the field."""

    FIELDS = {
        "organization": "Istio",
        "root_common_name": "Root CA",
        "intermediate_common_name": "Intermediate CA",
        "root_key_type": "rsa4096",
        "key_type": "rsa4096",
        "root_validity_days": 3650,
        "intermediate_validity_days": 730,
        "renew_before_days": 30,
        "regenerate": "partial_idempotence",
    }

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(self.FIELDS)
        if unknown:
            raise CAError("unknown CA parameter(s): %s" % ", ".join(sorted(unknown)))
        for name, default in self.FIELDS.items():
            value = kwargs.get(name)
            setattr(self, name, default if value is None else value)
        self._validate()

    def _validate(self):
        for field in ("root_key_type", "key_type"):
            if getattr(self, field) not in KEY_TYPES:
                raise CAError("%s: unknown key type %r; use one of %s"
                              % (field, getattr(self, field), ", ".join(KEY_TYPES)), field=field)
        if self.regenerate not in REGENERATE_POLICIES:
            raise CAError("regenerate: unknown policy %r; use one of %s"
                          % (self.regenerate, ", ".join(REGENERATE_POLICIES)), field="regenerate")
        for field in ("root_validity_days", "intermediate_validity_days"):
            if int(getattr(self, field)) < 1:
                raise CAError("%s must be at least 1 (got %s)" % (field, getattr(self, field)), field=field)
        if self.intermediate_validity_days > self.root_validity_days:
            raise CAError("intermediate_validity_days (%d) is longer than root_validity_days (%d): an intermediate "
                          "must expire inside its root's validity"
                          % (self.intermediate_validity_days, self.root_validity_days),
                          field="intermediate_validity_days")
        if not 0 <= self.renew_before_days < self.intermediate_validity_days:
            raise CAError("renew_before_days (%d) must be at least 0 and shorter than intermediate_validity_days (%d)"
                          % (self.renew_before_days, self.intermediate_validity_days), field="renew_before_days")
        for field in ("organization", "root_common_name", "intermediate_common_name"):
            if not str(getattr(self, field)).strip():
                raise CAError("%s must not be empty" % field, field=field)


def validate_cluster_names(names):
    """Each name a DNS-1123 label, no duplicates.  Returns the list."""
    seen = set()
    for name in names:
        if not names_mod.is_dns1123_label(name):
            raise CAError("clusters: %r is not a DNS-1123 label (lower-case letters, digits and '-', "
                          "starting and ending with a letter or digit, at most 63 characters)" % (name,),
                          field="clusters")
        if name in seen:
            raise CAError("clusters: duplicate cluster name %r" % name, field="clusters")
        seen.add(name)
    return list(names)


# --- keys ---------------------------------------------------------------

def generate_key(key_type):
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    curve = {"ecdsa-p256": ec.SECP256R1(), "ecdsa-p384": ec.SECP384R1()}[key_type]
    return ec.generate_private_key(curve)


def key_type_of(public_key):
    """The KEY_TYPES name of a public key, or a description of an unsupported one."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa%d" % public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}
        return names.get(public_key.curve.name, "ecdsa-" + public_key.curve.name)
    return type(public_key).__name__


def _hash_for(key):
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def key_pem(key, passphrase=None):
    enc = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def same_public_key(cert, key):
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def load_cert(data, what):
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise CAError("%s is not a PEM certificate: %s" % (what, e))


def load_key(data, what, passphrase=None):
    try:
        return serialization.load_pem_private_key(data, password=passphrase.encode() if passphrase else None)
    except (ValueError, TypeError) as e:
        raise CAError("%s cannot be loaded as a PEM private key: %s" % (what, e))


# --- certificates -------------------------------------------------------

def _utc(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def not_before(cert):
    return cert.not_valid_before_utc


def not_after(cert):
    return cert.not_valid_after_utc


def root_subject(params):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, params.organization),
        x509.NameAttribute(NameOID.COMMON_NAME, params.root_common_name),
    ])


def intermediate_subject(params, cluster):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, params.organization),
        x509.NameAttribute(NameOID.COMMON_NAME, params.intermediate_common_name),
        x509.NameAttribute(NameOID.LOCALITY_NAME, cluster),
    ])


def build_root(key, params, now):
    now = _utc(now)
    subject = root_subject(params)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=params.root_validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, _hash_for(key))


def build_intermediate(cluster, key, root_cert, root_key, params, now):
    """Issue the intermediate of ``cluster``; returns (cert, capped) where capped
    says the validity was shortened to end with the root's."""
    now = _utc(now)
    end = now + datetime.timedelta(days=params.intermediate_validity_days)
    capped = end > not_after(root_cert)
    if capped:
        end = not_after(root_cert)
    builder = (
        x509.CertificateBuilder()
        .subject_name(intermediate_subject(params, cluster))
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ISTIOD_SAN)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_cert.public_key()), critical=False)
    )
    return builder.sign(root_key, _hash_for(root_key)), capped


def issued_by(cert, issuer):
    """True when ``issuer`` signed ``cert`` (name match and signature check)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _ext(cert, cls):
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def summary(cert):
    """What may be shown of a certificate: never key material."""
    if cert is None:
        return None
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": not_before(cert).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": not_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        "key_type": key_type_of(cert.public_key()),
    }


def root_problems(cert, key, params, now):
    """Reasons the root cannot serve as this mesh's root.  Fatal ones first.

    Returns (fatal, drift): fatal problems make it unusable; drift lists where it
    differs from the requested parameters (a root is never re-issued for that)."""
    fatal, drift = [], []
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        fatal.append("it is not a CA certificate (basicConstraints CA:TRUE missing)")
    ku = _ext(cert, x509.KeyUsage)
    if ku is not None and not ku.key_cert_sign:
        fatal.append("its keyUsage lacks keyCertSign")
    if not_after(cert) <= _utc(now):
        fatal.append("it expired on %s" % not_after(cert).strftime("%Y-%m-%d"))
    if key is not None and not same_public_key(cert, key):
        fatal.append("the root key does not match the root certificate")
    if key_type_of(cert.public_key()) != params.root_key_type:
        drift.append("key type is %s, requested %s" % (key_type_of(cert.public_key()), params.root_key_type))
    if cert.subject != cert.issuer:
        drift.append("it is not self-signed (issuer %s)" % cert.issuer.rfc4514_string())
    return fatal, drift


def intermediate_reasons(cluster, files, root_cert, params, now, strict_params):
    """Why the intermediate of ``cluster`` must be (re)issued; [] when it is good.

    ``files`` maps CLUSTER_FILES names to bytes or None.  ``strict_params``:
    also report drift from the requested subject/key type (only meaningful when
    this module issues the intermediates, i.e. when the root key is available).
    Returns (reasons, unreadable) where unreadable says the material could not be parsed.
    """
    cert_b, key_b = files.get("ca-cert.pem"), files.get("ca-key.pem")
    if cert_b is None or key_b is None:
        return ["missing"], False
    try:
        cert = load_cert(cert_b, "%s/ca-cert.pem" % cluster)
        key = load_key(key_b, "%s/ca-key.pem" % cluster)
    except CAError as e:
        return ["unreadable: %s" % e], True
    reasons = []
    now = _utc(now)
    if not same_public_key(cert, key):
        reasons.append("ca-key.pem does not match ca-cert.pem")
    if not issued_by(cert, root_cert):
        reasons.append("does not chain to the root")
    if not_after(cert) <= now:
        reasons.append("expired on %s" % not_after(cert).strftime("%Y-%m-%d"))
    elif not_after(cert) <= now + datetime.timedelta(days=params.renew_before_days):
        reasons.append("expires on %s, within renew_before_days (%d)"
                       % (not_after(cert).strftime("%Y-%m-%d"), params.renew_before_days))
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        reasons.append("not a CA certificate")
    if strict_params:
        if key_type_of(cert.public_key()) != params.key_type:
            reasons.append("key type is %s, requested %s" % (key_type_of(cert.public_key()), params.key_type))
        if cert.subject != intermediate_subject(params, cluster):
            reasons.append("subject is %s, requested %s"
                           % (cert.subject.rfc4514_string(), intermediate_subject(params, cluster).rfc4514_string()))
        san = _ext(cert, x509.SubjectAlternativeName)
        if san is None or ISTIOD_SAN not in san.get_values_for_type(x509.DNSName):
            reasons.append("SAN lacks DNS:%s" % ISTIOD_SAN)
        if bc is not None and bc.ca and bc.path_length != 0:
            reasons.append("basicConstraints pathlen is not 0")
        ku = _ext(cert, x509.KeyUsage)
        if ku is None or not (ku.key_cert_sign and ku.crl_sign and ku.digital_signature):
            reasons.append("keyUsage is not keyCertSign, cRLSign, digitalSignature")
    return reasons, False


def decide(cluster, reasons, unreadable, policy):
    """Apply the regenerate policy: 'keep' or 'issue', or raise CAError."""
    if reasons == ["missing"]:
        return "issue"
    if policy == "always":
        return "issue"
    if not reasons:
        return "keep"
    if policy == "never":
        return "keep"
    if policy == "fail":
        raise CAError("cluster %s: intermediate must be re-issued (%s) and regenerate=fail"
                      % (cluster, "; ".join(reasons)), field="regenerate")
    if unreadable and policy == "partial_idempotence":
        raise CAError("cluster %s: existing intermediate cannot be read (%s); fix or remove it, or use "
                      "regenerate=full_idempotence to replace it" % (cluster, "; ".join(reasons)), field="regenerate")
    return "issue"


class Existing(object):
    """PEM bytes found now.  ``root_provided``: root comes from the caller
    (root_cert_path/root_key_path) and is never written back."""

    def __init__(self, root_cert=None, root_key=None, clusters=None, root_provided=False, root_key_passphrase=None):
        self.root_cert = root_cert
        self.root_key = root_key
        self.clusters = clusters or {}
        self.root_provided = root_provided
        self.root_key_passphrase = root_key_passphrase


def reconcile(existing, cluster_names, params, now):
    """Decide everything.  Returns a dict:

    files:    {relpath: bytes} every file that should exist in <dir>, with its content
    root:     {action: created|adopted|provided, summary, warnings}
    clusters: {name: {action: created|reissued|kept, reasons, summary, capped}}
    warnings: [str]
    """
    now = _utc(now)
    validate_cluster_names(cluster_names)
    warnings = []
    files = {}
    passphrase = existing.root_key_passphrase

    # Root
    if existing.root_cert is None:
        if existing.root_provided:
            raise CAError("root_cert_path: no root certificate was given", field="root_cert_path")
        if existing.root_key is not None:
            raise CAError("root-key.pem exists without root-cert.pem; refusing to overwrite a root key. "
                          "Restore root-cert.pem or move the key away", field="dir")
        root_key = generate_key(params.root_key_type)
        root_cert = build_root(root_key, params, now)
        root_action = "created"
        files["root-key.pem"] = key_pem(root_key, passphrase)
    else:
        where = "root_cert_path" if existing.root_provided else "root-cert.pem"
        root_cert = load_cert(existing.root_cert, where)
        root_key = None
        if existing.root_key is not None:
            root_key = load_key(existing.root_key, "root_key_path" if existing.root_provided else "root-key.pem",
                                passphrase)
            if not existing.root_provided:
                files["root-key.pem"] = existing.root_key
        fatal, drift = root_problems(root_cert, root_key, params, now)
        if fatal:
            field = "dir"
            if existing.root_provided:
                field = "root_cert_path"
                if root_key is not None and not same_public_key(root_cert, root_key):
                    field = "root_key_path"
            raise CAError("root CA %s cannot be used: %s" % (where, "; ".join(fatal)), field=field)
        if drift:
            if params.regenerate == "fail":
                raise CAError("root CA differs from the requested parameters (%s) and regenerate=fail"
                              % "; ".join(drift), field="regenerate")
            warnings.append("root CA differs from the requested parameters (%s); a root is never re-issued "
                            "automatically: rotate it explicitly" % "; ".join(drift))
        if not_after(root_cert) <= now + datetime.timedelta(days=params.renew_before_days):
            warnings.append("root CA expires on %s, within renew_before_days: plan a root rotation"
                            % not_after(root_cert).strftime("%Y-%m-%d"))
        root_action = "provided" if existing.root_provided else "adopted"
    root_pem = existing.root_cert if existing.root_cert is not None else cert_pem(root_cert)
    files["root-cert.pem"] = root_pem

    # Intermediates
    clusters = {}
    for name in cluster_names:
        have = existing.clusters.get(name, {})
        reasons, unreadable = intermediate_reasons(name, have, root_cert, params, now, strict_params=root_key is not None)
        action = decide(name, reasons, unreadable, params.regenerate)
        capped = False
        if action == "issue":
            if root_key is None:
                raise CAError("cluster %s: the intermediate must be issued (%s) but no root key is available; "
                              "give root_key_path or put a valid intermediate in %s/ca-cert.pem and ca-key.pem"
                              % (name, "; ".join(reasons) or "regenerate=always", name), field="root_key_path")
            key = generate_key(params.key_type)
            cert, capped = build_intermediate(name, key, root_cert, root_key, params, now)
            cert_b, key_b = cert_pem(cert), key_pem(key)
            if capped:
                warnings.append("cluster %s: intermediate validity capped at the root's expiry (%s)"
                                % (name, not_after(root_cert).strftime("%Y-%m-%d")))
            status = "created" if reasons == ["missing"] else "reissued"
        else:
            cert_b, key_b = have["ca-cert.pem"], have["ca-key.pem"]
            cert = None if unreadable else load_cert(cert_b, "%s/ca-cert.pem" % name)
            status = "kept"
            if reasons:
                warnings.append("cluster %s: intermediate kept despite: %s (regenerate=%s)"
                                % (name, "; ".join(reasons), params.regenerate))
        files["%s/ca-cert.pem" % name] = cert_b
        files["%s/ca-key.pem" % name] = key_b
        files["%s/root-cert.pem" % name] = root_pem
        files["%s/cert-chain.pem" % name] = _chain(cert_b, root_pem)
        clusters[name] = {"action": status, "reasons": [] if status == "kept" else reasons,
                          "summary": summary(cert), "capped": capped}
    return {
        "files": files,
        "root": {"action": root_action, "summary": summary(root_cert)},
        "clusters": clusters,
        "warnings": warnings,
    }


def _chain(cert_b, root_b):
    cert_b = cert_b if cert_b.endswith(b"\n") else cert_b + b"\n"
    return cert_b + root_b


def describe(relpath, data):
    """A diff-safe description of one managed file: never key material."""
    if data is None:
        return None
    if relpath.rsplit("/", 1)[-1] in KEY_FILES:
        return "<private key, %d bytes>" % len(data)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return "<unparseable, %d bytes>" % len(data)
    return ["%s serial=%s not_after=%s sha256=%s" % (s["subject"], s["serial"], s["not_after"], s["fingerprint_sha256"])
            for s in (summary(c) for c in certs)]


def identity(pem, what="the certificate"):
    """What a workload certificate says about whom it is for (the first of a PEM chain):
    its URI SANs (the SPIFFE identity), subject, issuer, validity and serial."""
    data = pem.encode("utf-8") if isinstance(pem, str) else pem
    cert = load_cert(data, what)
    san = _ext(cert, x509.SubjectAlternativeName)
    out = summary(cert)
    out["uris"] = list(san.get_values_for_type(x509.UniformResourceIdentifier)) if san is not None else []
    return out
