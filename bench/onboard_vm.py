# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The time to onboard one VM, on the local sandbox (vm1 joining cluster2; site.yml has run).

Measures, in one run:
  out      playbooks/onboard_vm.yml with onboard_vm_state=absent and the package removed
  first    the first onboarding of the bare VM: cluster objects, the files and a token, the
           istio-sidecar package, the service, until the agent holds its certificate
  noop     the same playbook again (nothing to change)
  check    the same with --check
and prints the figures (seconds of wall time, ansible-playbook as a user runs it).  Not a
test: it prints, it does not assert targets.

    .venv/bin/python bench/onboard_vm.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INVENTORY = os.path.join(TOP, "inventories", "sandbox", "hosts.yml")
PLAYBOOK = os.path.join(TOP, "playbooks", "onboard_vm.yml")


def run(label, *args):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    started = time.monotonic()
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", INVENTORY, PLAYBOOK]
                         + list(args), cwd=TOP, env=env, capture_output=True, text=True, check=False)
    took = time.monotonic() - started
    if res.returncode != 0:
        sys.exit("%s failed:\n%s" % (label, res.stdout[-3000:]))
    recap = re.search(r"vm1\s*: ok=(\d+)\s+changed=(\d+)", res.stdout)
    print("%-6s %6.1f s   tasks ok=%s changed=%s" % (label, took, recap.group(1), recap.group(2)), flush=True)
    return took


def main():
    print("onboard vm1 into cluster2 (sandbox), ansible-playbook playbooks/onboard_vm.yml")
    run("out", "-e", "onboard_vm_state=absent", "-e", "onboard_vm_remove_package=true")
    run("first")
    run("noop")
    run("check", "--check")


if __name__ == "__main__":
    main()
