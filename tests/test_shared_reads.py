"""A mass resume reads history once per position: concurrent subscribers share the hub's reads."""

from __future__ import annotations

import asyncio

from streaming.delivery.history import Replay, StreamKey
from streaming.delivery.hub import Hub
from tests.test_fanout import History, Subscriber

KEY: StreamKey = ("widgets", "all")


class SlowHistory(History):
    """A history store whose reads take their snapshot at once and answer when the test opens the gate."""

    def __init__(self, events: int) -> None:
        super().__init__()
        for _ in range(events):
            self.append()
        self.reads: list[tuple[str | None, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def replay(
        self, key: StreamKey, since_epoch: str | None, since_seq: int, max_bytes: int = 0
    ) -> Replay:
        head = len(self.payloads)
        frames = [(seq, self.payloads[seq - 1]) for seq in range(since_seq + 1, head + 1)]
        if since_epoch is not None:
            self.reads.append((since_epoch, since_seq))
        await self.gate.wait()
        return Replay("e1", head, None if since_epoch is None else frames)

    def next_event(self) -> tuple[int, bytes]:
        seq = self.append()
        return seq, self.payloads[seq - 1]


async def resume(hub: Hub, since: int) -> Subscriber:
    sub = Subscriber()
    replay, recovered = await hub.subscribe(sub, KEY, "e1", since)
    assert recovered
    hub.finish_join(sub, KEY, replay)
    return sub


async def started_hub(history: SlowHistory) -> Hub:
    hub = Hub(history, asyncio.get_running_loop())  # type: ignore[arg-type]
    await hub.subscribe(Subscriber(), KEY, None, 0)  # the stream is followed and its head known
    return hub


async def test_two_hundred_concurrent_resumes_from_one_position_read_history_once():
    history = SlowHistory(events=10)
    hub = await started_hub(history)
    history.gate.clear()
    joins = [asyncio.create_task(resume(hub, 4)) for _ in range(200)]
    await asyncio.sleep(0.01)
    history.gate.set()
    subs = await asyncio.gather(*joins)
    assert history.reads == [("e1", 4)]
    assert all(sub.seqs == [5, 6, 7, 8, 9, 10] for sub in subs)


async def test_nearby_positions_share_the_read_from_the_lowest_and_get_their_own_slice():
    history = SlowHistory(events=10)
    hub = await started_hub(history)
    history.gate.clear()
    first = asyncio.create_task(resume(hub, 3))
    await asyncio.sleep(0)
    later = [asyncio.create_task(resume(hub, since)) for since in (3, 5, 9, 10)]
    await asyncio.sleep(0.01)
    history.gate.set()
    subs = await asyncio.gather(first, *later)
    assert history.reads == [("e1", 3)]
    assert [sub.seqs for sub in subs] == [list(range(4, 11)), list(range(4, 11)), [6, 7, 8, 9, 10], [10], []]


async def test_a_read_started_before_a_delivered_event_is_not_shared():
    history = SlowHistory(events=3)
    hub = await started_hub(history)
    history.gate.clear()
    early = asyncio.create_task(resume(hub, 1))  # its snapshot ends at 3
    await asyncio.sleep(0)
    hub.deliver(KEY, "e1", *history.next_event())  # 4 reaches the hub's subscribers meanwhile
    late = asyncio.create_task(resume(hub, 1))  # so this one must read again, or miss 4
    await asyncio.sleep(0.01)
    history.gate.set()
    subs = await asyncio.gather(early, late)
    assert history.reads == [("e1", 1), ("e1", 1)]
    hub.deliver(KEY, "e1", *history.next_event())
    assert [sub.seqs for sub in subs] == [[2, 3, 4, 5], [2, 3, 4, 5]]
