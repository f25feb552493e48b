"""HTTP views of the streaming engine: health, readiness and metrics."""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from streaming.delivery.backend import get_backend
from streaming.delivery.worker import running_worker
from streaming.ops import exposure, health, metrics


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


async def readyz(request: HttpRequest) -> HttpResponse:
    """200 when this worker should get traffic; 503 while draining or without database or Redis."""
    refused = exposure.refusal(request)
    if refused:
        return refused
    found = await health.problems()
    if found:
        return JsonResponse({"status": "unavailable", "problems": found}, status=503)
    return JsonResponse({"status": "ready"})


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition; the series are documented in streaming/metrics.py."""
    refused = exposure.refusal(request)
    if refused:
        return refused
    worker = running_worker()
    local = metrics.worker_families(worker) + metrics.redis_families(worker, await get_backend().topology())
    fleet = await database_sync_to_async(metrics.fleet_families)()
    body, content_type = metrics.exposition(local + fleet)
    return HttpResponse(body, content_type=content_type)
