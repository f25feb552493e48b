"""History that cannot exhaust Redis or a connection: idle streams expire, replays are paged and bounded."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from streaming.delivery.backend import get_backend
from streaming.delivery.publish import publish
from streaming.delivery.redis_backend import REPLAY_PAGE
from tests.streaming_helpers import open_session, recv, send, token_for

pytestmark = pytest.mark.django_db(transaction=True)

KEY = ("notifications", "7")


def _fill(count: int, size: int = 100) -> None:
    backend = get_backend()
    for n in range(count):
        backend.append(KEY, json.dumps({"n": n, "pad": "x" * size}))


async def test_history_is_read_in_pages_and_a_replay_over_the_budget_is_not_read(store):
    await sync_to_async(_fill)(REPLAY_PAGE * 2 + 3)
    backend = get_backend()
    head = await backend.replay(KEY, None, 0)
    whole = await backend.replay(KEY, head.epoch, 0)
    assert [seq for seq, _ in whole.frames] == list(range(1, REPLAY_PAGE * 2 + 4))  # across pages
    size = sum(len(frame) for _, frame in whole.frames)
    assert (await backend.replay(KEY, head.epoch, 0, max_bytes=size)).frames == whole.frames
    assert (await backend.replay(KEY, head.epoch, 0, max_bytes=size - 1)).frames is None
    tail = await backend.replay(KEY, head.epoch, head.seq - 2, max_bytes=size // 100)
    assert [seq for seq, _ in tail.frames] == [head.seq - 1, head.seq]


async def test_a_resume_bigger_than_the_outbound_bound_refetches(store, settings, alice, worker_cleanup):
    settings.STREAMING = {**settings.STREAMING, "MAX_OUTBOUND_BYTES": 64 * 1024}
    first = await sync_to_async(get_backend().append)(("widgets", "all"), json.dumps({"n": 0}))
    for n in range(200):  # ~100 KB of frames: more than the connection may have queued
        await sync_to_async(publish)("widgets", {"n": n, "pad": "y" * 400}, topic="all")
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    since = {"epoch": first.epoch, "seq": 0}
    await send(comm, {"type": "subscribe", "service": "widgets", "id": "s", "since": since})
    reply = await recv(comm)
    assert reply["type"] == "subscribed" and reply["recovered"] is False and reply["seq"] == 201
    await send(comm, {"type": "ping", "id": "p"})
    assert await recv(comm) == {"type": "pong", "id": "p"}  # nothing was replayed before it
    near = {"epoch": first.epoch, "seq": 195}
    await send(comm, {"type": "unsubscribe", "service": "widgets", "id": "u"})
    assert (await recv(comm))["type"] == "unsubscribed"
    await send(comm, {"type": "subscribe", "service": "widgets", "id": "s2", "since": near})
    assert (await recv(comm))["recovered"] is True
    assert [(await recv(comm))["seq"] for _ in range(6)] == [196, 197, 198, 199, 200, 201]
    await comm.disconnect()


@pytest.mark.services
async def test_idle_streams_expire_and_come_back_in_a_new_epoch(redis_prefix, settings):
    settings.STREAMING = {
        **settings.STREAMING,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "HISTORY_MIN_SECONDS": 1,
        "STREAM_IDLE_EXPIRY_SECONDS": 1,
    }
    backend = get_backend()
    before = await sync_to_async(backend.append)(KEY, '"a"')
    meta, hist, _ = backend.keys(KEY)
    assert 0 < backend.sync_client.ttl(meta) <= 1 and 0 < backend.sync_client.ttl(hist) <= 1
    await asyncio.sleep(1.5)
    assert backend.sync_client.exists(meta, hist) == 0
    after = await sync_to_async(backend.append)(KEY, '"b"')
    assert after.epoch != before.epoch and after.seq == 1
    assert (await backend.replay(KEY, before.epoch, before.seq)).frames is None  # clients refetch
    settings.STREAMING = {**settings.STREAMING, "STREAM_IDLE_EXPIRY_SECONDS": 7 * 24 * 3600}
    await sync_to_async(backend.append)(KEY, '"c"')
    assert backend.sync_client.ttl(meta) > 7 * 24 * 3600 - 5
