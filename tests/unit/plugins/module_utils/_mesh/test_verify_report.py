# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verifier's report: Markdown, JSON, DOT and summary lines from a result (pure)."""

from __future__ import annotations

import copy
import json
import random
import re

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify_report as vr

SVC = "helloworld.sample.svc.cluster.local:5000"


# --- building results -----------------------------------------------------------------

def cluster(name, network="network1", gateway="127.0.0.11", ok=True, role="primary", version="1.31-dev",
            revision="default"):
    return {"name": name, "network": network, "role": role, "istio_version": version, "revision": revision,
            "gateway_address": gateway, "ok": ok}


def check(source, name, kind, status="pass", reason="fine", target=None, service=None, details=None):
    prefix = "%s->%s" % (source, target) if target else source
    subject = "%s -> %s" % (source, target) if target else source
    return {"id": "%s/%s" % (prefix, name), "kind": kind, "subject": subject, "source": source, "target": target,
            "service": service, "status": status, "reason": reason, "details": details or {}}


def mesh(clusters, checks, vms=None, ok=None, mesh_id="mesh1"):
    failed = any(c["status"] == "fail" for c in checks)
    return {"mesh_id": mesh_id, "ok": (not failed) if ok is None else ok, "generated": "2026-11-29T18:00:00Z",
            "clusters": clusters, "vms": vms or [], "checks": checks, "summary": {}}


def two_clusters(**kw):
    return [cluster("cluster1", "network1", "127.0.0.11", **kw), cluster("cluster2", "network2", "127.0.0.12", **kw)]


def pair_checks(source, target, status="pass", reason="fine"):
    return [check(source, "remote-secret/list", "remote_secret", status, reason, target=target),
            check(source, "sync/endpoints", "sync", "pass", "synced", target=target)]


def healthy():
    checks = []
    for name in ("cluster1", "cluster2"):
        checks.append(check(name, "istiod/ready", "istiod", reason="istiod 1.31-dev (revision default) is Ready"))
    checks += pair_checks("cluster1", "cluster2") + pair_checks("cluster2", "cluster1")
    return mesh(two_clusters(), checks)


def failing_link():
    result = healthy()
    result["checks"][2] = check("cluster1", "remote-secret/list", "remote_secret", "fail",
                                "cluster1 \u2192 cluster2: remote secret token cannot list services (403)",
                                target="cluster2", details={"http_status": 403})
    result["ok"] = False
    result["clusters"][0]["ok"] = False
    return result


# --- reading DOT back (enough of the language for what dot_source writes) ----------------

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_EDGE = re.compile(r'^\s*%s -> %s \[(.*)\];$' % (_QUOTED, _QUOTED))
_NODE = re.compile(r'^\s*%s \[(.*)\];$' % _QUOTED)
_ATTR = re.compile(r'(\w+)=%s' % _QUOTED)


def unquote(text):
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def attrs_of(text):
    return dict((key, unquote(value)) for key, value in _ATTR.findall(text))


def dot_edges(dot):
    """[(from, to, attrs)] in the direction drawn (dir=back swapped)."""
    out = []
    for line in dot.splitlines():
        m = _EDGE.match(line)
        if m:
            tail, head, attrs = unquote(m.group(1)), unquote(m.group(2)), attrs_of(m.group(3))
            out.append((head, tail, attrs) if attrs.get("dir") == "back" else (tail, head, attrs))
    return out


def dot_edge(dot, source, target):
    found = [attrs for tail, head, attrs in dot_edges(dot) if (tail, head) == (source, target)]
    assert len(found) == 1, (source, target, dot)
    return found[0]


def dot_nodes(dot):
    return dict((unquote(m.group(1)), attrs_of(m.group(2))) for m in map(_NODE.match, dot.splitlines()) if m)


def dot_networks(dot):
    """{network label: [node ids declared in its subgraph]}."""
    networks, current = {}, None
    for line in dot.splitlines():
        if line.startswith("  subgraph "):
            current = []
        elif current is not None and line.startswith("    graph "):
            networks[attrs_of(line)["label"]] = current
        elif current is not None and line == "  }":
            current = None
        elif current is not None and _NODE.match(line):
            current.append(unquote(_NODE.match(line).group(1)))
    return networks


