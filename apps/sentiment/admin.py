from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.sentiment.models import (Alert, AlertRule, Delivery, DeliveryAttempt, Feed, Notification, Relabel, ScoredNews,
                                   Silence, Ticker)
from services.errors import SuiteError
from services.outbound import outbound_check
from services.sentiment.watchlist import rule_clear_check


def _outbound_url(value: str, *, field_name: str) -> str:
    """The admin's forms refuse what the API refuses: URLs of private or reserved addresses (services.outbound)."""
    if value:
        try:
            outbound_check(url=value, field_name=field_name)
        except SuiteError as exc:
            raise forms.ValidationError(exc.message) from None
    return value


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = "__all__"

    def clean_webhook_url(self) -> str:
        return _outbound_url(self.cleaned_data.get("webhook_url", ""), field_name="webhook_url")

    def clean(self) -> dict:
        """A new rule left without a clear threshold gets the API's default (AlertRule.clear_default)."""
        data = super().clean()
        if self.instance.pk is None and data.get("clear_threshold") is None and data.get("threshold") is not None:
            data["clear_threshold"] = AlertRule.clear_default(data["threshold"])
        if data.get("threshold") is not None:
            try:
                rule_clear_check(threshold=data["threshold"], clear_threshold=data.get("clear_threshold"))
            except SuiteError as exc:
                self.add_error("clear_threshold", exc.message)
        return data


class FeedForm(forms.ModelForm):
    class Meta:
        model = Feed
        fields = "__all__"

    def clean_url(self) -> str:
        return _outbound_url(self.cleaned_data.get("url", ""), field_name="url")


@admin.register(Ticker)
class TickerAdmin(admin.ModelAdmin):
    list_display = ["symbol", "name", "aliases"]
    search_fields = ["symbol", "name"]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["ticker", "topic", "kind", "threshold", "clear_threshold", "window_minutes", "for_evaluations",
                    "cooldown_minutes", "group_minutes", "enabled", "last_error"]
    list_filter = ["kind", "enabled"]


@admin.register(ScoredNews)
class ScoredNewsAdmin(admin.ModelAdmin):
    list_display = ["published_at", "source", "headline", "label", "score", "model_version"]
    list_filter = ["label", "source", "model_version"]
    search_fields = ["headline", "message_id"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "symbol", "topic", "kind", "state", "value", "started_at", "fired_at", "resolved_at",
                    "silence", "acknowledged_at", "acknowledged_by"]
    list_filter = ["state", "kind", "symbol"]


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    """Mutes are visible with who set them and why; the list shows whether each is still active."""

    list_display = ["symbol", "topic", "rule", "starts_at", "ends_at", "active", "created_by", "reason"]
    list_filter = ["symbol", "topic"]
    readonly_fields = ["created_by", "created_at"]

    @admin.display(boolean=True)
    def active(self, silence: Silence) -> bool:
        from django.utils import timezone

        return silence.starts_at <= timezone.now() < silence.ends_at

    def save_model(self, request, obj: Silence, form, change: bool) -> None:  # noqa: ANN001
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["at", "group_key", "rule", "message"]
    list_filter = ["group_key"]
    filter_horizontal = ["alerts"]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    readonly_fields = ["number", "outcome", "error", "at"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["alert", "channel", "status", "attempts", "next_attempt_at", "sent_at", "error"]
    list_filter = ["status", "channel"]
    inlines = [DeliveryAttemptInline]


admin.site.register(Relabel)


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    form = FeedForm
    list_display = ["source", "url", "enabled", "last_polled_at", "last_error"]
