"""The Python client against a small in-test server that speaks wire protocol v1."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from streaming.client import (
    ClientClosed,
    Event,
    Reset,
    ServerError,
    State,
    StreamClient,
    backoff_delay,
)
from streaming.client.streams import Stream
from streaming.wire import protocol as p
from streaming.wire.protocol import Position

USER_TOPIC = "42"


class FakeServer:
    """History per stream, resume with `since`, heartbeats, in-band auth and scripted closes."""

    def __init__(self) -> None:
        self.epoch = "e1"
        self.recoverable = True
        self.valid_tokens = {"good"}
        self.history: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.subscribers: dict[tuple[str, str], set[ServerConnection]] = defaultdict(set)
        self.connections: list[ServerConnection] = []
        self.tokens: list[str | None] = []
        self.offered: list[list[str]] = []
        self.connected_at: list[float] = []
        self.received: list[dict[str, Any]] = []
        self.pongs = asyncio.Queue[dict[str, Any]]()
        self.url = ""

    async def __aenter__(self) -> FakeServer:
        self._server = await serve(self.handler, "127.0.0.1", 0, subprotocols=[Subprotocol(p.SUBPROTOCOL)])
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws/stream/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    def _token(self, ws: ServerConnection) -> str | None:
        offered = [o.strip() for o in ws.request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        self.offered.append(offered)
        bearer = [o.removeprefix(p.BEARER_PREFIX) for o in offered if o.startswith(p.BEARER_PREFIX)]
        header = ws.request.headers.get("Authorization", "").removeprefix("Bearer ")
        return (bearer or [header or None])[0]

    async def handler(self, ws: ServerConnection) -> None:
        token = self._token(ws)
        self.tokens.append(token)
        self.connections.append(ws)
        self.connected_at.append(time.monotonic())
        if token not in self.valid_tokens:
            await ws.close(p.CLOSE_UNAUTHENTICATED, "invalid token")
            return
        await send(ws, type="welcome", session="s1", heartbeat=30, services=["notifications"])
        try:
            async for raw in ws:
                msg = json.loads(raw)
                self.received.append(msg)
                await self.answer(ws, msg, {"id": msg["id"]} if "id" in msg else {})
        finally:
            for subscribers in self.subscribers.values():
                subscribers.discard(ws)

    async def answer(self, ws: ServerConnection, msg: dict[str, Any], reply: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == p.SUBSCRIBE:
            await self.subscribe(ws, msg, reply)
        elif kind == p.REQUEST and msg["action"] == "fail":
            await send(ws, type="error", code="forbidden", message="Not allowed.", **reply)
        elif kind == p.REQUEST:
            await asyncio.sleep(msg["data"].get("delay", 0))
            await send(ws, type="response", data={"echo": msg["data"]}, **reply)
        elif kind == p.PING:
            await send(ws, type="pong", **reply)
        elif kind == p.PONG:
            self.pongs.put_nowait(msg)
        elif kind == p.AUTH and msg["token"] in self.valid_tokens:
            await send(ws, type="authenticated", expires_at="2030-01-01T00:00:00Z", **reply)
        elif kind == p.AUTH:
            await ws.close(p.CLOSE_UNAUTHENTICATED, "invalid token")

    async def subscribe(self, ws: ServerConnection, msg: dict[str, Any], reply: dict[str, Any]) -> None:
        key = (msg["service"], msg.get("topic") or USER_TOPIC)
        events, since = self.history[key], msg.get("since")
        recovered = bool(since) and since["epoch"] == self.epoch and self.recoverable
        head = len(events)
        await send(
            ws, type="subscribed", service=key[0], topic=key[1], epoch=self.epoch, seq=head,
            recovered=recovered, **reply,
        )  # fmt: skip
        for event in events[since["seq"] :] if recovered else []:
            await ws.send(json.dumps(event))
        self.subscribers[key].add(ws)

    async def publish(self, data: Any, service: str = "notifications", topic: str = USER_TOPIC) -> None:
        key = (service, topic)
        event = {"type": "event", "service": service, "topic": topic, "epoch": self.epoch}
        event |= {"seq": len(self.history[key]) + 1, "data": data}
        self.history[key].append(event)
        for ws in list(self.subscribers[key]):
            await ws.send(json.dumps(event))

    async def close_all(self, code: int, retry_after_ms: int | None = None) -> None:
        for ws in self.live():
            if retry_after_ms is not None:
                await send(ws, type="reconnect", reason="restart", retry_after_ms=retry_after_ms)
            await ws.close(code, "test")

    def live(self) -> list[ServerConnection]:
        return [ws for ws in self.connections if ws.close_code is None]


async def send(ws: ServerConnection, **msg: Any) -> None:
    await ws.send(json.dumps(msg))


async def take(client: StreamClient, count: int) -> list[Event | Reset]:
    items: list[Event | Reset] = []
    async with asyncio.timeout(5):
        async for item in client.events():
            items.append(item)
            if len(items) == count:
                break
    return items


async def until(condition: Callable[[], bool]) -> None:
    """Poll a condition on state the fake server and client expose (neither signals it)."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    async with FakeServer() as fake:
        yield fake


