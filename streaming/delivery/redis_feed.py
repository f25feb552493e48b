"""A worker's announcement feed from Redis: a channel per followed stream, reconnecting by itself.

On one server or a Sentinel-managed primary the feed is one pub/sub connection (SUBSCRIBE). On a
Redis Cluster announcements are sharded (SPUBLISH), so the feed holds one connection per shard
that owns a followed stream, and none to the others. Whenever a connection comes back — the same
server, a promoted replica, or a shard's new owner — the hub fills what it missed from history.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streaming.delivery import redis_clients
from streaming.delivery.history import StreamKey

if TYPE_CHECKING:
    from streaming.delivery.hub import Hub

logger = logging.getLogger(__name__)

LOST = (RedisConnectionError, RedisTimeoutError, OSError)
#: Seconds between reconnection attempts of a lost feed connection.
RETRY_SECONDS = 0.5


class Feed:
    """What both feeds share: followed channels, subscribe confirmations and delivery into the hub."""

    def __init__(self, url: str, hub: Hub) -> None:
        self.url = url
        self.hub: Hub | None = hub
        self.keys: dict[str, StreamKey] = {}
        self.confirmations: dict[str, asyncio.Future[None]] = {}
        self.reconnects = 0

    def _expect(self, channel: str, key: StreamKey) -> asyncio.Future[None]:
        self.keys[channel] = key
        confirmed = asyncio.get_running_loop().create_future()
        self.confirmations[channel] = confirmed
        return confirmed

    def _resync(self) -> None:
        self.reconnects += 1
        logger.info("Redis feed back; filling gaps from history")
        if self.hub is not None:
            asyncio.get_running_loop().create_task(self.hub.resync())

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"].decode()
        if kind in ("message", "smessage"):
            key = self.keys.get(channel)
            if key is not None and self.hub is not None:
                epoch, seq, payload = message["data"].split(b":", 2)
                self.hub.deliver(key, epoch.decode(), int(seq), payload)
        elif kind in ("subscribe", "ssubscribe"):
            confirmed = self.confirmations.pop(channel, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)

    def shards(self) -> list[str]:
        """The nodes this feed holds a connection to ("" when the client chooses)."""
        return []


class ChannelFeed(Feed):
    """One pub/sub connection for every followed stream (a server or a Sentinel-managed primary)."""

    def __init__(self, url: str, hub: Hub, client: aioredis.Redis) -> None:
        super().__init__(url, hub)
        self.client = client
        self.pubsub = client.pubsub()
        self.reader: asyncio.Task[None] | None = None

    async def listen(self, channel: str, key: StreamKey) -> None:
        confirmed = self._expect(channel, key)
        await self.pubsub.subscribe(channel)
        if self.reader is None:
            self.reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(confirmed, 10)

    async def unlisten(self, channel: str) -> None:
        self.keys.pop(channel, None)
        try:
            await self.pubsub.unsubscribe(channel)
        except LOST:
            logger.warning("Redis unavailable while unsubscribing %s", channel)

    async def _read(self) -> None:
        lost = False
        while True:
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=False, timeout=5.0)
            except LOST:
                if not lost:
                    logger.warning("Lost the Redis feed; reconnecting")
                lost = True
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if lost:
                lost = False
                self._resync()
            if message is not None:
                self._dispatch(message)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pubsub.aclose()
        await self.client.aclose()


class _Shard:
    """One cluster node's sharded pub/sub connection and the channels it carries."""

    def __init__(self, name: str, pubsub: aioredis.client.PubSub) -> None:
        self.name = name
        self.pubsub = pubsub
        self.channels: set[str] = set()
        self.reader: asyncio.Task[None] | None = None


class ShardedFeed(Feed):
    """A sharded pub/sub connection to each cluster node owning a followed stream, and no other."""

    def __init__(self, url: str, hub: Hub, cluster: aioredis.RedisCluster) -> None:
        super().__init__(url, hub)
        self.cluster = cluster
        self.links: dict[str, _Shard] = {}

    async def listen(self, channel: str, key: StreamKey) -> None:
        confirmed = self._expect(channel, key)
        await self._subscribe(channel)
        await asyncio.wait_for(confirmed, 10)

    async def _subscribe(self, channel: str) -> None:
        await self.cluster.initialize()
        node = self.cluster.get_node_from_key(channel)
        shard = self.links.get(node.name)
        if shard is None:
            client = redis_clients.node_client(node.host, node.port, self.url)
            shard = self.links[node.name] = _Shard(node.name, client.pubsub())
        shard.channels.add(channel)
        await shard.pubsub.execute_command("SSUBSCRIBE", channel)
        if shard.reader is None:
            shard.reader = asyncio.get_running_loop().create_task(self._read(shard))

    async def unlisten(self, channel: str) -> None:
        self.keys.pop(channel, None)
        for shard in list(self.links.values()):
            if channel in shard.channels:
                shard.channels.discard(channel)
                try:
                    await shard.pubsub.execute_command("SUNSUBSCRIBE", channel)
                except LOST:
                    logger.warning("Redis unavailable while unsubscribing %s", channel)
                if not shard.channels:
                    await self._drop(shard)

    async def _read(self, shard: _Shard) -> None:
        while True:
            try:
                message = await shard.pubsub.get_message(ignore_subscribe_messages=False, timeout=5.0)
            except LOST:
                logger.warning("Lost the Redis feed of shard %s; moving to the current owners", shard.name)
                await self._move(shard)
                return
            if message is None:
                continue
            if message["type"] == "sunsubscribe" and message["channel"].decode() in self.keys:
                logger.info("Shard %s gave up %s (slot moved)", shard.name, message["channel"])
                shard.channels.discard(message["channel"].decode())
                await self._resubscribe([message["channel"].decode()])
            else:
                self._dispatch(message)

    async def _move(self, shard: _Shard) -> None:
        """Subscribe the lost shard's channels wherever they live now, then fill the gap."""
        await self._drop(shard, cancel=False)
        await self._resubscribe(sorted(shard.channels))
        self._resync()

    async def _resubscribe(self, channels: list[str]) -> None:
        pending = [channel for channel in channels if channel in self.keys]
        while pending:
            try:
                for channel in list(pending):
                    await self._subscribe(channel)
                    pending.remove(channel)
            except (*LOST, RedisError):
                await asyncio.sleep(RETRY_SECONDS)

    async def _drop(self, shard: _Shard, *, cancel: bool = True) -> None:
        self.links.pop(shard.name, None)
        if cancel and shard.reader is not None:
            shard.reader.cancel()
        try:
            await shard.pubsub.aclose()
        except LOST:
            pass

    def shards(self) -> list[str]:
        return sorted(self.links)

    async def close(self) -> None:
        for shard in list(self.links.values()):
            await self._drop(shard)
        await self.cluster.aclose()
