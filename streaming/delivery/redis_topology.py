"""What a worker sees of Redis: each shard's primary, its replicas and replication history, and failovers.

A failover (or a restart that reloaded data) shows as a new replication history of a shard's
primary; `TopologyWatch` counts those changes between observations, for status pages and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streaming.delivery.redis_clients import AsyncClient


@dataclass(frozen=True, slots=True)
class Shard:
    """One primary as this worker reaches it."""

    primary: str
    replicas: tuple[str, ...]
    history: str  # the primary's master_replid
    promoted: bool  # it took over another primary's history (was a replica once)


@dataclass
class TopologyWatch:
    """Counts changes of (primary, history) over successive observations."""

    last: tuple[tuple[str, str], ...] = ()
    failovers: int = 0
    shards: list[Shard] = field(default_factory=list)
    error: str = ""

    def record(self, shards: list[Shard]) -> None:
        now = tuple(sorted((shard.primary, shard.history) for shard in shards))
        if self.last and now != self.last:
            self.failovers += sum(1 for pair in now if pair not in self.last)
        self.last, self.shards, self.error = now, shards, ""


def _replicas(info: dict) -> tuple[str, ...]:
    return tuple(
        f"{value['ip']}:{value['port']}"
        for key, value in sorted(info.items())
        if key.startswith("slave") and isinstance(value, dict)
    )


def _shard(address: str, info: dict) -> Shard:
    promoted = int(info.get("second_repl_offset", -1)) != -1
    return Shard(address, _replicas(info), info["master_replid"], promoted)


async def _primary_address(client: aioredis.Redis) -> str:
    pool = client.connection_pool
    if isinstance(pool, aioredis.SentinelConnectionPool):
        host, port = await pool.get_master_address()
    else:
        host, port = pool.connection_kwargs.get("host", "?"), pool.connection_kwargs.get("port", "?")
    return f"{host}:{port}"


async def observe(client: AsyncClient, watch: TopologyWatch) -> TopologyWatch:
    """Ask Redis for its shards now and record them in `watch` (an error is kept, not raised)."""
    try:
        if isinstance(client, aioredis.RedisCluster):
            await client.initialize()
            shards = []
            for node in client.get_primaries():
                info = await client.info("replication", target_nodes=node)
                shards.append(_shard(node.name, info))
        else:
            shards = [_shard(await _primary_address(client), await client.info("replication"))]
    except (RedisError, OSError) as error:
        watch.error = f"{type(error).__name__}: {error}"
        return watch
    watch.record(shards)
    return watch
