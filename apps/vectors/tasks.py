"""Celery tasks of the shared vector store (`inference` queue: CELERY_TASK_ROUTES "vectors.*")."""
from __future__ import annotations

from celery import shared_task

from apps.vectors.models import VectorSpace
from services.vectors import store


@shared_task(name="vectors.embed")
def embed(space: str, keys: list[int] | None = None) -> int:
    """Embed these keys of `space` (None: every key whose vector is missing or stale); returns vectors written."""
    return store.vectors_embed(space=space, keys=keys)


@shared_task(name="vectors.reembed")
def reembed(space: str) -> dict[str, object]:
    """Embed `space` with its pending encoder beside the active one; switch once complete."""
    return store.space_reembed(space=space)


@shared_task(name="vectors.snapshot")
def snapshot(space: str) -> str | None:
    """Train the space's IVF index once and record it as a snapshot in the registry folder."""
    return store.snapshot_build(space=space)


@shared_task(name="vectors.purge")
def purge() -> dict[str, int]:
    """Delete old tombstones and retired encoders' vectors; ask for fresh IVF snapshots of spaces that grew past the
    threshold or moved on since theirs (beat: "vectors purge"; a purge never goes past a snapshot's revision)."""
    out = store.tombstones_purge()
    out["snapshots"] = sum(store.snapshot_maybe(space=name) for name in VectorSpace.objects.values_list("name", flat=True))
    return out


@shared_task(name="vectors.encoder_check")
def encoder_check() -> list[str]:
    """Spaces whose task's encoder changed: mark pending, re-embed (beat: "vectors encoder check")."""
    return store.encoder_switch_check()
