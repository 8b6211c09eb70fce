# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Does the mesh carry traffic? Pure evaluation of what was read from every cluster.

``evaluate(facts, now, warn_days)`` turns the facts verify_runner gathered (per cluster:
the API's answers, istiod's debug endpoints and what istiod sends a sidecar and the
east-west gateway over xDS) into checks: ``{id, kind, subject, source, target, service,
status, reason, details}`` with status pass, fail, warn or not_run, each reason in plain
words that name the clusters, the object and what was expected.  Nothing here talks to
a cluster; every rule has a unit test.
"""

from __future__ import annotations

import re

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import ca as ca_mod
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import CAError

PASS, FAIL, WARN, NOT_RUN = "pass", "fail", "warn", "not_run"
GATEWAY_PORT = 15443
TLS_MODE = "istio"
SCHEMA = "meshfed.istio/verify/v1"
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----")


def check(kind, cid, subject, status, reason, source=None, target=None, service=None, details=None):
    return {"id": cid, "kind": kind, "subject": subject, "source": source, "target": target, "service": service,
            "status": status, "reason": reason, "details": details or {}}


def pair(a, b):
    return "%s -> %s" % (a, b)


def sni(port, host):
    """The SNI a sidecar sends for ``host``:``port`` through an east-west gateway."""
    return "outbound_.%s_._.%s" % (port, host)


def outbound(port, host, subset=""):
    return "outbound|%s|%s|%s" % (port, subset, host)


# --- certificates (pure: PEM text in) ------------------------------------------------------


def pem_blocks(text):
    """The PEM certificates of a bundle, in order."""
    return PEM_RE.findall(text or "")


def cert_facts(pem, now):
    """{fingerprint, subject, not_after, days_left} of one PEM certificate; None when unreadable."""
    try:
        cert = ca_mod.load_cert(pem.encode(), "certificate")
    except CAError:
        return None
    s = ca_mod.summary(cert)
    left = (ca_mod.not_after(cert) - now).total_seconds() / 86400.0
    return {"fingerprint": s["fingerprint_sha256"], "subject": s["subject"], "not_after": s["not_after"],
            "days_left": int(left) if left >= 0 else -1, "cert": cert}


def chains_to(cert_pem, roots_pem):
    """True when the certificate of ``cert_pem`` is issued by one of the roots."""
    try:
        cert = ca_mod.load_cert(cert_pem.encode(), "certificate")
    except CAError:
        return False
    for r in roots_pem:
        try:
            root = ca_mod.load_cert(r.encode(), "root")
        except CAError:
            continue
        if ca_mod.issued_by(cert, root):
            return True
    return False


# --- per cluster ------------------------------------------------------------------------------


def cluster_checks(c, mesh_roots, now, warn_days, roots_missing=None):
    """API, istiod, webhook and trust checks of one cluster (its facts ``c``)."""
    name = c["name"]
    out = []
    if c.get("api_error"):
        out.append(check("api", "%s/api" % name, name, FAIL, c["api_error"], source=name))
        for kind, what in (("istiod", "istiod"), ("webhook", "webhook"), ("trust", "trust")):
            out.append(check(kind, "%s/%s" % (name, what), name, NOT_RUN,
                             "not run: %s's API server does not answer" % name, source=name))
        return out
    out.append(check("api", "%s/api" % name, name, PASS, "%s's API server answers (Kubernetes %s)"
                     % (name, c.get("kubernetes_version") or "?"), source=name))
    if c.get("role") == "remote":
        out.append(check("istiod", "%s/istiod" % name, name, PASS if c.get("control_plane") else FAIL,
                         "%s is a remote cluster: its control plane runs in %s" % (name, c.get("control_plane"))
                         if c.get("control_plane") else "%s is a remote cluster without a control plane cluster" % name,
                         source=name))
    else:
        out.extend(istiod_checks(c))
    out.append(webhook_check(c))
    out.extend(trust_checks(c, mesh_roots, now, warn_days, roots_missing))
    return out


def istiod_checks(c):
    name = c["name"]
    i = c.get("istiod") or {}
    if i.get("error"):
        return [check("istiod", "%s/istiod" % name, name, FAIL, "%s: istiod cannot be reached: %s" % (name, i["error"]),
                      source=name)]
    if not i.get("ready"):
        why = i.get("ready_reason") or "GET /ready failed"
        return [check("istiod", "%s/istiod" % name, name, FAIL, "%s: istiod is not Ready (%s)" % (name, why), source=name)]
    return [check("istiod", "%s/istiod" % name, name, PASS, "%s: istiod %s (revision %s) is Ready%s" % (
        name, i.get("version") or "?", i.get("revision") or "default",
        " (reached through %s)" % i["reached"] if i.get("reached") else ""), source=name,
        details=dict({"version": i.get("version"), "revision": i.get("revision")},
                     **({"reached": i["reached"]} if i.get("reached") else {})))]


def webhook_check(c):
    name = c["name"]
    w = c.get("webhook") or {}
    status = w.get("status") or NOT_RUN
    return check("webhook", "%s/webhook" % name, name, status, w.get("reason") or "not run: not checked", source=name,
                 details={k: v for k, v in w.items() if k not in ("status", "reason")})


def trust_checks(c, mesh_roots, now, warn_days, roots_missing=None):
    """istio-ca-root-cert equals the mesh root bundle; cacerts chains to it; days left.
    ``roots_missing``: the path of a root bundle that does not exist (yet)."""
    name = c["name"]
    no_roots = ("the mesh root bundle %s does not exist (yet)" % roots_missing if roots_missing
                else "no mesh root bundle was given (ca_dir)")
    out = []
    want = sorted(f["fingerprint"] for f in (cert_facts(p, now) for p in mesh_roots) if f)
    have_pems = c.get("root_cert_pems")
    if not want:
        out.append(check("trust", "%s/trust/root-cert" % name, name, NOT_RUN, "not run: %s" % no_roots, source=name))
    elif have_pems is None:
        out.append(check("trust", "%s/trust/root-cert" % name, name, FAIL,
                         "%s: ConfigMap istio-system/istio-ca-root-cert is missing (istiod has not written it)" % name,
                         source=name))
    else:
        have = sorted(f["fingerprint"] for f in (cert_facts(p, now) for p in have_pems) if f)
        if have == want:
            out.append(check("trust", "%s/trust/root-cert" % name, name, PASS,
                             "%s: istio-ca-root-cert holds the mesh's root%s" % (name, "s" if len(want) > 1 else ""),
                             source=name, details={"roots": have}))
        else:
            out.append(check("trust", "%s/trust/root-cert" % name, name, FAIL,
                             "%s: istio-ca-root-cert holds roots %s, the mesh's are %s" % (
                                 name, ", ".join(r[:11] for r in have) or "none", ", ".join(r[:11] for r in want)),
                             source=name, details={"roots": have, "mesh_roots": want}))
    cacerts = c.get("cacerts")
    if c.get("role") == "remote":
        return out
    if cacerts is None:
        out.append(check("trust", "%s/trust/cacerts" % name, name, FAIL,
                         "%s: Secret istio-system/cacerts is missing: istiod signs with its own self-signed root" % name,
                         source=name))
        return out
    inter = cert_facts(cacerts.get("ca-cert.pem") or "", now)
    if inter is None:
        out.append(check("trust", "%s/trust/cacerts" % name, name, FAIL,
                         "%s: cacerts' ca-cert.pem is not a certificate" % name, source=name))
        return out
    if not want:
        out.append(check("trust", "%s/trust/cacerts" % name, name, NOT_RUN,
                         "not run: %s to check %s's intermediate %s against" % (no_roots, name, inter["subject"]),
                         source=name))
    elif not chains_to(cacerts.get("ca-cert.pem") or "", mesh_roots):
        out.append(check("trust", "%s/trust/cacerts" % name, name, FAIL,
                         "%s: the intermediate in cacerts (%s) is not issued by the mesh's root: workloads of %s "
                         "are not trusted by the other clusters" % (name, inter["subject"], name), source=name))
    else:
        out.append(check("trust", "%s/trust/cacerts" % name, name, PASS,
                         "%s: cacerts' intermediate %s chains to the mesh's root" % (name, inter["subject"]),
                         source=name))
    roots = [f for f in (cert_facts(p, now) for p in mesh_roots) if f]
    lifetimes = [("intermediate", "intermediate-lifetime", inter)]
    lifetimes += [("root", "root-lifetime" if len(roots) == 1 else "root-lifetime/" + f["fingerprint"][:11], f)
                  for f in roots]
    for what, cid, f in lifetimes:
        if f["days_left"] < 0:
            status, text = FAIL, "%s: the %s CA expired on %s" % (name, what, f["not_after"])
        else:
            status = WARN if f["days_left"] < warn_days else PASS
            text = "%s: the %s CA expires in %d days (%s)%s" % (
                name, what, f["days_left"], f["not_after"], ", under the %d-day threshold" % warn_days if status == WARN else "")
        out.append(check("trust", "%s/trust/%s" % (name, cid), name, status, text, source=name,
                         details={"days_left": f["days_left"], "not_after": f["not_after"]}))
    return out


# --- pairs: A discovers B ------------------------------------------------------------------


def pair_checks(a, b, network_gateways=None):
    """A holds B's remote secret, whose token lists B's Services and cannot write; A's istiod
    synced B and knows B's network gateway (other network)."""
    src, dst = a["name"], b["name"]
    subject = pair(src, dst)
    base = "%s->%s" % (src, dst)
    out = []
    rs = (a.get("remote_secrets") or {}).get(dst)

    def add(kind, what, status, reason, **details):
        out.append(check(kind, "%s/%s" % (base, what), subject, status, reason, source=src, target=dst, details=details))

    if a.get("api_error"):
        add("remote_secret", "remote-secret", NOT_RUN, "not run: %s's API server does not answer" % src)
        return out
    if rs is None:
        add("remote_secret", "remote-secret", FAIL, "%s → %s: %s holds no remote secret for %s (label istio/multiCluster, "
            "annotation networking.istio.io/cluster=%s): its istiod does not discover %s" % (src, dst, src, dst, dst, dst))
    else:
        add("remote_secret", "remote-secret", PASS, "%s → %s: remote secret %s points at %s" % (
            src, dst, rs.get("secret"), rs.get("server")), secret=rs.get("secret"), server=rs.get("server"))
        lst = rs.get("list") or {}
        if lst.get("ok"):
            add("rbac", "remote-secret/list", PASS, "%s → %s: the remote secret's token lists %s's Services (%d)" % (
                src, dst, dst, lst.get("count", 0)))
        else:
            add("rbac", "remote-secret/list", FAIL, "%s → %s: remote secret token cannot list services (%s)" % (
                src, dst, lst.get("reason") or "unknown error"), http_status=lst.get("status"))
        writes = rs.get("writes")
        if writes is None:
            add("rbac", "remote-secret/read-only", NOT_RUN, "not run: the remote secret's token could not be used")
        else:
            allowed = [w for w, ok in sorted(writes.items()) if ok]
            if allowed:
                add("rbac", "remote-secret/read-only", FAIL, "%s → %s: the remote secret's token may %s in %s: it must "
                    "only read" % (src, dst, ", ".join(allowed), dst), allowed=allowed)
            else:
                add("rbac", "remote-secret/read-only", PASS, "%s → %s: the remote secret's token cannot write (%s denied)"
                    % (src, dst, ", ".join(sorted(writes))))
    istiod = a.get("istiod") or {}
    clusterz = istiod.get("clusterz")
    if a.get("role") == "remote":
        return out
    if clusterz is None:
        add("sync", "sync", NOT_RUN, "not run: %s's istiod debug endpoint cannot be read%s" % (
            src, ": " + istiod["error"] if istiod.get("error") else ""))
    else:
        entry = next((e for e in clusterz if e.get("id") == dst), None)
        if entry is None:
            add("sync", "sync", FAIL, "%s → %s: %s's istiod does not know cluster %s (/debug/clusterz)" % (src, dst, src, dst))
        elif entry.get("syncStatus") != "synced":
            add("sync", "sync", FAIL, "%s → %s: %s's istiod has not synced %s: %s" % (
                src, dst, src, dst, entry.get("syncStatus")))
        else:
            add("sync", "sync", PASS, "%s → %s: %s's istiod reports %s synced" % (src, dst, src, dst))
    if a.get("network") != b.get("network"):
        out.extend(network_gateway_check(a, b, network_gateways))
    return out


