"""Token verification for websockets: DOT access token → who, which services, until when.

DOT itself checks only expiry and scope; here we also require an active user who is still in an
approved group (or an approved client-credentials application). Verified grants are cached per
worker for a few seconds, keyed by token checksum; revocation and group changes evict them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

from accounts import services as accounts
from streaming.bus.background import OUTAGE
from streaming.conf import streaming_settings
from streaming.services import Principal
from streaming.wire.protocol import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED


class AuthError(Exception):
    """A token that cannot open (or keep) a connection; carries the close code and reason."""

    def __init__(
        self, code: int, reason: str, *, user_id: int | None = None, application_id: int | None = None
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        #: Whose token it was, when known (for the audit log).
        self.user_id = user_id
        self.application_id = application_id


@dataclass(frozen=True, slots=True)
class Grant:
    principal: Principal
    checksum: str
    token_id: int
    expires_at: datetime
    #: The user's groups, for limits an admin overrides per group.
    group_ids: frozenset[int] = frozenset()
    #: The user whose approval the grant rests on: the token's user, or the application's owner.
    owner_id: int | None = None


def token_checksum(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_cache: dict[str, tuple[float, Grant]] = {}
#: When the cache was last swept of entries past TOKEN_CACHE_SECONDS (monotonic seconds).
_swept_at = 0.0


def forget(checksum: str | None = None) -> None:
    """Evict one cached grant, or all of them."""
    if checksum is None:
        _cache.clear()
    else:
        _cache.pop(checksum, None)


def _remember(checksum: str, grant: Grant) -> None:
    """Cache a grant; at most once per TOKEN_CACHE_SECONDS, drop the entries older than that."""
    global _swept_at
    now = time.monotonic()
    ttl = streaming_settings.TOKEN_CACHE_SECONDS
    if now - _swept_at >= ttl:
        _swept_at = now
        for stale in [key for key, (stamp, _) in _cache.items() if now - stamp >= ttl]:
            del _cache[stale]
    _cache[checksum] = (now, grant)


class DatabaseUnavailable(Exception):
    """The database cannot be reached to judge a token: the caller asks the client to retry."""

    def __init__(self) -> None:
        #: Seconds an HTTP client should wait (Retry-After) before trying again.
        self.retry_after = max(1, round(streaming_settings.OVERLOAD_RETRY_MS / 1000))
        self.reason = f"Database unavailable; retry after {self.retry_after} s."
        super().__init__(self.reason)


@contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except OUTAGE as exc:
        raise DatabaseUnavailable() from exc


class TokenMissing(AuthError):
    """No such token: never issued, revoked, or replaced by a refresh."""


def _load(checksum: str) -> Grant:
    token = (
        get_access_token_model()
        .objects.select_related("user", "application", "application__user")
        .filter(token_checksum=checksum)
        .first()
    )
    if token is None:
        raise TokenMissing(CLOSE_UNAUTHENTICATED, "Invalid or revoked token.")
    if token.is_expired():
        raise AuthError(
            CLOSE_UNAUTHENTICATED,
            "Token expired.",
            user_id=token.user_id,
            application_id=token.application_id,
        )
    return _judge(checksum, token.pk, token.user, token.application, set(token.scope.split()), token.expires)


def _judge(
    checksum: str, token_id: int, user: Any, application: Any, scopes: set[str], expires: datetime
) -> Grant:
    """The grant a holder gets now: approval and group scopes are checked at every call."""
    if user is None:
        owner = application.user if application is not None else None
        if owner is None or not accounts.application_is_approved(application=application):
            raise AuthError(
                CLOSE_FORBIDDEN,
                "Application is not approved for streaming.",
                application_id=application.pk if application else None,
            )
        # An application acts for its owner: never more than the owner's groups allow now.
        allowed = scopes & accounts.user_allowed_scopes(user=owner)
        principal = Principal(None, f"app:{application.client_id}", False, application.pk, frozenset(allowed))
        return Grant(principal, checksum, token_id, expires, owner_id=owner.pk)
    if not user.is_active:
        raise AuthError(CLOSE_FORBIDDEN, "User is inactive.", user_id=user.pk)
    if not accounts.user_is_approved(user=user):
        raise AuthError(CLOSE_FORBIDDEN, "User is not in an approved group.", user_id=user.pk)
    allowed = scopes & accounts.user_allowed_scopes(user=user)
    principal = Principal(
        user.pk,
        user.get_username(),
        user.is_staff,
        application.pk if application else None,
        frozenset(allowed),
    )
    groups = frozenset(user.groups.values_list("pk", flat=True))
    return Grant(principal, checksum, token_id, expires, groups, owner_id=user.pk)


def _unexpired(checksum: str, grant: Grant) -> Grant:
    if grant.expires_at <= timezone.now():
        _cache.pop(checksum, None)
        raise AuthError(CLOSE_UNAUTHENTICATED, "Token expired.")
    return grant


def cached_grant(token: str) -> Grant | None:
    """The grant of `token` from this worker's cache, without the database; None when not cached."""
    return _cached(token_checksum(token))


def _cached(checksum: str) -> Grant | None:
    cached = _cache.get(checksum)
    if cached is None or time.monotonic() - cached[0] >= streaming_settings.TOKEN_CACHE_SECONDS:
        return None
    return _unexpired(checksum, cached[1])


def verify_token(token: str) -> Grant:
    """Verify a bearer token (sync: one DB round trip at most, none when cached).

    Raises AuthError when the token cannot connect, DatabaseUnavailable when it cannot be judged now.
    """
    return verify_checksum(token_checksum(token))


def verify_checksum(checksum: str) -> Grant:
    """Verify the token with this checksum (an SSE ticket carries the checksum, never the token)."""
    grant = _cached(checksum)
    if grant is None:
        with _reachable():
            grant = _load(checksum)
        _remember(checksum, grant)
        grant = _unexpired(checksum, grant)
    return grant


def reverify(grant: Grant) -> Grant:
    """Judge a connection's token afresh (after a group change), bypassing the cache.

    A token replaced by a refresh is gone from the database but still valid on the connection
    until it expires or is swapped in band (revocations close connections directly), so its
    holder is judged again with the scopes the connection has.
    """
    forget(grant.checksum)
    with _reachable():
        try:
            fresh = _load(grant.checksum)
        except TokenMissing:
            fresh = _judge_holder(grant)
    _remember(grant.checksum, fresh)
    return fresh


def _judge_holder(grant: Grant) -> Grant:
    principal = grant.principal
    user = get_user_model().objects.filter(pk=principal.user_id).first() if principal.user_id else None
    application = (
        get_application_model().objects.select_related("user").filter(pk=principal.application_id).first()
        if principal.application_id
        else None
    )
    if user is None and principal.user_id is not None:
        raise AuthError(CLOSE_FORBIDDEN, "User no longer exists.")
    return _judge(grant.checksum, grant.token_id, user, application, set(principal.scopes), grant.expires_at)
