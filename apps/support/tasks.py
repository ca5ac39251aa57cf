"""Celery tasks of the support desk (`default` queue; the index rebuild and the vectors repair embed, so CELERY_TASK_ROUTES sends them to `inference`)."""
from __future__ import annotations

from celery import shared_task

from pipelines.support_index import kb_index_rebuild


@shared_task(name="support.index_rebuild", bind=True)
def index_rebuild(self, kb_name: str) -> dict:  # noqa: ANN001
    """Re-embed a KB's vectors (missing, stale, removed); progress in the task state (PROGRESS: done/total) and on the KB row."""
    return kb_index_rebuild(kb_name=kb_name, on_progress=lambda done, total: self.update_state(
        state="PROGRESS", meta={"done": done, "total": total}))


@shared_task(name="support.vectors_repair")
def vectors_repair() -> dict[str, int]:
    """Embed knowledge-base items whose vector is missing or stale (beat: "support vectors repair")."""
    from services.support.knowledge import kb_vectors_repair

    return kb_vectors_repair()


@shared_task(name="support.conversations_retention")
def conversations_retention() -> dict:
    """Anonymise or delete conversations older than SUPPORT_RETENTION_DAYS (daily; a no-op at 0)."""
    from services.support.retention import conversation_retention_apply

    return conversation_retention_apply()
