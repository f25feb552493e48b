"""The `load` service: every worker publishes its load snapshot periodically, for staff."""

from __future__ import annotations

import time
from typing import Any

from streaming.conf import streaming_settings
from streaming.delivery.publish import apublish
from streaming.delivery.worker import Worker, get_worker
from streaming.services import Principal, Service, register


@register
class LoadService(Service):
    name = "load"
    description = "Live server load of the streaming workers (staff only)."
    staff_only = True
    http_publish = False  # snapshots come from the workers themselves
    single_topic = True
    #: A new subscriber sees the current load at once, not only from the next sample on.
    stream_defaults = {"latest": True, "delta": True}

    async def request(self, principal: Principal, action: str, data: Any) -> Any:
        if action != "snapshot":
            return await super().request(principal, action, data)
        return get_worker().meter.read()


class LoadPublisher:
    """A worker duty: publish this worker's snapshot on `load` every WORKER_HEARTBEAT seconds."""

    def __init__(self) -> None:
        self.next_at = 0.0

    async def __call__(self, worker: Worker) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + streaming_settings.WORKER_HEARTBEAT
        await apublish(LoadService.name, worker.meter.read())


def start(worker: Worker) -> None:
    worker.duties.append(LoadPublisher())
