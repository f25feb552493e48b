"""Session deadlines run in time order on one loop timer; cancelled ones never run."""

from __future__ import annotations

import asyncio

from streaming.delivery.deadlines import Deadlines


async def test_deadlines_run_in_order_on_one_timer_and_cancelled_ones_do_not_run():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    ran: list[str] = []
    deadlines.call_later(0.06, ran.append, "late")
    deadlines.call_later(0.02, ran.append, "early")
    dropped = deadlines.call_later(0.04, ran.append, "cancelled")
    timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
    deadlines.call_later(0.08, ran.append, "last")
    assert len(loop._scheduled) == timers_before  # type: ignore[attr-defined]
    dropped.cancel()
    await asyncio.sleep(0.15)
    assert ran == ["early", "late", "last"]
    assert len(deadlines) == 0


async def test_cancelled_deadlines_are_swept_as_sessions_refresh():
    deadlines = Deadlines(asyncio.get_running_loop())
    for _ in range(1000):
        deadlines.call_later(3600, print).cancel()
    assert len(deadlines.heap) <= 128
