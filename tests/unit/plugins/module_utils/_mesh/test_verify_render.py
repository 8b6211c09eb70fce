# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing the verifier's report files: Markdown, JSON, DOT and the SVG Graphviz draws."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import sys
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import files
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify_render
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify_report
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
SVG_NS = "{http://www.w3.org/2000/svg}"


def cluster(name, network, gateway, ok=True):
    return {"name": name, "network": network, "role": "primary", "istio_version": "1.31-dev", "revision": "default",
            "gateway_address": gateway, "ok": ok}


def check(source, name, kind, status="pass", reason="fine", target=None):
    return {"id": "%s/%s" % ("%s->%s" % (source, target) if target else source, name), "kind": kind,
            "subject": "%s -> %s" % (source, target) if target else source, "source": source, "target": target,
            "service": None, "status": status, "reason": reason, "details": {}}


def result_with(clusters, checks, vms=None):
    return {"mesh_id": "mesh1", "ok": not any(c["status"] == "fail" for c in checks),
            "generated": "2026-11-29T18:00:00Z", "clusters": clusters, "vms": vms or [], "checks": checks,
            "summary": {}}


def example():
    return result_with(
        [cluster("cluster1", "network1", "127.0.0.11", ok=False), cluster("cluster2", "network2", "127.0.0.12")],
        [check("cluster1", "istiod/ready", "istiod"), check("cluster2", "istiod/ready", "istiod"),
         check("cluster1", "remote-secret/list", "remote_secret", "fail",
               "cluster1 \u2192 cluster2: remote secret token cannot list services (403)", target="cluster2"),
         check("cluster2", "remote-secret/list", "remote_secret", target="cluster1")],
        vms=[{"name": "vm1", "cluster": "cluster1", "network": "network1", "address": "10.0.0.5", "ok": True}])


def svg_texts(path):
    """The text of every <text> element of an SVG file (parsed as XML)."""
    root = ET.parse(path).getroot()
    assert root.tag == SVG_NS + "svg"
    return ["".join(el.itertext()) for el in root.iter(SVG_NS + "text")]


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def no_dot(tmp_path_factory, monkeypatch):
    """A PATH on which there is no dot (an empty directory outside the test's tmp_path)."""
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-bin")))


# --- the files -------------------------------------------------------------------------------

