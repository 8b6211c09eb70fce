# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox's ``istio-sidecar`` Debian package: Istio's VM package, without Envoy.

Istio's release ships ``istio-sidecar.deb`` (``tools/packaging/packaging.mk`` in the Istio source,
built with fpm): Envoy and pilot-agent in ``/usr/local/bin``, ``istio-start.sh``, the ``istio``
systemd unit, ``/var/lib/istio/envoy/sidecar.env`` and the Envoy bootstrap template, and
``tools/packaging/postinst.sh`` as postinst (it creates the ``istio-proxy`` user and the
directories).  Neither that package nor Envoy can be had here, so the sandbox builds the same
layout with ``dpkg-deb`` from the packaging files of the pinned Istio module's source (read from
the Go module cache at build time, never copied into this repository) and the pilot-agent built
from that module (component ``istio-agent``), with these differences, all for the Envoy-less mode:

* ``/usr/local/bin/envoy`` is a placeholder script that says why and exits 1 (upstream's postinst
  chmods that path, and nothing runs it: ``DISABLE_ENVOY=true``);
* ``sidecar.env`` is upstream's file plus a marked sandbox section (``SANDBOX_ENV``);
* ``/usr/local/bin/xds-standin`` (``tools/sandbox/xdsstandin``) and its unit
  ``istio-xds-standin.service`` open the xDS stream Envoy would open through the agent, so that
  istiod autoregisters the VM.  The unit is wanted by ``istio.service`` through the package's
  ``/lib/systemd/system/istio.service.wants/`` link (no ``systemctl enable`` needed, upstream's
  postinst stays as it is) and bound to it (``BindsTo=``, ``PartOf=``): it starts, restarts and
  stops with ``istio``; whoever installs the package only starts ``istio``.

Standard library only; ``dpkg-deb`` builds the archive.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

from . import versions

PACKAGE = "istio-sidecar"
ARCH = "amd64"

# (path in the Istio source, path in the package, mode): upstream's SIDECAR_FILES besides the binaries
UPSTREAM_FILES = (
    ("tools/packaging/common/istio-start.sh", "usr/local/bin/istio-start.sh", 0o755),
    ("tools/packaging/common/istio.service", "lib/systemd/system/istio.service", 0o644),
    ("tools/packaging/common/sidecar.env", "var/lib/istio/envoy/sidecar.env", 0o644),
    ("tools/packaging/common/envoy_bootstrap.json", "var/lib/istio/envoy/envoy_bootstrap_tmpl.json", 0o644),
)
UPSTREAM_POSTINST = "tools/packaging/postinst.sh"
# upstream's --config-files
CONFFILES = ("/var/lib/istio/envoy/envoy_bootstrap_tmpl.json", "/var/lib/istio/envoy/sidecar.env")
# upstream's --depends
DEPENDS = ("iproute2", "iptables", "sudo", "hostname")

SANDBOX_ENV = """
# ---- meshfed.istio sandbox: Envoy-less mode (added by tools/sandbox/sidecar_deb.py) ----
# This package is the meshfed.istio sandbox's build of Istio's istio-sidecar package, not
# Istio's release. Envoy cannot be built or downloaded in the sandbox: /usr/local/bin/envoy is a
# placeholder that exits 1. pilot-agent runs without Envoy: it still sends its certificate
# request with the token (/var/run/secrets/tokens/istio-token) and writes key.pem,
# cert-chain.pem and root-cert.pem to OUTPUT_CERTS (/etc/certs), and it still serves the xDS
# socket Envoy would use (/etc/istio/proxy/XDS). xds-standin (unit istio-xds-standin.service,
# started and stopped with istio.service) opens the xDS stream through that socket with the
# node the agent describes in GRPC_XDS_BOOTSTRAP; the agent carries it to istiod over mTLS, and
# istiod autoregisters the VM (WorkloadEntry from the WorkloadGroup in AUTO_REGISTER_GROUP).
DISABLE_ENVOY=true
# The sandbox VM shares the host's network namespace (systemd-nspawn without a private
# network): istio-iptables would redirect the host's own traffic to an Envoy that does not run.
# With this set, istio-start.sh neither installs nor cleans up iptables rules.
ISTIO_CUSTOM_IP_TABLES=true
# Where pilot-agent writes its gRPC bootstrap (node id and metadata, the xDS socket) and
# xds-standin reads it (both read this file: the agent through istio-start.sh, the stand-in
# through its unit's EnvironmentFile).
GRPC_XDS_BOOTSTRAP=/etc/istio/proxy/grpc-bootstrap.json
# ---- end of the meshfed.istio sandbox section ----
"""

