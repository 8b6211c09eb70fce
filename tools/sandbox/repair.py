# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What `up` does next to a damaged cluster, decided from the state of its component processes.

Pure functions, no I/O: ``cluster.Cluster.ensure_running`` observes the processes, asks
``next_step`` and carries the step out, until the answer is ``done``.

A component is

* ``missing``  - no live process of ours (no pid file, or its pid is dead or foreign),
* ``running``  - alive and listening on every port kwokctl gave it,
* ``starting`` - alive, not listening yet, younger than the start-up allowance,
* ``dying``    - alive but shutting down: kube-apiserver said so (``/readyz``: ``[-]shutdown``),
  or it no longer listens but still holds connections it accepted on its port (a SIGTERMed
  kube-apiserver closes its port at once but lives on for up to 60 s while its clients'
  watches drain), or it has been alive longer than the start-up allowance without listening.
"""

from __future__ import annotations

import dataclasses

API_SERVER = "kube-apiserver"

MISSING = "missing"
RUNNING = "running"
STARTING = "starting"
DYING = "dying"


@dataclasses.dataclass(frozen=True)
class Proc:
    """What was observed about one component's process."""

    pid: int = 0  # 0: no live process of ours
    age: float = 0.0  # seconds since the process started
    listening: bool = False  # it listens on every port configured for it
    shutting_down: bool = False  # it reported (now or earlier in this run) that it is shutting down


@dataclasses.dataclass(frozen=True)
class Step:
    """The next thing to do: ``action`` applied to ``components`` (in component order)."""

    action: str  # done | wait | stop | start | settle | fail
    components: tuple = ()


def classify(proc: Proc, startup_allowance: float) -> str:
    """missing, running, starting or dying (see the module docstring)."""
    if not proc.pid:
        return MISSING
    if proc.shutting_down:
        return DYING
    if proc.listening:
        return RUNNING
    return STARTING if proc.age < startup_allowance else DYING


def next_step(verdicts: dict, dying_for: dict, grace: float, starts: dict, max_starts: int) -> Step:
    """The next repair step for one cluster.

    verdicts:   component -> classify() result (dict order = component order)
    dying_for:  component -> seconds since it was first seen dying
    grace:      how long a dying process may take to exit before it is stopped
    starts:     component -> how often this run already started it
    max_starts: a component missing again after that many starts fails the run

    Order: dying processes first (wait for them, stop them after the grace period), since
    kwokctl starts nothing whose pid file names a live process; then start what is missing,
    but only while kube-apiserver runs or is missing itself: `kwokctl start` waits (up to
    2 min) until the API serves, so with a kube-apiserver that is still starting let it
    settle first.
    """
    dying = _with(verdicts, DYING)
    overdue = tuple(c for c in dying if dying_for.get(c, 0.0) >= grace)
    if overdue:
        return Step("stop", overdue)
    if dying:
        return Step("wait", dying)
    missing = _with(verdicts, MISSING)
    exhausted = tuple(c for c in missing if starts.get(c, 0) >= max_starts)
    if exhausted:
        return Step("fail", exhausted)
    if missing and verdicts.get(API_SERVER, RUNNING) in (RUNNING, MISSING):
        return Step("start", missing)
    starting = _with(verdicts, STARTING)
    if starting:
        return Step("settle", starting)
    return Step("done")


def _with(verdicts: dict, verdict: str) -> tuple:
    return tuple(c for c, v in verdicts.items() if v == verdict)


def lease_is_stale(renewed_at: float, successor_started_at: float, margin: float = 1.0) -> bool:
    """A leader lease last renewed (epoch seconds) before the component's new process started
    (with `margin` seconds for clock granularity) belongs to a dead predecessor: the new process
    cannot have renewed it.  None (no renewTime) is stale too."""
    return renewed_at is None or renewed_at < successor_started_at - margin
