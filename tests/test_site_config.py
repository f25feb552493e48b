"""A real site's configuration: the page's OAuth client, trusted proxies, probes over plain HTTP."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from oauth2_provider.models import Application

from widgetapp.proxy import forwarded_scope
from widgetapp.widgets.browser_client import BROWSER_CLIENT_ID, browser_client_register

PROXY = "10.0.0.5"


def test_browser_client_follows_the_public_origins(db: Any, settings: Any) -> None:
    settings.DEBUG = False
    browser_client_register(origins=["https://widgets.example.com/", "https://backup.example.com:8443"])
    browser_client_register(origins=["https://widgets.example.com"])
    app = Application.objects.get(client_id=BROWSER_CLIENT_ID)
    assert app.redirect_uris == "https://widgets.example.com/app/callback"
    assert app.client_type == Application.CLIENT_PUBLIC and Application.objects.count() == 1


@pytest.mark.parametrize(
    "origin", ["http://widgets.example.com", "https://widgets.example.com/app", "widgets"]
)
def test_production_refuses_anything_but_an_https_origin(db: Any, settings: Any, origin: str) -> None:
    settings.DEBUG = False
    with pytest.raises(ValidationError, match="is not an origin"):
        browser_client_register(origins=[origin])
    assert not Application.objects.exists()


def test_browser_client_command_uses_public_origins(db: Any, settings: Any) -> None:
    settings.DEBUG = False
    settings.PUBLIC_ORIGINS = ["https://widgets.example.com"]
    out = io.StringIO()
    call_command("browser_client", stdout=out)
    assert (
        out.getvalue().strip() == "widgetapp-browser: redirect URIs https://widgets.example.com/app/callback"
    )
    call_command(
        "browser_client", "--origin", "https://a.example", "--origin", "https://b.example", stdout=out
    )
    assert Application.objects.get().redirect_uris.split() == [
        "https://a.example/app/callback",
        "https://b.example/app/callback",
    ]
    settings.PUBLIC_ORIGINS = []
    with pytest.raises(CommandError, match="Name at least one public origin"):
        call_command("browser_client")


def test_dev_allows_the_demo_http_origins(db: Any, settings: Any) -> None:
    settings.DEBUG = True
    app = browser_client_register(origins=["http://127.0.0.1:8000"])
    assert app.redirect_uris == "http://127.0.0.1:8000/app/callback"


def _scope(peer: str, headers: dict[bytes, bytes], kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": [peer, 5000],
        "headers": list(headers.items()),
    }


def test_forwarded_headers_from_a_trusted_proxy_give_the_client_and_scheme() -> None:
    headers = {b"x-forwarded-for": b"198.51.100.7, 203.0.113.9", b"x-forwarded-proto": b"https"}
    scope = forwarded_scope(_scope(PROXY, headers, "websocket"), ["10.0.0.0/8"])
    # The rightmost hop the proxy saw; what the client wrote before it cannot be checked.
    assert scope["client"][0] == "203.0.113.9" and scope["scheme"] == "wss"
    scope = forwarded_scope(_scope(PROXY, headers), [PROXY, "203.0.113.9"])
    assert scope["client"][0] == "198.51.100.7" and scope["scheme"] == "https"


def test_forwarded_headers_from_anyone_else_are_dropped() -> None:
    headers = {b"x-forwarded-for": b"198.51.100.7", b"x-forwarded-proto": b"https", b"host": b"x"}
    scope = forwarded_scope(_scope("192.0.2.1", headers), [PROXY])
    assert scope["client"][0] == "192.0.2.1" and scope["scheme"] == "http"
    assert scope["headers"] == [(b"host", b"x")]


def _status(url: str) -> int:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.django_db(transaction=True)
def test_probes_answer_on_the_worker_port_in_production(
    daphne_factory: Any, server_env: dict[str, str]
) -> None:
    production = {**server_env, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "x" * 60}
    worker = daphne_factory(production)
    assert _status(worker.url + "/healthz") == 200
    assert _status(worker.url + "/readyz") == 200
    assert _status(worker.url + "/metrics") == 200
    assert _status(worker.url + "/accounts/login/") == 301  # everything else goes to https
