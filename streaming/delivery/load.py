"""Load of this worker: connections, subscriptions, message rates, CPU, memory, loop lag.

The one definition of "load": the load service, the recorder (admin, dashboard, `streaming_status`)
and `/metrics` all read it from the worker's `meter`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psutil

from streaming.delivery import publish

if TYPE_CHECKING:
    from streaming.delivery.worker import Worker


class LoadMeter:
    """Reads this worker's load; rates are per second since the previous reading."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.process = psutil.Process()
        self.process.cpu_percent(None)
        self.at = time.monotonic()
        self.messages_in = worker.messages_in
        self.deliveries = worker.hub.deliveries
        self.rates = {"messages_in_per_s": 0.0, "deliveries_per_s": 0.0, "cpu_percent": 0.0}
        self.counts = self._counts()
        self.flows: dict[str, Any] = {"services": {}, "publishers": []}
        self.latest: dict[str, Any] | None = None

    def _rates(self) -> dict[str, float]:
        """Rates since the previous window; readers less than a second apart share a window."""
        worker, now = self.worker, time.monotonic()
        elapsed = now - self.at
        if elapsed >= 1.0:
            self.rates = {
                "messages_in_per_s": round((worker.messages_in - self.messages_in) / elapsed, 2),
                "deliveries_per_s": round((worker.hub.deliveries - self.deliveries) / elapsed, 2),
                "cpu_percent": self.process.cpu_percent(None),
            }
            self.at, self.messages_in, self.deliveries = now, worker.messages_in, worker.hub.deliveries
            counts = self._counts()
            self.flows = _flows(self.counts, counts, elapsed)
            self.counts = counts
        return self.rates

    def _counts(self) -> Counts:
        hub = self.worker.hub
        return {
            "published": dict(publish.published),
            "received": {name: c[0] for name, c in hub.per_service.items()},
            "delivered": {name: c[1] for name, c in hub.per_service.items()},
            "publishers": dict(publish.published_by),
        }

    def read(self) -> dict[str, Any]:
        """The load now: counts as they are, rates over the last window of at least a second."""
        worker = self.worker
        rates = self._rates()
        self.latest = {
            "worker": worker.id,
            "pid": worker.pid,
            "host": worker.host,
            "state": "draining" if worker.draining else "running",
            "connections": len(worker.connections),
            "pending_auth": worker.pending_auth,
            "subscriptions": worker.hub.subscriber_count(),
            "streams": len(worker.hub.streams),
            **rates,
            "messages_out_per_s": rates["deliveries_per_s"],
            "rss_bytes": self.process.memory_info().rss,
            "loop_lag_ms": round(worker.loop_lag * 1000, 2),
            "uptime_s": round(time.time() - worker.started, 1),
            **self.flows,
        }
        return self.latest


#: Counters by kind (published, received, delivered, publishers), then by service or publisher.
Counts = dict[str, dict[Any, int]]

#: Publishers listed per reading at most (the busiest first).
TOP_PUBLISHERS = 10


def _rate(before: dict[Any, int], after: dict[Any, int], key: Any, elapsed: float) -> float:
    return round((after.get(key, 0) - before.get(key, 0)) / elapsed, 2)


def _flows(
    before: dict[str, dict[Any, int]], after: dict[str, dict[Any, int]], elapsed: float
) -> dict[str, Any]:
    """Per service: events published here, events received and frames delivered by this worker,
    per second; and the busiest publishers over HTTP."""
    names = sorted(set(after["published"]) | set(after["received"]))
    services = {
        name: {
            "published_per_s": _rate(before["published"], after["published"], name, elapsed),
            "received_per_s": _rate(before["received"], after["received"], name, elapsed),
            "delivered_per_s": _rate(before["delivered"], after["delivered"], name, elapsed),
        }
        for name in names
    }
    busy = [
        {"service": service, "publisher": who, "published_per_s": rate}
        for (service, who) in after["publishers"]
        if who and (rate := _rate(before["publishers"], after["publishers"], (service, who), elapsed)) > 0
    ]
    busy.sort(key=lambda row: -row["published_per_s"])
    return {"services": services, "publishers": busy[:TOP_PUBLISHERS]}
