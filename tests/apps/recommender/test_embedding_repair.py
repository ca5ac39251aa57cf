"""Items whose embedding failed after their row committed: embedded again on retry, and by the periodic repair
(which asks the shared vector store for every item whose vector is missing or of an older text)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rest_framework.test import APIClient

from apps.recommender.models import Item
from apps.vectors.models import Embedding
from services.vectors import encode
from tests.apps.recommender.conftest import embedded

pytestmark = pytest.mark.django_db

LAMP = {"title": "Camping lamp", "description": "camping lamp bright", "category": "outdoor"}


def embedding_fails_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The encoder raises on its next call, then works again; returns the failures seen."""
    real, failed = encode.texts_embed_tagged, []

    def flaky(*, tag: object, texts: list[str], progress: object = None) -> np.ndarray:
        if not failed:
            failed.append("encoder down")
            raise RuntimeError("encoder down")
        return real(tag=tag, texts=texts, progress=progress)

    monkeypatch.setattr(encode, "texts_embed_tagged", flaky)
    return failed


def test_an_item_whose_embedding_failed_is_embedded_when_it_is_sent_again_unchanged(
        catalogue: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = embedding_fails_once(monkeypatch)
    catalogue.raise_request_exception = False
    assert catalogue.put("/api/items/lamp-1", LAMP, format="json").status_code == 500
    assert failed and Item.objects.filter(external_id="lamp-1").exists() and not embedded("lamp-1")  # stored, no vector

    retry = catalogue.put("/api/items/lamp-1", LAMP, format="json")
    assert retry.status_code == 200 and retry.json()["unchanged"] == 1
    assert embedded("lamp-1")
    similar = catalogue.get("/api/items/lamp-1/similar", {"k": 3}).json()["items"]
    assert similar and similar[0]["id"] in {"tent-1", "tent-2", "bag-1", "stove-1"}


def test_the_repair_task_embeds_stale_and_missing_items(catalogue: APIClient, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    from apps.recommender.tasks import embeddings_repair
    from tests.helpers import run_json

    embedding_fails_once(monkeypatch)
    items = tmp_path / "items.csv"
    items.write_text("item_id,title,description,category\nlamp-1,Camping lamp,camping lamp bright,outdoor\n", encoding="utf-8")
    with pytest.raises(Exception, match="encoder down"):
        run_json("recommender_import", items=str(items), no_progress=True)
    assert not embedded("lamp-1")
    Embedding.objects.filter(key=Item.objects.get(external_id="pan-1").pk).delete()  # a vector lost from the store
    assert not embedded("pan-1")

    assert embeddings_repair.apply().get() == {"missing": 2, "embedded": 2}
    assert embedded("lamp-1") and embedded("pan-1")
    assert embeddings_repair.apply().get() == {"missing": 0, "embedded": 0}  # nothing left to do


def test_the_repair_runs_on_a_beat_schedule_created_after_migrate(settings) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from apps.recommender.apps import _repair_schedule_create

    _repair_schedule_create()  # what every migrate runs; an existing schedule is kept as an admin left it
    schedule = PeriodicTask.objects.get(name="recommender embeddings repair")
    assert schedule.task == "recommender.embeddings_repair"
    assert (schedule.interval.every, schedule.interval.period) == (settings.RECOMMENDER_EMBED_REPAIR_S, IntervalSchedule.SECONDS)
    schedule.interval = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.MINUTES)  # an admin's edit
    schedule.save()
    _repair_schedule_create()
    assert PeriodicTask.objects.get(name="recommender embeddings repair").interval.every == 60
