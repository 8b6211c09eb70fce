# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""The report of a mesh verification: Markdown, JSON, a Graphviz picture, summary lines (pure, no I/O).

The input is the verifier's *result*::

    {"mesh_id", "ok", "generated",
     "clusters": [{"name", "network", "role", "istio_version", "revision", "gateway_address", "ok"}],
     "vms": [{"name", "cluster", "network", "address", "ok"}],
     "checks": [{"id", "kind", "subject", "source", "target", "service", "status", "reason", "details"}],
     "summary": {...}}

A check's ``status`` is pass, fail, warn or not_run.  A status this module does not know
is no pass: it is counted and listed with the warnings, under its own word.  Unknown
``kind`` values are listed after the known ones.  Missing keys are read as empty.

The counts and verdicts are computed from ``checks`` (what the report lists), not read
from ``summary``; the overall verdict is FAIL when a check failed or the result says
``ok: false``, WARN when a check warned, else PASS.

Every function is deterministic: the same result, whatever the order of its clusters,
VMs and checks, gives the same text.  Checks are ordered by subject (single clusters,
then pairs, by name), then by kind (the order of ``KIND_ORDER``), then by id.

The picture (``dot_source``) draws one box per network, holding its clusters, their
east-west gateways and its VMs.  Control-plane checks of an ordered pair of clusters
(remote secrets, RBAC, sync, ...) are one edge source -> target.  A data-plane check
(``DATA_PLANE_KINDS``) whose target is on another network is drawn as an edge from the
source to the *target's gateway*, the way that traffic goes: a red edge into a gateway
then says "traffic through this gateway fails", a red edge between clusters "the control
plane cannot read that cluster"; a pair can have both.  Within one network, data-plane
checks stay on the direct edge.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re

SCHEMA = "meshfed.istio/verify/v1"

PASS = "pass"
FAIL = "fail"
WARN = "warn"
NOT_RUN = "not_run"
STATUS_WORDS = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", NOT_RUN: "NOT RUN"}

# The order checks of one subject are listed in; kinds not listed come after, by name.
KIND_ORDER = ("istiod", "webhook", "trust", "remote_secret", "rbac", "sync", "network_gateway", "service",
              "gateway_sni", "route", "live_probe", "vm")
# Traffic checks: drawn through the target's east-west gateway when it is on another network.
DATA_PLANE_KINDS = ("service", "gateway_sni")
# Istio's east-west gateway port for cross-network mTLS (AUTO_PASSTHROUGH).
GATEWAY_PORT = 15443
# Edge labels: the first reason is cut to this many characters.
EDGE_REASON_MAX = 60
# Tooltips (shown on hover in the SVG) list every check of a node or edge, each reason cut to this.
TOOLTIP_REASON_MAX = 200
ARROW = "\u2192"
ELLIPSIS = "\u2026"
NO_REASON = "no reason given"

# Colours of the picture (Graphviz colour names).
GREEN = "forestgreen"
RED = "red3"
ORANGE = "darkorange"
GREY = "grey50"
FONT = "Helvetica"

_CONTROL_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
# Markdown: characters that can start inline markup (a backslash escape is valid before any of them).
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~&])")
# "_" opens or closes emphasis only next to something that is not a letter or digit.
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What would make a line a heading, a list item or a rule when it starts the line.
_MD_BLOCK_START = re.compile(r"^(?:([#+=-])|([0-9]+)([.)]))")
_NOT_RUN_PREFIX = re.compile(r"^not[ _-]run\s*[:\-]\s*", re.IGNORECASE)
_HAS_PORT = re.compile(r":[0-9]+$")


# --- reading the result ---------------------------------------------------------------

def _text(value):
    """``value`` as one str ('' for None), line ends as "\\n", control characters dropped (tabs as spaces)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    return _CONTROL_CHARS.sub("", text)


def _one_line(value):
    return " ".join(_text(value).split())


def _items(result, key):
    """The dicts of ``result[key]`` (non-dicts are skipped)."""
    value = result.get(key) if isinstance(result, dict) else None
    return [item for item in (value or ()) if isinstance(item, dict)]


def status_of(check):
    """The check's status, normalised: pass, fail, warn, not_run, or the unknown word as given (lower case)."""
    status = _one_line(check.get("status")).lower().replace("-", "_").replace(" ", "_")
    return status or "unknown"


