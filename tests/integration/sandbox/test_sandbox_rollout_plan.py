# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the sandbox's istiod is restarted for its Deployment (tools/sandbox/rollout.py), pure rules."""

from __future__ import annotations

from tools.sandbox import rollout


def deployment(annotations=None, image="istio/pilot:1"):
    return {"metadata": {"name": "istiod", "resourceVersion": "7"},
            "spec": {"replicas": 1, "template": {"metadata": {"annotations": annotations or {}},
                                                 "spec": {"containers": [{"name": "discovery", "image": image}]}}}}


def test_the_digest_covers_the_pod_template_only():
    a = rollout.template_digest(deployment())
    assert a and a == rollout.template_digest(dict(deployment(), metadata={"name": "istiod", "resourceVersion": "8"}))
    scaled = deployment()
    scaled["spec"]["replicas"] = 3
    assert rollout.template_digest(scaled) == a
    assert rollout.template_digest(deployment({"meshfed.istio/ca-fingerprint": "ab12"})) != a
    assert rollout.template_digest(deployment(image="istio/pilot:2")) != a
    assert rollout.template_digest(None) == ""


def test_a_new_template_restarts_a_deleted_one_does_not():
    assert rollout.needs_restart("", "abc")  # istiod started before `istioctl install` created its Deployment
    assert rollout.needs_restart("abc", "def")  # the CA restart of install_istio
    assert not rollout.needs_restart("abc", "abc")
    assert not rollout.needs_restart("abc", "")  # uninstalled: nothing to restart into
    assert not rollout.needs_restart(None, "abc")  # an istiod started by an older sandbox: nothing recorded


def test_record_and_read_back(tmp_path):
    assert rollout.recorded(str(tmp_path)) is None
    rollout.record(str(tmp_path), "abc")
    assert rollout.recorded(str(tmp_path)) == "abc"
    rollout.record(str(tmp_path), "")
    assert rollout.recorded(str(tmp_path)) == ""
