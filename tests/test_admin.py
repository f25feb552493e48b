"""Admin: recorded sessions and workers, mitigation actions, metrics, readiness and cleanup commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test import AsyncClient
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from streaming import services
from streaming.delivery.load import LoadMeter
from streaming.delivery.publish import publish
from streaming.models import AuditEntry, LoadSample, ServiceConfig, StreamSession, WorkerProcess
from streaming.ops import admin_actions as mitigation
from streaming.ops import records as recorder_module
from streaming.ops.cleanup import workers_sweep
from streaming.ops.records import Recorder, recorder_of, write
from tests.streaming_helpers import make_user, open_session, recv, send, token_for

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

pytestmark = pytest.mark.django_db(transaction=True)


def recorded_worker_and_session() -> StreamSession:
    now = timezone.now()
    worker = WorkerProcess.objects.create(
        worker_id="host:1:abc", pid=1, host="host", started_at=now, heartbeat_at=now, connections=1
    )
    LoadSample.objects.create(worker=worker, at=now, connections=1, cpu_percent=3.5, rss_bytes=50_000_000)
    return StreamSession.objects.create(
        session_id="s" * 32, worker=worker, connected_at=now, subscriptions=["widgets/all"]
    )


async def flush(worker) -> None:
    await recorder_of(worker).flush()


async def subscribe(comm, service: str = "widgets") -> dict:
    await send(comm, {"type": "subscribe", "service": service, "id": service})
    reply = await recv(comm)
    assert reply["type"] == "subscribed", reply
    return reply


async def test_session_is_recorded_with_user_and_subscriptions_then_closed(worker, alice):
    token = await sync_to_async(token_for)(alice)
    comm, welcome = await open_session(token)
    await subscribe(comm, "widgets")
    await subscribe(comm, "notifications")
    await flush(worker)
    row = await StreamSession.objects.select_related("user", "worker").aget(session_id=welcome["session"])
    assert row.user == alice and row.closed_at is None
    assert sorted(row.subscriptions) == [f"notifications/{alice.pk}", "widgets/all"]
    assert row.worker.worker_id == worker.id and row.messages_in == 2
    record = await WorkerProcess.objects.aget(worker_id=worker.id)
    assert record.connections == 1 and record.subscriptions == 2 and record.state == "running"
    await comm.disconnect()
    await asyncio.sleep(0.05)
    await flush(worker)
    await row.arefresh_from_db()
    assert row.closed_at is not None and row.close_code == 1000
    assert len(row.subscriptions) == 2


ADMIN_PAGES = [
    "/admin/",
    "/admin/streaming/streamsession/",
    "/admin/streaming/streamsession/?status=open&service=widgets",
    "/admin/streaming/streamsession/live.json",
    "/admin/streaming/workerprocess/",
    "/admin/streaming/workerprocess/live.json",
    "/admin/streaming/workerprocess/dashboard/",
    "/admin/streaming/serviceconfig/",
    "/admin/streaming/loadsample/",
    "/admin/streaming/auditentry/",
    "/admin/streaming/limitoverride/",
    "/admin/streaming/limitoverride/add/",
]


def test_admin_pages_render_for_staff_only(client, admin_user, django_user_model):
    recorded_worker_and_session()
    client.force_login(admin_user)
    for url in ADMIN_PAGES:
        assert client.get(url).status_code == 200, url
    staff = django_user_model.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/streaming/streamsession/").status_code == 403
    assert client.get("/admin/streaming/workerprocess/live.json").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_streamsession"))
    page = client.get("/admin/streaming/streamsession/")
    assert page.status_code == 200 and b'value="disconnect"' not in page.content  # viewing is not acting
    member = django_user_model.objects.create_user("member", password="pw-member-123")
    client.force_login(member)
    for url in ADMIN_PAGES:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url


DOCUMENTED_SERIES = [
    "streaming_worker_info",
    "streaming_draining",
    "streaming_connections",
    "streaming_subscriptions",
    "streaming_messages_in",
    "streaming_deliveries",
    "streaming_loop_lag_seconds",
    "streaming_layer_latency_seconds",
    "streaming_recorder_cpu_seconds",
    "streaming_recorder_flushes",
    "streaming_fleet_connections",
    "streaming_fleet_subscriptions",
    "streaming_fleet_messages_in_per_second",
    "streaming_fleet_messages_out_per_second",
    "streaming_fleet_cpu_percent",
    "streaming_fleet_rss_bytes",
    "streaming_fleet_loop_lag_seconds",
    "streaming_fleet_heartbeat_age_seconds",
    "streaming_sessions_open",
    "streaming_service_enabled",
    "process_resident_memory_bytes",
]


async def test_metrics_expose_the_documented_series(worker, alice):
    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    await subscribe(comm)
    await flush(worker)
    response = await AsyncClient().get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert set(DOCUMENTED_SERIES) <= set(families)
    [connections] = families["streaming_connections"].samples
    assert connections.labels == {"worker": worker.id} and connections.value == 1
    fleet = {s.labels["worker"]: s.value for s in families["streaming_fleet_subscriptions"].samples}
    assert fleet[worker.id] == 1
    assert families["streaming_sessions_open"].samples[0].value == 1
    [latency] = families["streaming_layer_latency_seconds"].samples
    assert 0 <= latency.value < 1  # the recorder's round trip through the channel layer
    await comm.disconnect()


async def test_readyz_is_503_while_draining(worker):
    client = AsyncClient()
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.content
    worker.draining = True
    try:
        draining = await client.get("/readyz")
    finally:
        worker.draining = False
    assert draining.status_code == 503 and "draining" in draining.json()["problems"]
    assert (await client.get("/healthz")).status_code == 200


# Real daphne workers: the admin acts through the control bus (Redis), sockets are real. ----------

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


async def connect_and_subscribe(server, token: str, *services: str):
    ws = await websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"])
    welcome = json.loads(await ws.recv())
    for service in services:
        await ws.send(json.dumps({"type": "subscribe", "service": service, "id": service}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
    return ws, welcome["session"]


async def until(predicate, timeout: float = 10.0):
    """Poll a sync predicate (in a thread, it reads the database) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await sync_to_async(predicate)()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"{predicate} stayed false for {timeout}s")


