"""No host path in the registry: locations relative to SUITE_REGISTRY_DIR, packaged bases by name, data files copied in."""
from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.core.management.base import CommandError
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor

from apps.registry.models import AdapterVersion, BaseModel, Task
from services.errors import SuiteError
from services.registry.paths import data_file_path, data_file_sha256, file_sha256
from tests.apps.registry.test_retrain import relabels_add, rows
from tests.helpers import csv_write, run_json
from tests.services.conftest import tiny_base_write

BEFORE = [("registry", "0006_retrainrun_skipped_rows")]


def registry_values() -> list[tuple[str, str, str]]:
    """(model, field, text) of every string held by every registry row: char, text and JSON fields (leaves)."""
    found: list[tuple[str, str, str]] = []

    def leaves(value: object) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return [s for k, v in value.items() for s in leaves(k) + leaves(v)]
        if isinstance(value, (list, tuple)):
            return [s for v in value for s in leaves(v)]
        return []

    for model in django_apps.get_app_config("registry").get_models():
        fields = [f.name for f in model._meta.fields if isinstance(f, (models.CharField, models.TextField, models.JSONField))]
        for row in model.objects.values(*fields):
            found += [(model.__name__, name, text) for name, value in row.items() for text in leaves(value)]
    return found


def assert_no_host_path(*roots: Path) -> None:
    for model, field, text in registry_values():
        assert not text.startswith(("/", "~")), f"{model}.{field} holds a host path: {text}"
        for root in roots:
            assert str(root) not in text, f"{model}.{field} names {root}: {text}"


@pytest.fixture
def registry(settings, tmp_path: Path) -> dict[str, Path]:  # noqa: ANN001
    """A tiny base (outside the registry folder) as default, a sentiment champion, and retraining files."""
    settings.REGISTRY_DIR = tmp_path / "host-a" / "registry"
    settings.RETRAIN_MIN_EXAMPLES = 10
    settings.RETRAIN_EPOCHS = 2
    base = tiny_base_write(tmp_path / "models" / "tiny-base")
    run_json("registry_add_base", name="tiny-bert", path=str(base), default=True)
    (tmp_path / "caller").mkdir()  # the caller's own files, outside the registry
    train = csv_write(tmp_path / "caller" / "train.csv", *rows(60, seed=3))
    run_json("train_adapter", task="sentiment", data=str(train), epochs=1)
    return {"base": base, "train": train, "base_data": csv_write(tmp_path / "caller" / "base.csv", *rows(90, seed=1)),
            "held_back": csv_write(tmp_path / "caller" / "held_back.csv", *rows(60, seed=2))}


@pytest.mark.django_db(transaction=True)
def test_no_registry_row_holds_a_host_path_after_registering_training_and_retraining(
        settings, registry: dict[str, Path], tmp_path: Path) -> None:  # noqa: ANN001
    run_json("retrain", task="sentiment", force=True, base_data=str(registry["base_data"]),
             held_back=str(registry["held_back"]))
    root = Path(settings.REGISTRY_DIR)

    base = BaseModel.objects.get(name="tiny-bert")  # copied into the registry: hosts without tmp_path still load it
    assert base.location.startswith("bases/tiny-bert-") and (root / base.location / "config.json").is_file()
    assert Path(base.path) == root / base.location
    version = AdapterVersion.objects.get(task__name="sentiment", version=1)
    assert version.location == "sentiment/v0001" and Path(version.path) == root / "sentiment" / "v0001"
    # train_adapter's data argument: a content-addressed copy keeping the file's name, not the caller's path
    assert version.data_source == f"data/{file_sha256(registry['train'])}/train.csv"
    assert (root / version.data_source).read_bytes() == registry["train"].read_bytes()
    task = Task.objects.get(name="sentiment")
    assert task.retrain_data_file == f"data/{file_sha256(registry['base_data'])}/base.csv"
    assert task.retrain_eval_file == f"data/{file_sha256(registry['held_back'])}/held_back.csv"
    # the artifact's own files name the base by name and hash, never by folder
    info = json.loads((Path(version.path) / "artifact.json").read_text(encoding="utf-8"))
    assert "base_path" not in info and info["base_name"] == "tiny-bert" and info["base_location"] == base.location

    assert AdapterVersion.objects.filter(task__name="sentiment").count() == 2  # the retrain registered v2
    assert_no_host_path(tmp_path, Path(sys.prefix))
    assert run_json("registry_host_paths")["host_paths"] == []


