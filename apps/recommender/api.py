"""REST API of the recommender (token or session, access area recommender_api).

PUT and DELETE /api/items/{id}, POST /api/items (bulk), POST /api/events (one or a list; type not_interested demotes
the item for that user), GET /api/recommendations (a user), POST /api/recommendations/session (an anonymous session's
recent items), GET /api/items/{id}/similar. Every list of recommendations shown is recorded as an impression. Validation lives in services.recommender.catalog, whose errors name the field.
"""
from __future__ import annotations

import math
import time

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers as rf
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import HasAccess
from apps.core.schema import ErrorSerializer
from services.errors import SuiteError
from services.recommender import catalog
from services.recommender.recommend import (K_MAX, OFFSET_MAX, exclude_check, impression_record, items_similar, k_check,
                                            offset_check, per_category_check, recommendations_for, timings_collect)
from services.recommender.vectors import items_embed_request

ACCESS_TTL_S = 5.0  # how long a client's role check is reused: a revoked role stops working within this


class CachedAccess(HasAccess("recommender_api")):
    """HasAccess, remembered per user for ACCESS_TTL_S: the role lookup (two queries) was a third of a request."""

    _seen: dict[tuple[int, str], tuple[bool, float]] = {}

    def has_permission(self, request, view) -> bool:  # noqa: ANN001
        user = request.user
        if not user or not user.is_authenticated:
            return False
        now = time.monotonic()
        key = (user.pk, user.get_username())
        cached = self._seen.get(key)
        if cached and now - cached[1] < ACCESS_TTL_S and user.is_active:
            return cached[0]
        allowed = super().has_permission(request, view)
        self._seen[key] = (allowed, now)
        return allowed


API = [CachedAccess]
BULK_MAX = 5000  # items or events per request

ITEM_FIELDS = {"title": rf.CharField(required=False, allow_blank=True), "description": rf.CharField(required=False, allow_blank=True),
               "category": rf.CharField(required=False, allow_blank=True), "tags": rf.ListField(child=rf.CharField(), required=False),
               "price": rf.FloatField(required=False, allow_null=True), "in_stock": rf.BooleanField(required=False),
               "updated_at": rf.DateTimeField(required=False, allow_null=True)}
ITEM_PUT = inline_serializer("RecommenderItemIn", ITEM_FIELDS)
ITEM_BULK = inline_serializer("RecommenderItemBulkIn", {"id": rf.CharField(), **ITEM_FIELDS}, many=True)
WRITE_OUT = inline_serializer("RecommenderWriteOut", {"added": rf.IntegerField(), "updated": rf.IntegerField(),
                                                      "unchanged": rf.IntegerField(), "errors": rf.ListField(child=rf.CharField())})
EVENT_IN = inline_serializer("RecommenderEventIn", {
    "event_id": rf.CharField(required=False), "user_id": rf.CharField(), "item_id": rf.CharField(),
    "type": rf.ChoiceField(choices=["view", "click", "cart", "purchase", "not_interested"]),
    "timestamp": rf.DateTimeField(required=False)})
RECO = {"id": rf.CharField(), "title": rf.CharField(), "category": rf.CharField(), "price": rf.FloatField(allow_null=True),
        "in_stock": rf.BooleanField(), "score": rf.FloatField(), "reason": rf.CharField()}
RECO_OUT = inline_serializer("RecommenderRecommendations", {
    "user": rf.CharField(), "k": rf.IntegerField(), "offset": rf.IntegerField(),
    "strategy": rf.ChoiceField(choices=["personal", "session", "popular"]), "request_id": rf.CharField(),
    "items": inline_serializer("RecommenderRecommendation", RECO, many=True)})
SESSION_IN = inline_serializer("RecommenderSessionIn", {
    "items": rf.ListField(child=rf.CharField(), help_text="the session's recent item ids, oldest first"),
    "k": rf.IntegerField(required=False), "offset": rf.IntegerField(required=False), "category": rf.CharField(required=False),
    "exclude": rf.ListField(child=rf.CharField(), required=False), "per_category": rf.IntegerField(required=False)})
