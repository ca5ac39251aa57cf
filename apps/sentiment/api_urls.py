from __future__ import annotations

from django.urls import path

from apps.sentiment import api

urlpatterns = [
    path("sentiment/headlines", api.Headlines.as_view(), name="api-sentiment-headlines"),
    path("sentiment/headlines/page", api.HeadlinesPage.as_view(), name="api-sentiment-headlines-page"),
    path("sentiment/topics", api.Topics.as_view(), name="api-sentiment-topics"),
    path("sentiment/sparklines", api.Sparklines.as_view(), name="api-sentiment-sparklines"),
    path("sentiment/headlines/<int:news_id>/relabel", api.Relabel.as_view(), name="api-sentiment-relabel"),
    path("sentiment/headlines/<int:news_id>/topic", api.TopicRelabel.as_view(), name="api-sentiment-topic-relabel"),
    path("sentiment/topics/names", api.TopicNames.as_view(), name="api-sentiment-topic-names"),
    path("sentiment/series", api.Series.as_view(), name="api-sentiment-series"),
    path("sentiment/sources", api.Sources.as_view(), name="api-sentiment-sources"),
    path("sentiment/alerts", api.Alerts.as_view(), name="api-sentiment-alerts"),
    path("sentiment/alerts/<int:alert_id>/acknowledge", api.Acknowledge.as_view(), name="api-sentiment-acknowledge"),
    path("sentiment/alerts/<int:alert_id>/headlines", api.AlertHeadlines.as_view(), name="api-sentiment-alert-headlines"),
    path("sentiment/silences", api.Silences.as_view(), name="api-sentiment-silences"),
    path("sentiment/silences/<int:silence_id>", api.SilenceExpire.as_view(), name="api-sentiment-silence"),
    path("sentiment/rules", api.TopicRuleCreate.as_view(), name="api-sentiment-topic-rules"),
    path("sentiment/lag", api.Lag.as_view(), name="api-sentiment-lag"),
    path("sentiment/tickers", api.Tickers.as_view(), name="api-sentiment-tickers"),
    path("sentiment/tickers/<str:symbol>/rules", api.RuleCreate.as_view(), name="api-sentiment-rules"),
    path("sentiment/tickers/<str:symbol>/rules/<int:rule_id>", api.RuleUpdate.as_view(), name="api-sentiment-rule"),
]
