"""Attacks over HTTP against a real daphne: oversized bodies, careless publishers, publish floods."""

from __future__ import annotations

import asyncio
import json
import select
import socket

import psutil
import pytest
import websockets
from asgiref.sync import sync_to_async
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.models import User
from streaming import services
from streaming.models import ServiceConfig
from streaming.services import Principal
from streaming.wire.protocol import BAD_REQUEST, FORBIDDEN, ProtocolError
from tests.streaming_helpers import http_publish as publish_over_http
from tests.streaming_helpers import make_user, token_for

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture
def server(daphne_factory, server_env):
    return daphne_factory(server_env)


@pytest.fixture
def alice(db) -> User:
    return make_user("alice", publish=("widgets", "notifications"))


def rss(server) -> int:
    return psutil.Process(server.proc.pid).memory_info().rss


def read_status(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1]) if head else 0


def send_big_body(server, path: str, *, declared: bool, total: int = 48 * MB) -> tuple[int, int]:
    """POST `total` bytes without a token; (status, bytes sent before the server answered)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    length = f"Content-Length: {total}" if declared else "Transfer-Encoding: chunked"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{length}\r\n\r\n".encode())
    chunk, sent = b"x" * (64 * 1024), 0
    try:
        while sent < total:
            if select.select([sock], [], [], 0.05)[0]:
                return read_status(sock), sent
            framed = chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk)
            sock.sendall(framed)
            sent += len(chunk)
        return read_status(sock), sent
    except (BrokenPipeError, ConnectionResetError):
        return read_status(sock), sent
    finally:
        sock.close()


async def _bystander(server, token: str):
    ws = await websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"])
    assert json.loads(await ws.recv())["type"] == "welcome"
    await ws.send(json.dumps({"type": "subscribe", "service": "notifications"}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws


def http_publish(server, token: str, service: str, body: dict) -> tuple[int, dict, dict]:
    return publish_over_http(server.url, token, service, body)


# Bodies ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/streams/notifications/events", "/admin/login/", "/o/token/"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_huge_body_is_refused_before_it_is_held(server, alice, path, declared):
    token = await sync_to_async(token_for)(alice, "stream:notifications publish:notifications")
    ws = await _bystander(server, token)
    before = rss(server)
    status, sent = await asyncio.to_thread(send_big_body, server, path, declared=declared)
    after = rss(server)
    assert status == 413
    assert sent <= 2 * MB  # refused at the headers or at the first bytes over the limit
    assert after - before < 8 * MB, (before, after)
    code, reply, _ = await asyncio.to_thread(
        http_publish,
        server,
        token,
        "notifications",
        {"topic": str(alice.pk), "data": {"message": "still here"}},
    )
    assert code == 202, reply
    event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert event["type"] == "event" and event["data"] == {"message": "still here"}
    await ws.close()
    print(f"RSS {path} declared={declared}: {before / MB:.1f} MB -> {after / MB:.1f} MB")


async def test_publish_without_token_is_401_at_the_first_chunk(server):
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", server.port), 5)
    head = b"POST /api/streams/notifications/events HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
    await asyncio.to_thread(sock.sendall, head + b"x" * 60000)
    assert await asyncio.to_thread(read_status, sock) == 401
    sock.close()


# Publish policy ----------------------------------------------------------------------------------

POISON = {"action": "updated", "widget": {"id": 2, "name": None, "updated_at": "2999-01-01T00:00:00Z"}}


async def test_widgets_take_no_events_over_http_and_live_pages_see_none(server, alice):
    """A `publish:widgets` holder cannot reach widget tables: those events come from the model only."""
    token = await sync_to_async(token_for)(alice, "stream:widgets publish:widgets")
    ws = await websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"])
    await ws.recv()
    await ws.send(json.dumps({"type": "subscribe", "service": "widgets"}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    for body in ({"data": POISON}, {"topic": "zzz-any-topic", "data": {"x": 1}}):
        status, reply, _ = await asyncio.to_thread(http_publish, server, token, "widgets", body)
        assert (status, reply["error"]) == (403, "forbidden"), reply
    await ws.send(json.dumps({"type": "ping", "id": 1}))
    assert json.loads(await ws.recv()) == {"type": "pong", "id": 1}  # no event came before it
    await ws.close()


async def test_notifications_policy_over_http(server, alice):
    token = await sync_to_async(token_for)(alice, "stream:notifications publish:notifications")
    ws = await _bystander(server, token)
    me = str(alice.pk)
    refused = [
        ({"data": {"message": "no topic"}}, 400),
        ({"topic": "zzz-any-topic", "data": {"message": "hi"}}, 400),
        ({"topic": me, "data": {"message": None}}, 400),
        ({"topic": me, "data": {"widget": POISON["widget"]}}, 400),
        ({"topic": me, "data": 5}, 400),
    ]
    for body, expected in refused:
        status, reply, _ = await asyncio.to_thread(http_publish, server, token, "notifications", body)
        assert status == expected, (body, reply)
    status, _, _ = await asyncio.to_thread(
        http_publish, server, token, "notifications", {"topic": me, "data": {"message": "ok"}}
    )
    assert status == 202
    event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert event["data"] == {"message": "ok"}  # the only event that arrived
    await ws.close()


async def test_staff_only_and_disabled_services_refuse_publishes(server, alice):
    staff = await sync_to_async(make_user)(
        "root", staff=True, services=("load", "notifications"), publish=("load", "notifications")
    )
    token = await sync_to_async(token_for)(staff, "publish:load publish:notifications")
    status, reply, _ = await asyncio.to_thread(http_publish, server, token, "load", {"data": {"worker": "x"}})
    assert (status, reply["error"]) == (403, "forbidden")
    await sync_to_async(ServiceConfig.objects.create)(name="notifications", enabled=False)
    body = {"topic": str(staff.pk), "data": "hello"}
    for _ in range(20):
        status, reply, _ = await asyncio.to_thread(http_publish, server, token, "notifications", body)
        if status != 202:
            break
        await asyncio.sleep(0.1)
    assert (status, reply["error"]) == (409, "service_disabled")


FIELD_NAMES = st.sampled_from(["message", "text", "title", "level", "url", "x"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["message", "text", "title", "level", "url", "x"]), inner, max_size=4
        )
    ),
    max_leaves=8,
)


def is_notification(data: object) -> bool:
    """The documented shape, stated independently of the service's code."""
    if isinstance(data, str):
        return len(data) <= 2000
    return (
        isinstance(data, dict)
        and bool(data)
        and set(data) <= {"message", "text", "title", "level", "url"}
        and any(k in data for k in ("message", "text", "title"))
        and all(isinstance(v, str) and len(v) <= 2000 for v in data.values())
    )


@given(data=JSON, topic=st.one_of(st.none(), st.text(max_size=4), st.integers(0, 99).map(str)))
@settings(max_examples=400, deadline=None)
def test_publish_policy_accepts_exactly_the_documented_shapes(data, topic):
    principal = Principal(1, "u", False, None, frozenset({"publish:notifications", "publish:widgets"}))
    notifications, widgets = services.get("notifications"), services.get("widgets")
    try:
        accepted = notifications.publish_topic(principal, topic, data)
    except ProtocolError as refused:
        assert refused.code == BAD_REQUEST
        assert not (is_notification(data) and topic is not None and topic.isdigit())
    else:
        assert accepted == topic and topic.isdigit() and is_notification(data)
    with pytest.raises(ProtocolError) as refused:
        widgets.publish_topic(principal, topic, data)
    assert refused.value.code == FORBIDDEN
