# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root rotation, pure: bundles, new-root checks, chain checks, the state record, and whole
rotations of a simulated mesh (istiod's reload and signing played by the test with real
certificates: ca.py's helpers, ecdsa-p256)."""

from __future__ import annotations

import copy
import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, rotation as rot
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
FAST = dict(root_key_type="ecdsa-p256", key_type="ecdsa-p256")
CLUSTERS = ("cluster1", "cluster2")
NAMESPACES = ("istio-system", "default", "bookinfo")


def params(**kw):
    return ca.Params(**dict(FAST, **kw))


@pytest.fixture(scope="module")
def mesh_ca():
    """The old CA (root and two intermediates, as mesh_ca writes them) and a new root."""
    plan = ca.reconcile(ca.Existing(), list(CLUSTERS), params(), NOW)
    new_cert, new_key = rot.generate_new_root(params(), NOW, plan["files"]["root-cert.pem"])
    return {"files": plan["files"], "old": plan["files"]["root-cert.pem"], "new": new_cert, "new_key": new_key}


def self_signed(key=None, ca_flag=True, key_cert_sign=True, not_before=None, days=365, cn="Other Root", org=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(([x509.NameAttribute(ca.NameOID.ORGANIZATION_NAME, org)] if org else [])
                     + [x509.NameAttribute(ca.NameOID.COMMON_NAME, cn)])
    start = not_before or NOW - datetime.timedelta(days=1)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(start)
         .not_valid_after(start + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                                      crl_sign=key_cert_sign, encipher_only=False, decipher_only=False), critical=True))
    return ca.cert_pem(b.sign(key, ca.hashes.SHA256())), ca.key_pem(key)


# --- a simulated mesh: the Secret, istiod's reload and its CA -----------------------------------

class Istiod(object):
    """What matters of one cluster: its cacerts Secret, the bundle istiod took (and wrote into the
    istio-ca-root-cert ConfigMaps), and the CA that signs workload certificates."""

    def __init__(self, name, files, multiroot=True):
        self.name = name
        self.secret = dict((k, files["%s/%s" % (name, k)]) for k in ca.CLUSTER_FILES)
        self.multiroot = multiroot
        self.loaded = dict(self.secret)  # what istiod runs with
        self.configmaps = dict((ns, self.secret["root-cert.pem"]) for ns in NAMESPACES)

    def reload(self):
        """istiod's handleEvent: a changed bundle only with multi-root and a subset relation (bytes)."""
        old, new = self.loaded["root-cert.pem"], self.secret["root-cert.pem"]
        if old != new and not (self.multiroot and (old in new or new in old)):
            return False
        rot.validate_cluster_files(self.secret)
        self.loaded = dict(self.secret)
        self.configmaps = dict((ns, self.loaded["root-cert.pem"]) for ns in NAMESPACES)
        return True

    def sign(self, now=NOW, sa="sleep"):
        """A workload certificate as istiod's CreateCertificate returns it."""
        inter = ca.load_cert(self.loaded["ca-cert.pem"], "ca-cert")
        key = ca.load_key(self.loaded["ca-key.pem"], "ca-key")
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(inter.subject)
                .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=24))
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                    "spiffe://cluster.local/ns/default/sa/%s" % sa)]), critical=True)
                .sign(key, ca.hashes.SHA256()))
        chain = [ca.cert_pem(leaf).decode()]
        chain += [ca.cert_pem(c).decode() for c in x509.load_pem_x509_certificates(self.loaded["cert-chain.pem"])]
        return chain + [self.loaded["root-cert.pem"].decode()]

    def observed(self, now=NOW):
        return {"multiroot": self.multiroot, "secret": dict(self.secret), "configmaps": dict(self.configmaps),
                "workload_chain": self.sign(now)}


def mesh(mesh_ca, multiroot=True):
    return dict((n, Istiod(n, mesh_ca["files"], multiroot)) for n in CLUSTERS)


def observe(m, now=NOW):
    return dict((n, i.observed(now)) for n, i in m.items())


