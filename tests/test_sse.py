"""The SSE fallback against real daphne workers sharing Redis: tickets, resume across a restart, drain."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.client import HTTPResponse
from typing import Any

import pytest

from streaming.delivery.publish import publish
from tests.servers import DaphneProcess
from tests.streaming_helpers import make_user, token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    """The shared worker environment with a short drain window."""
    return {**server_env, "STREAMING_DRAIN_SECONDS": "0.5"}


@pytest.fixture
def token(db) -> str:
    return token_for(make_user("sse", services=("widgets",)), "stream:widgets")


def ticket(server: DaphneProcess, token: str) -> str:
    request = urllib.request.Request(
        server.url + "/sse/ticket/", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())["ticket"]


def open_stream(server: DaphneProcess, query: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    request = urllib.request.Request(f"{server.url}/sse/stream/?{query}", headers=headers or {})
    return urllib.request.urlopen(request, timeout=10)


def sse_events(resp: HTTPResponse) -> Iterator[dict[str, Any]]:
    """Each SSE event as {"event", "id", "retry", "data"} until the response ends (comments skipped)."""
    fields: dict[str, Any] = {}
    for raw in resp:
        line = raw.decode().rstrip("\n")
        if not line:
            if fields:
                fields["data"] = json.loads(fields["data"])
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def read_until(events: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The next events up to and including the `count`-th `event` message."""
    got, seen = [], 0
    while seen < count:
        item = next(events)
        got.append(item)
        seen += item["data"]["type"] == "event"
    return got


def test_sse_resumes_across_a_worker_restart_with_nothing_lost(daphne_factory, server_env, token):
    first, second = daphne_factory(server_env), daphne_factory(server_env)
    events = sse_events(open_stream(first, f"stream=widgets&ticket={ticket(first, token)}"))
    assert next(events)["data"]["type"] == "welcome"
    subscribed = next(events)
    assert subscribed["data"]["type"] == "subscribed" and subscribed["id"]
    for n in range(3):
        publish("widgets", {"n": n})
    received = read_until(events, 3)
    first.signal(signal.SIGTERM)  # drain: reconnect hint, then the response ends
    rest = list(events)
    assert rest[0]["event"] == "reconnect" and int(rest[0]["retry"]) >= 0
    assert rest[-1]["event"] == "close" and rest[-1]["data"]["code"] == 4012
    for n in range(3, 6):  # published while the client is away
        publish("widgets", {"n": n})
    last_id = [item["id"] for item in received if "id" in item][-1]
    resumed = sse_events(
        open_stream(second, f"stream=widgets&ticket={ticket(second, token)}", {"Last-Event-ID": last_id})
    )
    assert next(resumed)["data"]["type"] == "welcome"
    assert next(resumed)["data"]["recovered"] is True
    received += read_until(resumed, 3)
    data = [item["data"]["data"]["n"] for item in received if item["data"]["type"] == "event"]
    assert data == [0, 1, 2, 3, 4, 5]


def test_a_ticket_opens_one_stream_only_and_a_token_never_goes_in_the_url(daphne_factory, server_env, token):
    server = daphne_factory(server_env)
    once = ticket(server, token)
    with open_stream(server, f"stream=widgets&ticket={once}") as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
    for query in (f"stream=widgets&ticket={once}", f"stream=widgets&access_token={token}", "stream=widgets"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            open_stream(server, query)
        assert refused.value.code == 401
        assert json.loads(refused.value.read())["error"] == "unauthenticated"


def test_the_bearer_header_works_and_streams_are_checked_like_subscriptions(
    daphne_factory, server_env, token
):
    server = daphne_factory(server_env)
    bearer = {"Authorization": f"Bearer {token}"}
    with open_stream(server, "stream=widgets", bearer) as resp:
        events = sse_events(resp)
        assert next(events)["data"]["type"] == "welcome"
        assert next(events)["data"]["service"] == "widgets"
    for query, status in (("stream=nope", 404), ("stream=notifications", 403), ("stream=/all", 400)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            open_stream(server, query, bearer)
        assert refused.value.code == status, query
