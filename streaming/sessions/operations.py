"""Control operations on open sessions, run on every worker when the control bus carries them.

close (by token, user or session), forget (a rotated token's cached grant), service
(enable/disable), recheck (re-verify tokens after an approval change), limits (reload overrides),
options (reload stream options), drain (this worker leaves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.db import database_sync_to_async

from streaming.bus import audit
from streaming.bus.control import operation
from streaming.conf import streaming_settings
from streaming.delivery import options
from streaming.delivery.worker import Worker
from streaming.models import ServiceConfig, StreamOptions
from streaming.sessions import access, auth, drain, limits, tickets
from streaming.sessions.connection import Connection
from streaming.sessions.subscriptions import drop_disallowed, resume_service
from streaming.wire import protocol as p


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


@operation("forget")
def forget_token(worker: Worker, fields: dict[str, Any]) -> None:
    """A token replaced by a refresh: new connections must not get in on its cached grant."""
    auth.forget(fields["checksum"])


@operation("service")
async def set_service(worker: Worker, fields: dict[str, Any]) -> None:
    name, enabled = fields["name"], fields["enabled"]
    if enabled:
        access.disabled_services.discard(name)
        for conn in list(worker.connections.values()):
            await resume_service(worker, conn, name)
        return
    access.disabled_services.add(name)
    for conn in list(worker.connections.values()):
        if any(key[0] == name for key in conn.subscriptions):
            await drop_disallowed(worker, conn)


def _affected(conn: Connection, user_ids: set[int], application_ids: set[int]) -> bool:
    """Whether a change to these users or applications may change what `conn` is allowed."""
    grant = conn.grant
    if grant is None:
        return False
    principal = grant.principal
    return (
        principal.user_id in user_ids
        or grant.owner_id in user_ids  # an application's owner lost or gained approval
        or principal.application_id in application_ids
    )


@operation("recheck")
async def recheck(worker: Worker, fields: dict[str, Any]) -> None:
    """Re-verify the tokens of some users' or applications' connections; close or narrow what changed."""
    user_ids = set(fields.get("user_ids") or ())
    application_ids = set(fields.get("application_ids") or ())
    everyone = bool(fields.get("all"))
    auth.forget()
    tickets.note(tickets.marks_for(user_ids=user_ids, everyone=everyone or bool(application_ids)))
    for conn in list(worker.connections.values()):
        grant = conn.grant
        if grant is None or not (everyone or _affected(conn, user_ids, application_ids)):
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


@operation("options")
async def reload_options(worker: Worker, fields: dict[str, Any]) -> None:
    await load_stream_options()


def stream_options_rows() -> dict[str, dict[str, object]]:
    """The admin's stream options, by service."""
    return {row.service: row.values() for row in StreamOptions.objects.all()}


async def load_stream_options() -> None:
    options.set_rows(await database_sync_to_async(stream_options_rows)())


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
    """Worker start: load the disabled services, the limit overrides and the stream options."""
    worker.spawn(load_disabled_services())
    worker.spawn(limits.load(worker))
    worker.spawn(load_stream_options())