def network_gateway_check(a, b, network_gateways=None):
    """A's istiod knows B's network gateway at B's address; a gateway of that network that no
    cluster of the mesh has (``network_gateways``: the addresses of all of them) is a warning:
    istiod spreads that network's traffic over every gateway it knows."""
    src, dst = a["name"], b["name"]
    cid = "%s->%s/network-gateway" % (src, dst)
    networkz = (a.get("istiod") or {}).get("networkz")
    if networkz is None:
        return [check("network_gateway", cid, pair(src, dst), NOT_RUN, "not run: %s's istiod debug endpoint cannot be "
                      "read" % src, source=src, target=dst)]
    addrs = sorted({"%s:%s" % (g.get("Addr"), g.get("Port")) for g in networkz if g.get("Network") == b.get("network")})
    expected = b.get("gateway_address")
    if not addrs:
        return [check("network_gateway", cid, pair(src, dst), FAIL,
                      "%s → %s: %s's istiod knows no gateway for network %s: it would send %s's pod IPs, which %s "
                      "cannot reach (give %s's east-west gateway a LoadBalancer address, or mesh_gateway_address)" % (
                          src, dst, src, b.get("network"), dst, src, dst), source=src, target=dst)]
    if expected and "%s:%d" % (expected, GATEWAY_PORT) not in addrs:
        return [check("network_gateway", cid, pair(src, dst), FAIL,
                      "%s → %s: %s's istiod sends network %s to %s, but %s's east-west gateway is %s:%d" % (
                          src, dst, src, b.get("network"), ", ".join(addrs), dst, expected, GATEWAY_PORT),
                      source=src, target=dst, details={"gateways": addrs, "expected": expected})]
    known = {"%s:%d" % (g, GATEWAY_PORT) for g in (network_gateways or ([expected] if expected else []))}
    extra = [x for x in addrs if known and x not in known]
    if extra:
        good = ", ".join(sorted(known & set(addrs)))
        return [check("network_gateway", cid, pair(src, dst), WARN,
                      "%s → %s: %s's istiod knows network %s's gateway %s, and also %s, which no cluster of the mesh "
                      "gives as its gateway: it spreads that network's traffic over all of them (a LoadBalancer address "
                      "beside mesh_gateway_address?)" % (src, dst, src, b.get("network"), good, ", ".join(extra)),
                      source=src, target=dst, details={"gateways": addrs, "unexpected": extra})]
    return [check("network_gateway", cid, pair(src, dst), PASS, "%s → %s: %s's istiod knows network %s's gateway %s" % (
        src, dst, src, b.get("network"), ", ".join(addrs)), source=src, target=dst, details={"gateways": addrs})]


