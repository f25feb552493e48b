"""Chaos: restarts lose nothing (SPEC §7), proven with `make serve`, 50 Python clients and a steady publisher.

Each test runs the real production setup (supervisord, two daphne workers sharing one socket, a
throwaway redis-server, the pytest PostgreSQL database), connects 50 `StreamClient`s, publishes
50 events/s for 20 s from this process, disrupts the workers or Redis once, and then checks what
every client received: every published event exactly once and in order — or, when Redis lost its
history, an explicit Reset before the gap, never a silent one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest
import redis
from asgiref.sync import sync_to_async

from streaming.client import Event, Reset, StreamClient
from streaming.delivery.publish import publish
from streaming.models import StreamSession
from tests.conftest import database_url_for_subprocess
from tests.servers import RedisServer, ServedCluster
from tests.streaming_helpers import make_user, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CLIENTS = 50
USERS = 5  # 10 connections each, under MAX_CONNECTIONS_PER_USER
RATE = 50  # events per second
PUBLISH_SECONDS = 20.0
DISRUPT_AT = 3.0  # seconds into publishing
DRAIN_SECONDS = 3.0
SETTLE_SECONDS = 20.0  # after the last publish, for every client to catch up


@pytest.fixture
def throwaway_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def cluster(throwaway_redis, settings, tmp_path) -> Iterator[ServedCluster]:
    """`make serve` with 2 workers on a free port; this process publishes into the same Redis."""
    prefix = f"chaos:{uuid.uuid4().hex[:8]}"
    settings.STREAMING = {**settings.STREAMING, "REDIS_URL": throwaway_redis.url, "REDIS_PREFIX": prefix}
    served = ServedCluster(
        {
            "DATABASE_URL": database_url_for_subprocess(),
            "REDIS_URL": throwaway_redis.url,
            "STREAMING_REDIS_PREFIX": prefix,
            "STREAMING_DRAIN_SECONDS": str(DRAIN_SECONDS),
        },
        tmp_path / "run",
    )
    try:
        yield served.start()
    finally:
        served.stop()


@pytest.fixture
def tokens(db) -> list[str]:
    return [token_for(make_user(f"chaos{i}")) for i in range(USERS)]


@dataclass
class Outcome:
    published: list[tuple[str, int, int]]  # (epoch, seq, n) of every publish that succeeded
    received: list[list[Event | Reset]]
    clients: list[StreamClient]
    refused: list[str] = field(default_factory=list)
    resets_at: list[float] = field(default_factory=list)  # time.monotonic() of each Reset

    @property
    def max_reconnect_s(self) -> float:
        return max(client.stats.max_reconnect_s for client in self.clients)


class RefusalLog(logging.Handler):
    """Connection attempts that failed: refused, timed out, HTTP-refused or overloaded (4013)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.refused: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("stream connection closed") and isinstance(record.args, tuple):
            code, reason = record.args[0], str(record.args[1])
            if (code == 1006 and reason) or code == 4013:
                self.refused.append(f"{code} {reason}")


def publish_steadily(seconds: float, rate: int) -> list[tuple[str, int, int]]:
    """Publish {"n": n} at `rate`/s; a publish that fails (Redis down) is not expected by anyone."""
    published, started, n = [], time.monotonic(), 0
    while time.monotonic() - started < seconds:
        n += 1
        try:
            event = publish("widgets", {"n": n})
            published.append((event.epoch, event.seq, n))
        except redis.RedisError:
            pass
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
    return published


