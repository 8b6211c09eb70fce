# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""root_rotation's runner, the parts without a cluster: istiod's multi-root flag read from its
Deployments, the clusters option, and mesh_ca refusing to run while a rotation is in progress."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca, mesh_ca_runner, rotation, rotation_runner
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.timezone.utc)
FAST = dict(root_key_type="ecdsa-p256", key_type="ecdsa-p256")


def deployment(env, name="discovery"):
    return {"spec": {"template": {"spec": {"containers": [{"name": name, "env": env}]}}}}


@pytest.mark.parametrize("deployments, expected", [
    ([], None),
    ([deployment([{"name": "ISTIO_MULTIROOT_MESH", "value": "true"}])], True),
    ([deployment([{"name": "ISTIO_MULTIROOT_MESH", "value": "True"}])], True),
    ([deployment([{"name": "ISTIO_MULTIROOT_MESH", "value": "false"}])], False),
    ([deployment([{"name": "PILOT_TRACE_SAMPLING", "value": "1"}])], False),
    # two revisions: both must have it
    ([deployment([{"name": "ISTIO_MULTIROOT_MESH", "value": "true"}]), deployment([])], False),
    # a sidecar container's env does not count
    ([deployment([{"name": "ISTIO_MULTIROOT_MESH", "value": "true"}], name="other")], None),
])
def test_multiroot_of(deployments, expected):
    assert rotation_runner.multiroot_of(deployments) is expected


def test_cluster_specs_defaults_and_refusals():
    specs = rotation_runner.cluster_specs({"clusters": [{"name": "cluster1", "context": "c1"},
                                                        {"name": "cluster2", "istiod_address": "127.0.0.1:15112",
                                                         "istiod_target_name": "localhost"}]})
    assert specs[0]["address"] == "istiod.istio-system.svc:15012"
    assert specs[0]["target_name"] == "istiod.istio-system.svc"
    assert specs[0]["conn"] == {"kubeconfig": None, "context": "c1"}
    assert specs[1]["address"] == "127.0.0.1:15112" and specs[1]["target_name"] == "localhost"
    with pytest.raises(CAError) as e:
        rotation_runner.cluster_specs({"clusters": []})
    assert e.value.field == "clusters"
    with pytest.raises(CAError) as e:
        rotation_runner.cluster_specs({"clusters": [{"name": "a"}, {"name": "a"}]})
    assert "duplicate" in str(e.value)


def mesh_ca_params(base, **kw):
    params = dict((k, None) for k in mesh_ca_runner.PARAM_NAMES)
    params.update(FAST, dir=str(base), clusters=["cluster1", "cluster2"], lock_timeout=5)
    params.update(kw)
    return params


def test_mesh_ca_refuses_while_a_rotation_is_in_progress(tmp_path):
    base = tmp_path / "ca"
    first = mesh_ca_runner.run(mesh_ca_params(base), None, False, False, now=NOW)
    assert first["changed"]
    old = (base / "root-cert.pem").read_bytes()
    new_cert, _new_key = rotation.generate_new_root(ca.Params(**FAST), NOW, old)
    state = rotation.new_state(old, new_cert, ["cluster1", "cluster2"], NOW)
    (base / rotation.STATE_FILE).write_text(rotation.dump_state(state))
    before = dict((p, open(os.path.join(base, p), "rb").read()) for p in ("root-cert.pem", "cluster1/ca-cert.pem"))
    for check_mode in (True, False):
        with pytest.raises(CAError) as e:
            mesh_ca_runner.run(mesh_ca_params(base, regenerate="always"), None, check_mode, False, now=NOW)
        assert e.value.field == "dir"
        assert "root CA rotation is in progress" in str(e.value)
        assert "playbooks/rotate_root_ca.yml" in str(e.value)
    assert before == dict((p, open(os.path.join(base, p), "rb").read()) for p in before)
    # a completed rotation no longer stops it
    state["completed"] = state["updated"]
    (base / rotation.STATE_FILE).write_text(json.dumps(state))
    again = mesh_ca_runner.run(mesh_ca_params(base), None, False, False, now=NOW)
    assert not again["changed"]


def test_mesh_ca_refuses_an_unreadable_state_file(tmp_path):
    base = tmp_path / "ca"
    mesh_ca_runner.run(mesh_ca_params(base), None, False, False, now=NOW)
    (base / rotation.STATE_FILE).write_text("{not json")
    with pytest.raises(CAError) as e:
        mesh_ca_runner.run(mesh_ca_params(base), None, False, False, now=NOW)
    assert "rotation is in progress" in str(e.value)