# --- reading Markdown tables back -----------------------------------------------------------

def md_cells(row):
    """The cells of a GFM table row: split on pipes that are not backslash-escaped."""
    cells, cell, i = [], "", 1
    assert row.startswith("| ") and row.endswith(" |"), row
    body = row[1:-1]
    while i <= len(body):
        ch = body[i - 1]
        if ch == "\\" and i < len(body):
            cell += body[i - 1:i + 1]
            i += 2
            continue
        if ch == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
        i += 1
    cells.append(cell.strip())
    return cells


def md_tables(text):
    """[(header cells, [row cells])] of every table."""
    tables, lines = [], text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header, rows = md_cells(line), []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(md_cells(row))
            tables.append((header, rows))
    return tables


def md_section(text, title):
    """The lines of the '## title' section (up to the next '## ')."""
    lines = text.split("\n")
    start = [i for i, line in enumerate(lines) if line.startswith("## %s" % title)]
    assert len(start) == 1, title
    body = []
    for line in lines[start[0] + 1:]:
        if line.startswith("## "):
            break
        body.append(line)
    return [line for line in body if line]


# --- status, subject, names, reasons ---------------------------------------------------------

@pytest.mark.parametrize("status, normal, word", [
    ("pass", "pass", "PASS"), ("FAIL", "fail", "FAIL"), ("warn", "warn", "WARN"), ("not_run", "not_run", "NOT RUN"),
    ("not run", "not_run", "NOT RUN"), ("not-run", "not_run", "NOT RUN"), ("skipped", "skipped", "SKIPPED"),
    (None, "unknown", "UNKNOWN"), ("", "unknown", "UNKNOWN"),
])
def test_statuses_are_words(status, normal, word):
    assert vr.status_of({"status": status}) == normal
    assert vr.status_word(normal) == word


def test_subject_names_and_reasons():
    c = check("cluster1", "remote-secret/list", "remote_secret", "fail",
              "cluster1 \u2192 cluster2: token cannot list services (403)", target="cluster2")
    assert vr.subject_of(c) == "cluster1 \u2192 cluster2"
    assert vr.check_name(c) == "remote-secret/list"
    assert vr.reason_of(c) == "token cannot list services (403)"
    c["reason"] = "cluster1 -> cluster2: token expired"
    assert vr.reason_of(c) == "token expired"
    single = check("cluster1", "live/curl", "live_probe", "not_run", "cluster1: not run: simulated pods")
    assert vr.subject_of(single) == "cluster1"
    assert vr.check_name(single) == "live/curl"
    assert vr.reason_of(single) == "simulated pods"
    # a reason that merely mentions the subject later keeps it; an empty one says so
    assert vr.reason_of(check("c1", "x", "istiod", reason="istiod of c1: down")) == "istiod of c1: down"
    assert vr.reason_of(check("c1", "x", "istiod", reason="")) == vr.NO_REASON
    # an id without the subject in front is kept whole; no id: the kind
    assert vr.check_name({"id": "global/thing", "source": "c1", "kind": "x"}) == "global/thing"
    assert vr.check_name({"kind": "route"}) == "route"
    assert vr.subject_of({"id": "lonely"}) == "lonely"
    assert vr.subject_of({}) == "(no subject)"


def test_a_check_from_a_cluster_to_itself_is_about_that_cluster():
    c = check("cluster1", "self", "sync", target="cluster1")
    assert vr.subject_of(c) == "cluster1 -> cluster1".replace("->", "\u2192")
    dot = vr.dot_source(mesh([cluster("cluster1")], [c]))
    assert dot_edges(dot) == [("cluster:cluster1", "gateway:cluster1", {"arrowhead": "none", "color": "grey40"})]


@pytest.mark.parametrize("address, endpoint", [
    ("127.0.0.11", "127.0.0.11:15443"), ("fd00::1", "[fd00::1]:15443"), ("gw.example.com", "gw.example.com:15443"),
    ("10.0.0.1:15443", "10.0.0.1:15443"), ("", ""), (None, ""),
])
def test_gateway_endpoint(address, endpoint):
    assert vr.gateway_endpoint(address) == endpoint


