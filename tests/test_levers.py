"""Command-line levers (streaming_admin, streaming_status, streaming_cleanup) against a real worker."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from accounts.models import User
from streaming.models import AuditEntry, LimitOverride, ServiceConfig, StreamSession, WorkerProcess
from tests.streaming_helpers import make_user, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


async def arun(*args: str) -> str:
    return await asyncio.to_thread(run, *args)


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await asyncio.to_thread(check)
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


async def subscribed(url: str, token: str, service: str = "widgets") -> ClientConnection:
    ws = await connect(url, subprotocols=["widgetapp.v1", f"bearer.{token}"])  # type: ignore[list-item]
    welcome = json.loads(await ws.recv())
    await ws.send(json.dumps({"type": "subscribe", "service": service, "id": 1}))
    assert json.loads(await ws.recv())["type"] == "subscribed"
    ws.session_id = welcome["session"]  # type: ignore[attr-defined]
    return ws


async def closed_with(ws: ClientConnection) -> int | None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return ws.close_code


def recorded(session_id: str) -> bool:
    return StreamSession.objects.filter(session_id=session_id, closed_at__isnull=True).exists()


@pytest.fixture
def worker(daphne_factory: Any, server_env: dict[str, str]) -> Any:
    return daphne_factory(server_env)


@pytest.fixture
def tokens(db: Any) -> dict[str, str]:
    alice, bob = make_user("alice"), make_user("bob")
    return {"alice": token_for(alice), "bob": token_for(bob)}


async def test_sessions_are_listed_by_user_service_and_worker(worker: Any, tokens: dict[str, str]) -> None:
    alice = await subscribed(worker.ws_url, tokens["alice"])
    bob = await subscribed(worker.ws_url, tokens["bob"], service="notifications")
    await until(lambda: recorded(alice.session_id) and recorded(bob.session_id))
    worker_id = await WorkerProcess.objects.values_list("worker_id", flat=True).aget(pid=worker.proc.pid)
    by_user = await arun("streaming_admin", "sessions", "--user", "alice")
    assert alice.session_id in by_user and bob.session_id not in by_user and "127.0.0.1" in by_user
    by_service = await arun("streaming_admin", "sessions", "--service", "notifications")
    assert bob.session_id in by_service and alice.session_id not in by_service
    by_worker = await arun("streaming_admin", "sessions", "--worker", worker_id)
    assert alice.session_id in by_worker and bob.session_id in by_worker
    assert "no open sessions" in await arun("streaming_admin", "sessions", "--worker", "elsewhere:1:x")
    await alice.close()
    await bob.close()


async def test_disconnect_closes_the_named_sessions_only(worker: Any, tokens: dict[str, str]) -> None:
    alice = await subscribed(worker.ws_url, tokens["alice"])
    bob = await subscribed(worker.ws_url, tokens["bob"])
    await until(lambda: recorded(alice.session_id))
    assert "closing 1 session(s) with 4403" in await arun("streaming_admin", "disconnect", "--user", "alice")
    assert await asyncio.wait_for(closed_with(alice), 5) == 4403
    await bob.send(json.dumps({"type": "ping", "id": 2}))
    assert json.loads(await bob.recv()) == {"type": "pong", "id": 2}
    assert await AuditEntry.objects.filter(
        kind=AuditEntry.Kind.ADMIN, detail__contains="disconnect"
    ).aexists()
    await bob.close()


async def test_block_closes_with_4403_and_refuses_reconnects_until_unblocked(
    worker: Any, tokens: dict[str, str]
) -> None:
    alice = await subscribed(worker.ws_url, tokens["alice"])
    await arun("streaming_admin", "block", "alice")
    assert await asyncio.wait_for(closed_with(alice), 5) == 4403
    with pytest.raises((ConnectionClosed, InvalidStatus, AssertionError)):
        await subscribed(worker.ws_url, tokens["alice"])
    assert not (await User.objects.aget(username="alice")).is_active
    await arun("streaming_admin", "unblock", "alice")
    again = await subscribed(worker.ws_url, tokens["alice"])
    await again.close()


async def test_drain_hands_the_workers_clients_over(worker: Any, tokens: dict[str, str]) -> None:
    alice = await subscribed(worker.ws_url, tokens["alice"])
    worker_id = await WorkerProcess.objects.values_list("worker_id", flat=True).aget(pid=worker.proc.pid)
    assert f"{worker_id} is draining" in await arun("streaming_admin", "drain", worker_id)
    assert await asyncio.wait_for(closed_with(alice), 20) == 4012
    assert await asyncio.to_thread(worker.wait, 20) == 0


async def test_disable_and_enable_a_service(worker: Any, tokens: dict[str, str]) -> None:
    alice = await subscribed(worker.ws_url, tokens["alice"])
    assert "disabled 1" in await arun("streaming_admin", "disable", "widgets")
    message = json.loads(await asyncio.wait_for(alice.recv(), 5))
    assert message["code"] == "service_disabled" and message["service"] == "widgets", message
    assert not (await ServiceConfig.objects.aget(name="widgets")).enabled
    assert "enabled 1" in await arun("streaming_admin", "enable", "widgets")
    assert (await ServiceConfig.objects.aget(name="widgets")).enabled
    await alice.close()


async def test_limit_override_is_applied_live_and_cleared(worker: Any, tokens: dict[str, str]) -> None:
    alice = await subscribed(worker.ws_url, tokens["alice"])
    assert "set MAX_SUBSCRIPTIONS=1 (user)" in await arun(
        "streaming_admin", "limit-set", "MAX_SUBSCRIPTIONS", "1", "--for-user", "alice"
    )
    await asyncio.sleep(1.0)  # the control bus reaches the worker
    await alice.send(json.dumps({"type": "subscribe", "service": "notifications", "id": 2}))
    assert json.loads(await alice.recv())["type"] == "error"
    assert "cleared 1" in await arun(
        "streaming_admin", "limit-clear", "MAX_SUBSCRIPTIONS", "--for-user", "alice"
    )
    assert not await LimitOverride.objects.aexists()
    await asyncio.sleep(1.0)
    await alice.send(json.dumps({"type": "subscribe", "service": "notifications", "id": 3}))
    assert json.loads(await alice.recv())["type"] == "subscribed"
    await alice.close()


def test_status_hides_long_stopped_workers_and_warns_about_fd_limits(settings: Any) -> None:
    now = timezone.now()
    for name, age in (("old-host:1:aaaaaa", timedelta(days=2)), ("new-host:2:bbbbbb", timedelta(0))):
        WorkerProcess.objects.create(
            worker_id=name,
            pid=1,
            host="elsewhere",
            started_at=now - age,
            heartbeat_at=now - age,
            state=WorkerProcess.State.STOPPED if age else WorkerProcess.State.RUNNING,
        )
    settings.STREAMING = {**settings.STREAMING, "MAX_CONNECTIONS_PER_WORKER": 10**9}
    shown = run("streaming_status")
    assert "new-host:2:bbbbbb" in shown and "old-host:1:aaaaaa" not in shown
    assert "MAX_CONNECTIONS_PER_WORKER needs 1000000064" in shown
    assert "old-host:1:aaaaaa" in run("streaming_status", "--all")
    settings.STREAMING = {**settings.STREAMING, "MAX_CONNECTIONS_PER_WORKER": 10}
    assert "warning" not in run("streaming_status")


def test_cleanup_dry_run_names_the_workers_and_sessions_it_would_close(db: Any) -> None:
    past = timezone.now() - timedelta(minutes=5)
    gone = WorkerProcess.objects.create(
        worker_id="gone:1:cccccc", pid=1, host="h", started_at=past, heartbeat_at=past
    )
    StreamSession.objects.create(session_id="s-gone", worker=gone, connected_at=past, remote_addr="192.0.2.4")
    out = run("streaming_cleanup", "--dry-run", "-v", "2")
    assert "worker gone:1:cccccc (running" in out and "session s-gone of - from 192.0.2.4" in out
    assert StreamSession.objects.get(session_id="s-gone").closed_at is None
