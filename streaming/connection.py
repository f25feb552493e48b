"""One websocket's state: who it is, what it follows, and its way out (writer and close)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from streaming.auth import Grant
from streaming.conf import streaming_settings
from streaming.history import StreamKey
from streaming.limits import TokenBucket, apply
from streaming.protocol import (
    CLOSE_OVERLOADED,
    CLOSE_UNAUTHENTICATED,
    PING,
    RECONNECT,
    TOKEN_EXPIRING,
    encode,
)
from streaming.services import Principal
from streaming.writer import Writer

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
        "invalid_strikes",
        "limits",
        "closing",
        "on_close",
        "messages_in",
        "remote",
        "origin",
        "user_agent",
        "meta",
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
        self.invalid_strikes = 0
        #: This connection's limits with live overrides applied (streaming.limits.apply).
        self.limits: dict[str, float] = {}
        self.timers: tuple[asyncio.TimerHandle, ...] = ()
        self.closing = False
        self.on_close = on_close
        self.messages_in = 0
        self.remote = remote
        self.origin = origin
        self.user_agent = user_agent
        self.meta: dict[str, Any] = {}
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

    def send_message(self, message: dict[str, Any]) -> None:
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
        notice = {"type": RECONNECT, "reason": reason, "retry_after_ms": retry_after_ms}
        self.writer.write_last(encode(notice).encode())
        self.close(code, reason)

    def overflow(self) -> None:
        """The client does not read fast enough: cut it off before server memory grows."""
        asyncio.get_running_loop().call_soon(
            self.close_with_retry, CLOSE_OVERLOADED, "slow_consumer", streaming_settings.OVERLOAD_RETRY_MS
        )

    # Periodic -------------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Server ping; not counted as session traffic, so idle sessions cost no recording."""
        if self.grant is not None and not self.closing:
            self.writer.write_uncounted(PING_FRAME)

    def expire(self, grant: Grant) -> None:
        """Timer: close with 4401 if `grant` is still this connection's (not refreshed meanwhile)."""
        if self._holds(grant) and not self.closing:
            self.close(CLOSE_UNAUTHENTICATED, "Token expired.")

    def warn_expiry(self, grant: Grant) -> None:
        """Timer: tell the client to refresh `grant` before it expires."""
        if not self._holds(grant) or self.closing:
            return
        left = grant.expires_at.timestamp() - time.time()
        self.send_message(
            {"type": TOKEN_EXPIRING, "expires_at": iso(grant.expires_at), "expires_in": max(0, int(left))}
        )

    def _holds(self, grant: Grant) -> bool:
        """Still on this token (a recheck may have replaced the Grant object, not the token)."""
        return self.grant is not None and self.grant.checksum == grant.checksum

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers = ()
