"""The load dashboard's data: per-worker and per-service series from LoadSample, as JSON."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from streaming import services
from streaming.models import LoadSample, StreamSession
from streaming.ops import flows
from streaming.ops.records import LOAD_FIELDS

#: The measures of a LoadSample drawn on the dashboard (charts are declared in dashboard.js).
WORKER_FIELDS = LOAD_FIELDS
#: Points per worker series at most; older samples are thinned (every n-th) beyond that.
MAX_POINTS = 720


def worker_series(since: datetime) -> dict[str, dict[str, list[float]]]:
    """Per worker: `t` (Unix seconds) and one list per field, oldest first."""
    rows = (
        LoadSample.objects.filter(at__gte=since)
        .order_by("at")
        .values_list("worker__worker_id", "at", *WORKER_FIELDS)
    )
    by_worker: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for worker, at, *values in rows:
        series = by_worker[worker]
        series["t"].append(at.timestamp())
        for name, value in zip(WORKER_FIELDS, values, strict=True):
            series[name].append(value)
    return {worker: _thinned(dict(series)) for worker, series in sorted(by_worker.items())}


def _thinned(series: dict[str, list[float]]) -> dict[str, list[float]]:
    step = -(-len(series["t"]) // MAX_POINTS)
    return {name: values[::step] for name, values in series.items()} if step > 1 else series


def subscribed_sessions() -> Counter[str]:
    """Per service, the open sessions subscribed to it (as recorded)."""
    subscribed: Counter[str] = Counter()
    open_sessions = StreamSession.objects.filter(closed_at__isnull=True)
    for subscriptions in open_sessions.values_list("subscriptions", flat=True):
        subscribed.update({entry.split("/", 1)[0] for entry in subscriptions})
    return subscribed


def service_figures(since: datetime) -> dict[str, Any]:
    """Per service: its rates over time (published, received, delivered) and the sessions subscribed now."""
    lines = flows.series(since)
    subscribed = subscribed_sessions()
    return {
        name: {**lines.get(name, {"t": []}), "subscribed_sessions": subscribed[name]}
        for name in services.names()
    }


def dashboard_data(*, now: datetime, minutes: int = 60) -> dict[str, Any]:
    """Everything the dashboard draws, for the last `minutes`."""
    return {
        "now": now.timestamp(),
        "minutes": minutes,
        "workers": worker_series(now - timedelta(minutes=minutes)),
        "services": service_figures(now - timedelta(minutes=minutes)),
    }
