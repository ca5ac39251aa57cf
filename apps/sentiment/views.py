from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.access import access_required
from apps.sentiment.models import Ticker
from services.sentiment.queries import sources_list


@access_required("sentiment")
def index(request: HttpRequest) -> HttpResponse:
    """The risk analysts' dashboard; its data comes from /api/sentiment/ and /ws/sentiment/."""
    return render(request, "sentiment/index.html", {"tickers": Ticker.objects.all(), "sources": sources_list()})
