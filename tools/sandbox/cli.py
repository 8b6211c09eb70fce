# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line of the sandbox: build, up, down, status, istiod, vm."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from . import build, cluster, common, istiod, lb, sidecar_deb, svcproxy, vm
from .common import SandboxError, log


def cmd_build(args) -> int:
    return build.main(args.components or None)


def cmd_up(args) -> int:
    if args.clusters == 0 and (args.istiod or not args.vms):
        raise SandboxError("--clusters 0 starts no cluster: give --vms N (and no --istiod)")
    changed = False
    if args.vms:
        try:
            sidecar_deb.expose()  # the istio-sidecar package for the VMs (built when missing)
        except SandboxError as e:  # the clusters and the VMs themselves do not need it: say so and go on
            log("istio-sidecar package not available (VMs cannot be onboarded): %s" % e)
    if args.clusters:
        svcproxy.ensure()  # first: it follows the clusters and their istiod Services as they come
        changed = cluster.up(args.clusters, also=lb.ensure)
        try:  # the samples of the pinned Istio, as a release directory holds them (deploy_samples)
            log("Istio release directory (its samples/): %s" % build.expose_istio_release())
        except build.BuildError as e:
            log("Istio release directory not available (deploy_samples needs it): %s" % e)
    if args.istiod:
        changed |= istiod.start()
    if args.vms:
        changed |= vm.ensure(args.vms)
        # the last line covers everything `up` did (clusters and istiods printed their own before)
        print("SANDBOX_CHANGED=%s" % ("true" if changed else "false"), flush=True)
    return 0


def cmd_vm(args) -> int:
    """Start vm1..N (idempotent), or restart or stop one VM."""
    if args.restart:
        vm.restart(args.restart)
        changed = True
    elif args.stop:
        changed = vm.stop(args.stop)
    else:
        changed = vm.ensure(args.vms)
    print("SANDBOX_CHANGED=%s" % ("true" if changed else "false"), flush=True)
    return 0


def cmd_istiod(args) -> int:
    if args.stop:
        istiod.stop(args.cluster or None)
    else:
        svcproxy.ensure()
        istiod.start(args.cluster or None, restart=args.restart)
    return 0


# seconds `down` waits for the ports of the stopped processes to close (a process may still be exiting)
DOWN_PORT_TIMEOUT = float(os.environ.get("MESHFED_SANDBOX_DOWN_TIMEOUT", "60"))


def down() -> None:
    t0 = time.monotonic()
    with common.sandbox_lock():
        before = common.sandbox_processes()
        ports = sorted({port for pid, _name in before for _addr, port in common.listening_ports(pid)})
        vms = vm.down()  # first: a VM's sshd is no sandbox process
        svcproxy.stop()
        istiod.stop_all()
        lb.stop()
        for name in cluster.existing_clusters():
            log("%s: stopping and deleting (kwokctl delete cluster)" % name)
            cluster.Cluster(name).delete()
        # safety net: any process of ours still alive (e.g. from a crashed kwokctl)
        left = common.sandbox_processes()
        if left:
            log("stopping leftover sandbox processes: %s" % ", ".join("%d (%s)" % pe for pe in left))
            common.terminate([pid for pid, _name in left], "leftover sandbox process")
        for path in (common.kubeconfig_path(), os.path.join(common.kwok_workdir(), "kwokctl-contexts.yaml")):
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(os.path.join(common.sandbox_dir(), "istiod"), ignore_errors=True)
        st = common.load_state()
        st["clusters"], st["istiods"] = {}, {}
        st.pop("lb_controller", None)
        common.save_state(st)
        _check_nothing_left(ports, {pid for pid, _name in before})
        log("down: stopped %d process(es)%s in %.1fs; no sandbox process left, ports %s closed"
            % (len(before), " and removed VM(s) %s" % ", ".join(vms) if vms else "", time.monotonic() - t0,
               ",".join(map(str, ports)) or "-"))
    print("SANDBOX_CHANGED=%s" % ("true" if before or vms else "false"), flush=True)


def _taken_over(port: int, ours: set) -> bool:
    """The port is now held only by processes that are neither sandbox processes nor were stopped by `down`
    (another program, e.g. a second checkout's sandbox, picked the freed port)."""
    holders = common.port_holders(port)
    mine = ours | {pid for pid, _name in common.sandbox_processes()}
    return bool(holders) and not set(holders) & mine


