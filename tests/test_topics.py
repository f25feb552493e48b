"""Topic families with object permission, per-service stream options and the latest-value mode."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from streaming.bus import audit
from streaming.delivery import options
from streaming.delivery.history import build_frame, frame_head, new_epoch
from streaming.delivery.publish import apublish
from streaming.models import AuditEntry, StreamOptions
from streaming.ops.admin_cells import options_in_force
from streaming.sessions.operations import load_stream_options
from tests.streaming_helpers import make_user, open_session, recv, send, token_for
from widgetapp.widgets.models import Widget

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bob(db):
    return make_user("bob")


def widget_for(*viewers) -> Widget:
    widget = Widget.objects.create(name="cog")
    widget.viewers.set(viewers)
    return widget


async def ask(comm, message: dict) -> dict:
    await send(comm, {"id": "q", **message})
    return await recv(comm)


# Topic families -------------------------------------------------------------------------------


async def test_a_viewer_follows_its_widget_and_gets_its_changes_on_both_streams(store, alice, worker_cleanup):
    widget = await sync_to_async(widget_for)(alice)
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    everything = await ask(comm, {"type": "subscribe", "service": "widgets"})
    one = await ask(comm, {"type": "subscribe", "service": "widgets", "topic": f"widget:{widget.pk}"})
    assert one["type"] == "subscribed" and one["topic"] == f"widget:{widget.pk}", one
    widget.quantity = 7
    await sync_to_async(widget.save)()
    events = {(e["topic"], e["seq"]): e["data"] for e in [await recv(comm), await recv(comm)]}
    assert set(events) == {("all", everything["seq"] + 1), (f"widget:{widget.pk}", one["seq"] + 1)}
    assert {data["widget"]["quantity"] for data in events.values()} == {7}
    await comm.disconnect()


async def test_another_users_widget_is_forbidden_and_staff_may_follow_any(store, alice, bob, worker_cleanup):
    widget = await sync_to_async(widget_for)(bob)
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    refused = await ask(comm, {"type": "subscribe", "service": "widgets", "topic": f"widget:{widget.pk}"})
    assert refused["type"] == "error" and refused["code"] == "forbidden" and refused["id"] == "q", refused
    missing = await ask(comm, {"type": "subscribe", "service": "widgets", "topic": "widget:999999"})
    assert missing["code"] == "forbidden"  # no hint whether it exists
    await comm.disconnect()
    staff = await sync_to_async(make_user)("sam", staff=True)
    comm, _ = await open_session(await sync_to_async(token_for)(staff))
    allowed = await ask(comm, {"type": "subscribe", "service": "widgets", "topic": f"widget:{widget.pk}"})
    assert allowed["type"] == "subscribed"
    await comm.disconnect()
    await audit.aflush()
    assert await AuditEntry.objects.filter(kind="denied", detail__contains=f"widget:{widget.pk}").aexists()


@pytest.mark.parametrize("topic", ["widget:abc", "widget:", "widget:0", "gadget:1", "widget", "all:1"])
async def test_malformed_or_unknown_topics_are_bad_requests(store, alice, worker_cleanup, topic):
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    reply = await ask(comm, {"type": "subscribe", "service": "widgets", "topic": topic})
    assert reply["type"] == "error" and reply["code"] == "bad_request", reply
    await comm.disconnect()


async def test_max_subscriptions_is_reached_with_per_widget_topics(store, alice, settings, worker_cleanup):
    settings.STREAMING = {**settings.STREAMING, "MAX_SUBSCRIPTIONS": 2}
    first, second = [await sync_to_async(widget_for)(alice) for _ in range(2)]
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    for widget in (first, second):
        topic = f"widget:{widget.pk}"
        assert (await ask(comm, {"type": "subscribe", "service": "widgets", "topic": topic}))[
            "type"
        ] == "subscribed"
    reply = await ask(comm, {"type": "subscribe", "service": "widgets"})
    assert reply["code"] == "too_many_subscriptions", reply
    await comm.disconnect()


# Latest value ----------------------------------------------------------------------------------


async def test_a_new_load_subscriber_gets_the_current_sample_at_once(store, worker_cleanup):
    staff = await sync_to_async(make_user)("sam", staff=True, services=("load",))
    for n in range(3):
        await apublish("load", {"sample": n})
    comm, _ = await open_session(await sync_to_async(token_for)(staff, "stream:load"))
    subscribed = await ask(comm, {"type": "subscribe", "service": "load"})
    latest = await recv(comm)
    assert subscribed["seq"] == latest["seq"] - 1, (subscribed, latest)
    assert latest["type"] == "event" and latest["latest"] is True and latest["data"] == {"sample": 2}
    await apublish("load", {"sample": 3})
    live = await recv(comm)
    assert live["seq"] == latest["seq"] + 1 and "latest" not in live
    await comm.disconnect()


async def test_resuming_subscribers_and_other_services_get_no_latest_event(store, alice, worker_cleanup):
    await apublish("widgets", {"n": 1})
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    subscribed = await ask(comm, {"type": "subscribe", "service": "widgets"})
    await apublish("widgets", {"n": 2})
    event = await recv(comm)
    assert event["seq"] == subscribed["seq"] + 1 and event["data"] == {"n": 2} and "latest" not in event
    await comm.disconnect()


# Options from the admin ------------------------------------------------------------------------


async def test_options_saved_for_a_service_apply_to_its_next_subscriber(store, alice, worker_cleanup):
    await apublish("widgets", {"n": 1})
    await StreamOptions.objects.acreate(service="widgets", latest=True)
    await load_stream_options()  # what the `options` control operation runs on every worker
    assert options.stream_options("widgets").latest and not options.stream_options("notifications").latest
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    await ask(comm, {"type": "subscribe", "service": "widgets"})
    latest = await recv(comm)
    assert latest["latest"] is True and latest["data"] == {"n": 1}
    await comm.disconnect()


async def test_history_retention_and_byte_cap_are_per_service(store, alice, worker_cleanup):
    note = {"text": "x" * 100}
    size = len(build_frame(frame_head("notifications", str(alice.pk)), new_epoch(), 6, json.dumps(note)))
    await StreamOptions.objects.acreate(service="widgets", history_max_events=2, history_min_seconds=0)
    await StreamOptions.objects.acreate(
        service="notifications", history_max_bytes=size * 5 // 2, history_min_seconds=0
    )
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    await load_stream_options()
    widgets = await ask(comm, {"type": "subscribe", "service": "widgets"})
    notes = await ask(comm, {"type": "subscribe", "service": "notifications"})
    for n in range(6):
        await apublish("widgets", {"n": n})
        await apublish("notifications", note, topic=str(alice.pk))
    for _ in range(12):
        await recv(comm)
    await comm.disconnect()
    comm, _ = await open_session(await sync_to_async(token_for)(alice))

    async def recovered(service: str, since: dict) -> bool:
        reply = await ask(comm, {"type": "subscribe", "service": service, "since": since})
        await send(comm, {"type": "unsubscribe", "service": service})
        while (await recv(comm))["type"] != "unsubscribed":  # the replayed events
            pass
        return reply["recovered"]

    epoch = widgets["epoch"]
    assert not await recovered("widgets", {"epoch": epoch, "seq": 3})  # 3 events missed, 2 kept
    assert await recovered("widgets", {"epoch": epoch, "seq": 4})
    # The byte cap holds two and a half frames: the last two are kept.
    assert not await recovered("notifications", {"epoch": notes["epoch"], "seq": 3})
    assert await recovered("notifications", {"epoch": notes["epoch"], "seq": 4})
    await comm.disconnect()


def test_the_admin_saves_options_and_shows_what_is_in_force(client, admin_user, settings):
    settings.STREAMING = {**settings.STREAMING, "HISTORY_MAX_EVENTS": 500}
    client.force_login(admin_user)
    assert client.get("/admin/streaming/streamoptions/add/").status_code == 200
    response = client.post(
        "/admin/streaming/streamoptions/add/",
        {"service": "widgets", "history_min_seconds": "60", "presence": "users", "latest": "unknown"},
    )
    assert response.status_code == 302, response.content[:3000]
    row = StreamOptions.objects.get(service="widgets")
    assert row.values()["presence"] == "users" and row.values()["history_max_events"] is None
    shown = options_in_force(row)
    assert "history 500 events / 1 min" in shown and "presence users" in shown
    assert "1 min" in client.get("/admin/streaming/streamoptions/").content.decode()
    assert AuditEntry.objects.filter(kind="admin_action", detail="set stream options of widgets").exists()