def execute(state, m, result, mesh_ca, now=NOW):
    """What the module would do with a plan: write each cluster's Secret, let istiod reload, record."""
    written = {}
    for name in result["writes"]:
        action = result["clusters"][name]["action"]
        stage = {rot.ACT_WRITE_BUNDLE: 2, rot.ACT_ISSUE_INTERMEDIATE: 3, rot.ACT_WRITE_NEW_ROOT: 4}[action]
        inter = None
        if stage == 3:
            cert, key, _capped = rot.issue_intermediate(name, mesh_ca["new"], mesh_ca["new_key"], params(), now)
            inter = (cert, key)
        m[name].secret = rot.cluster_files(stage, state, m[name].secret, inter)
        assert m[name].reload(), "istiod refused stage %d on %s" % (stage, name)
        written[name] = stage
    return rot.record(state, result, now, written)


def assert_zero_downtime(m, now=NOW):
    """Every cluster's workload certificate verifies against every cluster's ConfigMaps."""
    for a in m.values():
        chain = a.sign(now)
        for b in m.values():
            for ns, bundle in b.configmaps.items():
                assert rot.verify_chain(chain, bundle, now) is not None, "%s's cert vs %s %s" % (a.name, b.name, ns)


# --- bundles -----------------------------------------------------------------------------------

def test_bundles_append_bytes_untouched(mesh_ca):
    b = rot.bundles(mesh_ca["old"], mesh_ca["new"])
    assert b[0] == mesh_ca["old"]
    assert b[2] == mesh_ca["old"] + mesh_ca["new"]
    assert b[3] == b[2] + mesh_ca["new"]
    assert b[4] == mesh_ca["new"]
    # istiod's subset tests before 1.30 (bytes) between consecutive stages
    assert b[0] in b[2] and b[2] in b[3] and b[4] in b[3]
    assert rot.fingerprints(b[3], "b") == rot.fingerprints(mesh_ca["old"], "o") + [rot.fingerprints(mesh_ca["new"], "n")[0]] * 2


def test_append_adds_a_newline_only_when_missing(mesh_ca):
    assert rot.append_root(mesh_ca["old"].rstrip(b"\n"), mesh_ca["new"]) == mesh_ca["old"] + mesh_ca["new"]
    assert rot.append_root("A\n", "B\n") == b"A\nB\n"


def test_describe_bundle_never_shows_keys(mesh_ca):
    out = rot.describe_bundle(rot.bundles(mesh_ca["old"], mesh_ca["new"])[2])
    assert [d["subject"] for d in out] == ["CN=Root CA,O=Istio", "CN=Root CA 2026-11-21,O=Istio"]
    for d in out:
        assert set(d) >= {"subject", "serial", "fingerprint_sha256", "not_before", "not_after"}
    assert "PRIVATE" not in json.dumps(out) and "BEGIN" not in json.dumps(out)
    assert rot.describe_bundle(None) is None


@pytest.mark.parametrize("data, fragment", [(b"", "not a PEM certificate bundle (Unable to load PEM file)"),
                                            (b"junk", "not a PEM certificate bundle"),
                                            (None, "missing")])
def test_load_bundle_refuses(data, fragment):
    with pytest.raises(CAError) as e:
        rot.load_bundle(data, "cluster1: root-cert.pem")
    assert "cluster1: root-cert.pem" in str(e.value) and fragment in str(e.value)


# --- the new root ------------------------------------------------------------------------------

def test_generated_new_root_is_valid_and_named_apart(mesh_ca):
    summary, warnings = rot.validate_new_root(mesh_ca["new"], mesh_ca["new_key"], mesh_ca["old"], NOW)
    assert summary["subject"] == "CN=Root CA 2026-11-21,O=Istio"
    assert warnings == []
    assert "PRIVATE KEY" in mesh_ca["new_key"].decode()


def test_brought_root_without_key_is_accepted(mesh_ca):
    cert, _key = self_signed(days=4000)
    assert rot.validate_new_root(cert, None, mesh_ca["old"], NOW)[0]["subject"] == "CN=Other Root"


