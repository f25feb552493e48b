"""Adversarial suite against real daphne + Redis + PostgreSQL: bad tokens, origins, floods, revocation."""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import time
import urllib.parse
import urllib.request
from datetime import datetime

import psutil
import pytest
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, set_token_value
from websockets.exceptions import InvalidStatus

from accounts.models import User
from accounts.services import access_token_issue, group_approve, group_revoke
from streaming.bus import control
from streaming.models import AuditEntry, LimitOverride
from tests.conftest import REDIS_URL as REDIS
from tests.streaming_helpers import make_user, token_for

pytestmark = pytest.mark.django_db(transaction=True)


CLOSE_WAIT = 3.0


def connect(server, token: str | None = None, **kwargs):
    protocols = ["widgetapp.v1"] + ([f"bearer.{token}"] if token is not None else [])
    return websockets.connect(server.ws_url, subprotocols=kwargs.pop("subprotocols", protocols), **kwargs)


async def recv(ws, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def call(ws, message: dict) -> dict:
    await ws.send(json.dumps(message))
    return await recv(ws)


async def welcomed(server, token: str, **kwargs):
    ws = await connect(server, token, **kwargs)
    welcome = await recv(ws)
    assert welcome["type"] == "welcome", welcome
    return ws


async def close_code(ws, timeout: float = CLOSE_WAIT) -> tuple[int, list[dict]]:
    """Read until the server closes; the close code and the messages seen before it."""
    seen = []
    try:
        while True:
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    except websockets.ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else 1006), seen


async def audit_rows(**filters) -> list[AuditEntry]:
    """Audit entries matching `filters`, waiting for the server's next flush (about once a second)."""
    for _ in range(30):
        rows = await sync_to_async(lambda: list(AuditEntry.objects.filter(**filters)))()
        if rows:
            return rows
        await asyncio.sleep(0.1)
    return []


def history(server):
    """The servers' Redis history: appending publishes an event to every worker."""
    from streaming.delivery.redis_backend import RedisBackend

    return RedisBackend(REDIS, server.env["STREAMING_REDIS_PREFIX"])


def server_log(server) -> str:
    return server.log_path.read_text(errors="replace")


# Tokens --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["garbage", "x" * 300, secrets.token_urlsafe(30)], ids=["garbage", "long", "random"]
)
async def test_garbage_token_is_4401(server, token):
    async with connect(server, token) as ws:
        assert (await close_code(ws))[0] == 4401
    assert await audit_rows(kind="auth_failed", close_code=4401)


async def test_no_token_times_out_with_4401(daphne_factory, server_env):
    server = daphne_factory({**server_env, "STREAMING_AUTH_TIMEOUT": "1"})
    async with connect(server) as ws:
        started = time.monotonic()
        assert (await close_code(ws))[0] == 4401
        assert 0.8 < time.monotonic() - started < 2.5


async def test_empty_token_is_4401(server):
    async with connect(server, "") as ws:
        assert (await close_code(ws))[0] == 4401
    async with connect(server, additional_headers={"Authorization": "Bearer "}) as ws:
        assert (await close_code(ws))[0] == 4401
    async with connect(server) as ws:
        reply = await call(ws, {"type": "auth", "token": "", "id": 1})
        assert (reply["code"], reply["id"]) == ("bad_request", 1)


async def test_expired_and_revoked_tokens_are_4401(server, alice):
    expired = await sync_to_async(token_for)(alice, expires=-10)
    revoked = await sync_to_async(token_for)(alice)
    await sync_to_async(lambda: AccessToken.objects.order_by("-pk").first().delete())()
    for token in (expired, revoked):
        async with connect(server, token) as ws:
            assert (await close_code(ws))[0] == 4401


async def test_two_token_subprotocols_are_4401_and_token_never_echoed(server, alice):
    token = await sync_to_async(token_for)(alice)
    other = await sync_to_async(token_for)(alice)
    async with connect(server, subprotocols=["widgetapp.v1", f"bearer.{token}", f"bearer.{other}"]) as ws:
        assert ws.subprotocol == "widgetapp.v1"
        assert (await close_code(ws))[0] == 4401
    async with connect(server, token) as ws:
        assert ws.subprotocol == "widgetapp.v1" and token not in str(ws.response.headers)


