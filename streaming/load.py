"""Load of this worker: connections, subscriptions, message rates, CPU, memory, loop lag."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from streaming.worker import Worker

_process = psutil.Process()
_last: dict[str, float] = {}


def snapshot(worker: Worker, now: float) -> dict[str, Any]:
    """A point-in-time load reading; rates are per second since the previous reading."""
    elapsed = max(1e-3, now - _last.get("at", now - 1.0))
    messages_out = sum(c.writer.messages_out for c in worker.connections.values())
    rate_in = (worker.messages_in - _last.get("in", worker.messages_in)) / elapsed
    rate_out = max(0.0, (worker.hub.deliveries - _last.get("out", worker.hub.deliveries)) / elapsed)
    _last.update({"at": now, "in": worker.messages_in, "out": worker.hub.deliveries})
    return {
        "worker": worker.id,
        "pid": worker.pid,
        "host": worker.host,
        "state": "draining" if worker.draining else "running",
        "connections": len(worker.connections),
        "subscriptions": worker.hub.subscriber_count(),
        "streams": len(worker.hub.streams),
        "messages_in_per_s": round(rate_in, 2),
        "deliveries_per_s": round(rate_out, 2),
        "messages_out": messages_out,
        "cpu_percent": _process.cpu_percent(None),
        "rss_bytes": _process.memory_info().rss,
        "loop_lag_ms": round(worker.loop_lag * 1000, 2),
        "uptime_s": round(time.time() - worker.started, 1),
    }
