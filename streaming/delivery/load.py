"""Load of this worker: connections, subscriptions, message rates, CPU, memory, loop lag.

The one definition of "load": the load service, the recorder (admin, dashboard, `streaming_status`)
and `/metrics` all read it from the worker's `meter`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psutil

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
        return self.rates

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
        }
        return self.latest
