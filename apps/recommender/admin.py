from __future__ import annotations

from django.contrib import admin

from apps.recommender.models import Event, Item, MerchRule


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "title", "category", "price", "in_stock"]
    search_fields = ["external_id", "title"]
    list_filter = ["category", "in_stock"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "user_id", "item_external_id", "type", "timestamp"]
    search_fields = ["user_id", "item_external_id"]
    list_filter = ["type"]


@admin.register(MerchRule)
class MerchRuleAdmin(admin.ModelAdmin):
    list_display = ["kind", "item", "position", "weight", "category", "max_per_page", "active", "note"]
    list_filter = ["kind", "active"]
    raw_id_fields = ["item"]
