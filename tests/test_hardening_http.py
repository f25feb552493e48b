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

from accounts.models import User
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
        http_publish, server, token, "notifications", {"topic": str(alice.pk), "data": {"n": 1}}
    )
    assert code == 202, reply
    event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert event["type"] == "event" and event["data"] == {"n": 1}
    await ws.close()
    print(f"RSS {path} declared={declared}: {before / MB:.1f} MB -> {after / MB:.1f} MB")


async def test_publish_without_token_is_401_at_the_first_chunk(server):
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", server.port), 5)
    head = b"POST /api/streams/notifications/events HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n"
    await asyncio.to_thread(sock.sendall, head + b"x" * 60000)
    assert await asyncio.to_thread(read_status, sock) == 401
    sock.close()
