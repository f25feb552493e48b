"""Load charts of the last hour, per worker, as plain SVG geometry for the admin dashboard."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streaming.models import LoadSample

WIDTH, HEIGHT = 640, 160
#: Points per series at most; samples are bucketed (peak of each bucket) beyond that.
MAX_POINTS = 360
COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"]

ChartValue = Callable[[dict[str, Any]], float]

#: (title, unit, value of one sample)
CHARTS: list[tuple[str, str, ChartValue]] = [
    ("Connections", "", lambda s: s["connections"]),
    ("Messages per second (in + out)", "/s", lambda s: s["messages_in_per_s"] + s["messages_out_per_s"]),
    ("CPU", "%", lambda s: s["cpu_percent"]),
    ("Memory (RSS)", " MB", lambda s: s["rss_bytes"] / 1_048_576),
]


@dataclass
class Series:
    worker: str
    color: str
    points: str
    last: float


@dataclass
class Chart:
    title: str
    unit: str
    top: float
    series: list[Series] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def gridlines(self) -> list[dict[str, Any]]:
        return [
            {"y": round(self.height * (1 - f), 1), "label": _fmt(self.top * f)} for f in (0.25, 0.5, 0.75, 1)
        ]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


def _top(values: list[float]) -> float:
    """A round upper bound for the y axis: 1, 2 or 5 times a power of ten."""
    peak = max(values, default=0.0)
    magnitude = 1.0
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= peak:
                return step * magnitude
        magnitude *= 10


def samples_by_worker(since: datetime) -> dict[str, list[dict[str, Any]]]:
    rows = (
        LoadSample.objects.filter(at__gte=since)
        .order_by("at")
        .values(
            "worker__worker_id",
            "at",
            "connections",
            "messages_in_per_s",
            "messages_out_per_s",
            "cpu_percent",
            "rss_bytes",
        )
    )
    by_worker: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_worker[row["worker__worker_id"]].append(row)
    return by_worker


def _polyline(
    samples: list[dict[str, Any]], value: ChartValue, since: datetime, span: float, top: float
) -> str:
    buckets: dict[int, float] = {}
    for sample in samples:
        x = int((sample["at"] - since).total_seconds() / span * MAX_POINTS)
        buckets[x] = max(buckets.get(x, 0.0), value(sample))
    return " ".join(
        f"{x * WIDTH / MAX_POINTS:.1f},{HEIGHT - min(v, top) / top * HEIGHT:.1f}"
        for x, v in sorted(buckets.items())
    )


def charts(*, now: datetime, minutes: int = 60) -> list[Chart]:
    """One chart per load measure, one line per worker, over the last `minutes`."""
    since = now - timedelta(minutes=minutes)
    span = minutes * 60.0
    by_worker = samples_by_worker(since)
    result = []
    for title, unit, value in CHARTS:
        top = _top([value(s) for samples in by_worker.values() for s in samples])
        chart = Chart(title=title, unit=unit, top=top)
        for index, (worker, samples) in enumerate(sorted(by_worker.items())):
            chart.series.append(
                Series(
                    worker=worker,
                    color=COLORS[index % len(COLORS)],
                    points=_polyline(samples, value, since, span, top),
                    last=round(value(samples[-1]), 1),
                )
            )
        result.append(chart)
    return result
