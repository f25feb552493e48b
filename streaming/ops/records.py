"""Records this worker, its sessions and its load in the database: one batch per heartbeat.

The event loop only reads counters (a few microseconds per connection); the writes run in a
database thread as one transaction: upsert the worker, insert a load sample, upsert the sessions that
changed or closed, and sweep workers whose heartbeat stopped. Nothing is written per message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone

from streaming.bus.background import OUTAGE, background_transaction
from streaming.conf import streaming_settings
from streaming.delivery.worker import Worker
from streaming.models import LoadSample, StreamSession, WorkerProcess
from streaming.ops.cleanup import workers_sweep

if TYPE_CHECKING:
    from streaming.sessions.connection import Connection

logger = logging.getLogger(__name__)

#: Session columns a heartbeat may change; the others are written once, when the row is created.
SESSION_UPDATES = [
    "worker",
    "last_activity_at",
    "subscriptions",
    "messages_in",
    "messages_out",
    "rate_in",
    "rate_out",
    "closed_at",
    "close_code",
    "close_reason",
    "resumed_from",
]
#: Worker columns also kept over time as load samples, for the charts.
LOAD_FIELDS = (
    "connections",
    "subscriptions",
    "messages_in_per_s",
    "messages_out_per_s",
    "cpu_percent",
    "rss_bytes",
    "loop_lag_ms",
)


#: While the database is away: closed sessions and load samples kept for the next heartbeat that
#: writes (10 minutes of samples at the default heartbeat); beyond these the oldest are dropped.
MAX_RETRY_ROWS = 10_000
MAX_MISSED_SAMPLES = 300


@dataclass(slots=True)
class Seen:
    """What the previous heartbeat recorded of one session, to write only what changed."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    subscriptions: list[str] = field(default_factory=list)
    active: bool = True
    last_activity: datetime | None = None
    #: The row exists (its identity columns were written); until then every heartbeat sends them.
    recorded: bool = False


@dataclass(slots=True)
class Batch:
    """One heartbeat's writes, collected on the loop and written in a database thread."""

    worker: dict[str, Any]
    sessions: list[dict[str, Any]]
    #: Earlier heartbeats' stats not written yet (the database was away): their load samples.
    missed: list[dict[str, Any]] = field(default_factory=list)


