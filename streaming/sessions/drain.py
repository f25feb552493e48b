"""Drain: a worker leaving on purpose (SIGTERM, admin action) hands its clients over, then exits.

Daphne has no lifespan hook and, on SIGTERM, would cancel every application at once. So under
daphne the first worker to start replaces daphne's SIGTERM handler on the asyncio loop with
`start_drain`: stop accepting connections (the other workers sharing the socket take them), send
each client `reconnect` and close it with 4012, spread over DRAIN_SECONDS with jitter so the others
are not hit by a reconnect storm, then stop the Twisted reactor, and daphne exits with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref

from streaming.conf import streaming_settings
from streaming.delivery.worker import Worker
from streaming.server.daphne import on_sigterm, reactor_of, stop_listening
from streaming.sessions.connection import Connection
from streaming.wire import protocol as p

logger = logging.getLogger(__name__)

# Reconnect hint sent with each 4012 (milliseconds, drawn at random per client): short, because the
# drain window already spreads the closes; clients wait at least this long before reconnecting.
RETRY_AFTER_MS = (100, 1000)
# After the last 4012, seconds to wait for clients to finish the closing handshake before exiting.
CLOSE_GRACE_SECONDS = 2.0

_drains: weakref.WeakKeyDictionary[Worker, asyncio.Task[None]] = weakref.WeakKeyDictionary()


def start_drain(worker: Worker, reason: str = "restart") -> asyncio.Task[None]:
    """Mark the worker draining and start handing its clients over; a second call is a no-op."""
    task = _drains.get(worker)
    if task is None:
        logger.warning("Worker %s draining (%s): %d connections", worker.id, reason, len(worker.connections))
        worker.draining = True
        task = _drains[worker] = worker.spawn(drain(worker, reason))
    return task


async def drain(worker: Worker, reason: str) -> None:
    """Close every connection with 4012 across the drain window, then stop daphne if it runs us."""
    reactor = reactor_of(worker.loop)
    try:
        if reactor is not None:
            stop_listening(reactor)
        await hand_over_all(worker, reason, float(streaming_settings.DRAIN_SECONDS))
    except Exception:
        logger.exception("Drain of worker %s failed; stopping anyway", worker.id)
    finally:
        logger.warning("Worker %s drained; %d connections left", worker.id, len(worker.connections))
        if reactor is not None and reactor.running:
            await worker.finish()
            reactor.stop()


async def hand_over_all(worker: Worker, reason: str, window: float) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    for at, conn in spread(list(worker.connections.values()), window):
        await asyncio.sleep(max(0.0, started + at - loop.time()))
        hand_over(conn, reason)
    for conn in list(worker.connections.values()):  # authenticated while the drain was running
        hand_over(conn, reason)
    for _ in range(int(CLOSE_GRACE_SECONDS / 0.05)):
        if not worker.connections:
            break
        await asyncio.sleep(0.05)


def spread(conns: list[Connection], window: float) -> list[tuple[float, Connection]]:
    """A close time for each connection: one random instant in each equal slice of the window."""
    random.shuffle(conns)
    slot = window / max(1, len(conns))
    return [((i + random.random()) * slot, conn) for i, conn in enumerate(conns)]


def hand_over(conn: Connection, reason: str) -> None:
    if not conn.closing:
        conn.close_with_retry(p.CLOSE_RESTART, reason, random.randint(*RETRY_AFTER_MS))


def install_sigterm(worker: Worker) -> None:
    """Under daphne, SIGTERM drains instead of cancelling every application at once."""
    on_sigterm(worker.loop, lambda: start_drain(worker))
