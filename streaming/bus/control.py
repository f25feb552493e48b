"""The control bus: admin and auth changes reach every worker through the channel layer.

Each worker reads one channel-layer channel in the group below (not one per connection) and runs
the named operation on its own connections. Operations are registered by the layers that own what
they act on (`streaming.sessions.operations`); the bus only carries them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from streaming.delivery.worker import Worker

logger = logging.getLogger(__name__)

GROUP = "streaming.bus.control"

Operation = Callable[[Worker, dict[str, Any]], Awaitable[None] | None]

_operations: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    """Register the handler of control operation `name`."""

    def decorator(func: Operation) -> Operation:
        _operations[name] = func
        return func

    return decorator


async def abroadcast(op: str, **fields: Any) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(GROUP, {"type": "streaming.bus.control", "op": op, **fields})


def broadcast(op: str, **fields: Any) -> None:
    """Send a control operation to every worker (from sync code: views, signals, commands)."""
    async_to_sync(abroadcast)(op, **fields)


async def apply(worker: Worker, op: str, fields: dict[str, Any]) -> None:
    handler = _operations.get(op)
    if handler is None:
        logger.warning("Unknown control operation %r", op)
        return
    result = handler(worker, fields)
    if asyncio.iscoroutine(result):
        await result


async def listen(worker: Worker) -> None:
    """Read this worker's control channel for as long as the worker runs."""
    layer = get_channel_layer()
    if layer is None:
        return
    channel = await layer.new_channel("streaming.delivery.worker.")
    await layer.group_add(GROUP, channel)
    while True:
        try:
            message = await layer.receive(channel)
            await apply(worker, message["op"], message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Control message failed")
            await asyncio.sleep(0.2)


def start(worker: Worker) -> None:
    worker.spawn(listen(worker))
