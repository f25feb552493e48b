"""Deltas vs permessage-deflate on the widgets stream: bytes on the wire and CPU, per event.

Replays a realistic run of widget updates (one widget of a small catalogue changes one field per
event, as the admin does) through the code the server runs: the hub's frame building, its one
delta per event (`streaming.delivery.deltas`), and a per-connection permessage-deflate compressor
(zlib raw deflate with context takeover and a sync flush per message, as browsers negotiate it).
The client side applies each delta (`streaming.wire.delta`). Prints one table; no server needed.

    .venv/bin/python bench/deltas.py [--events 5000] [--subscribers 1000] [--catalogue 20]

Server µs/event is the CPU added to the full-frame path: a delta once per event, deflate once per
subscriber and event (permessage-deflate compresses each connection's stream on its own).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from streaming.delivery.deltas import Deltas  # noqa: E402
from streaming.delivery.history import build_frame, frame_head  # noqa: E402
from streaming.wire import delta  # noqa: E402

KEY = ("widgets", "all")
COLOURS = ["blue", "green", "red", "teal", "orange", "violet"]


def widget_events(count: int, catalogue: int = 20, seed: int = 7) -> list[bytes]:
    """Event frames of `count` updates to a catalogue of widgets, as the widgets service publishes them."""
    rng = random.Random(seed)
    widgets = [
        {
            "id": n,
            "name": f"Widget {n:03d} {rng.choice(['Sprocket', 'Gizmo', 'Doohickey'])}",
            "colour": rng.choice(COLOURS),
            "quantity": rng.randint(0, 500),
            "created_at": "2026-11-30T09:00:00.000000+00:00",
            "updated_at": "2026-11-30T09:00:00.000000+00:00",
        }
        for n in range(catalogue)
    ]
    head, frames = frame_head(*KEY), []
    for seq in range(1, count + 1):
        widget = widgets[rng.randrange(catalogue)]
        widget["quantity"] = rng.randint(0, 500)
        widget["updated_at"] = f"2026-11-30T10:{seq // 3600 % 60:02d}:{seq % 60:02d}.{seq:06d}+00:00"
        data = json.dumps({"action": "updated", "widget": widget}, ensure_ascii=False)
        frames.append(build_frame(head, "e1", seq, data).encode())
    return frames


def deltas_of(frames: list[bytes]) -> list[bytes]:
    """What an in-sync delta subscriber receives: the first frame full, then delta frames when smaller."""
    state, out = Deltas(), []
    state.add(object())
    for seq, payload in enumerate(frames, 1):
        made = state.frame(KEY, "e1", seq, payload)
        out.append(made[0] if made else payload)
        state.synced = dict.fromkeys(state.synced, True)
    return out


def deflated(messages: list[bytes]) -> list[bytes]:
    """The same messages through one connection's permessage-deflate compressor."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return [(compressor.compress(msg) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4] for msg in messages]


def seconds(fn: Callable[[], object]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def apply_all(messages: list[bytes]) -> None:
    text = ""
    for message in messages:
        msg = json.loads(message)
        text = delta.apply(text, msg["delta"]) if "delta" in msg else message.decode()
        json.loads(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, default=1000, help="for the server CPU per event column")
    parser.add_argument("--catalogue", type=int, default=20, help="widgets the updates are spread over")
    args = parser.parse_args()
    frames = widget_events(args.events, args.catalogue)
    deltas = deltas_of(frames)
    n, subs = len(frames), args.subscribers
    rows = [
        ("full frames", frames, 0.0, 0.0, seconds(lambda: [json.loads(f) for f in frames])),
        (
            "fossil deltas",
            deltas,
            seconds(lambda: deltas_of(frames)),
            0.0,
            seconds(lambda: apply_all(deltas)),
        ),
        ("permessage-deflate", deflated(frames), 0.0, seconds(lambda: deflated(frames)), None),
        (
            "deltas + deflate",
            deflated(deltas),
            seconds(lambda: deltas_of(frames)),
            seconds(lambda: deflated(deltas)),
            None,
        ),
    ]
    mean = sum(map(len, frames)) / n
    print(f"widgets stream, {n} updates over {args.catalogue} widgets, mean full frame {mean:.0f} B")
    header = f"{'mode':<20}{'B/event':>9}{'vs full':>9}{'server µs/event':>17}"
    print(header + f"{f'+ {subs} subs µs':>16}{'client µs/event':>17}")
    for name, messages, once, per_sub, client in rows:
        size = sum(map(len, messages)) / n
        once_us, sub_us = once / n * 1e6, per_sub / n * 1e6
        client_text = f"{client / n * 1e6:.1f}" if client is not None else "(browser)"
        print(
            f"{name:<20}{size:>9.0f}{size / (sum(map(len, frames)) / n):>9.2f}"
            f"{once_us:>17.1f}{once_us + sub_us * subs:>16.0f}{client_text:>17}"
        )


if __name__ == "__main__":
    main()