@pytest.mark.parametrize("kw, fragment", [
    (dict(ca_flag=False), "not a CA certificate"),
    (dict(key_cert_sign=False), "keyUsage lacks keyCertSign"),
    (dict(not_before=NOW - datetime.timedelta(days=30), days=10), "expired on 2026-11-01"),
    (dict(not_before=NOW + datetime.timedelta(days=1)), "not valid before 2026-11-22"),
])
def test_bad_new_root_names_the_field(mesh_ca, kw, fragment):
    cert, key = self_signed(**kw)
    with pytest.raises(CAError) as e:
        rot.validate_new_root(cert, key, mesh_ca["old"], NOW)
    assert e.value.field == "new_root_cert" and fragment in str(e.value)
    assert str(e.value).startswith("new_root_cert: CN=Other Root cannot be the new root")


def test_new_root_key_must_match(mesh_ca):
    cert, _key = self_signed()
    _other, other_key = self_signed()
    with pytest.raises(CAError) as e:
        rot.validate_new_root(cert, other_key, mesh_ca["old"], NOW)
    assert e.value.field == "new_root_key" and "does not match new_root_cert" in str(e.value)


def test_new_root_must_not_be_the_old_one(mesh_ca):
    with pytest.raises(CAError) as e:
        rot.validate_new_root(mesh_ca["old"], mesh_ca["files"]["root-key.pem"], mesh_ca["old"], NOW)
    assert e.value.field == "new_root_cert" and "is the current root" in str(e.value)


def test_new_root_alone(mesh_ca):
    with pytest.raises(CAError) as e:
        rot.validate_new_root(mesh_ca["old"] + mesh_ca["new"], None, mesh_ca["old"], NOW)
    assert "holds 2 certificates" in str(e.value)


def test_new_root_warnings(mesh_ca):
    old_key = ca.load_key(mesh_ca["files"]["root-key.pem"], "k")
    same_key, _k = self_signed(key=old_key, days=30, cn="Root CA")
    _s, warnings = rot.validate_new_root(same_key, None, mesh_ca["old"], NOW)
    assert any("same key as the current root" in w for w in warnings)
    assert any("expires on" in w and "before the current root" in w for w in warnings)
    _s, warnings = rot.validate_new_root(self_signed(days=4000, cn="Root CA", org="Istio")[0], None, mesh_ca["old"], NOW)
    assert any("same subject as the current root" in w for w in warnings)


# --- chains --------------------------------------------------------------------------------------

def test_chain_verifies_against_the_root_it_comes_from(mesh_ca):
    m = mesh(mesh_ca)
    chain = m["cluster1"].sign()
    assert len(chain) == 4  # leaf, intermediate, root (cert-chain.pem), the root bundle
    assert rot.verify_chain(chain, mesh_ca["old"], NOW)["subject"] == "CN=Root CA,O=Istio"
    assert rot.verify_chain(chain, mesh_ca["new"], NOW) is None
    assert rot.chain_roots(chain, mesh_ca["old"], mesh_ca["new"], NOW) == {"old": True, "new": False}
    assert rot.verify_chain(chain, mesh_ca["old"] + mesh_ca["new"], NOW) is not None
    assert rot.leaf_identity(chain)["uris"] == ["spiffe://cluster.local/ns/default/sa/sleep"]


def test_chain_of_a_new_intermediate(mesh_ca):
    m = mesh(mesh_ca)
    cert, key, capped = rot.issue_intermediate("cluster1", mesh_ca["new"], mesh_ca["new_key"], params(), NOW)
    assert not capped
    m["cluster1"].loaded = {"ca-cert.pem": cert, "ca-key.pem": key, "cert-chain.pem": cert + mesh_ca["new"],
                            "root-cert.pem": rot.bundles(mesh_ca["old"], mesh_ca["new"])[3]}
    chain = m["cluster1"].sign()
    assert rot.chain_roots(chain, mesh_ca["old"], mesh_ca["new"], NOW) == {"old": False, "new": True}


