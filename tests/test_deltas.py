"""Fossil deltas: one delta per event in the hub, applied by the Python client to equal the full payloads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.client.streams import Stream
from streaming.delivery.history import StreamKey, build_frame, frame_head
from streaming.delivery.hub import Hub
from streaming.wire import delta, messages
from tests import test_fanout as fanout

KEY: StreamKey = ("widgets", "all")
HEAD = frame_head(*KEY)


class History(fanout.History):
    """A one-epoch history of real event frames carrying `data`."""

    def append(self, data: object = None) -> int:
        seq = len(self.payloads) + 1
        self.payloads.append(build_frame(HEAD, "e1", seq, json.dumps(data, ensure_ascii=False)).encode())
        return seq


class Client:
    """A hub subscriber that reads its frames the way the Python client does."""

    def __init__(self) -> None:
        self.stream = Stream("widgets", None, delta=True)
        self.data: list[object] = []
        self.frames: list[bytes] = []
        #: Per join: the `subscribed` reply and the frames after it, as a client reads them.
        self.segments: list[dict[str, Any]] = []

    def deliver(self, payload: bytes, frame: bytes) -> None:
        self.frames.append(payload)
        self.segments[-1]["frames"].append(payload.decode())
        msg, text = self.stream.expand(json.loads(payload), payload)
        reset, event = self.stream.on_event(msg)
        assert reset is None, reset
        if event is not None:
            self.stream.text = text
            self.data.append(event.data)

    def send_message(self, message: dict[str, object]) -> None:
        raise AssertionError(f"unexpected {message}")

    async def join(self, hub: Hub) -> None:
        position = self.stream.position
        replay, recovered = await hub.subscribe(
            self, KEY, position and position.epoch, position.seq if position else 0, delta=True
        )
        reply = messages.subscribed(*KEY, replay.epoch, replay.seq, recovered, delta=delta.FOSSIL)
        self.stream.on_subscribed(dict(reply))
        self.segments.append({"subscribed": reply, "frames": []})
        hub.finish_join(self, KEY, replay)

    def deltas(self) -> int:
        return sum(b'"delta":' in frame for frame in self.frames)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


record = st.fixed_dictionaries(
    {"id": st.integers(0, 50), "name": st.text(max_size=40), "price": st.integers(0, 10**6)},
    optional={"note": st.text(max_size=200), "tags": st.lists(st.sampled_from(["a", "bé", "c"]), max_size=4)},
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), record),
        st.tuples(st.just("unannounced"), record),  # the feed misses it: the hub fills the gap
        st.tuples(st.just("resume"), st.none()),  # the client leaves and resubscribes with since
    ),
    max_size=40,
)


async def run(ops: list[tuple[str, object]]) -> tuple[list[object], Client]:
    history = History()
    hub = Hub(history, asyncio.get_running_loop())
    client = Client()
    await client.join(hub)
    await settle()
    published: list[object] = []
    for op, data in ops:
        if op == "resume":
            await hub.unsubscribe(client, KEY)
            await client.join(hub)
        else:
            published.append(data)
            seq = history.append(data)
            if op == "publish":
                hub.deliver(KEY, "e1", seq, history.payloads[seq - 1])
        await settle()
    if history.payloads:  # announce the head so nothing waits in the hub's gap
        hub.deliver(KEY, "e1", len(history.payloads), history.payloads[-1])
        await settle()
    return published, client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_deltas_applied_by_the_client_equal_the_full_payloads(ops):
    published, client = asyncio.run(run(ops))
    assert client.data == published


async def test_in_sync_subscribers_get_deltas_and_a_resumed_one_a_full_frame_first():
    rows = [{"id": 1, "name": "Sprocket", "price": price, "note": "x" * 200} for price in range(6)]
    ops = [("publish", row) for row in rows[:3]] + [("resume", None)] + [("publish", row) for row in rows[3:]]
    published, client = await run(ops)
    assert client.data == published
    kinds = [b'"delta":' in frame for frame in client.frames]
    assert kinds == [False, True, True, False, True, True]  # full after subscribe and after resume
    assert all(len(client.frames[i]) < len(client.frames[0]) / 2 for i in (1, 2, 4, 5))


async def test_subscribers_without_delta_get_full_frames_from_the_same_event():
    history = History()
    hub = Hub(history, asyncio.get_running_loop())
    plain: list[bytes] = []

    class Plain:
        def deliver(self, payload: bytes, frame: bytes) -> None:
            plain.append(payload)

    client, other = Client(), Plain()
    await client.join(hub)
    replay, _ = await hub.subscribe(other, KEY, None, 0)
    hub.finish_join(other, KEY, replay)
    await settle()
    for price in range(3):
        seq = history.append({"id": 1, "price": price, "note": "y" * 300})
        hub.deliver(KEY, "e1", seq, history.payloads[-1])
    assert plain == history.payloads
    assert client.deltas() == 2


@given(st.text(max_size=60), st.text(max_size=60))
def test_a_delta_is_text_that_rebuilds_the_frame_or_is_not_made(before, after):
    text = delta.create(before.encode(), after.encode())
    assert text is None or delta.apply(before, text) == after
