"""The hub's hand-over from replay to live when this worker's feed lags behind the history."""

from __future__ import annotations

import asyncio
import json

from streaming.delivery.history import Replay, StreamKey
from streaming.delivery.hub import Hub

KEY: StreamKey = ("widgets", "all")


class History:
    """A feed whose history is written at once while live announcements arrive when the test says."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def append(self) -> int:
        self.payloads.append(json.dumps({"seq": len(self.payloads) + 1}).encode())
        return len(self.payloads)

    async def listen(self, key: StreamKey) -> None:
        return None

    async def unlisten(self, key: StreamKey) -> None:
        return None

    async def replay(
        self, key: StreamKey, since_epoch: str | None, since_seq: int, max_bytes: int = 0
    ) -> Replay:
        head = len(self.payloads)
        if since_epoch is None:
            return Replay("e1", head, None)
        return Replay("e1", head, [(seq, self.payloads[seq - 1]) for seq in range(since_seq + 1, head + 1)])


class Subscriber:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def deliver(self, payload: bytes, frame: bytes) -> None:
        self.seqs.append(json.loads(payload)["seq"])

    def send_message(self, message: dict[str, object]) -> None:
        raise AssertionError(f"unexpected {message}")


async def join(hub: Hub, since: int | None) -> Subscriber:
    sub = Subscriber()
    replay, _ = await hub.subscribe(sub, KEY, None if since is None else "e1", since or 0)
    hub.finish_join(sub, KEY, replay)
    return sub


def announce(hub: Hub, history: History, seq: int) -> None:
    hub.deliver(KEY, "e1", seq, history.payloads[seq - 1])


async def test_a_resumed_subscriber_gets_no_duplicate_when_the_feed_lags_the_history():
    history = History()
    hub = Hub(history, asyncio.get_running_loop())
    first = await join(hub, None)
    for _ in range(3):
        history.append()
    announce(hub, history, 1)  # 2 and 3 are stored but still on their way to this worker
    resumed = await join(hub, 1)  # a client back from another worker, which had seen 1
    ahead = await join(hub, 3)  # and one that had already seen 3 there
    for seq in (2, 3, history.append(), history.append()):
        announce(hub, history, seq)
    assert first.seqs == [1, 2, 3, 4, 5]
    assert resumed.seqs == [2, 3, 4, 5]
    assert ahead.seqs == [4, 5]
    await hub.unsubscribe(ahead, KEY)
    assert hub.subscriber_count() == 2
