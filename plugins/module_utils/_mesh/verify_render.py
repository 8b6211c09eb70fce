# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Writing the report of a mesh verification to a directory (the I/O side of verify_report).

``write_reports`` writes ``<basename>.md``, ``.json``, ``.dot`` and ``.svg`` (the picture, drawn by
Graphviz's ``dot`` through the ``graphviz`` Python package), each atomically (temporary file and
rename, files.write_atomic) with mode 0644, and only when its content or mode differs from what is
on disk: a second run with the same result changes nothing and says so.

A picture that cannot be drawn (``dot`` or the ``graphviz`` package missing, ``dot`` failing) is no
error: ``picture`` is None and ``picture_error`` says why in plain words; an SVG left by an earlier
run is removed then, as it would show another state of the mesh than the report next to it.
"""

from __future__ import annotations

import os

from ansible_collections.meshfed.istio.plugins.module_utils._mesh import files
from ansible_collections.meshfed.istio.plugins.module_utils._mesh import verify_report
from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

DEFAULT_BASENAME = "mesh-verify"
FILE_MODE = 0o644
NO_DOT = "Graphviz's dot is not installed (apt-get install graphviz)"
NO_PACKAGE = "the graphviz Python package is not installed (pip install graphviz)"


def render_svg(dot):
    """(SVG bytes, None) for DOT text, or (None, why not in plain words); never raises for a missing dot."""
    try:
        import graphviz  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None, NO_PACKAGE
    try:
        return graphviz.Source(dot).pipe(format="svg", quiet=True), None
    except graphviz.ExecutableNotFound:
        return None, NO_DOT
    except graphviz.CalledProcessError as e:
        stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        detail = " ".join(stderr.split()) or "exit status %s" % e.returncode
        return None, "Graphviz's dot could not draw the picture: %s" % detail
    except OSError as e:
        return None, "Graphviz's dot could not be run: %s" % (e.strerror or e)


def _check_basename(basename, field):
    if (not isinstance(basename, str) or not basename.strip() or basename in (".", "..")
            or "/" in basename or "\0" in basename):
        raise MeshError("%s: must be a file name without a directory, such as %s; got %r"
                        % (field, DEFAULT_BASENAME, basename), field=field)


def _contents(result):
    """({suffix: bytes}, picture error) of the four files; the SVG is missing when it cannot be drawn."""
    dot = verify_report.dot_source(result)
    contents = {
        "md": verify_report.markdown(result).encode("utf-8"),
        "json": verify_report.json_document(result).encode("utf-8"),
        "dot": dot.encode("utf-8"),
    }
    svg, error = render_svg(dot)
    if svg is not None:
        contents["svg"] = svg
    return contents, error


def _plan(directory, by_name, field):
    """The names of the files whose content or mode differs from ``by_name`` (sorted)."""
    todo = []
    for name in sorted(by_name):
        path = os.path.join(directory, name)
        if files.read_optional(path, field=field) != by_name[name] or files.current_mode(path) != FILE_MODE:
            todo.append(name)
    return todo


def write_reports(result, directory, basename=DEFAULT_BASENAME, field="report_dir", basename_field="basename",
                  check_mode=False):
    """Write the report files of ``result`` into ``directory`` (created when missing).

    Returns {"markdown", "json", "dot": paths, "picture": the SVG's path or None, "picture_error":
    None or why there is no picture, "changed": whether a file was (or, in check mode, would be)
    written or removed}.  ``check_mode`` writes nothing.  Raises MeshError naming ``field`` and the
    path when the directory cannot hold the files, ``basename_field`` for a bad basename."""
    _check_basename(basename, basename_field)
    directory = os.path.abspath(directory)
    files.check_dir(directory, field=field)
    contents, picture_error = _contents(result)
    by_name = dict(("%s.%s" % (basename, suffix), data) for suffix, data in contents.items())
    todo = _plan(directory, by_name, field)
    svg_path = os.path.join(directory, "%s.svg" % basename)
    stale_svg = "svg" not in contents and os.path.lexists(svg_path)
    if not check_mode:
        for name in todo:
            path = os.path.join(directory, name)
            try:
                files.write_atomic(path, by_name[name], FILE_MODE)
            except OSError as e:
                raise MeshError("%s: cannot write %s: %s" % (field, path, e.strerror or e), field=field)
        if stale_svg:
            try:
                os.unlink(svg_path)
            except OSError as e:
                raise MeshError("%s: cannot remove the outdated picture %s: %s" % (field, svg_path, e.strerror or e),
                                field=field)
    return {
        "markdown": os.path.join(directory, "%s.md" % basename),
        "json": os.path.join(directory, "%s.json" % basename),
        "dot": os.path.join(directory, "%s.dot" % basename),
        "picture": svg_path if "svg" in contents else None,
        "picture_error": picture_error,
        "changed": bool(todo) or stale_svg,
    }
