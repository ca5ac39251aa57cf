"""The vector store's operator command and beat schedules."""
from __future__ import annotations

import pytest
from django.core.management.base import CommandError

from tests.helpers import run_json
from tests.services.vectors.test_store import NEW, SPACE, notes, write  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_vectors_status_prints_each_space_and_check_switches_a_changed_encoder(notes) -> None:  # noqa: ANN001, F811
    write({1: "red tent", 2: "blue pan"})
    status = run_json("vectors_status", space=SPACE)
    assert (status["space"], status["count"], status["missing"], status["pending_encoder"]) == (SPACE, 2, 0, None)
    notes["tag"] = NEW
    switched = run_json("vectors_status", space=SPACE, check=True)  # process mode: re-embedded and switched at once
    assert switched["encoder"] == NEW.name and switched["generation"] == status["generation"] + 1
    with pytest.raises(CommandError, match="'notes:404' does not exist"):
        run_json("vectors_status", space="notes:404")


def test_the_encoder_check_and_the_purge_run_on_beat_schedules_created_after_migrate(settings) -> None:  # noqa: ANN001
    from django_celery_beat.models import PeriodicTask

    from apps.vectors.apps import _schedules_create

    _schedules_create()
    check = PeriodicTask.objects.get(name="vectors encoder check")
    purge = PeriodicTask.objects.get(name="vectors purge")
    assert (check.task, check.interval.every) == ("vectors.encoder_check", settings.SUITE_VECTORS_CHECK_S)
    assert (purge.task, purge.interval.every) == ("vectors.purge", settings.SUITE_VECTORS_PURGE_S)


def test_the_purge_task_also_asks_for_a_snapshot_of_a_space_past_the_threshold(notes, settings) -> None:  # noqa: ANN001, F811
    from apps.vectors.models import VectorSpace
    from apps.vectors.tasks import purge
    from tests.services.vectors.test_store import NOTES

    settings.SUPPORT_IVF_THRESHOLD = 40
    write({key: f"note number {key}" for key in range(1, 41)})  # incremental writes never train a snapshot themselves
    assert not VectorSpace.objects.get(name=SPACE).snapshot and len(NOTES) == 40
    assert purge.apply().get()["snapshots"] == 1  # process mode: built here; a worker's own task otherwise
    space = VectorSpace.objects.get(name=SPACE)
    assert space.snapshot and space.snapshot_revision == space.revision
    assert purge.apply().get()["snapshots"] == 0  # fresh enough
