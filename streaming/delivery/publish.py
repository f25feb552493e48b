"""The publish API used by domain code, the HTTP endpoint and the command (sync and async)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from streaming import services
from streaming.delivery.backend import get_backend
from streaming.delivery.history import StreamKey
from streaming.wire.protocol import UNKNOWN_SERVICE, ProtocolError


@dataclass(frozen=True, slots=True)
class Published:
    service: str
    topic: str
    epoch: str
    seq: int


#: Events published from this process since it started, per service and per (service, publisher);
#: the publisher is who published over HTTP ("user:<id>", "app:<id>") or "" for domain code.
published: Counter[str] = Counter()
published_by: Counter[tuple[str, str]] = Counter()


def _count(service: str, publisher: str) -> None:
    published[service] += 1
    published_by[(service, publisher)] += 1


def _prepare(service: str, topic: str | None, data: Any) -> tuple[StreamKey, str]:
    svc = services.get(service)
    if svc is None:
        raise ProtocolError(UNKNOWN_SERVICE, f"Unknown service {service[:40]!r}.")
    data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (service, topic or svc.default_topic), data_json


def publish(service: str, data: Any, *, topic: str | None = None, publisher: str = "") -> Published:
    """Number, store and fan out one event; returns its position. Safe from any thread."""
    key, data_json = _prepare(service, topic, data)
    appended = get_backend().append(key, data_json)
    _count(service, publisher)
    return Published(key[0], key[1], appended.epoch, appended.seq)


async def apublish(service: str, data: Any, *, topic: str | None = None, publisher: str = "") -> Published:
    """Async variant of `publish` for code running on the event loop."""
    key, data_json = _prepare(service, topic, data)
    appended = await get_backend().aappend(key, data_json)
    _count(service, publisher)
    return Published(key[0], key[1], appended.epoch, appended.seq)


async def ahead(service: str, topic: str) -> tuple[str, int]:
    """The (epoch, seq) of the newest event of a stream, as stored."""
    replay = await get_backend().replay((service, topic), None, 0)
    return replay.epoch, replay.seq
