"""This worker process: its hub, its open connections, its counters and its periodic duties.

What runs when a worker starts is listed in one place, `streaming.apps` (start hooks registered
with `on_start`); the worker itself only knows its hub, its backend and its connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streaming.conf import streaming_settings
from streaming.delivery.backend import Backend, get_backend
from streaming.delivery.deadlines import Deadlines
from streaming.delivery.hub import Hub
from streaming.delivery.load import LoadMeter
from streaming.server.daphne import when_serving


class Connection(Protocol):
    """What the worker needs of an open session (the sessions layer's Connection has it)."""

    session_id: str

    @property
    def owner(self) -> tuple[int | None, int | None]: ...

    def heartbeat(self) -> None: ...

    def cancel_timers(self) -> None: ...


logger = logging.getLogger(__name__)


class Worker:
    """Per-process state of the streaming frontend, bound to the event loop serving websockets."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.started = time.time()
        self.backend: Backend = get_backend()
        self.hub = Hub(self.backend, loop)
        #: Every session's timed duties (token expiry warning and close) on one loop timer.
        self.deadlines = Deadlines(loop)
        self.backend.attach(self.hub)
        self.connections: dict[str, Connection] = {}
        #: (connection, close code, reason) of authenticated sessions gone since the recorder's last flush.
        self.closed_sessions: list[tuple[Connection, int, str]] = []
        self.draining = False
        self.stopped = False
        #: Awaited once before the process exits after a drain (the recorder's last write).
        self.before_exit: list[Callable[[Worker], Awaitable[None]]] = []
        #: Accepted websockets not yet authenticated; admission control counts them too.
        self.pending_auth = 0
        self.messages_in = 0
        self.loop_lag = 0.0
        self.meter = LoadMeter(self)
        self._tasks: list[asyncio.Task[Any]] = []
        self.duties: list[Callable[[Worker], Any]] = []
        self._tasks.append(loop.create_task(self._tick()))

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.append(task)
        return task

    # Counters --------------------------------------------------------------------------------

    def count_message(self) -> None:
        self.messages_in += 1

    def pending(self, delta: int) -> None:
        """An accepted socket starts (+1) or stops (-1) waiting for authentication."""
        self.pending_auth += delta

    def load_count(self) -> int:
        """Sockets that count against MAX_CONNECTIONS_PER_WORKER: open sessions and pending ones."""
        return len(self.connections) + self.pending_auth

    def session_closed(self, conn: Connection, code: int, reason: str) -> None:
        """Queue an authenticated session's end for the recorder's next flush."""
        self.closed_sessions.append((conn, code, reason))

    # Connections -----------------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections[conn.session_id] = conn

    def remove(self, conn: Connection) -> None:
        self.connections.pop(conn.session_id, None)
        conn.cancel_timers()

    def connections_of(self, user_id: int | None, application_id: int | None) -> int:
        return sum(1 for c in self.connections.values() if c.owner == (user_id, application_id))

    # Periodic duties -------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Once a second: measure loop lag, send heartbeats when due, run the registered duties."""
        last_ping = time.monotonic()
        while True:
            before = time.monotonic()
            await asyncio.sleep(1.0)
            self.loop_lag = max(0.0, time.monotonic() - before - 1.0)
            try:
                if time.monotonic() - last_ping >= streaming_settings.HEARTBEAT_INTERVAL:
                    last_ping = time.monotonic()
                    for conn in list(self.connections.values()):
                        conn.heartbeat()
                for duty in self.duties:
                    result = duty(self)
                    if asyncio.iscoroutine(result):
                        await result
            except Exception:
                logger.exception("Worker tick failed")

    async def finish(self) -> None:
        """The worker is about to exit: let the registered hooks write their last state."""
        self.stopped = True
        for hook in self.before_exit:
            try:
                await asyncio.wait_for(hook(self), 3.0)
            except Exception:
                logger.exception("Exit hook of worker %s failed", self.id)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.backend.close()


_worker: Worker | None = None


def get_worker() -> Worker:
    """The worker for the running loop (a new one when the loop changed, as between tests)."""
    global _worker
    loop = asyncio.get_running_loop()
    if _worker is None or _worker.loop is not loop or loop.is_closed():
        _worker = Worker(loop)
        for start in _on_start:
            start(_worker)
    return _worker


def running_worker() -> Worker | None:
    """The worker if one runs on a live loop (publishers in other threads hand events to it)."""
    if _worker is None or _worker.loop.is_closed():
        return None
    return _worker


_on_start: list[Callable[[Worker], None]] = []


def on_start(callback: Callable[[Worker], None]) -> None:
    """Run `callback(worker)` whenever a worker starts (control listener, recorders)."""
    _on_start.append(callback)


def start_with_server() -> None:
    """Under daphne, start this process's worker once the reactor runs, before any websocket:
    the worker is registered and drains on SIGTERM from the start."""
    when_serving(get_worker)
