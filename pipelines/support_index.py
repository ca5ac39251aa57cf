"""Full rebuild of a knowledge base's dense index (Celery task `support.index_rebuild`, or the command).

    python manage.py support_index_rebuild --kb default [--async]

Progress is kept on the KnowledgeBase row (index_state, index_progress) so pages and the command can follow it.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from apps.support.models import KnowledgeBase
from services.errors import SuiteError
from services.support.knowledge import index_build, kb_get

PROGRESS_EVERY_S = 0.5  # at most two progress writes a second


def kb_index_rebuild(*, kb_name: str, on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Claim the KB (one rebuild at a time), embed everything, save the index, mark it ready (failed on error)."""
    kb = kb_get(name=kb_name)
    claimed = KnowledgeBase.objects.filter(pk=kb.pk).exclude(index_state="building").update(
        index_state="building", index_progress=0.0, index_message="")
    if claimed != 1:
        raise SuiteError(f"The index of {kb_name!r} is already being rebuilt.", field="kb")
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        if on_progress:
            on_progress(done, total)
        if time.monotonic() - last >= PROGRESS_EVERY_S or done == total:
            last = time.monotonic()
            KnowledgeBase.objects.filter(pk=kb.pk).update(index_progress=done / max(total, 1))

    started = time.monotonic()
    try:
        index = index_build(kb=kb, progress=progress)
    except Exception as exc:
        KnowledgeBase.objects.filter(pk=kb.pk).update(index_state="failed", index_message=str(exc)[:300])
        raise
    KnowledgeBase.objects.filter(pk=kb.pk).update(index_state="ready", index_progress=1.0,
                                                  index_message=f"{len(index)} items, {index.kind}")
    return {"kb": kb_name, "items": len(index), "kind": index.kind, "encoder": index.tag.name,
            "seconds": round(time.monotonic() - started, 2)}
