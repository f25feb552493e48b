"""The production backend: numbering, history and announcements in Redis, shared by every worker.

One Lua script assigns the seq, stores the event and announces it, atomically, so announcements
leave Redis in seq order. Each worker holds one pub/sub connection with a channel per followed
stream, and reconnects and fills gaps from history by itself.

Keys per stream (service, topic), under the configured prefix:
  <prefix>:meta:<service>:<topic>  hash {epoch, seq}
  <prefix>:hist:<service>:<topic>  Redis Stream, entry id "<seq>-0", fields f=frame, t=ms
  <prefix>:chan:<service>:<topic>  pub/sub channel, message "<epoch>:<seq>:<frame>"
  <prefix>:conns:<owner>           sorted set of the owner's sessions -> expiry (connections per user)
  <prefix>:lastsession:<checksum>  the session last closed with a token (resume memory)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streaming.conf import streaming_settings
from streaming.delivery.backend import RESUME_MEMORY_SECONDS, Backend
from streaming.delivery.history import Appended, Replay, StreamKey, frame_head, new_epoch, replay_from

if TYPE_CHECKING:
    from streaming.delivery.hub import Hub

logger = logging.getLogger(__name__)

# KEYS: meta, hist, chan. ARGV: frame head, data json, new epoch, keep, min age ms, hard cap, announce.
APPEND_SCRIPT = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('DEL', KEYS[2])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local frame = ARGV[1] .. '"' .. epoch .. '","seq":' .. seq .. ',"data":' .. ARGV[2] .. '}'
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], seq .. '-0', 'f', frame, 't', now)
local keep, min_age, hard = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local len = redis.call('XLEN', KEYS[2])
if len > hard then
  redis.call('XTRIM', KEYS[2], 'MAXLEN', hard)
  len = hard
end
local n = 0
while len > keep and n < 4 do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if now - tonumber(oldest[1][2][4]) < min_age then break end
  redis.call('XDEL', KEYS[2], oldest[1][1])
  len = len - 1
  n = n + 1
end
if ARGV[7] == '1' then
  redis.call('PUBLISH', KEYS[3], epoch .. ':' .. seq .. ':' .. frame)
end
return {epoch, seq, frame}
"""

# KEYS: meta, hist. ARGV: new epoch, since epoch ('' for none), since seq.
REPLAY_SCRIPT = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'seq', 0)
  redis.call('DEL', KEYS[2])
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local frames = {}
local since = tonumber(ARGV[3])
if ARGV[2] == epoch and since < seq then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+')) do
    table.insert(frames, entry[1])
    table.insert(frames, entry[2][2])
  end