def make_client(server: FakeServer, token: str = "good", **options: Any) -> StreamClient:
    return StreamClient(server.url, token, backoff_base=0.01, backoff_cap=0.05, **options)


def seqs(items: list[Event | Reset]) -> list[int]:
    return [item.seq for item in items if isinstance(item, Event)]


async def test_token_goes_in_the_bearer_subprotocol_and_welcome_comes_back(server: FakeServer) -> None:
    async with make_client(server) as client:
        assert client.welcome is not None and client.welcome["type"] == "welcome"
        assert client.state is State.OPEN
        assert server.offered[0] == ["widgetapp.v1", "bearer.good"]
        assert server.live()[0].subprotocol == "widgetapp.v1"


async def test_token_can_go_in_the_authorization_header(server: FakeServer) -> None:
    async with make_client(server, auth_header=True):
        assert server.offered[0] == ["widgetapp.v1"]
        assert server.tokens == ["good"]


async def test_subscribe_uses_the_servers_topic_and_delivers_events_in_order(server: FakeServer) -> None:
    async with make_client(server) as client:
        assert await client.subscribe("notifications") == USER_TOPIC
        for n in range(3):
            await server.publish({"n": n})
        items = await take(client, 3)
    assert items == [Event("notifications", USER_TOPIC, "e1", n + 1, {"n": n}) for n in range(3)]


async def test_drain_close_is_resumed_with_since_after_the_retry_hint(server: FakeServer) -> None:
    states: list[State] = []
    async with make_client(server, on_state=states.append) as client:
        await client.subscribe("notifications")
        await server.publish("a")
        await server.publish("b")
        assert seqs(await take(client, 2)) == [1, 2]
        closed_at = time.monotonic()
        await server.close_all(p.CLOSE_RESTART, retry_after_ms=300)
        await server.publish("c")  # published while the client is away
        await until(lambda: len(server.connected_at) == 2)
        assert server.connected_at[1] - closed_at >= 0.3
        await server.publish("d")
        assert seqs(await take(client, 2)) == [3, 4]
        resubscribe = [m for m in server.received if m["type"] == "subscribe"][-1]
        assert resubscribe["since"] == {"epoch": "e1", "seq": 2}
        assert resubscribe["topic"] == USER_TOPIC
        assert client.stats.reconnects == 1 and client.stats.last_reconnect_s >= 0.3
    assert states == ["connecting", "open", "reconnecting", "open", "closed"]


async def test_abnormal_closure_reconnects_with_backoff(server: FakeServer) -> None:
    async with make_client(server) as client:
        await client.subscribe("notifications")
        server.live()[0].transport.abort()  # no close frame: 1006 on the client side
        await until(lambda: client.stats.reconnects == 1)
        await server.publish("after")
        assert seqs(await take(client, 1)) == [1]


@pytest.mark.parametrize("code", [p.CLOSE_PROTOCOL, p.CLOSE_UNAUTHENTICATED, p.CLOSE_FORBIDDEN])
async def test_terminal_close_codes_stop_the_client(server: FakeServer, code: int) -> None:
    client = make_client(server)
    await client.connect()
    await server.close_all(code)
    with pytest.raises(ClientClosed) as raised:
        await take(client, 1)
    assert raised.value.code == code
    assert client.state is State.CLOSED
    await asyncio.sleep(0.2)
    assert len(server.connections) == 1


async def test_refused_token_fails_connect(server: FakeServer) -> None:
    with pytest.raises(ClientClosed) as raised:
        await make_client(server, token="bad").connect()
    assert raised.value.code == p.CLOSE_UNAUTHENTICATED


async def test_4401_asks_the_token_provider_and_resumes(server: FakeServer) -> None:
    server.valid_tokens = {"good", "fresh"}

    async def provider() -> str:
        return "fresh"

    async with make_client(server, token_provider=provider) as client:
        await client.subscribe("notifications")
        await server.publish(1)
        await take(client, 1)
        await server.close_all(p.CLOSE_UNAUTHENTICATED)
        await server.publish(2)
        assert seqs(await take(client, 1)) == [2]
    assert server.tokens == ["good", "fresh"]


async def test_duplicates_are_dropped(server: FakeServer) -> None:
    async with make_client(server) as client:
        await client.subscribe("notifications")
        await server.publish("a")
        ws = server.live()[0]
        await ws.send(json.dumps(server.history[("notifications", USER_TOPIC)][0]))  # seq 1 again
        await server.publish("b")
        assert seqs(await take(client, 2)) == [1, 2]
        assert client.stats.duplicates_dropped == 1