# --- data plane ---------------------------------------------------------------------------------


def _short(host):
    return host[:-len(".svc.cluster.local")] if host.endswith(".svc.cluster.local") else host


def _endpoints(snap, cluster_name):
    c = (snap.get("clusters") or {}).get(cluster_name)
    if c is None:
        return None, None
    eps = c.get("endpoints") or []
    if c.get("eds_name"):
        eps = (snap.get("endpoints") or {}).get(c["eds_name"]) or []
    return c, eps


def service_check(a, b, svc, port, snap, gateways_of):
    """What A's sidecar gets for B's Service ``svc`` on ``port``: B's endpoints (same network)
    or B's gateway on 15443 with mTLS and the right SNI (other network)."""
    src, dst, host = a["name"], b["name"], svc["host"]
    cid = "%s->%s/service/%s:%s" % (src, dst, host, port)
    label = "%s:%s" % (_short(host), port)

    def result(status, reason, **details):
        return check("service", cid, pair(src, dst), status, "%s → %s: %s: %s" % (src, dst, label, reason), source=src,
                     target=dst, service="%s:%s" % (host, port), details=details)

    if snap.get("error"):
        return result(NOT_RUN, "not run: %s" % snap["error"])
    c, eps = _endpoints(snap, outbound(port, host))
    if c is None:
        return result(FAIL, "%s's istiod sends a sidecar of namespace %s no cluster %s" % (
            src, svc["namespace"], outbound(port, host)))
    mine = [e for e in eps if e.get("cluster") == dst]
    if a.get("network") == b.get("network"):
        if mine:
            return result(PASS, "%s's sidecars get %s's %d endpoint(s) directly (same network)" % (src, dst, len(mine)),
                          endpoints=["%s:%s" % (e["address"], e["port"]) for e in mine])
        return result(FAIL, "%s's istiod sends no endpoint of %s (it has %d ready)" % (src, dst, svc.get("ready", 0)),
                      endpoints=["%s:%s" % (e["address"], e["port"]) for e in eps])
    gw_addrs = gateways_of(b.get("network"))
    # istiod marks a gateway endpoint with the gateway's cluster when it learnt the gateway from a
    # registry (a LoadBalancer address), with none when from meshNetworks: tell them by address
    via_gw = [e for e in eps if e.get("port") == GATEWAY_PORT and e.get("address") in gw_addrs]
    mine = [e for e in mine if e not in via_gw and not (e.get("port") == GATEWAY_PORT and not e.get("workload", "").strip(";"))]
    if mine:
        return result(FAIL, "%s's istiod sends %s's pod IPs (%s) across networks, not %s's gateway %s: they cannot be "
                      "reached from %s" % (src, dst, ", ".join("%s:%s" % (e["address"], e["port"]) for e in mine[:3]), dst,
                                           ", ".join("%s:%d" % (g, GATEWAY_PORT) for g in sorted(gw_addrs)) or "(none known)",
                                           a.get("network")),
                      endpoints=["%s:%s" % (e["address"], e["port"]) for e in eps])
    if not via_gw:
        other = [e for e in eps if e.get("port") == GATEWAY_PORT and not e.get("workload", "").strip(";")]
        if other:
            return result(FAIL, "%s's istiod sends network %s's traffic to %s, not %s's gateway %s" % (
                src, b.get("network"), ", ".join("%s:%s" % (e["address"], e["port"]) for e in other),
                dst, ", ".join(sorted(gw_addrs)) or "(unknown)"), endpoints=["%s:%s" % (e["address"], e["port"]) for e in eps])
        return result(FAIL, "%s's istiod sends no endpoint in %s (neither pod IPs nor its gateway)" % (src, dst),
                      endpoints=["%s:%s" % (e["address"], e["port"]) for e in eps])
    want_sni = sni(port, host)
    if not c.get("mtls") or c.get("sni") != want_sni:
        return result(FAIL, "the cluster does not use mTLS with SNI %s (mtls %s, sni %s): %s's gateway cannot route it"
                      % (want_sni, c.get("mtls"), c.get("sni"), dst), sni=c.get("sni"))
    if any(e.get("tls_mode") != TLS_MODE for e in via_gw):
        return result(FAIL, "the gateway endpoint is not marked for mTLS (tlsMode istio)")
    return result(PASS, "%s's sidecars go through %s's gateway %s with mTLS, SNI %s" % (
        src, dst, ", ".join("%s:%s" % (e["address"], e["port"]) for e in via_gw), want_sni),
        endpoints=["%s:%s" % (e["address"], e["port"]) for e in via_gw], sni=want_sni)


