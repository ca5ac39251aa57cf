from __future__ import annotations

from django.contrib import admin

from apps.sentiment.models import Alert, AlertRule, Delivery, Feed, Relabel, ScoredNews, Ticker


@admin.register(Ticker)
class TickerAdmin(admin.ModelAdmin):
    list_display = ["symbol", "name", "aliases"]
    search_fields = ["symbol", "name"]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["ticker", "kind", "threshold", "window_minutes", "baseline_days", "cooldown_minutes", "enabled"]
    list_filter = ["kind", "enabled"]


@admin.register(ScoredNews)
class ScoredNewsAdmin(admin.ModelAdmin):
    list_display = ["published_at", "source", "headline", "label", "score", "model_version"]
    list_filter = ["label", "source", "model_version"]
    search_fields = ["headline", "message_id"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "symbol", "kind", "value", "acknowledged_at", "acknowledged_by"]
    list_filter = ["kind", "symbol"]


admin.site.register(Delivery)
admin.site.register(Relabel)


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ["source", "url", "enabled", "last_polled_at", "last_error"]
