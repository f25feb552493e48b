"""Approved groups and the rules for which user or application may hold which OAuth scopes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, set_token_value
from oauth2_provider.scopes import get_scopes_backend
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import generate_token

from accounts.exceptions import NotApproved, ScopeNotAllowed, UnknownScope
from accounts.models import ApprovedGroup
from accounts.signals import approval_announce

AnyUser = AbstractBaseUser | AnonymousUser


def known_scopes() -> set[str]:
    """Scopes the authorization server knows: `stream:`/`publish:` for each registered service."""
    return set(get_scopes_backend().get_all_scopes())


def known_service_names() -> list[str]:
    return sorted(scope.removeprefix("stream:") for scope in known_scopes() if scope.startswith("stream:"))


def group_approve(
    *, group: Group, services: Iterable[str], publish_services: Iterable[str] = ()
) -> ApprovedGroup:
    """Approve `group` (or change its services); members may then get tokens for those services."""
    with transaction.atomic():
        approval, _ = ApprovedGroup.objects.update_or_create(
            group=group,
            defaults={"services": sorted(set(services)), "publish_services": sorted(set(publish_services))},
        )
        approval_announce(group=group)
    return approval


def group_revoke(*, group: Group) -> bool:
    """Withdraw the approval of `group`; False when it was not approved."""
    with transaction.atomic():
        deleted, _ = ApprovedGroup.objects.filter(group=group).delete()  # announced on delete
    return bool(deleted)


def user_is_approved(*, user: AnyUser | None) -> bool:
    """Active and in at least one approved group."""
    if user is None or not user.is_active or not user.pk:
        return False
    return ApprovedGroup.objects.filter(group__user=user).exists()


def user_allowed_scopes(*, user: AnyUser | None) -> set[str]:
    """Every known scope the approved groups of an active user allow (empty otherwise)."""
    if user is None or not user.is_active or not user.pk:
        return set()
    allowed: set[str] = set()
    for approval in ApprovedGroup.objects.filter(group__user=user):
        allowed.update(f"stream:{name}" for name in approval.services)
        allowed.update(f"publish:{name}" for name in approval.publish_services)
    return allowed & known_scopes()


def user_narrow_scopes(*, user: AnyUser | None, scopes: Iterable[str]) -> list[str]:
    """The requested scopes the user may hold, in request order; never more than requested."""
    allowed = user_allowed_scopes(user=user)
    return [scope for scope in dict.fromkeys(scopes) if scope in allowed]


def application_is_approved(*, application: Application | None) -> bool:
    """Client-credentials applications act for their owner, who must be approved."""
    return application is not None and user_is_approved(user=application.user)


def access_token_issue(
    *,
    user: Any,
    scopes: Iterable[str],
    expires_seconds: int | None = None,
    application: Application | None = None,
) -> str:
    """Issue an access token for `user` outside any OAuth flow; returns the token (stored hashed)."""
    requested = list(dict.fromkeys(scopes))
    if not user_is_approved(user=user):
        raise NotApproved(f"User {user.get_username()!r} is not an active member of an approved group.")
    if not requested:
        raise ScopeNotAllowed("Name at least one scope, e.g. --scope 'stream:widgets'.")
    unknown = sorted(set(requested) - known_scopes())
    if unknown:
        known = " ".join(sorted(known_scopes())) or "none (no service is registered)"
        raise UnknownScope(f"Unknown scope(s): {' '.join(unknown)}. Known: {known}.")
    refused = sorted(set(requested) - user_allowed_scopes(user=user))
    if refused:
        raise ScopeNotAllowed(f"No approved group of {user.get_username()!r} allows: {' '.join(refused)}.")
    lifetime = expires_seconds if expires_seconds is not None else oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS
    raw = generate_token()
    token = AccessToken(
        user=user,
        application=application,
        scope=" ".join(requested),
        expires=timezone.now() + timedelta(seconds=lifetime),
    )
    set_token_value(token, raw)
    token.save()
    return raw


def user_block(*, user: Any) -> None:
    """Deactivate `user`: no sign-in, no new token, and every open stream of theirs is closed."""
    user.is_active = False
    user.save(update_fields=["is_active"])


def user_unblock(*, user: Any) -> None:
    """Activate `user` again; their approved groups apply as before."""
    user.is_active = True
    user.save(update_fields=["is_active"])