ENVOY_PLACEHOLDER = """#!/bin/sh
# meshfed.istio sandbox: placeholder for Envoy in the sandbox's istio-sidecar package.
# Envoy can be neither built nor downloaded in the sandbox; pilot-agent runs with
# DISABLE_ENVOY=true (see /var/lib/istio/envoy/sidecar.env) and never starts it.
echo "envoy: not included in the meshfed.istio sandbox build of istio-sidecar (pilot-agent runs with" \\
     "DISABLE_ENVOY=true; xds-standin opens the xDS stream instead, see /var/lib/istio/envoy/sidecar.env)" >&2
exit 1
"""

STANDIN_UNIT = """[Unit]
Description=meshfed.istio sandbox: the xDS stream Envoy would open, through the Envoy-less pilot-agent
Documentation=file:///usr/share/doc/istio-sidecar/README.sandbox
# started with istio.service (its .wants link in this package), stopped and restarted with it
BindsTo=istio.service
PartOf=istio.service
After=istio.service

[Service]
# pilot-agent runs as istio-proxy (istio-start.sh) from /; its socket and bootstrap are relative to that
User=istio-proxy
Group=istio-proxy
WorkingDirectory=/
EnvironmentFile=/var/lib/istio/envoy/sidecar.env
ExecStart=/usr/local/bin/xds-standin
# the agent writes its bootstrap once, at its start: the stand-in of a restarted agent must read the
# new one (metadata from a changed cluster.env), not the last agent's, so it is gone once this stops
ExecStopPost=/bin/sh -c 'rm -f "$${GRPC_XDS_BOOTSTRAP:-/etc/istio/proxy/grpc-bootstrap.json}"'
Restart=on-failure
RestartSec=5

[Install]
WantedBy=istio.service
"""
STANDIN_UNIT_NAME = "istio-xds-standin.service"

README = """meshfed.istio sandbox build of istio-sidecar
============================================

Built by tools/sandbox/sidecar_deb.py of meshfed.istio from Istio %(version)s (module
istio.io/istio@%(module)s): its packaging files (tools/packaging/common/*, tools/packaging/postinst.sh)
and pilot-agent, built from that source. No Envoy: pilot-agent runs with DISABLE_ENVOY=true and
/usr/local/bin/xds-standin (unit %(unit)s, started and stopped with istio.service) opens the
xDS stream through the agent's socket so that istiod autoregisters this machine. The sandbox
settings are the marked section at the end of /var/lib/istio/envoy/sidecar.env.
"""

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: istio
Source: istio.io/istio@%(module)s (Go module)

