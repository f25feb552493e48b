"""Chromium with the websocket blocked: the server-rendered first paint, and the SSE fallback."""

from __future__ import annotations

from typing import Any

import pytest

from tests import test_browser
from tests.test_browser import Site, expect, make_user, off_loop, quantity_cell, sign_in
from widgetapp.widgets.models import Widget

# The live-page fixtures: Chromium, a seeded daphne worker, a fresh page.
browser, server_env, site, page = (
    test_browser.browser,
    test_browser.server_env,
    test_browser.site,
    test_browser.page,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def refuse_websockets(page: Any) -> None:
    """Every websocket to /ws/ fails before it opens (as behind a proxy that refuses upgrades)."""
    page.route_web_socket("**/ws/**", lambda ws: ws.close(code=1011, reason="blocked by the test"))


def test_first_paint_shows_the_server_rendered_widgets_without_the_websocket(site: Site, page: Any) -> None:
    make_user("paula", services=("widgets",))
    refuse_websockets(page)
    page.route("**/sse/**", lambda route: route.abort())
    sign_in(page, site, "paula")
    page.get_by_role("button", name="Allow").click()
    rows = page.locator("#widget-rows tr")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("td.name")).to_have_text("Doohickey")
    expect(page.locator("#widgets-empty")).to_be_hidden()
    expect(page.locator("#connection-state")).not_to_have_attribute("data-state", "open")


def test_the_page_falls_back_to_sse_says_so_and_stays_live(site: Site, page: Any) -> None:
    make_user("sean", services=("widgets",))
    refuse_websockets(page)
    sign_in(page, site, "sean")
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "open", timeout=10_000)
    expect(page.locator("#connection-transport")).to_be_visible()
    gizmo = off_loop(Widget.objects.get, name="Gizmo")
    gizmo.quantity = 77
    off_loop(gizmo.save)
    expect(quantity_cell(page, gizmo)).to_have_text("77", timeout=3000)
    site.restart()  # drain over SSE: event: reconnect, then a new ticket and a resumed stream
    gizmo.quantity = 78
    off_loop(gizmo.save)
    expect(quantity_cell(page, gizmo)).to_have_text("78", timeout=10_000)
