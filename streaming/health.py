"""Readiness of this process for a load balancer: not draining, database and Redis reachable."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.db import connection

from streaming.conf import streaming_settings
from streaming.worker import running_worker

#: Seconds a dependency may take to answer a readiness probe before it counts as unreachable.
PROBE_TIMEOUT = 2.0


def _database_ping() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _redis_ping(url: str) -> None:
    client = aioredis.from_url(url, socket_timeout=PROBE_TIMEOUT, socket_connect_timeout=PROBE_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def problems() -> list[str]:
    """Why this process should not get new connections now; empty when it is ready."""
    found = []
    worker = running_worker()
    if worker is not None and worker.draining:
        found.append("draining")
    checks = {"database": database_sync_to_async(_database_ping)()}
    if streaming_settings.REDIS_URL:
        checks["redis"] = _redis_ping(streaming_settings.REDIS_URL)
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, PROBE_TIMEOUT)
        except Exception:
            found.append(f"{name} unreachable")
    return found