def _check_nothing_left(ports: list, ours: set) -> None:
    """Wait (bounded) until no sandbox process and none of `ports` is left; fail naming what is."""
    still = _wait_processes_gone(DOWN_PORT_TIMEOUT)
    busy = common.wait_ports_closed(ports, DOWN_PORT_TIMEOUT, "down", ignore=lambda p: _taken_over(p, ours))
    for p in ports:
        if p not in busy and common.port_listening(p):
            log("down: port %d is now used by %s, not by this sandbox" % (p, common.port_owner(p)))
    if still or busy:
        raise SandboxError("down left processes %s and listening ports %s behind (after waiting %gs): %s" % (
            still, busy, DOWN_PORT_TIMEOUT, "; ".join("%d: %s" % (p, common.port_owner(p)) for p in busy) or "-"))


def _wait_processes_gone(timeout: float) -> list:
    """Wait until no sandbox process is left; return (pid, name) of those still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    progress = common.Progress(first=0.0)
    while True:
        still = common.sandbox_processes()
        if not still or time.monotonic() >= deadline:
            return still
        progress.tick("down: waiting up to %gs for sandbox process(es) %s to exit"
                      % (timeout, ", ".join("%d (%s)" % pe for pe in still)))
        time.sleep(0.2)


def cmd_down(args) -> int:
    down()
    return 0


def status_data() -> dict:
    clusters = {}
    for name in cluster.existing_clusters():
        c = cluster.Cluster(name)
        info = c.info()
        info["api_ready"] = info["state"] == "running" and c.api_ready()
        info["listening"] = {comp: ["%s:%d" % ap for ap in common.listening_ports(pid)]
                             for comp, pid in info["pids"].items() if pid}
        clusters[name] = info
    istiods = {}
    for name in istiod.known():
        i = istiod.Istiod(name)
        info = i.info()
        info["ready"] = bool(info["pid"]) and i.ready()
        istiods[name] = info
    lb_controller = lb.info()
    report = lb.read_report() if lb_controller["pid"] else {}
    lb_controller["clusters"] = report.get("clusters", {}) if report.get("pid") == lb_controller["pid"] else {}
    procs = common.sandbox_processes()
    return {"sandbox_dir": common.sandbox_dir(), "kubeconfig": common.kubeconfig_path()
            if os.path.exists(common.kubeconfig_path()) else None,
            "bin_dir": build.bin_dir(), "clusters": clusters, "istiods": istiods, "lb_controller": lb_controller,
            "svcproxy": svcproxy.status_data(), "vms": vm.status_data(),
            "istio_sidecar_deb": sidecar_deb.exposed_path() if os.path.exists(sidecar_deb.exposed_path()) else None,
            "processes": [{"pid": p, "name": n, "rss_kib": common.proc_rss_kib(p)} for p, n in procs]}


def cmd_status(args) -> int:
    data = status_data()
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print("sandbox dir: %s" % data["sandbox_dir"])
    print("kubeconfig:  %s" % (data["kubeconfig"] or "(none: no cluster running)"))
    print("binaries:    %s%s" % (data["bin_dir"], "" if not build.missing_components()
                                 else "  (missing: %s)" % ", ".join(build.missing_components())))
    print("VM package:  %s" % (data["istio_sidecar_deb"] or "(none: `up` or `build istio-sidecar` makes it)"))
    if not data["clusters"]:
        print("clusters:    none")
    for name, c in data["clusters"].items():
        print("%s: %s%s  %s" % (name, c["state"], " (API ready)" if c["api_ready"] else "", c.get("api_server", "")))
        for comp, pid in c["pids"].items():
            print("    %-24s pid %-7s %s" % (comp, pid or "-", " ".join(c["listening"].get(comp, []))))
    for name, i in data["istiods"].items():
        state = "ready" if i["ready"] else ("running" if i["pid"] else "stopped")
        print("istiod %s: %s pid %s  %s  log %s" % (
            name, state, i["pid"] or "-",
            " ".join("%s=%d" % kv for kv in i["ports"].items()), i["log"]))
    _print_lb(data["lb_controller"], data["clusters"])
    sp = data["svcproxy"]
    print("svcproxy: %s  log %s" % ("pid %d, lo label %s" % (sp["pid"], sp["label"]) if sp["pid"] else "stopped", sp["log"]))
    for r in sp["relays"]:
        print("    %s %s%s %s:%d -> 127.0.0.1:%d (%d connections)" % (
            r["cluster"], r["service"], " (Gateway %s)" % r["gateway"] if r.get("gateway") else "",
            r["address"], r["port"], r["istiod_port"], r["connections"]))
    for p in sp["problems"]:
        print("    problem: %s" % p)
    for v in data["vms"]:
        print("vm %s: %s  ssh %s  pid %s  log %s" % (v["name"], v["state"], v["ssh"], v["pid"] or "-", v["log"]))
    total = sum(p["rss_kib"] for p in data["processes"])
    print("processes:   %d, RSS %.0f MiB" % (len(data["processes"]), total / 1024))
    return 0


def _print_lb(ctl: dict, clusters: dict) -> None:
    if not ctl["pid"]:
        print("lb-controller: not running%s" % (" (`up` starts it)" if clusters else ""))
        return
    print("lb-controller: running pid %d  log %s" % (ctl["pid"], ctl["log"]))
    for name in clusters:
        seen = ctl["clusters"].get(name) or {}
        state = "watching" if seen.get("synced") else "not watching (%s)" % (seen.get("error") or "not yet")
        print("    %-24s %s, pool %s" % (name, state, ctl["pools"].get(name, "?")))
        for svc, ip in sorted((seen.get("addresses") or {}).items()):
            print("        %-36s %s" % (svc, ip))
        for svc, why in sorted((seen.get("pending") or {}).items()):
            print("        %-36s pending: %s" % (svc, why))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m tools.sandbox",
                                description="Local multi-cluster Kubernetes + istiod sandbox (see docs/sandbox.md)")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the binaries into the versioned cache")
    b.add_argument("components", nargs="*", help="subset of: %s" % ", ".join(build.COMPONENTS))
    b.set_defaults(func=cmd_build)
    u = sub.add_parser("up", help="start cluster1..N (idempotent); writes .sandbox/kubeconfig")
    u.add_argument("--clusters", type=int, default=int(os.environ.get("SANDBOX_CLUSTERS") or 2),
                   help="number of clusters (default: $SANDBOX_CLUSTERS or 2)")
    u.add_argument("--istiod", action="store_true", help="also start one istiod per cluster")
    u.add_argument("--vms", type=int, default=_env_int("SANDBOX_VMS", 1),
                   help="also start VM hosts vm1..N (Debian, systemd, sshd on 127.0.0.1:2222+; default: $SANDBOX_VMS or 1, "
                        "the sandbox inventory's vm1); "
                        "with --clusters 0 only the VMs")
    u.set_defaults(func=cmd_up)
    d = sub.add_parser("down", help="stop and delete every sandbox cluster and istiod")
    d.set_defaults(func=cmd_down)
    s = sub.add_parser("status", help="show what runs")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_status)
    i = sub.add_parser("istiod", help="start one out-of-cluster istiod per running cluster (idempotent)")
    i.add_argument("--cluster", action="append", help="only this cluster (repeatable)")
    g = i.add_mutually_exclusive_group()
    g.add_argument("--restart", action="store_true", help="restart (takes the env of Deployment istio-system/istiod again)")
    g.add_argument("--stop", action="store_true", help="stop instead of start")
    i.set_defaults(func=cmd_istiod)
    v = sub.add_parser("vm", help="start VM hosts vm1..N (idempotent), or restart or stop one")
    v.add_argument("--vms", type=int, default=_env_int("SANDBOX_VMS", 1) or 1,
                   help="how many to run (default: $SANDBOX_VMS or 1)")
    g = v.add_mutually_exclusive_group()
    g.add_argument("--restart", metavar="NAME", help="stop the VM and boot it again from the same root")
    g.add_argument("--stop", metavar="NAME", help="stop the VM (its root is kept; `vm` boots it again)")
    v.set_defaults(func=cmd_vm)
    return p


def _env_int(name: str, default: int) -> int:
    raw = (os.environ.get(name) or "").strip()
    return int(raw) if raw.isdigit() else default


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SandboxError as e:
        common.eprint("sandbox: error: %s" % e)
        return 1
    except KeyboardInterrupt:
        common.eprint("sandbox: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
