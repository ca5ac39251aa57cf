from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from apps.core.errors import suite_error_payload
from services.errors import SuiteError


class SuiteErrorMiddleware:
    """Turn a SuiteError raised by a page into a readable page (or JSON for /api/)."""

    def __init__(self, get_response) -> None:  # noqa: ANN001
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, SuiteError):
            return None
        if request.path.startswith("/api/") or request.accepts("application/json") and not request.accepts("text/html"):
            return JsonResponse(suite_error_payload(exc), status=exc.status_code)
        response = TemplateResponse(request, "core/error.html", {"error": exc}, status=exc.status_code)
        return response.render()
