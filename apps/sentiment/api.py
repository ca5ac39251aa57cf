"""REST API of the sentiment monitor (risk analysts): /api/sentiment/..."""
from __future__ import annotations

from datetime import datetime, timezone

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import HasAccess
from apps.core.schema import OBJECT_LIST, STRING_LIST
from apps.sentiment.models import LABELS, OVERALL, RULE_LIMITS, AlertRule, Ticker
from services.sentiment.aggregates import series_get
from services.sentiment.alerts import alert_acknowledge, alert_headlines, alert_json
from services.sentiment.notifications import silence_create, silence_expire, silence_json, silences_list
from services.sentiment.bus import DEFAULT_GROUP, topics_default
from services.sentiment.dashboard import headlines_page, sparklines_get, topics_breakdown
from services.sentiment.queries import alerts_list, headlines_list, range_parse, sources_list
from services.sentiment.store import topic_scope
from services.sentiment.watchlist import relabel_create, rule_save, ticker_save, topic_relabel_create

SENTIMENT = [HasAccess("sentiment")]


def _limit(request: Request, default: int = 50) -> int:
    try:
        return int(request.query_params.get("limit", default))
    except ValueError:
        from services.errors import SuiteError

        raise SuiteError("limit must be a whole number.", field="limit") from None


class Headlines(APIView):
    permission_classes = SENTIMENT

    @extend_schema(responses=OBJECT_LIST)
    def get(self, request: Request) -> Response:
        since, _ = range_parse(value=request.query_params.get("range"))
        return Response(headlines_list(ticker=request.query_params.get("ticker"), source=request.query_params.get("source"),
                                       since=since, limit=_limit(request)))


def _int_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        from services.errors import SuiteError

        raise SuiteError(f"{name} must be a whole number.", field=name) from None


class HeadlinesPage(APIView):
    """GET /headlines/page?page=&page_size=&ticker=&source=&topic=&range=: one page, with total and pages."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        since, _ = range_parse(value=request.query_params.get("range"))
        q = request.query_params
        return Response(headlines_page(ticker=q.get("ticker"), source=q.get("source"), topic=q.get("topic"), since=since,
                                       page=_int_param(request, "page", 1), page_size=_int_param(request, "page_size", 25)))


class Topics(APIView):
    """GET /topics?range=&ticker=&source=: count, mean score and negative share per topic (its buckets), and `tagger`:
    whether the topic model (and which version) or the keyword lists tag new headlines."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        since, granularity = range_parse(value=request.query_params.get("range"))
        return Response(topics_breakdown(ticker=request.query_params.get("ticker"), granularity=granularity,
                                         source=request.query_params.get("source"), since=since))


class Sparklines(APIView):
    """GET /sparklines?range=: each watchlist ticker's buckets in the range (the watchlist's sparklines)."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OBJECT_LIST)
    def get(self, request: Request) -> Response:
        since, granularity = range_parse(value=request.query_params.get("range"))
        return Response(sparklines_get(granularity=granularity, since=since))


class Series(APIView):
    permission_classes = SENTIMENT

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        since, granularity = range_parse(value=request.query_params.get("range"))
        granularity = request.query_params.get("granularity", granularity)
        scope = (request.query_params.get("ticker") or OVERALL).upper()
        topic = request.query_params.get("topic")
        if topic:  # the topic's buckets, or the ticker's within the topic
            scope = topic_scope(topic=topic, symbol=None if scope == OVERALL else scope)
        return Response({"scope": scope, "granularity": granularity,
                         "points": series_get(scope=scope, granularity=granularity, since=since)})


class Sources(APIView):
    permission_classes = SENTIMENT

    @extend_schema(responses=STRING_LIST)
    def get(self, request: Request) -> Response:
        return Response(sources_list())


class Alerts(APIView):
    permission_classes = SENTIMENT

    @extend_schema(responses=OBJECT_LIST)
    def get(self, request: Request) -> Response:
        alerts = alerts_list(open_only=request.query_params.get("open") == "1", symbol=request.query_params.get("ticker"),
                             state=request.query_params.get("state"), limit=_limit(request))
        return Response([alert_json(a) for a in alerts])


class AlertHeadlines(APIView):
    """GET /alerts/<id>/headlines: the headlines in the window that made the alert (drill-down)."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OBJECT_LIST)
    def get(self, request: Request, alert_id: int) -> Response:
        return Response(alert_headlines(alert_id=alert_id))


class SilenceBody(serializers.Serializer):
    ticker = serializers.CharField(required=False, allow_blank=True, max_length=21, default="")
    topic = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    rule = serializers.IntegerField(required=False, allow_null=True, default=None)
    starts_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    ends_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=90 * 24 * 60, allow_null=True, default=None)
    reason = serializers.CharField(max_length=2000)


