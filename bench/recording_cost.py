"""What recording sessions and load costs a worker: CPU % at 1,000 busy connections, with vs without.

One daphne worker (PostgreSQL + Redis, as in production) holds 1,000 websocket connections, each
subscribed to `widgets`, each sending a ping every 2 s, while 2 events/s are published to `widgets`
(2,000 deliveries/s): every session changes between two heartbeats, the recorder's worst case.
The worker runs alternately with the recorder (the normal server) and without it (the same server
with the recorder's start hook removed); each round measures the worker's CPU over --seconds.
The recorder also counts its own CPU (`streaming_recorder_cpu_seconds_total` on /metrics).

    .venv/bin/python bench/recording_cost.py [--connections 1000] [--seconds 30] [--rounds 2]

Needs PostgreSQL (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; a
scratch database is created and dropped) and Redis (BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DAPHNE = str(Path(PYTHON).with_name("daphne"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PING_SECONDS = 2.0
EVENTS_PER_SECOND = 2.0

TOKEN_SNIPPET = """
from django.contrib.auth.models import Group
from accounts.models import User
from accounts.services import access_token_issue, group_approve
group, _ = Group.objects.get_or_create(name="recording-bench")
group_approve(group=group, services=("widgets",), publish_services=("widgets",))
user, _ = User.objects.get_or_create(username="recording-bench")
user.groups.add(group)
print(access_token_issue(user=user, scopes=["stream:widgets", "publish:widgets"], expires_seconds=7200))
"""


def serve_without_recording(argv: list[str]) -> None:
    """daphne with the recorder's on_start hook removed (the 'without' side of the comparison)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "widgetapp.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from daphne.cli import CommandLineInterface

    from streaming.delivery import worker
    from streaming.ops import records as recorder

    worker._on_start.remove(recorder.start)
    CommandLineInterface().run(argv)


# Database -----------------------------------------------------------------------------------------


def scratch_database() -> str:
    import psycopg

    name = f"recording_cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return DATABASE_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(DATABASE_URL.replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def forget_redis_prefix(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


# Server -------------------------------------------------------------------------------------------


def start_server(env: dict[str, str], port: int, recording: bool, log: Path) -> subprocess.Popen[bytes]:
    args = ["-b", "127.0.0.1", "-p", str(port), "--websocket_timeout", "-1", "widgetapp.asgi:application"]
    argv = [DAPHNE, *args] if recording else [PYTHON, __file__, "--serve-without-recording", *args]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", "0", *argv]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start; see {log}")


def recorder_cpu(port: int) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "streaming_recorder_cpu_seconds":
            return sum(sample.value for sample in family.samples)
    return 0.0


# Load ---------------------------------------------------------------------------------------------


async def client(
    url: str, token: str, opened: asyncio.Semaphore, ready: list[int], stop: asyncio.Event
) -> None:
    import websockets

    async with opened:
        ws = await websockets.connect(
            url,
            subprotocols=["widgetapp.v1", f"bearer.{token}"],  # type: ignore[list-item]
            max_queue=None,
        )
        await ws.recv()
        await ws.send(json.dumps({"type": "subscribe", "service": "widgets"}))
        await ws.recv()
    ready.append(1)

    async def drain() -> None:
        async for _ in ws:
            pass

    reader = asyncio.create_task(drain())
    await asyncio.sleep(random.uniform(0, PING_SECONDS))
    while not stop.is_set():
        await ws.send('{"type":"ping"}')
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PING_SECONDS)
    reader.cancel()
    await ws.close()


def publish(port: int, token: str, n: int) -> None:
    body = json.dumps({"data": {"n": n, "pad": "x" * 100}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/streams/widgets/events",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


async def measure(port: int, token: str, connections: int, seconds: float, pid: int) -> dict[str, float]:
    import psutil

    stop = asyncio.Event()
    ready: list[int] = []
    opened = asyncio.Semaphore(100)
    tasks = [
        asyncio.create_task(client(f"ws://127.0.0.1:{port}/ws/stream/", token, opened, ready, stop))
        for _ in range(connections)
    ]
    while len(ready) < connections:
        await asyncio.sleep(0.2)
        if any(t.done() and t.exception() for t in tasks):
            raise next(t.exception() for t in tasks if t.done() and t.exception())  # type: ignore[misc]

    async def publisher() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await asyncio.to_thread(publish, port, token, n)
            await asyncio.sleep(1 / EVENTS_PER_SECOND)

    pub = asyncio.create_task(publisher())
    await asyncio.sleep(6)  # warm up: every session recorded once, rates settled
    process = psutil.Process(pid)
    before, recorded_before, started = process.cpu_times(), recorder_cpu(port), time.monotonic()
    await asyncio.sleep(seconds)
    after, recorded_after, wall = process.cpu_times(), recorder_cpu(port), time.monotonic() - started
    stop.set()
    await pub
    await asyncio.gather(*tasks, return_exceptions=True)
    used = (after.user + after.system) - (before.user + before.system)
    return {
        "cpu_percent": 100 * used / wall,
        "recorder_cpu_percent": 100 * (recorded_after - recorded_before) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    logs = ROOT / "bench" / "results" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    database = scratch_database()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": database,
        "REDIS_URL": REDIS_URL,
        "STREAMING_MAX_CONNECTIONS_PER_USER": str(options.connections * 2),
        "STREAMING_MESSAGES_PER_SECOND": "100",
        "LOG_LEVEL": "WARNING",
    }
    results: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
    try:
        manage(env, "migrate", "--noinput")
        token = manage(env, "shell", "-c", TOKEN_SNIPPET).strip().splitlines()[-1]
        for round_ in range(options.rounds):
            for mode in ("with", "without"):
                port = 20000 + random.randrange(20000)
                # A fresh Redis prefix per server: no connection slots or history left by the previous one.
                server_env = {**env, "STREAMING_REDIS_PREFIX": f"bench-recording-{uuid.uuid4().hex[:8]}"}
                log = logs / f"recording-cost-{mode}-{round_}.log"
                proc = start_server(server_env, port, mode == "with", log)
                try:
                    result = asyncio.run(measure(port, token, options.connections, options.seconds, proc.pid))
                finally:
                    proc.terminate()
                    proc.wait(30)
                    forget_redis_prefix(server_env["STREAMING_REDIS_PREFIX"])
                results[mode].append(result)
                print(
                    f"round {round_ + 1} {mode:>7} recording: worker CPU {result['cpu_percent']:.1f} %, "
                    f"recorder's own {result['recorder_cpu_percent']:.2f} %",
                    flush=True,
                )
    finally:
        drop_database(database)
    mean = {mode: sum(r["cpu_percent"] for r in rows) / len(rows) for mode, rows in results.items()}
    own = sum(r["recorder_cpu_percent"] for r in results["with"]) / len(results["with"])
    print(
        f"\n{options.connections} connections, {options.seconds:g} s x {options.rounds} rounds: worker CPU "
        f"{mean['with']:.1f} % with recording, {mean['without']:.1f} % without "
        f"(difference {mean['with'] - mean['without']:+.1f} points); the recorder's own CPU: {own:.2f} % "
        f"of one core = {100 * own / max(mean['with'], 1e-9):.1f} % of the worker's CPU"
    )
    print(json.dumps({"connections": options.connections, "results": results}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-without-recording":
        serve_without_recording(sys.argv[2:])
    else:
        main()
