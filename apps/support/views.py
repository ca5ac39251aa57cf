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
    """The customers' chat page: anonymous by design (the API it calls is throttled and token-scoped)."""
    kb = request.GET.get("kb", "default")
    return render(request, "support/widget.html", {"kb": kb if kb.replace("-", "").replace("_", "").isalnum() else "default",
                                                   "max_chars": settings.SUPPORT_MESSAGE_MAX_CHARS})
