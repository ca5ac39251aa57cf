from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.access import access_required


@access_required("support")
def index(request: HttpRequest) -> HttpResponse:
    """The agents' console."""
    return render(request, "support/index.html")


def widget(request: HttpRequest) -> HttpResponse:
    """The customers' chat page: anonymous by design (the API it calls is throttled and token-scoped).

    Sites listed in SUPPORT_WIDGET_ORIGINS may frame it (support/embed.js): the page then says so with a CSP
    frame-ancestors list instead of X-Frame-Options DENY; any other site still cannot frame it.
    """
    kb = request.GET.get("kb", "default")
    embedded = request.GET.get("embed") == "1"
    response = render(request, "support/widget.html", {
        "kb": kb if kb.replace("-", "").replace("_", "").isalnum() else "default",
        "max_chars": settings.SUPPORT_MESSAGE_MAX_CHARS, "embedded": embedded})
    if settings.SUPPORT_WIDGET_ORIGINS:
        response.xframe_options_exempt = True
        response["Content-Security-Policy"] = "frame-ancestors 'self' " + " ".join(settings.SUPPORT_WIDGET_ORIGINS)
    return response
