"""A PostgreSQL outage under load: open sockets keep streaming, new connects are told to retry.

Two daphne workers on a throwaway PostgreSQL cluster and the test's Redis; 50 clients follow
`widgets` while this process publishes 50 events/s through Redis; PostgreSQL is stopped
(`pg_ctl stop -m immediate`) for 10 s and started again. Meanwhile sockets stay open, connects
with a token no worker has cached get `reconnect` + 4013, the publish API answers 503 with
Retry-After; afterwards connects work again and the session, load and audit records catch up.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streaming.client import Event, Reset, StreamClient
from tests.servers import ROOT, DaphneProcess, PostgresServer
from tests.streaming_helpers import http_publish
from tests.test_chaos import _caught_up, assert_every_event_once_in_order, publish_steadily

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

CLIENTS = 50
USERS = 5
RATE = 50
OUTAGE_AT = 3.0
OUTAGE_SECONDS = 10.0
PUBLISH_SECONDS = OUTAGE_AT + OUTAGE_SECONDS + 8.0
CLOSED_DURING_OUTAGE = 5
PORTS = range(7200, 7300)
DATABASE = "outage"


def _free_port_in(ports: range) -> int:
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports}")


@pytest.fixture
def throwaway_postgres() -> Iterator[PostgresServer]:
    # Under /tmp, not pytest's tmp_path: the postgres user must be able to reach the directory.
    base = Path(tempfile.mkdtemp(prefix="pg-outage-"))
    server = PostgresServer(base, _free_port_in(PORTS))
    try:
        server.init().start().create_database(DATABASE)
        yield server
    finally:
        try:
            server.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # never started, or already stopped
        shutil.rmtree(base, ignore_errors=True)


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "1", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout


@pytest.fixture
def outage_env(throwaway_postgres, server_env) -> dict[str, str]:
    env = {**server_env, "DATABASE_URL": throwaway_postgres.url(DATABASE)}
    manage(env, "migrate", "--noinput")
    return env


def tokens_for(env: dict[str, str], names: list[str]) -> list[str]:
    script = (
        "import json; from tests.streaming_helpers import make_user, token_for; "
        f"print(json.dumps([token_for(make_user(n)) for n in {names!r}]))"
    )
    return json.loads(manage(env, "shell", "-c", script).strip().splitlines()[-1])


async def probe(url: str, token: str) -> tuple[dict[str, Any], int | None]:
    """Connect with `token`: the first message, and the close code that followed it (None if open)."""
    async with connect(url, subprotocols=["widgetapp.v1", f"bearer.{token}"], open_timeout=5) as ws:  # type: ignore[list-item]
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if first["type"] == "welcome":
            return first, None
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed as closed:
            return first, closed.rcvd.code if closed.rcvd else None
        return first, None


async def accepted_after(url: str, token: str, since: float) -> float:
    """Seconds from `since` until a connect with an uncached token is welcomed."""
    while True:
        first, _ = await probe(url, token)
        if first["type"] == "welcome":
            return time.monotonic() - since
        await asyncio.sleep(0.1)


def query(postgres: PostgresServer, sql: str, *params: Any) -> Any:
    with psycopg.connect(postgres.url(DATABASE)) as db:
        row = db.execute(sql, params).fetchone()
        return row[0] if row else None


async def _consume(client: StreamClient, into: list[Event | Reset]) -> None:
    async for item in client.events():
        into.append(item)


async def test_a_postgresql_outage_drops_no_socket_and_asks_new_connects_to_retry(
    throwaway_postgres, outage_env, daphne_factory, capsys
):
    pg = throwaway_postgres
    names = [f"pg{i}" for i in range(USERS)] + ["probe0", "probe1", "http"]
    *tokens, probe0, probe1, http_token = await asyncio.to_thread(tokens_for, outage_env, names)
    workers: list[DaphneProcess] = [daphne_factory(outage_env), daphne_factory(outage_env)]
    probes = list(zip(workers, (probe0, probe1), strict=True))  # tokens no worker has cached
    clients = [
        StreamClient(workers[i % 2].ws_url, tokens[i % USERS], open_timeout=20) for i in range(CLIENTS)
    ]
    received: list[list[Event | Reset]] = [[] for _ in clients]
    welcomes = await asyncio.wait_for(asyncio.gather(*(c.connect() for c in clients)), 60)
    await asyncio.gather(*(c.subscribe("widgets") for c in clients))
    consumers = [asyncio.create_task(_consume(c, into)) for c, into in zip(clients, received, strict=True)]
    publishing = asyncio.create_task(asyncio.to_thread(publish_steadily, PUBLISH_SECONDS, RATE))
    late: StreamClient | None = None
    try:
        await asyncio.sleep(OUTAGE_AT)
        await asyncio.to_thread(pg.stop, "immediate")
        down_at, down_wall = time.monotonic(), datetime.now(UTC)

        refusals = []
        for worker, token in probes:
            refusals.append(await probe(worker.ws_url, token))
        status, reply, headers = await asyncio.to_thread(
            http_publish, workers[0].url, http_token, "widgets", {"data": {"n": 0}}
        )
        closed = clients[:CLOSED_DURING_OUTAGE]
        await asyncio.gather(*(c.close() for c in closed))
        await asyncio.sleep(0.5)
        late = StreamClient(workers[0].ws_url, tokens[0], open_timeout=10)  # cached on this worker
        late_welcome = await late.connect()
        while time.monotonic() - down_at < OUTAGE_SECONDS - 1.0:
            for worker, token in probes:
                refusals.append(await probe(worker.ws_url, token))
            await asyncio.sleep(1.0)
        await asyncio.sleep(max(0.0, down_at + OUTAGE_SECONDS - time.monotonic()))

        up_started = time.monotonic()
        await asyncio.to_thread(pg.start)
        up_at, up_wall = time.monotonic(), datetime.now(UTC)
        accepted = await asyncio.wait_for(
            asyncio.gather(*(accepted_after(w.ws_url, t, up_at) for w, t in probes)),
            30,
        )
        caught_up_after = await _records_caught_up(
            pg,
            [w["session"] for w in welcomes[:CLOSED_DURING_OUTAGE]],
            late_welcome,
            (down_wall, up_wall),
            up_at,
        )
        published = await publishing
        await _caught_up(received[CLOSED_DURING_OUTAGE:], published)
    finally:
        await asyncio.gather(*(c.close() for c in [*clients, *([late] if late else [])]))
        for task in consumers:
            task.cancel()

    with capsys.disabled():
        print(
            f"\npg outage: stopped {up_at - down_at:.1f} s (start took {up_at - up_started:.2f} s), "
            f"{len(published)} events to {CLIENTS} clients, {len(refusals)} connects refused with 4013, "
            f"connects accepted again {max(accepted):.2f} s after PostgreSQL was ready "
            f"(per worker {', '.join(f'{a:.2f}' for a in accepted)} s), "
            f"records caught up {caught_up_after:.2f} s after"
        )
    # Open sockets kept streaming: no reconnect, every event exactly once and in order.
    for client, items in zip(clients[CLOSED_DURING_OUTAGE:], received[CLOSED_DURING_OUTAGE:], strict=True):
        assert client.stats.reconnects == 0
        assert_every_event_once_in_order(items, published)
    # Connects that needed the database were told to retry; one with a cached token was welcomed.
    assert refusals and all(
        first["type"] == "reconnect" and first["retry_after_ms"] > 0 and code == 4013
        for first, code in refusals
    ), refusals
    assert late_welcome["type"] == "welcome"
    assert status == 503 and reply["error"] == "unavailable" and int(headers["Retry-After"]) >= 1
    # Afterwards: connects work, and what was recorded during the outage is in the database.
    assert max(accepted) < 5.0
    outage_rows = query(
        pg, "SELECT count(*) FROM streaming_auditentry WHERE detail = %s", "Database unavailable."
    )
    assert outage_rows == len(refusals)
    for worker in workers:
        log = worker.log_path.read_text(errors="replace") if worker.log_path else ""
        assert "Traceback" not in log
        assert "Database unavailable" in log
    assert up_wall > down_wall


async def _records_caught_up(
    pg: PostgresServer,
    closed: list[str],
    late_welcome: dict[str, Any],
    outage: tuple[datetime, datetime],
    since: float,
) -> float:
    """Seconds from `since` until the sessions closed and opened during the outage, the load samples of
    the outage and its audit entries are all in the database (fails after 20 s)."""
    checks = {
        "closed sessions": (
            "SELECT count(*) FROM streaming_streamsession"
            " WHERE session_id = ANY(%s) AND closed_at IS NOT NULL",
            (closed,),
            len(closed),
        ),
        "session opened during the outage": (
            "SELECT count(*) FROM streaming_streamsession WHERE session_id = %s",
            (late_welcome["session"],),
            1,
        ),
        "load samples of the outage (both workers)": (
            "SELECT count(DISTINCT worker_id) FROM streaming_loadsample WHERE at > %s AND at < %s",
            outage,
            2,
        ),
        "disconnects audited": (
            "SELECT count(*) FROM streaming_auditentry WHERE kind = 'disconnect' AND session_id = ANY(%s)",
            (closed,),
            len(closed),
        ),
        "connect audited": (
            "SELECT count(*) FROM streaming_auditentry WHERE kind = 'connect' AND session_id = %s",
            (late_welcome["session"],),
            1,
        ),
        "workers heartbeat again": (
            "SELECT count(*) FROM streaming_workerprocess WHERE heartbeat_at > %s",
            (outage[1],),
            2,
        ),
    }
    deadline = time.monotonic() + 20
    missing: list[str] = []
    while time.monotonic() < deadline:
        missing = [name for name, (sql, params, want) in checks.items() if query(pg, sql, *params) < want]
        if not missing:
            return time.monotonic() - since
        await asyncio.sleep(0.2)
    raise AssertionError(f"not caught up after 20 s: {missing}")
