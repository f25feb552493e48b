"""Event feeds of a worker's hub: Redis pub/sub (one subscription per followed stream) or in-process."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streaming.fanout import Hub
from streaming.history import MemoryHistory, Replay, StreamKey
from streaming.redis_history import RedisHistory

logger = logging.getLogger(__name__)


class MemoryFeed:
    """Embedded default: publishers in this process hand events straight to the hub."""

    def __init__(self, history: MemoryHistory) -> None:
        self.history = history

    async def listen(self, key: StreamKey) -> None:
        return None

    async def unlisten(self, key: StreamKey) -> None:
        return None

    async def replay(self, key: StreamKey, since_epoch: str | None, since_seq: int) -> Replay:
        if since_epoch is None:
            epoch, seq = self.history.head(key)
            return Replay(epoch, seq, None)
        replay = self.history.replay(key, since_epoch, since_seq)
        frames = [(seq, frame.encode()) for seq, frame in replay.frames] if replay.frames else replay.frames
        return Replay(replay.epoch, replay.seq, frames)

    async def close(self) -> None:
        return None


class RedisFeed:
    """One pub/sub connection per worker; a channel per followed stream; reconnects and resyncs."""

    def __init__(self, history: RedisHistory) -> None:
        self.history = history
        self.client = aioredis.Redis.from_url(history.url)
        self.pubsub = self.client.pubsub()
        self.hub: Hub | None = None
        self.keys: dict[str, StreamKey] = {}
        self.confirmations: dict[str, asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None

    def attach(self, hub: Hub) -> None:
        self.hub = hub

    async def listen(self, key: StreamKey) -> None:
        channel = self.history.channel(key)
        self.keys[channel] = key
        confirmed = asyncio.get_running_loop().create_future()
        self.confirmations[channel] = confirmed
        await self.pubsub.subscribe(channel)
        if self.reader is None:
            self.reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(confirmed, 10)

    async def unlisten(self, key: StreamKey) -> None:
        channel = self.history.channel(key)
        self.keys.pop(channel, None)
        try:
            await self.pubsub.unsubscribe(channel)
        except (RedisConnectionError, RedisTimeoutError):
            logger.warning("Redis unavailable while unsubscribing %s", channel)

    async def replay(self, key: StreamKey, since_epoch: str | None, since_seq: int) -> Replay:
        return await self.history.replay(self.client, key, since_epoch, since_seq)

    async def _read(self) -> None:
        lost = False
        while True:
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=False, timeout=5.0)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                if not lost:
                    logger.warning("Lost the Redis feed; reconnecting")
                lost = True
                await asyncio.sleep(0.5)
                continue
            if lost:
                lost = False
                logger.info("Redis feed back; filling gaps from history")
                assert self.hub is not None
                asyncio.get_running_loop().create_task(self.hub.resync())
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict) -> None:
        kind = message["type"]
        channel = message["channel"].decode()
        if kind == "message":
            key = self.keys.get(channel)
            if key is not None and self.hub is not None:
                epoch, seq, payload = message["data"].split(b":", 2)
                self.hub.deliver(key, epoch.decode(), int(seq), payload)
        elif kind == "subscribe":
            confirmed = self.confirmations.pop(channel, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.pubsub.aclose()
        await self.client.aclose()