def gateway_check(a, b, host, port, gw_snap):
    """B's east-west gateway has a filter chain for the SNI A's sidecars send, whose
    backend has B's endpoints."""
    src, dst = a["name"], b["name"]
    want = sni(port, host)
    cid = "%s->%s/gateway-sni/%s" % (src, dst, want)

    def result(status, reason, **details):
        return check("gateway_sni", cid, pair(src, dst), status, "%s → %s: %s" % (src, dst, reason), source=src, target=dst,
                     service="%s:%s" % (host, port), details=details)

    if gw_snap is None or gw_snap.get("error"):
        return result(NOT_RUN, "not run: %s's east-west gateway configuration could not be read%s" % (
            dst, ": " + gw_snap["error"] if gw_snap and gw_snap.get("error") else ""))
    chain = None
    for lst in (gw_snap.get("listeners") or {}).values():
        if lst.get("port") != GATEWAY_PORT:
            continue
        for ch in lst.get("chains") or []:
            if want in (ch.get("server_names") or []):
                chain = ch
    if chain is None:
        return result(FAIL, "%s's east-west gateway has no filter chain for SNI %s: %s's istiod does not know %s on port "
                      "%s, or the cross-network Gateway's hosts do not cover it" % (dst, want, dst, host, port))
    c, eps = _endpoints(gw_snap, chain.get("tcp_cluster") or "")
    local = [e for e in eps or [] if e.get("cluster") in (dst, None) and e.get("port") != GATEWAY_PORT]
    if not local:
        return result(FAIL, "%s's east-west gateway routes SNI %s to %s, which has no endpoint in %s" % (
            dst, want, chain.get("tcp_cluster"), dst))
    return result(PASS, "%s's east-west gateway routes SNI %s to %d endpoint(s) of %s" % (dst, want, len(local), dst),
                  backend=chain.get("tcp_cluster"))


