from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.support.models import CannedResponse, Conversation, FaqEntry, KnowledgeBase, KnowledgeGap, TrainingExample


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ("name", "text")
    search_fields = ("name", "text")


class KnowledgeBaseForm(forms.ModelForm):
    class Meta:
        model = KnowledgeBase
        fields = "__all__"

    def clean_embed_task(self) -> str:
        from services.errors import SuiteError
        from services.support.knowledge import embed_task_check

        try:
            return embed_task_check(self.cleaned_data.get("embed_task") or "")
        except SuiteError as exc:
            raise ValidationError(exc.message) from None


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(admin.ModelAdmin):
    """`embed_task` (the pairs task whose champion embeds the KB) is checked like `support_kb_encoder`'s, and a change
    re-embeds the KB through the same service."""

    form = KnowledgeBaseForm
    list_display = ("name", "embed_task", "index_state", "index_progress", "index_message", "revision")
    readonly_fields = ("revision", "index_state", "index_progress", "index_message")

    def save_model(self, request, obj, form, change) -> None:  # noqa: ANN001
        super().save_model(request, obj, form, change)
        if "embed_task" in form.changed_data:
            from services.support.knowledge import kb_embed_task_set

            kb_embed_task_set(kb=obj, task=obj.embed_task)


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