def test_chain_checks_validity_and_signatures(mesh_ca):
    m = mesh(mesh_ca)
    chain = m["cluster1"].sign()
    later = NOW + datetime.timedelta(days=2)  # the 24 h leaf expired
    assert rot.verify_chain(chain, mesh_ca["old"], later) is None
    # the chain's own root is not a trust anchor: only the given bundle is
    assert rot.verify_chain(chain, self_signed()[0], NOW) is None
    # a leaf of another cluster's intermediate does not chain through this one's
    other = m["cluster2"].sign()
    assert rot.verify_chain([other[0], chain[1]], mesh_ca["old"], NOW) is None
    with pytest.raises(CAError):
        rot.verify_chain([], mesh_ca["old"], NOW)


# --- the state record ------------------------------------------------------------------------

def test_state_round_trip_and_no_keys(mesh_ca):
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW, "generated", 60)
    text = rot.dump_state(st)
    assert "PRIVATE" not in text
    assert rot.load_state(text) == st
    assert st["version"] == rot.STATE_VERSION and st["completed"] is None
    assert st["clusters"]["cluster1"] == {"phase": 0, "written": 0, "at": {}, "written_at": {}}


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s.update(version=2), "version is 2"),
    (lambda s: s.update(format="x"), "format is 'x'"),
    (lambda s: s.update(old_roots=["AA"]), "old_roots do not match"),
    (lambda s: s.update(new_root_fingerprint="AA"), "new_root_fingerprint does not match"),
    (lambda s: s.update(started="yesterday"), "'yesterday' is not a UTC time"),
    (lambda s: s.update(proxy_wait_seconds=-1), "proxy_wait_seconds must be"),
    (lambda s: s.update(new_root_source="found"), "new_root_source is 'found'"),
    (lambda s: s["clusters"]["cluster1"].update(written=3, phase=0), "clusters.cluster1 phase 0 does not go with written stage 3"),
    (lambda s: s["clusters"]["cluster2"].update(written=1), "clusters.cluster2 needs phase"),
    (lambda s: s.update(clusters={}), "clusters must name at least one cluster"),
    (lambda s: s.update(new_root=s["old_bundle"], new_root_fingerprint=s["old_roots"][0]), "new_root is one of the old roots"),
])
def test_bad_state_is_refused_naming_the_field(mesh_ca, change, fragment):
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    change(st)
    with pytest.raises(CAError) as e:
        rot.load_state(json.dumps(st), "/ca/rotation.json")
    assert str(e.value).startswith("/ca/rotation.json: ") and fragment in str(e.value)


def test_state_not_json():
    with pytest.raises(CAError) as e:
        rot.load_state("{", "rotation.json")
    assert "not JSON" in str(e.value)


def test_rerun_must_continue_the_same_rotation(mesh_ca):
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    rot.check_same_rotation(st, mesh_ca["new"], list(CLUSTERS))
    rot.check_same_rotation(st, None, list(reversed(CLUSTERS)))
    with pytest.raises(CAError) as e:
        rot.check_same_rotation(st, self_signed()[0], list(CLUSTERS))
    assert e.value.field == "new_root_cert" and "finish that rotation first" in str(e.value)
    with pytest.raises(CAError) as e:
        rot.check_same_rotation(st, None, ["cluster1"])
    assert e.value.field == "clusters"


# --- whole rotations --------------------------------------------------------------------------

def actions(result):
    return dict((n, c["action"]) for n, c in result["clusters"].items())


