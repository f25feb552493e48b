"""One real daphne worker for the idle and connect probes, with N distinct tokens of one bench user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import psycopg
import websockets
from procs import BENCH, ROOT, http_ok, pinned, spawn, stop, wait_until

sys.path.insert(0, str(ROOT))
from widgetapp.serving import daphne_argv  # noqa: E402

DATABASE = "widgetapp_probe"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SCOPE = " ".join(f"stream:bench{i}" for i in range(10))

ISSUE_TOKENS = """
import os, secrets
from datetime import timedelta
from django.utils import timezone
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_access_token_model, get_application_model
user = get_user_model().objects.get(username="bench")
app, _ = get_application_model().objects.get_or_create(name="bench", defaults={
    "user": user, "client_type": "confidential", "authorization_grant_type": "client-credentials"})
Token = get_access_token_model()
count = int(os.environ["PROBE_TOKENS"])
tokens = [Token(user=user, application=app, token=secrets.token_urlsafe(32),
                expires=timezone.now() + timedelta(hours=6), scope=os.environ["BENCH_SCOPE"])
          for _ in range(count)]
for token in tokens:
    token.save()
print("\\n".join(t.token for t in tokens))
"""


def env() -> dict[str, str]:
    return {
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "STREAMING_REDIS_PREFIX": f"probe-{uuid.uuid4().hex[:8]}",
        "DJANGO_SETTINGS_MODULE": "ours_settings",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{BENCH}",
        "BENCH_SCOPE": SCOPE,
    }


def manage(*args: str, extra: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env(), **(extra or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout


def prepare(tokens: int) -> list[str]:
    """Create and migrate the probe database and issue `tokens` fresh tokens."""
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    manage("migrate", "--noinput", "-v0")
    manage("shell", "-c", (BENCH / "ours_setup.py").read_text())
    out = manage("shell", "-c", ISSUE_TOKENS, extra={"PROBE_TOKENS": str(tokens)})
    return out.split()[-tokens:]


class Server:
    """A daphne worker pinned to core 0 (the probe client runs on the other one)."""

    def __init__(self, log: Path, port: int) -> None:
        self.port = port
        self.proc = spawn(pinned("0", daphne_argv(self.port)), env=env(), log=log)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{self.port}/healthz"), self.proc, "daphne")
        self.ps = psutil.Process(self.proc.pid)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/stream/"

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        stop(self.proc)


async def connect(
    url: str, token: str, *, ticket: str | None = None, streams: int = 0
) -> tuple[Any, dict[str, Any]]:
    """Open one authenticated socket (token or ticket subprotocol); returns it and its welcome."""
    credential = f"ticket.{ticket}" if ticket else f"bearer.{token}"
    ws = await websockets.connect(
        url, subprotocols=["widgetapp.v1", credential], ping_interval=None, max_queue=None
    )
    welcome = await reply(ws)
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"not welcomed: {welcome}")
    for i in range(streams):
        await ws.send(json.dumps({"type": "subscribe", "service": f"bench{i}"}))
        answer = await reply(ws)
        if answer.get("type") != "subscribed":
            raise RuntimeError(f"not subscribed: {answer}")
    return ws, welcome


async def reply(ws: Any) -> dict[str, Any]:
    """The next server message that is not a heartbeat."""
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message.get("type") != "ping":
            return message


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
