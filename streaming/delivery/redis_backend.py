"""The production backend: numbering, history and announcements in Redis, shared by every worker.

One Lua script assigns the seq, stores the event and announces it, atomically, so announcements
leave Redis in seq order. Each worker follows announcements through `redis_feed`, which reconnects
and fills gaps from history by itself. Clients come from `redis_clients` (one server, Sentinel or
Cluster, from the URL).

Failover safety: Redis replicates asynchronously, so a promoted replica may lack the last events
of a stream that clients already received, and would number the next events with their seqs
again. Each stream therefore remembers the replication history (the primary's `master_replid`)
its numbering was written under; a script that finds another one — after a failover, or a restart
that reloaded older data — starts a new epoch, and clients refetch instead of silently missing.

Keys per stream (service, topic), under the configured prefix; the `{service:topic}` hash tag puts
all three in one Cluster slot, so the scripts run on one shard:
  <prefix>:meta:{<service>:<topic>}  hash {epoch, seq, rid, bytes}
  <prefix>:hist:{<service>:<topic>}  Redis Stream, entry id "<seq>-0", fields f=frame, t=ms,
                                     c=bytes of every frame appended so far, this one included
  <prefix>:chan:{<service>:<topic>}  (sharded) pub/sub channel, message "<epoch>:<seq>:<frame>"
  <prefix>:presence:{<service>:<topic>}  sorted set of followers "<session>:<label>" -> expiry
  <prefix>:presv:{<service>:<topic>}  counter bumped whenever those followers change
  <prefix>:conns:<owner>           sorted set of the owner's sessions -> expiry (connections per user)
  <prefix>:lastsession:<checksum>  the session last closed with a token (resume memory)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis

from streaming.conf import streaming_settings
from streaming.delivery import redis_clients
from streaming.delivery.backend import RESUME_MEMORY_SECONDS, Backend
from streaming.delivery.history import Appended, Replay, StreamKey, frame_head, new_epoch, replay_from
from streaming.delivery.options import stream_options
from streaming.delivery.redis_feed import ChannelFeed, ShardedFeed
from streaming.delivery.redis_topology import TopologyWatch, observe

if TYPE_CHECKING:
    from streaming.delivery.hub import Hub

# Starts a new epoch unless the stream's numbering was written under this replication history.
# A stream it creates expires after `ttl` seconds unless an append keeps it (idle streams go).
# KEYS: meta, hist.
EPOCH_GUARD = """
local function guard(new_epoch, ttl)
  local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
  if redis.call('HGET', KEYS[1], 'rid') ~= rid then
    redis.call('DEL', KEYS[1], KEYS[2])
    redis.call('HSET', KEYS[1], 'epoch', new_epoch, 'seq', 0, 'rid', rid)
    redis.call('EXPIRE', KEYS[1], ttl)
  end
  return redis.call('HGET', KEYS[1], 'epoch')
end
"""

# KEYS: meta, hist, chan. ARGV: frame head, data json, new epoch, keep, min age ms, hard cap,
# announcing command (PUBLISH, SPUBLISH on a Cluster, or "" for none), byte cap (0 = none), idle
# expiry in seconds. The byte cap drops at most 16 of the oldest events per append, never the newest.
APPEND_SCRIPT = (
    EPOCH_GUARD
    + """