def test_full_rotation_phase_by_phase(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    seen = []
    for _step in range(10):
        assert_zero_downtime(m)
        result = rot.plan(st, observe(m), NOW)
        seen.append((result["phase"], actions(result)))
        if result["done"]:
            break
        st = execute(st, m, result, mesh_ca)
        rot.validate_state(st)
    assert seen == [
        (1, {"cluster1": "write_bundle", "cluster2": "write_bundle"}),
        (2, {"cluster1": "issue_intermediate", "cluster2": "issue_intermediate"}),
        (3, {"cluster1": "write_new_root", "cluster2": "write_new_root"}),
        (4, {"cluster1": "done", "cluster2": "done"}),
    ]
    st = rot.record(st, result, NOW)
    assert st["completed"] == "2026-11-21T12:00:00Z"
    for i in m.values():
        assert i.secret["root-cert.pem"] == mesh_ca["new"]
        assert rot.chain_roots(i.sign(), mesh_ca["old"], mesh_ca["new"], NOW) == {"old": False, "new": True}
    # a run after completion plans nothing
    again = rot.plan(st, observe(m), NOW)
    assert again["done"] and again["writes"] == []


def test_each_phase_waits_for_istiod_and_for_every_cluster(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    # phase 2 written on cluster1 only, and its istiod has not reloaded yet
    m["cluster1"].secret = rot.cluster_files(2, st, m["cluster1"].secret)
    st = rot.record(st, rot.plan(st, observe(m), NOW), NOW, {"cluster1": 2})
    result = rot.plan(st, observe(m), NOW)
    assert actions(result) == {"cluster1": "wait_bundle", "cluster2": "write_bundle"}
    assert any("does not show stage 2 yet" in p for p in result["clusters"]["cluster1"]["pending"])
    m["cluster1"].reload()
    result = rot.plan(st, observe(m), NOW)
    # cluster1 completed phase 2 but cluster2 has not: no intermediate yet
    assert actions(result) == {"cluster1": "wait_others", "cluster2": "write_bundle"}
    assert result["phase"] == 1


def test_interrupted_after_one_cluster_resumes(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    st = execute(st, m, rot.plan(st, observe(m), NOW), mesh_ca)
    result = rot.plan(st, observe(m), NOW)
    partial = dict(result, writes=["cluster1"])
    execute(st, m, partial, mesh_ca)  # stage 3 written on cluster1, the run died before recording it
    result = rot.plan(st, observe(m), NOW)  # the old record: cluster1 one stage ahead is accepted
    assert actions(result) == {"cluster1": "wait_others", "cluster2": "issue_intermediate"}
    assert result["clusters"]["cluster1"]["workload"] == "new"
    st = execute(st, m, result, mesh_ca)
    assert actions(rot.plan(st, observe(m), NOW)) == {"cluster1": "write_new_root", "cluster2": "write_new_root"}


def test_phase_three_waits_for_workloads_and_proxy_wait(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW, proxy_wait_seconds=600)
    st = execute(st, m, rot.plan(st, observe(m), NOW), mesh_ca)
    st = execute(st, m, rot.plan(st, observe(m), NOW), mesh_ca)
    result = rot.plan(st, observe(m), NOW + datetime.timedelta(seconds=60))
    assert actions(result) == {"cluster1": "wait_workloads", "cluster2": "wait_workloads"}
    assert "proxy_wait_seconds: 540 s left" in result["clusters"]["cluster1"]["pending"][0]
    later = NOW + datetime.timedelta(seconds=601)
    assert actions(rot.plan(st, observe(m, later), later)) == {"cluster1": "write_new_root", "cluster2": "write_new_root"}
    # istiod still signing with the old intermediate (no reload yet): not done
    obs = observe(m, later)
    obs["cluster2"]["workload_chain"] = Istiod("cluster2", mesh_ca["files"]).sign(later)
    result = rot.plan(st, obs, later)
    assert actions(result)["cluster2"] == "wait_workloads"
    assert "chains to old, not to the new root" in result["clusters"]["cluster2"]["pending"][0]


def test_no_key_no_phase_three(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    st = execute(st, m, rot.plan(st, observe(m), NOW), mesh_ca)
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW, new_root_key_available=False)
    assert e.value.field == "new_root_key"


# --- refusals -------------------------------------------------------------------------------

def test_multiroot_off_is_refused_naming_the_cluster(mesh_ca):
    m = mesh(mesh_ca)
    m["cluster2"].multiroot = False
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert e.value.field == "multiroot"
    assert str(e.value).startswith("cluster2: istiod does not run with multi-root support")
    m["cluster2"].multiroot = None
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert "could not be shown to have" in str(e.value)


def test_unreachable_cluster_stops_the_rotation(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    obs = observe(m)
    del obs["cluster2"]
    with pytest.raises(CAError) as e:
        rot.plan(st, obs, NOW)
    assert e.value.field == "clusters" and "cluster2 could not be observed" in str(e.value)


def test_a_root_neither_old_nor_new(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    m["cluster2"].configmaps["bookinfo"] = mesh_ca["old"] + self_signed()[0]
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert str(e.value).startswith("cluster2: ConfigMap bookinfo/istio-ca-root-cert holds a root that is neither")
    assert e.value.field == "ConfigMap bookinfo/istio-ca-root-cert"


def test_reordered_or_reencoded_bundle(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    m["cluster1"].secret["root-cert.pem"] = mesh_ca["new"] + mesh_ca["old"]
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert "cluster1: Secret istio-system/cacerts root-cert.pem holds roots in an order no phase" in str(e.value)
    m["cluster1"].secret["root-cert.pem"] = (mesh_ca["old"] + mesh_ca["new"]).replace(b"\n", b"\r\n")
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert "not the bytes this rotation writes" in str(e.value)


def test_rolled_back_secret(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    before = copy.deepcopy(m["cluster1"].secret)
    st = execute(st, m, rot.plan(st, observe(m), NOW), mesh_ca)
    m["cluster1"].secret = before
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert str(e.value).startswith("cluster1: Secret istio-system/cacerts root-cert.pem is at stage 0")
    assert "rolled back" in str(e.value)


def test_new_root_only_while_another_cluster_lags(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    st = execute(st, m, rot.plan(st, observe(m), NOW), mesh_ca)
    # stage 3 on cluster1 while cluster2 istiod has not taken stage 2 (pretend its record says so too)
    m["cluster2"].configmaps = dict((ns, mesh_ca["old"]) for ns in NAMESPACES)
    st["clusters"]["cluster2"].update(phase=1)
    cert, key, _c = rot.issue_intermediate("cluster1", mesh_ca["new"], mesh_ca["new_key"], params(), NOW)
    m["cluster1"].secret = rot.cluster_files(3, st, m["cluster1"].secret, (cert, key))
    m["cluster1"].reload()
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert str(e.value).startswith("cluster1: its cacerts Secret is at stage 3")
    assert "cluster2 has not completed phase 2" in str(e.value)


def test_intermediate_from_the_wrong_root(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    cert, _key, _c = rot.issue_intermediate("cluster1", mesh_ca["new"], mesh_ca["new_key"], params(), NOW)
    m["cluster1"].secret["ca-cert.pem"] = cert
    with pytest.raises(CAError) as e:
        rot.plan(st, observe(m), NOW)
    assert "ca-cert.pem is issued by the new root while root-cert.pem is at stage 0" in str(e.value)


def test_cluster_files_are_checked_as_istiod_does(mesh_ca):
    m = mesh(mesh_ca)
    st = rot.new_state(mesh_ca["old"], mesh_ca["new"], list(CLUSTERS), NOW)
    cert, key, _c = rot.issue_intermediate("cluster1", mesh_ca["new"], mesh_ca["new_key"], params(), NOW)
    files = rot.cluster_files(3, st, m["cluster1"].secret, (cert, key))
    assert files["root-cert.pem"] == rot.bundles(mesh_ca["old"], mesh_ca["new"])[3]
    assert files["cert-chain.pem"] == cert + mesh_ca["new"]
    _other_cert, other_key, _c = rot.issue_intermediate("cluster1", mesh_ca["new"], mesh_ca["new_key"], params(), NOW)
    with pytest.raises(CAError) as e:
        rot.cluster_files(3, st, m["cluster1"].secret, (cert, other_key))
    assert "ca-key.pem does not match ca-cert.pem" in str(e.value)
    bad = dict(files, **{"root-cert.pem": mesh_ca["old"]})
    with pytest.raises(CAError) as e:
        rot.validate_cluster_files(bad)
    assert "does not chain through cert-chain.pem" in str(e.value)
    with pytest.raises(CAError):
        rot.cluster_files(1, st, m["cluster1"].secret)