class Silences(APIView):
    """GET lists the silences (active ones; ?all=1 with the expired), POST mutes a ticker, topic or rule for a time."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OBJECT_LIST, operation_id="sentiment_silences_list")
    def get(self, request: Request) -> Response:
        silences = silences_list(active_only=request.query_params.get("all") != "1", limit=_limit(request, 100))
        return Response([silence_json(s) for s in silences])

    @extend_schema(request=SilenceBody, responses={201: OpenApiTypes.OBJECT}, operation_id="sentiment_silences_create")
    def post(self, request: Request) -> Response:
        from datetime import timedelta

        from django.utils import timezone as dj_timezone

        from services.errors import SuiteError

        body = SilenceBody(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        starts_at = data["starts_at"] or dj_timezone.now()
        if (data["ends_at"] is None) == (data["minutes"] is None):
            raise SuiteError("give either ends_at or minutes (how long the silence lasts).", field="ends_at")
        ends_at = data["ends_at"] or starts_at + timedelta(minutes=data["minutes"])
        silence = silence_create(user=request.user, reason=data["reason"], starts_at=starts_at, ends_at=ends_at,
                                 symbol=data["ticker"], topic=data["topic"], rule_id=data["rule"])
        return Response(silence_json(silence), status=201)


class SilenceExpire(APIView):
    """DELETE /silences/<id> ends a silence now (it stays listed with ?all=1)."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="sentiment_silence_expire")
    def delete(self, request: Request, silence_id: int) -> Response:
        return Response(silence_json(silence_expire(silence_id=silence_id)))