class Recorder:
    """Keeps the WorkerProcess, StreamSession and LoadSample rows of one worker up to date."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.seen: dict[str, Seen] = {}
        self.last_at = time.monotonic()
        self.bytes_out = 0
        self.messages_out = 0
        self.retry: list[dict[str, Any]] = []
        self.retried: set[str] = set()
        self.missed: list[dict[str, Any]] = []
        self.due = asyncio.Event()
        #: CPU seconds the recording itself used (loop and database thread), for /metrics and the bench.
        self.cpu_seconds = 0.0
        self.flushes = 0
        self.last_flush: float | None = None
        self.layer_latency: float | None = None
        self.layer_channel: str | None = None

    def duty(self, worker: Worker) -> None:
        """Run every second by the worker tick; wakes the writer once per WORKER_HEARTBEAT."""
        if time.monotonic() - self.last_at >= streaming_settings.WORKER_HEARTBEAT:
            self.due.set()

    async def run(self) -> None:
        while True:
            try:
                await self.flush()
            except Exception:
                logger.exception("Collecting the heartbeat of %s failed", self.worker.id)
            await self.due.wait()
            self.due.clear()

    async def flush(self) -> None:
        started = time.thread_time()
        batch = self.collect()
        self.cpu_seconds += time.thread_time() - started
        batch.worker["layer_latency_ms"] = await self.layer_round_trip()
        try:
            self.cpu_seconds += await database_sync_to_async(write)(batch)
        except OUTAGE as exc:
            logger.warning("Database unavailable; %s records later: %s", self.worker.id, exc)
            self.kept(batch)
        except Exception:
            logger.exception("Recording worker %s failed", self.worker.id)
            self.failed(batch)
        else:
            self.flushes += 1
            self.last_flush = time.time()
            self.retried.clear()
            for row in batch.sessions:
                seen = self.seen.get(row["session_id"])
                if seen is not None:
                    seen.recorded = True

    def failed(self, batch: Batch) -> None:
        """Send open sessions again next heartbeat; closed ones get one more try (a row that broke
        the batch, e.g. of a user deleted meanwhile, must not break every later one)."""
        retried, self.retried = self.retried, set()
        for row in batch.sessions:
            seen = self.seen.get(row["session_id"])
            if seen is not None:
                seen.active = True
            elif row["closed_at"] is not None and row["session_id"] not in retried:
                self.retry.append(row)
                self.retried.add(row["session_id"])

    def kept(self, batch: Batch) -> None:
        """The database is away: send everything again next heartbeat, within the bounds."""
        for row in batch.sessions:
            seen = self.seen.get(row["session_id"])
            if seen is not None:
                seen.active = True
            else:
                self.retry.append(row)
        del self.retry[:-MAX_RETRY_ROWS]
        self.missed = [*batch.missed, batch.worker][-MAX_MISSED_SAMPLES:]

    # Reading the worker (on the loop) ----------------------------------------------------------

    def collect(self) -> Batch:
        now = timezone.now()
        mono = time.monotonic()
        elapsed = max(1e-3, mono - self.last_at)
        self.last_at = mono
        rows, self.retry = self.retry, []
        for conn in self.worker.connections.values():
            row = self.session_row(conn, now, elapsed)
            if row is not None:
                rows.append(row)
        closed, self.worker.closed_sessions = self.worker.closed_sessions, []
        for conn, code, reason in closed:
            rows.append(self.closed_row(conn, now, elapsed, code, reason))
        for session_id in [sid for sid in self.seen if sid not in self.worker.connections]:
            seen = self.seen.pop(session_id)  # left without passing the consumer's disconnect
            rows.append(
                {
                    "session_id": session_id,
                    "last_activity_at": seen.last_activity,
                    "subscriptions": seen.subscriptions,
                    "messages_in": seen.messages_in,
                    "messages_out": seen.messages_out,
                    "closed_at": now,
                    "close_code": None,
                }
            )
        load = self.worker.meter.read()
        stats = {
            "worker_id": self.worker.id,
            "pid": self.worker.pid,
            "host": self.worker.host[:200],
            "started_at": datetime.fromtimestamp(self.worker.started, UTC),
            "heartbeat_at": now,
            "state": self.state(),
            "bytes_out": self.bytes_out,
            **{name: load[name] for name in LOAD_FIELDS},
            "per_service": load["services"],
        }
        missed, self.missed = self.missed, []
        return Batch(worker=stats, sessions=rows, missed=missed)

    def _advance(self, conn: Connection, now: datetime, elapsed: float) -> tuple[Seen, bool, dict[str, Any]]:
        """Counters of `conn` since the last heartbeat: (record, changed?, row fields)."""
        seen = self.seen.get(conn.session_id)
        if seen is None:
            seen = self.seen[conn.session_id] = Seen()
        writer = conn.writer
        delta_in = conn.messages_in - seen.messages_in
        delta_out = writer.messages_out - seen.messages_out
        self.messages_out += delta_out
        self.bytes_out += writer.bytes_out - seen.bytes_out
        subs = [f"{service}/{topic}" for service, topic in conn.subscriptions]
        changed = not seen.recorded or delta_in or delta_out or subs != seen.subscriptions or seen.active
        if delta_in or delta_out or seen.last_activity is None:
            seen.last_activity = now
        seen.messages_in, seen.messages_out = conn.messages_in, writer.messages_out
        seen.bytes_out = writer.bytes_out
        seen.subscriptions, seen.active = subs, bool(delta_in or delta_out)
        return (
            seen,
            bool(changed),
            {
                "session_id": conn.session_id,
                "last_activity_at": seen.last_activity,
                "subscriptions": subs,
                "messages_in": conn.messages_in,
                "messages_out": writer.messages_out,
                "rate_in": round(delta_in / elapsed, 2),
                "rate_out": round(delta_out / elapsed, 2),
                "closed_at": None,
                "close_code": None,
                "close_reason": "",
                "resumed_from": (conn.resumed_from or "")[:40],
            },
        )

    def state(self) -> str:
        if self.worker.stopped:
            return WorkerProcess.State.STOPPED
        return WorkerProcess.State.DRAINING if self.worker.draining else WorkerProcess.State.RUNNING

    def session_row(self, conn: Connection, now: datetime, elapsed: float) -> dict[str, Any] | None:
        seen, changed, row = self._advance(conn, now, elapsed)
        if not changed:
            return None
        if not seen.recorded:
            row.update(self.identity(conn, now))
        return row

    def closed_row(
        self, conn: Connection, now: datetime, elapsed: float, code: int, reason: str
    ) -> dict[str, Any]:
        previous = self.seen.get(conn.session_id)
        kept = previous.subscriptions if previous is not None else []  # the consumer cleared them
        _, _, row = self._advance(conn, now, elapsed)
        del self.seen[conn.session_id]
        row.update(self.identity(conn, now))
        row["subscriptions"] = row["subscriptions"] or kept
        row.update(
            {"closed_at": now, "close_code": code, "close_reason": reason[:200], "rate_in": 0, "rate_out": 0}
        )
        return row

    @staticmethod
    def identity(conn: Connection, now: datetime) -> dict[str, Any]:
        """Columns written when the row is created: who, from where, since when."""
        principal = conn.grant.principal if conn.grant is not None else None
        connected = conn.connected_at
        return {
            "user_id": principal.user_id if principal else None,
            "application_id": principal.application_id if principal else None,
            "remote_addr": (conn.remote or "")[:64],
            "user_agent": (conn.user_agent or "")[:200],
            "origin": (conn.origin or "")[:200],
            "connected_at": datetime.fromtimestamp(connected, UTC) if connected else now,
        }

    async def layer_round_trip(self) -> float | None:
        """Milliseconds for a message to go through the channel layer and back to this worker."""
        layer = get_channel_layer()
        if layer is None:
            return None
        try:
            if self.layer_channel is None:
                # The control listener's prefix: channels_redis reads all of a process's channels through
                # one Redis list per prefix, and only the listener's list is being read.
                self.layer_channel = await layer.new_channel("streaming.delivery.worker.")
            started = time.perf_counter()
            await layer.send(self.layer_channel, {"type": "streaming.probe"})
            await asyncio.wait_for(layer.receive(self.layer_channel), 2.0)
        except Exception:
            logger.warning("Channel layer round trip failed", exc_info=True)
            self.layer_latency = None
            return None
        self.layer_latency = time.perf_counter() - started
        return round(self.layer_latency * 1000, 2)


# Writing (in a database thread) -----------------------------------------------------------------


def write(batch: Batch) -> float:
    """Write one heartbeat in one transaction; returns the CPU seconds this thread spent."""
    started = time.thread_time()
    stats = batch.worker
    with background_transaction():
        worker, _ = WorkerProcess.objects.update_or_create(
            worker_id=stats["worker_id"],
            defaults={k: v for k, v in stats.items() if k not in ("worker_id", "per_service")},
        )
        LoadSample.objects.bulk_create(
            LoadSample(
                worker=worker,
                at=sample["heartbeat_at"],
                per_service=sample["per_service"],
                **{k: sample[k] for k in LOAD_FIELDS},
            )
            for sample in [*batch.missed, stats]
        )
        if batch.sessions and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    SESSION_UPSERT_POSTGRESQL, [worker.pk, json.dumps(batch.sessions, default=str)]
                )
        elif batch.sessions:
            StreamSession.objects.bulk_create(
                [StreamSession(worker=worker, **_with_defaults(row)) for row in batch.sessions],
                update_conflicts=True,
                unique_fields=["session_id"],
                update_fields=SESSION_UPDATES,
                batch_size=500,
            )
        workers_sweep(now=stats["heartbeat_at"], stale_seconds=streaming_settings.WORKER_STALE_SECONDS)
    return time.thread_time() - started


#: The session upsert in one statement with one JSON parameter. The ORM's bulk upsert spends ~70 ms
#: of worker CPU per 1,000 rows building and quoting arrays; this spends a few (docs/performance.md).
SESSION_UPSERT_POSTGRESQL = """
INSERT INTO streaming_streamsession (
    session_id, worker_id, user_id, application_id, remote_addr, user_agent, origin, connected_at,
    last_activity_at, subscriptions, messages_in, messages_out, rate_in, rate_out, closed_at, close_code,
    close_reason, resumed_from)