# --- summary lines -------------------------------------------------------------------------

def test_summary_of_a_healthy_mesh():
    assert vr.summary_lines(healthy()) == ["mesh mesh1: 6 checks, 6 passed, 0 failed, 0 warnings, 0 not run"]
    assert vr.verdict(healthy()) == "PASS"


def test_summary_lists_every_failure_then_every_warning():
    result = failing_link()
    result["checks"].append(check("cluster2", "webhook/ca", "webhook", "fail", "webhook CA bundle\nis stale"))
    result["checks"].append(check("cluster2", "live/curl", "live_probe", "not_run", "not run: simulated pods"))
    result["checks"].append(check("cluster1", "gateway/replicas", "network_gateway", "warn", "one replica"))
    assert vr.summary_lines(result) == [
        "mesh mesh1: 9 checks, 5 passed, 2 failed, 1 warning, 1 not run",
        "FAIL cluster2: webhook CA bundle is stale",
        "FAIL cluster1 \u2192 cluster2: remote secret token cannot list services (403)",
        "WARN cluster1: one replica",
    ]


def test_counts_come_from_the_checks_not_the_summary():
    result = failing_link()
    result["summary"] = {"pass": 30, "fail": 0, "warn": 0, "not_run": 1}
    assert vr.count_checks(result) == {"total": 6, "pass": 5, "fail": 1, "warn": 0, "not_run": 0}


def test_ok_false_without_a_failed_check_is_still_fail():
    result = healthy()
    result["ok"] = False
    assert vr.verdict(result) == "FAIL"
    assert vr.markdown(result).startswith("# Mesh mesh1: FAIL\n")


def test_an_unknown_status_counts_as_a_warning():
    result = healthy()
    result["checks"].append(check("cluster1", "odd", "istiod", "skipped", "something new"))
    assert vr.count_checks(result)["warn"] == 1
    assert vr.verdict(result) == "WARN"
    assert md_section(vr.markdown(result), "Warnings") == [
        "- **cluster1**, `odd` (SKIPPED): something new"]


def test_empty_result():
    for result in ({}, None, {"checks": None, "clusters": None, "vms": None}):
        assert vr.summary_lines(result) == ["mesh (no mesh id): 0 checks, 0 passed, 0 failed, 0 warnings, 0 not run"]
        text = vr.markdown(result)
        assert text.startswith("# Mesh (no mesh id): PASS\n")
        assert md_section(text, "Clusters") == ["None."]
        assert md_section(text, "All checks") == ["None."]
        assert dot_edges(vr.dot_source(result)) == []
        assert json.loads(vr.json_document(result)) == dict(result or {}, schema=vr.SCHEMA)


# --- Markdown --------------------------------------------------------------------------------

def test_markdown_of_a_healthy_mesh():
    text = vr.markdown(healthy())
    assert text.startswith("# Mesh mesh1: PASS\n\nGenerated 2026-11-29T18:00:00Z. 6 checks, 6 passed, 0 failed, "
                           "0 warnings, 0 not run.\n")
    tables = md_tables(text)
    assert tables[0] == (
        ["Cluster", "Network", "Role", "Istio (revision)", "East-west gateway", "Verdict"],
        [["cluster1", "network1", "primary", "1.31-dev (default)", "127.0.0.11:15443", "PASS"],
         ["cluster2", "network2", "primary", "1.31-dev (default)", "127.0.0.12:15443", "PASS"]])
    assert md_section(text, "Failures") == ["None."]
    assert md_section(text, "Warnings") == ["None."]
    assert md_section(text, "Not run") == ["None."]
    assert "## VMs" not in text
    # every check, grouped by subject: clusters first, then pairs
    headings = [line for line in text.split("\n") if line.startswith("### ")]
    assert headings == ["### cluster1", "### cluster2", "### cluster1 \u2192 cluster2", "### cluster2 \u2192 cluster1"]
    assert tables[1] == (["Status", "Check", "Reason"], [["PASS", "`istiod/ready`",
                                                          "istiod 1.31-dev (revision default) is Ready"]])
    assert tables[3][1] == [["PASS", "`remote-secret/list`", "fine"], ["PASS", "`sync/endpoints`", "synced"]]
    assert text.endswith("|\n") and "\n\n\n" not in text