def status_word(status):
    """PASS, FAIL, WARN, NOT RUN; an unknown status in upper case."""
    return STATUS_WORDS.get(status) or status.replace("_", " ").upper()


def _is_warning(status):
    """Warnings, and statuses this module does not know: neither a pass nor a failure."""
    return status not in (PASS, FAIL, NOT_RUN)


def _endpoints(check):
    """(source, target) of a check between two different parties, else (source or subject, '')."""
    source, target = _one_line(check.get("source")), _one_line(check.get("target"))
    if source and target and source != target:
        return source, target
    return source or _one_line(check.get("subject")), ""


def subject_of(check):
    """What a check is about, for people: "cluster1 → cluster2" for a pair, else its subject."""
    source, target = _endpoints(check)
    if target:
        return "%s %s %s" % (source, ARROW, target)
    subject = _one_line(check.get("subject")).replace(" -> ", " %s " % ARROW)
    return subject or source or _one_line(check.get("id")) or "(no subject)"


def check_name(check):
    """The check's id without its leading subject ("cluster1->cluster2/remote-secret/list" -> "remote-secret/list")."""
    check_id = _one_line(check.get("id"))
    if not check_id:
        return _one_line(check.get("kind")) or "(unnamed check)"
    source, target = _endpoints(check)
    subject = _one_line(check.get("subject"))
    prefixes = [subject, subject.replace(" ", ""), source]
    if target:
        prefixes += ["%s->%s" % (source, target), "%s%s%s" % (source, ARROW, target)]
    for prefix in prefixes:
        if prefix and check_id.startswith(prefix + "/") and len(check_id) > len(prefix) + 1:
            return check_id[len(prefix) + 1:]
    return check_id


def reason_of(check):
    """The check's reason in plain words: without a leading "<subject>:" (the report names the
    subject already) nor, for a check not run, a leading "not run:"."""
    reason = _text(check.get("reason")).strip()
    source, target = _endpoints(check)
    subject = _one_line(check.get("subject"))
    prefixes = [subject_of(check), subject]
    if target:
        prefixes += ["%s -> %s" % (source, target), "%s->%s" % (source, target)]
    else:
        prefixes.append(source)
    for prefix in prefixes:
        if prefix and reason.startswith(prefix + ":"):
            reason = reason[len(prefix) + 1:].strip()
            break
    if status_of(check) == NOT_RUN:
        reason = _NOT_RUN_PREFIX.sub("", reason)
    return reason or NO_REASON


def _kind_rank(kind):
    return (KIND_ORDER.index(kind), "") if kind in KIND_ORDER else (len(KIND_ORDER), kind)


def _subject_key(check):
    source, target = _endpoints(check)
    return (1 if target else 0, source, target, subject_of(check))


def _check_key(check):
    return (_subject_key(check), _kind_rank(_one_line(check.get("kind"))), _one_line(check.get("id")),
            status_of(check), reason_of(check))


def sorted_checks(result):
    """The result's checks in report order (subject, kind, id)."""
    return sorted(_items(result, "checks"), key=_check_key)


def count_checks(result):
    """{"total", "pass", "fail", "warn", "not_run"} of the result's checks (unknown statuses count as warn)."""
    counts = {"total": 0, PASS: 0, FAIL: 0, WARN: 0, NOT_RUN: 0}
    for check in _items(result, "checks"):
        status = status_of(check)
        counts["total"] += 1
        counts[WARN if _is_warning(status) else status] += 1
    return counts


def verdict(result):
    """FAIL (a check failed, or the result says ok: false), WARN (a check warned) or PASS."""
    counts = count_checks(result)
    if counts[FAIL] or (isinstance(result, dict) and result.get("ok") is False):
        return "FAIL"
    if counts[WARN]:
        return "WARN"
    return "PASS"


def _ok_word(item):
    ok = item.get("ok")
    if ok is True:
        return "PASS"
    if ok is False:
        return "FAIL"
    return "UNKNOWN"


def _mesh_id(result):
    return _one_line(result.get("mesh_id") if isinstance(result, dict) else None) or "(no mesh id)"


def _plural(n, word, plural=None):
    return "%d %s" % (n, word if n == 1 else (plural or word + "s"))


