"""The publish API used by domain code, the HTTP endpoint and the command (sync and async)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from streaming import services
from streaming.history import Appended, MemoryHistory
from streaming.protocol import UNKNOWN_SERVICE, ProtocolError
from streaming.store import get_store


@dataclass(frozen=True, slots=True)
class Published:
    service: str
    topic: str
    epoch: str
    seq: int


def _prepare(service: str, topic: str | None, data: Any) -> tuple[tuple[str, str], str]:
    svc = services.get(service)
    if svc is None:
        raise ProtocolError(UNKNOWN_SERVICE, f"Unknown service {service[:40]!r}.")
    data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (service, topic or svc.default_topic), data_json


def _announce_locally(key: tuple[str, str], appended: Appended) -> None:
    """Embedded mode: hand the event to this process's hub, from whatever thread published it."""
    from streaming.worker import running_worker

    worker = running_worker()
    if worker is None:
        return
    payload = appended.frame.encode()
    args = (key, appended.epoch, appended.seq, payload)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is worker.loop:
        worker.hub.deliver(*args)
    else:
        worker.loop.call_soon_threadsafe(worker.hub.deliver, *args)


def publish(service: str, data: Any, *, topic: str | None = None) -> Published:
    """Number, store and fan out one event; returns its position. Safe from any thread."""
    key, data_json = _prepare(service, topic, data)
    store = get_store()
    appended = store.append(key, data_json)
    if isinstance(store, MemoryHistory):
        _announce_locally(key, appended)
    return Published(key[0], key[1], appended.epoch, appended.seq)


async def apublish(service: str, data: Any, *, topic: str | None = None) -> Published:
    """Async variant of `publish` for code running on the event loop."""
    key, data_json = _prepare(service, topic, data)
    store = get_store()
    if isinstance(store, MemoryHistory):
        appended = store.append(key, data_json)
        _announce_locally(key, appended)
    else:
        from streaming.worker import get_worker

        appended = await store.aappend(get_worker().redis_client(), key, data_json)
    return Published(key[0], key[1], appended.epoch, appended.seq)


async def ahead(service: str, topic: str) -> tuple[str, int]:
    """The (epoch, seq) of the newest event of a stream, as stored."""
    from streaming.worker import get_worker

    replay = await get_worker().feed.replay((service, topic), None, 0)
    return replay.epoch, replay.seq