@pytest.mark.django_db(transaction=True)
def test_a_registry_moved_to_another_path_still_serves_the_champion_and_retrains(
        settings, registry: dict[str, Path], tmp_path: Path) -> None:  # noqa: ANN001
    from services.registry.serving import serving_reset, texts_classify

    task_args = {"base_data": str(registry["base_data"]), "held_back": str(registry["held_back"])}
    run_json("retrain", task="sentiment", **task_args)  # records the files (too few examples: no training yet)
    before = texts_classify(task="sentiment", texts=["shares soar", "profits collapse"])
    serving_reset()

    # Host B mounts the same registry elsewhere; host A's folder, the caller's files and the base's source are gone.
    old = Path(settings.REGISTRY_DIR)
    moved = tmp_path / "host-b" / "mnt" / "shared-registry"
    shutil.copytree(old, moved)
    shutil.rmtree(old)
    shutil.rmtree(registry["base"])
    shutil.rmtree(tmp_path / "caller")
    settings.REGISTRY_DIR = moved
    try:
        served = texts_classify(task="sentiment", texts=["shares soar", "profits collapse"])
        assert served.version == 1 and served.labels == before.labels

        relabels_add(*rows(30, seed=4))
        summary = run_json("retrain", task="sentiment")
        assert summary["ran"] is True and summary["version"] == 2, summary
        v2 = AdapterVersion.objects.get(task__name="sentiment", version=2)
        assert Path(v2.path) == moved / "sentiment" / "v0002" and (Path(v2.path) / "adapter_model.safetensors").is_file()
        assert not old.exists()  # nothing was written where the registry used to be
    finally:
        serving_reset()


@pytest.mark.django_db(transaction=True)
def test_a_recorded_data_file_is_the_registry_copy_so_later_edits_of_the_callers_file_change_nothing(
        settings, registry: dict[str, Path]) -> None:  # noqa: ANN001
    run_json("retrain", task="sentiment", base_data=str(registry["base_data"]), held_back=str(registry["held_back"]))
    registry["base_data"].write_bytes(b"")  # the caller's file is emptied after it was recorded
    relabels_add(*rows(30, seed=4))
    assert run_json("retrain", task="sentiment")["ran"] is True

    task = Task.objects.get(name="sentiment")
    copy = Path(task.retrain_data)
    assert data_file_sha256(task.retrain_data_file) == file_sha256(copy)
    copy.write_text("text,label\nedited in place,positive\n", encoding="utf-8")  # the registry's copy is not to be edited
    with pytest.raises(SuiteError, match=r"retrain_data file data/[0-9a-f]{64}/base\.csv has changed since it was recorded"):
        data_file_path(task.retrain_data_file, field="retrain_data")
    copy.unlink()
    with pytest.raises(SuiteError, match=r"is missing from the registry folder"):
        data_file_path(task.retrain_data_file, field="retrain_data")


