from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.access import access_required
from apps.accounts.roles import user_roles
from apps.core.live import status_snapshot

APPS = [
    {"key": "support", "title": "Support desk", "url": "support:index", "area": "support",
     "blurb": "Answer customers from the knowledge base; take over conversations live."},
    {"key": "sentiment", "title": "Market sentiment", "url": "sentiment:index", "area": "sentiment",
     "blurb": "Scored financial news per ticker and topic, with alerts when sentiment turns."},
    {"key": "recommender", "title": "Recommender", "url": "recommender:index", "area": "recommender_admin",
     "blurb": "Ranked, explained recommendations for the shop backend over an HTTP API."},
    {"key": "registry", "title": "Model registry", "url": "registry:index", "area": "registry",
     "blurb": "Base encoders, LoRA adapters, champion and challenger, promotion and rollback."},
]


@access_required(None)
def home(request: HttpRequest) -> HttpResponse:
    cards = [{**app, "allowed": request.user.has_perm(f"accounts.access_{app['area']}")} for app in APPS]
    return render(request, "core/home.html", {"cards": cards, "roles": user_roles(request.user)})


@extend_schema(responses=inline_serializer("Me", {"username": serializers.CharField(), "roles": serializers.ListField(child=serializers.CharField())}))
@api_view(["GET"])
def me(request: Request) -> Response:
    """Who the caller is and which roles it holds (any signed-in user or token)."""
    return Response({"username": request.user.get_username(), "roles": user_roles(request.user)})


@extend_schema(responses=inline_serializer("Status", {"services": serializers.ListField(child=serializers.DictField()), "checked_at": serializers.DateTimeField()}))
@api_view(["GET"])
def status(request: Request) -> Response:
    """Reachability of Redis and Kafka; addresses and failure details for staff only.

    API clients (the shop's token) and other roles learn only whether each service is up: host:port pairs and
    connection errors map the internal network for whoever holds a leaked token.
    """
    snapshot = status_snapshot()
    if not request.user.is_staff:
        snapshot["services"] = [{"name": s["name"], "ok": s["ok"],
                                 "message": f"{s['name']} is {'reachable' if s['ok'] else 'not reachable'}."}
                                for s in snapshot["services"]]
    return Response(snapshot)
