"""Client address and scheme from a reverse proxy's X-Forwarded-* headers, believed from trusted proxies only.

Daphne's own `--proxy-headers` believes these headers from any peer, so anyone who can reach a
worker directly could pose as any address or as HTTPS. Here a request keeps the peer's address
and scheme unless the peer is in TRUSTED_PROXIES; from anyone else the headers are removed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from django.conf import settings

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

FORWARDED_FOR = b"x-forwarded-for"
FORWARDED_PROTO = b"x-forwarded-proto"
SECURE_SCHEMES = {"http": "https", "websocket": "wss"}


def is_trusted(address: str, proxies: Iterable[str]) -> bool:
    """Whether `address` is one of `proxies` (addresses or networks such as 10.0.0.0/8)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def client_address(forwarded_for: str, peer: str, proxies: Iterable[str]) -> str:
    """The rightmost address in X-Forwarded-For that is not a trusted proxy: the first hop we can believe."""
    hops = [peer, *reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()])]
    for hop in hops:
        if not is_trusted(hop, proxies):
            return hop
    return hops[-1]


def forwarded_scope(scope: Scope, proxies: list[str]) -> Scope:
    """`scope` with client and scheme as the trusted proxy saw them; untrusted forwarding headers dropped."""
    client = scope.get("client")
    if not client or not is_trusted(client[0], proxies):
        headers = [(k, v) for k, v in scope["headers"] if k not in (FORWARDED_FOR, FORWARDED_PROTO)]
        return {**scope, "headers": headers}
    values = dict(scope["headers"])
    updated = dict(scope)
    if FORWARDED_FOR in values:
        updated["client"] = [client_address(values[FORWARDED_FOR].decode("latin-1"), client[0], proxies), 0]
    if values.get(FORWARDED_PROTO, b"").decode("latin-1").strip().lower() == "https":
        updated["scheme"] = SECURE_SCHEMES[scope["type"]]
    return updated


class TrustedProxyHeaders:
    """ASGI middleware applying `forwarded_scope` to HTTP and websocket connections."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in SECURE_SCHEMES:
            scope = forwarded_scope(scope, settings.TRUSTED_PROXIES)
        await self.app(scope, receive, send)
