"""HTTP views of the streaming engine: the publish API and health."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from streaming import health, metrics, services
from streaming.auth import AuthError, verify_token
from streaming.conf import streaming_settings
from streaming.protocol import CLOSE_UNAUTHENTICATED, ProtocolError
from streaming.publish import publish
from streaming.worker import running_worker


def problem(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return header[7:].strip()
    return None


def _body(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > streaming_settings.MAX_FRAME_BYTES:
        raise ProtocolError("too_large", f"Body is larger than {streaming_settings.MAX_FRAME_BYTES} bytes.")
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, RecursionError):
        raise ProtocolError("bad_request", "Body is not valid JSON.") from None
    if not isinstance(body, dict) or "data" not in body:
        raise ProtocolError("bad_request", 'Body must be a JSON object {"topic"?, "data"}.')
    topic = body.get("topic")
    if topic is not None and (not isinstance(topic, str) or not topic or len(topic) > 200):
        raise ProtocolError("bad_request", "'topic' must be a non-empty string.")
    unknown = set(body) - {"topic", "data"}
    if unknown:
        raise ProtocolError("bad_request", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    return body


@csrf_exempt
@require_POST
def publish_event(request: HttpRequest, service: str) -> JsonResponse:
    """POST /api/streams/<service>/events with a bearer token holding `publish:<service>`."""
    token = _bearer(request)
    if token is None:
        return problem(401, "unauthenticated", "Send 'Authorization: Bearer <token>'.")
    try:
        grant = verify_token(token)
    except AuthError as refused:
        status = 401 if refused.code == CLOSE_UNAUTHENTICATED else 403
        return problem(status, "unauthenticated" if status == 401 else "forbidden", refused.reason)
    if services.get(service) is None:
        return problem(404, "unknown_service", f"Unknown service {service[:40]!r}.")
    if not grant.principal.can_publish(service):
        return problem(403, "forbidden", f"Your token does not allow publish:{service}.")
    try:
        body = _body(request)
        published = publish(service, body["data"], topic=body.get("topic"))
    except ProtocolError as exc:
        return problem(413 if exc.code == "too_large" else 400, exc.code, exc.message)
    except ValueError as exc:
        return problem(400, "bad_request", f"Data cannot be encoded as JSON: {exc}.")
    return JsonResponse({"service": published.service, "topic": published.topic,
                         "epoch": published.epoch, "seq": published.seq}, status=202)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


async def readyz(request: HttpRequest) -> JsonResponse:
    """200 when this worker should get traffic; 503 while draining or without database or Redis."""
    found = await health.problems()
    if found:
        return JsonResponse({"status": "unavailable", "problems": found}, status=503)
    return JsonResponse({"status": "ready"})


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition; the series are documented in streaming/metrics.py."""
    local = metrics.worker_families(running_worker())
    fleet = await database_sync_to_async(metrics.fleet_families)()
    body, content_type = metrics.exposition(local + fleet)
    return HttpResponse(body, content_type=content_type)