async def test_query_string_token_is_refused_and_never_logged(server, alice, caplog):
    token = await sync_to_async(token_for)(alice)
    for query in (f"access_token={token}", f"token={token}", "access_token="):
        url = f"{server.ws_url}?{query}"
        async with websockets.connect(url, subprotocols=["widgetapp.v1"]) as ws:
            code, seen = await close_code(ws)
            assert (code, seen) == (4401, [])
    # and a good connection, so the log holds a full session of this token
    async with connect(server, token) as ws:
        assert (await recv(ws))["type"] == "welcome"
    rows = await audit_rows(kind="auth_failed")
    assert rows and all(token not in (row.detail + row.origin) for row in rows)
    await asyncio.sleep(0.3)
    assert "Closing websocket" in server_log(server)  # the log is captured, and holds no token
    assert token not in server_log(server)
    assert token not in caplog.text


async def test_unapproved_user_is_4403(server, alice):
    token = await sync_to_async(token_for)(alice)
    await sync_to_async(lambda: Group.objects.get(name="g-alice").approval.delete())()
    async with connect(server, token) as ws:
        code, _ = await close_code(ws)
    assert code == 4403
    rows = await audit_rows(kind="denied", close_code=4403)
    assert (rows[0].user_id, rows[0].remote_addr) == (alice.pk, "127.0.0.1")


def _client_credentials_token(owner: User, scope: str) -> str:
    app = Application.objects.create(
        name="api",
        user=owner,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret="s" * 40,
    )
    raw = secrets.token_urlsafe(30)
    token = AccessToken(
        user=None, application=app, scope=scope, expires=timezone.now() + timezone.timedelta(minutes=5)
    )
    set_token_value(token, raw)
    token.save()
    return raw


async def test_client_credentials_app_of_unapproved_owner_is_4403(server, alice):
    outsider = await sync_to_async(User.objects.create_user)("mallory", password="pw-not-used-123")
    refused = await sync_to_async(_client_credentials_token)(outsider, "stream:widgets")
    accepted = await sync_to_async(_client_credentials_token)(alice, "stream:widgets")
    async with connect(server, refused) as ws:
        assert (await close_code(ws))[0] == 4403
    async with connect(server, accepted) as ws:
        assert (await recv(ws))["services"] == ["widgets"]


async def test_wrong_scope_for_one_service_while_another_keeps_working(server, alice):
    token = await sync_to_async(token_for)(alice, "stream:widgets")
    async with await welcomed(server, token) as ws:
        ok = await call(ws, {"type": "subscribe", "service": "widgets", "id": 1})
        assert (ok["type"], ok["id"]) == ("subscribed", 1)
        denied = await call(ws, {"type": "subscribe", "service": "notifications", "id": 2})
        assert (denied["type"], denied["code"], denied["id"]) == ("error", "forbidden", 2)
        assert (await call(ws, {"type": "ping", "id": 3})) == {"type": "pong", "id": 3}
        history(server).append(("widgets", "all"), '{"n":1}')
        event = await recv(ws)
        assert (event["type"], event["data"]) == ("event", {"n": 1})
    assert await audit_rows(kind="denied", detail__startswith="subscribe notifications")


# Origins --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://127.0.0.1:8000",
        "http://127.0.0.1:8001",
        "http://127.0.0.1",
        "null",
        "http://localhost:8000/",
        "http://localhost.:8000",
        "HTTP://127.0.0.1:8000",
        "http://127.0.0.1:8000@evil.example",
        "http://user@127.0.0.1:8000",
        "ws://127.0.0.1:8000",
    ],
)
async def test_bad_and_lookalike_origins_get_403(server, alice, origin):
    token = await sync_to_async(token_for)(alice)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server, token, origin=origin):
            pass
    assert refused.value.response.status_code == 403
    rows = await audit_rows(kind="denied", origin=origin)
    assert rows and rows[0].detail == "Origin not allowed."


@pytest.mark.parametrize("origin", ["http://127.0.0.1:8000.evil.example", "http://127.0.0.1:80001"])
async def test_malformed_origins_are_refused_by_daphne_with_400(server, alice, origin):
    token = await sync_to_async(token_for)(alice)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server, token, origin=origin):
            pass
    assert refused.value.response.status_code == 400  # autobahn cannot parse it: never reaches us


async def test_allowed_origin_and_no_origin_are_accepted(server, alice):
    token = await sync_to_async(token_for)(alice)
    async with connect(server, token, origin="http://127.0.0.1:8000") as ws:
        assert (await recv(ws))["type"] == "welcome"
    async with connect(server, token) as ws:
        assert (await recv(ws))["type"] == "welcome"


