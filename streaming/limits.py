"""Limits: live admin overrides over the STREAMING defaults, rate limiting, connections per user.

An admin's LimitOverride rows are loaded into a table on every worker when it starts and again on
the control operation "limits" (broadcast when the admin saves one). For a connection the most
specific row wins: user, then the user's groups (the highest value among them), then service, then
worker, then global, then the STREAMING setting. Every connection keeps its resolved values in
`conn.limits`, so the per-message path reads a dict instead of resolving again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async

from streaming.conf import streaming_settings
from streaming.control import operation
from streaming.models import LimitOverride
from streaming.worker import Worker, on_start, running_worker

if TYPE_CHECKING:
    from streaming.connection import Connection

logger = logging.getLogger(__name__)

#: The limits an admin can override live.
LIMIT_NAMES = tuple(name for name, _ in LimitOverride.LIMITS)

#: Seconds without a rate-limited message after which the strike count starts again.
STRIKE_FORGIVE_SECONDS = 2.0

#: Seconds a slow reader cut off with 4013 has to read what was already sent before it is dropped.
SLOW_READER_CLOSE_GRACE = 5.0

#: A user's connection entry in Redis lives this long unless its worker refreshes it (a killed
#: worker's connections stop counting after this); refreshed every REFRESH seconds.
USER_SLOT_TTL = 30.0
USER_SLOT_REFRESH = 10.0


class TokenBucket:
    """`rate` tokens per second up to `burst`; each client message takes one.

    `strikes` counts refused messages since the client last kept to the rate for a while, so a
    flood that refills a token now and then is still sustained abuse.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp", "strikes", "limited_at")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.strikes = 0
        self.limited_at = 0.0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            if self.strikes and now - self.limited_at > STRIKE_FORGIVE_SECONDS:
                self.strikes = 0
            return True
        self.strikes += 1
        self.limited_at = now
        return False


_frame_limit_checked = False


def adopt_server_frame_limit(writer: Any) -> None:
    """Make daphne's own message-size refusal a clean 1009 close; warn if its limit differs from ours.

    Daphne (autobahn) refuses messages above --websocket-max-message-size from the frame header,
    before buffering them, but by default drops the TCP connection (the client sees 1006). With
    `failByDrop` off it sends a 1009 close frame instead. Ours closes with 4009 above
    MAX_FRAME_BYTES; equal values make the two agree, and an unlimited daphne would buffer any size.
    """
    global _frame_limit_checked
    protocol = getattr(writer, "protocol", None)
    server_limit = getattr(protocol, "maxMessagePayloadSize", None)
    if server_limit is None:
        return
    protocol.failByDrop = False
    if _frame_limit_checked:
        return
    _frame_limit_checked = True
    ours = streaming_settings.MAX_FRAME_BYTES
    if server_limit != ours:
        logger.warning(
            "daphne --websocket-max-message-size is %s but STREAMING MAX_FRAME_BYTES is %s; "
            "start daphne with --websocket-max-message-size %s",
            server_limit or "unlimited",
            ours,
            ours,
        )


def slow_reader_grace(writer: Any) -> None:
    """Give a cut-off slow reader SLOW_READER_CLOSE_GRACE s to read its way to the 4013 close.

    Nothing more is written to it, so memory stays bounded; daphne would otherwise drop the TCP
    connection 1 s after the close frame was queued, behind the unread data, and the client would
    see 1006 instead of why it was cut off.
    """
    protocol = getattr(writer, "protocol", None)
    if protocol is not None and hasattr(protocol, "closeHandshakeTimeout"):
        protocol.closeHandshakeTimeout = SLOW_READER_CLOSE_GRACE


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


@operation("limits")
async def reload(worker: Worker, fields: dict[str, Any]) -> None:
    await load(worker)


# Connections per user across workers ------------------------------------------------------------

# KEYS[1] the owner's sorted set (session -> expiry); ARGV now, expiry, cap, session.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 1)
return 1
"""


def _owner_key(conn: Connection) -> str:
    user_id, app_id = conn.owner
    owner = f"u{user_id}" if user_id is not None else f"a{app_id}"
    return f"{streaming_settings.REDIS_PREFIX}:conns:{owner}"


def _redis(worker: Worker) -> Any:
    try:
        return worker.redis_client()
    except RuntimeError:
        return None


async def admit_user(worker: Worker, conn: Connection) -> bool:
    """Count `conn` (authenticated, not yet added) against its owner's cap on every worker."""
    cap = int(conn.limits["MAX_CONNECTIONS_PER_USER"])
    client = _redis(worker)
    if client is None:
        return worker.connections_of(*conn.owner) < cap
    now = time.time()
    try:
        admitted = await client.eval(
            _ADMIT, 1, _owner_key(conn), now, now + USER_SLOT_TTL, cap, conn.session_id
        )
    except Exception:  # Redis unavailable: count on this worker rather than refuse everyone
        logger.warning("Could not count connections in Redis; counting this worker only", exc_info=True)
        return worker.connections_of(*conn.owner) < cap
    if admitted:
        conn.meta["user_slot"] = _owner_key(conn)
    return bool(admitted)


async def release_user(worker: Worker, conn: Connection) -> None:
    key = conn.meta.pop("user_slot", None)
    client = _redis(worker)
    if key is None or client is None:
        return
    try:
        await client.zrem(key, conn.session_id)
    except Exception:
        logger.warning("Could not release a connection slot; it expires by itself", exc_info=True)


async def refresh_user_slots(worker: Worker) -> None:
    """Keep this worker's live connections counted (entries not refreshed expire)."""
    client = _redis(worker)
    slots = [
        (c.meta["user_slot"], c.session_id)
        for c in list(worker.connections.values())
        if "user_slot" in c.meta
    ]
    if client is None or not slots:
        return
    expiry = time.time() + USER_SLOT_TTL
    async with client.pipeline(transaction=False) as pipe:
        for key, session_id in slots:
            pipe.zadd(key, {session_id: expiry})
            pipe.expire(key, int(USER_SLOT_TTL) + 1)
        await pipe.execute()


def _slot_duty() -> Any:
    last = time.monotonic()

    def duty(worker: Worker) -> Any:
        nonlocal last
        if time.monotonic() - last < USER_SLOT_REFRESH:
            return None
        last = time.monotonic()
        return refresh_user_slots(worker)

    return duty


def _start(worker: Worker) -> None:
    worker.spawn(load(worker))
    worker.duties.append(_slot_duty())


on_start(_start)
