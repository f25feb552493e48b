"""Admin: recorded sessions and workers, mitigation actions, metrics, readiness and cleanup commands."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from streaming.models import LoadSample, StreamSession, WorkerProcess
from streaming.recorder import recorder_of
from streaming.worker import get_worker
from tests.streaming_helpers import make_user, open_session, recv, send, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def memory(settings):
    """The embedded store and in-memory channel layer: one worker, driven in-process."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMING = {**settings.STREAMING, "REDIS_URL": ""}
    from streaming.history import memory_history

    memory_history.reset()


@pytest.fixture
async def worker(memory):
    worker = get_worker()
    yield worker
    await worker.close()


@pytest.fixture
def alice(db):
    return make_user("alice")


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
