"""Callbacks due at given times, for every connection of a worker, on one loop timer.

Each session has two deadlines (the `token_expiring` warning and the 4401 close). As loop timers
that is two handles per connection in the loop's own heap; here they are small entries in one heap
with a single loop timer armed for the earliest. Cancelled entries are skipped when they come due,
and swept out whenever the heap has doubled since the last sweep (a refresh or a close cancels
both of a session's).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(order=True, slots=True)
class Deadline:
    """One callback due at `when` (loop time); `cancel()` it if it is no longer wanted."""

    when: float
    order: int
    callback: Callable[..., object] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Deadlines:
    """The worker's deadlines: a heap and one loop timer for the earliest."""

    __slots__ = ("loop", "heap", "timer", "armed_at", "swept_at", "_order")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[Deadline] = []
        self.timer: asyncio.TimerHandle | None = None
        self.armed_at = math.inf
        #: The heap's size after the last sweep of cancelled entries.
        self.swept_at = 0
        self._order = itertools.count()

    def __len__(self) -> int:
        return sum(1 for entry in self.heap if not entry.cancelled)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Deadline:
        """Run `callback(*args)` in `delay` seconds."""
        entry = Deadline(self.loop.time() + delay, next(self._order), callback, args)
        heapq.heappush(self.heap, entry)
        if len(self.heap) > max(64, 2 * self.swept_at):
            self.heap = [live for live in self.heap if not live.cancelled]
            heapq.heapify(self.heap)
            self.swept_at = len(self.heap)
        if entry.when < self.armed_at:
            self._arm(entry.when)
        return entry

    def _arm(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.armed_at = when
        self.timer = self.loop.call_at(when, self._run)

    def _run(self) -> None:
        self.timer, self.armed_at = None, math.inf
        now = self.loop.time()
        while self.heap and self.heap[0].when <= now:
            entry = heapq.heappop(self.heap)
            if entry.cancelled:
                continue
            try:
                entry.callback(*entry.args)
            except Exception:
                logger.exception("Deadline callback %r failed", entry.callback)
        if self.heap:
            self._arm(self.heap[0].when)
