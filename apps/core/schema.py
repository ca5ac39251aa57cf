"""OpenAPI: every operation documents the suite's one error shape (apps.core.errors) for the errors it can answer."""
from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The field at fault; a dotted path for nested input (items.0.price).")
    detail = serializers.CharField(help_text="What is wrong with it, readable on its own.")


class ErrorSerializer(serializers.Serializer):
    """The body of every API error (4xx and 503), whichever app answers it."""

    error = serializers.CharField(help_text="A stable code: invalid, not_authenticated, authentication_failed, "
                                            "permission_denied, not_found, method_not_allowed, parse_error, "
                                            "unsupported_media_type, conflict, busy, too_large, throttled, service_unavailable.")
    detail = serializers.CharField(help_text="A message for a person; names the field when one is at fault.")
    field = serializers.CharField(required=False, help_text="The first field at fault (absent when none is).")
    errors = FieldErrorSerializer(many=True, required=False, help_text="Every field at fault (present with `field`).")


ERROR_DESCRIPTIONS = {
    "400": "Invalid input: `field` names the first field at fault, `errors` lists every one.",
    "401": "No valid session or token (the WWW-Authenticate header says which scheme).",
    "403": "Signed in without the role this endpoint needs.",
    "404": "No such object.",
    "409": "Someone else changed it first (another agent, a run already in progress).",
    "413": "The request body is larger than this endpoint reads (SUITE_MAX_JSON_BYTES, or SUITE_MAX_BULK_JSON_BYTES).",
    "429": "Too many requests from this client (the Retry-After header says when to retry).",
    "503": "A backing service (Redis, Kafka, a worker) cannot be reached.",
}


class SuiteAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses an operation can answer, unless the view declares them.

    Which ones, from the view itself: 400 always (a body or a query can be malformed, and the views read query
    parameters that no declaration lists), 401 and 403 unless anyone may call it, 404 when the path names an object,
    429 when it is throttled, 413 and 503 for writes (a body has a size limit, apps.core.limits; writes reach the
    broker, Kafka or a worker). A view declares others
    (e.g. 409) with `@extend_schema(responses={409: ErrorSerializer})`.
    """

    def _error_codes(self) -> list[str]:
        writes = self.method not in ("GET", "HEAD", "OPTIONS")
        anyone = all(isinstance(p, AllowAny) for p in self.view.get_permissions())
        codes = ["400"]
        if not anyone:
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.view.get_throttles():
            codes.append("429")
        if writes:
            codes += ["413", "503"]
        return codes

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        # A private hook of drf-spectacular (drf-standardized-errors overrides it the same way); the public
        # alternative, a postprocessing hook, no longer knows the view's permissions and throttles.
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                error = OpenApiResponse(response=ErrorSerializer, description=ERROR_DESCRIPTIONS[code])
                responses[code] = self._get_response_for_code(error, code, direction=direction)
        return responses


# The 200 of views that answer a JSON list built by hand (not through a serializer).
OBJECT_LIST = OpenApiResponse(response={"type": "array", "items": {"type": "object", "additionalProperties": {}}})
STRING_LIST = OpenApiResponse(response={"type": "array", "items": {"type": "string"}})