# Hostile frames --------------------------------------------------------------------------------------


async def test_two_mib_frame_is_closed_with_1009_or_4009(server, alice):
    token = await sync_to_async(token_for)(alice)
    async with await welcomed(server, token, max_size=None) as ws:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * (2 * 1024 * 1024)}))
        assert (await close_code(ws))[0] == 1009  # daphne's limit (64 KiB, equal to ours) comes first
    assert await audit_rows(kind="limit", close_code=1009)


async def test_frame_above_our_limit_but_under_daphnes_is_4009(daphne_factory, server_env, alice):
    server = daphne_factory({**server_env, "STREAMING_MAX_FRAME_BYTES": "1024"})
    token = await sync_to_async(token_for)(alice)
    async with await welcomed(server, token) as ws:
        assert (await call(ws, {"type": "ping", "pad": "x" * 900}))["type"] == "pong"
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 2000}))
        assert (await close_code(ws))[0] == 4009
    assert await audit_rows(kind="limit", close_code=4009)


async def test_deep_nesting_and_huge_numbers_are_bad_requests_and_socket_stays_usable(server, alice):
    token = await sync_to_async(token_for)(alice)
    frames = [
        "[" * 30000 + "]" * 30000,
        '{"type":"request","service":"widgets","action":"list","data":' + "[" * 20000 + "]" * 20000 + "}",
        '{"type":"ping","id":' + "9" * 20000 + "}",
        '{"type":"ping","id":1e999999}',
        '{"type":"ping","id":-1e-999999}',
        '{"type":"subscribe","service":"widgets","since":{"epoch":"e","seq":1e308}}',
        '{"type":"ping","id":12345678901234567890}',
    ]
    async with await welcomed(server, token) as ws:
        for n, frame in enumerate(frames):
            await ws.send(frame)
            reply = await recv(ws)
            assert (reply["type"], reply.get("code")) == ("error", "bad_request"), (n, reply)
            assert await call(ws, {"type": "ping", "id": n}) == {"type": "pong", "id": n}
        # a 4,000-digit seq is a valid integer: an unknown position, served as not recovered
        huge = '{"type":"subscribe","service":"widgets","since":{"epoch":"e","seq":' + "9" * 4000 + "}}"
        await ws.send(huge)
        reply = await recv(ws)
        assert (reply["type"], reply["recovered"]) == ("subscribed", False)
        assert await call(ws, {"type": "ping", "id": "end"}) == {"type": "pong", "id": "end"}
    assert "Traceback" not in server_log(server)


async def test_binary_frame_is_4400(server, alice):
    token = await sync_to_async(token_for)(alice)
    async with await welcomed(server, token) as ws:
        await ws.send(b"\x00\x01")
        assert (await close_code(ws))[0] == 4400


async def test_flood_is_rate_limited_then_4429_while_others_keep_low_latency(server, alice):
    token = await sync_to_async(token_for)(alice)
    bob = await sync_to_async(make_user)("bob")
    bystander = await welcomed(server, await sync_to_async(token_for)(bob))
    flooder = await welcomed(server, token)
    latencies: list[float] = []

    async def ping_steadily() -> None:
        for n in range(40):
            started = time.perf_counter()
            assert await call(bystander, {"type": "ping", "id": n}) == {"type": "pong", "id": n}
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.025)

    async def flood() -> None:
        try:
            for n in range(500):
                await flooder.send(json.dumps({"type": "ping", "id": n}))
                await asyncio.sleep(0.002)  # 500 messages in about one second
        except websockets.ConnectionClosed:
            pass

    pinger = asyncio.create_task(ping_steadily())
    reader = asyncio.create_task(close_code(flooder))
    await flood()
    code, seen = await reader
    await pinger
    assert code == 4429
    kinds = [m["type"] if m["type"] == "pong" else m["code"] for m in seen]
    assert kinds[0] == "pong" and "rate_limited" in kinds
    assert kinds.index("rate_limited") >= 20 and set(kinds) == {"pong", "rate_limited"}
    assert statistics.median(latencies) < 0.02 and max(latencies) < 0.2, latencies
    assert await audit_rows(kind="limit", close_code=4429)
    limited = await audit_rows(kind="limit", detail="Rate limited.")
    assert 1 <= len(limited) <= 3  # one entry per run of refusals, not one per message
    await bystander.close()


