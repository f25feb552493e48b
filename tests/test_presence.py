"""Presence: who follows a stream, on one worker and across real workers sharing Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect

from streaming.client import Followers, StreamClient
from streaming.models import StreamOptions
from streaming.sessions.operations import load_stream_options
from tests.streaming_helpers import make_user, open_session, recv, send, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users(db):
    return [make_user(name) for name in ("alice", "bob")]


async def shared(mode: str) -> None:
    await StreamOptions.objects.aupdate_or_create(service="widgets", defaults={"presence": mode})
    await load_stream_options()


async def ask(comm, message: dict) -> dict:
    await send(comm, {"id": "q", **message})
    return await recv(comm)


async def session_of(user):
    comm, _ = await open_session(await sync_to_async(token_for)(user))
    return comm


async def test_presence_refused_where_the_service_does_not_share_it(store, users, worker_cleanup):
    comm = await session_of(users[0])
    reply = await ask(comm, {"type": "presence", "service": "widgets"})
    assert reply == {"type": "error", "code": "presence_unavailable", "message": reply["message"], "id": "q"}
    reply = await ask(comm, {"type": "subscribe", "service": "widgets", "presence": True})
    assert reply["code"] == "presence_unavailable"
    assert (await ask(comm, {"type": "subscribe", "service": "widgets", "presence": 1}))[
        "code"
    ] == "bad_request"
    await shared("users")
    assert (await ask(comm, {"type": "presence", "service": "widgets", "topic": "x:"}))[
        "code"
    ] == "bad_request"
    reply = await ask(comm, {"type": "presence", "service": "widgets", "topic": "widget:123456"})
    assert reply["code"] == "forbidden"
    await comm.disconnect()


async def test_presence_answers_how_many_and_who_as_the_service_allows(store, users, worker_cleanup):
    comm = await session_of(users[0])
    await shared("users")
    others = [await session_of(users[1]) for _ in range(2)]
    for other in others:
        await ask(other, {"type": "subscribe", "service": "widgets"})
    reply = await ask(comm, {"type": "presence", "service": "widgets"})
    assert reply == {
        "type": "presence",
        "service": "widgets",
        "topic": "all",
        "count": 2,
        "users": ["bob"],
        "id": "q",
    }
    await shared("count")
    assert "users" not in await ask(comm, {"type": "presence", "service": "widgets"})
    await others[0].disconnect()
    assert (await ask(comm, {"type": "presence", "service": "widgets"}))["count"] == 1
    await others[1].disconnect()
    await comm.disconnect()


async def test_watchers_get_one_coalesced_diff_per_interval(store, users, worker_cleanup):
    await shared("users")
    watcher = await session_of(users[0])
    subscribed = await ask(watcher, {"type": "subscribe", "service": "widgets", "presence": True})
    assert subscribed["type"] == "subscribed"
    assert await recv(watcher) == {
        "type": "presence",
        "service": "widgets",
        "topic": "all",
        "count": 1,
        "users": ["alice"],
    }
    crowd = [await session_of(users[1]) for _ in range(5)]  # a reconnect burst of one user's tabs
    for comm in crowd:
        await ask(comm, {"type": "subscribe", "service": "widgets"})
    diff = await recv(watcher, timeout=3)
    assert diff == {
        "type": "presence",
        "service": "widgets",
        "topic": "all",
        "count": 6,
        "joined": ["bob"],
        "left": [],
    }
    assert await watcher.receive_nothing(1.5)  # five joins, one message
    for comm in crowd:
        await comm.disconnect()
    diff = await recv(watcher, timeout=3)
    assert (diff["count"], diff["joined"], diff["left"]) == (1, [], ["bob"])
    await watcher.disconnect()


# Across real workers ---------------------------------------------------------------------------

TTL = 3.0


async def ws_session(url: str, token: str, **subscribe) -> ClientConnection:
    ws = await connect(url, subprotocols=["widgetapp.v1", f"bearer.{token}"])  # type: ignore[list-item]
    assert json.loads(await ws.recv())["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "service": "widgets", **subscribe}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


async def ws_presence(ws: ClientConnection) -> dict:
    await ws.send(json.dumps({"type": "presence", "service": "widgets", "id": "p"}))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if reply.get("id") == "p":
            return reply


@pytest.mark.slow
async def test_presence_across_workers_and_after_one_is_killed(
    daphne_factory, server_env, users, client, admin_user
):
    env = {**server_env, "STREAMING_PRESENCE_TTL": str(TTL)}
    first, second = daphne_factory(env), daphne_factory(env)
    # The admin switches presence on while both workers run.
    await sync_to_async(client.force_login)(admin_user)
    response = await sync_to_async(client.post)(
        "/admin/streaming/streamoptions/add/",
        {"service": "widgets", "presence": "users", "latest": "unknown"},
    )
    assert response.status_code == 302
    await asyncio.sleep(1.5)  # the control bus reaches every worker well within 2 s
    alice, bob = [await sync_to_async(token_for)(user) for user in users]
    doomed = [await ws_session(first.ws_url, alice) for _ in range(3)]
    watcher = await ws_session(second.ws_url, bob, presence=True)
    snapshot = json.loads(await asyncio.wait_for(watcher.recv(), 5))
    assert (snapshot["count"], snapshot["users"]) == (4, ["alice", "bob"])
    assert (await ws_presence(watcher))["count"] == 4
    first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    first.wait(5)
    killed_at = time.monotonic()
    diff = json.loads(await asyncio.wait_for(watcher.recv(), TTL + 3))
    assert (diff["count"], diff["left"]) == (1, ["alice"])
    assert time.monotonic() - killed_at < TTL + 2.5
    assert (await ws_presence(watcher))["users"] == ["bob"]
    async with StreamClient(second.ws_url, bob) as python_client:
        assert await python_client.presence("widgets") == Followers(1, ["bob"])
    await watcher.close()
    for ws in doomed:
        ws.transport.abort()
