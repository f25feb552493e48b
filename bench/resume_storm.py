"""Scenario 4b: subscribed clients of one worker move when it drains (SIGTERM) or dies (SIGKILL).

`storm` clients (the load generator's resume clients: they reconnect like the shipped clients and
resubscribe with `since`) all connect to worker 0 of a two-worker cluster, then:
1. SIGTERM worker 0 while 20 events/s are published: it drains over its configured window, its
   clients come back to worker 1 and resume; worker 0 is restarted afterwards.
2. SIGKILL worker 1 (which now holds every client) under the same load: the clients reconnect with
   backoff to the restarted worker 0 and resume.
Each phase reports how many clients moved, time until every client holds every event, the per-client
gap from close to caught up, the worst publish->deliver delay, and lost/duplicated events.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from cluster import OursCluster
from procs import LineChild
from session import Session

RATE = 20.0  # events/s published during each phase
LEAD_S = 1.0  # events published before the signal
TAIL_S = 3.0  # ... and after the drain window (SIGTERM) or after the kill
KILLED_TAIL_S = 6.0
CATCH_UP_MAX_S = 30.0  # after publishing, how long to wait for the last client to catch up
DRAIN_WINDOW = "from streaming.conf import streaming_settings; print(streaming_settings.DRAIN_SECONDS)"


def drain_window(target: OursCluster) -> float:
    """The configured drain window (not shortened for the bench)."""
    return float(target.manage("shell", "-c", DRAIN_WINDOW).strip().splitlines()[-1])


def settled(session: Session) -> dict[str, Any]:
    """The phase report once every client is back and holds the newest event (or time ran out)."""
    deadline = time.monotonic() + CATCH_UP_MAX_S
    while True:
        report = session.ask({"cmd": "phase"})
        if (report["still_out"] == 0 and report["behind"] == 0) or time.monotonic() > deadline:
            return report
        time.sleep(0.25)


def phase(
    session: Session, publisher: LineChild, worker: int, sig: signal.Signals, tail: float
) -> dict[str, Any]:
    """Publish at RATE, signal `worker` LEAD_S in, and report what its clients went through."""
    target = session.target
    assert isinstance(target, OursCluster)
    session.step += 1
    streams = target.streams(1)
    duration = LEAD_S + tail
    publisher.send(
        {"cmd": "publish", "rate": RATE, "duration": duration, "step": session.step, "streams": streams}
    )
    time.sleep(LEAD_S)
    session.ask({"cmd": "mark"})
    target.signal_worker(worker, sig)
    exited_s = target.wait_exit(worker, timeout=tail + 30)
    sent = publisher.reply(timeout=duration + 60)
    return {
        **settled(session),
        "signal": sig.name,
        "worker_exit_s": exited_s,
        "published": sent["published"],
        "publish_errors": sent["errors"],
    }


def resume_storm(session: Session) -> dict[str, Any]:
    """4b: SIGTERM then SIGKILL of the worker holding `storm` subscribed resume clients."""
    target = session.target
    assert isinstance(target, OursCluster)
    connected = session.connect(session.config.storm, target.streams(1), concurrency=1000, resume=True)
    window = drain_window(target)
    target.start_worker(1)
    publisher = session.publisher or target.publisher()
    session.publisher = publisher
    drained = phase(session, publisher, 0, signal.SIGTERM, window + TAIL_S)
    target.start_worker(0)
    killed = phase(session, publisher, 1, signal.SIGKILL, KILLED_TAIL_S)
    return {
        "clients": connected["subscribed"],
        "drain_window_s": window,
        "lost": drained["lost"] + killed["lost"],
        "duplicated": drained["duplicated"] + killed["duplicated"],
        "sigterm": drained,
        "sigkill": killed,
    }
