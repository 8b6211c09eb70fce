# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the sandbox binaries from upstream Go modules into a versioned cache.

Every component is built into a temporary directory beside its final place and
renamed into place only when the whole component built, so an interrupted or
failed build never leaves a half-built component in the cache.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from . import common, versions

# Free space the cold build needs: module cache (~2 GiB), build cache
# (~4 GiB) and binaries (~0.7 GiB), with room to spare.
MIN_FREE_BYTES = 8 * 1024**3


class BuildError(Exception):
    """A build step failed; the message names the cause."""


def cache_base() -> str:
    base = os.environ.get("MESHFED_SANDBOX_CACHE")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "meshfed-sandbox")
    return base


def cache_root() -> str:
    """The directory of this set of pinned versions (its bin/ links to the components)."""
    return os.path.join(cache_base(), versions.cache_key())


def bin_dir() -> str:
    return os.path.join(cache_root(), "bin")


def component_dir(component: str) -> str:
    """Where one component's binaries live, keyed by that component's version only,
    so that a change of one pinned version rebuilds that component alone."""
    return os.path.join(cache_base(), "components", component_key(component))


# component -> files it provides (all must exist for the component to count as built)
COMPONENTS = {
    "kwok": ("kwok", "kwokctl"),
    "kubernetes": ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
    "etcd": ("etcd",),
    "istio": ("istioctl", "pilot-discovery"),
    "istio-agent": ("pilot-agent", "xds-standin"),
    "istio-sidecar": ("istio-sidecar.deb",),
}
# components whose files are not programs: not linked into bin/ (sidecar_deb.py places the package)
NOT_BINARIES = {"istio-sidecar"}
# component -> the components its build reads
DEPENDS = {"istio-sidecar": ("istio-agent",)}

HERE = os.path.dirname(os.path.abspath(__file__))
# our own source files a component is built from: their digest is part of its cache key
STANDIN_SOURCE = os.path.join(HERE, "xdsstandin", "main.go")
COMPONENT_INPUTS = {
    "istio-agent": (STANDIN_SOURCE,),
    "istio-sidecar": (os.path.join(HERE, "sidecar_deb.py"),),
}


def inputs_digest(component: str) -> str:
    """12 hex digits of the SHA-256 of our inputs of `component` (and of the keys of what it depends on)."""
    h = hashlib.sha256()
    for path in COMPONENT_INPUTS.get(component, ()):
        h.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read())
    for dep in DEPENDS.get(component, ()):
        h.update(component_key(dep).encode())
    return h.hexdigest()[:12]


def component_key(component: str) -> str:
    """versions.component_key, plus the digest of our own inputs for the components built from them."""
    key = versions.component_key(component)
    return key + "-" + inputs_digest(component) if component in COMPONENT_INPUTS else key


def log(msg: str) -> None:
    print("[sandbox-build] %s" % msg, flush=True)


def _go_env() -> dict:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false"})
    return env