SESSION_OUT = inline_serializer("RecommenderSessionRecommendations", {
    "k": rf.IntegerField(), "offset": rf.IntegerField(), "strategy": rf.ChoiceField(choices=["session", "popular"]),
    "request_id": rf.CharField(), "items": inline_serializer("RecommenderSessionRecommendation", RECO, many=True)})
SIMILAR_OUT = inline_serializer("RecommenderSimilar", {"id": rf.CharField(), "k": rf.IntegerField(),
                                                       "items": inline_serializer("RecommenderSimilarItem", RECO, many=True)})
K_PARAM = OpenApiParameter("k", int, description=f"how many items, 1 to {K_MAX} (default 10)")
PAGE_PARAMS = [OpenApiParameter("offset", int, description=f"position of the first item, 0 to {OFFSET_MAX} (default 0)"),
               OpenApiParameter("exclude", str, description="item ids never to show, comma-separated"),
               OpenApiParameter("per_category", int, description="at most this many items of one category per page of k")]


def _finite(row: dict) -> dict:
    """A recommendation with any non-finite number (a price stored before validation refused them) as null.

    Strict JSON has no NaN or Infinity: one such value would turn the whole list into a 500.
    """
    return {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in row.items()}


def _timed(response: Response, spent: dict[str, float], started: float) -> Response:
    """The answer with a Server-Timing header (W3C): milliseconds per section of this request's recommendations
    ("history", "candidates", "cards" within them, "ranker" or "formula", "impression") and "app", the whole view; the
    benchmark reads it for the ranker's share of the server's time."""
    parts = {**spent, "app": time.perf_counter() - started}
    response["Server-Timing"] = ", ".join(f"{name};dur={1000 * seconds:.3f}" for name, seconds in parts.items())
    return response


def _bulk(data: object, name: str) -> list:
    rows = data if isinstance(data, list) else data.get(name) if isinstance(data, dict) and isinstance(data.get(name), list) else None
    if rows is None:
        raise SuiteError(f"Send a JSON list of {name} (or {{\"{name}\": [...]}}).", field=name)
    if len(rows) > BULK_MAX:
        raise SuiteError(f"At most {BULK_MAX} {name} per request.", field=name)
    return rows


def _bool(value: str | None, name: str, *, default: bool) -> bool:
    if value in (None, ""):
        return default
    lowered = value.lower()
    if lowered not in {"true", "false", "1", "0", "yes", "no"}:
        raise SuiteError(f"`{name}` must be true or false.", field=name)
    return lowered in {"true", "1", "yes"}


class ItemDetail(APIView):
    permission_classes = API

    @extend_schema(request=ITEM_PUT, responses={200: WRITE_OUT, 201: WRITE_OUT}, summary="Create or replace one item")
    def put(self, request: Request, external_id: str) -> Response:
        report = catalog.items_upsert(rows=[catalog.item_clean(request.data, external_id=external_id)])
        items_embed_request(pks=report.reembed)
        return Response(report.as_dict(), status=201 if report.added else 200)

    @extend_schema(request=None, responses={204: None, 404: ErrorSerializer},
                   summary="Delete one item (its vector too: no host recommends it any more)")
    def delete(self, request: Request, external_id: str) -> Response:
        catalog.item_delete(external_id=external_id)
        return Response(status=204)


class Items(APIView):
    permission_classes = API
    body_limit = "bulk"  # apps.core.limits: SUITE_MAX_BULK_JSON_BYTES

    @extend_schema(request=ITEM_BULK, responses={200: WRITE_OUT}, summary="Create or update items in bulk")
    def post(self, request: Request) -> Response:
        good, errors = catalog.rows_clean(rows=_bulk(request.data, "items"), clean=catalog.item_clean, label=lambda n: f"items[{n}]")
        report = catalog.items_upsert(rows=good) if good else catalog.WriteReport()
        items_embed_request(pks=report.reembed)
        report.errors = errors
        return Response(report.as_dict())