async def closed_with(ws) -> tuple[list[dict], int | None]:
    received = []
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            received.append(json.loads(raw))
    return received, ws.close_code


def live_rows(client, model: str, query: str = "") -> list[dict]:
    response = client.get(f"/admin/streaming/{model}/live.json{query}")
    assert response.status_code == 200
    return response.json()["rows"]


async def test_real_session_is_listed_live_and_disconnect_closes_it_with_the_chosen_code(
    server, alice, staff_client
):
    token = await sync_to_async(token_for)(alice)
    ws, session_id = await connect_and_subscribe(server, token, "widgets")
    rows = await until(lambda: live_rows(staff_client, "streamsession", "?status=open&service=widgets"))
    cells = "".join(rows[0]["cells"])
    assert len(rows) == 1 and "alice" in cells and "widgets/all" in cells and session_id[:12] in cells
    response = await sync_to_async(staff_client.post)(
        "/admin/streaming/streamsession/", {"action": "disconnect", "_selected_action": [rows[0]["pk"]]}
    )
    assert response.status_code == 200 and b"4403 forbidden" in response.content  # the code form
    await sync_to_async(staff_client.post)(
        "/admin/streaming/streamsession/",
        {
            "action": "disconnect",
            "_selected_action": [rows[0]["pk"]],
            "apply": "1",
            "code": "4013",
            "reason": "Load shedding.",
        },
    )
    received, code = await asyncio.wait_for(closed_with(ws), 5)
    assert code == 4013
    assert received[-1]["type"] == "reconnect" and received[-1]["retry_after_ms"] > 0  # come back later
    row = await until(
        lambda: StreamSession.objects.filter(session_id=session_id, closed_at__isnull=False).first()
    )
    assert (
        row.close_code == 4013
        and row.close_reason == "Load shedding."
        and row.subscriptions == ["widgets/all"]
    )
    assert await AuditEntry.objects.filter(kind="admin_action", detail__contains="4013").aexists()
    assert not await sync_to_async(live_rows)(staff_client, "streamsession", "?status=open")


