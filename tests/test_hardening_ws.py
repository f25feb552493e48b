"""Attacks on the websocket and its limits: silent sockets, invalid floods, bad overrides, caches."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from oauth2_provider.models import AccessToken

from accounts.signals import token_rotation
from streaming import signals
from streaming.bus import control
from streaming.delivery.worker import get_worker
from streaming.models import AuditEntry, LimitOverride
from streaming.ops import levers
from streaming.sessions import auth
from tests.streaming_helpers import http_publish, make_user, open_session, recv, send, token_for
from tests.test_security import call, close_code, connect, welcomed

pytestmark = pytest.mark.django_db(transaction=True)


async def test_silent_sockets_are_capped_per_address_and_real_clients_still_get_in(
    daphne_factory, server_env, alice
):
    limits = {
        "STREAMING_MAX_PENDING_AUTH_PER_ADDRESS": "20",
        "STREAMING_MAX_PENDING_AUTH_PER_WORKER": "30",
        "STREAMING_MAX_CONNECTIONS_PER_WORKER": "40",
        "STREAMING_SILENT_SOCKET_TIMEOUT": "1.5",
    }
    server = daphne_factory({**server_env, **limits})
    token = await sync_to_async(token_for)(alice)
    bystander = await welcomed(server, token)
    silent = await asyncio.gather(*(connect(server) for _ in range(100)))
    codes = await asyncio.gather(*(close_code(ws, timeout=4.0) for ws in silent))
    refused_now = [code for code, _ in codes if code == 4013]
    assert len(refused_now) == 80  # only 20 may wait; the rest are turned away at once
    assert [code for code, _ in codes if code != 4013] == [4401] * 20  # "No token presented."
    real = await welcomed(server, token)  # a real client is never crowded out
    assert await call(real, {"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
    assert await call(bystander, {"type": "ping", "id": 2}) == {"type": "pong", "id": 2}
    await asyncio.sleep(1.5)  # the audit flush
    rows = await sync_to_async(lambda: AuditEntry.objects.filter(remote_addr="127.0.0.1").count())()
    assert rows <= 3  # one per kind of failure, not one per socket


async def test_invalid_frames_are_charged_to_the_rate_limit(daphne_factory, server_env, alice):
    """360 invalid frames and 40 pings in a second: rate limited, then 4429; a bystander is untouched."""
    server = daphne_factory(server_env)
    token = await sync_to_async(token_for)(alice)
    attacker, bystander = await welcomed(server, token), await welcomed(server, token)
    for n in range(400):
        await attacker.send(json.dumps({"type": "ping", "id": n}) if n % 10 == 0 else "{not json")
    code, seen = await close_code(attacker)
    assert code == 4429
    assert any(m.get("code") == "rate_limited" for m in seen)
    started = time.monotonic()
    assert await call(bystander, {"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
    assert time.monotonic() - started < 0.5
    await bystander.close()


async def test_failed_subscribe_leaves_nothing_half_joined(settings, alice, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMING = {**settings.STREAMING, "REDIS_URL": ""}
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    worker = get_worker()

    async def broken(*args: object) -> None:
        raise ConnectionError("history unavailable")

    monkeypatch.setattr(worker.hub.backend, "replay", broken)
    await send(comm, {"type": "subscribe", "service": "widgets", "id": 1})
    reply = await recv(comm)
    assert (reply["type"], reply["code"], reply["id"]) == ("error", "internal_error", 1)
    (conn,) = worker.connections.values()
    assert conn.subscriptions == {}
    stream = worker.hub.streams.get(("widgets", "all"))
    assert stream is None or conn not in stream.joining
    await comm.disconnect()
    await worker.close()


def test_grant_cache_is_swept_by_age_and_a_rotated_token_is_forgotten(alice, monkeypatch, settings):
    settings.STREAMING = {**settings.STREAMING, "TOKEN_CACHE_SECONDS": 30.0}
    auth.forget()
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(auth, "_swept_at", 0.0)
    old, new = token_for(alice), token_for(alice)
    auth.verify_token(old)
    clock[0] += 31
    auth.verify_token(new)
    assert set(auth._cache) == {auth.token_checksum(new)}  # the stale entry went with the sweep
    sent: list[dict] = []
    monkeypatch.setattr(control, "broadcast", lambda op, **fields: sent.append({"op": op, **fields}))
    monkeypatch.setattr(signals.transaction, "on_commit", lambda run: run())
    with token_rotation():
        AccessToken.objects.get(pk=auth.verify_token(new).token_id).delete()
    assert sent == [{"op": "forget", "checksum": auth.token_checksum(new)}]


@pytest.mark.parametrize(
    ("limit", "value"),
    [
        ("MESSAGES_PER_SECOND", 0),
        ("MAX_SUBSCRIPTIONS", -1),
        ("MAX_OUTBOUND_BYTES", 10**12),
        ("REQUESTS_PER_SECOND", 0),
        ("REQUESTS_BURST", 10**6),
    ],
)
def test_limit_overrides_outside_their_bounds_are_refused(db, limit, value):
    with pytest.raises(ValidationError):
        LimitOverride(limit=limit, value=value).full_clean()
    with pytest.raises(ValidationError):
        levers.limit_override_set(limit=limit, value=value, target=levers.Target(), user=None)
    with pytest.raises(CommandError, match="must be between"):
        call_command("streaming_admin", "limit-set", limit, str(value))
    assert not LimitOverride.objects.exists()
    LimitOverride(limit=limit, value=LimitOverride.BOUNDS[limit][0]).full_clean()


async def test_publish_flood_gets_429_with_retry_after(daphne_factory, server_env):
    limits = {"STREAMING_PUBLISH_PER_SECOND": "5", "STREAMING_PUBLISH_BURST": "5"}
    server = daphne_factory({**server_env, **limits})
    publisher = await sync_to_async(make_user)("pub", publish=("notifications",))
    token = await sync_to_async(token_for)(publisher, "stream:notifications publish:notifications")
    ws = await welcomed(server, token)
    assert (await call(ws, {"type": "subscribe", "service": "notifications"}))["type"] == "subscribed"
    body = {"topic": str(publisher.pk), "data": "hi"}
    answers = [
        await asyncio.to_thread(http_publish, server.url, token, "notifications", body) for _ in range(12)
    ]
    statuses = [status for status, _, _ in answers]
    assert statuses[:5] == [202] * 5 and 429 in statuses
    limited = next(headers for status, _, headers in answers if status == 429)
    assert int(limited["Retry-After"]) >= 1
    delivered = [json.loads(await asyncio.wait_for(ws.recv(), 3)) for _ in range(statuses.count(202))]
    assert [e["data"] for e in delivered] == ["hi"] * statuses.count(202)  # nothing accepted is lost
    await ws.close()
