"""Reading a websocket handshake: Origin allow-list, subprotocol choice, and where the token is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from streaming.conf import streaming_settings
from streaming.wire.protocol import BEARER_PREFIX, SUBPROTOCOL, TICKET_PREFIX

QUERY_TOKEN_NAMES = ("access_token", "token")


class HandshakeError(Exception):
    """A handshake refused with HTTP 403 (browser from an origin not allowed)."""

    def __init__(self, message: str, origin: str) -> None:
        super().__init__(message)
        self.origin = origin


@dataclass(frozen=True, slots=True)
class Handshake:
    origin: str | None
    subprotocol: str | None
    token: str | None
    #: A resume ticket offered as a `ticket.<ticket>` subprotocol instead of a token.
    ticket: str | None
    error: str | None
    remote: str
    user_agent: str

    @classmethod
    def parse(cls, scope: dict[str, Any]) -> Handshake:
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), value)
        origin = headers.get(b"origin", b"").decode("latin1") or None
        if origin is not None and origin not in streaming_settings.ALLOWED_ORIGINS:
            raise HandshakeError(f"origin {origin[:80]!r} is not allowed", origin)
        offered: list[str] = list(scope.get("subprotocols") or [])
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        tokens = [item[len(BEARER_PREFIX) :] for item in offered if item.startswith(BEARER_PREFIX)]
        tickets = [item[len(TICKET_PREFIX) :] for item in offered if item.startswith(TICKET_PREFIX)]
        scheme, _, credentials = headers.get(b"authorization", b"").decode("latin1").partition(" ")
        if scheme.lower() == "bearer":
            tokens.append(credentials.strip())
        query = parse_qs(scope.get("query_string", b"").decode("latin1"), keep_blank_values=True)
        query_tokens = [value for name in QUERY_TOKEN_NAMES for value in query.get(name, [])]
        error = None
        if query_tokens and not streaming_settings.ALLOW_QUERY_STRING_TOKEN:
            error = "Tokens in the URL are refused; use the Authorization header or subprotocol."
        else:
            tokens.extend(query_tokens)
        if error is None and not all(tokens + tickets):
            error = "Empty token offered."
        elif error is None and len(tokens) + len(tickets) > 1:
            error = "More than one token offered."
        client = scope.get("client") or ("", 0)
        return cls(
            origin=origin,
            subprotocol=subprotocol,
            token=tokens[0] if len(tokens) == 1 else None,
            ticket=tickets[0] if len(tickets) == 1 else None,
            error=error,
            remote=str(client[0]),
            user_agent=headers.get(b"user-agent", b"").decode("latin1")[:200],
        )
