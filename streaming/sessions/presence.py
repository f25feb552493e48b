"""Presence on a connection: joining a stream's followers, watching its diffs, answering `presence`."""

from __future__ import annotations

from streaming.delivery.history import StreamKey
from streaming.delivery.options import Options, stream_options
from streaming.delivery.worker import Worker
from streaming.sessions.connection import Connection
from streaming.wire import messages
from streaming.wire.protocol import PRESENCE_UNAVAILABLE, ProtocolError


def shared(service: str, msg_id: str | int | None) -> Options:
    """The service's options if it shares who follows its streams, else the error to reply."""
    options = stream_options(service)
    if not options.shares_presence:
        raise ProtocolError(PRESENCE_UNAVAILABLE, f"Service {service!r} does not share presence.", msg_id)
    return options


async def follow(worker: Worker, conn: Connection, key: StreamKey, watch: bool) -> None:
    """A subscription started: count the connection among the followers; with `watch`, send it
    the followers its diffs will start from."""
    options = stream_options(key[0])
    if not options.shares_presence:
        return
    presence = worker.hub.presence
    await presence.join(conn, key, f"{conn.session_id}:{conn.principal.username}")
    if key not in conn.subscriptions or conn.closing:  # gone while the backend answered
        await presence.leave(conn, key)
        return
    if watch:
        seen = await presence.watch(conn, key)
        users = seen.users if options.shares_users else None
        conn.send_message(messages.presence(*key, seen.count, users))


async def answer(worker: Worker, key: StreamKey, msg_id: str | int | None) -> messages.Presence:
    """The reply to a `presence` request: how many follow `key` now, and who when the service says."""
    options = shared(key[0], msg_id)
    seen = await worker.hub.presence.read(key)
    return messages.presence(*key, seen.count, seen.users if options.shares_users else None, msg_id)
