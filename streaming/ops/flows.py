"""Per-service flows over the fleet: events published, events received and frames delivered per second.

Each worker's load sample carries its own per-service rates (`LoadSample.per_service`). Over the
fleet, publishes and deliveries add up; every worker following a stream receives each of its events,
so a service's event rate is the highest any worker saw, not the sum.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from streaming.conf import streaming_settings
from streaming.models import LoadSample

FIELDS = ("published_per_s", "received_per_s", "delivered_per_s")


def combine(per_worker: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """One fleet figure per service from the workers' own per-service rates."""
    fleet: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0.0))
    for services in per_worker:
        for name, rates in services.items():
            total = fleet[name]
            total["published_per_s"] += rates.get("published_per_s", 0.0)
            total["delivered_per_s"] += rates.get("delivered_per_s", 0.0)
            total["received_per_s"] = max(total["received_per_s"], rates.get("received_per_s", 0.0))
    return {name: {k: round(v, 2) for k, v in rates.items()} for name, rates in sorted(fleet.items())}


def current(now: datetime) -> dict[str, dict[str, float]]:
    """The fleet's per-service rates from each live worker's latest sample."""
    since = now - timedelta(seconds=streaming_settings.WORKER_STALE_SECONDS)
    latest: dict[int, dict[str, Any]] = {}
    for worker_pk, per_service in (
        LoadSample.objects.filter(at__gte=since).order_by("at").values_list("worker_id", "per_service")
    ):
        latest[worker_pk] = per_service or {}
    return combine(list(latest.values()))


def series(since: datetime) -> dict[str, dict[str, list[float]]]:
    """Per service: `t` (Unix seconds, one point per heartbeat) and one list per field, oldest first."""
    step = max(1.0, float(streaming_settings.WORKER_HEARTBEAT))
    buckets: dict[float, list[dict[str, dict[str, float]]]] = defaultdict(list)
    for at, per_service in LoadSample.objects.filter(at__gte=since).values_list("at", "per_service"):
        buckets[at.timestamp() // step * step].append(per_service or {})
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"t": [], **{f: [] for f in FIELDS}})
    for t in sorted(buckets):
        for name, rates in combine(buckets[t]).items():
            line = out[name]
            line["t"].append(t)
            for field in FIELDS:
                line[field].append(rates[field])
    return dict(out)
