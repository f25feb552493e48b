"""A terminal picture of the streaming fleet: workers, open sessions, services and load."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Max, QuerySet

from streaming import services
from streaming.delivery.backend import get_backend
from streaming.models import LoadSample, ServiceConfig, StreamSession, WorkerProcess
from streaming.ops import flows
from streaming.ops.dashboard import subscribed_sessions
from streaming.ops.fd_limits import fd_warnings
from streaming.ops.units import format_bytes, format_count, format_duration, format_percent, format_rate

#: Workers that stopped or died this recently are still shown (all of them with --all).
RECENT = timedelta(minutes=10)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under headers, columns padded to their widest cell; numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(headers))
    ]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        )

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])]).rstrip()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def shown_workers(now: datetime, show_all: bool = False) -> QuerySet[WorkerProcess]:
    """Live workers and those seen within RECENT; every recorded worker with `show_all`."""
    if show_all:
        return WorkerProcess.objects.all()
    live = [WorkerProcess.State.RUNNING, WorkerProcess.State.DRAINING]
    return WorkerProcess.objects.filter(state__in=live) | WorkerProcess.objects.filter(
        heartbeat_at__gte=now - RECENT
    )


def workers_table(now: datetime, workers: QuerySet[WorkerProcess]) -> str:
    rows = [
        (
            w.worker_id,
            w.state,
            w.connections,
            w.subscriptions,
            format_rate(w.messages_in_per_s),
            format_rate(w.messages_out_per_s),
            format_percent(w.cpu_percent),
            format_bytes(w.rss_bytes),
            format_duration(w.loop_lag_ms / 1000),
            f"{format_duration((now - w.heartbeat_at).total_seconds())} ago",
        )
        for w in workers.order_by("worker_id")
    ]
    headers = ["worker", "state", "conns", "subs", "in", "out", "cpu", "memory", "loop lag", "heartbeat"]
    return table(headers, rows) if rows else "no workers recorded"


def services_table(now: datetime) -> str:
    subscribed = subscribed_sessions()
    rates = flows.current(now)
    disabled = set(ServiceConfig.objects.filter(enabled=False).values_list("name", flat=True))
    rows = []
    for name in services.names():
        flow = rates.get(name, dict.fromkeys(flows.FIELDS, 0.0))
        rows.append(
            (
                name,
                "disabled" if name in disabled else "enabled",
                subscribed[name],
                format_rate(flow["published_per_s"]),
                format_rate(flow["received_per_s"]),
                format_rate(flow["delivered_per_s"]),
            )
        )
    headers = ["service", "state", "open sessions", "published", "events", "delivered"]
    return table(headers, rows)


def load_summary(now: datetime) -> str:
    open_sessions = StreamSession.objects.filter(closed_at__isnull=True)
    peak = LoadSample.objects.filter(at__gte=now - timedelta(hours=1)).aggregate(
        connections=Max("connections"), cpu=Max("cpu_percent"), lag=Max("loop_lag_ms")
    )
    return (
        f"open sessions: {open_sessions.count()} "
        f"({open_sessions.exclude(user=None).values('user').distinct().count()} user(s)); "
        f"last hour peaks per worker: {format_count(peak['connections'] or 0, 'connection')}, "
        f"{format_percent(peak['cpu'] or 0)} CPU, {format_duration((peak['lag'] or 0) / 1000)} loop lag"
    )


def redis_summary(topology: dict[str, Any]) -> str:
    """One line per Redis shard: primary (promoted or not), replicas; failovers this process saw."""
    if not topology:
        return "redis: none (embedded backend)"
    if topology["error"]:
        return f"redis ({topology['topology']}): unreachable: {topology['error']}"
    lines = [f"redis ({topology['topology']}), failovers seen: {topology['failovers']}"]
    for shard in topology["shards"]:
        promoted = " (promoted replica)" if shard["promoted"] else ""
        replicas = ", ".join(shard["replicas"]) or "none"
        lines.append(f"  primary {shard['primary']}{promoted}, replicas: {replicas}")
    return "\n".join(lines)


def status_text(*, now: datetime, show_all: bool = False) -> str:
    """Everything `streaming_status` prints, as one string."""
    workers = shown_workers(now, show_all)
    return "\n\n".join(
        [
            f"WidgetApp streaming at {now:%Y-%m-%d %H:%M:%S} UTC",
            workers_table(now, workers),
            services_table(now),
            load_summary(now),
            redis_summary(async_to_sync(get_backend().topology)()),
            *fd_warnings(workers),
        ]
    )
