"""Limits: live admin overrides over the STREAMING defaults, resolved per connection.

An admin's LimitOverride rows are loaded into a table on every worker when it starts and again on
the control operation "limits" (broadcast when the admin saves one). For a connection the most
specific row wins: user, then the user's groups (the highest value among them), then service, then
worker, then global, then the STREAMING setting. Every connection keeps its resolved values in
`conn.limits`, so the per-message path reads a dict instead of resolving again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from channels.db import database_sync_to_async

from streaming.conf import streaming_settings
from streaming.delivery.worker import Worker, running_worker
from streaming.models import LimitOverride

if TYPE_CHECKING:
    from streaming.sessions.connection import Connection

#: The limits an admin can override live.
LIMIT_NAMES = tuple(name for name, _ in LimitOverride.LIMITS)


# Overrides --------------------------------------------------------------------------------------

#: limit name -> {(scope, key): value}; key is "" (global), a user/group pk, a service or worker id.
_overrides: dict[str, dict[tuple[str, str], float]] = {}


def set_overrides(rows: Iterable[tuple[str, str, str, float]]) -> None:
    """Replace the table with (limit, scope, key, value) rows."""
    table: dict[str, dict[tuple[str, str], float]] = {}
    for limit, scope, key, value in rows:
        table.setdefault(limit, {})[(scope, key)] = value
    _overrides.clear()
    _overrides.update(table)


def resolve(
    name: str, user_id: int | None, group_ids: Iterable[int], service: str | None, worker_id: str | None
) -> float:
    """The value of limit `name` for these scope keys: the most specific override, else the setting."""
    table = _overrides.get(name)
    if table:
        if user_id is not None and ("user", str(user_id)) in table:
            return table[("user", str(user_id))]
        groups = [table[("group", str(g))] for g in group_ids if ("group", str(g)) in table]
        if groups:
            return max(groups)
        for scope, key in (("service", service), ("worker", worker_id), ("global", "")):
            if key is not None and (scope, key) in table:
                return table[(scope, key)]
    return float(getattr(streaming_settings, name))


def effective(name: str, conn: Connection | None = None, *, service: str | None = None) -> float:
    """The value of limit `name` for `conn` (or for this worker when None), overrides applied."""
    worker = running_worker()
    grant = conn.grant if conn is not None else None
    user_id = grant.principal.user_id if grant is not None else None
    group_ids = grant.group_ids if grant is not None else ()
    return resolve(name, user_id, group_ids, service, worker.id if worker else None)


def apply(conn: Connection) -> None:
    """Resolve every limit for `conn` and put the values where its hot paths read them."""
    values = {name: effective(name, conn) for name in LIMIT_NAMES}
    conn.limits = values
    conn.bucket.rate = values["MESSAGES_PER_SECOND"]
    conn.bucket.burst = int(values["MESSAGES_BURST"])
    conn.request_bucket.rate = values["REQUESTS_PER_SECOND"]
    conn.request_bucket.burst = int(values["REQUESTS_BURST"])
    conn.writer.limit = int(values["MAX_OUTBOUND_BYTES"])


def _override_rows() -> list[tuple[str, str, str, float]]:
    rows = []
    for row in LimitOverride.objects.all():
        key = {
            "user": row.user_id,
            "group": row.group_id,
            "service": row.service,
            "worker": row.worker_id,
        }.get(row.scope, "")
        if key is None:
            continue
        rows.append((row.limit, row.scope, str(key), row.value))
    return rows


async def load(worker: Worker) -> None:
    """Reload the overrides from the database and re-resolve every open connection's limits."""
    set_overrides(await database_sync_to_async(_override_rows)())
    for conn in list(worker.connections.values()):
        apply(conn)
