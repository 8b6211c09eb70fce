# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's istio-sidecar Debian package (tools/sandbox/sidecar_deb.py): layout, control fields, postinst and
the Envoy-less sidecar.env, checked with dpkg-deb on a package built from the pinned Istio source with stand-in
binaries (no cluster, no Go build), and on the cached package when it is built."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tools.sandbox import build, sidecar_deb, versions

pytestmark = pytest.mark.skipif(not shutil.which("dpkg-deb") or not shutil.which("go"),
                                reason="needs dpkg-deb and go (for the Istio module source)")

EXPECTED_FILES = {
    "./usr/local/bin/pilot-agent", "./usr/local/bin/envoy", "./usr/local/bin/istio-start.sh",
    "./usr/local/bin/xds-standin", "./lib/systemd/system/istio.service",
    "./lib/systemd/system/istio-xds-standin.service", "./var/lib/istio/envoy/sidecar.env",
    "./var/lib/istio/envoy/envoy_bootstrap_tmpl.json", "./usr/share/doc/istio-sidecar/copyright",
    "./usr/share/doc/istio-sidecar/README.sandbox",
}


@pytest.fixture(scope="module")
def istio_src(tmp_path_factory):
    return build.istio_module_dir(str(tmp_path_factory.mktemp("gomod")))


@pytest.fixture(scope="module")
def deb(istio_src, tmp_path_factory):
    agent = tmp_path_factory.mktemp("agent")
    for name in ("pilot-agent", "xds-standin"):
        (agent / name).write_text("#!/bin/sh\necho %s\n" % name)
        (agent / name).chmod(0o755)
    work = tmp_path_factory.mktemp("work")
    return sidecar_deb.build_package(istio_src, str(agent), str(work), "1.31dev+sandbox.test")


def _info(path: str) -> dict:
    out = subprocess.run(["dpkg-deb", "-f", path], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^(\S+): (.*)$", out, re.M))


def _contents(path: str) -> dict:
    """./path -> (mode string, link target or '')."""
    out = subprocess.run(["dpkg-deb", "-c", path], capture_output=True, text=True, check=True).stdout
    files = {}
    for line in out.splitlines():
        parts = line.split()
        name = parts[5]
        files[name.rstrip("/")] = (parts[0], parts[7] if len(parts) > 7 and parts[6] == "->" else "")
    return files


def _check(path: str, istio_src: str) -> None:
    name = os.path.basename(path)
    assert name == "istio-sidecar.deb" or re.match(r"istio-sidecar_[^_]+_amd64\.deb$", name), path
    info = _info(path)
    for field in ("Package", "Version", "Architecture", "Maintainer", "Description", "Depends", "Installed-Size"):
        assert info.get(field), (field, info)
    assert info["Package"] == "istio-sidecar" and info["Architecture"] == "amd64"
    assert info["Depends"] == "iproute2, iptables, sudo, hostname"  # upstream's --depends
    files = _contents(path)
    assert EXPECTED_FILES <= set(files), sorted(set(EXPECTED_FILES) - set(files))
    for exe in ("pilot-agent", "envoy", "istio-start.sh", "xds-standin"):
        assert files["./usr/local/bin/" + exe][0] == "-rwxr-xr-x", (exe, files["./usr/local/bin/" + exe])
    mode, target = files["./lib/systemd/system/istio.service.wants/istio-xds-standin.service"]
    assert mode.startswith("l") and target == "../istio-xds-standin.service"
    tmp = path + ".x"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-R", path, tmp], check=True)
    try:
        postinst = os.path.join(tmp, "DEBIAN", "postinst")
        assert os.stat(postinst).st_mode & 0o777 == 0o755
        with open(postinst, "rb") as f, open(os.path.join(istio_src, "tools/packaging/postinst.sh"), "rb") as g:
            assert f.read() == g.read()  # upstream's postinst, unchanged
        with open(os.path.join(tmp, "DEBIAN", "conffiles")) as f:
            assert f.read().split() == ["/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", "/var/lib/istio/envoy/sidecar.env"]
        for src, dest in (("tools/packaging/common/istio-start.sh", "usr/local/bin/istio-start.sh"),
                          ("tools/packaging/common/istio.service", "lib/systemd/system/istio.service"),
                          ("tools/packaging/common/envoy_bootstrap.json", "var/lib/istio/envoy/envoy_bootstrap_tmpl.json")):
            with open(os.path.join(istio_src, src), "rb") as f, open(os.path.join(tmp, dest), "rb") as g:
                assert f.read() == g.read(), dest
        with open(os.path.join(tmp, "var/lib/istio/envoy/sidecar.env")) as f:
            env = f.read()
        with open(os.path.join(istio_src, "tools/packaging/common/sidecar.env")) as f:
            assert env.startswith(f.read().rstrip("\n"))
        assert "# ---- meshfed.istio sandbox: Envoy-less mode" in env
        # what bash (istio-start.sh: set -a; . sidecar.env) makes of it
        out = subprocess.run(["bash", "-c", "set -a; . %s; echo $DISABLE_ENVOY $ISTIO_CUSTOM_IP_TABLES $GRPC_XDS_BOOTSTRAP"
                              % os.path.join(tmp, "var/lib/istio/envoy/sidecar.env")],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out == ["true", "true", "/etc/istio/proxy/grpc-bootstrap.json"]
        res = subprocess.run([os.path.join(tmp, "usr/local/bin/envoy"), "--version"], capture_output=True, text=True, check=False)
        assert res.returncode == 1 and "DISABLE_ENVOY=true" in res.stderr
        with open(os.path.join(tmp, "lib/systemd/system/istio-xds-standin.service")) as f:
            unit = f.read()
        for line in ("BindsTo=istio.service", "PartOf=istio.service", "After=istio.service", "User=istio-proxy",
                     "EnvironmentFile=/var/lib/istio/envoy/sidecar.env", "ExecStart=/usr/local/bin/xds-standin"):
            assert line in unit.splitlines(), line
        # md5sums covers every regular file
        with open(os.path.join(tmp, "DEBIAN", "md5sums")) as f:
            summed = {line.split(None, 1)[1].strip() for line in f}
        assert {p[2:] for p, (mode, _t) in files.items() if mode.startswith("-")} == summed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_package_layout_control_and_postinst(deb, istio_src):
    assert os.path.basename(deb) == "istio-sidecar_1.31dev+sandbox.test_amd64.deb"
    _check(deb, istio_src)
    assert _info(deb)["Version"] == "1.31dev+sandbox.test"


def test_package_version_follows_upstreams_rule():
    # tools/packaging/packaging.mk: sed 's/^[a-z]*-//' | sed 's/-//' on the version
    assert build.package_version().startswith(re.sub(r"^[a-z]*-", "", versions.ISTIO_VERSION).replace("-", "") + "+sandbox.")


def test_a_missing_upstream_file_is_named(tmp_path):
    (tmp_path / "agent").mkdir()
    with pytest.raises(sidecar_deb.PackageError, match="the Istio source has no tools/packaging/common/istio-start.sh"):
        sidecar_deb.build_package(str(tmp_path), str(tmp_path / "agent"), str(tmp_path / "work"), "1")


def test_the_cached_package_when_built(istio_src):
    path = os.path.join(build.component_dir("istio-sidecar"), "istio-sidecar.deb")
    if not os.path.isfile(path):
        pytest.skip("istio-sidecar is not built (python3 -m tools.sandbox build istio-sidecar)")
    _check(path, istio_src)
    assert _info(path)["Version"] == build.package_version()
    files = _contents(path)
    assert files["./usr/local/bin/pilot-agent"][0] == "-rwxr-xr-x"
