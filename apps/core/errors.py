"""The one place where SuiteError becomes an HTTP response (pages and APIs)."""
from __future__ import annotations

from rest_framework.response import Response
from rest_framework.views import exception_handler

from services.errors import SuiteError


def suite_error_payload(exc: SuiteError) -> dict[str, object]:
    payload: dict[str, object] = {"error": exc.code, "detail": exc.message}
    if exc.field:
        payload["field"] = exc.field
    return payload


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, SuiteError):
        return Response(suite_error_payload(exc), status=exc.status_code)
    return exception_handler(exc, context)
