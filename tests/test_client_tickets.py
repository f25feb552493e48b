"""Clients reconnect with their resume ticket, fall back to the token on a 4401, and get fresh ones."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import pytest
import websockets
from asgiref.sync import sync_to_async
from oauth2_provider.models import AccessToken

from streaming.client import State, StreamClient
from tests.servers import DaphneProcess
from tests.streaming_helpers import token_for

FAST = {"STREAMING_DRAIN_SECONDS": "0.3"}


async def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - client state has no signal to wait on
            await asyncio.sleep(0.05)


async def _restart(daphne_factory, server: DaphneProcess, env: dict[str, str]) -> DaphneProcess:
    """Stop the worker (a drain: 4012 with a retry hint) and start another on the same port."""
    await asyncio.to_thread(server.stop)
    return await asyncio.to_thread(daphne_factory, env, server.port)


def _hide_token(checksum: str) -> None:
    """Make the token unknown to the database without the revocation signal (no stale mark)."""
    AccessToken.objects.filter(token_checksum=checksum).update(token_checksum="0" * 64)


def _restore_token(checksum: str) -> None:
    AccessToken.objects.filter(token_checksum="0" * 64).update(token_checksum=checksum)


@pytest.mark.django_db(transaction=True)
async def test_client_reconnects_with_its_ticket_and_falls_back_to_its_token(
    daphne_factory, server_env, alice, caplog
):
    caplog.set_level(logging.INFO, logger="streaming.client.connection")
    env = {**server_env, **FAST}
    server = await asyncio.to_thread(daphne_factory, env)
    token = await sync_to_async(token_for)(alice)
    checksum = await sync_to_async(lambda: AccessToken.objects.get(user=alice).token_checksum)()
    client = StreamClient(server.ws_url, token, backoff_base=0.05, backoff_cap=0.3)
    async with client:
        await client.subscribe("widgets")
        first = client.welcome and client.welcome["ticket"]
        assert first
        # Only the ticket can readmit the client now: a token lookup would find nothing.
        await sync_to_async(_hide_token)(checksum)
        server = await _restart(daphne_factory, server, env)
        await _until(lambda: client.stats.reconnects == 1 and client.state is State.OPEN)
        assert client.welcome is not None and client.welcome["ticket"] not in (None, first)

        # Keys derived from another secret refuse the ticket with 4401: the token is tried once more.
        await sync_to_async(_restore_token)(checksum)
        server = await _restart(daphne_factory, server, {**env, "DJANGO_SECRET_KEY": "another secret"})
        await _until(lambda: client.stats.reconnects == 2 and client.state is State.OPEN)
    assert any("4401 Invalid ticket." in record.getMessage() for record in caplog.records)


@pytest.mark.django_db(transaction=True)
async def test_long_lived_connections_get_a_fresh_ticket_every_half_ticket_lifetime(
    daphne_factory, server_env, alice
):
    env = {**server_env, "STREAMING_TICKET_SECONDS": "2", "STREAMING_HEARTBEAT_INTERVAL": "1"}
    server = await asyncio.to_thread(daphne_factory, env)
    token = await sync_to_async(token_for)(alice)
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"]) as ws:
        welcome = json.loads(await ws.recv())
        seen = [welcome["ticket"]]
        async with asyncio.timeout(10):
            while len(seen) < 3:
                msg = json.loads(await ws.recv())
                if msg["type"] == "ticket":
                    seen.append(msg["ticket"])
    assert len(set(seen)) == 3
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"ticket.{seen[-1]}"]) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