end
return {epoch, seq, frames}
"""

# KEYS[1] the owner's sorted set (session -> expiry); ARGV now, expiry, cap, session.
TAKE_SLOT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 1)
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBackend(Backend):
    """Numbering, history, announcements, slots and resume memory under one Redis URL and prefix."""

    kind = "redis"

    def __init__(self, url: str | None = None, prefix: str | None = None) -> None:
        self.url = url or streaming_settings.REDIS_URL
        self.prefix = prefix or streaming_settings.REDIS_PREFIX
        self._sync: redis.Redis | None = None
        self._clients: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        self._feed: _Feed | None = None

    @property
    def client(self) -> aioredis.Redis:
        """The async client of the running loop (workers and tests each have their own loop)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [other for other in self._clients if other.is_closed()]:
                del self._clients[old]
            client = self._clients[loop] = aioredis.Redis.from_url(self.url)
        return client

    @property
    def sync_client(self) -> redis.Redis:
        if self._sync is None:
            self._sync = redis.Redis.from_url(self.url)
        return self._sync

    def keys(self, key: StreamKey) -> list[str]:
        service, topic = key
        return [f"{self.prefix}:{kind}:{service}:{topic}" for kind in ("meta", "hist", "chan")]

    def channel(self, key: StreamKey) -> str:
        return self.keys(key)[2]

    # Events ----------------------------------------------------------------------------------

    def _append_args(self, key: StreamKey, data_json: str, announce: bool = True) -> list[Any]:
        s = streaming_settings
        return [
            frame_head(*key),
            data_json,
            new_epoch(),
            s.HISTORY_MAX_EVENTS,
            int(s.HISTORY_MIN_SECONDS * 1000),
            s.HISTORY_HARD_MAX_EVENTS,
            "1" if announce else "0",
        ]

    def append(self, key: StreamKey, data_json: str, *, announce: bool = True) -> Appended:
        """`announce=False` stores without announcing, as a lost pub/sub message would (tests)."""
        args = self._append_args(key, data_json, announce)
        result = self.sync_client.eval(APPEND_SCRIPT, 3, *self.keys(key), *args)
        return Appended(_text(result[0]), int(result[1]), _text(result[2]))

    async def aappend(self, key: StreamKey, data_json: str) -> Appended:
        result = await self.client.eval(APPEND_SCRIPT, 3, *self.keys(key), *self._append_args(key, data_json))
        return Appended(_text(result[0]), int(result[1]), _text(result[2]))

    async def replay(self, key: StreamKey, since_epoch: str | None, since_seq: int) -> Replay:
        meta, hist, _ = self.keys(key)
        epoch, seq, flat = await self.client.eval(
            REPLAY_SCRIPT, 2, meta, hist, new_epoch(), since_epoch or "", since_seq
        )
        epoch, seq = _text(epoch), int(seq)
        if since_epoch is None:
            return Replay(epoch, seq, None)
        frames = [(int(_text(flat[i]).split("-", 1)[0]), flat[i + 1]) for i in range(0, len(flat), 2)]
        return replay_from(epoch, seq, since_epoch, since_seq, frames)

    # Announcements ---------------------------------------------------------------------------

    def attach(self, hub: Hub) -> None:
        if self._feed is not None:
            self._feed.hub = None  # the previous worker's loop is gone (tests start one per loop)
        self._feed = _Feed(self, hub)

    async def listen(self, key: StreamKey) -> None:
        assert self._feed is not None, "attach() a hub first"
        await self._feed.listen(key)

    async def unlisten(self, key: StreamKey) -> None:
        if self._feed is not None:
            await self._feed.unlisten(key)

    # Slots and resume memory -----------------------------------------------------------------

    def _slot_key(self, owner: str) -> str:
        return f"{self.prefix}:conns:{owner}"

    async def take_slot(self, owner: str, session_id: str, cap: int, ttl: float) -> bool:
        now = time.time()
        admitted = await self.client.eval(
            TAKE_SLOT_SCRIPT, 1, self._slot_key(owner), now, now + ttl, cap, session_id
        )
        return bool(admitted)

    async def release_slot(self, owner: str, session_id: str) -> None:
        await self.client.zrem(self._slot_key(owner), session_id)

    async def refresh_slots(self, slots: list[tuple[str, str]], ttl: float) -> None:
        expiry = time.time() + ttl
        async with self.client.pipeline(transaction=False) as pipe:
            for owner, session_id in slots:
                pipe.zadd(self._slot_key(owner), {session_id: expiry})
                pipe.expire(self._slot_key(owner), int(ttl) + 1)
            await pipe.execute()

    def _resume_key(self, checksum: str) -> str:
        return f"{self.prefix}:lastsession:{checksum}"

    async def remember_closed(self, checksum: str, session_id: str) -> None:
        await self.client.set(self._resume_key(checksum), session_id, ex=RESUME_MEMORY_SECONDS)

    async def previous_session(self, checksum: str) -> str:
        found = await self.client.get(self._resume_key(checksum))
        return found.decode() if found else ""

    # Lifecycle -------------------------------------------------------------------------------

    def mark_stale(self, mark: str, at: float, keep: float) -> None:
        key = f"{self.prefix}:ticket-marks"
        with self.sync_client.pipeline() as pipe:
            pipe.zadd(key, {mark: at}).zremrangebyscore(key, "-inf", time.time() - keep)
            pipe.expire(key, int(keep) + 1).execute()

    async def stale_marks(self) -> dict[str, float]:
        marks = await self.client.zrange(f"{self.prefix}:ticket-marks", 0, -1, withscores=True)
        return {_text(mark): float(at) for mark, at in marks}

    async def ping(self) -> None:
        await asyncio.wait_for(self.client.ping(), 1.0)

    async def close(self) -> None:
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": redis.connection.parse_url(self.url).get("host", ""),
            "prefix": self.prefix,
        }


class _Feed:
    """One pub/sub connection per worker; a channel per followed stream; reconnects and resyncs."""

    def __init__(self, backend: RedisBackend, hub: Hub) -> None:
        self.backend = backend
        self.client = aioredis.Redis.from_url(backend.url)
        self.pubsub = self.client.pubsub()
        self.hub: Hub | None = hub
        self.keys: dict[str, StreamKey] = {}
        self.confirmations: dict[str, asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def listen(self, key: StreamKey) -> None:
        channel = self.backend.channel(key)
        self.keys[channel] = key
        confirmed = asyncio.get_running_loop().create_future()
        self.confirmations[channel] = confirmed
        await self.pubsub.subscribe(channel)
        if self.reader is None:
            self.reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(confirmed, 10)

    async def unlisten(self, key: StreamKey) -> None:
        channel = self.backend.channel(key)
        self.keys.pop(channel, None)
        try:
            await self.pubsub.unsubscribe(channel)
        except (RedisConnectionError, RedisTimeoutError):
            logger.warning("Redis unavailable while unsubscribing %s", channel)

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
                if self.hub is not None:
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
