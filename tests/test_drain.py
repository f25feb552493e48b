"""Drain: SIGTERM or the admin's drain op hands every client over (reconnect + 4012), then daphne exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streaming.bus import control
from streaming.delivery.worker import get_worker
from streaming.models import StreamSession, WorkerProcess
from streaming.sessions.drain import spread
from tests.streaming_helpers import communicator, expect_close, make_user, open_session, recv, token_for

pytestmark = pytest.mark.django_db(transaction=True)

DRAIN_SECONDS = 2.0


@pytest.fixture
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    """The shared worker environment with a short drain window."""
    return {**server_env, "STREAMING_DRAIN_SECONDS": str(DRAIN_SECONDS)}


@pytest.fixture
def token(db) -> str:
    user = make_user("drained", staff=True, services=("widgets", "load"))
    return token_for(user, "stream:widgets stream:load")


async def _open(url: str, token: str) -> ClientConnection:
    ws = await connect(url, subprotocols=["widgetapp.v1", f"bearer.{token}"])  # type: ignore[list-item]
    assert json.loads(await ws.recv())["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "service": "widgets", "id": 1}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def _until_close(
    ws: ClientConnection, started: float
) -> tuple[list[dict[str, Any]], int | None, float]:
    """Everything received until the server closed, the close code, and when (since `started`)."""
    received = []
    try:
        async for raw in ws:
            received.append(json.loads(raw))
    except ConnectionClosed:
        pass
    return received, ws.close_code, time.monotonic() - started


async def _worker_id(ws: ClientConnection) -> str:
    await ws.send(json.dumps({"type": "request", "service": "load", "action": "snapshot", "id": 2}))
    reply = json.loads(await ws.recv())
    assert reply["type"] == "response", reply
    return reply["data"]["worker"]


def _assert_handed_over(received: list[dict[str, Any]], code: int | None) -> None:
    assert code == 4012
    assert received[-1]["type"] == "reconnect" and received[-1]["reason"] == "restart", received
    assert 100 <= received[-1]["retry_after_ms"] <= 1000


async def test_sigterm_hands_every_client_over_within_the_window_then_exits_0(
    daphne_factory, server_env, token
):
    server = daphne_factory(server_env)
    clients = [await _open(server.ws_url, token) for _ in range(12)]
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    results = await asyncio.gather(*(_until_close(ws, started) for ws in clients))
    for received, code, _ in results:
        _assert_handed_over(received, code)
    times = sorted(at for _, _, at in results)
    assert times[-1] <= DRAIN_SECONDS + 1.0, times
    assert times[-1] - times[0] >= DRAIN_SECONDS / 3, f"closes not spread over the window: {times}"
    assert await asyncio.to_thread(server.wait, 10) == 0
    worker = await WorkerProcess.objects.aget(pid=server.proc.pid)
    assert worker.state == WorkerProcess.State.STOPPED  # its last write, before it exited
    assert not await StreamSession.objects.filter(worker=worker, closed_at__isnull=True).aexists()


async def test_drain_operation_drains_only_the_named_worker(daphne_factory, server_env, token):
    first, second = daphne_factory(server_env), daphne_factory(server_env)
    on_first, on_second = await _open(first.ws_url, token), await _open(second.ws_url, token)
    first_id = await _worker_id(on_first)
    assert first_id != await _worker_id(on_second)
    started = time.monotonic()
    await control.abroadcast("drain", worker_id=first_id)
    received, code, _ = await _until_close(on_first, started)
    _assert_handed_over(received, code)
    assert await asyncio.to_thread(first.wait, 10) == 0
    await on_second.send(json.dumps({"type": "ping", "id": 3}))
    assert json.loads(await on_second.recv()) == {"type": "pong", "id": 3}
    await on_second.close()


@pytest.fixture
def in_process(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMING = {**settings.STREAMING, "REDIS_URL": "", "DRAIN_SECONDS": 0.3}


async def test_drain_operation_for_another_worker_is_ignored_and_ours_hands_over(in_process, token):
    comm, _ = await open_session(token)
    worker = get_worker()
    try:
        await control.apply(worker, "drain", {"worker_id": "some-other-host:1:abcdef"})
        assert not worker.draining
        await control.apply(worker, "drain", {"worker_id": worker.id})
        assert worker.draining
        reconnect = await recv(comm)
        assert reconnect["type"] == "reconnect" and reconnect["reason"] == "restart"
        await expect_close(comm, 4012)
    finally:
        await worker.close()


async def test_a_connection_arriving_while_draining_is_sent_on_at_once(in_process, token):
    comm, _ = await open_session(token)
    worker = get_worker()
    try:
        await control.apply(worker, "drain", {"worker_id": worker.id})
        await expect_close(comm, 4012)
        late = communicator(token)
        connected, _ = await late.connect()
        assert connected
        assert (await recv(late))["type"] == "reconnect"
        await expect_close(late, 4012)
    finally:
        await worker.close()


def test_closes_are_spread_one_per_slice_of_the_window():
    conns = [object() for _ in range(10)]
    times = sorted(at for at, _ in spread(conns, 5.0))  # type: ignore[arg-type]
    assert [int(at // 0.5) for at in times] == list(range(10))
