#!/usr/bin/env bash
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Create the project's Python environment (.venv) from the pinned requirements and
# make this checkout visible to Ansible as the collection meshfed.istio.
# Idempotent: a second run only re-checks.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
PY=${PYTHON:-python3}
venv=$top/.venv
stamp=$venv/.requirements.sha256
want=$(cat requirements-dev.txt requirements-lock.txt | sha256sum | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ]; then
  echo "[venv] creating $venv with $($PY --version)"
  "$PY" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[venv] installing pinned requirements (requirements-dev.txt, constrained by requirements-lock.txt)"
  "$venv/bin/python" -m pip install --quiet --upgrade "pip==24.2"
  "$venv/bin/python" -m pip install --quiet -r requirements-dev.txt -c requirements-lock.txt
  echo "$want" > "$stamp"
fi

# The collection: Ansible finds it through ansible.cfg's collections_path.
mkdir -p .build/collections/ansible_collections/meshfed
ln -sfn "$top" .build/collections/ansible_collections/meshfed/istio

# ansible-test bootstraps pip in each of its virtual environments with a
# get-pip script it downloads from a host that is not reachable from every
# machine.  A stand-in at the cache path it checks first does the same job
# with the interpreter's bundled pip (ensurepip) and the machine's own index.
for v in $("$venv/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(" ".join(sorted(set(re.findall(r"pip='([\d.]+)'", src)))) or "24.2")
PY
); do
  shim=$HOME/.ansible/test/cache/get_pip_${v//./_}.py
  mkdir -p "$(dirname "$shim")"
  cp tools/get_pip_shim.py "$shim"
done
# ansible-test sanity runs shellcheck on our scripts when it is installed.
if ! command -v shellcheck >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[venv] installing shellcheck (Debian package) for ansible-test sanity"
    apt-get install -y -q shellcheck >/dev/null 2>&1 || echo "[venv] note: shellcheck could not be installed; sanity skips that test"
  else
    echo "[venv] note: shellcheck is not installed; ansible-test sanity skips that test"
  fi
fi
# verify_mesh draws the mesh with Graphviz's `dot` (the graphviz Python package renders through it).
if ! command -v dot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[venv] installing graphviz (Debian package) for the mesh picture of verify_mesh"
    apt-get install -y -q --no-install-recommends graphviz >/dev/null 2>&1 || echo "[venv] note: graphviz could not be installed; verify_mesh writes the picture's DOT source only"
  else
    echo "[venv] note: Graphviz's dot is not installed; verify_mesh writes the picture's DOT source only"
  fi
fi
# the sandbox's VM hosts (tools/sandbox/vm.py): a Debian root made by debootstrap, booted by systemd-nspawn
missing_vm_pkgs=()
command -v debootstrap >/dev/null 2>&1 || missing_vm_pkgs+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || missing_vm_pkgs+=(systemd-container)
if [ ${#missing_vm_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[venv] installing ${missing_vm_pkgs[*]} (Debian packages) for the sandbox's VM hosts"
    apt-get install -y -q --no-install-recommends "${missing_vm_pkgs[@]}" >/dev/null 2>&1 \
      || echo "[venv] note: ${missing_vm_pkgs[*]} could not be installed (apt-get install failed); the sandbox cannot start VM hosts (up --vms)"
  else
    echo "[venv] note: ${missing_vm_pkgs[*]} not installed (needs root and apt-get); the sandbox cannot start VM hosts (up --vms)"
  fi
fi
echo "[venv] ready: $venv ($("$venv/bin/ansible" --version | head -1))"