class AcknowledgeBody(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class Acknowledge(APIView):
    permission_classes = SENTIMENT

    @extend_schema(request=AcknowledgeBody, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, alert_id: int) -> Response:
        body = AcknowledgeBody(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(alert_json(alert_acknowledge(alert_id=alert_id, user=request.user, comment=body.validated_data["comment"])))


class RelabelBody(serializers.Serializer):
    label = serializers.ChoiceField(choices=[k for k, _ in LABELS])


class Relabel(APIView):
    permission_classes = SENTIMENT

    @extend_schema(request=RelabelBody, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, news_id: int) -> Response:
        body = RelabelBody(data=request.data)
        body.is_valid(raise_exception=True)
        relabel = relabel_create(news_id=news_id, label=body.validated_data["label"], source=f"analyst:{request.user.get_username()}")
        return Response({"id": relabel.id, "news": news_id, "label": relabel.label, "previous_label": relabel.previous_label,
                         "source": relabel.source, "created_at": relabel.created_at.isoformat()}, status=201)


class TopicRelabelBody(serializers.Serializer):
    topic = serializers.CharField(max_length=100)


class TopicRelabel(APIView):
    """POST /headlines/<id>/topic {topic}: an analyst's topic for a headline, a training example of the `topic` task."""

    permission_classes = SENTIMENT

    @extend_schema(request=TopicRelabelBody, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, news_id: int) -> Response:
        body = TopicRelabelBody(data=request.data)
        body.is_valid(raise_exception=True)
        relabel = topic_relabel_create(news_id=news_id, topic=body.validated_data["topic"],
                                       source=f"analyst:{request.user.get_username()}")
        return Response({"id": relabel.id, "news": news_id, "task": relabel.task, "topic": relabel.label,
                         "previous_topic": relabel.previous_label, "source": relabel.source,
                         "created_at": relabel.created_at.isoformat()}, status=201)


class TopicNames(APIView):
    """GET /topics/names: the topics an analyst may pick when relabelling, and what tags new headlines."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        from services.sentiment.topics import topic_names_known, topic_source

        return Response({"names": topic_names_known(), "tagger": topic_source()})


class Lag(APIView):
    """The consumer lag the news consumers published (services/kafka_lag.py): Redis only, never Kafka."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        import redis

        from services.kafka_lag import lag_published

        group = request.query_params.get("group") or DEFAULT_GROUP
        topic = request.query_params.get("topic") or topics_default().raw
        body = {"group": group, "topic": topic, "partitions": {}, "total": None, "consumers": [], "measured_at": None}
        try:
            entries = lag_published(group=group, topic=topic)
        except redis.RedisError:
            return Response({**body, "error": "Redis is not reachable: the published lag cannot be read."})
        if not entries:
            return Response({**body, "error": "No consumer of this group has published its lag lately "
                                              "(is `manage.py news_consume` running?)."})
        return Response({**body, "partitions": {str(e.partition): e.lag for e in entries},
                         "total": sum(e.lag for e in entries),
                         "consumers": sorted({e.consumer for e in entries}),
                         "measured_at": datetime.fromtimestamp(min(e.measured_at for e in entries), tz=timezone.utc).isoformat()})


def _ticker_json(ticker: Ticker) -> dict:
    return {"symbol": ticker.symbol, "name": ticker.name, "aliases": ticker.aliases,
            "rules": [_rule_json(rule) for rule in ticker.rules.all()]}


def _rule_json(rule: AlertRule) -> dict:
    return {"id": rule.id, "ticker": rule.ticker.symbol if rule.ticker_id else None, "topic": rule.topic,
            "kind": rule.kind, "threshold": rule.threshold, "clear_threshold": rule.clear_threshold,
            "window_minutes": rule.window_minutes, "baseline_days": rule.baseline_days, "min_count": rule.min_count,
            "for_evaluations": rule.for_evaluations, "cooldown_minutes": rule.cooldown_minutes,
            "group_minutes": rule.group_minutes,
            "channels": rule.channels, "email_to": rule.email_to, "webhook_url": rule.webhook_url, "enabled": rule.enabled,
            "last_error": rule.last_error}  # why its last evaluation failed, if it did


class TickerBody(serializers.Serializer):
    symbol = serializers.CharField(max_length=21)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    aliases = serializers.ListField(child=serializers.CharField(max_length=200), required=False, default=list)


class Tickers(APIView):
    permission_classes = SENTIMENT

    @extend_schema(responses=OBJECT_LIST, operation_id="sentiment_tickers_list")
    def get(self, request: Request) -> Response:
        return Response([_ticker_json(t) for t in Ticker.objects.prefetch_related("rules")])

    @extend_schema(request=TickerBody, responses={201: OpenApiTypes.OBJECT}, operation_id="sentiment_tickers_save")
    def post(self, request: Request) -> Response:
        body = TickerBody(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(_ticker_json(ticker_save(**body.validated_data)), status=201)


class RuleBody(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[k for k, _ in AlertRule.KINDS])
    threshold = serializers.FloatField(required=False, min_value=0.0001, max_value=RULE_LIMITS["threshold"])
    clear_threshold = serializers.FloatField(required=False, allow_null=True, min_value=0.0001,
                                             max_value=RULE_LIMITS["threshold"],
                                             help_text="a firing alert resolves below it; omitted on a new rule: "
                                                       "0.75 × threshold; null: the threshold (no hysteresis)")
    topic = serializers.CharField(required=False, allow_blank=True, max_length=100)
    for_evaluations = serializers.IntegerField(required=False, min_value=1, max_value=RULE_LIMITS["for_evaluations"],
                                               help_text="evaluations the condition must hold before firing "
                                                         "(default 3 on a new rule)")
    group_minutes = serializers.IntegerField(required=False, min_value=0, max_value=RULE_LIMITS["group_minutes"])
    window_minutes = serializers.IntegerField(required=False, min_value=1, max_value=RULE_LIMITS["window_minutes"])
    baseline_days = serializers.IntegerField(required=False, min_value=1, max_value=RULE_LIMITS["baseline_days"])
    min_count = serializers.IntegerField(required=False, min_value=1, max_value=RULE_LIMITS["min_count"])
    cooldown_minutes = serializers.IntegerField(required=False, min_value=1, max_value=RULE_LIMITS["cooldown_minutes"])
    channels = serializers.ListField(child=serializers.CharField(), required=False)
    email_to = serializers.CharField(required=False, allow_blank=True, max_length=500)
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=1000)
    enabled = serializers.BooleanField(required=False)


class RuleCreate(APIView):
    """POST /tickers/<symbol>/rules creates a rule."""

    permission_classes = SENTIMENT

    @extend_schema(request=RuleBody, responses={201: OpenApiTypes.OBJECT}, operation_id="sentiment_rule_create")
    def post(self, request: Request, symbol: str) -> Response:
        body = RuleBody(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(_rule_json(rule_save(symbol=symbol, **body.validated_data)), status=201)


class RuleUpdate(APIView):
    """PUT /tickers/<symbol>/rules/<id> changes a rule."""

    permission_classes = SENTIMENT

    @extend_schema(request=RuleBody, responses=OpenApiTypes.OBJECT, operation_id="sentiment_rule_update")
    def put(self, request: Request, symbol: str, rule_id: int) -> Response:
        body = RuleBody(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(_rule_json(rule_save(symbol=symbol, rule_id=rule_id, **body.validated_data)))


class TopicRuleCreate(APIView):
    """GET /rules lists every rule (tickers' and topics'); POST creates a rule on a topic (`topic`, no ticker)."""

    permission_classes = SENTIMENT

    @extend_schema(responses=OBJECT_LIST, operation_id="sentiment_rules_list")
    def get(self, request: Request) -> Response:
        return Response([_rule_json(rule) for rule in AlertRule.objects.select_related("ticker")])

    @extend_schema(request=RuleBody, responses={201: OpenApiTypes.OBJECT}, operation_id="sentiment_topic_rule_create")
    def post(self, request: Request) -> Response:
        body = RuleBody(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(_rule_json(rule_save(symbol=None, **body.validated_data)), status=201)
