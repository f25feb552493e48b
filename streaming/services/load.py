"""The `load` service: every worker publishes its load snapshot periodically, for staff."""

from __future__ import annotations

import time
from typing import Any

from streaming.conf import streaming_settings
from streaming.load import LoadMeter
from streaming.publish import apublish
from streaming.services import Principal, Service, register
from streaming.worker import Worker, get_worker, on_start


@register
class LoadService(Service):
    name = "load"
    description = "Live server load of the streaming workers (staff only)."
    staff_only = True
    single_topic = True

    async def request(self, principal: Principal, action: str, data: Any) -> Any:
        if action != "snapshot":
            return await super().request(principal, action, data)
        meter: LoadPublisher = get_worker().load_publisher  # type: ignore[attr-defined]
        return meter.meter.latest or meter.meter.read()


class LoadPublisher:
    """A worker duty: publish this worker's snapshot on `load` every WORKER_HEARTBEAT seconds."""

    def __init__(self, worker: Worker) -> None:
        self.meter = LoadMeter(worker)
        self.next_at = 0.0

    async def __call__(self, worker: Worker) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + streaming_settings.WORKER_HEARTBEAT
        await apublish(LoadService.name, self.meter.read())


def _start(worker: Worker) -> None:
    worker.load_publisher = LoadPublisher(worker)  # type: ignore[attr-defined]
    worker.duties.append(worker.load_publisher)  # type: ignore[attr-defined]


on_start(_start)
