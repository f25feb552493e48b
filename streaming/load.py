"""Load of this worker: connections, subscriptions, message rates, CPU, memory, loop lag."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from streaming.worker import Worker


class LoadMeter:
    """Reads this worker's load; rates are per second since the previous reading."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.process = psutil.Process()
        self.process.cpu_percent(None)
        self.at = time.monotonic()
        self.messages_in = worker.messages_in
        self.deliveries = worker.hub.deliveries
        self.latest: dict[str, Any] | None = None

    def read(self) -> dict[str, Any]:
        worker = self.worker
        now = time.monotonic()
        elapsed = max(1e-3, now - self.at)
        rate_in = (worker.messages_in - self.messages_in) / elapsed
        rate_out = (worker.hub.deliveries - self.deliveries) / elapsed
        self.at, self.messages_in, self.deliveries = now, worker.messages_in, worker.hub.deliveries
        self.latest = {
            "worker": worker.id,
            "pid": worker.pid,
            "host": worker.host,
            "state": "draining" if worker.draining else "running",
            "connections": len(worker.connections),
            "subscriptions": worker.hub.subscriber_count(),
            "streams": len(worker.hub.streams),
            "messages_in_per_s": round(rate_in, 2),
            "deliveries_per_s": round(rate_out, 2),
            "cpu_percent": self.process.cpu_percent(None),
            "rss_bytes": self.process.memory_info().rss,
            "loop_lag_ms": round(worker.loop_lag * 1000, 2),
            "uptime_s": round(time.time() - worker.started, 1),
        }
        return self.latest
