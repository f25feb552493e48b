"""The streaming core over the in-process (embedded) and Redis stores, driven by WebsocketCommunicator."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from streaming.delivery.publish import apublish, publish
from tests.streaming_helpers import expect_close, make_user, open_session, recv, send, token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def _subscribe(comm, service="widgets", **extra):
    await send(comm, {"type": "subscribe", "service": service, "id": "s1", **extra})
    reply = await recv(comm)
    assert reply["type"] == "subscribed", reply
    return reply


async def test_welcome_lists_allowed_services(store, alice, worker_cleanup):
    token = await sync_to_async(token_for)(alice)
    comm, welcome = await open_session(token)
    assert welcome["services"] == ["notifications", "widgets"]
    assert welcome["session"] and welcome["heartbeat"] > 0 and welcome["expires_at"].endswith("Z")
    await comm.disconnect()


async def test_multiplexes_two_services_in_order(store, alice, worker_cleanup):
    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    widgets = await _subscribe(comm, "widgets")
    notes = await _subscribe(comm, "notifications")
    assert notes["topic"] == str(alice.pk) and widgets["topic"] == "all"
    for i in range(3):
        await apublish("widgets", {"n": i})
        await apublish("notifications", {"n": i}, topic=str(alice.pk))
    got: dict[str, list[int]] = {"widgets": [], "notifications": []}
    for _ in range(6):
        event = await recv(comm)
        assert event["type"] == "event"
        got[event["service"]].append(event["seq"])
        assert event["data"]["n"] == event["seq"] - 1
    assert got == {"widgets": [1, 2, 3], "notifications": [1, 2, 3]}
    await comm.disconnect()


async def test_resume_with_since_replays_exactly_the_missed_events(store, alice, worker_cleanup):
    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    first = await _subscribe(comm)
    await apublish("widgets", {"n": 1})
    event = await recv(comm)
    await comm.disconnect()
    for n in range(2, 6):
        await apublish("widgets", {"n": n})
    comm, _ = await open_session(token)
    reply = await _subscribe(comm, since={"epoch": event["epoch"], "seq": event["seq"]})
    assert reply["recovered"] is True and reply["seq"] == 5 and reply["epoch"] == first["epoch"]
    replayed = [(await recv(comm))["seq"] for _ in range(4)]
    assert replayed == [2, 3, 4, 5]
    await apublish("widgets", {"n": 6})
    assert (await recv(comm))["seq"] == 6
    assert await comm.receive_nothing(0.2)
    await comm.disconnect()


async def test_unknown_epoch_or_trimmed_history_is_not_recovered(store, alice, worker_cleanup, settings):
    settings.STREAMING = {**settings.STREAMING, "HISTORY_MAX_EVENTS": 3, "HISTORY_MIN_SECONDS": 0}
    token = await sync_to_async(token_for)(alice)
    for n in range(10):
        await apublish("widgets", {"n": n})
    comm, _ = await open_session(token)
    head = await _subscribe(comm)
    assert head["seq"] == 10 and head["recovered"] is False
    await comm.disconnect()
    comm, _ = await open_session(token)
    trimmed = await _subscribe(comm, since={"epoch": head["epoch"], "seq": 2})
    assert trimmed["recovered"] is False and trimmed["seq"] == 10
    assert await comm.receive_nothing(0.2)
    await comm.disconnect()
    comm, _ = await open_session(token)
    other = await _subscribe(comm, since={"epoch": "not-the-epoch", "seq": 9})
    assert other["recovered"] is False
    await comm.disconnect()


async def test_concurrent_publishers_give_gap_free_sequence(store, alice, worker_cleanup):
    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    await _subscribe(comm)

    def publisher(worker_no: int) -> None:
        for i in range(250):
            publish("widgets", {"w": worker_no, "i": i})

    await asyncio.gather(*(asyncio.to_thread(publisher, n) for n in range(4)))
    seqs = [(await recv(comm, 10))["seq"] for _ in range(1000)]
    assert seqs == list(range(1, 1001))
    assert await comm.receive_nothing(0.2)
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "code", "msg_id"),
    [
        ("not json", "bad_request", None),
        ("[1, 2]", "bad_request", None),
        ('{"type": "nope", "id": 7}', "bad_request", 7),
        ('{"type": "subscribe", "id": "a", "service": 5}', "bad_request", "a"),
        ('{"type": "subscribe", "id": "b", "service": "nope"}', "unknown_service", "b"),
        ('{"type": "subscribe", "id": "c", "service": "widgets", "topic": "other"}', "bad_request", "c"),
        ('{"type": "subscribe", "id": "d", "service": "notifications", "topic": "999999"}', "forbidden", "d"),
        ('{"type": "subscribe", "id": "e", "service": "load"}', "forbidden", "e"),
        ('{"type": "unsubscribe", "id": "f", "service": "widgets"}', "not_subscribed", "f"),
        ('{"type": "subscribe", "id": "g", "service": "widgets", "since": {"epoch": 1}}', "bad_request", "g"),
        ('{"type": "request", "id": "h", "service": "widgets", "action": "explode"}', "bad_request", "h"),
        ('{"type": "request", "id": "i", "service": "widgets"}', "bad_request", "i"),
    ],
)
async def test_bad_input_gets_error_and_socket_stays_usable(
    store, alice, worker_cleanup, frame, code, msg_id
):
    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    await comm.send_to(text_data=frame)
    reply = await recv(comm)
    assert reply["type"] == "error" and reply["code"] == code, reply
    assert reply.get("id") == msg_id and reply["message"]
    await send(comm, {"type": "ping", "id": 1})
    assert await recv(comm) == {"type": "pong", "id": 1}
    await comm.disconnect()


async def test_subscribe_twice_is_a_bad_request(store, alice, worker_cleanup):
    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    await _subscribe(comm)
    await send(comm, {"type": "subscribe", "service": "widgets", "id": 2})
    reply = await recv(comm)
    assert reply["code"] == "bad_request" and reply["id"] == 2
    await send(comm, {"type": "unsubscribe", "service": "widgets", "id": 3})
    assert await recv(comm) == {"type": "unsubscribed", "service": "widgets", "topic": "all", "id": 3}
    await comm.disconnect()


async def test_binary_frame_closes_with_4400(store, alice, worker_cleanup):
    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    await comm.send_to(bytes_data=b"\x00\x01")
    await expect_close(comm, 4400)


async def test_widgets_list_snapshot_and_orm_events(store, alice, worker_cleanup):
    from widgetapp.widgets.models import Widget

    token = await sync_to_async(token_for)(alice)
    await sync_to_async(Widget.objects.create)(name="Sprocket", colour="red", quantity=3)
    comm, _ = await open_session(token)
    await send(comm, {"type": "request", "service": "widgets", "action": "list", "id": "L"})
    listing = await recv(comm)
    assert listing["type"] == "response" and listing["id"] == "L"
    assert [w["name"] for w in listing["data"]["widgets"]] == ["Sprocket"]
    assert listing["data"]["seq"] == 1
    await _subscribe(comm, since={"epoch": listing["data"]["epoch"], "seq": listing["data"]["seq"]})
    await sync_to_async(Widget.objects.filter(name="Sprocket").update)(quantity=9)
    event = await recv(comm)
    assert event["seq"] == 2 and event["data"]["action"] == "updated"
    assert event["data"]["widget"]["quantity"] == 9
    await comm.disconnect()


async def test_staff_receive_periodic_load_snapshots(store, worker_cleanup, settings, db):
    settings.STREAMING = {**settings.STREAMING, "WORKER_HEARTBEAT": 0.5}
    staff = await sync_to_async(make_user)("root", staff=True, services=("widgets", "load"))
    token = await sync_to_async(token_for)(staff, "stream:widgets stream:load")
    comm, welcome = await open_session(token)
    assert "load" in welcome["services"]
    await _subscribe(comm, "load")
    event = await recv(comm, 5)
    while event["type"] != "event":
        event = await recv(comm, 5)
    assert event["service"] == "load" and event["data"]["connections"] >= 1
    assert event["data"]["rss_bytes"] > 0 and event["data"]["state"] == "running"
    await comm.disconnect()


async def test_revoked_token_closes_but_refresh_rotation_does_not(store, alice, worker_cleanup):
    from oauth2_provider.models import AccessToken

    from accounts.signals import token_rotation
    from streaming.sessions.auth import token_checksum

    rotated = await sync_to_async(token_for)(alice)
    revoked = await sync_to_async(token_for)(alice)
    comm_rotated, _ = await open_session(rotated)
    comm_revoked, _ = await open_session(revoked)

    def delete(token: str, rotation: bool) -> None:
        row = AccessToken.objects.get(token_checksum=token_checksum(token))
        if rotation:
            with token_rotation():
                row.delete()
        else:
            row.delete()

    await sync_to_async(delete)(rotated, True)
    await sync_to_async(delete)(revoked, False)
    closed = await expect_close(comm_revoked, 4401)
    assert closed["reason"] == "Token revoked."
    await send(comm_rotated, {"type": "ping", "id": "still"})
    assert await recv(comm_rotated) == {"type": "pong", "id": "still"}
    fresh = await sync_to_async(token_for)(alice)
    await send(comm_rotated, {"type": "auth", "token": fresh, "id": "swap"})
    swapped = await recv(comm_rotated)
    assert swapped["type"] == "authenticated" and swapped["id"] == "swap"
    await comm_rotated.disconnect()


async def test_group_change_after_refresh_rotation_narrows_instead_of_closing(store, alice, worker_cleanup):
    from django.contrib.auth.models import Group
    from oauth2_provider.models import AccessToken

    from accounts.services import group_approve
    from accounts.signals import token_rotation
    from streaming.sessions.auth import token_checksum

    token = await sync_to_async(token_for)(alice)
    comm, _ = await open_session(token)
    await _subscribe(comm, "widgets")
    await _subscribe(comm, "notifications")

    def rotate_then_drop_notifications() -> None:
        with token_rotation():
            AccessToken.objects.get(token_checksum=token_checksum(token)).delete()
        group_approve(group=Group.objects.get(name="g-alice"), services=["widgets"])

    await sync_to_async(rotate_then_drop_notifications)()
    ended = await recv(comm)
    assert (ended["type"], ended["code"], ended["service"]) == ("error", "forbidden", "notifications")
    await apublish("widgets", {"still": True})
    assert (await recv(comm))["data"] == {"still": True}
    await comm.disconnect()