async def run_chaos(
    url: str,
    tokens: list[str],
    disrupt: Callable[[], Awaitable[None]],
    clients_count: int = CLIENTS,
    **connect_options: Any,
) -> Outcome:
    """Connect the clients, publish, disrupt once, and wait until every client has the last event."""
    refusals = RefusalLog()
    client_log = logging.getLogger("streaming.client.connection")
    client_log.addHandler(refusals)
    level = client_log.level
    client_log.setLevel(logging.INFO)
    resets_at: list[float] = []
    clients = [
        StreamClient(
            url,
            tokens[i % len(tokens)],
            open_timeout=20,
            on_reset=lambda _: resets_at.append(time.monotonic()),
            **connect_options,
        )
        for i in range(clients_count)
    ]
    received: list[list[Event | Reset]] = [[] for _ in clients]
    consumers: list[asyncio.Task[None]] = []
    try:
        await asyncio.wait_for(asyncio.gather(*(c.connect() for c in clients)), 30)
        await asyncio.gather(*(c.subscribe("widgets") for c in clients))
        consumers = [
            asyncio.create_task(_consume(c, into)) for c, into in zip(clients, received, strict=True)
        ]
        publishing = asyncio.create_task(asyncio.to_thread(publish_steadily, PUBLISH_SECONDS, RATE))
        await asyncio.sleep(DISRUPT_AT)
        await disrupt()
        published = await publishing
        await _caught_up(received, published)
        return Outcome(published, received, clients, refusals.refused, resets_at)
    finally:
        client_log.removeHandler(refusals)
        client_log.setLevel(level)
        await asyncio.gather(*(c.close() for c in clients))
        for task in consumers:
            task.cancel()


async def _consume(client: StreamClient, into: list[Event | Reset]) -> None:
    async for item in client.events():
        into.append(item)


async def _caught_up(received: list[list[Event | Reset]], published: list[tuple[str, int, int]]) -> None:
    last = published[-1][:2]
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if all(_last_position(items) == last for items in received):
            return
        await asyncio.sleep(0.1)


def _last_position(items: list[Event | Reset]) -> tuple[str, int] | None:
    for item in reversed(items):
        if isinstance(item, Event):
            return item.epoch, item.seq
    return None


def assert_every_event_once_in_order(
    items: list[Event | Reset], published: list[tuple[str, int, int]], *, resets_allowed: bool = False
) -> int:
    """Every published event exactly once and in order; a gap only right after a Reset. Returns resets."""
    order = {(epoch, seq): i for i, (epoch, seq, _) in enumerate(published)}
    expected, after_reset, resets = 0, False, 0
    for item in items:
        if isinstance(item, Reset):
            assert resets_allowed, f"unexpected reset {item}"
            resets, after_reset = resets + 1, True
            continue
        at = order.get((item.epoch, item.seq))
        assert at is not None, f"an event nobody published: {item}"
        assert at >= expected, f"duplicate or out of order: {item} (expected #{expected})"
        assert at == expected or after_reset, f"silent gap before {item}: missing {published[expected]}"
        assert item.data == {"n": published[at][2]}
        expected, after_reset = at + 1, False
    assert expected == len(published), (
        f"missing the last {len(published) - expected} of {len(published)} events"
    )
    return resets


def busiest_worker(cluster: ServedCluster) -> tuple[str, int]:
    """The worker holding the most client connections, so the disruption hits most clients."""

    def clients_of(pid: int) -> int:
        conns = psutil.Process(pid).net_connections("tcp")
        return sum(1 for c in conns if c.laddr and c.laddr.port == cluster.port and c.status == "ESTABLISHED")

    return max(cluster.pids().items(), key=lambda item: clients_of(item[1]))


def report(capsys, scenario: str, outcome: Outcome) -> None:
    """Print the figures, then check that the server itself sent no duplicate (clients drop them)."""
    reconnected = sum(1 for c in outcome.clients if c.stats.reconnects)
    with capsys.disabled():
        print(
            f"\nchaos {scenario}: {len(outcome.published)} events to {len(outcome.clients)} clients, "
            f"{reconnected} reconnected, max reconnect {outcome.max_reconnect_s:.2f} s, "
            f"refused attempts {len(outcome.refused)}, "
            f"resets {sum(c.stats.resets for c in outcome.clients)}, "
            f"duplicates dropped by clients {sum(c.stats.duplicates_dropped for c in outcome.clients)}"
        )
    assert all(c.stats.duplicates_dropped == 0 for c in outcome.clients)


