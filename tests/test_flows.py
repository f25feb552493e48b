"""Per-service and per-publisher rates: what a worker measures, the fleet figures, status and metrics."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from streaming.delivery.publish import apublish
from streaming.models import LoadSample
from streaming.ops import flows
from streaming.ops.records import recorder_of
from streaming.ops.status import status_text
from tests.streaming_helpers import open_session, recv, send, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_fleet_figures_add_publishes_and_deliveries_but_not_each_workers_copy_of_an_event():
    per_worker = [
        {"widgets": {"published_per_s": 2.0, "received_per_s": 10.0, "delivered_per_s": 100.0}},
        {"widgets": {"published_per_s": 8.0, "received_per_s": 10.0, "delivered_per_s": 50.0}},
        {"load": {"published_per_s": 0.5, "received_per_s": 1.0, "delivered_per_s": 1.0}},
    ]
    assert flows.combine(per_worker) == {
        "load": {"published_per_s": 0.5, "received_per_s": 1.0, "delivered_per_s": 1.0},
        "widgets": {"published_per_s": 10.0, "received_per_s": 10.0, "delivered_per_s": 150.0},
    }


async def test_a_busy_service_and_its_publisher_show_in_the_sample_status_and_metrics(worker, alice):
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    await send(comm, {"type": "subscribe", "service": "widgets", "id": 1})
    assert (await recv(comm))["type"] == "subscribed"
    worker.meter.read()  # the window starts here
    for n in range(20):
        await apublish("widgets", {"n": n}, publisher="user:42")
    for _ in range(20):
        assert (await recv(comm))["type"] == "event"
    await asyncio.sleep(1.05)  # rates are measured over windows of at least a second
    load = worker.meter.read()
    widgets = load["services"]["widgets"]
    assert widgets["published_per_s"] > 5 and widgets["received_per_s"] > 5 and widgets["delivered_per_s"] > 5
    assert load["publishers"][0]["publisher"] == "user:42"
    assert load["publishers"][0]["service"] == "widgets"

    await recorder_of(worker).flush()
    sample = await LoadSample.objects.filter(worker__worker_id=worker.id).alatest("at")
    assert sample.per_service["widgets"]["delivered_per_s"] > 5
    status = await sync_to_async(status_text)(now=timezone.now())
    assert "published" in status and "delivered" in status
    widgets_line = next(line for line in status.splitlines() if line.lstrip().startswith("widgets"))
    assert "/s" in widgets_line

    metrics = (await AsyncClient().get("/metrics")).content.decode()
    assert f'streaming_service_deliveries_total{{service="widgets",worker="{worker.id}"}} 20.0' in metrics
    assert 'publisher="user:42"' in metrics
    await comm.disconnect()