local epoch = guard(ARGV[3], ARGV[9])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local frame = ARGV[1] .. '"' .. epoch .. '","seq":' .. seq .. ',"data":' .. ARGV[2] .. '}'
local total = redis.call('HINCRBY', KEYS[1], 'bytes', #frame)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], seq .. '-0', 'f', frame, 't', now, 'c', total)
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
local cap = tonumber(ARGV[8])
n = 0
while cap > 0 and len > 1 and n < 16 do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  local c = tonumber(oldest[2][6])
  if not c or total - c + #oldest[2][2] <= cap then break end
  redis.call('XDEL', KEYS[2], oldest[1])
  len = len - 1
  n = n + 1
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
redis.call('EXPIRE', KEYS[2], ARGV[9])
if ARGV[7] ~= '' then
  redis.call(ARGV[7], KEYS[3], epoch .. ':' .. seq .. ':' .. frame)
end
return {epoch, seq, frame}
"""
)

# KEYS: meta, hist. ARGV: new epoch, since epoch ('' for none), since seq, idle expiry, byte budget
# (0 = none), page size. History is read in pages of XRANGE COUNT; once the frames pass the budget
# reading stops and the answer is {epoch, seq, false}: not recoverable, the subscriber refetches.
REPLAY_SCRIPT = (
    EPOCH_GUARD
    + """
local epoch = guard(ARGV[1], ARGV[4])
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local frames = {}
local from, budget, page_size = tonumber(ARGV[3]) + 1, tonumber(ARGV[5]), tonumber(ARGV[6])
local used = 0
if ARGV[2] == epoch and from <= seq then
  repeat
    local page = redis.call('XRANGE', KEYS[2], from .. '-0', seq .. '-0', 'COUNT', page_size)
    for _, entry in ipairs(page) do
      used = used + #entry[2][2]
      if budget > 0 and used > budget then return {epoch, seq, false} end
      table.insert(frames, entry[1])
      table.insert(frames, entry[2][2])
    end
    if #page > 0 then from = tonumber(string.match(page[#page][1], '^(%d+)')) + 1 end
  until #page < page_size
end
return {epoch, seq, frames}
"""
)

#: Events read per XRANGE while replaying history to a subscriber.
REPLAY_PAGE = 500

# KEYS[1] the owner's sorted set (session -> expiry); ARGV now, expiry, cap, session.
TAKE_SLOT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 1)
return 1
"""


# KEYS: followers, version. ARGV: member, expiry, seconds to keep the keys.
PRESENCE_JOIN_SCRIPT = """
if redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) == 1 then redis.call('INCR', KEYS[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
"""

# KEYS: followers, version. ARGV: member.
PRESENCE_LEAVE_SCRIPT = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then redis.call('INCR', KEYS[2]) end
"""

# KEYS: followers, version. ARGV: now. Drops expired followers (a killed worker's) and answers the version.
PRESENCE_VERSION_SCRIPT = """
if redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) > 0 then
  return redis.call('INCR', KEYS[2])
end
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""


