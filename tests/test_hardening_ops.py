"""Operations endpoints: /readyz and /metrics only for allowed networks or the ops token; /healthz public."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)

OPS_PATHS = ("/readyz", "/metrics")


def _ops(settings: Any, **values: object) -> None:
    settings.STREAMING = {**settings.STREAMING, **values}


async def test_loopback_reads_readiness_and_metrics(worker):
    client = AsyncClient()
    for path in OPS_PATHS:
        assert (await client.get(path)).status_code == 200, path


async def test_an_address_outside_the_allowed_networks_is_refused(worker, settings):
    _ops(settings, OPS_ALLOWED_NETWORKS=["10.0.0.0/8"])
    client = AsyncClient()
    for path in OPS_PATHS:
        response = await client.get(path)
        assert response.status_code == 403 and response.json()["code"] == "forbidden", path
    assert (await client.get("/healthz")).status_code == 200


async def test_the_ops_token_opens_the_endpoints_from_anywhere(worker, settings):
    _ops(settings, OPS_ALLOWED_NETWORKS=[], OPS_TOKEN="s3cret-ops")
    client = AsyncClient()
    for path in OPS_PATHS:
        missing = await client.get(path)
        assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer"), path
        assert (await client.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await client.get(path, headers={"Authorization": "Bearer s3cret-ops"})).status_code == 200


async def test_a_wrong_token_is_refused_even_from_an_allowed_network(worker, settings):
    _ops(settings, OPS_TOKEN="s3cret-ops")
    response = await AsyncClient().get("/metrics", headers={"Authorization": "Bearer guess"})
    assert response.status_code == 401


def _status(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_forwarded_addresses_are_judged_behind_a_trusted_proxy_only(daphne_factory, server_env):
    """A client behind the proxy is judged by its own address; nobody poses as loopback."""
    proxied = daphne_factory({**server_env, "TRUSTED_PROXIES": "127.0.0.1", "STREAMING_OPS_TOKEN": "tk"})
    public = {"X-Forwarded-For": "203.0.113.9"}
    assert _status(proxied.url + "/metrics", public) == 401
    assert _status(proxied.url + "/metrics", {**public, "Authorization": "Bearer tk"}) == 200
    assert _status(proxied.url + "/readyz", {"X-Forwarded-For": "10.1.2.3"}) == 200
    assert _status(proxied.url + "/healthz", public) == 200
    direct = daphne_factory({**server_env, "STREAMING_OPS_ALLOWED_NETWORKS": "10.0.0.0/8"})
    assert _status(direct.url + "/readyz", {"X-Forwarded-For": "10.1.2.3"}) == 403
