# -*- coding: utf-8 -*-
# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# This module util is PRIVATE to the meshfed.istio collection. It may change
# without notice between releases.

"""Reading and atomically writing the files of a managed directory, and the lock
(``locked``) that makes two runs on one directory take turns."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import tempfile
import time

from ansible_collections.meshfed.istio.plugins.module_utils._mesh.errors import MeshError

# Directories are made with this mode (before the umask); files carry their own modes.
DIR_MODE = 0o755
# The lock of a managed directory, inside it (writable wherever the files are).
LOCK_FILE = ".lock"
LOCK_MODE = 0o644


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
    os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
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


# --- the lock ---------------------------------------------------------------------

def _holder(fd):
    """What the lock file says of the last run that took the lock ("pid N on HOST at TIME"), or
    "unknown".  The file is not cleared on release: while the lock is held by something that
    does not write it, this names an earlier holder, hence "last taken by" in messages."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "unknown"


def _flock(fd, shared, timeout, poll, clock, sleep):
    """Take the flock, polling until ``timeout`` seconds have passed.  Returns (seconds waited,
    0.0 when it was free at once, and the holder seen while waiting or None), or (None, holder)
    on timeout."""
    start, holder = clock(), None
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return (0.0 if holder is None else clock() - start), holder
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        holder = _holder(fd)
        if clock() - start >= timeout:
            return None, holder
        sleep(poll)


@contextlib.contextmanager
def locked(base, timeout, shared=False, field="dir", poll=0.2, clock=time.monotonic, sleep=time.sleep):
    """Hold an flock on ``<base>/.lock`` for the ``with`` block; yields a dict with ``path``,
    ``waited`` (seconds, 0 when the lock was free) and ``holder`` (what the lock file said of its
    last holder while this run waited, or None).

    Exclusive (a run that may write): creates ``base`` (mode DIR_MODE) and the lock file when
    missing, and writes "pid N on HOST at TIME" into it for whoever waits next.  ``shared``
    (check mode, which writes nothing): a shared lock on the lock file when there is one, so a
    report never reads a directory half written; none when there is no lock file (no run of this
    version has written the directory: nothing to wait for).  The kernel releases the lock when
    its process ends: a lock file left behind never blocks.  After ``timeout`` seconds a
    MeshError naming the directory and the holder."""
    path = os.path.join(base, LOCK_FILE)
    fd = _open_lock(path, base, shared, field)
    if fd is None:
        yield {"path": path, "waited": 0.0, "holder": None}
        return
    try:
        try:
            waited, holder = _flock(fd, shared, timeout, poll, clock, sleep)
        except OSError as e:
            raise MeshError("%s: cannot lock %s: %s" % (field, path, e.strerror), field=field)
        if waited is None:
            raise MeshError("%s: %s is still locked by another run after %d s (lock last taken by %s); nothing "
                            "was written. Run again when that run is done, or give lock_timeout more time (the "
                            "lock goes with its process: a .lock file left behind does not block)"
                            % (field, base, timeout, holder), field=field)
        if not shared:
            _say_holder(fd)
        yield {"path": path, "waited": waited, "holder": holder}
    finally:
        os.close(fd)  # releases the lock


def _open_lock(path, base, shared, field):
    """The lock file's descriptor: opened read-only when ``shared`` (None when it does not exist),
    else created (with ``base``) when missing."""
    try:
        if shared:
            try:
                return os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return None
        os.makedirs(base, mode=DIR_MODE, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
    except OSError as e:
        raise MeshError("%s: cannot open the lock %s: %s" % (field, path, e.strerror), field=field)


def _say_holder(fd):
    """Write "pid N on HOST at TIME" into the lock file, for whoever waits next (best effort)."""
    me = "pid %d on %s at %s\n" % (os.getpid(), socket.gethostname(),
                                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode("utf-8"), 0)
    except OSError:
        pass