async def test_too_many_subscriptions(daphne_factory, server_env, alice):
    server = daphne_factory({**server_env, "STREAMING_MAX_SUBSCRIPTIONS": "1"})
    token = await sync_to_async(token_for)(alice)
    async with await welcomed(server, token) as ws:
        assert (await call(ws, {"type": "subscribe", "service": "widgets"}))["type"] == "subscribed"
        reply = await call(ws, {"type": "subscribe", "service": "notifications", "id": 9})
        assert (reply["code"], reply["id"]) == ("too_many_subscriptions", 9)
    assert await audit_rows(kind="limit", detail__startswith="subscribe notifications")


async def test_connections_per_user_counted_across_workers(daphne_factory, server_env, alice):
    env = {**server_env, "STREAMING_MAX_CONNECTIONS_PER_USER": "2"}
    a, b = daphne_factory(env), daphne_factory(env)
    token = await sync_to_async(token_for)(alice)
    first = await welcomed(a, token)
    second = await welcomed(b, token)
    async with connect(a, token) as third:
        code, seen = await close_code(third)
        assert (code, seen) == (4429, [])
    async with connect(b, token) as fourth:
        assert (await close_code(fourth))[0] == 4429
    await first.close()
    await asyncio.sleep(0.3)
    async with connect(b, token) as again:
        assert (await recv(again))["type"] == "welcome"
    await second.close()
    assert await audit_rows(kind="limit", close_code=4429, user=alice)


async def test_slow_reader_is_cut_off_before_server_memory_grows(daphne_factory, server_env, alice):
    server = daphne_factory({**server_env, "STREAMING_MAX_OUTBOUND_BYTES": str(256 * 1024)})
    token = await sync_to_async(token_for)(alice)
    events = history(server)
    rss = psutil.Process(server.proc.pid)
    # the client stops reading once two messages are queued: kernel buffers fill, then the server's
    ws = await welcomed(server, token, max_queue=2)
    assert (await call(ws, {"type": "subscribe", "service": "widgets"}))["type"] == "subscribed"
    before = peak = rss.memory_info().rss
    payload = json.dumps({"pad": "x" * 8000})
    published = 0
    while "4013 slow_consumer" not in server_log(server):
        assert published < 3000, "24 MB published and the reader was never cut off"
        for _ in range(20):
            events.append(("widgets", "all"), payload)
        published += 20
        peak = max(peak, rss.memory_info().rss)
        await asyncio.sleep(0.01)
    assert published * 8000 > 2 * 1024 * 1024  # well past what socket buffers alone could hold
    assert peak - before < 8 * 1024 * 1024, (before, peak)
    # reading again now drains what was sent before the cut: the reconnect hint, then 4013
    code, seen = await close_code(ws, timeout=10)
    assert code == 4013
    assert seen[-1] == {
        "type": "reconnect",
        "reason": "slow_consumer",
        "retry_after_ms": 2000,
        "spread_ms": 2000,
    }
    assert all(m["type"] == "event" for m in seen[:-1]) and len(seen) - 1 <= published
    rows = await audit_rows(kind="limit", close_code=4013)
    assert rows[0].detail == "Slow consumer: outbound buffer full." and rows[0].user_id == alice.pk


# Live authorisation ---------------------------------------------------------------------------------


async def _timed_close(ws) -> tuple[int, list[dict], float]:
    started = time.monotonic()
    code, seen = await close_code(ws)
    return code, seen, time.monotonic() - started


