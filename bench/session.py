"""One started target with its publisher and a pinned load generator, and the run's configuration."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs import BENCH, CLIENT_CORE, LineChild, Meter, pinned
from targets import Stream, Target, Unavailable

QUIET_MS = 1000  # a step is over when no event arrived for this long ...
DRAIN_MAX_MS = 20000  # ... or after this long (a backlogged server is then measured as it is)


def start_loadgen(log: Path) -> LineChild:
    """bench/loadgen.js on the load generator's core."""
    node = shutil.which("node") or "node"
    return LineChild(pinned(CLIENT_CORE, [node, str(BENCH / "loadgen.js")]), log=log)


def connect_command(
    target: Target, count: int, streams: list[Stream], concurrency: int = 200, resume: bool = False
) -> dict[str, Any]:
    """The load generator's command to open `count` sockets to `target`, each subscribing to `streams`."""
    return {
        "cmd": "connect",
        "url": target.ws_url,
        "n": count,
        "concurrency": concurrency,
        "subprotocols": target.subprotocols(),
        "subscribes": [target.subscribe_message(stream) for stream in streams],
        "timeout_s": 30,
        "resume": resume,
    }


@dataclass
class Config:
    duration: float = 5.0
    quick: bool = False
    idle_seconds: float = 30.0
    subscribers: int = 1000
    idle_counts: tuple[int, ...] = (1000, 5000, 10000)
    storm: int = 5000
    mux_clients: int = 100
    mux_rate: float = 20.0
    start_rate: float = 1.0
    max_steps: int = 16
    log_dir: Path = BENCH / "results" / "logs"

    @classmethod
    def quick_config(cls) -> Config:
        return cls(
            duration=1.0,
            quick=True,
            idle_seconds=1.0,
            subscribers=100,
            idle_counts=(100, 200, 300),
            storm=300,
            mux_clients=10,
            mux_rate=20.0,
            start_rate=10.0,
            max_steps=2,
        )


class Session:
    """One started target with its publisher and a pinned load generator; all stopped on exit."""

    def __init__(self, target: Target, config: Config) -> None:
        self.target, self.config = target, config
        self.publisher: LineChild | None = None
        self.loadgen: LineChild | None = None
        self.step = 0

    def __enter__(self) -> Session:
        try:
            self.target.start()
            self.meter = Meter(self.target.pid)
            self.loadgen = start_loadgen(self.config.log_dir / f"loadgen-{self.target.name}.log")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for child in (self.loadgen, self.publisher):
            if child is not None:
                child.close()
        self.target.stop()

    def ask(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        assert self.loadgen is not None
        return self.loadgen.ask(command, timeout=timeout)

    def connect(
        self, count: int, streams: list[Stream], concurrency: int = 200, resume: bool = False
    ) -> dict[str, Any]:
        """Open `count` sockets each subscribing to `streams`; fails if none got subscribed.

        With `resume`, each client reconnects after any close and resubscribes with `since`.
        """
        command = connect_command(self.target, count, streams, concurrency, resume)
        result = self.ask(command, timeout=300)
        if result["subscribed"] == 0:
            raise Unavailable(f"no connection got subscribed to {self.target.ws_url}: {result['errors']}")
        return result

    def publish(
        self, rate: float, streams: list[Stream], fanout: int, duration: float | None = None
    ) -> dict[str, Any]:
        """Publish at `rate` events/s for the configured duration; latency and cost of that step."""
        if self.publisher is None:
            self.publisher = self.target.publisher()
            self.publisher_meter = Meter(self.publisher.proc.pid)
        self.step += 1
        self.meter.lap()
        self.publisher_meter.lap()
        self.ask({"cmd": "cpu"})
        duration = duration or self.config.duration
        command = {
            "cmd": "publish",
            "rate": rate,
            "duration": duration,
            "step": self.step,
            "streams": streams,
        }
        sent = self.publisher.ask(command, timeout=duration + 120)
        drained = self.ask({"cmd": "quiet", "idle_ms": QUIET_MS, "max_ms": DRAIN_MAX_MS}, timeout=60)
        server, client = self.meter.lap(), self.ask({"cmd": "cpu"})
        publisher = self.publisher_meter.lap()
        stats = self.ask({"cmd": "stats", "step": self.step})
        busy = max(sent["elapsed_s"], sent["elapsed_s"] + drained["waited_s"] - QUIET_MS / 1000)
        expected = sent["published"] * fanout
        return {
            **stats,
            "rate": rate,
            "published": sent["published"],
            "achieved_rate": sent["published"] / max(sent["elapsed_s"], duration),
            "publish_errors": sent["errors"],
            "expected": expected,
            "delivered_share": stats["count"] / expected if expected else 0.0,
            "deliveries_per_s": stats["count"] / busy,
            "offered_per_s": rate * fanout,
            "server_cpu_pct": 100 * server["cpu_s"] / busy,
            "server_cpu_s": server["cpu_s"],
            "loadgen_cpu_pct": client["cpu_pct"] * client["wall_s"] / busy,
            "publisher_cpu_pct": 100 * publisher["cpu_s"] / sent["elapsed_s"],
        }
