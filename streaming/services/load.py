"""The `load` service: live load snapshots of every worker, for staff."""

from __future__ import annotations

import time
from typing import Any

from streaming.protocol import BAD_REQUEST, ProtocolError
from streaming.services import Principal, Service, register


@register
class LoadService(Service):
    name = "load"
    description = "Live server load of the streaming workers (staff only)."
    staff_only = True

    def topic_for(self, principal: Principal, topic: str | None) -> str:
        if topic not in (None, self.default_topic):
            raise ProtocolError(BAD_REQUEST, "The load service has one topic, 'all'.")
        return self.default_topic

    async def request(self, principal: Principal, action: str, data: Any) -> Any:
        if action != "snapshot":
            return await super().request(principal, action, data)
        from streaming.load import snapshot
        from streaming.worker import get_worker

        return snapshot(get_worker(), time.monotonic())