def route_checks(a, host, port, snap):
    """The routes A's sidecars get for ``host``:``port`` when they split traffic (a VirtualService):
    the weights as the sidecar sees them; a destination without endpoints fails."""
    src = a["name"]
    if snap.get("error"):
        return []
    vh = None
    for rc in (snap.get("routes") or {}).values():
        for v in rc.get("virtual_hosts") or []:
            if host in (v.get("domains") or []) and (rc.get("name") in (str(port), "%s:%s" % (host, port))):
                vh = v
    if vh is None:
        return []
    default = [[outbound(port, host), 100]]
    routes = [r for r in vh.get("routes") or [] if r.get("clusters")]
    if all(r["clusters"] == default for r in routes):
        return []
    out = []
    for i, r in enumerate(routes):
        total = sum(w for _c, w in r["clusters"]) or 1
        split = ", ".join("%s %d%%" % (cl.split("|")[2] or "all", round(100.0 * w / total)) for cl, w in r["clusters"])
        empty = [cl for cl, w in r["clusters"] if w > 0 and not (_endpoints(snap, cl)[1] or [])]
        match = "headers %s" % ", ".join(r["headers"]) if r.get("headers") else "prefix %s" % (r.get("prefix") or "/")
        cid = "%s/route/%s:%s/%d" % (src, host, port, i)
        if empty:
            out.append(check("route", cid, src, FAIL, "%s: %s:%s (%s) sends %s, but %s has no endpoints: that share of "
                             "requests fails" % (src, _short(host), port, match, split, ", ".join(empty)), source=src,
                             service="%s:%s" % (host, port), details={"clusters": r["clusters"], "empty": empty}))
        else:
            out.append(check("route", cid, src, PASS, "%s: %s:%s (%s) as the sidecar sees it: %s" % (
                src, _short(host), port, match, split), source=src, service="%s:%s" % (host, port),
                details={"clusters": r["clusters"]}))
    return out


