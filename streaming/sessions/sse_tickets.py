"""One-time tickets that open an SSE stream: EventSource cannot send an Authorization header.

A ticket is obtained by POST /sse/ticket/ with the bearer token and put in the /sse/stream/ URL.
It is signed, lives `SSE_TICKET_SECONDS`, is accepted once (claimed in the backend, so across
workers), and carries the token's checksum, never the token: a URL that reaches a log opens nothing.
"""

from __future__ import annotations

import uuid

from channels.db import database_sync_to_async
from django.core import signing

from streaming.conf import streaming_settings
from streaming.delivery.backend import Backend
from streaming.sessions.auth import AuthError, Grant, verify_checksum
from streaming.wire.protocol import CLOSE_UNAUTHENTICATED

SALT = "streaming.sse.ticket"


def ticket_issue(*, grant: Grant) -> str:
    """A ticket for the holder of `grant`."""
    return signing.dumps({"c": grant.checksum, "n": uuid.uuid4().hex}, salt=SALT, compress=False)


async def ticket_redeem(*, backend: Backend, ticket: str) -> Grant:
    """The grant a ticket stands for, once; AuthError when it is forged, expired, used or revoked."""
    lifetime = streaming_settings.SSE_TICKET_SECONDS
    try:
        claims = signing.loads(ticket, salt=SALT, max_age=lifetime)
    except signing.BadSignature:
        raise AuthError(CLOSE_UNAUTHENTICATED, "Invalid or expired ticket.") from None
    if not await backend.take_slot(f"sse-ticket:{claims['n']}", "used", 1, lifetime + 1):
        raise AuthError(CLOSE_UNAUTHENTICATED, "Ticket already used.")
    return await database_sync_to_async(verify_checksum)(claims["c"])
