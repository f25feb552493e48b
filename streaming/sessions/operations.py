"""Control operations on open sessions, run on every worker when the control bus carries them.

close (by token, user or session), service (enable/disable), recheck (re-verify tokens after an
approval change), limits (reload overrides), drain (this worker leaves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.db import database_sync_to_async

from streaming.bus import audit
from streaming.bus.control import operation
from streaming.conf import streaming_settings
from streaming.delivery.worker import Worker
from streaming.models import ServiceConfig
from streaming.sessions import access, auth, drain, limits, tickets
from streaming.sessions.connection import Connection
from streaming.wire import messages
from streaming.wire import protocol as p
from streaming.wire.protocol import ProtocolError


async def drop_disallowed(worker: Worker, conn: Connection) -> None:
    """Unsubscribe what the connection's current grant no longer allows, telling the client why."""
    for key in list(conn.subscriptions):
        try:
            access.resolve(conn.principal, key[0], None)
        except ProtocolError as exc:
            del conn.subscriptions[key]
            await worker.hub.unsubscribe(conn, key)
            audit.record(
                audit.Kind.DENIED, **conn.audit_fields(), detail=f"unsubscribed {key[0]}: {exc.message}"
            )
            notice = messages.error(exc.code, exc.message)
            notice["service"], notice["topic"] = key
            conn.send_message(notice)


def _matches(conn: Connection, fields: Mapping[str, Any], sessions: set[str]) -> bool:
    grant = conn.grant
    if grant is None:
        return False
    checksum, user_id = fields.get("checksum"), fields.get("user_id")
    return bool(
        (checksum and grant.checksum == checksum)
        or (user_id is not None and grant.principal.user_id == user_id)
        or conn.session_id in sessions
    )


@operation("close")
def close_matching(worker: Worker, fields: dict[str, Any]) -> None:
    """Close the sessions of a token (checksum), a user or a list of session ids."""
    if fields.get("checksum"):
        auth.forget(fields["checksum"])
        tickets.note(tickets.marks_for(checksum=fields["checksum"]))
    sessions = set(fields.get("sessions") or ())
    code, reason = int(fields.get("code", p.CLOSE_FORBIDDEN)), str(fields.get("reason", "Closed."))
    for conn in list(worker.connections.values()):
        if not _matches(conn, fields, sessions):
            continue
        if code in (p.CLOSE_RESTART, p.CLOSE_OVERLOADED):  # "come back later": say when
            conn.close_with_retry(code, reason, streaming_settings.OVERLOAD_RETRY_MS)
        else:
            conn.close(code, reason)


@operation("service")
async def set_service(worker: Worker, fields: dict[str, Any]) -> None:
    name, enabled = fields["name"], fields["enabled"]
    if enabled:
        access.disabled_services.discard(name)
        return
    access.disabled_services.add(name)
    for conn in list(worker.connections.values()):
        if any(key[0] == name for key in conn.subscriptions):
            await drop_disallowed(worker, conn)


@operation("recheck")
async def recheck(worker: Worker, fields: dict[str, Any]) -> None:
    """Re-verify the tokens of some users' connections; close or narrow what changed."""
    user_ids = set(fields.get("user_ids") or ())
    everyone = bool(fields.get("all"))
    auth.forget()
    tickets.note(tickets.marks_for(user_ids=user_ids, everyone=everyone))
    for conn in list(worker.connections.values()):
        grant = conn.grant
        if grant is None or not (everyone or grant.principal.user_id in user_ids):
            continue
        try:
            conn.grant = await database_sync_to_async(auth.reverify)(grant)
        except auth.AuthError as refused:
            kind = audit.Kind.DENIED if refused.code == p.CLOSE_FORBIDDEN else audit.Kind.AUTH_FAILED
            audit.record(kind, **conn.audit_fields(), close_code=refused.code, detail=refused.reason)
            conn.close(refused.code, refused.reason)
            continue
        limits.apply(conn)
        await drop_disallowed(worker, conn)


@operation("limits")
async def reload_limits(worker: Worker, fields: dict[str, Any]) -> None:
    await limits.load(worker)


@operation("drain")
def drain_worker(worker: Worker, fields: dict[str, Any]) -> None:
    """From the admin or the command line: `broadcast("drain", worker_id=...)` drains that worker only."""
    if fields.get("worker_id") == worker.id:
        drain.start_drain(worker, str(fields.get("reason") or "restart"))


async def load_disabled_services() -> None:
    names = await database_sync_to_async(
        lambda: set(ServiceConfig.objects.filter(enabled=False).values_list("name", flat=True))
    )()
    access.disabled_services.clear()
    access.disabled_services.update(names)


def start(worker: Worker) -> None:
    """Worker start: load the disabled services and the limit overrides, keep slots fresh."""
    worker.spawn(load_disabled_services())
    worker.spawn(limits.load(worker))
