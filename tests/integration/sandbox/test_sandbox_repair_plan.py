# Copyright: (c) 2026, meshfed.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How `up` decides to repair a cluster, and `down`'s port checks: plain tests, no cluster needed."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tools.sandbox import cli, common, repair
from tools.sandbox.repair import DYING, MISSING, RUNNING, STARTING, Proc, Step

ALLOWANCE = 30.0
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


def _all(verdict: str, **others) -> dict:
    """Verdicts for every component: `verdict`, except those given by keyword (underscores for dashes)."""
    overrides = {k.replace("_", "-"): v for k, v in others.items()}
    return {c: overrides.get(c, verdict) for c in COMPONENTS}


def _step(verdicts, dying_for=None, starts=None, grace=10.0, max_starts=3) -> Step:
    return repair.next_step(verdicts, dying_for or {}, grace, starts or {}, max_starts)


@pytest.mark.parametrize("proc, verdict", [
    (Proc(), MISSING),
    (Proc(pid=7, age=300, listening=True), RUNNING),
    (Proc(pid=7, age=2, listening=False), STARTING),
    (Proc(pid=7, age=300, listening=False), DYING),  # a SIGTERMed kube-apiserver closed its port
    (Proc(pid=7, age=300, listening=True, shutting_down=True), DYING),  # /readyz: [-]shutdown
    (Proc(pid=7, age=1, listening=False, shutting_down=True), DYING),
], ids=["no-process", "listening", "young-not-listening", "old-not-listening", "reports-shutdown",
        "young-but-seen-dying"])
def test_classify(proc, verdict):
    assert repair.classify(proc, ALLOWANCE) == verdict


def test_a_healthy_cluster_needs_nothing():
    assert _step(_all(RUNNING)) == Step("done")


def test_a_dying_process_is_waited_for_before_anything_is_started():
    # kwokctl would start nothing while the pid file names a live process, and then wait for the API
    step = _step(_all(RUNNING, kube_apiserver=DYING, kube_controller_manager=MISSING),
                 dying_for={"kube-apiserver": 3.0})
    assert step == Step("wait", ("kube-apiserver",))


def test_a_dying_process_is_stopped_after_the_grace_period():
    step = _step(_all(RUNNING, kube_apiserver=DYING), dying_for={"kube-apiserver": 10.0})
    assert step == Step("stop", ("kube-apiserver",))


def test_only_overdue_processes_are_stopped():
    step = _step(_all(RUNNING, etcd=DYING, kube_apiserver=DYING), dying_for={"etcd": 1.0, "kube-apiserver": 12.0})
    assert step == Step("stop", ("kube-apiserver",))


def test_missing_components_are_started_together_in_component_order():
    step = _step(_all(RUNNING, kube_scheduler=MISSING, kube_apiserver=MISSING, kube_controller_manager=MISSING))
    assert step == Step("start", ("kube-apiserver", "kube-controller-manager", "kube-scheduler"))


def test_missing_comes_before_starting():
    step = _step(_all(RUNNING, etcd=STARTING, kwok_controller=MISSING))
    assert step == Step("start", ("kwok-controller",))


def test_nothing_is_started_while_the_api_server_is_still_starting():
    # `kwokctl start` would wait up to 2 min for an API server that may never serve (e.g. one draining)
    step = _step(_all(RUNNING, kube_apiserver=STARTING, kube_controller_manager=MISSING))
    assert step == Step("settle", ("kube-apiserver",))


def test_starting_processes_are_left_to_settle():
    assert _step(_all(RUNNING, kube_apiserver=STARTING)) == Step("settle", ("kube-apiserver",))


def test_a_component_that_keeps_exiting_fails_the_run():
    step = _step(_all(RUNNING, kube_scheduler=MISSING), starts={"kube-scheduler": 3})
    assert step == Step("fail", ("kube-scheduler",))
    assert _step(_all(RUNNING, kube_scheduler=MISSING), starts={"kube-scheduler": 2}).action == "start"


@pytest.mark.parametrize("renewed, started, stale", [
    (100.0, 120.0, True),  # renewed by the dead predecessor long before the new process started
    (119.5, 120.0, False),  # too close to tell: left alone (the new process only waits it out)
    (125.0, 120.0, False),  # renewed after the new process started: it is the new process's own
    (None, 120.0, True),  # never renewed
])
def test_lease_is_stale(renewed, started, stale):
    assert repair.lease_is_stale(renewed, started) is stale


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def test_served_connections_counts_accepted_connections_after_the_listener_closed(listener):
    port = listener.getsockname()[1]
    assert common.served_connections(os.getpid(), [port]) == 0  # listening, nothing accepted yet
    peer = socket.create_connection(("127.0.0.1", port))
    accepted, _addr = listener.accept()
    listener.close()  # as a SIGTERMed kube-apiserver does, while its clients' watches drain
    try:
        assert not common.port_listening(port)
        # the accepted side has the server port as local port; the client side of this process does not
        assert common.served_connections(os.getpid(), [port]) == 1
    finally:
        accepted.close()
        peer.close()


def test_wait_ports_closed_waits_for_a_port_closing_meanwhile(listener):
    port = listener.getsockname()[1]
    threading.Timer(0.5, listener.close).start()
    t0 = time.monotonic()
    assert common.wait_ports_closed([port], 10, "test") == []
    assert 0.4 < time.monotonic() - t0 < 5


def test_wait_ports_closed_returns_a_port_still_listening_after_the_timeout(listener, capsys):
    port = listener.getsockname()[1]
    assert common.wait_ports_closed([port], 0.5, "test") == [port]
    out = capsys.readouterr().out
    assert "test: waiting up to 0.5s for port(s) %d to close" % port in out
    assert "pid %d" % os.getpid() in out  # names who holds it


def test_down_does_not_blame_a_port_a_foreign_process_took_over(listener):
    port = listener.getsockname()[1]
    # held by this test process, which is not a sandbox process: taken over by someone else
    assert cli._taken_over(port, ours=set())
    # held by a process `down` stopped (or tried to): still ours
    assert not cli._taken_over(port, ours={os.getpid()})
    assert common.port_holders(port) == [os.getpid()]
