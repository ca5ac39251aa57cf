from __future__ import annotations

from django.contrib import admin
from django.db import transaction

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
    """Edits and deletions here reach every process like the console's: the vectors follow, the KB's revision moves.

    The identity (`key`) and `content_hash` stay those of the imported row: a re-import of an unchanged file keeps
    the edit; a changed row in the file replaces it.
    """

    list_display = ("question", "intent", "kb", "updated_at")
    list_filter = ("kb", "intent")
    search_fields = ("question", "answer")
    readonly_fields = ("key", "content_hash")

    def save_model(self, request, obj: FaqEntry, form, change: bool) -> None:  # noqa: ANN001
        from services.support.knowledge import item_id, kb_vectors_update

        with transaction.atomic():
            super().save_model(request, obj, form, change)
            kb_vectors_update(kb=obj.kb, changed=[item_id(obj)], removed=[])

    def delete_model(self, request, obj: FaqEntry) -> None:  # noqa: ANN001
        from services.support.knowledge import item_delete

        item_delete(kb=obj.kb, rows=[obj])

    def delete_queryset(self, request, queryset) -> None:  # noqa: ANN001
        from services.support.knowledge import item_delete

        for kb in KnowledgeBase.objects.filter(pk__in=queryset.values("kb")):
            item_delete(kb=kb, rows=list(queryset.filter(kb=kb)))


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "kb", "state", "agent", "last_intent", "last_confidence", "updated_at")
    list_filter = ("state", "kb")
    exclude = ("token",)  # the customer's credential


admin.site.register(KnowledgeGap)
admin.site.register(TrainingExample)
