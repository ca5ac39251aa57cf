from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.access import HasAccess, access_required
from services.errors import SuiteError


@access_required("recommender_admin")
def index(request: HttpRequest) -> HttpResponse:
    """The merchandiser's page: catalogue size, top items, and a recommendation preview for a user."""
    from services.recommender.overview import catalogue_overview
    from services.recommender.recommend import recommendations_for

    context = catalogue_overview()
    user_id = (request.GET.get("user") or "").strip()
    category = (request.GET.get("category") or "").strip()
    context.update(user_id=user_id, category=category, preview=[], strategy="", error="")
    if user_id:
        try:
            context["preview"], context["strategy"] = recommendations_for(user=user_id, k=10, category=category or None)
        except SuiteError as exc:
            context["error"] = exc.message
    return render(request, "recommender/index.html", context)


@extend_schema(responses=inline_serializer("RecommenderHealth", {
    "ready": serializers.BooleanField(), "detail": serializers.CharField(),
    "ranker": serializers.CharField(required=False, help_text='what ranks: "recommender:v<N>" (that version\'s ranker), '
                                                              '"snapshot:<name>" (the worker\'s) or "formula"'),
    "ranker_detail": serializers.CharField(required=False)}))
@api_view(["GET"])
@permission_classes([HasAccess("recommender_api")])
def health(request: Request) -> Response:
    """Whether the recommender can serve, and what ranks its candidates: the backend polls this before sending traffic."""
    from apps.recommender.models import Item
    from services.recommender.served import ranker_status

    count = Item.objects.count()
    if not count:
        return Response({"ready": False, "detail": "The recommender has no catalogue yet."})
    try:
        status = ranker_status()
    except Exception as exc:  # noqa: BLE001 - the health answer must come; what ranks is information
        status = {"ranker": "unknown", "detail": f"not known: {exc}"}
    return Response({"ready": True, "detail": f"{count} items in the catalogue.", "ranker": status["ranker"],
                     "ranker_detail": status["detail"]})
