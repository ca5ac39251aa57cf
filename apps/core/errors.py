"""The one place where errors become HTTP responses (pages and APIs), all in one shape.

Every API error answers `{"error": code, "detail": message, "field": first field at fault, "errors": [...]}`:
`error` is a stable code ("invalid", "not_found", "not_authenticated", "permission_denied", "throttled", ...),
`detail` a message a person can read on its own, `field` (only when a field is at fault; a dotted path for nested
input such as `items.0.price`) and `errors` (only with `field`: every field at fault as `{field, detail}`, so a
client can show all of them at once). Status codes and the headers DRF sets (WWW-Authenticate, Retry-After) stay.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from services.errors import SuiteError


def suite_error_payload(exc: SuiteError) -> dict[str, object]:
    """The error body of a SuiteError (its message already names the field)."""
    payload: dict[str, object] = {"error": exc.code, "detail": exc.message}
    if exc.field:
        payload["field"] = exc.field
        payload["errors"] = [{"field": exc.field, "detail": exc.message}]
    return payload


def _messages(detail: Any, path: str | None) -> list[tuple[str | None, str]]:
    """Flatten DRF's nested error detail into (dotted field path or None, message) pairs, in DRF's order."""
    if isinstance(detail, dict):
        pairs: list[tuple[str | None, str]] = []
        for key, value in detail.items():
            # non_field_errors belong to the object that holds them, not to a field of it
            child = path if key == api_settings.NON_FIELD_ERRORS_KEY else f"{path}.{key}" if path else str(key)
            pairs += _messages(value, child)
        return pairs
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [(path, str(item)) for item in detail]
        pairs = []
        for index, item in enumerate(detail):  # a list of objects (many=True): index them like items.0.price
            pairs += _messages(item, f"{path}.{index}" if path else str(index))
        return pairs
    return [(path, str(detail))]


def api_error_payload(exc: exceptions.APIException) -> dict[str, object]:
    """The error body of a DRF exception.

    1. `error` is the exception's code: "invalid" for every validation error, else DRF's default code.
    2. Messages are flattened to (field, message); `detail` is the first, naming its field.
    3. `field` is the first field at fault and `errors` lists every field error, when there is any.
    """
    code = "invalid" if isinstance(exc, exceptions.ValidationError) else exc.default_code
    pairs = _messages(exc.detail, None) or [(None, str(exc.default_detail))]
    readable = [(field, f"{field}: {message}" if field else message) for field, message in pairs]
    payload: dict[str, object] = {"error": code, "detail": readable[0][1]}
    field_errors = [{"field": field, "detail": message} for field, message in readable if field]
    if field_errors:
        payload["field"] = field_errors[0]["field"]
        payload["errors"] = field_errors
    return payload


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's EXCEPTION_HANDLER: SuiteError and every DRF exception answer in the suite's one shape.

    1. A SuiteError answers its own status and payload.
    2. Django's Http404 / PermissionDenied become DRF's NotFound / PermissionDenied (as DRF itself does).
    3. DRF's handler builds the response (status, WWW-Authenticate / Retry-After headers, transaction rollback);
       only its body is replaced. Anything else (a bug) returns None: Django's 500.
    """
    if isinstance(exc, SuiteError):
        return Response(suite_error_payload(exc), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        response.data = api_error_payload(exc)
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: under /api/ the one error shape (e.g. a word where a route wants an id); elsewhere Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "detail": f"No API endpoint at {request.path}."}, status=404)
    return defaults.page_not_found(request, exception)