def _counts_text(counts):
    return "%s, %d passed, %d failed, %s, %d not run" % (
        _plural(counts["total"], "check"), counts[PASS], counts[FAIL], _plural(counts[WARN], "warning"),
        counts[NOT_RUN])


def _by_name(items):
    return sorted(items, key=lambda item: (_one_line(item.get("name")), _one_line(item.get("network"))))


def _istio_text(cluster):
    version, revision = _one_line(cluster.get("istio_version")), _one_line(cluster.get("revision"))
    if not version:
        return "not installed" if not revision else "unknown (%s)" % revision
    return "%s (%s)" % (version, revision) if revision else version


def gateway_endpoint(address):
    """"host:15443" for a gateway address ("[v6]:15443"; an address with a port is kept); '' for none."""
    address = _one_line(address)
    if not address:
        return ""
    try:
        if ipaddress.ip_address(address).version == 6:
            return "[%s]:%d" % (address, GATEWAY_PORT)
    except ValueError:
        if _HAS_PORT.search(address) and address.count(":") == 1:
            return address
    return "%s:%d" % (address, GATEWAY_PORT)


# --- summary lines ----------------------------------------------------------------------

def summary_lines(result):
    """Lines for the play's output: the counts, then one "FAIL <subject>: <reason>" per failed check,
    then one "WARN <subject>: <reason>" per warning."""
    lines = ["mesh %s: %s" % (_mesh_id(result), _counts_text(count_checks(result)))]
    checks = sorted_checks(result)
    for check in checks:
        if status_of(check) == FAIL:
            lines.append("FAIL %s: %s" % (subject_of(check), _one_line(reason_of(check))))
    for check in checks:
        if _is_warning(status_of(check)):
            lines.append("%s %s: %s" % (status_word(status_of(check)), subject_of(check), _one_line(reason_of(check))))
    return lines


# --- Markdown ---------------------------------------------------------------------------

def md_text(value):
    """Text for a Markdown line or table cell: markup characters and pipes escaped, line breaks as <br>."""
    text = _text(value).strip()
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MD_UNDERSCORE.sub(r"\\_", text)
    return "<br>".join(line.strip() for line in text.split("\n"))


def md_line_start(value):
    """``md_text`` for what starts a line after "- ": a leading "#", "-", "+", "=" or "1." escaped too."""
    text = md_text(value)
    match = _MD_BLOCK_START.match(text)
    if match and match.group(1):
        return "\\" + text
    if match:
        return "%s\\%s" % (match.group(2), text[len(match.group(2)):])
    return text


def md_code(value, in_table=False):
    """A code span (a fence longer than any backtick run inside); pipes escaped in a table cell."""
    text = _one_line(value)
    runs = [len(run) for run in re.findall("`+", text)]
    fence = "`" * (max(runs) + 1 if runs else 1)
    if text.startswith("`") or text.endswith("`"):
        text = " %s " % text
    if in_table:
        text = text.replace("|", "\\|")
    return "%s%s%s" % (fence, text, fence)


def _md_table(header, rows):
    lines = ["| %s |" % " | ".join(header), "|%s" % ("---|" * len(header))]
    lines.extend("| %s |" % " | ".join(row) for row in rows)
    return lines


def _md_check_item(check):
    status = status_of(check)
    unknown = "" if status in STATUS_WORDS else " (%s)" % md_text(status_word(status))
    return "- **%s**, %s%s: %s" % (md_text(subject_of(check)), md_code(check_name(check)), unknown,
                                   md_text(reason_of(check)))


def _md_section(title, checks, item, empty="None."):
    lines = ["", "## %s (%d)" % (title, len(checks)), ""]
    lines.extend([item(check) for check in checks] or [empty])
    return lines


def _md_not_run(checks):
    """The checks not run, grouped by their reason (one line per reason)."""
    reasons = {}
    for check in checks:
        reasons.setdefault(reason_of(check), []).append(check)
    lines = ["", "## Not run (%d)" % len(checks), ""]
    for reason in sorted(reasons):
        lines.append("- %s: %s" % (md_line_start(reason), ", ".join(
            "%s %s" % (md_text(subject_of(check)), md_code(check_name(check))) for check in reasons[reason])))
    return lines + ([] if checks else ["None."])


