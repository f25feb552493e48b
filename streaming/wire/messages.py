"""Server → client messages: one TypedDict and one builder per type, used by every sender."""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from streaming.wire import protocol as p

MsgId = str | int | None


class Welcome(TypedDict):
    type: Literal["welcome"]
    session: str
    heartbeat: float
    services: list[str]
    expires_at: str
    id: NotRequired[str | int]
    ticket: NotRequired[str]


class Authenticated(TypedDict):
    type: Literal["authenticated"]
    expires_at: str
    services: list[str]
    id: NotRequired[str | int]
    ticket: NotRequired[str]


class Subscribed(TypedDict):
    type: Literal["subscribed"]
    service: str
    topic: str
    epoch: str
    seq: int
    recovered: bool
    delta: NotRequired[str]
    id: NotRequired[str | int]


class Unsubscribed(TypedDict):
    type: Literal["unsubscribed"]
    service: str
    topic: str
    id: NotRequired[str | int]


class Response(TypedDict):
    type: Literal["response"]
    service: str
    action: str
    data: Any
    id: NotRequired[str | int]


class Error(TypedDict):
    type: Literal["error"]
    code: str
    message: str
    id: NotRequired[str | int]
    service: NotRequired[str]
    topic: NotRequired[str]


class Reconnect(TypedDict):
    type: Literal["reconnect"]
    reason: str
    retry_after_ms: int
    spread_ms: NotRequired[int]


class TokenExpiring(TypedDict):
    type: Literal["token_expiring"]
    expires_at: str
    expires_in: int


class Ticket(TypedDict):
    type: Literal["ticket"]
    ticket: str


class Event(TypedDict):
    type: Literal["event"]
    service: str
    topic: str
    epoch: str
    seq: int
    data: Any


class Presence(TypedDict):
    """Who follows a stream: the answer to a `presence` request (`users`) or a diff (`joined`, `left`).

    `users`, `joined` and `left` are present only when the service shares who follows, not just how many.
    """

    type: Literal["presence"]
    service: str
    topic: str
    count: int
    users: NotRequired[list[str]]
    joined: NotRequired[list[str]]
    left: NotRequired[list[str]]
    id: NotRequired[str | int]


class EventDelta(TypedDict):
    """An event as a delta against the stream's previous event frame (see streaming.wire.delta)."""

    type: Literal["event"]
    service: str
    topic: str
    epoch: str
    seq: int
    delta: str


class Pong(TypedDict):
    type: Literal["pong"]
    id: NotRequired[str | int]


def _with_id(message: Any, msg_id: MsgId) -> Any:
    if msg_id is not None:
        message["id"] = msg_id
    return message


def welcome(
    session: str,
    heartbeat: float,
    services: list[str],
    expires_at: str,
    msg_id: MsgId = None,
    ticket: str | None = None,
) -> Welcome:
    msg: Welcome = {
        "type": "welcome",
        "session": session,
        "heartbeat": heartbeat,
        "services": services,
        "expires_at": expires_at,
    }
    if ticket:
        msg["ticket"] = ticket
    return _with_id(msg, msg_id)


def authenticated(
    expires_at: str, services: list[str], msg_id: MsgId = None, ticket: str | None = None
) -> Authenticated:
    msg: Authenticated = {"type": "authenticated", "expires_at": expires_at, "services": services}
    if ticket:
        msg["ticket"] = ticket
    return _with_id(msg, msg_id)


def subscribed(
    service: str,
    topic: str,
    epoch: str,
    seq: int,
    recovered: bool,
    msg_id: MsgId = None,
    delta: str | None = None,
) -> Subscribed:
    msg: Subscribed = {
        "type": "subscribed",
        "service": service,
        "topic": topic,
        "epoch": epoch,
        "seq": seq,
        "recovered": recovered,
    }
    if delta is not None:
        msg["delta"] = delta
    return _with_id(msg, msg_id)


def unsubscribed(service: str, topic: str, msg_id: MsgId = None) -> Unsubscribed:
    return _with_id(Unsubscribed(type="unsubscribed", service=service, topic=topic), msg_id)


def response(service: str, action: str, data: Any, msg_id: MsgId = None) -> Response:
    return _with_id(Response(type="response", service=service, action=action, data=data), msg_id)


def error(code: str, message: str, msg_id: MsgId = None) -> Error:
    return _with_id(Error(type="error", code=code, message=message), msg_id)


def reconnect(reason: str, retry_after_ms: int, spread_ms: int = 0) -> Reconnect:
    msg: Reconnect = {"type": "reconnect", "reason": reason, "retry_after_ms": retry_after_ms}
    if spread_ms:
        msg["spread_ms"] = spread_ms
    return msg


def token_expiring(expires_at: str, expires_in: int) -> TokenExpiring:
    return {"type": "token_expiring", "expires_at": expires_at, "expires_in": expires_in}


def ticket(value: str) -> Ticket:
    return {"type": "ticket", "ticket": value}


def presence(service: str, topic: str, count: int, users: list[str] | None, msg_id: MsgId = None) -> Presence:
    msg = Presence(type="presence", service=service, topic=topic, count=count)
    if users is not None:
        msg["users"] = users
    return _with_id(msg, msg_id)


def presence_diff(
    service: str, topic: str, count: int, joined: list[str] | None, left: list[str] | None
) -> Presence:
    msg = Presence(type="presence", service=service, topic=topic, count=count)
    if joined is not None and left is not None:
        msg["joined"], msg["left"] = joined, left
    return msg


def event_delta(service: str, topic: str, epoch: str, seq: int, delta: str) -> EventDelta:
    return {"type": "event", "service": service, "topic": topic, "epoch": epoch, "seq": seq, "delta": delta}


def pong(msg_id: MsgId = None) -> Pong:
    return _with_id(Pong(type="pong"), msg_id)


#: Every server message type, as the docs and clients name them.
SERVER_TYPES = (
    p.WELCOME,
    p.AUTHENTICATED,
    p.SUBSCRIBED,
    p.UNSUBSCRIBED,
    p.RESPONSE,
    p.EVENT,
    p.ERROR,
    p.RECONNECT,
    p.TOKEN_EXPIRING,
    p.PONG,
    p.PING,
    p.PRESENCE,
)
