#!/usr/bin/env bash
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The project's test command (`make test`): sanity, units, lint, integration, in
# that order, stopping at the first failure.  `tools/run-tests.sh units lint` runs
# a subset.  Expects `make venv` to have run (the Makefile does it).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export PATH=$top/.venv/bin:$PATH
export ANSIBLE_CONFIG=$top/ansible.cfg
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(sanity units lint integration)

banner() { printf '\n=== %s ===\n' "$*"; }

# ansible-test wants the collection at .../ansible_collections/meshfed/istio.
# Copy what git tracks or would track (not ignored) into such a tree.
collection_copy() {
  local dest=$top/.build/test/ansible_collections/meshfed/istio
  rm -rf "$dest"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | xargs -0 cp -P --parents -t "$dest"
  # its own git work tree, so that ansible-test lists these files and not the
  # checkout's (where .build/ is ignored)
  git -C "$dest" init -q
  echo "$dest"
}

run_sanity() {
  banner "ansible-test sanity (Python 3.11)"
  local dest; dest=$(collection_copy)
  (cd "$dest" && ansible-test sanity --python 3.11 --color no --venv "$@")
}

run_units() {
  banner "unit tests (pytest)"
  python -m pytest tests/unit -q
}

run_lint() {
  banner "ansible-lint (production profile)"
  ansible-lint --version | head -1
  ansible-lint
}

run_integration() {
  banner "integration: sandbox clusters and the VM host vm1 (up, or reuse the running ones)"
  python3 -m tools.sandbox up --clusters "${SANDBOX_CLUSTERS:-2}" --vms "${SANDBOX_VMS:-1}"
  banner "integration: ansible-test targets (controller + sandbox)"
  local dest; dest=$(collection_copy)
  # Variables every target gets (ansible-test reads this file).
  printf 'sandbox_kubeconfig: %s\nsandbox_istioctl: %s\n' "$top/.sandbox/kubeconfig" "$top/.sandbox/bin/istioctl" \
    > "$dest/tests/integration/integration_config.yml"
  (cd "$dest" && ansible-test integration --color no --local --python 3.11)
  banner "integration: the sandbox itself and the shared service layer (pytest)"
  python -m pytest tests/integration/sandbox tests/integration/service -q -p no:cacheprovider
  banner "integration: molecule scenarios (check, converge, idempotence, verify)"
  local scenario
  for scenario in molecule/*/molecule.yml; do
    scenario=$(basename "$(dirname "$scenario")")
    # forget state of earlier runs (kept under ~/.cache/molecule), so prepare runs again
    molecule reset -s "$scenario" >/dev/null
    molecule test -s "$scenario"
  done
  banner "integration: playbooks against the sandbox (pytest)"
  python -m pytest tests/integration/install_istio tests/integration/federate -q -p no:cacheprovider
  banner "integration: the mesh CA - the sandbox istiod's reload of cacerts, istiod's CA signing across clusters, a root rotation (pytest)"
  python -m pytest tests/integration/ca -q -p no:cacheprovider
  banner "integration: traffic_policy - the bookinfo and helloworld stages through the real API servers (pytest)"
  python -m pytest tests/integration/traffic -q -p no:cacheprovider
  banner "integration: verify_mesh - a healthy mesh, then one fault at a time, named in the report (pytest)"
  python -m pytest tests/integration/verify -q -p no:cacheprovider
  banner "integration: onboard_vm - the sandbox VM vm1 joins cluster2 through its real istiod (pytest)"
  python -m pytest tests/integration/onboard_vm -q -p no:cacheprovider -s
  banner "integration: deploy_samples - Istio's samples from the pinned release, injected by the real istiods (pytest)"
  python -m pytest tests/integration/samples -q -p no:cacheprovider -s
  banner "integration: hardening - bad input, check mode on fresh clusters, secret scan, a dead API server (pytest)"
  python -m pytest tests/integration/hardening -q -p no:cacheprovider -s
}

for s in "${stages[@]}"; do
  "run_$s"
done
banner "all requested stages passed: ${stages[*]}"
