"""The embedded default (SQLite + in-memory layer) serves pages and websockets as a real process."""

import asyncio
import subprocess
import sys
import urllib.request

import websockets

from tests.servers import ROOT


def test_embedded_default_serves_page_and_websocket(tmp_path, daphne_factory):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "REDIS_URL": ""}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env={**__import__("os").environ, "DJANGO_DEBUG": "1", **env},
        check=True,
    )
    server = daphne_factory(env)
    with urllib.request.urlopen(server.url + "/", timeout=5) as resp:
        assert resp.status == 200

    async def handshake() -> int | None:
        """A socket that never authenticates is closed with 4401 (nothing else, and not left open)."""
        async with websockets.connect(server.ws_url, subprotocols=["widgetapp.v1"]) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 15)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
            return None

    assert asyncio.run(handshake()) == 4401
