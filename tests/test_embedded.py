"""The embedded default across processes: events written by other local processes reach the server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
import websockets

from tests.servers import ROOT

pytestmark = pytest.mark.slow


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def embedded(tmp_path, daphne_factory):
    """A server on the embedded default (SQLite, no Redis) with the demo seeded, and a demo token."""
    socket_path = f"/tmp/widgetapp-embedded-{os.getpid()}-{tmp_path.name[-12:]}.sock"
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "STREAMING_LOCAL_SOCKET": socket_path,
    }
    manage(env, "migrate", "--noinput", "-v0").check_returncode()
    manage(env, "seed_demo").check_returncode()
    token = manage(env, "issue_token", "demo", "--scope", "stream:widgets").stdout.strip().split()[-1]
    server = daphne_factory(env)
    yield server, env, token
    if os.path.exists(socket_path):
        os.unlink(socket_path)


async def _receive_events(server, token: str, count: int, publish) -> list[dict]:
    async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1", f"bearer.{token}"]) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "subscribe", "service": "widgets", "id": 1}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        await asyncio.to_thread(publish)
        events = []
        while len(events) < count:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if msg["type"] == "event":
                events.append(msg)
        return events


def test_publish_event_and_shell_writes_from_other_processes_reach_the_page(embedded):
    server, env, token = embedded

    def publish() -> None:
        out = manage(env, "publish_event", "widgets", '{"note": "from the command"}')
        assert out.returncode == 0, out.stderr
        code = (
            "from widgetapp.widgets.models import Widget; "
            "Widget.objects.create(name='From the shell', colour='teal', quantity=3)"
        )
        shell = manage(env, "shell", "-c", code)
        assert shell.returncode == 0, shell.stderr
        assert "stays in this process" not in shell.stderr

    events = asyncio.run(_receive_events(server, token, 2, publish))
    assert events[0]["data"] == {"note": "from the command"}
    assert events[1]["data"]["action"] == "created"
    assert events[1]["data"]["widget"]["name"] == "From the shell"
    assert events[1]["seq"] == events[0]["seq"] + 1


def test_publish_event_without_a_running_server_fails_and_says_why(tmp_path):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "STREAMING_LOCAL_SOCKET": str(tmp_path / "nobody.sock"),
    }
    manage(env, "migrate", "--noinput", "-v0").check_returncode()
    out = manage(env, "publish_event", "widgets", '{"n": 1}')
    assert out.returncode == 1
    assert "No server would deliver this event" in out.stderr
    assert "make run" in out.stderr
