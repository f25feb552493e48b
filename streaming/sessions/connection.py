"""One websocket's state: who it is, what it follows, and its way out (writer and close)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from streaming.conf import streaming_settings
from streaming.delivery.deadlines import Deadline, Deadlines
from streaming.delivery.history import StreamKey
from streaming.server.writer import Writer
from streaming.services import Principal
from streaming.sessions import tickets
from streaming.sessions.auth import Grant
from streaming.sessions.limits import apply
from streaming.sessions.ratelimit import TokenBucket
from streaming.wire import messages
from streaming.wire.protocol import CLOSE_OVERLOADED, CLOSE_UNAUTHENTICATED, PING, Position, encode

PING_FRAME = encode({"type": PING}).encode()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Connection:
    """Created at handshake; authenticated once a grant is set."""

    __slots__ = (
        "timers",
        "session_id",
        "writer",
        "grant",
        "subscriptions",
        "bucket",
        "request_bucket",
        "invalid_strikes",
        "limits",
        "closing",
        "on_close",
        "messages_in",
        "remote",
        "origin",
        "user_agent",
        "connected_at",
        "resumed_from",
        "closed_with",
        "user_slot",
        "suspended",
        "ticket_at",
    )

    def __init__(
        self,
        writer: Writer,
        on_close: Callable[[int, str], None],
        remote: str,
        origin: str | None,
        user_agent: str,
    ) -> None:
        self.session_id = uuid.uuid4().hex
        self.writer = writer
        self.grant: Grant | None = None
        self.subscriptions: dict[StreamKey, None] = {}
        self.bucket = TokenBucket(streaming_settings.MESSAGES_PER_SECOND, streaming_settings.MESSAGES_BURST)
        self.request_bucket = TokenBucket(
            streaming_settings.REQUESTS_PER_SECOND, streaming_settings.REQUESTS_BURST
        )
        self.invalid_strikes = 0
        #: This connection's limits with live overrides applied (streaming.sessions.limits.apply).
        self.limits: dict[str, float] = {}
        self.timers: tuple[Deadline, ...] = ()
        self.closing = False
        self.on_close = on_close
        self.messages_in = 0
        self.remote = remote
        self.origin = origin
        self.user_agent = user_agent
        #: When authentication succeeded (epoch seconds); 0 until then.
        self.connected_at = 0.0
        #: The session this one continues (a recovered resubscribe); None until that is known.
        self.resumed_from: str | None = None
        #: The close code and reason the server chose, once it closed this socket.
        self.closed_with: tuple[int, str] | None = None
        #: The owner whose per-user connection slot this session holds (released at close).
        self.user_slot: str | None = None
        #: Streams of disabled services, with the position reached; created when first needed.
        self.suspended: dict[StreamKey, Position | None] | None = None
        #: When this connection last handed out a resume ticket (monotonic seconds).
        self.ticket_at = 0.0
        apply(self)

    @property
    def principal(self) -> Principal:
        assert self.grant is not None
        return self.grant.principal

    @property
    def owner(self) -> tuple[int | None, int | None]:
        return self.grant.principal.owner if self.grant is not None else (None, None)

    # Output (also the hub's Subscriber interface) ------------------------------------------

    def deliver(self, payload: bytes, frame: bytes) -> None:
        self.writer.write(payload, frame)

    def suspend(self, key: StreamKey, position: Position | None) -> None:
        """Remember a stream a disabled service ended; a known position is never forgotten."""
        if self.suspended is None:
            self.suspended = {}
        if position is not None or key not in self.suspended:
            self.suspended[key] = position

    def take_suspended(self, service: str) -> list[tuple[StreamKey, Position | None]]:
        """Forget and return the suspended streams of `service`."""
        if not self.suspended:
            return []
        taken = [(key, pos) for key, pos in self.suspended.items() if key[0] == service]
        for key, _ in taken:
            del self.suspended[key]
        return taken

    def audit_fields(self) -> dict[str, Any]:
        """Who and where, as the audit log records them."""
        user_id, application_id = self.owner
        return {
            "user_id": user_id,
            "application_id": application_id,
            "session_id": self.session_id,
            "remote": self.remote,
            "origin": self.origin,
        }

    def send_message(self, message: Mapping[str, Any]) -> None:
        self.writer.write(encode(message).encode())

    def close(self, code: int, reason: str) -> None:
        """Close with `code`; idempotent. The consumer cleans up when the socket is gone."""
        if self.closing:
            return
        self.closing = True
        self.writer.close(code, reason)
        self.on_close(code, reason)

    def close_with_retry(self, code: int, reason: str, retry_after_ms: int) -> None:
        """Tell the client to come back after `retry_after_ms`, then close (4012/4013)."""
        if self.closing:
            return
        spread = int(streaming_settings.RECONNECT_SPREAD_MS)
        self.writer.write_last(encode(messages.reconnect(reason, retry_after_ms, spread)).encode())
        self.close(code, reason)

    def overflow(self) -> None:
        """The client does not read fast enough: cut it off before server memory grows."""
        asyncio.get_running_loop().call_soon(
            self.close_with_retry, CLOSE_OVERLOADED, "slow_consumer", streaming_settings.OVERLOAD_RETRY_MS
        )

    # Periodic -------------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Server ping; not counted as session traffic, so idle sessions cost no recording.

        Every TICKET_SECONDS/2 a fresh resume ticket follows it, so a long-lived connection always
        holds one that is still valid when it has to reconnect.
        """
        if self.grant is None or self.closing:
            return
        self.writer.write_uncounted(PING_FRAME)
        every = streaming_settings.TICKET_SECONDS / 2
        if every and time.monotonic() - self.ticket_at >= every:
            ticket = self.issue_ticket()
            if ticket is not None:
                self.writer.write_uncounted(encode(messages.ticket(ticket)).encode())

    def issue_ticket(self) -> str | None:
        """A resume ticket for this connection's grant (None when tickets are off)."""
        assert self.grant is not None
        self.ticket_at = time.monotonic()
        return tickets.issue(self.grant)

    def expire(self, grant: Grant) -> None:
        """Timer: close with 4401 if `grant` is still this connection's (not refreshed meanwhile)."""
        if self._holds(grant) and not self.closing:
            self.close(CLOSE_UNAUTHENTICATED, "Token expired.")

    def warn_expiry(self, grant: Grant) -> None:
        """Timer: tell the client to refresh `grant` before it expires."""
        if not self._holds(grant) or self.closing:
            return
        left = grant.expires_at.timestamp() - time.time()
        self.send_message(messages.token_expiring(iso(grant.expires_at), max(0, int(left))))

    def watch_expiry(self, deadlines: Deadlines) -> None:
        """Deadlines for this grant: `token_expiring` ahead of the expiry, and the 4401 close at it."""
        grant = self.grant
        if grant is None:
            return
        self.cancel_timers()
        left = grant.expires_at.timestamp() - time.time()
        ahead = streaming_settings.TOKEN_EXPIRY_WARNING
        self.timers = (
            deadlines.call_later(max(0.0, left - ahead), self.warn_expiry, grant),
            deadlines.call_later(max(0.0, left) + 0.01, self.expire, grant),
        )

    def _holds(self, grant: Grant) -> bool:
        """Still on this token (a recheck may have replaced the Grant object, not the token)."""
        return self.grant is not None and self.grant.checksum == grant.checksum

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers = ()
