# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Intermediate renewal on the sandbox's real istiods: cluster1's intermediate is made to expire in
10 days (issued again by the mesh root with its key, in the CA directory) and a run with
install_istio_ca_renew_before_days=5 puts it in service; the next normal run (30 days) re-issues it
and writes it into cluster1's cacerts Secret; cluster1's istiod (1.31, started with its plug-in CA)
serves the new intermediate on its 15012 port within seconds, in the same process: the role did
not restart it, and said why.  A further run changes nothing."""

from __future__ import annotations

import os

import pytest
from playbook_runner import REPO_ROOT, changed_tasks, failure_messages, playbook
from sandbox_helpers import served_chain, wait_for

pytestmark = pytest.mark.sandbox
CA_DIR = os.path.join(REPO_ROOT, ".sandbox", "ca")
RESTART_TASK = "Restart istiod to load new CA material"
REASON_TASK = "How istiod takes the new CA material"


def der_of_pem_file(path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)


def task_results(data, name):
    """{host: result} of the role's task ``name``."""
    out = {}
    for play in data.get("plays", []):
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ", 1)[-1] == name:
                out.update(task["hosts"])
    return out


def expire_soon(cluster, days):
    """Issue ``cluster``'s intermediate again in the CA directory, with its key, valid ``days`` days."""
    import datetime

    from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca

    d = os.path.join(CA_DIR, cluster)
    with open(os.path.join(CA_DIR, "root-cert.pem"), "rb") as f:
        root_pem = f.read()
    with open(os.path.join(CA_DIR, "root-key.pem"), "rb") as f:
        root_key = ca.load_key(f.read(), "root-key.pem")
    with open(os.path.join(d, "ca-key.pem"), "rb") as f:
        key = ca.load_key(f.read(), "ca-key.pem")
    params = ca.Params(key_type="ecdsa-p256", root_key_type="ecdsa-p256", intermediate_validity_days=days,
                       renew_before_days=0)
    cert, dummy = ca.build_intermediate(cluster, key, ca.load_cert(root_pem, "root"), root_key, params,
                                        datetime.datetime.now(datetime.timezone.utc))
    for name, data in (("ca-cert.pem", ca.cert_pem(cert)), ("cert-chain.pem", ca.cert_pem(cert) + root_pem)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def test_an_intermediate_near_expiry_is_renewed_and_served_by_the_same_istiod(sandbox_istiod):
    from tools.sandbox import istiod

    sb = sandbox_istiod
    c = "cluster1"
    port = sb.istiod_ports[c]["secure_grpc"]
    proc = istiod.Istiod(c)
    rc, data, raw = playbook("install_istio.yml")
    assert rc == 0, failure_messages(data) or raw[-4000:]

    # an intermediate that expires in 10 days goes into service (5 days' notice: not renewed yet)
    expire_soon(c, 10)
    soon = der_of_pem_file(os.path.join(CA_DIR, c, "ca-cert.pem"))
    rc, data, raw = playbook("install_istio.yml", "-e", "install_istio_ca_renew_before_days=5")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    wait_for(lambda: served_chain(port)[1] == soon, timeout=30, what="%s's istiod serving the short-lived intermediate" % c)
    pid = proc.pid()
    log_size = os.path.getsize(proc.log_file)

    # the normal run: it expires within 30 days, so it is renewed
    rc, data, raw = playbook("install_istio.yml")
    assert rc == 0, failure_messages(data) or raw[-4000:]
    changed = changed_tasks(data)
    assert "meshfed.istio.install_istio : CA material in Secret istio-system/cacerts (before istiod starts) on %s" % c \
        in changed, changed
    assert not any(t.endswith(" on cluster2") for t in changed), changed
    assert task_results(data, RESTART_TASK)[c].get("skipped"), "%s: istiod was restarted" % c
    assert task_results(data, REASON_TASK)[c]["msg"] == (
        "%s: istiod istiod reloads a new intermediate by itself (Istio 1.19 or later), without a restart" % c)
    renewed = der_of_pem_file(os.path.join(CA_DIR, c, "ca-cert.pem"))
    assert renewed != soon
    wait_for(lambda: served_chain(port)[1] == renewed, timeout=30, what="%s's istiod serving the renewed intermediate" % c)
    assert proc.pid() == pid, "%s's istiod was restarted (pid %s, was %s)" % (c, proc.pid(), pid)
    with open(proc.log_file, "rb") as f:
        f.seek(log_size)
        assert b"Update Istiod cacerts" in f.read(), "%s's istiod logged no reload during the run" % c

    rc, data, raw = playbook("install_istio.yml")
    assert rc == 0 and changed_tasks(data) == [], changed_tasks(data)