def global_checks(a, entry, b, snap, gw_snap, gateways_of):
    """A `.global` ServiceEntry of A that B exports: A's sidecars reach B's gateway with mTLS
    and the SNI, and B's gateway routes that SNI to B's endpoints."""
    out = []
    for port in entry.get("ports") or []:
        out.append(global_service_check(a, entry, b, port, snap, gateways_of))
        out.append(gateway_check(a, b, entry["host"], port, gw_snap))
    return out


def global_service_check(a, entry, b, port, snap, gateways_of):
    src, dst, host = a["name"], b["name"], entry["host"]

    def result(status, reason, **details):
        return check("service", "%s->%s/global/%s:%s" % (src, dst, host, port), pair(src, dst), status,
                     "%s → %s: %s:%s: %s" % (src, dst, host, port, reason), source=src, target=dst,
                     service="%s:%s" % (host, port), details=details)

    if snap.get("error"):
        return result(NOT_RUN, "not run: %s" % snap["error"])
    c, eps = _endpoints(snap, outbound(port, host))
    gw_addrs = gateways_of(b.get("network")) | {entry.get("address")}
    via = [e for e in eps or [] if e.get("address") in gw_addrs and e.get("port") == GATEWAY_PORT]
    if c is None:
        return result(FAIL, "%s's istiod sends no cluster %s (the ServiceEntry %s is not visible to namespace %s)"
                      % (src, outbound(port, host), entry.get("name"), entry.get("namespace")))
    if not via:
        unlabelled = entry.get("network") and entry.get("network") != a.get("network") and not entry.get("mtls_label")
        why = (" the ServiceEntry's endpoint on network %s has no label security.istio.io/tlsMode: istio, so istiod "
               "drops it for clients of network %s" % (entry.get("network"), a.get("network"))) if unlabelled else ""
        return result(FAIL, "%s's sidecars get no endpoint at %s's gateway %s:%d;%s" % (
            src, dst, entry.get("address"), GATEWAY_PORT, why or " see the ServiceEntry's endpoints"),
            endpoints=["%s:%s" % (e["address"], e["port"]) for e in eps or []])
    if not c.get("mtls") or c.get("sni") != sni(port, host):
        return result(FAIL, "the cluster does not use mTLS with SNI %s (sni %s)" % (sni(port, host), c.get("sni")))
    if any(e.get("tls_mode") != TLS_MODE for e in via):
        # istiod keeps such an endpoint when it knows no gateway of that network for this registry
        where = ", ".join("%s:%s" % (e["address"], e["port"]) for e in via)
        return result(FAIL, "%s's sidecars get %s's gateway %s without mTLS: the ServiceEntry's endpoint has no label "
                      "security.istio.io/tlsMode: istio, so they would send plaintext, which the gateway's "
                      "AUTO_PASSTHROUGH port cannot route" % (src, dst, where))
    return result(PASS, "%s's sidecars reach %s's gateway %s with mTLS, SNI %s" % (
        src, dst, ", ".join("%s:%s" % (e["address"], e["port"]) for e in via), sni(port, host)),
        endpoints=["%s:%s" % (e["address"], e["port"]) for e in via], sni=sni(port, host))


