# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox istiod's cacerts directory, written as the kubelet writes a Secret volume, and the env its
Deployment gives it (tools/sandbox/cacerts.py, rollout.deployment_env): no cluster needed."""

from __future__ import annotations

import datetime
import os
import threading

import pytest

from tools.sandbox import cacerts, rollout

T0 = datetime.datetime(2026, 8, 27, 12, 0, 0, tzinfo=datetime.timezone.utc)


def layout(d):
    return {n: os.readlink(os.path.join(d, n)) if os.path.islink(os.path.join(d, n)) else "dir"
            for n in sorted(os.listdir(d))}


def test_first_write_makes_a_data_dir_the_data_link_and_one_link_per_key(tmp_path):
    d = str(tmp_path / "cacerts")
    assert cacerts.write_dir(d, {"ca-cert.pem": b"A", "root-cert.pem": b"R"}, now=T0)
    stamp = "..2026_08_27_12_00_00.000000"
    assert layout(d) == {"..data": stamp, stamp: "dir", "ca-cert.pem": "..data/ca-cert.pem",
                         "root-cert.pem": "..data/root-cert.pem"}
    assert cacerts.read_dir(d) == {"ca-cert.pem": b"A", "root-cert.pem": b"R"}
    assert oct(os.stat(os.path.join(d, stamp, "ca-cert.pem")).st_mode & 0o777) == oct(cacerts.FILE_MODE)


def test_the_same_payload_changes_nothing(tmp_path):
    d = str(tmp_path / "cacerts")
    cacerts.write_dir(d, {"k": b"1"}, now=T0)
    before = layout(d)
    assert not cacerts.write_dir(d, {"k": b"1"}, now=T0 + datetime.timedelta(seconds=5))
    assert layout(d) == before


def test_an_update_swaps_the_data_link_drops_the_old_dir_and_removed_keys(tmp_path):
    d = str(tmp_path / "cacerts")
    cacerts.write_dir(d, {"ca-cert.pem": b"old", "ca-crl.pem": b"crl"}, now=T0)
    link_inode = os.lstat(os.path.join(d, "ca-cert.pem")).st_ino
    assert cacerts.write_dir(d, {"ca-cert.pem": b"new", "cert-chain.pem": b"c"}, now=T0 + datetime.timedelta(seconds=1))
    stamp = "..2026_08_27_12_00_01.000000"
    assert layout(d) == {"..data": stamp, stamp: "dir", "ca-cert.pem": "..data/ca-cert.pem",
                         "cert-chain.pem": "..data/cert-chain.pem"}
    assert cacerts.read_dir(d) == {"ca-cert.pem": b"new", "cert-chain.pem": b"c"}
    # the per-key link is not rewritten: the switch is the rename of ..data alone
    assert os.lstat(os.path.join(d, "ca-cert.pem")).st_ino == link_inode


def test_two_writes_in_one_microsecond_get_distinct_dirs(tmp_path):
    d = str(tmp_path / "cacerts")
    cacerts.write_dir(d, {"k": b"1"}, now=T0)
    assert cacerts.write_dir(d, {"k": b"2"}, now=T0)
    assert os.readlink(os.path.join(d, "..data")) == "..2026_08_27_12_00_00.000000_1"
    assert cacerts.read_dir(d) == {"k": b"2"}


def test_an_empty_payload_empties_the_directory_and_stray_files_are_replaced(tmp_path):
    d = str(tmp_path / "cacerts")
    os.makedirs(d)
    with open(os.path.join(d, "ca-cert.pem"), "wb") as f:  # what USE_REMOTE_CERTS wrote (older sandbox)
        f.write(b"copied")
    with open(os.path.join(d, "ca-key.pem"), "wb") as f:
        f.write(b"stray")
    assert cacerts.write_dir(d, {"ca-cert.pem": b"A"}, now=T0)
    assert layout(d)["ca-cert.pem"] == "..data/ca-cert.pem"
    assert cacerts.read_dir(d) == {"ca-cert.pem": b"A"}
    assert cacerts.write_dir(d, {}, now=T0 + datetime.timedelta(seconds=1))
    assert cacerts.read_dir(d) == {}
    assert [n for n in os.listdir(d) if not n.startswith("..")] == []


@pytest.mark.parametrize("key", ["..data", "a/b", ""])
def test_keys_that_are_no_file_names_are_refused(tmp_path, key):
    with pytest.raises(ValueError):
        cacerts.write_dir(str(tmp_path / "c"), {key: b"x"})


def test_a_reader_never_sees_a_mix_of_two_payloads(tmp_path):
    d = str(tmp_path / "cacerts")
    cacerts.write_dir(d, {"a": b"0", "b": b"0"})
    stop, seen = threading.Event(), set()

    def reader():
        while not stop.is_set():
            try:
                data = os.readlink(os.path.join(d, "..data"))
                with open(os.path.join(d, data, "a"), "rb") as fa, open(os.path.join(d, data, "b"), "rb") as fb:
                    seen.add((fa.read(), fb.read()))
            except FileNotFoundError:  # the old data dir was removed between readlink and open: read again
                pass

    t = threading.Thread(target=reader)
    t.start()
    for i in range(1, 200):
        v = str(i).encode()
        cacerts.write_dir(d, {"a": v, "b": v})
    stop.set()
    t.join()
    assert seen and all(a == b for a, b in seen)


def test_change_summary():
    assert cacerts.change_summary({"a": b"1", "b": b"1"}, {"a": b"2", "c": b"1"}) == "added c; changed a; removed b"
    assert cacerts.change_summary({}, {}) == "no key changed"


def deployment(env):
    return {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "env": [{"name": "NOT_ME", "value": "x"}]},
        {"name": "discovery", "env": env}]}}}}


def test_the_pod_env_is_the_discovery_containers_literal_values_without_pod_plumbing():
    env, skipped = rollout.deployment_env(deployment([
        {"name": "REVISION", "value": "default"},
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KUBECONFIG", "value": "/var/run/secrets/remote/config"},
        {"name": "ISTIO_MULTIROOT_MESH", "value": "true"},
        {"name": "EXTERNAL_ISTIOD", "value": "true"},
        {"name": "CLUSTER_ID", "value": "cluster1"},
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "PILOT_ENABLE_ANALYSIS", "value": "false"},
        {"name": "PILOT_ENABLE_ANALYSIS", "value": "true"},  # the later entry wins
        {"name": "EMPTY"},
    ]))
    assert env == {"PILOT_CERT_PROVIDER": "istiod", "ISTIO_MULTIROOT_MESH": "true", "EXTERNAL_ISTIOD": "true",
                   "PILOT_ENABLE_ANALYSIS": "true", "EMPTY": ""}
    assert skipped == ["REVISION", "POD_NAME", "KUBECONFIG", "CLUSTER_ID", "GOMAXPROCS"]


def test_no_deployment_gives_no_env():
    assert rollout.deployment_env(None) == ({}, [])
    assert rollout.deployment_env({"spec": {}}) == ({}, [])