def _run(argv, cwd=None, env=None, progress_label=None) -> None:
    """Run a command; stream `go build -v` package lines as a progress counter."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env or _go_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    tail = []
    count = 0
    start = time.monotonic()
    assert proc.stdout is not None
    for line in proc.stdout:
        tail.append(line.rstrip())
        tail = tail[-40:]
        if progress_label and not line.startswith(("go: ", "#")):
            count += 1
            if count % 100 == 0:
                log("  %s: %d packages compiled (%.0fs)" % (progress_label, count, time.monotonic() - start))
    rc = proc.wait()
    if rc != 0:
        raise BuildError("command failed (exit %d): %s\n%s" % (rc, " ".join(argv), "\n".join(tail)))


def preflight() -> None:
    go = shutil.which("go")
    if not go:
        raise BuildError("no Go toolchain: 'go' is not on PATH (Go >= %s is needed)" % ".".join(map(str, versions.GO_MIN)))
    out = subprocess.run([go, "env", "GOVERSION", "GOCACHE", "GOMODCACHE", "GOPROXY"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    m = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", out[0])
    have = tuple(int(x or 0) for x in m.groups()) if m else (0, 0, 0)
    if have < versions.GO_MIN:
        raise BuildError("Go %s is too old: the pinned modules need Go >= %s" % (out[0], ".".join(map(str, versions.GO_MIN))))
    for path in (out[1], out[2], os.path.dirname(cache_root())):
        probe = path
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        free = shutil.disk_usage(probe).free
        if free < MIN_FREE_BYTES:
            raise BuildError("too little disk: %s has %.1f GiB free, the build needs %.0f GiB"
                             % (probe, free / 1024**3, MIN_FREE_BYTES / 1024**3))
    probe = subprocess.run([go, "list", "-m", "-json", "k8s.io/kubernetes@v%s" % versions.KUBERNETES],
                           capture_output=True, text=True, env=_go_env(), timeout=180,
                           cwd=tempfile.gettempdir(), check=False)
    if probe.returncode != 0:
        raise BuildError("cannot reach the Go module proxy (GOPROXY=%s): %s" % (out[3], probe.stderr.strip()[-400:]))


def _wrapper(workdir: str, name: str, gomod_extra: str = "") -> None:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "go.mod"), "w") as f:
        f.write("module local/meshfed-sandbox-%s\n\ngo %s\n%s" % (name, ".".join(map(str, versions.GO_MIN)), gomod_extra))


def _kube_staging_replaces() -> str:
    """replace lines mapping every k8s.io staging module (v0.0.0) to its published tag."""
    res = subprocess.run(["go", "mod", "download", "-json", "k8s.io/kubernetes@v%s" % versions.KUBERNETES],
                         capture_output=True, text=True, env=_go_env(), check=True, cwd=tempfile.gettempdir())
    gomod = re.search(r'"GoMod":\s*"([^"]+)"', res.stdout).group(1)
    staging = sorted(set(re.findall(r"^\s*(k8s\.io/[\w.\-/]+) v0\.0\.0\s*$", open(gomod).read(), re.M)))
    if not staging:
        raise BuildError("no staging modules found in %s" % gomod)
    minor_patch = versions.KUBERNETES.split(".", 1)[1]
    return "replace (\n%s)\n" % "".join("\t%s => %s v0.%s\n" % (m, m, minor_patch) for m in staging)


def build_kwok(out: str, work: str) -> None:
    v = versions.KWOK
    ldf = "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v%s -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v%s" % (v, versions.KUBERNETES)
    env = _go_env()
    env["GOBIN"] = out
    _run(["go", "install", "-v", "-trimpath", "-ldflags", ldf,
          "sigs.k8s.io/kwok/cmd/kwok@v" + v, "sigs.k8s.io/kwok/cmd/kwokctl@v" + v],
         cwd=work, env=env, progress_label="kwok")


def build_kubernetes(out: str, work: str) -> None:
    v = versions.KUBERNETES
    _wrapper(work, "k8s", _kube_staging_replaces())
    cmds = ["k8s.io/kubernetes/cmd/%s" % c for c in COMPONENTS["kubernetes"]]
    _run(["go", "get"] + ["%s@v%s" % (c, v) for c in cmds], cwd=work)
    major, minor = v.split(".")[:2]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    ldf = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldf += ["-X", "%s.gitVersion=v%s" % (pkg, v), "-X", "%s.gitMajor=%s" % (pkg, major),
                "-X", "%s.gitMinor=%s" % (pkg, minor), "-X", "%s.gitTreeState=clean" % pkg,
                "-X", "%s.buildDate=%s" % (pkg, date)]
    _run(["go", "build", "-v", "-trimpath", "-ldflags", " ".join(ldf), "-o", out + "/"] + cmds,
         cwd=work, progress_label="kubernetes")


def build_etcd(out: str, work: str) -> None:
    _wrapper(work, "etcd")
    pkg = "go.etcd.io/etcd/server/v3"
    _run(["go", "get", "%s@v%s" % (pkg, versions.ETCD)], cwd=work)
    _run(["go", "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", os.path.join(out, "etcd"), pkg],
         cwd=work, progress_label="etcd")


def _istio_wrapper(work: str) -> None:
    mv = versions.ISTIO_MODULE_VERSION
    reps = "".join("replace %s %s => %s %s\n" % (m, old, m, new) for m, old, new in versions.ISTIO_REPLACES)
    _wrapper(work, "istio", "\nrequire istio.io/istio %s\n\n%s" % (mv, reps))


def _istio_build(work: str, pkgs: list, out: str, label: str) -> None:
    """go build in the Istio wrapper module (created when missing) with upstream's tags and version ldflags."""
    if not os.path.exists(os.path.join(work, "go.mod")):
        _istio_wrapper(work)
    ldf = ["-s", "-w"]
    for k, val in (("buildVersion", versions.ISTIO_VERSION), ("buildTag", versions.ISTIO_VERSION),
                   ("buildGitRevision", versions.ISTIO_COMMIT), ("buildHub", "docker.io/istio"),
                   ("buildStatus", "Clean")):
        ldf += ["-X", "istio.io/istio/pkg/version.%s=%s" % (k, val)]
    env = _go_env()
    env["GOFLAGS"] = "-buildvcs=false -mod=mod"
    _run(["go", "build", "-v", "-trimpath", "-tags", "vtprotobuf,disable_pgv", "-ldflags", " ".join(ldf),
          "-o", out] + pkgs, cwd=work, env=env, progress_label=label)


