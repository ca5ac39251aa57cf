"""Operators' endpoints: /healthz (the process answers), /readyz (its backing services), /metrics (Prometheus).

Plain Django views, not DRF: no sign-in, no throttle, no session, no body is read. /healthz and /readyz answer
anyone and reveal no address (services/health.py's readiness says what is wrong in words). /metrics is off (404)
unless SUITE_METRICS_TOKEN is set, and then wants `Authorization: Bearer <token>`.
"""
from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from services.health import readiness_report


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while the process serves requests; nothing else is checked (a liveness probe must not flap with Redis)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, Redis, Kafka, the registry folder and the champions' artifacts are all there, else 503."""
    report = readiness_report(redis_url=settings.REDIS_URL, kafka_bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                              registry_dir=settings.REGISTRY_DIR, timeout=settings.SUITE_READY_TIMEOUT_S)
    return JsonResponse(report, status=200 if report["status"] == "ready" else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Every series in Prometheus' text format, for a bearer of SUITE_METRICS_TOKEN; 404 when no token is set."""
    token = settings.SUITE_METRICS_TOKEN
    if not token:
        return JsonResponse({"error": "not_found", "detail": "Metrics are off (SUITE_METRICS_TOKEN is not set)."},
                            status=404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = JsonResponse({"error": "not_authenticated", "detail": "Send Authorization: Bearer <SUITE_METRICS_TOKEN>."},
                                status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from services.metrics import metrics_render

    body, content_type = metrics_render()
    return HttpResponse(body, content_type=content_type)