async def test_a_rolling_restart_loses_nothing_and_refuses_nobody(cluster, tokens, capsys):
    before = cluster.pids()

    async def restart() -> None:
        await asyncio.to_thread(cluster.make, "restart")

    outcome = await run_chaos(cluster.ws_url, tokens, restart)
    report(capsys, "(a) rolling restart", outcome)
    after = cluster.pids()
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    for items in outcome.received:
        assert_every_event_once_in_order(items, outcome.published)
    assert all(c.stats.reconnects >= 1 for c in outcome.clients)  # both workers went away
    assert outcome.refused == []
    assert connections_to_draining_workers(cluster) == 0  # they stopped accepting on the socket


def connections_to_draining_workers(cluster: ServedCluster) -> int:
    """Websockets a worker accepted after it began draining, from daphne's access logs."""
    accepted = 0
    for log in cluster.run_dir.glob("worker*.log"):
        draining = False
        for line in log.read_text().splitlines():
            if "streaming.sessions.drain" in line and "draining" in line:
                draining = True
            elif "Starting server" in line:  # the replacement process, logging to the same file
                draining = False
            elif draining and '"WSCONNECT ' in line:
                accepted += 1
    return accepted


async def signal_busiest_worker(
    cluster: ServedCluster,
    tokens: list[str],
    sig: int,
    first: Callable[[int], Awaitable[object]] | None = None,
) -> tuple[Outcome, str, int]:
    """Run the chaos with `sig` sent to the busiest worker; returns the outcome and its name and pid."""
    victim: list[tuple[str, int]] = []

    async def send() -> None:
        name, pid = busiest_worker(cluster)
        victim.append((name.split(":")[1], pid))
        if first is not None:
            await first(pid)
        os.kill(pid, sig)

    outcome = await run_chaos(cluster.ws_url, tokens, send)
    for items in outcome.received:
        assert_every_event_once_in_order(items, outcome.published)
    assert any(c.stats.reconnects for c in outcome.clients)
    return outcome, *victim[0]


async def test_b_sigterm_of_one_worker_loses_nothing(cluster, tokens, capsys):
    outcome, name, _ = await signal_busiest_worker(cluster, tokens, signal.SIGTERM)
    report(capsys, "(b) SIGTERM", outcome)
    assert f"exited: {name} (exit status 0; expected)" in cluster.log()


async def test_c_sigkill_of_one_worker_loses_nothing(cluster, tokens, capsys):
    async def recorded(pid: int) -> bool:  # so that the sweep has sessions to close
        return await _eventually(lambda: _open_sessions_of(pid), 10)

    outcome, name, pid = await signal_busiest_worker(cluster, tokens, signal.SIGKILL, recorded)
    report(capsys, "(c) SIGKILL", outcome)
    assert f"exited: {name} (terminated by SIGKILL" in cluster.log()
    assert await _eventually(lambda: _all_sessions_closed(pid), 25)


async def _eventually(check: Callable[[], bool], timeout: float) -> bool:
    """Whether a database check passes within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await sync_to_async(check)():
            return True
        await asyncio.sleep(0.3)
    return False


def _open_sessions_of(pid: int) -> bool:
    return StreamSession.objects.filter(worker__pid=pid, closed_at__isnull=True).exists()


def _all_sessions_closed(pid: int) -> bool:
    """The dead worker's sessions were recorded, and the survivors' sweep has closed every one."""
    return StreamSession.objects.filter(worker__pid=pid).exists() and not _open_sessions_of(pid)


async def test_d_redis_restart_is_never_a_silent_loss(cluster, throwaway_redis, tokens, capsys):
    back: list[float] = []

    async def restart_redis() -> None:
        await asyncio.to_thread(throwaway_redis.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(throwaway_redis.start)
        back.append(time.monotonic())

    outcome = await run_chaos(cluster.ws_url, tokens, restart_redis)
    report(capsys, "(d) Redis restart", outcome)
    with capsys.disabled():
        print(
            f"chaos (d): every client told of the lost history within "
            f"{max(outcome.resets_at) - back[0]:.2f} s of Redis being back"
        )
    assert len({epoch for epoch, _, _ in outcome.published}) == 2  # the history was lost: new epoch
    for items in outcome.received:
        assert assert_every_event_once_in_order(items, outcome.published, resets_allowed=True) >= 1
