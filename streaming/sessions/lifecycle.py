"""Opening and closing sessions: admission, per-owner slots, audit, resume memory and cleanup.

The consumer calls these at the edges of a socket's life; everything a session leaves behind in
the worker, the backend and the audit log is taken and given back here, in one place.
"""

from __future__ import annotations

import logging
import time

from streaming.bus import audit
from streaming.conf import streaming_settings
from streaming.delivery.worker import Worker
from streaming.sessions import access, drain, pending
from streaming.sessions.auth import AuthError, Grant
from streaming.sessions.connection import Connection, iso
from streaming.sessions.limits import apply
from streaming.wire import messages
from streaming.wire import protocol as p

logger = logging.getLogger(__name__)

#: A session's slot in its owner's count lives this long unless its worker refreshes it (a killed
#: worker's connections stop counting after this); refreshed every USER_SLOT_REFRESH seconds.
USER_SLOT_TTL = 30.0
USER_SLOT_REFRESH = 10.0


def admit_socket(worker: Worker, conn: Connection) -> bool:
    """A socket was just accepted: hand it over if draining, refuse it if the worker is full."""
    if worker.draining:
        drain.hand_over(conn, "restart")
        return False
    if worker.load_count() >= conn.limits["MAX_CONNECTIONS_PER_WORKER"]:
        limit_close(conn, p.CLOSE_OVERLOADED, "Worker is full.", retry=True)
        return False
    return True


def admit_silent(worker: Worker, conn: Connection) -> bool:
    """A socket without a token waits for its `auth` message, unless its address or the worker
    already holds too many waiting ones (4013; one audit row per run from an address)."""
    crowded = pending.refusal(worker, conn.remote)
    if crowded is None:
        return True
    if pending.first_failure(conn.remote):
        fields = conn.audit_fields()
        audit.record(audit.Kind.LIMIT, **fields, close_code=p.CLOSE_OVERLOADED, detail=crowded)
    conn.close_with_retry(p.CLOSE_OVERLOADED, "overloaded", streaming_settings.OVERLOAD_RETRY_MS)
    return False


def refuse(conn: Connection, code: int, reason: str, refused: AuthError | None = None) -> None:
    """Close for an authentication or authorisation failure, and audit it."""
    kind = audit.Kind.AUTH_FAILED if code == p.CLOSE_UNAUTHENTICATED else audit.Kind.DENIED
    fields = conn.audit_fields()
    if refused is not None:
        fields.update(user_id=refused.user_id, application_id=refused.application_id)
    anonymous = (
        kind == audit.Kind.AUTH_FAILED and fields["user_id"] is None and fields["application_id"] is None
    )
    if not anonymous or pending.first_failure(conn.remote):  # floods from one address: one row
        audit.record(kind, **fields, close_code=code, detail=reason)
    conn.close(code, reason)


def limit_close(
    conn: Connection, code: int, reason: str, *, retry: bool = False, hint: str = "overloaded"
) -> None:
    """Close because a limit was reached, and audit it (4013 carries a retry hint saying why)."""
    audit.record(audit.Kind.LIMIT, **conn.audit_fields(), close_code=code, detail=reason)
    if retry:
        conn.close_with_retry(code, hint, streaming_settings.OVERLOAD_RETRY_MS)
    else:
        conn.close(code, reason)


def unavailable(conn: Connection) -> None:
    """The database cannot judge the token now: 4013 with a retry hint (the client comes back)."""
    limit_close(conn, p.CLOSE_OVERLOADED, "Database unavailable.", retry=True, hint="database_unavailable")


async def open_session(worker: Worker, conn: Connection, grant: Grant, msg_id: str | int | None) -> bool:
    """Authentication succeeded: take the owner's slot, register the session, send `welcome`."""
    conn.grant = grant
    apply(conn)
    if not await _take_slot(worker, conn):
        limit_close(conn, p.CLOSE_TOO_MANY, "Too many connections for this user.")
        conn.grant = None  # never a session: nothing to record or release at disconnect
        return False
    conn.connected_at = time.time()
    worker.add(conn)
    conn.watch_expiry(worker.deadlines)
    audit.record(audit.Kind.CONNECT, **conn.audit_fields())
    services = access.allowed_services(grant.principal)
    heartbeat = streaming_settings.HEARTBEAT_INTERVAL
    expires_at, ticket = iso(grant.expires_at), conn.issue_ticket()
    conn.send_message(messages.welcome(conn.session_id, heartbeat, services, expires_at, msg_id, ticket))
    return True


async def close_session(worker: Worker, conn: Connection, code: int, reason: str) -> None:
    """The socket is gone: unregister, audit, give back the slot, remember it for resumes."""
    conn.closing = True
    worker.remove(conn)
    if conn.grant is not None:
        code, reason = conn.closed_with or (code, reason)
        worker.session_closed(conn, code, reason)
        audit.record(audit.Kind.DISCONNECT, **conn.audit_fields(), close_code=code, detail=reason)
        await _release_slot(worker, conn)
        try:
            await worker.backend.remember_closed(conn.grant.checksum, conn.session_id)
        except Exception:
            logger.warning("Could not remember a closed session for resumes", exc_info=True)
    for key in list(conn.subscriptions):
        await worker.hub.unsubscribe(conn, key)
    conn.subscriptions.clear()
    stop = getattr(conn.writer, "stop", None)
    if stop is not None:
        stop()


async def note_resume(worker: Worker, conn: Connection) -> None:
    """A recovered resubscribe: find the session this one continues (once per session)."""
    if conn.resumed_from is None and conn.grant is not None:
        conn.resumed_from = await worker.backend.previous_session(conn.grant.checksum)


# Connections per owner across workers ----------------------------------------------------------


def owner_key(conn: Connection) -> str:
    user_id, app_id = conn.owner
    return f"u{user_id}" if user_id is not None else f"a{app_id}"


async def _take_slot(worker: Worker, conn: Connection) -> bool:
    cap = int(conn.limits["MAX_CONNECTIONS_PER_USER"])
    owner = owner_key(conn)
    try:
        admitted = await worker.backend.take_slot(owner, conn.session_id, cap, USER_SLOT_TTL)
    except Exception:  # backend unavailable: count on this worker rather than refuse everyone
        logger.warning("Could not count connections in the backend; counting this worker only", exc_info=True)
        return worker.connections_of(*conn.owner) < cap
    if admitted:
        conn.user_slot = owner
    return admitted


async def _release_slot(worker: Worker, conn: Connection) -> None:
    owner, conn.user_slot = conn.user_slot, None
    if owner is None:
        return
    try:
        await worker.backend.release_slot(owner, conn.session_id)
    except Exception:
        logger.warning("Could not release a connection slot; it expires by itself", exc_info=True)


async def refresh_slots(worker: Worker) -> None:
    """Keep this worker's live connections counted (entries not refreshed expire)."""
    slots = [(c.user_slot, c.session_id) for c in list(worker.connections.values()) if c.user_slot]
    if slots:
        await worker.backend.refresh_slots(slots, USER_SLOT_TTL)  # type: ignore[arg-type]


def slot_duty() -> object:
    """A worker duty that refreshes the slots every USER_SLOT_REFRESH seconds."""
    last = time.monotonic()

    def duty(worker: Worker) -> object:
        nonlocal last
        if time.monotonic() - last < USER_SLOT_REFRESH:
            return None
        last = time.monotonic()
        return refresh_slots(worker)

    return duty
