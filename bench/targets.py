"""The servers under test: how to start each, reach it, subscribe, and publish to it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import redis
from procs import BENCH, ROOT, LineChild, free_port, http_ok, pinned, port_open, spawn, stop, wait_until

sys.path.insert(0, str(ROOT))
from widgetapp.serving import daphne_argv  # noqa: E402

PYTHON = sys.executable
DAPHNE = str(Path(PYTHON).with_name("daphne"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
Stream = tuple[str, str]
OURS_SERVICES = ["widgets", *(f"bench{i}" for i in range(10))]  # bench0..9: bench/benchapp/services.py
SCOPE = " ".join(f"{kind}:{name}" for name in OURS_SERVICES for kind in ("stream", "publish"))


class Unavailable(Exception):
    """A target that cannot be benchmarked now (e.g. ours before it is written); the run goes on."""


class Target(ABC):
    """A server under test; subclasses say how to start it and publish to it."""

    name = ""
    service = "bench"

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.prefix = f"bench-{self.name}-{uuid.uuid4().hex[:8]}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def subprotocols(self) -> list[str]:
        return []

    def streams(self, count: int) -> list[Stream]:
        """`count` distinct streams: one shared stream, or one service each."""
        if count == 1:
            return [(self.service, "all")]
        return [(f"{self.service}{i}", "all") for i in range(count)]

    def subscribe_message(self, stream: Stream) -> dict[str, Any]:
        return {"type": "subscribe", "service": stream[0], "topic": stream[1]}

    @abstractmethod
    def start(self) -> None:
        """Start the server (and whatever it needs) on `self.port`."""

    @abstractmethod
    def publisher_argv(self) -> list[str]:
        """Arguments of bench/publisher.py for this target's own publish path."""

    def publisher_env(self) -> dict[str, str]:
        return {}

    def publisher(self) -> LineChild:
        argv = pinned("0", [PYTHON, str(BENCH / "publisher.py"), *self.publisher_argv()])
        child = LineChild(argv, env=self.publisher_env(), log=self.log_dir / f"publisher-{self.name}.log")
        child.reply(timeout=60)
        return child

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{self.prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        client.close()

    def log(self) -> Path:
        return self.log_dir / f"server-{self.name}.log"


class Ceiling(Target):
    """Plain `websockets` + `websockets.broadcast`, each event encoded once."""

    name = "ceiling"

    def start(self) -> None:
        self.port = free_port()
        argv = pinned("0", [PYTHON, str(BENCH / "ceiling_server.py"), "--port", str(self.port)])
        self.proc = spawn(argv, log=self.log())
        wait_until(lambda: port_open(self.port), self.proc, f"port {self.port}")

    def publisher_argv(self) -> list[str]:
        return ["ceiling", "--url", f"ws://127.0.0.1:{self.port}"]


class Naive(Target):
    """Channels consumer per connection, group_add + group_send, daphne + RedisChannelLayer."""

    name = "naive"
    layer = "core"

    def start(self) -> None:
        self.port = free_port()
        project = BENCH / "naive_channels"
        env = {
            "DJANGO_SETTINGS_MODULE": "settings",
            "PYTHONPATH": str(project),
            "REDIS_URL": REDIS_URL,
            "NAIVE_REDIS_PREFIX": self.prefix,
            "NAIVE_LAYER": self.layer,
        }
        argv = pinned("0", [DAPHNE, "-b", "127.0.0.1", "-p", str(self.port), "asgi:application"])
        self.proc = spawn(argv, cwd=project, env=env, log=self.log())
        wait_until(lambda: port_open(self.port), self.proc, f"port {self.port}")

    def publisher_argv(self) -> list[str]:
        return ["naive", "--redis-url", REDIS_URL, "--prefix", self.prefix, "--layer", self.layer]


class NaivePubSub(Naive):
    """The same naive design on RedisPubSubChannelLayer."""

    name = "naive-pubsub"
    layer = "pubsub"


class Ours(Target):
    """WidgetApp Streaming itself: daphne `widgetapp.asgi:application`, real OAuth tokens, HTTP publish."""

    name = "ours"
    service = "bench0"  # widgets takes events from its domain code only, not over HTTP
    database = "widgetapp_bench"
    token: str | None = None  # issued once per run, shared by every scenario
    setup_error: str | None = None  # or why it could not be, so later scenarios skip at once

    def __init__(self, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(log_dir)
        self.extra_env = extra_env or {}

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/stream/"

    def env(self) -> dict[str, str]:
        return {
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.database}",
            "REDIS_URL": REDIS_URL,
            "STREAMING_REDIS_PREFIX": self.prefix,
            "DJANGO_SETTINGS_MODULE": "ours_settings",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{BENCH}",
            "BENCH_SCOPE": SCOPE,
            **self.extra_env,
        }

    def streams(self, count: int) -> list[Stream]:
        # One stream or more: the services of bench/benchapp (see bench/README.md).
        return [(self.service, "all")] if count == 1 else [(f"bench{i}", "all") for i in range(count)]

    def subscribe_message(self, stream: Stream) -> dict[str, Any]:
        return {"type": "subscribe", "service": stream[0]}

    def subprotocols(self) -> list[str]:
        return ["widgetapp.v1", f"bearer.{self.token}"]

    def manage(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise Unavailable(f"manage.py {args[0]} failed: {(done.stderr or done.stdout).strip()[-400:]}")
        return done.stdout

    def prepare(self) -> None:
        """Create the bench database, migrate it and issue a token (once per run)."""
        if Ours.token:
            return
        if Ours.setup_error:
            raise Unavailable(Ours.setup_error)
        try:
            self.setup()
        except Exception as exc:
            Ours.setup_error = str(exc)
            raise Unavailable(Ours.setup_error) from exc

    def setup(self) -> None:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput", "-v0")
        self.manage("shell", "-c", (BENCH / "ours_setup.py").read_text())
        try:
            out = self.manage("issue_token", "bench", "--scope", SCOPE, "--expires", "86400")
        except Unavailable:
            out = self.manage("shell", "-c", (BENCH / "ours_token.py").read_text())
        Ours.token = out.strip().splitlines()[-1].strip()

    def start(self) -> None:
        self.prepare()
        self.port = free_port()
        argv = pinned("0", daphne_argv(self.port))
        self.proc = spawn(argv, env=self.env(), log=self.log())
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            wait_until(lambda: http_ok(url), self.proc, url)
        except RuntimeError as exc:
            raise Unavailable(f"our server did not come up: {exc}") from exc

    def publisher_argv(self) -> list[str]:
        return ["ours", "--url", f"http://127.0.0.1:{self.port}"]

    def publisher_env(self) -> dict[str, str]:
        return {"BENCH_TOKEN": self.token or ""}


TARGETS: dict[str, type[Target]] = {
    "ours": Ours,
    "ceiling": Ceiling,
    "naive": Naive,
    "naive-pubsub": NaivePubSub,
}