def test_markdown_puts_failures_first():
    text = vr.markdown(failing_link())
    assert text.startswith("# Mesh mesh1: FAIL\n")
    assert md_section(text, "Failures") == [
        "- **cluster1 \u2192 cluster2**, `remote-secret/list`: remote secret token cannot list services (403)"]
    assert text.index("## Failures") < text.index("## Warnings") < text.index("## Not run") < text.index(
        "## All checks")
    assert md_tables(text)[0][1][0][-1] == "FAIL"  # cluster1's verdict
    pair = md_tables(text)[3]
    assert pair[1][0] == ["FAIL", "`remote-secret/list`", "remote secret token cannot list services (403)"]


def test_markdown_warnings_and_not_run():
    result = healthy()
    result["checks"] += [
        check("cluster2", "gateway/replicas", "network_gateway", "warn", "east-west gateway has 1 replica"),
        check("cluster1", "live/curl", "live_probe", "not_run", "not run: simulated pods"),
        check("cluster2", "live/curl", "live_probe", "not_run", "not run: simulated pods"),
        check("cluster1", "live/grpc", "live_probe", "not_run", "not run: no grpcurl in the image"),
    ]
    text = vr.markdown(result)
    assert text.startswith("# Mesh mesh1: WARN\n")
    assert md_section(text, "Warnings (1)") == [
        "- **cluster2**, `gateway/replicas`: east-west gateway has 1 replica"]
    # grouped by reason, reasons sorted
    assert md_section(text, "Not run (3)") == [
        "- no grpcurl in the image: cluster1 `live/grpc`",
        "- simulated pods: cluster1 `live/curl`, cluster2 `live/curl`",
    ]
    assert ["NOT RUN", "`live/curl`", "simulated pods"] in md_tables(text)[1][1]
    assert ["WARN", "`gateway/replicas`", "east-west gateway has 1 replica"] in md_tables(text)[2][1]


def test_markdown_orders_checks_by_kind_then_id():
    checks = [check("c1", "z-unknown", "zeta"), check("c1", "a-unknown", "alpha"), check("c1", "live", "live_probe"),
              check("c1", "ready", "istiod"), check("c1", "hook", "webhook")]
    rows = md_tables(vr.markdown(mesh([cluster("c1")], checks)))[1][1]
    assert [row[1] for row in rows] == ["`ready`", "`hook`", "`live`", "`a-unknown`", "`z-unknown`"]


def test_markdown_escapes_table_cells():
    nasty = cluster("a|b", "net|1", "10.0.0.1")
    c = check("a|b", "x|y", "istiod", "fail", "line one | still one\r\nline *two* <b>&amp; `code` [link] _x_ \\")
    text = vr.markdown(mesh([nasty], [c], mesh_id="m|1 # *x*"))
    assert text.startswith("# Mesh m\\|1 # \\*x\\*: FAIL\n")
    for header, rows in md_tables(text):
        for row in rows:
            assert len(row) == len(header), row
    assert md_tables(text)[0][1][0][:2] == ["a\\|b", "net\\|1"]
    reason_cell = md_tables(text)[1][1][0][2]
    assert reason_cell == ("line one \\| still one<br>line \\*two\\* \\<b\\>\\&amp; \\`code\\` \\[link\\] \\_x\\_ \\\\")
    assert md_tables(text)[1][1][0][1] == "`x\\|y`"
    # outside tables a code span keeps its pipe as is
    assert md_section(text, "Failures")[0].startswith("- **a\\|b**, `x|y`: line one \\| still one<br>line")
    assert "\r" not in text


def test_markdown_underscores_inside_words_stay_readable():
    c = check("c1", "sni", "gateway_sni", reason="remote_secret ok for outbound_.5000_._.svc")
    row = md_tables(vr.markdown(mesh([cluster("c1")], [c])))[1][1][0]
    assert row[2] == "remote_secret ok for outbound\\_.5000\\_.\\_.svc"


