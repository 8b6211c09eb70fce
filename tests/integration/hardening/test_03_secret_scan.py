# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret in any output: every playbook run with -vvv --diff (the default callback, what
a user or an AWX job log shows) while it writes secrets: the cacerts Secrets and remote
secrets of fresh clusters and vm1's token, then TokenRequest tokens (token_mode request),
re-issued for a new lifetime, then token Secrets again and a renewed token for vm1.  The output is searched for every token and private
key read back from the clusters and the CA directory, in their plain, base64 and
JSON-escaped forms: zero hits."""

from __future__ import annotations

import base64
import os

import pytest
import yaml
from kubernetes import client
from playbook_runner import module, playbook_text

pytestmark = pytest.mark.sandbox
OUTPUTS = []


def run_verbose(name, *args):
    rc, out = playbook_text(name, "-vvv", "--diff", *args)
    assert rc == 0, out[-4000:]
    OUTPUTS.append(out)
    return out


def cluster_secrets(sandbox):
    """Every token and private key the clusters hold in istio-system (remote secrets' tokens,
    token Secrets, cacerts keys), as strings."""
    found = []
    for cluster in sandbox.clusters:
        core = client.CoreV1Api(sandbox.api_client(cluster))
        for s in core.list_namespaced_secret("istio-system").items:
            remote = (s.metadata.labels or {}).get("istio/multiCluster") == "true"
            for key, value in (s.data or {}).items():
                raw = base64.b64decode(value).decode(errors="replace")
                if key in ("token", "ca-key.pem") or remote:
                    found += [value, raw]  # as the API holds it (base64), and decoded
                if remote:
                    for user in yaml.safe_load(raw).get("users") or []:
                        found.append(user["user"]["token"])
    return found


def vm_secrets(sandbox):
    """vm1's token (the controller's copy onboard_vm pushed) and the private key its agent holds."""
    from tools.sandbox import vm as sandbox_vm
    found = []
    token = os.path.join(os.path.dirname(sandbox.kubeconfig), "vm-files", "vm1", "istio-token")
    if os.path.exists(token):
        found.append(open(token).read())
    res = sandbox_vm.Vm("vm1").ssh("cat", "/etc/certs/key.pem")
    if res.returncode == 0:
        found.append(res.stdout)
    return found


def ca_keys(sandbox):
    top = os.path.join(os.path.dirname(sandbox.kubeconfig), "ca")
    return [open(os.path.join(d, f)).read() for d, _dirs, files in os.walk(top) for f in files
            if f.endswith("key.pem")]


def forms(secret):
    """The forms a secret could leak in: as is, base64, JSON-escaped, and (for a PEM) its body
    and each line of it."""
    out = {secret, base64.b64encode(secret.encode()).decode(), secret.replace("\n", "\\n")}
    if "-----BEGIN" in secret:
        body = [line for line in secret.strip().splitlines() if not line.startswith("-----")]
        out.add("".join(body))
        out.update(line for line in body if len(line) >= 32)
    return [f for f in out if len(f) >= 32]


@pytest.fixture(scope="module")
def secrets(sandbox_istiod):
    """Runs that write secrets, then every secret they wrote (and the CA keys)."""
    found = []
    run_verbose("site.yml")  # fresh clusters (test_02 left them so): cacerts, token Secrets, remote secrets, vm1's token
    found += cluster_secrets(sandbox_istiod) + vm_secrets(sandbox_istiod)
    run_verbose("federate_clusters.yml", "-e", "federate_clusters_token_mode=request")
    found += cluster_secrets(sandbox_istiod)
    run_verbose("federate_clusters.yml", "-e", "federate_clusters_token_mode=request",
                "-e", "federate_clusters_token_expiration=7200")
    found += cluster_secrets(sandbox_istiod)
    # back to token Secrets; vm1's token renewed (it always has less than 86399 s left) and pushed
    run_verbose("site.yml", "-e", "onboard_vm_token_renew_before=86399")
    found += cluster_secrets(sandbox_istiod) + ca_keys(sandbox_istiod) + vm_secrets(sandbox_istiod)
    return found


def test_secrets_were_written_and_read_back(secrets):
    assert len(OUTPUTS) == 4
    # tokens of both modes, both cacerts keys and the CA directory's keys
    assert sum(1 for s in secrets if s.count(".") == 2 and s.startswith("eyJ")) >= 8
    assert sum(1 for s in secrets if "PRIVATE KEY" in s) >= 7


def test_no_secret_in_any_output(secrets):
    hits = []
    for secret in secrets:
        for form in forms(secret):
            for i, out in enumerate(OUTPUTS):
                if form in out:
                    hits.append((i, form[:12] + "..."))
    print("\nsecret scan: %d secrets, %d forms, %d outputs (%d bytes), %d hits"
          % (len(set(secrets)), sum(len(forms(s)) for s in set(secrets)), len(OUTPUTS),
             sum(len(o) for o in OUTPUTS), len(hits)))
    assert hits == []


def test_the_scan_finds_a_secret_that_is_printed(sandbox, secrets):
    """Control: what the collection once did (a k8s_info of the remote secrets, printed at -v)
    is found by the same scan."""
    rc, out = module("kubernetes.core.k8s_info", {"kind": "Secret", "namespace": "istio-system",
                                                  "name": "istio-remote-secret-cluster2",
                                                  "kubeconfig": sandbox.kubeconfig, "context": "cluster1"}, "-v")
    assert rc == 0, out[-2000:]
    assert any(form in out for s in secrets for form in forms(s))