def idle_expiry(history_min_seconds: float) -> int:
    """Seconds a stream's keys live after its last event: at least the history's minimum age."""
    return int(max(history_min_seconds, streaming_settings.STREAM_IDLE_EXPIRY_SECONDS))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBackend(Backend):
    """Numbering, history, announcements, slots and resume memory under one Redis URL and prefix."""

    kind = "redis"

    def __init__(self, url: str | None = None, prefix: str | None = None) -> None:
        self.url = url or streaming_settings.REDIS_URL
        self.prefix = prefix or streaming_settings.REDIS_PREFIX
        self.servers = redis_clients.parse(self.url)
        self._sync: redis_clients.SyncClient | None = None
        self._clients: dict[asyncio.AbstractEventLoop, redis_clients.AsyncClient] = {}
        self._feed: ChannelFeed | ShardedFeed | None = None
        self.announce = "SPUBLISH" if self.servers.is_cluster else "PUBLISH"
        self.watch = TopologyWatch()

    @property
    def client(self) -> redis_clients.AsyncClient:
        """The async client of the running loop (workers and tests each have their own loop)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [other for other in self._clients if other.is_closed()]:
                del self._clients[old]
            client = self._clients[loop] = redis_clients.async_client(self.url)
        return client

    @property
    def sync_client(self) -> redis_clients.SyncClient:
        if self._sync is None:
            self._sync = redis_clients.sync_client(self.url)
        return self._sync

    def keys(self, key: StreamKey) -> list[str]:
        service, topic = key
        return [f"{self.prefix}:{kind}:{{{service}:{topic}}}" for kind in ("meta", "hist", "chan")]

    def channel(self, key: StreamKey) -> str:
        return self.keys(key)[2]

    # Events ----------------------------------------------------------------------------------

    def _append_args(self, key: StreamKey, data_json: str, announce: bool = True) -> list[Any]:
        options = stream_options(key[0])
        return [
            frame_head(*key),
            data_json,
            new_epoch(),
            options.history_max_events,
            int(options.history_min_seconds * 1000),
            streaming_settings.HISTORY_HARD_MAX_EVENTS,
            self.announce if announce else "",
            options.history_max_bytes,
            idle_expiry(options.history_min_seconds),
        ]

    def append(self, key: StreamKey, data_json: str, *, announce: bool = True) -> Appended:
        """`announce=False` stores without announcing, as a lost pub/sub message would (tests)."""
        args = self._append_args(key, data_json, announce)
        result = self.sync_client.eval(APPEND_SCRIPT, 3, *self.keys(key), *args)
        return Appended(_text(result[0]), int(result[1]), _text(result[2]))

    async def aappend(self, key: StreamKey, data_json: str) -> Appended:
        result = await self.client.eval(APPEND_SCRIPT, 3, *self.keys(key), *self._append_args(key, data_json))
        return Appended(_text(result[0]), int(result[1]), _text(result[2]))

    async def replay(
        self, key: StreamKey, since_epoch: str | None, since_seq: int, max_bytes: int = 0
    ) -> Replay:
        meta, hist, _ = self.keys(key)
        expiry = idle_expiry(stream_options(key[0]).history_min_seconds)
        args = (new_epoch(), since_epoch or "", since_seq, expiry, max_bytes, REPLAY_PAGE)
        epoch, seq, flat = await self.client.eval(REPLAY_SCRIPT, 2, meta, hist, *args)
        epoch, seq = _text(epoch), int(seq)
        if since_epoch is None or flat is None:  # Lua false arrives as None: over the byte budget
            return Replay(epoch, seq, None)
        frames = [(int(_text(flat[i]).split("-", 1)[0]), flat[i + 1]) for i in range(0, len(flat), 2)]
        return replay_from(epoch, seq, since_epoch, since_seq, frames)

    # Announcements ---------------------------------------------------------------------------

    def attach(self, hub: Hub) -> None:
        if self._feed is not None:
            self._feed.hub = None  # the previous worker's loop is gone (tests start one per loop)
        client = redis_clients.async_client(self.url)
        if isinstance(client, aioredis.RedisCluster):
            self._feed = ShardedFeed(self.url, hub, client)
        else:
            self._feed = ChannelFeed(self.url, hub, client)

    async def listen(self, key: StreamKey) -> None:
        assert self._feed is not None, "attach() a hub first"
        await self._feed.listen(self.channel(key), key)

    async def unlisten(self, key: StreamKey) -> None:
        if self._feed is not None:
            await self._feed.unlisten(self.channel(key))

    @property
    def feed(self) -> ChannelFeed | ShardedFeed | None:
        """This worker's announcement feed, once a hub is attached."""
        return self._feed

    # Slots ----------------------------------------------------------------------------------------

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

    # Presence --------------------------------------------------------------------------------

    def _presence_keys(self, key: StreamKey) -> list[str]:
        service, topic = key
        return [f"{self.prefix}:{kind}:{{{service}:{topic}}}" for kind in ("presence", "presv")]

    async def presence_join(self, key: StreamKey, member: str, ttl: float) -> None:
        expiry = time.time() + ttl
        await self.client.eval(
            PRESENCE_JOIN_SCRIPT, 2, *self._presence_keys(key), member, expiry, int(ttl) + 1
        )

    async def presence_leave(self, key: StreamKey, member: str) -> None:
        await self.client.eval(PRESENCE_LEAVE_SCRIPT, 2, *self._presence_keys(key), member)

    async def presence_refresh(self, members: list[tuple[StreamKey, str]], ttl: float) -> None:
        expiry = time.time() + ttl
        async with self.client.pipeline(transaction=False) as pipe:
            for key, member in members:
                followers, version = self._presence_keys(key)
                pipe.zadd(followers, {member: expiry})
                pipe.expire(followers, int(ttl) + 1)
                pipe.expire(version, int(ttl) + 1)
            await pipe.execute()

    async def presence_version(self, key: StreamKey) -> int:
        return int(await self.client.eval(PRESENCE_VERSION_SCRIPT, 2, *self._presence_keys(key), time.time()))

    async def presence_members(self, key: StreamKey) -> list[str]:
        found = await self.client.zrangebyscore(self._presence_keys(key)[0], time.time(), "+inf")
        return [_text(member) for member in found]

    # Resume memory ---------------------------------------------------------------------------

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
        nodes = [f"{host}:{port}" for host, port in self.servers.nodes]
        return {
            "kind": self.kind,
            "url": ",".join(nodes) or redis.connection.parse_url(self.url).get("host", ""),
            "topology": self.servers.kind,
            "prefix": self.prefix,
        }

    async def topology(self) -> dict[str, Any]:
        watch = await observe(self.client, self.watch)
        return {
            "topology": self.servers.kind,
            "shards": [asdict(shard) for shard in watch.shards],
            "failovers": watch.failovers,
            "error": watch.error,
            "feed_reconnects": self._feed.reconnects if self._feed else 0,
            "feed_shards": self._feed.shards() if self._feed else [],
        }
