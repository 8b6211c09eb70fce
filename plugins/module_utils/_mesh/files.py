# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Reading and atomically writing the files of a managed directory."""

from __future__ import annotations

import errno
import os
import stat
import tempfile

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError


def read_optional(path, field="dir"):
    """The bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise MeshError("%s: cannot read %s: %s" % (field, path, e.strerror), field=field)


def check_dir(path, field="dir"):
    """Fail early, naming the field, when ``path`` cannot hold our files."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise MeshError("%s: %s exists and is not a directory" % (field, path), field=field)
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise MeshError("%s: %s is not readable and writable by this user" % (field, path), field=field)
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise MeshError("%s: cannot create %s (%s is not a directory)" % (field, path, parent), field=field)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MeshError("%s: cannot create %s (%s is not writable)" % (field, path, parent), field=field)


def current_mode(path):
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def plan(base, files, mode_of):
    """Compare wanted ``files`` ({relpath: bytes}) with the disk.

    Returns [(relpath, what)] for every file to write, ``what`` being
    'create', 'update' or 'mode' (content is right, permissions are not)."""
    todo = []
    for rel in sorted(files):
        path = os.path.join(base, rel)
        have = read_optional(path)
        if have is None:
            todo.append((rel, "create"))
        elif have != files[rel]:
            todo.append((rel, "update"))
        elif current_mode(path) != mode_of(rel):
            todo.append((rel, "mode"))
    return todo


def write_atomic(path, data, mode):
    """Write ``data`` to ``path`` with ``mode`` so that readers never see a partial file."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def apply(base, files, todo, mode_of):
    for rel, what in todo:
        path = os.path.join(base, rel)
        if what == "mode":
            os.chmod(path, mode_of(rel))
        else:
            write_atomic(path, files[rel], mode_of(rel))
