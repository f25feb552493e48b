"""The audit log: security-relevant moments kept in memory and written in bulk by a worker duty.

Recording never touches the database (a flood must not become a flood of writes); the worker's
tick flushes what was recorded about once a second in one INSERT. The detail is a sentence of ours,
never a token or a client payload.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.db import IntegrityError

from streaming.bus.background import OUTAGE, background_transaction
from streaming.delivery.worker import Worker
from streaming.models import AuditEntry

logger = logging.getLogger(__name__)

#: Kinds of entry: CONNECT, DISCONNECT, AUTH_FAILED, DENIED, LIMIT, ADMIN.
Kind = AuditEntry.Kind

#: Entries kept while the database is slow or away; beyond this they are counted and dropped.
MAX_PENDING = 10_000

_pending: list[dict[str, Any]] = []
_dropped = 0
_flushing: asyncio.Task[Any] | None = None


def record(
    kind: str,
    *,
    user_id: int | None = None,
    application_id: int | None = None,
    session_id: str = "",
    remote: str = "",
    origin: str | None = "",
    close_code: int | None = None,
    detail: str = "",
) -> None:
    """Remember one audit entry (ids and strings only: the audit log knows no sessions)."""
    global _dropped
    if len(_pending) >= MAX_PENDING:
        _dropped += 1
        return
    _pending.append(
        {
            "kind": kind,
            "user_id": user_id,
            "application_id": application_id,
            "session_id": session_id,
            "remote_addr": remote[:64],
            "origin": (origin or "")[:200],
            "close_code": close_code,
            "detail": detail[:300],
        }
    )


def flush() -> int:
    """Write everything recorded so far in one bulk insert; returns the number of rows."""
    global _dropped
    rows, dropped = _pending[:], _dropped
    del _pending[: len(rows)]
    _dropped = 0
    if dropped:
        rows.append({"kind": Kind.LIMIT, "detail": f"{dropped} audit entries dropped (database too slow)."})
    if not rows:
        return 0
    try:
        try:
            with background_transaction():
                AuditEntry.objects.bulk_create([AuditEntry(**row) for row in rows])
        except IntegrityError:  # a user or application deleted meanwhile: keep the rows without it
            AuditEntry.objects.bulk_create([AuditEntry(**_without_gone(row)) for row in rows])
    except Exception:
        _pending[:0] = rows[: MAX_PENDING - len(_pending)]  # try again at the next flush
        raise
    return len(rows)


def _without_gone(row: dict[str, Any]) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    row = dict(row)
    if row.get("user_id") and not get_user_model().objects.filter(pk=row["user_id"]).exists():
        row["user_id"] = None
    if (
        row.get("application_id")
        and not get_application_model().objects.filter(pk=row["application_id"]).exists()
    ):
        row["application_id"] = None
    return row


async def aflush() -> int:
    return await database_sync_to_async(flush)()


def duty(worker: Worker) -> None:
    """Start a flush in the background, so a slow database never delays the worker's tick."""
    global _flushing
    idle = _flushing is None or _flushing.done() or _flushing.get_loop() is not worker.loop
    if (_pending or _dropped) and idle:
        _flushing = worker.loop.create_task(_flush_logged())


async def _flush_logged() -> None:
    try:
        await aflush()
    except OUTAGE as exc:
        logger.warning("Database unavailable; %d audit entries kept: %s", len(_pending), exc)
    except Exception:
        logger.exception("Could not write the audit log")


def start(worker: Worker) -> None:
    worker.duties.append(duty)
