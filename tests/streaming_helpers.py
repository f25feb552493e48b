"""Helpers for streaming tests: approved users, tokens, websocket communicators."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group

from accounts.models import User
from accounts.services import access_token_issue, group_approve

ALL_SCOPES = "stream:widgets stream:notifications stream:load publish:widgets publish:notifications"


def make_user(
    username: str,
    *,
    staff: bool = False,
    services: tuple[str, ...] = ("widgets", "notifications"),
    publish: tuple[str, ...] = ("widgets",),
) -> User:
    group, _ = Group.objects.get_or_create(name=f"g-{username}")
    group_approve(group=group, services=services, publish_services=publish)
    user = User.objects.create_user(username, password="pw-not-used-123", is_staff=staff)
    user.groups.add(group)
    return user


def token_for(
    user: User, scopes: str = "stream:widgets stream:notifications", expires: int | None = None
) -> str:
    return access_token_issue(user=user, scopes=scopes.split(), expires_seconds=expires)


def communicator(
    token: str | None = None,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
    path: str = "/ws/stream/",
) -> WebsocketCommunicator:
    from widgetapp.asgi import application

    protocols = list(subprotocols or ["widgetapp.v1"])
    if token is not None:
        protocols.append(f"bearer.{token}")
    return WebsocketCommunicator(application, path, headers=headers or [], subprotocols=protocols)


async def recv(comm: WebsocketCommunicator, timeout: float = 3) -> dict[str, Any]:
    return json.loads(await comm.receive_from(timeout))


async def send(comm: WebsocketCommunicator, message: dict[str, Any]) -> None:
    await comm.send_to(text_data=json.dumps(message))


async def open_session(token: str, **kwargs: Any) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    comm = communicator(token, **kwargs)
    connected, subprotocol = await comm.connect()
    assert connected and subprotocol == "widgetapp.v1"
    welcome = await recv(comm)
    assert welcome["type"] == "welcome", welcome
    return comm, welcome


async def expect_close(comm: WebsocketCommunicator, code: int, timeout: float = 3) -> dict[str, Any]:
    """Read until the close; returns it. Fails on anything but the expected code."""
    while True:
        output = await comm.receive_output(timeout)
        if output["type"] == "websocket.close":
            assert output.get("code") == code, output
            return output


def http_publish(url: str, token: str, service: str, body: Any) -> tuple[int, Any, dict[str, str]]:
    """POST an event to the publish API at `url`; the status, the JSON reply and the headers."""
    req = urllib.request.Request(
        f"{url}/api/streams/{service}/events",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)
