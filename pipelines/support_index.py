"""Full rebuild of a knowledge base's vectors (Celery task `support.index_rebuild` on the inference queue, or the command).

    python manage.py support_index_rebuild --kb default [--async]

The vectors live in the KB's shared space (services.vectors); the rebuild re-embeds every item whose stored vector
is missing or was made from another text, and removes the vectors of items that are gone: a repair, run where the
embedding should run (a worker). Processes that search the KB pick the new vectors up by revision, never rebuilding.
Progress is kept on the KnowledgeBase row (index_state, index_progress) so pages and the command can follow it.
A rebuild holds a lease on the row (SUPPORT_INDEX_LEASE_S), renewed while it embeds: a rebuild that was killed
stops counting as "building" once its lease lapses, and the next rebuild takes the KB over.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.conf import settings

from apps.support.models import KnowledgeBase
from services.errors import SuiteError
from services.support.knowledge import (kb_get, kb_lease_claim, kb_lease_end, kb_lease_renew, kb_vectors_embed,
                                        kb_vectors_kind)

PROGRESS_EVERY_S = 0.5  # at most two progress writes a second


def kb_index_rebuild(*, kb_name: str, on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Claim the KB (one rebuild at a time), re-embed its space, mark it ready (failed on error).

    1. Claim the KB's lease: refused while a live rebuild holds it; a lapsed lease (a killed rebuild) is taken over.
    2. Embed every item that needs it, renewing the lease every third of SUPPORT_INDEX_LEASE_S and writing progress; a rebuild
       whose lease another took over stops.
    3. Mark the KB ready (or failed with the error) and drop the lease, unless another rebuild holds it by then.
    """
    kb = kb_get(name=kb_name)
    owner = uuid.uuid4().hex
    if not kb_lease_claim(kb=kb, owner=owner):
        raise SuiteError(f"The index of {kb_name!r} is already being rebuilt.", field="kb")
    last, renewed = 0.0, time.monotonic()  # the first progress is written at once

    def progress(done: int, total: int) -> None:
        nonlocal last, renewed
        if on_progress:
            on_progress(done, total)
        if time.monotonic() - renewed >= settings.SUPPORT_INDEX_LEASE_S / 3:
            kb_lease_renew(kb=kb, owner=owner)
            renewed = time.monotonic()
        if time.monotonic() - last >= PROGRESS_EVERY_S or done == total:
            last = time.monotonic()
            KnowledgeBase.objects.filter(pk=kb.pk, index_lease_owner=owner).update(index_progress=done / max(total, 1))

    started = time.monotonic()
    try:
        status = kb_vectors_embed(kb=kb, progress=progress)
    except Exception as exc:
        kb_lease_end(kb=kb, owner=owner, state="failed", index_message=str(exc)[:300])
        raise
    kind = kb_vectors_kind(kb)
    kb_lease_end(kb=kb, owner=owner, state="ready", index_progress=1.0, index_message=f"{status['count']} items, {kind}")
    return {"kb": kb_name, "items": status["count"], "kind": kind, "encoder": status["encoder"],
            "seconds": round(time.monotonic() - started, 2)}
