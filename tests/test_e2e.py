"""End to end: real daphne + Redis + PostgreSQL, with a real websocket client."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
import websockets
from asgiref.sync import sync_to_async

from tests.streaming_helpers import http_publish as publish_over_http
from tests.streaming_helpers import make_user, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(db):
    """An approved user who may also publish notifications over HTTP."""
    return make_user("alice", publish=("widgets", "notifications"))


async def recv(ws, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def request_json(ws, message: dict) -> dict:
    await ws.send(json.dumps(message))
    return await recv(ws)


def http_publish(server, token: str, service: str, body: dict) -> tuple[int, dict]:
    status, reply, _ = publish_over_http(server.url, token, service, body)
    return status, reply


async def test_three_auth_methods_get_welcome(server, alice):
    token = await sync_to_async(token_for)(alice)
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"]) as ws:
        assert ws.subprotocol == "widgetapp.v1"
        assert (await recv(ws))["type"] == "welcome"
    async with websockets.connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        assert (await recv(ws))["type"] == "welcome"
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1"]) as ws:
        welcome = await request_json(ws, {"type": "auth", "token": token, "id": "a"})
        assert welcome["type"] == "welcome" and welcome["id"] == "a"
        assert welcome["services"] == ["notifications", "widgets"]


async def test_nothing_served_before_auth_and_auth_timeout(server, alice, settings):
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "service": "widgets"}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd.code == 4401


async def test_http_publish_reaches_subscribers_in_order(server, alice):
    token = await sync_to_async(token_for)(alice, "stream:notifications publish:notifications")
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"]) as ws:
        await recv(ws)
        sub = await request_json(ws, {"type": "subscribe", "service": "notifications", "id": 1})
        assert sub["type"] == "subscribed" and sub["id"] == 1
        for n in range(5):
            event = {"topic": str(alice.pk), "data": {"message": str(n)}}
            status, body = await asyncio.to_thread(http_publish, server, token, "notifications", event)
            assert status == 202 and body["seq"] == sub["seq"] + n + 1
        events = [await recv(ws) for _ in range(5)]
        assert [e["data"]["message"] for e in events] == [str(n) for n in range(5)]
        assert [e["seq"] for e in events] == [sub["seq"] + n + 1 for n in range(5)]


async def test_http_publish_errors(server, alice):
    reader = await sync_to_async(token_for)(alice, "stream:notifications")
    writer = await sync_to_async(token_for)(alice, "stream:notifications publish:notifications")
    assert (await asyncio.to_thread(http_publish, server, "garbage", "notifications", {"data": 1}))[0] == 401
    status, body = await asyncio.to_thread(http_publish, server, reader, "notifications", {"data": 1})
    assert (status, body["error"]) == (403, "forbidden")
    status, body = await asyncio.to_thread(http_publish, server, writer, "nope", {"data": 1})
    assert (status, body["error"]) == (404, "unknown_service")
    status, body = await asyncio.to_thread(http_publish, server, writer, "notifications", {"nodata": 1})
    assert (status, body["error"]) == (400, "bad_request")


async def test_dropped_announcement_is_healed_from_history(server, alice, redis_prefix, settings):
    """A lost pub/sub message (as a full channel layer would drop) is filled from history in order."""
    from streaming.delivery.redis_backend import RedisBackend

    token = await sync_to_async(token_for)(alice)
    history = RedisBackend("redis://127.0.0.1:6379/0", redis_prefix)
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"]) as ws:
        await recv(ws)
        sub = await request_json(ws, {"type": "subscribe", "service": "widgets"})
        key = ("widgets", "all")
        history.append(key, '{"n":1}')
        history.append(key, '{"n":2}', announce=False)  # the announcement of seq 2 is lost
        history.append(key, '{"n":3}')
        events = [await recv(ws) for _ in range(3)]
        assert [e["seq"] - sub["seq"] for e in events] == [1, 2, 3]
        assert [e["data"]["n"] for e in events] == [1, 2, 3]


async def test_resume_after_disconnect_against_real_server(server, alice, redis_prefix):
    from streaming.delivery.redis_backend import RedisBackend

    token = await sync_to_async(token_for)(alice)
    history = RedisBackend("redis://127.0.0.1:6379/0", redis_prefix)
    key = ("widgets", "all")
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"]) as ws:
        await recv(ws)
        sub = await request_json(ws, {"type": "subscribe", "service": "widgets"})
        history.append(key, '{"n":1}')
        last = await recv(ws)
    for n in range(2, 12):
        history.append(key, json.dumps({"n": n}))
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"]) as ws:
        await recv(ws)
        since = {"epoch": last["epoch"], "seq": last["seq"]}
        reply = await request_json(ws, {"type": "subscribe", "service": "widgets", "since": since})
        assert reply["recovered"] is True and reply["seq"] == sub["seq"] + 11
        replayed = [(await recv(ws))["data"]["n"] for _ in range(10)]
        assert replayed == list(range(2, 12))


async def test_http_publish_rejects_get_and_bad_bodies(server, alice):
    writer = await sync_to_async(token_for)(alice, "stream:notifications publish:notifications")
    req = urllib.request.Request(
        f"{server.url}/api/streams/notifications/events", headers={"Authorization": f"Bearer {writer}"}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        await asyncio.to_thread(urllib.request.urlopen, req, None, 5)
    assert err.value.code == 405 and json.loads(err.value.read())["error"] == "method_not_allowed"
    for body in (b"not json", b"[1]", b'{"data": 1, "extra": 2}', b'{"topic": 5, "data": 1}'):
        req = urllib.request.Request(
            f"{server.url}/api/streams/notifications/events",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {writer}"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            await asyncio.to_thread(urllib.request.urlopen, req, None, 5)
        assert err.value.code == 400 and json.loads(err.value.read())["error"] == "bad_request"