Files: usr/local/bin/pilot-agent usr/local/bin/istio-start.sh lib/systemd/system/istio.service
 var/lib/istio/envoy/* DEBIAN/postinst
Copyright: Istio Authors
License: Apache-2.0

Files: usr/local/bin/xds-standin usr/local/bin/envoy lib/systemd/system/%(unit)s
 the sandbox section of var/lib/istio/envoy/sidecar.env
Copyright: 2026 meshfed.istio contributors
License: GPL-3.0-or-later
"""


class PackageError(Exception):
    """The package could not be built; the message names the file or the command."""


def description() -> str:
    return ("Istio Sidecar (meshfed.istio sandbox build, without Envoy)\n"
            " pilot-agent, istio-start.sh and the istio systemd unit from Istio's packaging,\n"
            " built by the meshfed.istio sandbox from Istio %s. Envoy is not included:\n"
            " pilot-agent runs with DISABLE_ENVOY=true and xds-standin keeps the xDS stream\n"
            " to istiod open through the agent, so that istiod autoregisters the machine."
            % versions.ISTIO_VERSION)


def control(version: str, installed_kib: int) -> str:
    fields = (
        ("Package", PACKAGE), ("Version", version), ("Architecture", ARCH),
        ("Maintainer", "meshfed.istio sandbox <sandbox@meshfed.invalid>"),
        ("Installed-Size", str(installed_kib)), ("Depends", ", ".join(DEPENDS)),
        ("Section", "net"), ("Priority", "optional"), ("Homepage", "http://istio.io"),
        ("Description", description()),
    )
    return "".join("%s: %s\n" % kv for kv in fields)


def _write(root: str, rel: str, data, mode: int) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)


def _read(src: str, rel: str) -> bytes:
    path = os.path.join(src, rel)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise PackageError("the Istio source has no %s (%s): %s" % (rel, path, e)) from None


def build_package(istio_src: str, agent_dir: str, work: str, version: str) -> str:
    """Build istio-sidecar_<version>_amd64.deb in `work`; return its path.

    istio_src: the pinned Istio module's source directory; agent_dir: the istio-agent component
    (pilot-agent, xds-standin)."""
    dpkg_deb = shutil.which("dpkg-deb")
    if not dpkg_deb:
        raise PackageError("dpkg-deb is not installed (Debian package dpkg): it builds the istio-sidecar package")
    root = os.path.join(work, "pkgroot")
    shutil.rmtree(root, ignore_errors=True)
    for src_rel, dest, mode in UPSTREAM_FILES:
        data = _read(istio_src, src_rel)
        if dest.endswith("sidecar.env"):
            data = data.rstrip(b"\n") + b"\n" + SANDBOX_ENV.encode()
        _write(root, dest, data, mode)
    for name in ("pilot-agent", "xds-standin"):
        path = os.path.join(agent_dir, name)
        if not os.access(path, os.X_OK):
            raise PackageError("%s is missing: build the istio-agent component first" % path)
        os.makedirs(os.path.join(root, "usr/local/bin"), exist_ok=True)
        shutil.copyfile(path, os.path.join(root, "usr/local/bin", name))
        os.chmod(os.path.join(root, "usr/local/bin", name), 0o755)
    _write(root, "usr/local/bin/envoy", ENVOY_PLACEHOLDER, 0o755)
    _write(root, "lib/systemd/system/" + STANDIN_UNIT_NAME, STANDIN_UNIT, 0o644)
    wants = os.path.join(root, "lib/systemd/system/istio.service.wants")
    os.makedirs(wants, exist_ok=True)
    os.symlink("../" + STANDIN_UNIT_NAME, os.path.join(wants, STANDIN_UNIT_NAME))
    subst = {"version": versions.ISTIO_VERSION, "module": versions.ISTIO_MODULE_VERSION, "unit": STANDIN_UNIT_NAME}
    _write(root, "usr/share/doc/istio-sidecar/README.sandbox", README % subst, 0o644)
    _write(root, "usr/share/doc/istio-sidecar/copyright", COPYRIGHT % subst, 0o644)
    # DEBIAN/: control, upstream's postinst, conffiles, md5sums
    sums, size = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            path = os.path.join(dirpath, fn)
            if os.path.islink(path):
                continue
            size += os.path.getsize(path)
            with open(path, "rb") as f:
                sums.append("%s  %s\n" % (hashlib.md5(f.read()).hexdigest(), os.path.relpath(path, root)))
    _write(root, "DEBIAN/control", control(version, (size + 1023) // 1024), 0o644)
    _write(root, "DEBIAN/postinst", _read(istio_src, UPSTREAM_POSTINST), 0o755)
    _write(root, "DEBIAN/conffiles", "".join(c + "\n" for c in CONFFILES), 0o644)
    _write(root, "DEBIAN/md5sums", "".join(sums), 0o644)
    for dirpath, dirnames, _files in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    os.chmod(root, 0o755)
    out = os.path.join(work, "%s_%s_%s.deb" % (PACKAGE, version, ARCH))
    res = subprocess.run([dpkg_deb, "--root-owner-group", "-Zgzip", "--build", root, out],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise PackageError("dpkg-deb --build %s failed: %s" % (root, (res.stderr or res.stdout).strip()[-800:]))
    return out


# ---------------------------------------------------------------- the package in .sandbox (for the VM role)


def exposed_path() -> str:
    """Where `up` puts the package: .sandbox/istio-sidecar/istio-sidecar.deb (a link into the build cache)."""
    from . import common
    return os.path.join(common.sandbox_dir(), "istio-sidecar", "istio-sidecar.deb")


def expose() -> str:
    """Build the package if it is missing and link it at exposed_path(); return that path."""
    from . import build, common
    common.ensure_built(("istio-sidecar",))
    target = os.path.join(build.component_dir("istio-sidecar"), "istio-sidecar.deb")
    link = exposed_path()
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if not (os.path.islink(link) and os.readlink(link) == target):
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
        common.log("istio-sidecar package (Envoy-less, version %s): %s" % (build.package_version(), link))
    return link