@pytest.mark.parametrize("reason, line", [
    ("# not a heading", "- \\# not a heading: c1 `x`"),
    ("- not a list", "- \\- not a list: c1 `x`"),
    ("1. not a list", "- 1\\. not a list: c1 `x`"),
    ("2) nor this", "- 2\\) nor this: c1 `x`"),
    ("10 pods missing", "- 10 pods missing: c1 `x`"),
])
def test_not_run_reasons_cannot_start_a_block(reason, line):
    text = vr.markdown(mesh([cluster("c1")], [check("c1", "x", "live_probe", "not_run", reason)]))
    assert md_section(text, "Not run") == [line]


@pytest.mark.parametrize("text, span", [
    ("plain", "`plain`"), ("has`tick", "``has`tick``"), ("`edge", "`` `edge ``"), ("two\nlines", "`two lines`"),
])
def test_code_spans(text, span):
    assert vr.md_code(text) == span


def test_markdown_lists_vms():
    vm = {"name": "vm1", "cluster": "cluster1", "network": "network1", "address": "10.0.0.5", "ok": False}
    result = healthy()
    result["vms"] = [vm]
    text = vr.markdown(result)
    assert md_tables(text)[1] == (["VM", "Network", "Joins cluster", "Address", "Verdict"],
                                  [["vm1", "network1", "cluster1", "10.0.0.5", "FAIL"]])


def test_markdown_cluster_without_istio_or_gateway():
    c = cluster("c1", gateway="", version="", revision="", ok=None)
    row = md_tables(vr.markdown(mesh([c], [])))[0][1][0]
    assert row == ["c1", "network1", "primary", "not installed", "no address", "UNKNOWN"]


# --- JSON ------------------------------------------------------------------------------------

def test_json_document_is_the_result_with_a_schema():
    result = failing_link()
    before = copy.deepcopy(result)
    text = vr.json_document(result)
    assert result == before  # not changed
    assert json.loads(text) == dict(before, schema="meshfed.istio/verify/v1")  # already in report order
    assert text.endswith("}\n")
    assert text.startswith('{\n  "checks": [\n    {\n      "details": {},\n      "id": "cluster1/istiod/ready",')
    keys = [line.strip().split('"')[1] for line in text.split("\n") if line.startswith('  "')]
    assert keys == sorted(keys) == ["checks", "clusters", "generated", "mesh_id", "ok", "schema", "summary", "vms"]
    assert "\u2192" in text  # readable, not \u2192


def test_json_document_sorts_its_lists():
    result = three_clusters_two_networks()
    result["checks"].reverse()
    result["vms"] = [{"name": "vm2"}, {"name": "vm1"}, "not a dict"]
    doc = json.loads(vr.json_document(result))
    assert [c["name"] for c in doc["clusters"]] == ["east", "far", "west"]
    assert [v["name"] for v in doc["vms"]] == ["vm1", "vm2"]
    assert [c["id"] for c in doc["checks"]][:4] == ["east->far/remote-secret/list", "east->far/service/" + SVC,
                                                    "east->west/remote-secret/list", "east->west/service/" + SVC]
    assert len(doc["checks"]) == len(result["checks"])


def test_json_document_of_awkward_values():
    result = {"mesh_id": "m", "checks": [{"details": {1: b"bytes", "set": {"b", "a"}, "tuple": (1, 2),
                                                      "obj": ValueError("x"), "nan": float("nan"),
                                                      "ms": 1.5}}], "schema": "old"}
    text = vr.json_document(result)
    doc = json.loads(text, parse_constant=lambda name: pytest.fail("not JSON: %s" % name))
    assert doc["schema"] == vr.SCHEMA
    assert doc["checks"][0]["details"] == {"1": "bytes", "set": ["a", "b"], "tuple": [1, 2], "obj": "x",
                                           "nan": "nan", "ms": 1.5}


# --- DOT --------------------------------------------------------------------------------------

