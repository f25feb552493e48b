"""Every path that removes access reaches live sockets on another worker within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from oauth2_provider.models import AccessToken, Application

from accounts.models import ApprovedGroup, User
from accounts.services import group_approve
from tests.streaming_helpers import make_user, token_for
from tests.test_security import _client_credentials_token, call, close_code, recv, welcomed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bob(db) -> User:
    return make_user("bob")


async def _closed_within_a_second(ws, change: Callable[[], object]) -> int:
    started = time.monotonic()
    await sync_to_async(change)()
    code, _ = await close_code(ws)
    assert time.monotonic() - started < 1.0
    return code


async def _bystander_still_streams(server, token: str) -> None:
    ws = await welcomed(server, token)
    assert (await call(ws, {"type": "ping", "id": 1})) == {"type": "pong", "id": 1}
    await ws.close()


def _unapprove(user: User) -> Callable[[], object]:
    return lambda: ApprovedGroup.objects.filter(group__user=user).delete()


def _leave(user: User) -> Callable[[], object]:
    return lambda: user.groups.clear()


def _delete_app(user: User) -> Callable[[], object]:
    return lambda: Application.objects.filter(user=user).delete()


def _give_app_away(user: User) -> Callable[[], object]:
    def change() -> None:
        outsider = User.objects.create_user("mallory", password="pw-not-used-123")
        for app in Application.objects.filter(user=user):
            app.user = outsider
            app.save()

    return change


@pytest.mark.parametrize("change", [_unapprove, _leave, _delete_app, _give_app_away])
async def test_client_credentials_socket_is_rejudged_when_owner_or_app_changes(
    two_workers, alice, bob, change
):
    app_token = await sync_to_async(_client_credentials_token)(alice, "stream:widgets")
    ws = await welcomed(two_workers[1], app_token)
    assert (await call(ws, {"type": "subscribe", "service": "widgets"}))["type"] == "subscribed"
    assert await _closed_within_a_second(ws, change(alice)) in (4401, 4403)
    await _bystander_still_streams(two_workers[1], await sync_to_async(token_for)(bob))


async def test_client_credentials_scopes_narrow_to_the_owners_groups(two_workers, alice):
    app_token = await sync_to_async(_client_credentials_token)(alice, "stream:widgets stream:load")
    ws = await welcomed(two_workers[1], app_token)
    assert (await call(ws, {"type": "subscribe", "service": "widgets"}))["type"] == "subscribed"
    refused = await call(ws, {"type": "subscribe", "service": "load", "id": 1})
    assert refused["code"] == "forbidden"  # the owner's groups never allowed `load`
    group = await sync_to_async(Group.objects.get)(name="g-alice")
    await sync_to_async(group_approve)(group=group, services=["notifications"])
    dropped = await recv(ws, timeout=1.0)
    assert (dropped["type"], dropped["code"], dropped["service"]) == ("error", "forbidden", "widgets")
    await ws.close()


def _delete_group(user: User) -> Callable[[], object]:
    return lambda: Group.objects.filter(user=user).delete()


def _delete_user(user: User) -> Callable[[], object]:
    return lambda: User.objects.filter(pk=user.pk).delete()


@pytest.mark.parametrize("change", [_delete_group, _unapprove, _delete_user])
async def test_deleting_what_grants_access_closes_live_members(two_workers, alice, bob, change):
    ws = await welcomed(two_workers[1], await sync_to_async(token_for)(alice))
    assert (await call(ws, {"type": "subscribe", "service": "widgets"}))["type"] == "subscribed"
    assert await _closed_within_a_second(ws, change(alice)) in (4401, 4403)
    await _bystander_still_streams(two_workers[0], await sync_to_async(token_for)(bob))


async def test_revoke_action_in_the_token_admin_closes_the_socket(two_workers, alice, admin_client):
    """DOT's admin has no raw delete (403); its revoke action is the way, and it reaches sockets."""
    ws = await welcomed(two_workers[1], await sync_to_async(token_for)(alice))
    token = await sync_to_async(AccessToken.objects.get)(user=alice)

    def revoke() -> None:
        url = "/admin/oauth2_provider/accesstoken/"
        admin_client.post(url, {"action": "revoke_tokens", "_selected_action": [token.pk]})

    assert await _closed_within_a_second(ws, revoke) == 4401
    assert not await sync_to_async(AccessToken.objects.filter(pk=token.pk).exists)()


async def test_recheck_of_one_app_leaves_others_untouched(two_workers, alice, bob):
    mine = await sync_to_async(_client_credentials_token)(alice, "stream:widgets")
    theirs = await sync_to_async(_client_credentials_token)(bob, "stream:widgets")
    sockets = [await welcomed(two_workers[1], token) for token in (mine, theirs)]
    await _closed_within_a_second(sockets[0], _unapprove(alice))
    await asyncio.sleep(0.3)
    assert await call(sockets[1], {"type": "ping", "id": 2}) == {"type": "pong", "id": 2}
    await sockets[1].close()
