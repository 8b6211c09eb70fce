# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cacerts.istiod_facts and cacerts.restart: when a running istiod takes new plug-in CA material by
itself (hot reload) and when it must be restarted, and why (real certificates, ca.py's helpers)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, cacerts, rotation

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
PARAMS = dict(root_key_type="ecdsa-p256", key_type="ecdsa-p256")


def deployment(image="docker.io/istio/pilot:1.31.0", env=None, labels=None, name="istiod"):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": image, "env": env or []}]}}}}


@pytest.mark.parametrize("dep, version, multiroot", [
    (deployment(), (1, 31), False),
    (deployment("docker.io/istio/pilot:1.31-dev"), (1, 31), False),
    (deployment("registry.local:5000/istio/pilot:1.18.2-distroless"), (1, 18), False),
    (deployment("pilot", labels={"operator.istio.io/version": "1.22.1"}), (1, 22), False),
    (deployment("pilot:latest"), None, False),
    (deployment(env=[{"name": "ISTIO_MULTIROOT_MESH", "value": "true"}]), (1, 31), True),
    (deployment(env=[{"name": "ISTIO_MULTIROOT_MESH", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}}]),
     (1, 31), False),
])
def test_istiod_facts(dep, version, multiroot):
    assert cacerts.istiod_facts(dep) == {"name": "istiod", "version": version, "multiroot": multiroot}


@pytest.fixture(scope="module")
def material():
    """Secret data of the mesh's CA, of the same root with a re-issued intermediate, and the bundles
    of a rotation to a new root."""
    params = ca.Params(**PARAMS)
    first = ca.reconcile(ca.Existing(), ["c1"], params, NOW)["files"]
    renewed = ca.reconcile(ca.Existing(), ["c1"], params, NOW)["files"]

    def secret(files, root=None):
        data = dict((k, files["c1/" + k]) for k in ca.CLUSTER_FILES)
        if root is not None:
            data["root-cert.pem"] = root
        return data
    old = secret(first)
    # the intermediate re-issued under the same root (what mesh_ca does within renew_before_days)
    root_cert = ca.load_cert(first["root-cert.pem"], "root")
    key = ca.generate_key("ecdsa-p256")
    cert, dummy = ca.build_intermediate("c1", key, root_cert, ca.load_key(first["root-key.pem"], "root key"), params, NOW)
    reissued = dict(old, **{"ca-cert.pem": ca.cert_pem(cert), "ca-key.pem": ca.key_pem(key),
                            "cert-chain.pem": ca.cert_pem(cert) + first["root-cert.pem"]})
    new_root, dummy = rotation.generate_new_root(params, NOW, first["root-cert.pem"])
    bundles = rotation.bundles(first["root-cert.pem"], new_root)
    return {"old": old, "reissued": reissued, "other_root": secret(renewed), "bundle": secret(first, bundles[2]),
            "new_only": secret(first, bundles[4])}


def facts(version=(1, 31), multiroot=False, name="istiod"):
    return {"name": name, "version": version, "multiroot": multiroot}


def run(current, desired, istiods):
    return cacerts.restart(current, desired, cacerts.compare(current, desired), istiods)


def test_nothing_changed_or_no_istiod_needs_no_restart(material):
    assert run(material["old"], material["old"], [facts()]) == (False, None)
    need, why = run({}, material["old"], [])
    assert not need and "no istiod runs in the namespace" in why


def test_a_new_intermediate_is_hot_reloaded_from_1_19(material):
    new_inter = material["reissued"]
    assert cacerts.desired_data(new_inter) and cacerts.compare(material["old"], new_inter) == [
        "ca-cert.pem", "ca-key.pem", "cert-chain.pem"]
    need, why = run(material["old"], new_inter, [facts()])
    assert not need and why == "istiod istiod reloads a new intermediate by itself (Istio 1.19 or later), without a restart"
    need, why = run(material["old"], new_inter, [facts((1, 18)), facts(None, name="istiod-canary")])
    assert need and why.startswith("istiod istiod, istiod-canary: its Istio version is unknown or before 1.19")


def test_an_istiod_that_started_self_signed_is_restarted(material):
    need, why = run({}, material["old"], [facts()])
    assert need and "started without a complete plug-in CA" in why
    partial = dict((k, v) for k, v in material["old"].items() if k != "ca-key.pem")
    assert run(partial, material["old"], [facts()])[0]


def test_a_root_change_needs_multiroot_and_a_bundle_that_holds_the_other(material):
    old, bundle, new_only, other = material["old"], material["bundle"], material["new_only"], material["other_root"]
    need, why = run(old, bundle, [facts()])
    assert need and "runs without ISTIO_MULTIROOT_MESH=true" in why
    assert run(old, bundle, [facts(multiroot=True)]) == (
        False, "istiod istiod reloads the root bundle by itself (multi-root support, one bundle holds the other)")
    assert not run(bundle, new_only, [facts(multiroot=True)])[0]  # old+new -> new
    need, why = run(old, other, [facts(multiroot=True)])  # another root outright
    assert need and "neither holds nor is held by the current one" in why