SELECT r.session_id, %s, r.user_id, r.application_id, COALESCE(r.remote_addr, ''), COALESCE(r.user_agent, ''),
    COALESCE(r.origin, ''), COALESCE(r.connected_at, r.closed_at, now()), r.last_activity_at,
    COALESCE(r.subscriptions, '[]'), COALESCE(r.messages_in, 0), COALESCE(r.messages_out, 0),
    COALESCE(r.rate_in, 0), COALESCE(r.rate_out, 0), r.closed_at, r.close_code,
    COALESCE(r.close_reason, ''), COALESCE(r.resumed_from, '')
FROM jsonb_to_recordset(%s::jsonb) AS r(
    session_id text, user_id bigint, application_id bigint, remote_addr text, user_agent text, origin text,
    connected_at timestamptz, last_activity_at timestamptz, subscriptions jsonb, messages_in bigint,
    messages_out bigint, rate_in float8, rate_out float8, closed_at timestamptz, close_code integer,
    close_reason text, resumed_from text)
ON CONFLICT (session_id) DO UPDATE SET
    worker_id = EXCLUDED.worker_id, last_activity_at = EXCLUDED.last_activity_at,
    subscriptions = EXCLUDED.subscriptions, messages_in = EXCLUDED.messages_in,
    messages_out = EXCLUDED.messages_out, rate_in = EXCLUDED.rate_in, rate_out = EXCLUDED.rate_out,
    closed_at = EXCLUDED.closed_at, close_code = EXCLUDED.close_code, close_reason = EXCLUDED.close_reason,
    resumed_from = EXCLUDED.resumed_from
"""


def _with_defaults(row: dict[str, Any]) -> dict[str, Any]:
    """Rows of sessions already recorded carry only what changes; creation needs a connected_at."""
    return {"connected_at": row.get("closed_at") or timezone.now(), **row}


# Wiring -----------------------------------------------------------------------------------------

_recorders: dict[str, Recorder] = {}


def recorder_of(worker: Worker | None) -> Recorder | None:
    return _recorders.get(worker.id) if worker is not None else None


def start(worker: Worker) -> None:
    """Register the worker now and record it every heartbeat from then on."""
    _recorders.clear()  # one worker per process; a new loop (tests) replaces the old one
    recorder = _recorders[worker.id] = Recorder(worker)
    worker.duties.append(recorder.duty)
    worker.before_exit.append(lambda _: recorder.flush())
    worker.spawn(recorder.run())
