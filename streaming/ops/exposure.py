"""Who may read the operations endpoints (/readyz, /metrics): allowed networks or a bearer token."""

from __future__ import annotations

import hmac
import ipaddress

from django.http import HttpRequest, JsonResponse

from streaming.conf import streaming_settings


def _in_allowed_network(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    networks = streaming_settings.OPS_ALLOWED_NETWORKS
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def refusal(request: HttpRequest) -> JsonResponse | None:
    """None when `request` may read the endpoint; else the 401/403 answer.

    The address is the ASGI scope's client, which the trusted-proxy middleware has already set
    from X-Forwarded-For for trusted proxies only. A presented token must be right.
    """
    expected: str = streaming_settings.OPS_TOKEN
    presented = _bearer(request)
    if presented is not None:
        if expected and hmac.compare_digest(presented.encode(), expected.encode()):
            return None
        return _unauthorized()
    if _in_allowed_network(request.META.get("REMOTE_ADDR", "")):
        return None
    if expected:
        return _unauthorized()
    return JsonResponse({"code": "forbidden", "message": "Not from an allowed network."}, status=403)


def _unauthorized() -> JsonResponse:
    response = JsonResponse({"code": "unauthorized", "message": "A valid ops token is required."}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="ops"'
    return response
