"""The answer to a sign-in refused by the login lockout (django-axes' AXES_LOCKOUT_CALLABLE)."""
from __future__ import annotations

import math

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from apps.core.errors import suite_error_payload
from services.errors import SuiteError

STATUS = 429  # too many requests: the client may try again after Retry-After


def lockout_message() -> str:
    minutes = max(1, math.ceil(settings.AXES_COOLOFF_TIME * 60))
    return (f"Too many failed sign-ins for this account from your address: signing in is locked for {minutes} "
            f"minute{'s' if minutes != 1 else ''}. Wait, then try again (or ask an administrator to unlock it).")


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict | None = None) -> HttpResponse:
    """429 with Retry-After: the suite's JSON error shape for API and script clients, the sign-in page otherwise.

    1. JSON when the client asked for it (Accept, XMLHttpRequest) or called /api/.
    2. Otherwise the sign-in page again, saying why and for how long; the form stays so the person sees where
       they are, but any sign-in is refused until the cool-off ends.
    """
    message = lockout_message()
    wants_json = (request.path.startswith("/api/") or request.headers.get("x-requested-with") == "XMLHttpRequest"
                  or request.accepts("application/json") and not request.accepts("text/html"))
    if wants_json:
        error = SuiteError(message, field="username")
        response: HttpResponse = JsonResponse({**suite_error_payload(error), "error": "locked_out"}, status=STATUS)
    else:
        response = render(request, "accounts/locked_out.html", {"message": message}, status=STATUS)
    response["Retry-After"] = str(max(60, int(settings.AXES_COOLOFF_TIME * 3600)))
    return response
