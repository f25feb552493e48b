"""Authenticated connects per second into one fresh worker: N distinct tokens (cold) vs their tickets.

Each round restarts the worker, as after a crash: its grant cache is empty, so every token costs a
database lookup, while a ticket from the previous worker's `welcome` is verified without one.

    .venv/bin/python bench/connect_probe.py [--tokens 1000] [--concurrency 50] [--repeat 3] [--port 8802]
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

LOG = Path(__file__).resolve().parent / "results" / "connect_probe.log"


async def storm(
    url: str, tokens: list[str], tickets: list[str | None], concurrency: int
) -> tuple[float, list]:
    """Connect (to welcome) and close once per token; connects/s and the tickets handed out."""
    gate = asyncio.Semaphore(concurrency)
    fresh: list[str | None] = [None] * len(tokens)

    async def one(i: int) -> None:
        async with gate:
            ws, welcome = await connect(url, tokens[i], ticket=tickets[i])
            fresh[i] = welcome.get("ticket")
            await ws.close()

    start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(len(tokens))))
    return len(tokens) / (time.monotonic() - start), fresh


async def round_trip(port: int, tokens: list[str], concurrency: int) -> dict[str, float]:
    server = Server(LOG, port)
    try:
        await asyncio.sleep(2)
        cold, tickets = await storm(server.url, tokens, [None] * len(tokens), concurrency)
    finally:
        server.stop()
    result = {"cold_per_s": cold}
    if all(tickets):
        server = Server(LOG, port)  # the worker died: its clients come back with their tickets
        try:
            await asyncio.sleep(2)
            result["ticket_per_s"], _ = await storm(server.url, tokens, tickets, concurrency)
        finally:
            server.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--port", type=int, default=8802)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    LOG.parent.mkdir(exist_ok=True)
    tokens = prepare(args.tokens)
    runs = [asyncio.run(round_trip(args.port, tokens, args.concurrency)) for _ in range(args.repeat)]
    for run in runs:
        print(json.dumps({k: round(v) for k, v in run.items()}))
    medians = {key: round(median([run[key] for run in runs if key in run])) for key in runs[0]}
    print(json.dumps({"tokens": args.tokens, "concurrency": args.concurrency, "median": medians}))


if __name__ == "__main__":
    main()