# --- the whole mesh ---------------------------------------------------------------------------


def evaluate(facts, now, warn_days=30):
    """The verification result of the mesh ``facts`` (see verify_runner.gather)."""
    clusters = facts.get("clusters") or []
    by_name = dict((c["name"], c) for c in clusters)
    mesh_roots = facts.get("mesh_roots") or []
    checks = []

    def gateways_of(network):
        return {c["gateway_address"] for c in clusters if c.get("network") == network and c.get("gateway_address")}

    for c in clusters:
        checks.extend(cluster_checks(c, mesh_roots, now, warn_days, facts.get("mesh_roots_missing")))
    for a in clusters:
        for dst in a.get("discovers") or []:
            b = by_name.get(dst)
            if b is None:
                continue
            checks.extend(pair_checks(a, b, gateways_of(b.get("network"))))
            if a.get("api_error") or a.get("role") == "remote":
                continue
            for svc in b.get("services") or []:
                snap = (a.get("xds") or {}).get(svc["namespace"]) or {"error": a.get("xds_error") or "not read"}
                for port in svc.get("ports") or []:
                    checks.append(service_check(a, b, svc, port, snap, gateways_of))
                    if a.get("network") != b.get("network"):
                        checks.append(gateway_check(a, b, svc["host"], port, b.get("gateway_xds")))
        if a.get("api_error") or a.get("role") == "remote":
            continue
        for entry in a.get("global_entries") or []:
            b = by_name.get(entry.get("cluster"))
            if b is None or b["name"] == a["name"]:
                continue
            snap = (a.get("xds") or {}).get(entry["namespace"]) or {"error": a.get("xds_error") or "not read"}
            checks.extend(global_checks(a, entry, b, snap, b.get("gateway_xds"), gateways_of))
        seen = set()
        for ns, snap in sorted((a.get("xds") or {}).items()):
            for host, port in sorted(a.get("route_hosts", {}).get(ns) or []):
                if (host, port) not in seen:
                    seen.add((host, port))
                    checks.extend(route_checks(a, host, port, snap))
    for c in clusters:
        live = c.get("live") or {"status": NOT_RUN, "reason": "not run: no live probe was asked for"}
        checks.append(check("live_probe", "%s/live" % c["name"], c["name"], live["status"], live["reason"], source=c["name"]))
    return result_of(facts, checks)


def result_of(facts, checks):
    summary = dict((s, 0) for s in (PASS, FAIL, WARN, NOT_RUN))
    for c in checks:
        summary[c["status"]] = summary.get(c["status"], 0) + 1
    failed_clusters = {c["source"] for c in checks if c["status"] == FAIL and not c.get("target")}
    clusters = []
    for c in facts.get("clusters") or []:
        i = c.get("istiod") or {}
        clusters.append({"name": c["name"], "network": c.get("network"), "role": c.get("role") or "primary",
                         "istio_version": i.get("version"), "revision": i.get("revision"),
                         "gateway_address": c.get("gateway_address") or None,
                         "ok": c["name"] not in failed_clusters})
    return {"schema": SCHEMA, "mesh_id": facts.get("mesh_id"), "generated": facts.get("generated"),
            "ok": summary[FAIL] == 0, "clusters": clusters, "vms": facts.get("vms") or [], "checks": checks,
            "summary": summary}


def failures(result):
    return [c for c in result["checks"] if c["status"] == FAIL]