def _revoke_over_http(server, token: str, app: Application, secret: str) -> int:
    body = urllib.parse.urlencode({"token": token, "client_id": app.client_id, "client_secret": secret})
    request = urllib.request.Request(f"{server.url}/o/revoke_token/", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


async def test_revocation_over_worker_a_http_closes_socket_on_worker_b(two_workers, alice):
    a, b = two_workers
    secret = secrets.token_urlsafe(32)
    app = await sync_to_async(Application.objects.create)(
        name="web",
        user=alice,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        client_secret=secret,
        redirect_uris="http://127.0.0.1:8000/cb",
    )
    token = await sync_to_async(access_token_issue)(user=alice, scopes=["stream:widgets"], application=app)
    ws = await welcomed(b, token)
    assert (await call(ws, {"type": "subscribe", "service": "widgets"}))["type"] == "subscribed"
    started = time.monotonic()
    assert await asyncio.to_thread(_revoke_over_http, a, token, app, secret) == 200
    code, seen = await close_code(ws)
    assert code == 4401 and time.monotonic() - started < 1.0
    assert seen == []
    rows = await audit_rows(kind="disconnect", close_code=4401)
    assert rows[0].detail == "Token revoked." and rows[0].user_id == alice.pk


async def test_token_deleted_via_orm_closes_socket_on_both_workers(two_workers, alice):
    token = await sync_to_async(token_for)(alice)
    sockets = [await welcomed(server, token) for server in two_workers]
    started = time.monotonic()
    await sync_to_async(lambda: AccessToken.objects.filter(user=alice).delete())()
    for ws in sockets:
        assert (await close_code(ws))[0] == 4401
    assert time.monotonic() - started < 1.0


def _leave_groups(user: User) -> None:
    user.groups.clear()


def _unapprove_groups(user: User) -> None:
    for group in user.groups.all():
        group_revoke(group=group)


@pytest.mark.parametrize("change", [_leave_groups, _unapprove_groups])
async def test_group_removal_closes_with_4403_on_other_worker(two_workers, alice, change):
    token = await sync_to_async(token_for)(alice)
    ws = await welcomed(two_workers[1], token)
    started = time.monotonic()
    await sync_to_async(change)(alice)
    code, seen, _ = await _timed_close(ws)
    assert code == 4403 and time.monotonic() - started < 1.0
    rows = await audit_rows(kind="denied", close_code=4403)
    assert rows[0].detail == "User is not in an approved group."


async def test_deactivation_closes_with_4403_on_other_worker(two_workers, alice):
    token = await sync_to_async(token_for)(alice)
    ws = await welcomed(two_workers[1], token)
    started = time.monotonic()

    def deactivate() -> None:
        alice.is_active = False
        alice.save()

    await sync_to_async(deactivate)()
    code, _ = await close_code(ws)
    assert code == 4403 and time.monotonic() - started < 1.0


async def test_removing_one_service_from_group_unsubscribes_only_that_service(two_workers, alice):
    token = await sync_to_async(token_for)(alice)
    ws = await welcomed(two_workers[1], token)
    for service in ("widgets", "notifications"):
        assert (await call(ws, {"type": "subscribe", "service": service}))["type"] == "subscribed"
    group = await sync_to_async(Group.objects.get)(name="g-alice")
    await sync_to_async(group_approve)(group=group, services=["notifications"])
    dropped = await recv(ws, timeout=1.0)
    assert (dropped["type"], dropped["code"], dropped["service"]) == ("error", "forbidden", "widgets")
    assert (await call(ws, {"type": "unsubscribe", "service": "notifications", "id": 1}))[
        "type"
    ] == "unsubscribed"
    again = await call(ws, {"type": "subscribe", "service": "widgets", "id": 2})
    assert (again["code"], again["id"]) == ("forbidden", 2)
    await ws.close()


async def test_refresh_in_band_then_expiry_of_the_old_token_does_not_close(server, alice):
    short = await sync_to_async(token_for)(alice, expires=3)
    longer = await sync_to_async(token_for)(alice, "stream:widgets", expires=600)
    ws = await welcomed(server, short)
    assert (await recv(ws))["type"] == "token_expiring"  # 3 s left: inside the warning window at once
    for service in ("widgets", "notifications"):
        assert (await call(ws, {"type": "subscribe", "service": service}))["type"] == "subscribed"
    await ws.send(json.dumps({"type": "auth", "token": longer, "id": "r"}))
    seen = [await recv(ws)]
    while seen[-1]["type"] != "authenticated":
        seen.append(await recv(ws))
    reply = seen[-1]
    errors = [(m["code"], m["service"]) for m in seen if m["type"] == "error"]
    assert errors == [("forbidden", "notifications")]  # the narrower token ends that subscription
    assert (reply["id"], reply["services"]) == ("r", ["widgets"])
    expires = await sync_to_async(lambda: AccessToken.objects.order_by("-pk").first().expires)()
    assert datetime.fromisoformat(reply["expires_at"]) == expires
    await asyncio.sleep(3.5)
    assert await call(ws, {"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
    await ws.close()


async def test_expiry_warns_then_closes_within_a_second(server, alice):
    token = await sync_to_async(token_for)(alice, expires=3)
    ws = await welcomed(server, token)
    expires = await sync_to_async(lambda: AccessToken.objects.order_by("-pk").first().expires)()
    warning = await recv(ws, timeout=3)
    assert warning["type"] == "token_expiring" and datetime.fromisoformat(warning["expires_at"]) == expires
    code, _ = await close_code(ws, timeout=5)
    late = (timezone.now() - expires).total_seconds()
    assert code == 4401 and 0 <= late < 1.0, late


# Live limits ----------------------------------------------------------------------------------------


def test_most_specific_override_wins():
    from streaming.sessions.limits import resolve, set_overrides

    set_overrides(
        [
            ("MAX_SUBSCRIPTIONS", "global", "", 10),
            ("MAX_SUBSCRIPTIONS", "worker", "w1", 20),
            ("MAX_SUBSCRIPTIONS", "service", "widgets", 30),
            ("MAX_SUBSCRIPTIONS", "group", "7", 40),
            ("MAX_SUBSCRIPTIONS", "group", "8", 45),
            ("MAX_SUBSCRIPTIONS", "user", "1", 50),
        ]
    )
    try:
        assert resolve("MAX_SUBSCRIPTIONS", 1, [7, 8], "widgets", "w1") == 50
        assert resolve("MAX_SUBSCRIPTIONS", 2, [7, 8], "widgets", "w1") == 45
        assert resolve("MAX_SUBSCRIPTIONS", 2, [], "widgets", "w1") == 30
        assert resolve("MAX_SUBSCRIPTIONS", 2, [], None, "w1") == 20
        assert resolve("MAX_SUBSCRIPTIONS", 2, [], None, "w2") == 10
        assert resolve("MESSAGES_BURST", 1, [7], "widgets", "w1") == 40  # the STREAMING default
    finally:
        set_overrides([])


async def test_limit_override_applies_live_to_open_connections(two_workers, alice):
    token = await sync_to_async(token_for)(alice)
    sockets = [await welcomed(server, token) for server in two_workers]
    assert (await call(sockets[0], {"type": "ping", "pad": "x" * 500}))["type"] == "pong"
    await sync_to_async(LimitOverride.objects.create)(
        limit="MAX_FRAME_BYTES", scope="group", group=await sync_to_async(alice.groups.first)(), value=200
    )
    await sync_to_async(control.broadcast)("limits")
    await asyncio.sleep(0.5)
    for ws in sockets:
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 500}))
        assert (await close_code(ws))[0] == 4009


