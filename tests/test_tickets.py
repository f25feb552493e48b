"""Resume tickets: readmission without the database, and revocation that still arrives within 1 s."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import websockets
from asgiref.sync import sync_to_async
from oauth2_provider.models import AccessToken

from streaming.services import Principal
from streaming.sessions import tickets
from streaming.sessions.auth import AuthError, Grant
from tests.streaming_helpers import token_for

HOUR = 3600.0


@pytest.fixture(autouse=True)
def _no_marks():
    tickets.forget_marks()
    yield
    tickets.forget_marks()


def _grant(expires_in: float = 10 * HOUR) -> Grant:
    principal = Principal(7, "alice", False, 3, frozenset({"stream:widgets"}))
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    return Grant(principal, "c" * 64, 11, expires, frozenset({5}))


def _refusal(ticket: str, now: float | None = None) -> str:
    with pytest.raises(AuthError) as refused:
        tickets.read(ticket, now)
    assert refused.value.code == 4401
    return refused.value.reason


def test_a_ticket_proves_its_grant_without_the_database():
    grant = _grant()
    ticket = tickets.issue(grant)
    assert ticket is not None
    read, issued = tickets.read(ticket)
    assert read.principal == grant.principal and read.checksum == grant.checksum
    assert read.group_ids == grant.group_ids and read.token_id == grant.token_id
    assert abs(read.expires_at.timestamp() - grant.expires_at.timestamp()) < 1e-3
    assert abs(issued - time.time()) < 5


def test_tampered_tickets_are_4401():
    ticket = tickets.issue(_grant())
    assert ticket is not None
    kid, payload, mac = ticket.split(".")
    body = json.loads(tickets._unb64(payload))
    body["s"].append("stream:admin")  # widen the scopes, keep the old signature
    widened = tickets._b64(json.dumps(body).encode())
    assert _refusal(f"{kid}.{widened}.{mac}") == "Invalid ticket."
    assert _refusal(f"{kid}.{payload}.{'A' * len(mac)}") == "Invalid ticket."
    assert _refusal("not-a-ticket") == "Invalid ticket."


def test_a_ticket_expires_after_ticket_seconds_and_never_outlives_its_token(settings):
    settings.STREAMING = {**settings.STREAMING, "TICKET_SECONDS": 300.0}
    now = time.time()
    ticket = tickets.issue(_grant(), now)
    assert ticket is not None
    tickets.read(ticket, now + 299)
    assert _refusal(ticket, now + 301) == "Ticket expired."
    short = tickets.issue(_grant(expires_in=30), now)
    assert short is not None
    assert _refusal(short, now + 31) == "Ticket expired."


def test_keys_rotate_a_ticket_verifies_under_the_previous_key_only(settings):
    settings.STREAMING = {**settings.STREAMING, "TICKET_SECONDS": 300.0}
    start = (tickets.key_id(time.time()) + 1) * 300.0 - 1  # one second before a rotation
    ticket = tickets.issue(_grant(), start)
    assert ticket is not None
    tickets.read(ticket, start + 2)  # next key window: still good
    assert _refusal(ticket, start + 302) == "Ticket expired."  # two windows on: its key is gone
    settings.SECRET_KEY = "another-secret-key-for-this-test-only"
    assert _refusal(ticket, start + 2) == "Invalid ticket."


def test_marks_refuse_revoked_tokens_and_recheck_changed_users():
    grant = _grant()
    ticket = tickets.issue(grant)
    assert ticket is not None
    tickets.note(tickets.marks_for(user_ids=[7]))
    read, issued = tickets.read(ticket)
    assert tickets.is_stale(read, issued)
    later = tickets.issue(grant, time.time() + tickets.MARK_GRACE + 1)
    assert later is not None and not tickets.is_stale(*tickets.read(later, time.time() + 10))
    tickets.note(tickets.marks_for(checksum=grant.checksum))
    assert _refusal(ticket) == "Token revoked."


def test_no_tickets_when_disabled(settings):
    settings.STREAMING = {**settings.STREAMING, "TICKET_SECONDS": 0}
    assert tickets.issue(_grant()) is None


# Against real workers ------------------------------------------------------------------------------


async def _welcome(server, credential: str) -> tuple[websockets.ClientConnection, dict]:
    ws = await websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", credential])
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 5))


async def _ticket_of(server, token: str) -> str:
    ws, welcome = await _welcome(server, f"bearer.{token}")
    await ws.close()
    assert welcome["type"] == "welcome" and welcome["ticket"]
    return welcome["ticket"]


async def _refused(server, credential: str) -> int:
    """The close code of a connection that offers `credential` (read until the server closes)."""
    ws = await websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", credential])
    return await _close_code(ws)


async def _close_code(ws) -> int:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), 3)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006


@pytest.mark.django_db(transaction=True)
async def test_ticket_readmits_on_another_worker_and_in_the_first_message(two_workers, alice):
    token = await sync_to_async(token_for)(alice)
    ticket = await _ticket_of(two_workers[0], token)
    ws, welcome = await _welcome(two_workers[1], f"ticket.{ticket}")
    assert welcome["type"] == "welcome" and welcome["services"] == ["notifications", "widgets"]
    assert welcome["ticket"] and welcome["ticket"] != ticket
    await ws.send(json.dumps({"type": "subscribe", "id": 1, "service": "widgets"}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "subscribed"
    await ws.close()
    ws = await websockets.connect(two_workers[1].ws_url, subprotocols=["widgetapp.v1"])
    await ws.send(json.dumps({"type": "auth", "id": "a", "ticket": ticket}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "welcome"
    await ws.close()


@pytest.mark.django_db(transaction=True)
async def test_revoked_token_ticket_is_4401_within_a_second_even_on_a_later_worker(
    two_workers, alice, daphne_factory, server_env
):
    token = await sync_to_async(token_for)(alice)
    ticket = await _ticket_of(two_workers[0], token)
    started = time.monotonic()
    await sync_to_async(lambda: AccessToken.objects.filter(user=alice).delete())()
    assert await _refused(two_workers[1], f"ticket.{ticket}") == 4401  # reconnecting at once
    assert time.monotonic() - started < 1.0
    later = daphne_factory(server_env)  # started after the revocation: finds the mark in Redis
    assert await _refused(later, f"ticket.{ticket}") == 4401


@pytest.mark.django_db(transaction=True)
async def test_group_removal_makes_a_reconnecting_ticket_4403_within_a_second(two_workers, alice):
    token = await sync_to_async(token_for)(alice)
    ticket = await _ticket_of(two_workers[0], token)
    started = time.monotonic()
    await sync_to_async(lambda: alice.groups.clear())()
    assert await _refused(two_workers[1], f"ticket.{ticket}") == 4403
    assert time.monotonic() - started < 1.0


@pytest.mark.django_db(transaction=True)
async def test_forged_ticket_and_ticket_plus_token_are_4401(two_workers, alice):
    token = await sync_to_async(token_for)(alice)
    ticket = await _ticket_of(two_workers[0], token)
    kid, payload, mac = ticket.split(".")
    assert await _refused(two_workers[1], f"ticket.{kid}.{payload}.{mac[::-1]}") == 4401
    ws = await websockets.connect(
        two_workers[1].ws_url, subprotocols=["widgetapp.v1", f"ticket.{ticket}", f"bearer.{token}"]
    )
    assert await _close_code(ws) == 4401
