"""The demo pages in real Chromium against a real daphne: PKCE sign-in, live widgets, restarts,
refusals, consent, a phone-sized screen and sign-out on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from oauth2_provider.models import AccessToken, Application

from accounts.models import User
from accounts.services import group_approve
from streaming.delivery.publish import publish
from streaming.models import AuditEntry, ServiceConfig
from tests.conftest import database_url_for_subprocess
from tests.servers import ROOT, DaphneProcess, free_port
from widgetapp.widgets.management.commands.seed_demo import DEMO_PASSWORD
from widgetapp.widgets.models import Widget

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PASSWORD = "a long browser test password"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
NOT_APPROVED = "Your account is not in a group approved for streaming."


def off_loop(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking Django code (ORM, signals that broadcast) off the thread of Playwright's loop."""

    def run() -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


@dataclass
class Site:
    """One daphne worker on a fixed port (so a restart keeps the OAuth redirect URI valid)."""

    port: int
    start: Callable[[], DaphneProcess]
    server: DaphneProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restart(self) -> None:
        self.server.stop()
        self.server = self.start()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's Chromium is missing: run `make chromium`")
    # Playwright's sync API keeps an event loop running in this thread, where Django refuses
    # blocking ORM calls: the tests use off_loop(), and this lets pytest-django flush the database.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def seed(port: int) -> None:
    Application.objects.create(
        client_id="widgetapp-browser",
        name="WidgetApp browser page",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        algorithm="",
        redirect_uris=f"http://127.0.0.1:{port}/app/callback",
    )
    for name, colour, quantity in [("Sprocket", "blue", 12), ("Gizmo", "green", 5), ("Doohickey", "red", 0)]:
        Widget.objects.create(name=name, colour=colour, quantity=quantity)


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra environment for the server; a test overrides it with `parametrize`."""
    return {}


@pytest.fixture
def site(
    daphne_factory: Callable[..., DaphneProcess], redis_prefix: str, server_env: dict[str, str], settings: Any
) -> Site:
    port = free_port()
    # Admin levers changed here (e.g. disabling a service) reach the server over its channel layer.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{redis_prefix}:layer:"},
        }
    }
    off_loop(seed, port)
    env = {
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": REDIS_URL,
        "STREAMING_REDIS_PREFIX": redis_prefix,
        "STREAMING_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "STREAMING_DRAIN_SECONDS": "1",  # a restart drains in 1 s instead of 5: keeps the file short
        **server_env,
    }
    start = lambda: daphne_factory(env, port=port)  # noqa: E731
    return Site(port=port, start=start, server=start())


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield context.new_page()
    context.close()


def make_user(username: str, services: tuple[str, ...] = (), staff: bool = False) -> User:
    return off_loop(create_user, username, services, staff)


def create_user(username: str, services: tuple[str, ...], staff: bool) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=staff, is_superuser=staff)
    if services:
        group = Group.objects.create(name=f"group-{username}")
        group_approve(group=group, services=services)
        user.groups.add(group)
    return user


def sign_in(page: Any, site: Site, username: str) -> None:
    page.goto(f"{site.url}/accounts/login/?next=/app/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def open_live_page(page: Any, site: Site, username: str) -> None:
    """Sign in, consent on the authorization page, and wait for the first widgets snapshot."""
    sign_in(page, site, username)
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#widgets")).to_have_attribute("data-ready", "true")
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "open")


def quantity_cell(page: Any, widget: Widget) -> Any:
    return page.locator(f'tr[data-widget-id="{widget.pk}"] td.quantity')


def applied(page: Any) -> list[str]:
    return (page.locator("#widgets").get_attribute("data-applied") or "").split()


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_pkce_sign_in_shows_widgets_and_live_changes(site: Site, page: Any) -> None:
    dana = make_user("dana", services=("widgets", "notifications"))
    open_live_page(page, site, "dana")

    assert page.url == f"{site.url}/app/"  # the code left the address bar
    assert "code=" not in page.evaluate("document.referrer + location.href")
    rows = page.locator("#widget-rows tr")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("td.name")).to_have_text("Doohickey")
    expect(page.locator('li[data-service="widgets"]')).to_have_attribute("data-available", "true")
    expect(page.locator('li[data-service="load"]')).to_have_count(0)  # never asked for, not shown

    gizmo = off_loop(Widget.objects.get, name="Gizmo")
    gizmo.quantity = 42
    off_loop(gizmo.save)
    expect(quantity_cell(page, gizmo)).to_have_text("42", timeout=1000)
    off_loop(lambda: Widget.objects.create(name="Whatsit", colour="teal", quantity=7))
    expect(rows).to_have_count(4, timeout=1000)
    off_loop(publish, "notifications", {"message": "Your order shipped"}, topic=str(dana.pk))
    expect(page.locator("#notification-list li")).to_contain_text("Your order shipped", timeout=1000)
    screenshot(page, "live-page.png")

    page.reload()  # the tab keeps its tokens: no second consent
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "open")
    expect(rows).to_have_count(4)
    off_loop(ServiceConfig.objects.update_or_create, name="widgets", defaults={"enabled": False})
    paused = page.locator("#widgets .unavailable")
    expect(paused).to_contain_text("paused by an administrator", timeout=2000)
    expect(page.locator("#widgets")).to_have_attribute("data-available", "paused")
    off_loop(lambda: Widget.objects.create(name="Thingamajig", colour="red", quantity=1))  # while paused
    off_loop(ServiceConfig.objects.update_or_create, name="widgets", defaults={"enabled": True})
    expect(paused).to_be_hidden(timeout=2000)  # enabled again: resumed, with what it missed
    expect(rows).to_have_count(5, timeout=2000)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{site.url}/")
    assert page.evaluate("sessionStorage.getItem('widgetapp.oauth.tokens')") is None
    assert off_loop(AccessToken.objects.filter(user__username="dana").count) == 0  # revoked


def test_worker_restart_reconnects_and_loses_no_change(site: Site, page: Any) -> None:
    make_user("rita", services=("widgets",))
    open_live_page(page, site, "rita")
    widgets = off_loop(lambda: list(Widget.objects.order_by("pk")))
    stop = threading.Event()
    changes: list[int] = []

    def keep_changing() -> None:
        try:
            while not stop.is_set():
                widget = widgets[len(changes) % len(widgets)]
                widget.quantity += 1
                widget.save()
                changes.append(widget.pk)
                time.sleep(0.05)
        finally:
            connection.close()

    writer = threading.Thread(target=keep_changing)
    writer.start()
    try:
        time.sleep(0.5)
        site.restart()
        state = page.locator("#connection-state")
        expect(state).to_have_attribute("data-state", "open", timeout=10_000)
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join()

    assert "reconnecting open" in (state.get_attribute("data-history") or "")
    page.wait_for_function(
        "count => document.querySelector('#widgets').dataset.applied.split(' ').length >= count",
        arg=len(changes),
        timeout=5000,
    )
    seqs = [int(item.rsplit(":", 1)[1]) for item in applied(page)]
    assert seqs == list(range(seqs[0], seqs[0] + len(changes)))  # every change once, in order
    for widget in off_loop(lambda: list(Widget.objects.all())):
        expect(quantity_cell(page, widget)).to_have_text(str(widget.quantity))


@pytest.mark.parametrize(
    "server_env", [{"OAUTH_ACCESS_TOKEN_SECONDS": "3", "STREAMING_TOKEN_EXPIRY_WARNING": "1"}]
)
def test_short_lived_token_is_refreshed_in_band(site: Site, page: Any) -> None:
    make_user("rhea", services=("widgets",))
    open_live_page(page, site, "rhea")
    first = page.evaluate("JSON.parse(sessionStorage.getItem('widgetapp.oauth.tokens')).access_token")

    time.sleep(4)  # past the first token's expiry: the page must have refreshed it in band

    tokens = page.evaluate("JSON.parse(sessionStorage.getItem('widgetapp.oauth.tokens'))")
    assert tokens["access_token"] != first
    state = page.locator("#connection-state")
    expect(state).to_have_attribute("data-state", "open")
    sprocket = off_loop(Widget.objects.get, name="Sprocket")
    sprocket.quantity = 77
    off_loop(sprocket.save)
    expect(quantity_cell(page, sprocket)).to_have_text("77", timeout=1000)
    # The refresh grant deletes the old access token as a rotation, not a revocation: the socket
    # stays open and the new token is swapped in band (no reconnect in the page's history).
    assert state.get_attribute("data-history") == "connecting open"


def test_unapproved_user_is_refused_with_a_clear_message(site: Site, page: Any) -> None:
    make_user("otto")
    sign_in(page, site, "otto")

    expect(page.locator("#problem-message")).to_have_text(NOT_APPROVED)
    expect(page.locator("#problem")).to_be_visible()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "closed")
    expect(page.locator('li[data-service="widgets"] .availability')).to_have_text("not available")
    assert page.url == f"{site.url}/app/"
    assert page.evaluate("sessionStorage.getItem('widgetapp.oauth.tokens')") is None


def test_staff_sees_load_and_their_session_live_in_the_admin(site: Site, page: Any) -> None:
    make_user("sam", services=("widgets", "notifications", "load"), staff=True)
    sign_in(page, site, "sam")
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#load-rows tr")).to_have_count(1)
    expect(page.get_by_role("link", name="Live sessions")).to_be_visible()
    screenshot(page, "live-page-staff.png")

    admin = page.context.new_page()
    admin.goto(f"{site.url}/admin/streaming/streamsession/")
    # Sessions are recorded in batches and the change list polls every 2 s: allow a few seconds.
    sam_rows = admin.locator("#result_list tbody tr", has_text="sam")
    expect(sam_rows).to_have_count(1, timeout=10_000)
    second = page.context.new_page()
    second.goto(f"{site.url}/app/")  # tokens are per tab: this one runs its own consent
    second.get_by_role("button", name="Allow").click()
    expect(second.locator("#connection-state")).to_have_attribute("data-state", "open")
    expect(sam_rows).to_have_count(2, timeout=10_000)
    connections = page.locator("#load-rows tr").first.locator("td").nth(2)
    expect(connections).to_have_text("2", timeout=5000)  # the first tab's load stream saw the second
    screenshot(admin, "admin-sessions.png")
    dashboard = admin.goto(f"{site.url}{page.locator('a', has_text='Load dashboard').get_attribute('href')}")
    assert dashboard.status == 200
    screenshot(admin, "admin-load-dashboard.png")


PHONE = {"width": 390, "height": 844}


def fits(page: Any) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_outsider_sees_one_refusal_and_a_next_step(site: Site, page: Any) -> None:
    make_user("otto")
    sign_in(page, site, "otto")

    expect(page.locator("#problem-message")).to_have_text(NOT_APPROVED)
    expect(page.locator("#problem-detail")).to_contain_text("Ask an administrator")
    expect(page.get_by_role("link", name="Back to the home page")).to_be_visible()
    expect(page.locator("#problem-retry")).to_be_hidden()
    expect(page.locator("#streams")).to_be_hidden()
    assert page.locator("table:visible").count() == 0
    assert page.get_by_text("not available to your account").filter(visible=True).count() == 0
    screenshot(page, "outsider.png")
    denied = off_loop(lambda: list(AuditEntry.objects.filter(kind="denied", user__username="otto")))
    assert len(denied) == 1 and "consent refused" in denied[0].detail


def test_cancelled_consent_says_so_and_offers_to_allow(site: Site, page: Any) -> None:
    make_user("cleo", services=("widgets", "notifications"))
    sign_in(page, site, "cleo")
    cancel = page.get_by_role("button", name="Cancel")
    allow = page.get_by_role("button", name="Allow")
    assert cancel.evaluate("e => getComputedStyle(e).backgroundColor") != allow.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    screenshot(page, "consent.png")
    cancel.click()

    expect(page.locator("#problem-message")).to_have_text("You did not allow this page to stream for you.")
    expect(page.get_by_role("button", name="Sign in to the stream again")).to_be_visible()
    assert page.get_by_text("not available to your account").filter(visible=True).count() == 0
    screenshot(page, "consent-cancelled.png")


def test_live_page_on_a_phone_with_a_test_notification(site: Site, browser: Any) -> None:
    make_user("pia", services=("widgets", "notifications"))
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(site.url + "/")
    expect(page.get_by_role("link", name="Sign in to start")).to_have_css("color", "rgb(255, 255, 255)")
    assert fits(page)
    screenshot(page, "home-390.png")
    open_live_page(page, site, "pia")

    expect(page.locator("#services li")).to_have_count(2)  # no badge for a service never asked for
    expect(page.locator("#widgets .hint")).to_contain_text("watch")
    page.get_by_role("button", name="Send me a test notification").click()
    expect(page.locator("#notification-list li")).to_contain_text("Test notification", timeout=3000)
    assert fits(page)
    screenshot(page, "live-390.png")
    assert page.request.get(site.url + "/favicon.ico").status == 200
    context.close()


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Any:
    """`make run`'s setup on a port of its own: SQLite file, in-memory layer, seeded demo."""
    port = free_port()
    env = {
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "STREAMING_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
    }
    manage = [sys.executable, "manage.py"]
    full_env = {**DaphneProcess(env).env}
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        subprocess.run([*manage, *command], cwd=ROOT, env=full_env, check=True, capture_output=True)
    redirect = f"http://127.0.0.1:{port}/app/callback"
    code = (
        "from oauth2_provider.models import Application as A;"
        f"A.objects.filter(client_id='widgetapp-browser').update(redirect_uris='{redirect}')"
    )
    subprocess.run([*manage, "shell", "-c", code], cwd=ROOT, env=full_env, check=True, capture_output=True)
    server = DaphneProcess(env, port=port, log_path=tmp_path / "daphne.log").start()
    yield server
    server.stop()


def test_sign_out_on_sqlite_has_no_server_error(sqlite_site: DaphneProcess, page: Any) -> None:
    page.goto(f"{sqlite_site.url}/accounts/login/?next=/app/")
    page.get_by_label("Username").fill("demo")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "open")
    statuses: list[int] = []
    page.on("response", lambda response: statuses.append(response.status))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{sqlite_site.url}/")

    assert statuses and all(status < 500 for status in statuses)
    assert sqlite_site.log_path is not None
    log = sqlite_site.log_path.read_text()
    assert "database is locked" not in log and "Traceback" not in log