class Events(APIView):
    permission_classes = API
    body_limit = "bulk"

    @extend_schema(request=EVENT_IN, responses={200: WRITE_OUT}, summary="Record one event or a list (idempotent by event_id)")
    def post(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, dict) and "events" not in data:
            report = catalog.events_record(rows=[catalog.event_clean(data)])
        else:
            good, errors = catalog.rows_clean(rows=_bulk(data, "events"), clean=catalog.event_clean, label=lambda n: f"events[{n}]")
            report = catalog.events_record(rows=good)
            report.errors = errors
        return Response(report.as_dict())


class Recommendations(APIView):
    permission_classes = API

    @extend_schema(parameters=[OpenApiParameter("user", str, required=True), K_PARAM, OpenApiParameter("category", str),
                               OpenApiParameter("exclude_seen", bool, description="leave out what the user interacted with (default true)"),
                               *PAGE_PARAMS],
                   responses={200: RECO_OUT}, summary="Ranked items for a user (popular ones for unknown users)")
    def get(self, request: Request) -> Response:
        started = time.perf_counter()
        params = request.query_params
        user = (params.get("user") or "").strip()
        if not user:
            raise SuiteError("`user` is required.", field="user")
        k, offset = k_check(params.get("k", 10)), offset_check(params.get("offset", 0))
        with timings_collect() as spent:
            found, strategy = recommendations_for(user=user, k=k, offset=offset, category=params.get("category") or None,
                                                  exclude_seen=_bool(params.get("exclude_seen"), "exclude_seen", default=True),
                                                  exclude=exclude_check(params.get("exclude")),
                                                  per_category=per_category_check(params.get("per_category")))
        shown = time.perf_counter()
        request_id = impression_record(user=user, items=[r.item.external_id for r in found], offset=offset, strategy=strategy)
        spent["impression"] = time.perf_counter() - shown
        return _timed(Response({"user": user, "k": k, "offset": offset, "strategy": strategy, "request_id": request_id,
                                "items": [_finite(r.as_dict()) for r in found]}), spent, started)


class SessionRecommendations(APIView):
    permission_classes = API

    @extend_schema(request=SESSION_IN, responses={200: SESSION_OUT},
                   summary="Ranked items for an anonymous session from its recent item ids (no user id)")
    def post(self, request: Request) -> Response:
        started = time.perf_counter()
        data = request.data
        if not isinstance(data, dict):
            raise SuiteError("Send a JSON object with `items`: the session's recent item ids, oldest first.", field="items")
        items = data.get("items")
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise SuiteError("`items` must be a list of item ids (the session's recent ones, oldest first).", field="items")
        k, offset = k_check(data.get("k", 10)), offset_check(data.get("offset", 0))
        category = data.get("category") or None
        if category is not None and not isinstance(category, str):
            raise SuiteError("`category` must be a string.", field="category")
        with timings_collect() as spent:
            found, strategy = recommendations_for(session=items, k=k, offset=offset, category=category,
                                                  exclude=exclude_check(data.get("exclude")),
                                                  per_category=per_category_check(data.get("per_category")))
        shown = time.perf_counter()
        request_id = impression_record(user=None, items=[r.item.external_id for r in found], offset=offset, strategy=strategy)
        spent["impression"] = time.perf_counter() - shown
        return _timed(Response({"k": k, "offset": offset, "strategy": strategy, "request_id": request_id,
                                "items": [_finite(r.as_dict()) for r in found]}), spent, started)


class ItemSimilar(APIView):
    permission_classes = API

    @extend_schema(parameters=[K_PARAM], responses={200: SIMILAR_OUT}, summary="Items whose text is nearest this one's")
    def get(self, request: Request, external_id: str) -> Response:
        k = k_check(request.query_params.get("k", 10))
        return Response({"id": external_id, "k": k, "items": [_finite(r.as_dict()) for r in items_similar(external_id=external_id, k=k)]})
