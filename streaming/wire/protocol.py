"""Wire protocol v1: message types, error and close codes, and decoding of client frames.

Server messages are built by `streaming.wire.messages`.

Imports nothing of Django so that clients and benchmarks can use it as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streaming.wire import delta as deltas

SUBPROTOCOL = "widgetapp.v1"
BEARER_PREFIX = "bearer."
TICKET_PREFIX = "ticket."

# Client -> server message types.
SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
REQUEST = "request"
PING = "ping"
PONG = "pong"
AUTH = "auth"
PRESENCE = "presence"  # also the server's answer and its join/leave diffs
CLIENT_TYPES = frozenset({SUBSCRIBE, UNSUBSCRIBE, REQUEST, PING, PONG, AUTH, PRESENCE})

# Server -> client message types.
WELCOME = "welcome"
AUTHENTICATED = "authenticated"
SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
RESPONSE = "response"
EVENT = "event"
ERROR = "error"
RECONNECT = "reconnect"
TOKEN_EXPIRING = "token_expiring"
TICKET = "ticket"

# Error codes carried by `error` messages.
BAD_REQUEST = "bad_request"
UNKNOWN_SERVICE = "unknown_service"
FORBIDDEN = "forbidden"
NOT_SUBSCRIBED = "not_subscribed"
RATE_LIMITED = "rate_limited"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
SERVICE_DISABLED = "service_disabled"
INTERNAL_ERROR = "internal_error"
PRESENCE_UNAVAILABLE = "presence_unavailable"  # the service does not share who follows its streams
# Publish API only (HTTP)
UNAUTHENTICATED = "unauthenticated"
TOO_LARGE = "too_large"
METHOD_NOT_ALLOWED = "method_not_allowed"
UNAVAILABLE = "unavailable"  # 503 with Retry-After: the database cannot verify the token now

# Close codes (application range: daphne/autobahn refuse 1009/1012/1013, so they are mirrored).
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_MANY = 4429
CLOSE_TOO_BIG = 4009
CLOSE_SERVER_TOO_BIG = 1009  # daphne's own frame limit closes with the standard code
CLOSE_RESTART = 4012
CLOSE_OVERLOADED = 4013
TERMINAL_CLOSE_CODES = frozenset({CLOSE_PROTOCOL, CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN})

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 200


class ProtocolError(Exception):
    """A client message that cannot be served; becomes an `error` reply."""

    def __init__(self, code: str, message: str, msg_id: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.msg_id = msg_id


@dataclass(slots=True)
class Position:
    """Where a subscriber is in a stream: the last (epoch, seq) it has seen."""

    epoch: str
    seq: int


@dataclass(slots=True)
class ClientMessage:
    """One decoded client frame, fields validated for its type."""

    type: str
    id: str | int | None = None
    service: str | None = None
    topic: str | None = None
    since: Position | None = None
    action: str | None = None
    data: Any = None
    token: str | None = None
    #: `subscribe` only: also send this stream's join/leave diffs (`presence` messages).
    presence: bool = False
    #: `subscribe` only: the delta format asked for ("fossil"), if any.
    delta: str | None = None
    #: `auth` only: a resume ticket instead of a token.
    ticket: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _read_id(obj: dict[str, Any]) -> str | int | None:
    msg_id = obj.get("id")
    if msg_id is None:
        return None
    if isinstance(msg_id, bool) or not isinstance(msg_id, (str, int)):
        raise ProtocolError(BAD_REQUEST, "'id' must be a string or an integer.")
    if isinstance(msg_id, str) and len(msg_id) > MAX_ID_LENGTH:
        raise ProtocolError(BAD_REQUEST, f"'id' is longer than {MAX_ID_LENGTH} characters.")
    if isinstance(msg_id, int) and abs(msg_id) > 2**53:
        raise ProtocolError(BAD_REQUEST, "'id' is out of range.")
    return msg_id


def _name(obj: dict[str, Any], key: str, msg_id: str | int | None, *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(BAD_REQUEST, f"'{key}' is required.", msg_id)
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise ProtocolError(BAD_REQUEST, f"'{key}' must be a non-empty string.", msg_id)
    return value


def _since(obj: dict[str, Any], msg_id: str | int | None) -> Position | None:
    since = obj.get("since")
    if since is None:
        return None
    if not isinstance(since, dict):
        raise ProtocolError(BAD_REQUEST, "'since' must be an object {epoch, seq}.", msg_id)
    epoch, seq = since.get("epoch"), since.get("seq")
    if not isinstance(epoch, str) or isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ProtocolError(
            BAD_REQUEST, "'since' needs a string 'epoch' and a non-negative integer 'seq'.", msg_id
        )
    return Position(epoch=epoch, seq=seq)


def _flag(obj: dict[str, Any], key: str, msg_id: str | int | None) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(BAD_REQUEST, f"'{key}' must be true or false.", msg_id)
    return value


def _delta(obj: dict[str, Any], msg_id: str | int | None) -> str | None:
    value = obj.get("delta")
    if value is not None and value not in deltas.FORMATS:
        formats = ", ".join(sorted(deltas.FORMATS))
        raise ProtocolError(BAD_REQUEST, f"'delta' must be one of: {formats}.", msg_id)
    return value


def decode(text: str) -> ClientMessage:
    """Decode and validate one client text frame, or raise ProtocolError."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError(BAD_REQUEST, "Frame is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_REQUEST, "Frame must be a JSON object.")
    msg_id = _read_id(obj)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(BAD_REQUEST, "'type' must be a string.", msg_id)
    if kind not in CLIENT_TYPES:
        raise ProtocolError(BAD_REQUEST, f"Unknown message type {kind[:40]!r}.", msg_id)
    msg = ClientMessage(type=kind, id=msg_id)
    if kind in (SUBSCRIBE, UNSUBSCRIBE, REQUEST, PRESENCE):
        msg.service = _name(obj, "service", msg_id, required=True)
        msg.topic = _name(obj, "topic", msg_id, required=False)
    if kind == SUBSCRIBE:
        msg.since = _since(obj, msg_id)
        msg.presence = _flag(obj, "presence", msg_id)
        msg.delta = _delta(obj, msg_id)
    elif kind == REQUEST:
        msg.action = _name(obj, "action", msg_id, required=True)
        msg.data = obj.get("data")
    elif kind == AUTH:
        _credential(obj, msg)
    return msg


def _credential(obj: dict[str, Any], msg: ClientMessage) -> None:
    """`auth` carries exactly one of `token` and `ticket` (a ticket only opens a connection)."""
    token, ticket = obj.get("token"), obj.get("ticket")
    if ticket is not None and token is None:
        if not isinstance(ticket, str) or not ticket:
            raise ProtocolError(BAD_REQUEST, "'ticket' must be a non-empty string.", msg.id)
        msg.ticket = ticket
        return
    if not isinstance(token, str) or not token or ticket is not None:
        raise ProtocolError(BAD_REQUEST, "'token' must be a non-empty string (and no 'ticket').", msg.id)
    msg.token = token


def encode(message: Mapping[str, Any]) -> str:
    """Serialise a server message compactly."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)
