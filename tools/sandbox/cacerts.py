# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox istiod's ``cacerts`` volume: a directory kept equal to Secret istio-system/cacerts.

In a cluster the istiod Pod mounts Secret ``cacerts`` (``optional: true``) at /etc/cacerts, and the
kubelet keeps the mount equal to the Secret the way its atomic writer does: the keys are written into a
new hidden directory ``..<timestamp>``, a symlink ``..data_tmp`` to it is renamed over ``..data`` (one
atomic step), and every key is a symlink ``<key> -> ..data/<key>`` made once; keys gone from the Secret
lose their symlink, and the old data directory is removed.  istiod watches the directory (fsnotify on
ROOT_CA_DIR, Create and Write events, then reads the files after 100 ms: pilot/pkg/bootstrap/istio_ca.go
``handleCACertsFileWatch``) and reloads its plug-in CA without a restart ("Update Istiod cacerts").

The sandbox's istiod runs out of cluster, so this module plays the kubelet: ``sync`` once before istiod
starts (``istiod.start``), and a ``Syncer`` thread per cluster in the sandbox's controller process
(``lb.py``) that polls the Secret every POLL_SECONDS while that cluster's istiod runs and logs every change
it writes.  A missing Secret gives an empty directory (an optional volume): istiod then uses its
self-signed CA, as before.  Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import os
import shutil

from . import common, rollout

NAMESPACE = "istio-system"
SECRET = "cacerts"
SECRET_PATH = "/api/v1/namespaces/%s/secrets/%s" % (NAMESPACE, SECRET)
# seconds between two looks at the Secret (MESHFED_SANDBOX_CACERTS_POLL)
POLL_SECONDS = float(os.environ.get("MESHFED_SANDBOX_CACERTS_POLL", "1"))

DATA_DIR = "..data"
DATA_TMP = "..data_tmp"
FILE_MODE = 0o600  # the keys hold a private key; only this user's istiod reads them


# ---------------------------------------------------------------- the directory (pure file system work)


def _valid_key(key: str) -> bool:
    return bool(key) and not key.startswith("..") and "/" not in key and key not in (".",)


def read_dir(target: str) -> dict:
    """What the directory shows now: {key: bytes} through its per-key symlinks ({} when empty or missing)."""
    out = {}
    try:
        names = os.listdir(target)
    except FileNotFoundError:
        return out
    for name in names:
        if name.startswith(".."):
            continue
        path = os.path.join(target, name)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            with open(path, "rb") as f:
                out[name] = f.read()
    return out


def _data_dir(target: str) -> str:
    """The name of the timestamped directory ``..data`` points to ('' when none)."""
    try:
        return os.readlink(os.path.join(target, DATA_DIR))
    except OSError:
        return ""


def write_dir(target: str, payload: dict, now=None) -> bool:
    """Make `target` show exactly `payload` ({key: bytes}) as the kubelet's atomic writer does; True when it
    changed anything.  Readers never see a mix of old and new keys: ``..data`` switches in one rename."""
    for key in payload:
        if not _valid_key(key):
            raise ValueError("%r cannot be a file name in the cacerts directory" % key)
    os.makedirs(target, mode=0o700, exist_ok=True)
    old_dir = _data_dir(target)
    if old_dir and read_dir(target) == payload and _links_ok(target, payload):
        return False
    now = now or datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("..%Y_%m_%d_%H_%M_%S.%f")
    new_dir = stamp
    n = 0
    while os.path.lexists(os.path.join(target, new_dir)):  # two writes within one microsecond
        n += 1
        new_dir = "%s_%d" % (stamp, n)
    new_path = os.path.join(target, new_dir)
    os.mkdir(new_path, 0o755)
    for key, data in sorted(payload.items()):
        fd = os.open(os.path.join(new_path, key), os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    tmp = os.path.join(target, DATA_TMP)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(new_dir, tmp)
    os.rename(tmp, os.path.join(target, DATA_DIR))  # the atomic switch
    for key in sorted(payload):
        link = os.path.join(target, key)
        want = os.path.join(DATA_DIR, key)
        if os.path.islink(link) and os.readlink(link) == want:
            continue
        if os.path.lexists(link):  # a stray file (e.g. written by an older sandbox): replace it
            if os.path.isdir(link) and not os.path.islink(link):
                shutil.rmtree(link)
            else:
                os.unlink(link)
        os.symlink(want, link)
    for name in os.listdir(target):
        path = os.path.join(target, name)
        if name.startswith(".."):
            if name not in (DATA_DIR, new_dir) and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)  # the previous data directory (and any left by an interrupted write)
        elif name not in payload:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    return True


def _links_ok(target: str, payload: dict) -> bool:
    return all(os.path.islink(os.path.join(target, k)) and os.readlink(os.path.join(target, k)) == os.path.join(DATA_DIR, k)
               for k in payload)


@contextlib.contextmanager
def locked(target: str):
    """Serialise writers of one directory (istiod's start and the controller's Syncer)."""
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, "." + os.path.basename(target) + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def describe(payload: dict) -> str:
    return ", ".join(sorted(payload)) or "no keys"


# ---------------------------------------------------------------- the Secret


def secret_payload(api: common.Api) -> dict:
    """The Secret's data as {key: bytes}; {} when there is no Secret (an optional volume).  Raises on API errors."""
    status, payload = api.get(SECRET_PATH, timeout=10)
    if status == 404:
        return {}
    if status != 200 or not isinstance(payload, dict):
        raise common.SandboxError("reading Secret %s/%s: HTTP %d %s" % (NAMESPACE, SECRET, status, common.short(payload)))
    return {k: base64.b64decode(v) for k, v in (payload.get("data") or {}).items() if _valid_key(k)}


def sync(api: common.Api, target: str) -> tuple:
    """One pass: make `target` equal to the Secret.  Returns (changed, before, after) as {key: bytes}."""
    want = secret_payload(api)
    with locked(target):
        before = read_dir(target)
        changed = write_dir(target, want)
    return changed, before, want


def change_summary(before: dict, after: dict) -> str:
    """Which keys a sync added, changed and removed (for the log)."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = []
    for what, keys in (("added", added), ("changed", changed), ("removed", removed)):
        if keys:
            parts.append("%s %s" % (what, ", ".join(keys)))
    return "; ".join(parts) or "no key changed"


class Syncer(rollout.IstiodFollower):
    """Keeps one cluster's istiod cacerts directory equal to its Secret while that istiod runs."""

    poll = POLL_SECONDS
    what = "Secret %s/%s into istiod's cacerts directory" % (NAMESPACE, SECRET)
    prefix = "cacerts"

    def started(self) -> None:
        from . import istiod

        self.say("%s: keeping istiod's cacerts directory %s equal to Secret %s/%s (every %gs while istiod runs)"
                 % (self.name_, istiod.Istiod(self.name_).cadir, NAMESPACE, SECRET, POLL_SECONDS))

    def follow(self, i, api) -> None:
        changed, before, after = sync(api, i.cadir)
        if changed and before == after:  # e.g. files an older sandbox's istiod copied there
            self.say("%s: %s rewritten as a Secret volume (..data and per-key links; %s)" % (self.name_, i.cadir, describe(after)))
        elif changed:
            self.say("%s: Secret %s/%s changed: %s updated (%s; now %s)" % (
                self.name_, NAMESPACE, SECRET, i.cadir, change_summary(before, after), describe(after)))