def test_dot_of_a_healthy_mesh():
    dot = vr.dot_source(healthy())
    assert dot.startswith("digraph mesh {\n") and dot.endswith("}\n")
    assert dot_networks(dot) == {"network1": ["cluster:cluster1", "gateway:cluster1"],
                                 "network2": ["cluster:cluster2", "gateway:cluster2"]}
    nodes = dot_nodes(dot)
    assert nodes["cluster:cluster1"]["label"] == "cluster1\nIstio 1.31-dev (default)\nprimary"
    assert nodes["cluster:cluster1"]["color"] == vr.GREEN
    assert nodes["gateway:cluster2"]["label"] == "gateway 127.0.0.12:15443"
    assert "color" not in nodes["gateway:cluster2"]
    one_way = dot_edge(dot, "cluster:cluster1", "cluster:cluster2")
    assert (one_way["color"], one_way["style"], one_way["label"]) == (vr.GREEN, "solid", "2 passed")
    assert one_way["tooltip"] == ("cluster1 \u2192 cluster2\nPASS remote-secret/list: fine\n"
                                  "PASS sync/endpoints: synced")
    other_way = dot_edge(dot, "cluster:cluster2", "cluster:cluster1")
    assert other_way["color"] == vr.GREEN and other_way["tooltip"].startswith("cluster2 \u2192 cluster1\n")
    # cluster-to-cluster edges do not rank (the clusters stay side by side)
    assert one_way["constraint"] == other_way["constraint"] == "false"
    for name in ("cluster1", "cluster2"):
        assert dot_edge(dot, "cluster:%s" % name, "gateway:%s" % name) == {"arrowhead": "none", "color": "grey40"}
    assert len(dot_edges(dot)) == 4


def test_dot_failing_link_is_red_with_the_first_reason():
    dot = vr.dot_source(failing_link())
    edge = dot_edge(dot, "cluster:cluster1", "cluster:cluster2")
    assert edge["color"] == edge["fontcolor"] == vr.RED
    assert edge["penwidth"] == "2"
    assert edge["label"] == "remote secret token cannot list services (403)"
    assert dot_edge(dot, "cluster:cluster2", "cluster:cluster1")["color"] == vr.GREEN
    assert dot_nodes(dot)["cluster:cluster1"]["color"] == vr.RED
    assert 'label="mesh mesh1: FAIL\\n2026-11-29T18:00:00Z"' in dot


def test_dot_more_failures_are_counted_and_long_reasons_cut():
    long_reason = "the remote secret's token was issued by an API server this cluster does not trust at all"
    checks = [check("c1", "a", "remote_secret", "fail", long_reason, target="c2"),
              check("c1", "b", "sync", "fail", "second", target="c2"),
              check("c1", "c", "rbac", "warn", "third", target="c2"),
              check("c1", "d", "sync", "fail", "fourth", target="c2")]
    label = dot_edge(vr.dot_source(mesh([cluster("c1"), cluster("c2")], checks)), "cluster:c1", "cluster:c2")["label"]
    first, more = label.split("\n")
    assert more == "+2 more"
    assert len(first) <= vr.EDGE_REASON_MAX and first.endswith("\u2026")
    assert first == "the remote secret's token was issued by an API server this\u2026"
    assert long_reason.startswith(first[:-1])


def test_dot_warnings_are_orange_and_not_run_grey_dashed():
    checks = [check("c1", "rbac", "rbac", "warn", "token expires in 2 days", target="c2"),
              check("c1", "ok", "sync", "pass", target="c2"),
              check("c2", "live", "live_probe", "not_run", "not run: simulated pods", target="c1"),
              check("c2", "live2", "live_probe", "not_run", "not run: no pods", target="c1")]
    dot = vr.dot_source(mesh([cluster("c1"), cluster("c2")], checks))
    warn = dot_edge(dot, "cluster:c1", "cluster:c2")
    assert (warn["color"], warn["style"], warn["label"]) == (vr.ORANGE, "solid", "token expires in 2 days")
    grey = dot_edge(dot, "cluster:c2", "cluster:c1")
    assert (grey["color"], grey["style"], grey["label"]) == (vr.GREY, "dashed", "not run: simulated pods")


def test_dot_passes_with_some_not_run_stay_green():
    checks = [check("c1", "ok", "sync", "pass", target="c2"),
              check("c1", "live", "live_probe", "not_run", "not run: simulated pods", target="c2")]
    edge = dot_edge(vr.dot_source(mesh([cluster("c1"), cluster("c2")], checks)), "cluster:c1", "cluster:c2")
    assert (edge["color"], edge["label"]) == (vr.GREEN, "1 passed, 1 not run")