@pytest.mark.django_db
def test_the_packaged_default_base_is_recorded_by_name_and_found_in_this_hosts_package(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from services.ml.encoder import default_base_path
    from services.registry.versions import base_default_ensure

    settings.REGISTRY_DIR = tmp_path / "registry"
    base = base_default_ensure()
    assert base.location == "package:all-minilm-l6-v2" and Path(base.path) == default_base_path()
    assert not (tmp_path / "registry").exists()  # nothing copied: every host has the package
    # Registering the package's folder by its path records the name too.
    again = run_json("registry_add_base", name="minilm-again", path=str(default_base_path()))
    assert again["location"] == "package:all-minilm-l6-v2"


@pytest.mark.django_db
def test_registering_a_missing_base_folder_names_it(settings, tmp_path: Path) -> None:  # noqa: ANN001
    settings.REGISTRY_DIR = tmp_path / "registry"
    with pytest.raises(CommandError, match=r"Base model folder .*nowhere does not exist"):
        run_json("registry_add_base", name="x", path=str(tmp_path / "nowhere"))
    with pytest.raises(CommandError, match=r"No packaged base model named 'nope'"):
        run_json("registry_add_base", name="x", path="package:nope")


# --- the data migration -------------------------------------------------------------------------------------

def migrate(targets: list[tuple[str, str]] | None = None) -> MigrationExecutor:
    """Migrate the test database to `targets` (None: every app's latest); the executor of the state reached."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return MigrationExecutor(connection)


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_old_absolute_rows_and_reports_those_it_cannot(
        settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from services.ml.encoder import default_base_path, weights_sha256

    root = tmp_path / "registry"
    settings.REGISTRY_DIR = root
    executor = migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        OldBase, OldTask, OldVersion = (old.get_model("registry", name) for name in ("BaseModel", "Task", "AdapterVersion"))

        packaged, _ = OldBase.objects.update_or_create(  # post_migrate registered it already: as an old host had
            name="all-minilm-l6-v2", defaults={"path": str(default_base_path()), "sha256": weights_sha256(default_base_path()),
                                               "embedding_size": 384, "is_default": True})
        custom_folder = tiny_base_write(tmp_path / "elsewhere" / "tiny")
        custom = OldBase.objects.create(name="tiny-bert", path=str(custom_folder), sha256=weights_sha256(custom_folder),
                                        embedding_size=32)
        OldBase.objects.create(name="gone", path=str(tmp_path / "unmounted" / "gone"), sha256="0" * 64, embedding_size=32)
        artifact = root / "sentiment" / "v0001"
        artifact.mkdir(parents=True)
        (artifact / "artifact.json").write_text(json.dumps({"format": 1, "kind": "classifier", "base_sha256": custom.sha256,
                                                            "base_path": str(custom_folder)}), encoding="utf-8")
        (artifact / "adapter_config.json").write_text("{}", encoding="utf-8")
        mig = importlib.import_module("apps.registry.migrations.0007_registry_locations_without_host_paths")
        (tmp_path / "caller").mkdir()
        train_file = csv_write(tmp_path / "caller" / "train.csv", *rows(20, seed=1))
        task = OldTask.objects.create(name="sentiment", retrain_data=str(train_file),
                                      retrain_eval=str(tmp_path / "lost" / "held_back.csv"))
        OldVersion.objects.create(task=task, version=1, base=custom, path=str(artifact), sha256=mig._artifact_sha256(artifact),
                                  data_fingerprint="f", data_source=str(train_file), created_by="test")
        OldVersion.objects.create(task=task, version=2, base=packaged, path=str(tmp_path / "other-host" / "v0002"),
                                  sha256="1" * 64, data_fingerprint="f", data_source="demo catalogue", created_by="test")
    finally:
        migrate()  # to the latest (0007 and after), also when the test fails (the next tests need it)

    report = capsys.readouterr().out
    base = {b.name: b for b in BaseModel.objects.all()}
    assert base["all-minilm-l6-v2"].location == "package:all-minilm-l6-v2"
    assert base["tiny-bert"].location == f"bases/tiny-bert-{custom.sha256[:12]}"
    assert (root / base["tiny-bert"].location / "config.json").is_file()  # copied into the registry
    v1, v2 = AdapterVersion.objects.order_by("version")
    assert v1.location == "sentiment/v0001" and v1.data_source == f"data/{file_sha256(train_file)}/train.csv"
    info = json.loads((artifact / "artifact.json").read_text(encoding="utf-8"))
    assert "base_path" not in info and info["base_name"] == "tiny-bert"
    assert v1.sha256 == mig._artifact_sha256(artifact)  # the row follows its rewritten artifact.json
    task = Task.objects.get(name="sentiment")
    assert task.retrain_data_file == f"data/{file_sha256(train_file)}/train.csv"

    # What this host cannot convert is left as stored (not lost) and reported, here and by the command.
    assert base["gone"].location == str(tmp_path / "unmounted" / "gone")
    assert v2.location == str(tmp_path / "other-host" / "v0002")
    assert task.retrain_eval_file == str(tmp_path / "lost" / "held_back.csv")
    for left in ("base model gone", "sentiment v2 artifact", "task sentiment retrain_eval_file"):
        assert left in report
    with pytest.raises(CommandError, match=r"3 registry value\(s\) still hold a host path"):
        run_json("registry_host_paths")

    # Once the missing file is mounted where the row says, the command converts it; the others stay reported.
    (tmp_path / "lost").mkdir()
    held_back = csv_write(tmp_path / "lost" / "held_back.csv", *rows(20, seed=2))
    with pytest.raises(CommandError, match=r"2 registry value\(s\) still hold a host path"):
        run_json("registry_host_paths", convert=True)
    assert Task.objects.get(name="sentiment").retrain_eval_file == f"data/{file_sha256(held_back)}/held_back.csv"