def build_istio(out: str, work: str) -> None:
    _istio_build(work, ["istio.io/istio/istioctl/cmd/istioctl", "istio.io/istio/pilot/cmd/pilot-discovery"],
                 out + "/", "istio")


def build_istio_agent(out: str, work: str) -> None:
    """pilot-agent from the same Istio module, replaces, tags and ldflags as istiod, and our xDS stand-in
    (tools/sandbox/xdsstandin, a package of the same wrapper module: it uses the gRPC and Envoy API
    versions Istio pins)."""
    os.makedirs(os.path.join(work, "xdsstandin"))
    shutil.copyfile(STANDIN_SOURCE, os.path.join(work, "xdsstandin", "main.go"))
    _istio_build(work, ["istio.io/istio/pilot/cmd/pilot-agent"], out + "/", "istio-agent")
    _istio_build(work, ["./xdsstandin"], os.path.join(out, "xds-standin"), "xds-standin")


def build_istio_sidecar(out: str, work: str) -> None:
    from . import sidecar_deb  # only the build of the package needs it
    src = istio_module_dir(work)
    try:
        deb = sidecar_deb.build_package(src, component_dir("istio-agent"), work, package_version())
    except sidecar_deb.PackageError as e:
        raise BuildError("istio-sidecar package: %s" % e) from None
    # istio-sidecar_<version>_amd64.deb, and istio-sidecar.deb (the same file) for a stable path
    shutil.copyfile(deb, os.path.join(out, os.path.basename(deb)))
    os.link(os.path.join(out, os.path.basename(deb)), os.path.join(out, "istio-sidecar.deb"))


def package_version() -> str:
    """Debian version of the sandbox istio-sidecar package: upstream's PACKAGE_VERSION rule (tools/packaging/
    packaging.mk: a leading "word-" dropped, then every "-") on our Istio version, + "+sandbox." + our digest."""
    upstream = re.sub(r"^[a-z]*-", "", versions.ISTIO_VERSION).replace("-", "")
    return "%s+sandbox.%s" % (upstream, inputs_digest("istio-sidecar")[:8])


def istio_module_dir(work: str) -> str:
    """The pinned Istio module's source directory (downloaded into the Go module cache if needed)."""
    os.makedirs(work, exist_ok=True)
    res = subprocess.run(["go", "mod", "download", "-json", "istio.io/istio@" + versions.ISTIO_MODULE_VERSION],
                         capture_output=True, text=True, env=_go_env(), cwd=work, check=False)
    m = re.search(r'"Dir":\s*"([^"]+)"', res.stdout)
    if res.returncode != 0 or not m or not os.path.isdir(m.group(1)):
        why = (res.stderr or res.stdout).strip()[-400:]
        raise BuildError("go mod download istio.io/istio@%s failed: %s" % (versions.ISTIO_MODULE_VERSION, why))
    return m.group(1)


