"""Resume tickets: a signed proof of a verified grant that readmits its holder without the database.

A ticket names the principal (user or application, scopes, groups), the token (checksum, id,
expiry), when it was issued and until when it holds; it is signed with HMAC-SHA256 under a key
derived from SECRET_KEY that rotates every TICKET_SECONDS, and verifies under the current and the
previous key only. What a ticket cannot know is carried by stale marks, written to the backend
before the control bus announces the change and held by every worker: a revoked token's tickets
are refused with 4401; a ticket issued before a change to its user (or to everyone) is judged
afresh from the database, like a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from streaming.conf import streaming_settings
from streaming.delivery.backend import Backend
from streaming.delivery.worker import Worker
from streaming.services import Principal
from streaming.sessions.auth import AuthError, Grant, reverify
from streaming.wire.protocol import CLOSE_UNAUTHENTICATED

logger = logging.getLogger(__name__)

KEY_CONTEXT = b"widgetapp.streaming.ticket."
#: Tickets issued up to this long after a user's mark are judged afresh too: a worker that had not yet
#: heard of the change (the control bus takes well under a second) may have issued them.
MARK_GRACE = 5.0
EVERYONE = "all"

#: This worker's stale marks: mark → when it was set (epoch seconds).
_marks: dict[str, float] = {}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _key(secret: str, kid: int) -> bytes:
    return hmac.new(secret.encode(), KEY_CONTEXT + str(kid).encode(), hashlib.sha256).digest()


def _mac(kid: int, signed: str) -> str:
    return _b64(hmac.new(_key(settings.SECRET_KEY, kid), signed.encode(), hashlib.sha256).digest()[:24])


def key_id(now: float) -> int:
    """The key window `now` falls in (keys rotate every TICKET_SECONDS)."""
    return int(now // streaming_settings.TICKET_SECONDS)


def issue(grant: Grant, now: float | None = None) -> str | None:
    """A ticket for `grant`, valid TICKET_SECONDS and never beyond the token; None when disabled."""
    if not streaming_settings.TICKET_SECONDS:
        return None
    now = time.time() if now is None else now
    principal = grant.principal
    body = {
        "u": principal.user_id,
        "n": principal.username,
        "st": principal.is_staff,
        "a": principal.application_id,
        "s": sorted(principal.scopes),
        "g": sorted(grant.group_ids),
        "c": grant.checksum,
        "t": grant.token_id,
        "x": grant.expires_at.timestamp(),
        "i": now,
        "e": min(now + streaming_settings.TICKET_SECONDS, grant.expires_at.timestamp()),
    }
    kid = key_id(now)
    signed = f"{kid}.{_b64(json.dumps(body, separators=(',', ':')).encode())}"
    return f"{signed}.{_mac(kid, signed)}"


def _refused(reason: str, body: dict[str, Any] | None = None) -> AuthError:
    body = body or {}
    return AuthError(CLOSE_UNAUTHENTICATED, reason, user_id=body.get("u"), application_id=body.get("a"))


def _signed_body(ticket: str, now: float) -> dict[str, Any]:
    kid_text, _, rest = ticket.partition(".")
    payload, _, mac = rest.partition(".")
    if not kid_text.isdigit() or not mac:
        raise _refused("Invalid ticket.")
    kid = int(kid_text)
    if kid not in (key_id(now), key_id(now) - 1):
        raise _refused("Ticket expired.")
    if not hmac.compare_digest(mac, _mac(kid, f"{kid_text}.{payload}")):
        raise _refused("Invalid ticket.")
    try:
        body: dict[str, Any] = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        raise _refused("Invalid ticket.") from None
    return body


def read(ticket: str, now: float | None = None) -> tuple[Grant, float]:
    """The grant a ticket proves and when it was issued; AuthError 4401 if forged, expired or revoked."""
    now = time.time() if now is None else now
    body = _signed_body(ticket, now)
    if body["e"] <= now:
        raise _refused("Ticket expired.", body)
    if f"t:{body['c']}" in _marks:
        raise _refused("Token revoked.", body)
    principal = Principal(body["u"], body["n"], body["st"], body["a"], frozenset(body["s"]))
    expires_at = datetime.fromtimestamp(body["x"], UTC)
    return Grant(principal, body["c"], body["t"], expires_at, frozenset(body["g"])), float(body["i"])


def is_stale(grant: Grant, issued: float) -> bool:
    """Did its user (or everyone) change since the ticket was issued?"""
    user_id = grant.principal.user_id
    marks = (f"u:{user_id}", EVERYONE) if user_id is not None else (EVERYONE,)
    return any(issued <= _marks.get(mark, -MARK_GRACE) + MARK_GRACE for mark in marks)


async def verify(ticket: str) -> Grant:
    """The grant of a presented ticket: from the ticket alone, or from the database when stale."""
    grant, issued = read(ticket)
    if is_stale(grant, issued):
        grant = await database_sync_to_async(reverify)(grant)
    return grant


# Stale marks ------------------------------------------------------------------------------------


def marks_for(
    *, checksum: str | None = None, user_ids: Iterable[int] = (), everyone: bool = False
) -> list[str]:
    marks = [f"u:{user_id}" for user_id in user_ids]
    if checksum:
        marks.append(f"t:{checksum}")
    if everyone:
        marks.append(EVERYONE)
    return marks


def note(marks: Iterable[str], at: float | None = None) -> None:
    """Hold marks on this worker (the control bus carries them to every worker)."""
    at = time.time() if at is None else at
    for name in marks:
        _marks[name] = max(at, _marks.get(name, at))


def mark(backend: Backend, marks: list[str]) -> None:
    """Record marks where workers started later find them, before the control bus announces them."""
    if not marks or not streaming_settings.TICKET_SECONDS:
        return
    at = time.time()
    try:
        for name in marks:
            backend.mark_stale(name, at, 2 * streaming_settings.TICKET_SECONDS)
    except Exception:  # the control bus still carries the change to every running worker
        logger.warning("Could not record stale ticket marks in the backend", exc_info=True)
    note(marks, at)


async def load(worker: Worker) -> None:
    """Worker start: take over the marks set while this worker was not listening."""
    for name, at in (await worker.backend.stale_marks()).items():
        note([name], at)


def forget_marks() -> None:
    """Drop this worker's marks (tests)."""
    _marks.clear()


def start(worker: Worker) -> None:
    worker.spawn(load(worker))
