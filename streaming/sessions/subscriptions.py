"""Joining a stream, and the subscriptions a disabled service suspends until it is enabled again.

A subscription ended by an admin disabling its service is remembered on the connection with the
stream position it had reached; enabling the service joins it again from there (the client gets an
unrequested `subscribed`, then what it missed), so "enable" restores live pages without a reload.
"""

from __future__ import annotations

from streaming.bus import audit
from streaming.delivery.history import StreamKey
from streaming.delivery.worker import Worker
from streaming.sessions import access, lifecycle
from streaming.sessions.connection import Connection
from streaming.wire import messages
from streaming.wire import protocol as p
from streaming.wire.protocol import ClientMessage, ProtocolError


async def join(
    worker: Worker,
    conn: Connection,
    key: StreamKey,
    since: p.Position | None,
    msg_id: str | int | None,
    *,
    latest: bool = False,
    delta: str | None = None,
) -> None:
    """Follow `key` from `since` (or from now; with `latest`, from its newest event; with `delta`,
    in deltas where the stream allows): reply `subscribed`, replay what was missed, go live."""
    hub = worker.hub
    conn.subscriptions[key] = None
    try:
        epoch, seq = (since.epoch, since.seq) if since else (None, 0)
        replay, recovered = await hub.subscribe(
            conn, key, epoch, seq, latest, delta=delta is not None, max_bytes=conn.writer.limit
        )
        if recovered:
            await lifecycle.note_resume(worker, conn)
    except BaseException:
        conn.subscriptions.pop(key, None)  # nothing half-joined stays behind
        await hub.unsubscribe(conn, key)
        raise
    if conn.closing or key not in conn.subscriptions:
        await hub.unsubscribe(conn, key)
        return
    position = replay.position
    conn.send_message(messages.subscribed(key[0], key[1], replay.epoch, position, recovered, msg_id, delta))
    hub.finish_join(conn, key, replay)


def remember_refused(conn: Connection, msg: ClientMessage, refused: ProtocolError) -> None:
    """A subscribe to a disabled service is suspended, so enabling the service starts it."""
    service = access.services.get(msg.service or "")
    if refused.code != p.SERVICE_DISABLED or service is None:
        return
    try:
        key = access.stream_key(conn.principal, service, msg.topic, msg.id)
    except ProtocolError:
        return
    conn.suspend(key, msg.since)


async def drop_disallowed(worker: Worker, conn: Connection) -> None:
    """Unsubscribe what the connection's current grant no longer allows, telling the client why;
    what a disabled service ended is suspended, not forgotten."""
    for key in list(conn.subscriptions):
        try:
            access.resolve(conn.principal, key[0], None)
        except ProtocolError as exc:
            position = worker.hub.position(key)
            del conn.subscriptions[key]
            await worker.hub.unsubscribe(conn, key)
            if exc.code == p.SERVICE_DISABLED:
                conn.suspend(key, position)
            audit.record(
                audit.Kind.DENIED, **conn.audit_fields(), detail=f"unsubscribed {key[0]}: {exc.message}"
            )
            notice = messages.error(exc.code, exc.message)
            notice["service"], notice["topic"] = key
            conn.send_message(notice)


async def resume_service(worker: Worker, conn: Connection, name: str) -> None:
    """The service `name` is enabled again: rejoin this connection's suspended streams of it."""
    for key, since in conn.take_suspended(name):
        try:
            access.resolve(conn.principal, name, None)
        except ProtocolError:
            continue  # no longer allowed for other reasons: the client was told when it ended
        if key not in conn.subscriptions and not conn.closing:
            await join(worker, conn, key, since, None)
