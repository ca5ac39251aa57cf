from __future__ import annotations

from django.contrib import admin

from apps.support.models import CannedResponse, Conversation, FaqEntry, KnowledgeBase, KnowledgeGap, TrainingExample


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ("name", "text")
    search_fields = ("name", "text")


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    list_display = ("name", "index_state", "index_progress", "index_message", "revision")
    readonly_fields = ("revision", "index_state", "index_progress", "index_message")


@admin.register(FaqEntry)
class FaqEntryAdmin(admin.ModelAdmin):
    list_display = ("question", "intent", "kb", "updated_at")
    list_filter = ("kb", "intent")
    search_fields = ("question", "answer")
    readonly_fields = ("key", "content_hash")  # edits here are not indexed: change the file and re-import


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "kb", "state", "agent", "last_intent", "last_confidence", "updated_at")
    list_filter = ("state", "kb")
    exclude = ("token",)  # the customer's credential


admin.site.register(KnowledgeGap)
admin.site.register(TrainingExample)