def markdown(result):
    """The report as Markdown: verdict, clusters (and VMs), failures, warnings, checks not run, then
    every check grouped by subject."""
    checks = sorted_checks(result)
    counts = count_checks(result)
    lines = ["# Mesh %s: %s" % (md_text(_mesh_id(result)), verdict(result)), ""]
    generated = _one_line(result.get("generated") if isinstance(result, dict) else None)
    lines.append("%s%s." % ("Generated %s. " % md_text(generated) if generated else "", _counts_text(counts)))

    lines += ["", "## Clusters", ""]
    clusters = _by_name(_items(result, "clusters"))
    if clusters:
        lines += _md_table(
            ["Cluster", "Network", "Role", "Istio (revision)", "East-west gateway", "Verdict"],
            [[md_text(c.get("name")), md_text(c.get("network")), md_text(c.get("role")), md_text(_istio_text(c)),
              md_text(gateway_endpoint(c.get("gateway_address")) or "no address"), _ok_word(c)] for c in clusters])
    else:
        lines.append("None.")
    vms = _by_name(_items(result, "vms"))
    if vms:
        lines += ["", "## VMs", ""]
        lines += _md_table(
            ["VM", "Network", "Joins cluster", "Address", "Verdict"],
            [[md_text(v.get("name")), md_text(v.get("network")), md_text(v.get("cluster")), md_text(v.get("address")),
              _ok_word(v)] for v in vms])

    lines += _md_section("Failures", [c for c in checks if status_of(c) == FAIL], _md_check_item)
    lines += _md_section("Warnings", [c for c in checks if _is_warning(status_of(c))], _md_check_item)
    lines += _md_not_run([c for c in checks if status_of(c) == NOT_RUN])

    lines += ["", "## All checks"]
    if not checks:
        lines += ["", "None."]
    groups = {}
    for check in checks:
        groups.setdefault(subject_of(check), []).append(check)
    for subject in sorted(groups, key=lambda s: _subject_key(groups[s][0])):
        lines += ["", "### %s" % md_text(subject), ""]
        lines += _md_table(["Status", "Check", "Reason"],
                           [[status_word(status_of(c)), md_code(check_name(c), in_table=True), md_text(reason_of(c))]
                            for c in groups[subject]])
    return "\n".join(lines) + "\n"


# --- JSON -------------------------------------------------------------------------------

def _plain(value):
    """``value`` as JSON data: keys as str, tuples as lists, sets sorted, bytes decoded, others as str."""
    if isinstance(value, dict):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN nor Infinity
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


def json_document(result):
    """The result as JSON (sorted keys, indent 2, UTF-8 text) with "schema": SCHEMA; ``result`` is not changed.

    The lists are sorted too (clusters and VMs by name, checks in report order), so that a verifier
    that gathers its checks in another order does not change the document."""
    document = _plain(result if isinstance(result, dict) else {})
    for key, items in (("clusters", _by_name(_items(result, "clusters"))), ("vms", _by_name(_items(result, "vms"))),
                       ("checks", sorted_checks(result))):
        if isinstance(document.get(key), list):
            document[key] = _plain(items)
    document["schema"] = SCHEMA
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# --- Graphviz DOT -------------------------------------------------------------------------

