"""`make site` end to end: nginx with TLS over two serving stacks, Chromium's OAuth flow over https/wss,
200 clients through the proxy while one stack restarts and the other scales up, client addresses kept."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from accounts.services import group_approve
from streaming.models import StreamSession
from tests.servers import free_port, run_make
from tests.streaming_helpers import make_user, token_for
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, off_loop, screenshot
from tests.test_chaos import assert_every_event_once_in_order, report, run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

CLIENTS = 200
USERS = 20  # 10 connections each, under MAX_CONNECTIONS_PER_USER
#: The clients connect from this loopback address; nginx reaches the backends from 127.0.0.1.
CLIENT_ADDRESS = "127.0.0.5"
PASSWORD = "a long site test password"


@dataclass
class Site:
    """A running `make site`: nginx on https_port, one stack ("host") per backend port."""

    dir: Path
    https_port: int
    backends: list[int]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def make(self, *args: str, timeout: float = 180) -> None:
        run_make(list(args), self.env, self.dir.parent / "make.log", timeout)

    def host(self, target: str, index: int, *args: str) -> None:
        """`make restart` / `make scale` for one host of the site."""
        port = self.backends[index]
        self.make(target, f"PORT={port}", f"RUN_DIR={self.dir}/host-{port}", *args)


@pytest.fixture
def site(server_env: dict[str, str]) -> Iterator[Site]:
    # A short directory: supervisord's control socket lives in it, and Unix socket paths are
    # limited to 108 bytes (pytest's own temporary paths, under parallel runs, are longer).
    short = Path(tempfile.mkdtemp(prefix="site-", dir="/tmp"))
    env = {
        **os.environ,
        **server_env,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "site-test-" + "k" * 50,
        "STREAMING_DRAIN_SECONDS": "2",
        "MAX_WORKERS": "4",
    }
    site = Site(short / "site", free_port(), [free_port(), free_port()], env)
    site.make(
        "site",
        f"SITE_DIR={site.dir}",
        f"HTTPS_PORT={site.https_port}",
        f"HTTP_PORT={free_port()}",
        f"BACKEND_PORTS={' '.join(map(str, site.backends))}",
        "WORKERS=2",
    )
    try:
        yield site
    finally:
        site.make("site-stop", f"SITE_DIR={site.dir}")
        shutil.rmtree(short, ignore_errors=True)


def insecure_tls() -> ssl.SSLContext:
    """The site's certificate is self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_clients_through_the_proxy_lose_nothing_while_hosts_restart_and_scale(
    site: Site, capsys: Any
) -> None:
    tokens = [await asyncio.to_thread(lambda i=i: token_for(make_user(f"site{i}"))) for i in range(USERS)]

    async def restart_one_scale_the_other() -> None:
        await asyncio.to_thread(site.host, "restart", 0)
        await asyncio.to_thread(site.host, "scale", 1, "WORKERS=3")

    outcome = await run_chaos(
        f"wss://localhost:{site.https_port}/ws/stream/",
        tokens,
        restart_one_scale_the_other,
        CLIENTS,
        ssl=insecure_tls(),
        local_addr=(CLIENT_ADDRESS, 0),
    )
    report(capsys, "site: restart host A, scale host B", outcome)
    for items in outcome.received:
        assert_every_event_once_in_order(items, outcome.published)
    assert outcome.refused == []
    addresses = {addr async for addr in StreamSession.objects.values_list("remote_addr", flat=True)}
    assert addresses == {CLIENT_ADDRESS}
    status = (site.dir / f"host-{site.backends[1]}" / "supervisord.log").read_text()
    assert status.count("entered RUNNING state") >= 3


def create_streamer() -> User:
    user = User.objects.create_user("browser", password=PASSWORD)
    group = Group.objects.create(name="site-streamers")
    group_approve(group=group, services=["widgets", "notifications"])
    user.groups.add(group)
    return user


def test_the_page_signs_in_and_streams_over_https(site: Site) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's Chromium is missing: run `make chromium`")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    off_loop(create_streamer)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.goto(f"{site.url}/accounts/login/?next=/app/")
        page.get_by_label("Username").fill("browser")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Allow").click()
        playwright.expect(page.locator("#connection-state")).to_have_attribute("data-state", "open")
        screenshot(page, "site-https.png")
        assert page.url.startswith(site.url + "/app/")
        session = off_loop(recorded_session, "browser")
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    assert session.origin == site.url and session.remote_addr == "127.0.0.1"


def recorded_session(username: str) -> StreamSession:
    """The user's session once a worker has recorded it (the recorder writes in batches)."""
    deadline = time.monotonic() + 15
    while not StreamSession.objects.filter(user__username=username).exists():
        assert time.monotonic() < deadline, "no session recorded"
        time.sleep(0.2)
    return StreamSession.objects.get(user__username=username)