@pytest.mark.parametrize("checks, colour, style, label", [
    ([], "black", "dashed", "no checks"),
    ([{"status": "pass"}], vr.GREEN, "solid", "1 passed"),
    ([{"status": "fail", "reason": "x"}, {"status": "warn", "reason": "y"}], vr.RED, "solid", "x"),
    ([{"status": "warn", "reason": "y"}, {"status": "huh", "reason": "z"}], vr.ORANGE, "solid", "y\n+1 more"),
    ([{"status": "not_run"}], vr.GREY, "dashed", "not run: " + vr.NO_REASON),
])
def test_edge_style(checks, colour, style, label):
    assert vr.edge_style(checks) == (colour, style, label)


def test_dot_gateway_without_address_is_red():
    clusters = [cluster("c1", "n1", "10.0.0.1"), cluster("c2", "n2", "")]
    node = dot_nodes(vr.dot_source(mesh(clusters, [])))["gateway:c2"]
    assert node["label"] == "gateway: no address"
    assert node["color"] == node["fontcolor"] == vr.RED


def test_dot_one_network_without_gateways_draws_none():
    clusters = [cluster("c1", "n1", ""), cluster("c2", "n1", "")]
    dot = vr.dot_source(mesh(clusters, [check("c1", "x", "sync", target="c2")]))
    assert dot_networks(dot) == {"n1": ["cluster:c1", "cluster:c2"]}
    # unless a gateway check names it
    dot = vr.dot_source(mesh(clusters, [check("c1", "gw", "network_gateway", "fail", "no gateway Service")]))
    assert dot_networks(dot) == {"n1": ["cluster:c1", "gateway:c1", "cluster:c2"]}
    assert dot_nodes(dot)["gateway:c1"]["label"] == "gateway: no address"


def three_clusters_two_networks():
    clusters = [cluster("east", "net-a", "10.0.0.1"), cluster("west", "net-a", "10.0.0.2", role="remote"),
                cluster("far", "net-b", "10.9.0.1")]
    checks = []
    for source in ("east", "west", "far"):
        for target in ("east", "west", "far"):
            if source != target:
                checks.append(check(source, "remote-secret/list", "remote_secret", target=target))
                status = "fail" if (source, target) == ("east", "far") else "pass"
                checks.append(check(source, "service/" + SVC, "service", status, "no endpoint through the gateway",
                                    target=target, service=SVC))
    return mesh(clusters, checks)


def test_dot_three_clusters_on_two_networks():
    dot = vr.dot_source(three_clusters_two_networks())
    assert dot_networks(dot) == {
        "net-a": ["cluster:east", "gateway:east", "cluster:west", "gateway:west"],
        "net-b": ["cluster:far", "gateway:far"],
    }
    assert dot_nodes(dot)["cluster:west"]["label"] == "west\nIstio 1.31-dev (default)\nremote"
    pairs = set((tail, head) for tail, head, _attrs in dot_edges(dot))
    # within net-a the service checks stay on the direct edge (2 checks each way) ...
    assert dot_edge(dot, "cluster:east", "cluster:west")["label"] == "2 passed"
    # ... across networks they go to the target's gateway; the control plane stays direct
    assert dot_edge(dot, "cluster:east", "cluster:far")["label"] == "1 passed"
    to_gateway = dot_edge(dot, "cluster:east", "gateway:far")
    assert (to_gateway["color"], to_gateway["label"]) == (vr.RED, "no endpoint through the gateway")
    assert to_gateway["tooltip"].startswith("east \u2192 far's gateway\nFAIL service/%s:" % SVC)
    assert "constraint" not in to_gateway  # gateways rank below the clusters
    assert dot_edge(dot, "cluster:far", "gateway:east")["color"] == vr.GREEN
    assert ("cluster:far", "gateway:far") in pairs
    assert ("cluster:east", "gateway:west") not in pairs
    assert len(dot_edges(dot)) == 3 + 6 + 4  # gateway links, direct pairs, cross-network data plane


def test_dot_without_vms_has_no_vm_nodes():
    dot = vr.dot_source(healthy())
    assert not [node for node in dot_nodes(dot) if node.startswith("vm:")]
    assert "ellipse" not in dot