def dot_quote(value):
    """A DOT quoted string: backslashes and quotes escaped, line breaks as \\n (centred lines)."""
    text = _text(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"%s"' % text


def _dot_attrs(attrs):
    return "[%s]" % ", ".join("%s=%s" % (key, dot_quote(value)) for key, value in attrs)


def _short(text, limit=EDGE_REASON_MAX):
    text = _one_line(text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + ELLIPSIS


def edge_style(checks):
    """(colour, style, label) of an edge drawn for these checks (in report order):
    red with the first failure's reason (and "+N more") when one failed; else orange likewise for
    warnings; grey dashed when none was run; else green with the number passed (and not run)."""
    if not checks:
        return "black", "dashed", "no checks"
    statuses = [status_of(c) for c in checks]
    fails = [c for c, s in zip(checks, statuses) if s == FAIL]
    warns = [c for c, s in zip(checks, statuses) if _is_warning(s)]
    not_run = statuses.count(NOT_RUN)
    for colour, bad in ((RED, fails), (ORANGE, warns)):
        if bad:
            label = _short(reason_of(bad[0]))
            if len(bad) > 1:
                label += "\n+%d more" % (len(bad) - 1)
            return colour, "solid", label
    if not_run == len(checks):
        return GREY, "dashed", _short("not run: %s" % reason_of(checks[0]))
    label = "%d passed" % statuses.count(PASS)
    if not_run:
        label += ", %d not run" % not_run
    return GREEN, "solid", label


def _ok_colour(item):
    return {True: GREEN, False: RED}.get(item.get("ok"), "black")


def _check_lines(checks):
    return ["%s %s: %s" % (status_word(status_of(c)), check_name(c), _short(reason_of(c), TOOLTIP_REASON_MAX)) for c in checks]


# Node kinds: an edge is written from the lower tier to the higher (dot ranks the tail above the
# head), with dir=back when it goes the other way; edges between clusters do not rank at all, so
# the clusters of a network stay side by side above their gateways and VMs.
_TIERS = {"cluster": 0, "unknown": 0, "gateway": 1, "vm": 1}


def _tier(node_id):
    return _TIERS.get(node_id.split(":", 1)[0], 2)


class _Picture:
    """What the picture draws: node ids, networks, gateways, and the checks of each edge."""

    def __init__(self, result):
        self.clusters = _by_name(_items(result, "clusters"))
        self.vms = _by_name(_items(result, "vms"))
        self.checks = sorted_checks(result)
        self.network_of = {}
        self.ids = {}
        for vm in self.vms:
            name = _one_line(vm.get("name"))
            self.ids[name] = "vm:%s" % name
            self.network_of[name] = _one_line(vm.get("network"))
        addresses = {}
        for cluster in self.clusters:  # a cluster wins over a VM of the same name
            name = _one_line(cluster.get("name"))
            self.ids[name] = "cluster:%s" % name
            self.network_of[name] = _one_line(cluster.get("network"))
            addresses[name] = _one_line(cluster.get("gateway_address"))
        self.networks = sorted(set(self.network_of.values()))
        gateway_checked = set(_endpoints(c)[0] for c in self.checks
                              if _one_line(c.get("kind")) in ("network_gateway", "gateway_sni"))
        # A cluster's gateway is drawn when it has an address, is checked, or the mesh has more than
        # one network (then every cluster needs one); a one-network mesh without gateways shows none.
        self.gateways = set(name for name in addresses
                            if addresses[name] or name in gateway_checked or len(self.networks) > 1)
        self.unknown = []
        self.own_checks = {}
        self.edges = {}
        for check in self.checks:
            self._add(check)
        for vm in self.vms:  # every VM is drawn joining its cluster, checked or not
            cluster = _one_line(vm.get("cluster"))
            if cluster:
                self.edges.setdefault((self.node(_one_line(vm.get("name"))), self.node(cluster)), [])

    def node(self, name):
        """The node id of a cluster or VM; a name the result does not list gets a node of its own."""
        if name not in self.ids:
            self.ids[name] = "unknown:%s" % name
            self.unknown.append(name)
        return self.ids[name]

    def _add(self, check):
        source, target = _endpoints(check)
        if not target:
            self.own_checks.setdefault(self.node(source), []).append(check)
            return
        to_node = self.node(target)
        crosses = (target in self.gateways and source in self.network_of
                   and self.network_of[source] != self.network_of[target])
        if _one_line(check.get("kind")) in DATA_PLANE_KINDS and crosses:
            to_node = "gateway:%s" % target
        self.edges.setdefault((self.node(source), to_node), []).append(check)

    def node_tooltip(self, node_id):
        return "\n".join([node_id.split(":", 1)[1]] + _check_lines(self.own_checks.get(node_id, [])))


def _cluster_lines(cluster, picture):
    name = _one_line(cluster.get("name"))
    node_id = picture.ids[name]
    role = _one_line(cluster.get("role")) or "role unknown"
    label = "%s\nIstio %s\n%s" % (name, _istio_text(cluster), role)
    colour = _ok_colour(cluster)
    lines = ["    %s %s;" % (dot_quote(node_id), _dot_attrs(
        [("label", label), ("color", colour), ("penwidth", "2" if colour == RED else "1"),
         ("tooltip", picture.node_tooltip(node_id))]))]
    if name in picture.gateways:
        endpoint = gateway_endpoint(cluster.get("gateway_address"))
        gateway = dot_quote("gateway:%s" % name)
        if endpoint:
            attrs = [("label", "gateway %s" % endpoint), ("shape", "hexagon")]
        else:
            attrs = [("label", "gateway: no address"), ("shape", "hexagon"), ("color", RED), ("fontcolor", RED),
                     ("penwidth", "2")]
        lines.append("    %s %s;" % (gateway, _dot_attrs(attrs + [("tooltip", "east-west gateway of %s" % name)])))
        lines.append("    %s -> %s %s;" % (dot_quote(node_id), gateway,
                                           _dot_attrs([("arrowhead", "none"), ("color", "grey40")])))
    return lines


def _vm_line(vm, picture):
    name = _one_line(vm.get("name"))
    address = _one_line(vm.get("address"))
    label = "%s\nVM%s" % (name, " " + address if address else "")
    return "    %s %s;" % (dot_quote(picture.ids[name]), _dot_attrs(
        [("label", label), ("shape", "ellipse"), ("color", _ok_colour(vm)),
         ("tooltip", picture.node_tooltip(picture.ids[name]))]))


def _edge_line(from_node, to_node, checks):
    """One edge from_node -> to_node, written from the lower tier (see _TIERS)."""
    colour, style, label = edge_style(checks)
    if not checks:
        label = "joins"  # a VM and its cluster
    direction = "%s %s %s" % (from_node.split(":", 1)[1], ARROW, to_node.split(":", 1)[1])
    if to_node.startswith("gateway:"):
        direction += "'s gateway"
    attrs = [("label", label), ("color", colour), ("fontcolor", colour), ("style", style),
             ("tooltip", "\n".join([direction] + _check_lines(checks)))]
    if colour == RED:
        attrs.append(("penwidth", "2"))
    if _tier(from_node) == _tier(to_node) == 0:
        attrs.append(("constraint", "false"))
    tail, head = from_node, to_node
    if (_tier(to_node), to_node) < (_tier(from_node), from_node):
        tail, head = to_node, from_node
        attrs.append(("dir", "back"))
    return (tail, head, from_node), "  %s -> %s %s;" % (dot_quote(tail), dot_quote(head), _dot_attrs(attrs))


def dot_source(result):
    """The mesh as Graphviz DOT text (see the module's description of the picture)."""
    picture = _Picture(result)
    title = "mesh %s: %s" % (_mesh_id(result), verdict(result))
    generated = _one_line(result.get("generated") if isinstance(result, dict) else None)
    if generated:
        title += "\n%s" % generated
    lines = [
        "digraph mesh {",
        "  graph %s;" % _dot_attrs([("label", title), ("labelloc", "t"), ("fontname", FONT), ("nodesep", "0.6"),
                                    ("ranksep", "1.0")]),
        "  node %s;" % _dot_attrs([("shape", "box"), ("style", "rounded"), ("fontname", FONT)]),
        "  edge %s;" % _dot_attrs([("fontname", FONT), ("fontsize", "10")]),
    ]
    for index, network in enumerate(picture.networks):
        lines.append("  subgraph %s {" % dot_quote("cluster_network_%d" % index))
        lines.append("    graph %s;" % _dot_attrs([("label", network or "(no network)"), ("style", "rounded,dashed"),
                                                   ("color", "grey40")]))
        for cluster in picture.clusters:
            if _one_line(cluster.get("network")) == network:
                lines += _cluster_lines(cluster, picture)
        lines += [_vm_line(vm, picture) for vm in picture.vms if _one_line(vm.get("network")) == network]
        lines.append("  }")
    for name in sorted(picture.unknown):
        node_id = picture.ids[name]
        lines.append("  %s %s;" % (dot_quote(node_id), _dot_attrs(
            [("label", "%s\n(not in the result)" % name), ("style", "rounded,dashed"),
             ("tooltip", picture.node_tooltip(node_id))])))
    edges = sorted(_edge_line(from_node, to_node, checks) for (from_node, to_node), checks in picture.edges.items())
    lines += [line for _key, line in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"