@needs_dot
def test_writes_the_four_files(tmp_path):
    result = example()
    out = tmp_path / "reports" / "mesh1"  # created, parents too
    got = verify_render.write_reports(result, str(out))
    assert got == {"markdown": str(out / "mesh-verify.md"), "json": str(out / "mesh-verify.json"),
                   "dot": str(out / "mesh-verify.dot"), "picture": str(out / "mesh-verify.svg"),
                   "picture_error": None, "changed": True}
    assert sorted(os.listdir(out)) == ["mesh-verify.dot", "mesh-verify.json", "mesh-verify.md", "mesh-verify.svg"]
    for name in os.listdir(out):
        assert mode_of(out / name) == 0o644, name
    assert (out / "mesh-verify.md").read_text(encoding="utf-8") == verify_report.markdown(result)
    assert (out / "mesh-verify.dot").read_text(encoding="utf-8") == verify_report.dot_source(result)
    doc = json.loads((out / "mesh-verify.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "meshfed.istio/verify/v1"
    assert doc["checks"][2]["reason"] == "cluster1 \u2192 cluster2: remote secret token cannot list services (403)"
    markdown = (out / "mesh-verify.md").read_text(encoding="utf-8")
    assert "- **cluster1 \u2192 cluster2**, `remote-secret/list`: remote secret token cannot list services (403)" \
        in markdown


@needs_dot
def test_the_svg_is_the_mesh(tmp_path):
    got = verify_render.write_reports(example(), str(tmp_path))
    texts = svg_texts(got["picture"])
    for name in ("cluster1", "cluster2", "vm1", "network1", "network2"):
        assert name in texts, (name, texts)
    assert "gateway 127.0.0.11:15443" in texts and "gateway 127.0.0.12:15443" in texts
    assert "remote secret token cannot list services (403)" in texts
    assert "mesh mesh1: FAIL" in texts
    # the failing edge is drawn red, the other way green; the tooltips say which way and list the checks
    edges = svg_edges(got["picture"])
    failing = edges["cluster1 \u2192 cluster2\nFAIL remote-secret/list: remote secret token cannot list services (403)"]
    assert failing == ("#cd0000", ["remote secret token cannot list services (403)"])
    assert edges["cluster2 \u2192 cluster1\nPASS remote-secret/list: fine"] == ("forestgreen", ["1 passed"])


def svg_edges(path):
    """{tooltip: (stroke colour, [label lines])} of the edges that carry checks."""
    xlink = "{http://www.w3.org/1999/xlink}title"
    out = {}
    for g in ET.parse(path).getroot().iter(SVG_NS + "g"):
        if g.get("class") != "edge":
            continue
        links = [a for a in g.iter(SVG_NS + "a") if a.get(xlink)]
        if links:
            stroke = next(g.iter(SVG_NS + "path")).get("stroke")
            out[links[0].get(xlink)] = (stroke, ["".join(t.itertext()) for t in g.iter(SVG_NS + "text")])
    return out


@needs_dot
def test_a_second_write_of_the_same_result_changes_nothing(tmp_path):
    result = example()
    first = verify_render.write_reports(result, str(tmp_path))
    before = dict((name, (tmp_path / name).read_bytes()) for name in os.listdir(tmp_path))
    inodes = dict((name, os.stat(tmp_path / name).st_ino) for name in before)
    second = verify_render.write_reports(result, str(tmp_path))
    assert first["changed"] is True and second["changed"] is False
    assert dict(second, changed=True) == first
    assert dict((name, (tmp_path / name).read_bytes()) for name in os.listdir(tmp_path)) == before
    assert dict((name, os.stat(tmp_path / name).st_ino) for name in before) == inodes  # not even rewritten


@needs_dot
def test_another_result_or_a_wrong_mode_is_a_change(tmp_path):
    result = example()
    verify_render.write_reports(result, str(tmp_path))
    result["checks"][2]["status"] = "pass"
    result["ok"] = True
    assert verify_render.write_reports(result, str(tmp_path))["changed"] is True
    assert (tmp_path / "mesh-verify.md").read_text(encoding="utf-8").startswith("# Mesh mesh1: PASS\n")
    os.chmod(tmp_path / "mesh-verify.json", 0o600)
    assert verify_render.write_reports(result, str(tmp_path))["changed"] is True
    assert mode_of(tmp_path / "mesh-verify.json") == 0o644
    assert verify_render.write_reports(result, str(tmp_path))["changed"] is False


@needs_dot
def test_check_mode_writes_nothing_but_says_what_would_change(tmp_path):
    out = tmp_path / "out"
    got = verify_render.write_reports(example(), str(out), check_mode=True)
    assert got["changed"] is True and got["picture_error"] is None
    assert not out.exists()
    verify_render.write_reports(example(), str(out))
    assert verify_render.write_reports(example(), str(out), check_mode=True)["changed"] is False


def test_other_basename(tmp_path, no_dot):
    got = verify_render.write_reports(example(), str(tmp_path), basename="nightly")
    assert got["markdown"] == str(tmp_path / "nightly.md")
    assert sorted(os.listdir(tmp_path)) == ["nightly.dot", "nightly.json", "nightly.md"]


@pytest.mark.parametrize("basename", ["", "  ", "a/b", "..", ".", None, "x\0y"])
def test_bad_basename(tmp_path, basename):
    with pytest.raises(MeshError) as e:
        verify_render.write_reports(example(), str(tmp_path), basename=basename)
    assert e.value.field == "basename"
    assert "must be a file name without a directory" in str(e.value)
    assert os.listdir(tmp_path) == []


@needs_dot
def test_names_with_quotes_pipes_and_backslashes_survive_the_drawing(tmp_path):
    names = ['quote"d', "back\\slash", "pi|pe", "<amp&>", "trailing\\"]
    clusters = [cluster(name, "net %d" % (i % 2), "10.0.0.%d" % i) for i, name in enumerate(names)]
    checks = [check(names[0], "x", "sync", "fail", 'reason with "quotes" and \\ and\na newline', target=names[4])]
    got = verify_render.write_reports(result_with(clusters, checks), str(tmp_path))
    assert got["picture_error"] is None
    texts = svg_texts(got["picture"])
    for name in names:
        assert name in texts, (name, texts)
    assert 'reason with "quotes" and \\ and a newline' in texts


# --- no picture ------------------------------------------------------------------------------

def test_without_dot_the_picture_is_missing_and_says_why(tmp_path, no_dot):
    got = verify_render.write_reports(example(), str(tmp_path))
    assert got["picture"] is None
    assert got["picture_error"] == "Graphviz's dot is not installed (apt-get install graphviz)"
    assert got["changed"] is True
    assert sorted(os.listdir(tmp_path)) == ["mesh-verify.dot", "mesh-verify.json", "mesh-verify.md"]
    assert (tmp_path / "mesh-verify.dot").read_text(encoding="utf-8") == verify_report.dot_source(example())
    assert verify_render.write_reports(example(), str(tmp_path))["changed"] is False


@needs_dot
def test_an_old_picture_is_removed_when_no_new_one_can_be_drawn(tmp_path, monkeypatch, tmp_path_factory):
    verify_render.write_reports(example(), str(tmp_path))
    assert (tmp_path / "mesh-verify.svg").exists()
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-bin")))
    got = verify_render.write_reports(example(), str(tmp_path), check_mode=True)
    assert got["changed"] is True and (tmp_path / "mesh-verify.svg").exists()  # check mode: only said
    got = verify_render.write_reports(example(), str(tmp_path))
    assert got["changed"] is True and got["picture"] is None
    assert not (tmp_path / "mesh-verify.svg").exists()


def test_without_the_graphviz_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz raises ImportError
    got = verify_render.write_reports(example(), str(tmp_path))
    assert got["picture"] is None
    assert got["picture_error"] == "the graphviz Python package is not installed (pip install graphviz)"
    assert (tmp_path / "mesh-verify.md").exists()


def test_a_failing_dot_is_reported(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: <stdin>: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    svg, error = verify_render.render_svg("digraph {}")
    assert svg is None
    assert error == "Graphviz's dot could not draw the picture: Error: <stdin>: syntax error in line 1"


@needs_dot
def test_render_svg():
    svg, error = verify_render.render_svg('digraph { "a\\"b" }')
    assert error is None
    root = ET.fromstring(svg)
    assert ['a"b'] == ["".join(el.itertext()) for el in root.iter(SVG_NS + "text")]


# --- directories that cannot hold the files --------------------------------------------------

def test_a_file_in_the_way_names_the_path(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(MeshError) as e:
        verify_render.write_reports(example(), str(blocker / "reports"))
    assert e.value.field == "report_dir"
    assert str(e.value) == "report_dir: cannot create %s (%s is not a directory)" % (blocker / "reports", blocker)
    with pytest.raises(MeshError) as e:
        verify_render.write_reports(example(), str(blocker), field="verify_report_dir")
    assert str(e.value) == "verify_report_dir: %s exists and is not a directory" % blocker


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_a_read_only_directory_names_the_path(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(MeshError) as e:
            verify_render.write_reports(example(), str(locked / "reports"))
        assert str(e.value) == "report_dir: cannot create %s (%s is not writable)" % (locked / "reports", locked)
    finally:
        locked.chmod(0o755)


def test_a_directory_this_user_cannot_write_names_the_path(tmp_path, monkeypatch):
    """The same refusal as above, for whoever runs the tests (root may write anywhere)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, how: False if str(path) == str(locked) else real_access(path, how))
    with pytest.raises(MeshError) as e:
        verify_render.write_reports(example(), str(locked))
    assert str(e.value) == "report_dir: %s is not readable and writable by this user" % locked
    with pytest.raises(MeshError) as e:
        verify_render.write_reports(example(), str(locked / "sub"))
    assert str(e.value) == "report_dir: cannot create %s (%s is not writable)" % (locked / "sub", locked)
    assert os.listdir(locked) == []


def test_a_write_that_fails_names_the_file(tmp_path, monkeypatch, no_dot):
    def full(path, data, mode):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(files, "write_atomic", full)
    with pytest.raises(MeshError) as e:
        verify_render.write_reports(example(), str(tmp_path))
    assert str(e.value) == "report_dir: cannot write %s: No space left on device" % (tmp_path / "mesh-verify.dot")
