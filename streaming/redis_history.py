"""Stream numbering and history in Redis: one Lua script assigns seq, stores and announces atomically.

Keys per stream (service, topic), under the configured prefix:
  <prefix>:meta:<service>:<topic>  hash {epoch, seq}
  <prefix>:hist:<service>:<topic>  Redis Stream, entry id "<seq>-0", fields f=frame, t=ms
  <prefix>:chan:<service>:<topic>  pub/sub channel, message "<epoch>:<seq>:<frame>"
Because numbering, storing and PUBLISH happen in one script, announcements leave Redis in seq order.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from streaming.history import Appended, Replay, StreamKey, frame_head, new_epoch, replay_from

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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisHistory:
    """Numbering and history for one Redis URL and key prefix, usable from sync and async code."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._sync: redis.Redis | None = None

    def keys(self, key: StreamKey) -> list[str]:
        service, topic = key
        return [f"{self.prefix}:{kind}:{service}:{topic}" for kind in ("meta", "hist", "chan")]

    def channel(self, key: StreamKey) -> str:
        return self.keys(key)[2]

    def _append_args(self, key: StreamKey, data_json: str, announce: bool) -> list[Any]:
        from streaming.conf import streaming_settings as s

        return [
            frame_head(*key),
            data_json,
            new_epoch(),
            s.HISTORY_MAX_EVENTS,
            int(s.HISTORY_MIN_SECONDS * 1000),
            s.HISTORY_HARD_MAX_EVENTS,
            "1" if announce else "0",
        ]

    @property
    def sync_client(self) -> redis.Redis:
        if self._sync is None:
            self._sync = redis.Redis.from_url(self.url)
        return self._sync

    def append(self, key: StreamKey, data_json: str, *, announce: bool = True) -> Appended:
        result = self.sync_client.eval(
            APPEND_SCRIPT, 3, *self.keys(key), *self._append_args(key, data_json, announce)
        )
        return Appended(_text(result[0]), int(result[1]), _text(result[2]))

    async def aappend(self, client: aioredis.Redis, key: StreamKey, data_json: str) -> Appended:
        result = await client.eval(
            APPEND_SCRIPT, 3, *self.keys(key), *self._append_args(key, data_json, True)
        )
        return Appended(_text(result[0]), int(result[1]), _text(result[2]))

    async def replay(
        self, client: aioredis.Redis, key: StreamKey, since_epoch: str | None, since_seq: int
    ) -> Replay:
        meta, hist, _ = self.keys(key)
        epoch, seq, flat = await client.eval(
            REPLAY_SCRIPT, 2, meta, hist, new_epoch(), since_epoch or "", since_seq
        )
        epoch, seq = _text(epoch), int(seq)
        if since_epoch is None:
            return Replay(epoch, seq, None)
        frames = [(int(_text(flat[i]).split("-", 1)[0]), flat[i + 1]) for i in range(0, len(flat), 2)]
        return replay_from(epoch, seq, since_epoch, since_seq, frames)