def expose_istio_release() -> str:
    """``<sandbox>/istio``: a link to the pinned Istio source, which holds ``samples/`` as a release
    directory does (what deploy_samples reads); its istioctl is the sandbox's ``bin/istioctl``."""
    link = os.path.join(common.sandbox_dir(), "istio")
    work = tempfile.mkdtemp(prefix="istio-src-")
    try:
        target = istio_module_dir(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not (os.path.islink(link) and os.readlink(link) == target):
        os.makedirs(common.sandbox_dir(), exist_ok=True)
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    return link


BUILDERS = {"kwok": build_kwok, "kubernetes": build_kubernetes, "etcd": build_etcd, "istio": build_istio,
            "istio-agent": build_istio_agent, "istio-sidecar": build_istio_sidecar}


def _component_complete(comp: str) -> bool:
    d = component_dir(comp)
    if comp in NOT_BINARIES:
        return all(os.path.isfile(os.path.join(d, b)) for b in COMPONENTS[comp])
    return all(os.access(os.path.join(d, b), os.X_OK) for b in COMPONENTS[comp])


def missing_components() -> list:
    return [c for c in COMPONENTS if not _component_complete(c)]


def link_bin_dir() -> None:
    """bin/ of this version set: one symlink per binary into its component's directory."""
    bd = bin_dir()
    os.makedirs(bd, exist_ok=True)
    for comp, bins in COMPONENTS.items():
        if comp in NOT_BINARIES:
            continue
        for b in bins:
            target = os.path.join(component_dir(comp), b)
            link = os.path.join(bd, b)
            if os.path.islink(link) and os.readlink(link) == target:
                continue
            tmp = link + ".tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.replace(tmp, link)


def build(components=None) -> float:
    """Build what is missing; return the seconds spent (0 when nothing was built)."""
    base = cache_base()
    os.makedirs(os.path.join(base, "components"), exist_ok=True)
    with open(os.path.join(base, ".lock"), "w", encoding="utf-8") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        wanted = list(components or COMPONENTS)
        wanted += [d for c in wanted for d in DEPENDS.get(c, ()) if d not in wanted]
        todo = [c for c in COMPONENTS if c in wanted and c in missing_components()]  # in dependency order
        if not todo:
            link_bin_dir()
            return 0.0
        log("cache %s; to build: %s" % (base, ", ".join(todo)))
        preflight()
        started = time.monotonic()
        for comp in todo:
            t0 = time.monotonic()
            log("building %s (%s) ..." % (comp, component_key(comp)))
            # build into a temporary directory beside the final one, then rename:
            # an interrupted build leaves no half-built component behind
            tmp = tempfile.mkdtemp(prefix=".tmp-%s-" % comp, dir=os.path.join(base, "components"))
            try:
                out = os.path.join(tmp, "bin")
                os.makedirs(out)
                os.makedirs(os.path.join(tmp, "work"))
                BUILDERS[comp](out, os.path.join(tmp, "work"))
                for b in COMPONENTS[comp]:
                    if not (os.path.isfile if comp in NOT_BINARIES else lambda p: os.access(p, os.X_OK))(os.path.join(out, b)):
                        raise BuildError("%s: the build produced no %s" % (comp, b))
                final = component_dir(comp)
                if os.path.exists(final):
                    shutil.rmtree(final)
                os.rename(out, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log("built %s in %.0fs" % (comp, time.monotonic() - t0))
        link_bin_dir()
        total = time.monotonic() - started
        log("build finished in %.0fs (%.1f min)" % (total, total / 60))
        return total


def main(argv=None) -> int:
    try:
        build(argv or None)
    except BuildError as e:
        print("sandbox build failed: %s" % e, file=sys.stderr)
        return 1
    return 0
