"""Widgets `list` in pages with the first page's stream position, and the request rate limit."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from streaming.sessions import limits
from tests.streaming_helpers import open_session, recv, send, token_for
from widgetapp.widgets.models import Widget
from widgetapp.widgets.service import PAGE_SIZE

pytestmark = pytest.mark.django_db(transaction=True)


async def _list(comm, data=None, msg_id="L"):
    await send(comm, {"type": "request", "service": "widgets", "action": "list", "id": msg_id, "data": data})
    return await recv(comm)


def _widgets(count: int) -> list[int]:
    return [Widget.objects.create(name=f"W{n:02}", colour="red", quantity=n).pk for n in range(count)]


@pytest.fixture
def generous(settings):
    settings.STREAMING = {**settings.STREAMING, "REQUESTS_PER_SECOND": 1000.0, "REQUESTS_BURST": 1000}


async def test_list_pages_by_id_with_next(store, generous, alice, worker_cleanup):
    ids = await sync_to_async(_widgets)(7)
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    pages, after = [], None
    while True:
        reply = await _list(comm, {"after": after, "limit": 3})
        assert reply["type"] == "response" and set(reply["data"]) == {"epoch", "seq", "widgets", "next"}
        pages.append([w["id"] for w in reply["data"]["widgets"]])
        after = reply["data"]["next"]
        if after is None:
            break
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]
    legacy = (await _list(comm))["data"]  # no data: the first page, of PAGE_SIZE rows at most
    assert [w["id"] for w in legacy["widgets"]] == ids and legacy["next"] is None and legacy["seq"] == 7
    for bad in ({"limit": PAGE_SIZE + 1}, {"limit": 0}, {"after": -1}, {"after": "3"}, {"page": 2}, [1]):
        error = await _list(comm, bad, msg_id="B")
        assert error["type"] == "error" and error["code"] == "bad_request" and error["id"] == "B", bad
    await comm.disconnect()


async def test_pages_plus_events_from_the_first_position_rebuild_the_table(
    store, generous, alice, worker_cleanup
):
    ids = await sync_to_async(_widgets)(6)
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    first = (await _list(comm, {"limit": 2}))["data"]
    rows = {w["id"]: w for w in first["widgets"]}
    # Changes while the client pages: to a row of the first page, of a later page, one deleted.
    await sync_to_async(Widget.objects.filter(pk=ids[0]).update)(quantity=100)
    await sync_to_async(Widget.objects.filter(pk=ids[4]).update)(quantity=400)
    await sync_to_async(Widget.objects.filter(pk=ids[5]).delete)()
    after = first["next"]
    while after is not None:
        page = (await _list(comm, {"after": after, "limit": 2}))["data"]
        rows.update({w["id"]: w for w in page["widgets"]})
        after = page["next"]
    since = {"epoch": first["epoch"], "seq": first["seq"]}
    await send(comm, {"type": "subscribe", "service": "widgets", "id": "s", "since": since})
    assert (await recv(comm))["recovered"] is True
    for _ in range(3):
        event = (await recv(comm))["data"]
        if event["action"] == "deleted":
            rows.pop(event["widget"]["id"], None)
        else:
            rows[event["widget"]["id"]] = event["widget"]
    expected = {ids[0]: 100, ids[1]: 1, ids[2]: 2, ids[3]: 3, ids[4]: 400}
    assert {pk: w["quantity"] for pk, w in rows.items()} == expected
    await comm.disconnect()


async def test_requests_have_their_own_lower_rate(store, settings, alice, worker_cleanup):
    settings.STREAMING = {**settings.STREAMING, "REQUESTS_PER_SECOND": 0.5, "REQUESTS_BURST": 2}
    comm, _ = await open_session(await sync_to_async(token_for)(alice))
    answers = [await _list(comm, msg_id=f"r{n}") for n in range(3)]
    assert [a["type"] for a in answers] == ["response", "response", "error"]
    assert answers[2]["code"] == "rate_limited" and answers[2]["id"] == "r2"
    await send(comm, {"type": "ping", "id": "p"})
    assert await recv(comm) == {"type": "pong", "id": "p"}  # other messages keep their own rate
    limits.set_overrides([("REQUESTS_PER_SECOND", "global", "", 1000)])
    try:
        comm2, _ = await open_session(await sync_to_async(token_for)(alice))
        replies = [(await _list(comm2, msg_id=f"o{n}"))["type"] for n in range(5)]
        assert replies == ["response"] * 5  # a live override raises the rate
        await comm2.disconnect()
    finally:
        limits.set_overrides([])
    await comm.disconnect()
