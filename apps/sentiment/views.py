from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.access import access_required


@access_required("sentiment")
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "sentiment/index.html")
