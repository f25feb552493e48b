"""Readiness of this process for a load balancer: not draining, database and backend reachable."""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from django.db import connection

from streaming.delivery.backend import get_backend
from streaming.delivery.worker import running_worker

#: Seconds a dependency may take to answer a readiness probe before it counts as unreachable.
PROBE_TIMEOUT = 2.0


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def problems() -> list[str]:
    """Why this process should not get new connections now; empty when it is ready."""
    found = []
    worker = running_worker()
    if worker is not None and worker.draining:
        found.append("draining")
    checks = {"database": database_sync_to_async(_database_ping)(), "backend": get_backend().ping()}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, PROBE_TIMEOUT)
        except Exception:
            found.append(f"{name} unreachable")
    return found
