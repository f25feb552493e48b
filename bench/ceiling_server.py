"""The ceiling: a plain `websockets` server that serialises each event once and broadcasts it.

Subscribers connect to ws://127.0.0.1:PORT/ and send {"type":"subscribe","service":S,"topic":T};
a publisher connects to ws://127.0.0.1:PORT/publish and sends {"service":S,"topic":T,"data":{...}}
per event. Each event is numbered per stream, encoded once, and sent with `websockets.broadcast`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections import defaultdict

import websockets
from websockets.asyncio.server import ServerConnection, serve

EPOCH = "e"
Stream = tuple[str, str]

subscribers: defaultdict[Stream, set[ServerConnection]] = defaultdict(set)
sequences: defaultdict[Stream, int] = defaultdict(int)


def stream_of(message: dict[str, object]) -> Stream:
    return str(message.get("service", "bench")), str(message.get("topic") or "all")


async def serve_publisher(ws: ServerConnection) -> None:
    async for frame in ws:
        message = json.loads(frame)
        stream = stream_of(message)
        sequences[stream] += 1
        event = {
            "type": "event",
            "service": stream[0],
            "topic": stream[1],
            "epoch": EPOCH,
            "seq": sequences[stream],
            "data": message.get("data", {}),
        }
        websockets.broadcast(subscribers[stream], json.dumps(event, separators=(",", ":")))


async def serve_subscriber(ws: ServerConnection) -> None:
    joined: list[Stream] = []
    try:
        async for frame in ws:
            message = json.loads(frame)
            if message.get("type") != "subscribe":
                continue
            stream = stream_of(message)
            subscribers[stream].add(ws)
            joined.append(stream)
            reply = {"type": "subscribed", "service": stream[0], "topic": stream[1], "epoch": EPOCH}
            await ws.send(json.dumps({**reply, "seq": sequences[stream], "recovered": False}))
    finally:
        for stream in joined:
            subscribers[stream].discard(ws)


async def handler(ws: ServerConnection) -> None:
    try:
        if ws.request is not None and ws.request.path == "/publish":
            await serve_publisher(ws)
        else:
            await serve_subscriber(ws)
    except websockets.ConnectionClosed:
        pass  # clients of a benchmark leave abruptly; that is not an error here


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None, backlog=4096):
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    asyncio.run(main(parser.parse_args().port))
