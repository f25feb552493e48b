"""The load dashboard's data: per-worker series from LoadSample, per-service figures, as JSON."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from streaming import services
from streaming.models import LoadSample, StreamSession

#: The measures of a LoadSample drawn on the dashboard (charts are declared in dashboard.js).
WORKER_FIELDS = (
    "connections",
    "subscriptions",
    "messages_in_per_s",
    "messages_out_per_s",
    "cpu_percent",
    "rss_bytes",
    "loop_lag_ms",
)
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


def service_figures() -> dict[str, dict[str, float]]:
    """Per service, what the database knows now: open sessions subscribed to it.

    Per-service publish and delivery rates are not recorded yet; when they are (e.g. a per-service
    map on LoadSample), they join this dict and dashboard.js draws them with no other change.
    """
    subscribed: Counter[str] = Counter()
    open_sessions = StreamSession.objects.filter(closed_at__isnull=True)
    for subscriptions in open_sessions.values_list("subscriptions", flat=True):
        subscribed.update({entry.split("/", 1)[0] for entry in subscriptions})
    return {name: {"subscribed_sessions": subscribed[name]} for name in services.names()}


def dashboard_data(*, now: datetime, minutes: int = 60) -> dict[str, Any]:
    """Everything the dashboard draws, for the last `minutes`."""
    return {
        "now": now.timestamp(),
        "minutes": minutes,
        "workers": worker_series(now - timedelta(minutes=minutes)),
        "services": service_figures(),
    }