async def test_drain_action_hands_real_clients_over_with_4012(server, alice, staff_client):
    token = await sync_to_async(token_for)(alice)
    ws, _ = await connect_and_subscribe(server, token, "widgets")
    record = await until(lambda: WorkerProcess.objects.filter(connections=1, state="running").first())
    assert record.layer_latency_ms is not None and record.rss_bytes > 0  # Redis layer round trip measured
    await sync_to_async(staff_client.post)(
        "/admin/streaming/workerprocess/", {"action": "drain", "_selected_action": [record.pk]}
    )
    received, code = await asyncio.wait_for(closed_with(ws), 10)
    assert code == 4012 and received[-1]["type"] == "reconnect"
    assert await AuditEntry.objects.filter(
        kind="admin_action", detail=f"drain worker {record.worker_id}"
    ).aexists()


async def test_disabling_a_service_ends_its_subscriptions_and_enabling_brings_them_back(
    server, alice, staff_client
):
    await sync_to_async(mitigation.service_configs_ensure)()
    token = await sync_to_async(token_for)(alice)
    ws, _ = await connect_and_subscribe(server, token, "widgets", "notifications")
    widgets = await ServiceConfig.objects.aget(name="widgets")
    before = await sync_to_async(publish)("widgets", {"n": "before"})
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["seq"] == before.seq
    await sync_to_async(staff_client.post)(
        "/admin/streaming/serviceconfig/", {"action": "disable", "_selected_action": [widgets.pk]}
    )
    ended = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ended["type"] == "error" and ended["code"] == "service_disabled" and ended["service"] == "widgets"
    await ws.send(json.dumps({"type": "subscribe", "service": "widgets", "id": "again"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == "service_disabled"
    missed = await sync_to_async(publish)("widgets", {"n": "while disabled"})
    await sync_to_async(staff_client.post)(
        "/admin/streaming/serviceconfig/", {"action": "enable", "_selected_action": [widgets.pk]}
    )
    back = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert back["type"] == "subscribed" and back["service"] == "widgets" and "id" not in back
    assert back["recovered"] is True and back["epoch"] == before.epoch
    event = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert (
        event["type"] == "event" and event["seq"] == missed.seq and event["data"] == {"n": "while disabled"}
    )
    await ws.close()
    assert await AuditEntry.objects.filter(kind="admin_action", detail="disable service widgets").aexists()


async def test_cleanup_closes_the_sessions_of_a_sigkilled_worker(server, alice):
    token = await sync_to_async(token_for)(alice)
    ws, session_id = await connect_and_subscribe(server, token, "widgets")
    await until(lambda: StreamSession.objects.filter(session_id=session_id).exists())
    server.signal(signal.SIGKILL)
    server.wait(5)
    await asyncio.sleep(0.1)
    out = StringIO()
    await sync_to_async(call_command)("streaming_cleanup", "--stale-seconds", "0", stdout=out)
    row = await StreamSession.objects.select_related("worker").aget(session_id=session_id)
    assert row.closed_at is not None and row.close_code == 1006 and row.worker.state == "dead"
    assert "1 marked dead, 1 open sessions closed" in out.getvalue()
    with contextlib.suppress(Exception):
        await ws.close()


async def test_limit_saved_in_the_admin_applies_to_the_next_message(server, alice, staff_client):
    token = await sync_to_async(token_for)(alice)
    ws, _ = await connect_and_subscribe(server, token, "widgets")
    response = await sync_to_async(staff_client.post)(
        "/admin/streaming/limitoverride/add/",
        {
            "limit": "MAX_SUBSCRIPTIONS",
            "scope": "user",
            "user": alice.pk,
            "value": "1",
            "service": "",
            "worker_id": "",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    await asyncio.sleep(1.5)  # the control bus reaches every worker well within 2 s
    await ws.send(json.dumps({"type": "subscribe", "service": "notifications", "id": "n"}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert reply["type"] == "error" and reply["code"] == "too_many_subscriptions", reply
    await ws.close()
    assert await AuditEntry.objects.filter(kind="admin_action", detail__startswith="add limit").aexists()


# Cleanup and status, on recorded rows ------------------------------------------------------------


def test_cleanup_dry_run_counts_and_run_deletes_past_retention(settings):
    settings.STREAMING = {
        **settings.STREAMING,
        "SESSION_RETENTION_DAYS": 1,
        "LOAD_SAMPLE_RETENTION_DAYS": 1,
        "AUDIT_RETENTION_DAYS": 1,
    }
    session = recorded_worker_and_session()
    long_ago = timezone.now() - timedelta(days=3)
    WorkerProcess.objects.update(heartbeat_at=long_ago)
    LoadSample.objects.update(at=long_ago)
    AuditEntry.objects.create(kind="connect", detail="old")
    AuditEntry.objects.update(at=long_ago)
    out = StringIO()
    call_command("streaming_cleanup", "--dry-run", stdout=out)
    assert "1 marked dead, 1 open sessions closed (dry run" in out.getvalue()
    assert WorkerProcess.objects.get().state == "running" and LoadSample.objects.count() == 1
    call_command("streaming_cleanup", stdout=out)
    session.refresh_from_db()
    assert session.closed_at is not None and session.close_code == 1006
    assert LoadSample.objects.count() == 0 and AuditEntry.objects.count() == 0
    StreamSession.objects.update(closed_at=long_ago)
    out = StringIO()
    call_command("streaming_cleanup", stdout=out)
    lines = out.getvalue().splitlines()
    assert "closed sessions older than 1 days: 1 deleted" in lines and lines[-1].startswith("Done:")
    assert not StreamSession.objects.exists()


def test_a_draining_worker_that_went_quiet_is_stopped_not_dead():
    session = recorded_worker_and_session()
    WorkerProcess.objects.update(state="draining", heartbeat_at=timezone.now() - timedelta(minutes=1))
    assert workers_sweep(now=timezone.now(), stale_seconds=15) == (1, 1)
    session.refresh_from_db()
    assert session.worker.state == "stopped" and session.close_code == 4012


def test_status_prints_workers_services_and_load():
    recorded_worker_and_session()
    mitigation.service_configs_ensure()
    ServiceConfig.objects.filter(name="notifications").update(enabled=False)
    out = StringIO()
    call_command("streaming_status", stdout=out)
    text = out.getvalue()
    assert "host:1:abc" in text and "running" in text
    assert any(line.split()[:3] == ["widgets", "enabled", "1"] for line in text.splitlines())
    assert any(line.split()[:2] == ["notifications", "disabled"] for line in text.splitlines())
    assert "open sessions: 1" in text


@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_recorder_writes_new_changed_and_closed_sessions_on_either_path(vendor, alice, monkeypatch):
    """PostgreSQL has a one-statement upsert; other databases (SQLite, embedded) the ORM's."""
    if vendor == "other":
        monkeypatch.setattr(connection, "vendor", "sqlite")
    conns = [FakeConnection(f"{n:032x}", alice.pk) for n in range(3)]
    worker = fake_worker(conns)
    recorder = Recorder(worker)
    write(recorder.collect())
    conns[0].messages_in, conns[0].writer.messages_out = 5, 7
    worker.closed_sessions.append((worker.connections.pop(conns[1].session_id), 4403, "Bye."))
    del worker.connections[conns[2].session_id]  # gone without a close report
    write(recorder.collect())
    rows = {row.session_id: row for row in StreamSession.objects.all()}
    first, second, third = (rows[c.session_id] for c in conns)
    assert (
        first.user_id == alice.pk and first.messages_in == 5 and first.messages_out == 7 and first.rate_in > 0
    )
    assert (
        first.subscriptions == ["widgets/all"] and first.closed_at is None and first.remote_addr == "10.0.0.1"
    )
    assert (second.close_code, second.close_reason, second.subscriptions) == (4403, "Bye.", ["widgets/all"])
    assert third.closed_at is not None and third.close_code is None
    assert WorkerProcess.objects.get(worker_id="fake:1:x").connections == 1
    assert LoadSample.objects.filter(worker__worker_id="fake:1:x").count() == 2


def fake_worker(conns: list[FakeConnection]) -> SimpleNamespace:
    worker = SimpleNamespace(
        id="fake:1:x",
        pid=1,
        host="h",
        started=time.time(),
        draining=False,
        stopped=False,
        messages_in=0,
        pending_auth=0,
        loop_lag=0.0,
        closed_sessions=[],
        connections={c.session_id: c for c in conns},
        hub=SimpleNamespace(deliveries=0, streams={}, per_service={}, subscriber_count=lambda: len(conns)),
    )
    worker.meter = LoadMeter(worker)  # type: ignore[arg-type]
    return worker


class FakeConnection:
    def __init__(self, session_id: str, user_id: int) -> None:
        self.session_id, self.messages_in, self.connected_at = session_id, 0, time.time()
        self.resumed_from = None
        self.writer = SimpleNamespace(messages_out=0, bytes_out=0)
        self.subscriptions = {("widgets", "all"): None}
        self.grant = SimpleNamespace(principal=SimpleNamespace(user_id=user_id, application_id=None))
        self.remote, self.user_agent, self.origin = "10.0.0.1", "pytest", None


@pytest.mark.slow
@pytest.mark.browser
def test_sessions_list_and_dashboard_update_live_in_chromium(server, alice, django_user_model, monkeypatch):
    """New and closed sessions show up in the open-sessions list without a reload; charts are drawn."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access("/usr/bin/chromium", os.X_OK):
        pytest.skip("Debian's Chromium is missing: run `make chromium`")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    django_user_model.objects.create_superuser("boss", password="a long admin password")
    token = token_for(alice)
    first = sync_session(server, token, "widgets")
    wait_for(lambda: StreamSession.objects.filter(closed_at__isnull=True).exists())
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1024, "height": 800})
        page.goto(f"{server.url}/admin/login/?next=/admin/streaming/streamsession/%3Fstatus%3Dopen")
        page.fill("#id_username", "boss")
        page.fill("#id_password", "a long admin password")
        page.click("input[type=submit]")
        rows = page.locator("#result_list tbody tr")
        sync_api.expect(rows).to_have_count(1)
        second = sync_session(server, token, "notifications")
        sync_api.expect(rows).to_have_count(2, timeout=10_000)
        sync_api.expect(page.locator("#result_list")).to_contain_text(f"notifications/{alice.pk}")
        sync_api.expect(page.locator("#streaming-live-stamp")).to_contain_text("Live: updated")
        # The counts around the table follow the rows the live update drew.
        sync_api.expect(page.locator("#changelist .paginator")).to_contain_text("2 sessions")
        sync_api.expect(page.locator(".action-counter")).to_have_text("0 of 2 selected")
        sync_api.expect(page.locator("#site-name")).to_have_text("WidgetApp Streaming")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.screenshot(path=str(ARTIFACTS / "admin-sessions-live.png"), full_page=True)
        first.close()
        sync_api.expect(rows).to_have_count(1, timeout=10_000)
        page.goto(f"{server.url}/admin/streaming/workerprocess/dashboard/")
        charts = page.locator("#streaming-dashboard .streaming-chart")
        # Four fleet charts, one per worker, one per service; each a uPlot canvas with a legend.
        sync_api.expect(charts).to_have_count(4 + 1 + len(services.names()), timeout=10_000)
        sync_api.expect(page.locator("#streaming-charts-fleet canvas")).to_have_count(4)
        sync_api.expect(page.locator('[data-chart="fleet-connections"] .u-title')).to_have_text("Connections")
        drawn = page.evaluate(
            """() => [...document.querySelectorAll('#streaming-charts-fleet canvas')].every((canvas) => {
                 const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                 return pixels.some((value, i) => i % 4 === 3 && value > 0);
               })"""
        )
        assert drawn  # every fleet chart drew something
        page.locator('[data-chart="fleet-connections"] .u-over').hover()
        legend = page.locator('[data-chart="fleet-connections"] .u-legend .u-series').nth(1)
        sync_api.expect(legend).to_contain_text("connection")  # hover values in the legend, with units
        page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)
        browser.close()
    second.close()


def sync_session(server, token: str, service: str):
    from websockets.sync.client import connect

    ws = connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"])
    ws.recv(5)
    ws.send(json.dumps({"type": "subscribe", "service": service, "id": 1}))
    assert json.loads(ws.recv(5))["type"] == "subscribed"
    return ws


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{predicate} stayed false for {timeout}s"
        time.sleep(0.2)


async def test_a_failed_heartbeat_is_written_by_the_next(memory, alice, monkeypatch):
    conns = [FakeConnection(f"{n:032x}", alice.pk) for n in range(2)]
    worker = fake_worker(conns)
    recorder = Recorder(worker)
    real_write = recorder_module.write

    def failing(batch):
        raise RuntimeError("database away")

    monkeypatch.setattr(recorder_module, "write", failing)
    worker.closed_sessions.append((worker.connections.pop(conns[1].session_id), 4401, "Token revoked."))
    await recorder.flush()
    monkeypatch.setattr(recorder_module, "write", real_write)
    await recorder.flush()
    rows = {row.session_id: row async for row in StreamSession.objects.all()}
    assert (
        rows[conns[0].session_id].user_id == alice.pk and rows[conns[0].session_id].remote_addr == "10.0.0.1"
    )
    assert rows[conns[1].session_id].close_code == 4401


async def test_a_resumed_session_names_the_session_it_resumes(server, staff_client):
    user = await sync_to_async(make_user)("rhea")
    token = await sync_to_async(token_for)(user)
    ws, first_session = await connect_and_subscribe(server, token, "widgets")
    await ws.close()
    ws = await websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"])
    second_session = json.loads(await ws.recv())["session"]
    await ws.send(json.dumps({"type": "subscribe", "service": "widgets", "since": {"epoch": "x", "seq": 0}}))
    assert json.loads(await ws.recv())["recovered"] is False  # not a resume: nothing recorded
    await ws.send(json.dumps({"type": "unsubscribe", "service": "widgets"}))
    await ws.recv()
    head = await ws_head(ws)
    await ws.send(json.dumps({"type": "subscribe", "service": "widgets", "since": head}))
    assert json.loads(await ws.recv())["recovered"] is True
    row = await until(
        lambda: StreamSession.objects.filter(session_id=second_session).exclude(resumed_from="").first()
    )
    assert row.resumed_from == first_session
    listed = await sync_to_async(live_rows)(staff_client, "streamsession", "?status=open")
    cells = [cell for row in listed for cell in row["cells"]]
    assert any(first_session[:12] in cell for cell in cells)  # the "resumed from" column
    await ws.close()


async def ws_head(ws) -> dict:
    await ws.send(json.dumps({"type": "subscribe", "service": "widgets"}))
    reply = json.loads(await ws.recv())
    await ws.send(json.dumps({"type": "unsubscribe", "service": "widgets"}))
    await ws.recv()
    return {"epoch": reply["epoch"], "seq": reply["seq"]}