async def test_admission_control_answers_4013_with_retry_hint(daphne_factory, server_env, alice):
    server = daphne_factory({**server_env, "STREAMING_MAX_CONNECTIONS_PER_WORKER": "1"})
    token = await sync_to_async(token_for)(alice)
    async with await welcomed(server, token):
        async with connect(server, token) as refused:
            code, seen = await close_code(refused)
    reconnect = {"type": "reconnect", "reason": "overloaded", "retry_after_ms": 2000, "spread_ms": 2000}
    assert (code, seen) == (4013, [reconnect])
    async with connect(server) as unauthenticated:  # a socket waiting to authenticate counts too
        await asyncio.sleep(0.2)
        async with connect(server, token) as refused:
            assert (await close_code(refused))[0] == 4013
        assert (await call(unauthenticated, {"type": "auth", "token": token}))["type"] == "welcome"
    assert await audit_rows(kind="limit", close_code=4013, detail="Worker is full.")


async def test_refresh_with_someone_elses_token_is_forbidden_and_changes_nothing(server, alice):
    token = await sync_to_async(token_for)(alice)
    bob = await sync_to_async(make_user)("bob")
    bobs = await sync_to_async(token_for)(bob)
    async with await welcomed(server, token) as ws:
        reply = await call(ws, {"type": "auth", "token": bobs, "id": "r"})
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "forbidden", "r")
        topic = (await call(ws, {"type": "subscribe", "service": "notifications"}))["topic"]
        assert topic == str(alice.pk)  # still alice's connection


def test_deleting_expired_tokens_broadcasts_nothing(alice, monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(control, "broadcast", lambda op, **fields: sent.append({"op": op, **fields}))
    token_for(alice, expires=-5)
    AccessToken.objects.filter(user=alice).delete()  # as cleartokens does, in bulk
    assert sent == []
    token_for(alice)
    AccessToken.objects.filter(user=alice).delete()
    assert [(m["op"], m["code"]) for m in sent] == [("close", 4401)]
