"""Bench publisher: publishes timestamped events at a fixed rate through each target's own publish path.

Driven by bench/run.py over stdin/stdout with JSON lines:
  {"cmd":"publish","rate":R,"duration":D,"step":K,"streams":[[service,topic],...]} -> {"published":N,...}
Events go round-robin over `streams`; each carries `step` and `ts` (time.time_ns() just before publishing).
Kinds: `ceiling` (a websocket to /publish), `naive` (channel-layer group_send), `ours` (HTTP POST).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PAD = "x" * 40  # brings an event frame to ~150 bytes, as in PERF-NOTES
IN_FLIGHT = 32  # concurrent publish calls, so slow calls do not stall the schedule
# A step that falls behind its schedule stops at this multiple of its duration (plus a second), with
# whatever it published: a target that cannot take the offered rate fails the step, it does not
# stretch it (a 4,096 events/s step at 200 publishes/s would otherwise last 100 s).
OVERRUN = 1.5

Publish = Callable[[str, str, dict[str, Any]], Awaitable[None]]


async def ceiling_publisher(url: str) -> Publish:
    from websockets.asyncio.client import connect

    ws = await connect(url.rstrip("/") + "/publish", compression=None)

    async def publish(service: str, topic: str, data: dict[str, Any]) -> None:
        await ws.send(json.dumps({"service": service, "topic": topic, "data": data}))

    return publish


async def naive_publisher(redis_url: str, prefix: str, layer_kind: str = "core") -> Publish:
    sys.path.insert(0, str(Path(__file__).with_name("naive_channels")))
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer
    from groups import group_name

    backend = RedisPubSubChannelLayer if layer_kind == "pubsub" else RedisChannelLayer
    layer = backend(hosts=[redis_url], prefix=prefix + ":")
    seqs: defaultdict[tuple[str, str], int] = defaultdict(int)

    async def publish(service: str, topic: str, data: dict[str, Any]) -> None:
        seqs[service, topic] += 1
        event = {
            "type": "event",
            "service": service,
            "topic": topic,
            "epoch": "e",
            "seq": seqs[service, topic],
        }
        await layer.group_send(
            group_name(service, topic), {"type": "stream.event", "event": {**event, "data": data}}
        )

    return publish


class HttpPool:
    """Keep-alive HTTP/1.1 connections for POSTing events; small and dependency-free on purpose."""

    def __init__(self, base_url: str, token: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes) -> int:
        conn = self.idle.pop() if self.idle else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        try:
            status, headers = await read_head(reader)
            await read_body(reader, headers)
        except Exception:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append(conn)
        return status


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status = int((await reader.readline()).split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The response body, whole: daphne answers with chunked transfer encoding when no length is set."""
    if headers.get("transfer-encoding", "").lower() != "chunked":
        return await reader.readexactly(int(headers.get("content-length", "0")))
    chunks = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        chunks.append((await reader.readexactly(size + 2))[:-2])
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # trailers
    return b"".join(chunks)


async def ours_publisher(base_url: str, token: str) -> Publish:
    pool = HttpPool(base_url, token)

    async def publish(service: str, topic: str, data: dict[str, Any]) -> None:
        body = {"data": data} if topic == "all" else {"topic": topic, "data": data}
        status = await pool.post(f"/api/streams/{service}/events", json.dumps(body).encode())
        if status != 202:
            raise RuntimeError(f"publish answered HTTP {status}")

    return publish


async def run_step(publish: Publish, cmd: dict[str, Any]) -> dict[str, Any]:
    rate, duration, streams = float(cmd["rate"]), float(cmd["duration"]), cmd["streams"]
    total = max(1, round(rate * duration))
    slots = asyncio.Semaphore(IN_FLIGHT)
    errors: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        service, topic = streams[i % len(streams)]
        try:
            await publish(service, topic, {"pad": PAD, "step": cmd["step"], "ts": time.time_ns()})
        except Exception as exc:  # a failed publish is counted and reported, the step goes on
            errors.append(repr(exc))
        finally:
            slots.release()

    start = time.monotonic()
    deadline = start + OVERRUN * duration + 1.0
    for i in range(total):
        if time.monotonic() > deadline:
            break
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - start
    return {
        "offered": total,
        "published": len(tasks) - len(errors),
        "errors": len(errors),
        "first_error": errors[:1],
        "elapsed_s": elapsed,
    }


async def make_publisher(args: argparse.Namespace) -> Publish:
    if args.kind == "ceiling":
        return await ceiling_publisher(args.url)
    if args.kind == "naive":
        return await naive_publisher(args.redis_url, args.prefix, args.layer)
    return await ours_publisher(args.url, os.environ["BENCH_TOKEN"])


async def main(args: argparse.Namespace) -> None:
    publish = await make_publisher(args)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "close":
            print(json.dumps({"closed": True}), flush=True)
            break
        print(json.dumps(await run_step(publish, cmd)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["ceiling", "naive", "ours"])
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="ceiling ws:// or ours http:// base URL")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="bench-naive", help="naive channel-layer prefix")
    parser.add_argument("--layer", choices=["core", "pubsub"], default="core", help="naive channel layer")
    asyncio.run(main(parser.parse_args()))
