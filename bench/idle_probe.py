"""Idle cost of our daphne worker: RSS per connection and CPU share at N idle sockets (3 streams each).

.venv/bin/python bench/idle_probe.py [--connections 2000] [--streams 3] [--repeat 3] [--port 8801]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from probe_server import Server, connect, median, prepare
from procs import CLIENT_CORE

LOG = Path(__file__).resolve().parent / "results" / "idle_probe.log"


async def open_many(url: str, token: str, count: int, streams: int) -> list[object]:
    sockets: list[object] = []
    gate = asyncio.Semaphore(50)

    async def one() -> None:
        async with gate:
            ws, _ = await connect(url, token, streams=streams)
            sockets.append(ws)

    await asyncio.gather(*(one() for _ in range(count)))
    return sockets


def cpu_share(server: Server, seconds: float) -> float:
    before, start = server.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (server.cpu_seconds() - before) / (time.monotonic() - start)


async def measure(port: int, token: str, count: int, streams: int, idle: float) -> dict[str, float]:
    server = Server(LOG, port)
    try:
        await asyncio.sleep(3)
        rss0 = server.rss()
        cpu0 = await asyncio.to_thread(cpu_share, server, 10)
        sockets = await open_many(server.url, token, count, streams)
        await asyncio.sleep(5)
        rss1 = server.rss()
        cpu1 = await asyncio.to_thread(cpu_share, server, idle)
        for ws in sockets:
            await ws.close()  # type: ignore[attr-defined]
        return {
            "kb_per_conn": (rss1 - rss0) / count / 1024,
            "cpu_pct_idle_0": cpu0 * 100,
            "cpu_pct_idle_n": cpu1 * 100,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8801)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    LOG.parent.mkdir(exist_ok=True)
    token = prepare(1)[0]
    runs = [
        asyncio.run(measure(args.port, token, args.connections, args.streams, args.idle))
        for _ in range(args.repeat)
    ]
    for run in runs:
        print(json.dumps({k: round(v, 2) for k, v in run.items()}))
    medians = {key: round(median([run[key] for run in runs]), 2) for key in runs[0]}
    print(json.dumps({"connections": args.connections, "streams": args.streams, "median": medians}))


if __name__ == "__main__":
    main()