def test_dot_vm_joins_its_cluster():
    result = healthy()
    result["vms"] = [{"name": "vm1", "cluster": "cluster1", "network": "network1", "address": "10.0.0.5", "ok": True},
                     {"name": "vm2", "cluster": "cluster2", "network": "vmnet", "address": "", "ok": False}]
    result["checks"].append(check("vm2", "join", "vm", "fail", "WorkloadEntry vm2 is not healthy", target="cluster2"))
    dot = vr.dot_source(result)
    networks = dot_networks(dot)
    assert "vm:vm1" in networks["network1"] and networks["vmnet"] == ["vm:vm2"]
    nodes = dot_nodes(dot)
    assert nodes["vm:vm1"]["label"] == "vm1\nVM 10.0.0.5" and nodes["vm:vm1"]["shape"] == "ellipse"
    assert nodes["vm:vm2"]["label"] == "vm2\nVM" and nodes["vm:vm2"]["color"] == vr.RED
    plain = dot_edge(dot, "vm:vm1", "cluster:cluster1")
    assert (plain["label"], plain["style"], plain["dir"]) == ("joins", "dashed", "back")  # the VM ranks below
    checked = dot_edge(dot, "vm:vm2", "cluster:cluster2")
    assert (checked["color"], checked["label"]) == (vr.RED, "WorkloadEntry vm2 is not healthy")


def test_dot_names_a_party_the_result_does_not_list():
    result = healthy()
    result["checks"].append(check("cluster1", "sync", "sync", "fail", "cluster3 unreachable", target="cluster3"))
    dot = vr.dot_source(result)
    assert dot_nodes(dot)["unknown:cluster3"]["label"] == "cluster3\n(not in the result)"
    assert dot_edge(dot, "cluster:cluster1", "unknown:cluster3")["color"] == vr.RED
    assert "unknown:cluster3" not in sum(dot_networks(dot).values(), [])


def test_dot_quotes_and_backslashes():
    weird = 'c"1\\'
    clusters = [cluster(weird, 'net "a"\\', "10.0.0.1"), cluster("c2", "n2", "10.0.0.2")]
    reason = 'he said "no" \\ then\nleft \\n'
    dot = vr.dot_source(mesh(clusters, [check(weird, "x", "sync", "fail", reason, target="c2")],
                             mesh_id='m"\\'))
    # every line is a statement we can read back: nothing leaks out of a quoted string
    for line in dot.splitlines()[1:-1]:
        assert (_EDGE.match(line) or _NODE.match(line) or line.strip() in ("}",)
                or re.match(r'^\s*(graph|node|edge) \[.*\];$', line) or re.match(r'^  subgraph "[^"]*" \{$', line)), line
    assert '"cluster:c\\"1\\\\" [label="c\\"1\\\\\\nIstio' in dot
    assert dot_nodes(dot)["cluster:%s" % weird]["label"].split("\n")[0] == weird
    assert list(dot_networks(dot))[1] == 'net "a"\\'
    assert dot_edge(dot, "cluster:%s" % weird, "cluster:c2")["label"] == 'he said "no" \\ then left \\n'
    assert 'graph [label="mesh m\\"\\\\: FAIL' in dot


def test_dot_drops_control_characters():
    dot = vr.dot_source(mesh([cluster("c\x011\t2")], []))
    assert "\x01" not in dot and "\t" not in dot
    assert dot_nodes(dot)["cluster:c1 2"]["label"].startswith("c1 2\n")


# --- determinism ------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [healthy, failing_link, three_clusters_two_networks])
def test_same_result_in_any_order_gives_the_same_text(make):
    result = make()
    result["vms"] = [{"name": "vm%d" % i, "cluster": "cluster1", "network": "network1", "address": "10.0.0.%d" % i,
                      "ok": True} for i in range(3)]
    want = (vr.markdown(result), vr.json_document(result), vr.dot_source(result), vr.summary_lines(result))
    rng = random.Random(7)
    for _round in range(5):
        shuffled = copy.deepcopy(result)
        for key in ("clusters", "vms", "checks"):
            rng.shuffle(shuffled[key])
        got = (vr.markdown(shuffled), vr.json_document(shuffled), vr.dot_source(shuffled), vr.summary_lines(shuffled))
        assert got == want