async def test_lost_history_is_surfaced_as_a_reset(server: FakeServer) -> None:
    resets: list[Reset] = []
    async with make_client(server, on_reset=resets.append) as client:
        await client.subscribe("notifications")
        await server.publish("a")
        await take(client, 1)
        server.epoch, server.recoverable = "e2", False  # the history store was reset
        await server.close_all(p.CLOSE_RESTART, retry_after_ms=0)
        await until(lambda: client.stats.reconnects == 1)
        await server.publish("fresh")
        items = await take(client, 2)
    assert items == [
        Reset("notifications", USER_TOPIC, "not_recovered"),
        Event("notifications", USER_TOPIC, "e2", 2, "fresh"),
    ]
    assert resets == [items[0]]


async def test_subscribe_from_a_snapshot_position_replays_what_followed(server: FakeServer) -> None:
    for n in range(5):
        await server.publish(n, service="widgets", topic="all")
    async with make_client(server) as client:
        await client.subscribe("widgets", "all", since=Position("e1", 3))
        assert seqs(await take(client, 2)) == [4, 5]


async def test_server_heartbeat_is_answered_with_pong(server: FakeServer) -> None:
    async with make_client(server):
        await send(server.live()[0], type="ping")
        async with asyncio.timeout(2):
            assert await server.pongs.get() == {"type": "pong"}


async def test_requests_are_matched_by_id(server: FakeServer) -> None:
    async with make_client(server) as client:
        slow = asyncio.create_task(client.request("widgets", "list", {"delay": 0.2}))
        fast = await client.request("widgets", "list", {"delay": 0})
        assert fast == {"echo": {"delay": 0}}
        assert await slow == {"echo": {"delay": 0.2}}
        with pytest.raises(ServerError) as raised:
            await client.request("widgets", "fail", {})
        assert raised.value.code == "forbidden"
        assert await client.ping() < 1


async def test_refresh_in_band_and_on_token_expiring(server: FakeServer) -> None:
    server.valid_tokens = {"good", "second", "third"}

    async def provider() -> str:
        return "third"

    async with make_client(server, token_provider=provider) as client:
        assert await client.refresh("second") == "2030-01-01T00:00:00Z"
        await send(server.live()[0], type="token_expiring", expires_at="2030-01-01T00:00:00Z", expires_in=60)
        await until(lambda: len([m for m in server.received if m["type"] == "auth"]) == 2)
    assert [m["token"] for m in server.received if m["type"] == "auth"] == ["second", "third"]


def test_backoff_is_full_jitter_capped_and_honours_the_hint() -> None:
    delays = [backoff_delay(attempt) for attempt in range(12) for _ in range(50)]
    assert all(0 <= d <= 10 for d in delays)
    assert max(backoff_delay(0) for _ in range(200)) <= 0.25
    assert min(backoff_delay(0, hint=1.5) for _ in range(50)) >= 1.5


async def test_a_disabled_service_suspends_the_stream_and_enabling_resumes_it(server: FakeServer) -> None:
    async with make_client(server) as client:
        await client.subscribe("notifications")
        await server.publish("a")
        assert seqs(await take(client, 1)) == [1]
        ws = server.live()[0]
        server.subscribers[("notifications", USER_TOPIC)].discard(ws)
        await send(ws, type="error", code="service_disabled", message="Service is disabled.",
                   service="notifications", topic=USER_TOPIC)  # fmt: skip
        assert await take(client, 1) == [Reset("notifications", USER_TOPIC, "service_disabled")]
        await server.publish("b")  # missed while disabled
        await server.subscribe(ws, {"service": "notifications", "since": {"epoch": "e1", "seq": 1}}, {})
        items = await take(client, 1)
    assert items == [Event("notifications", USER_TOPIC, "e1", 2, "b")]


async def test_the_latest_value_is_delivered_and_marked() -> None:
    stream = Stream("load", None)
    stream.on_subscribed({"topic": "all", "epoch": "e", "seq": 4, "recovered": False})
    head = {"type": "event", "service": "load", "topic": "all", "epoch": "e"}
    _, latest = stream.on_event({**head, "seq": 5, "data": {"cpu": 3}, "latest": True})
    _, live = stream.on_event({**head, "seq": 6, "data": {"cpu": 4}})
    assert latest == Event("load", "all", "e", 5, {"cpu": 3}, latest=True)
    assert live is not None and not live.latest


def test_backoff_spreads_returns_over_the_servers_window() -> None:
    delays = [backoff_delay(0, hint=1.0, spread=2.0) for _ in range(400)]
    assert all(1.0 <= d <= 3.0 for d in delays)
    assert max(delays) - min(delays) > 1.5  # spread over the window, not bunched at the hint
