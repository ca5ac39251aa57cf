from __future__ import annotations

from pathlib import Path

import pytest

from apps.registry.models import AliasEvent, BaseModel
from services.errors import SuiteError
from services.registry.versions import version_get, version_promote, version_register, version_rollback


@pytest.fixture
def base(db, settings, tmp_path: Path) -> BaseModel:  # noqa: ANN001
    settings.REGISTRY_DIR = tmp_path / "registry"
    return BaseModel.objects.create(name="tiny", location="bases/tiny", sha256="0" * 64, embedding_size=8, is_default=True)


def register(base: BaseModel, tmp_path: Path, metrics: dict, actor: str = "tester") -> int:
    staged = tmp_path / f"staged-{len(list(tmp_path.iterdir()))}"
    staged.mkdir()
    (staged / "metrics.json").write_text("{}")
    version = version_register(task_name="sentiment", kind="classifier", base=base, staged_dir=staged, sha256="a" * 64,
                               metrics=metrics, label_map=["neg", "pos"], train_config={}, data_fingerprint="f" * 64,
                               data_source="x.csv", created_by=actor)
    assert not staged.exists()
    assert version.location == f"sentiment/v{version.version:04d}"  # relative: every host resolves it in its registry
    assert Path(version.path).is_dir() and Path(version.path) == tmp_path / "registry" / version.location
    return version.version


def test_the_first_version_becomes_champion_and_later_ones_challengers(base: BaseModel, tmp_path: Path) -> None:
    assert register(base, tmp_path, {"macro_f1": 0.7, "accuracy": 0.7}) == 1
    assert version_get(task_name="sentiment").version == 1
    assert register(base, tmp_path, {"macro_f1": 0.6, "accuracy": 0.6}) == 2
    assert version_get(task_name="sentiment").version == 1
    assert version_get(task_name="sentiment", alias="challenger").version == 2


def test_promotion_is_gated_then_forced_then_rolled_back_with_an_audit_trail(base: BaseModel, tmp_path: Path) -> None:
    register(base, tmp_path, {"macro_f1": 0.70, "accuracy": 0.75})
    register(base, tmp_path, {"macro_f1": 0.65, "accuracy": 0.70})
    register(base, tmp_path, {"macro_f1": 0.80, "accuracy": 0.80})

    refused = version_promote(task_name="sentiment", version=2, actor="alice")
    assert not refused.promoted and "gate failed" in refused.reason
    assert version_get(task_name="sentiment").version == 1

    passed = version_promote(task_name="sentiment", version=3, actor="alice")
    assert passed.promoted and passed.previous == 1
    assert version_get(task_name="sentiment").version == 3

    forced = version_promote(task_name="sentiment", version=2, actor="root", force=True, reason="incident 42")
    assert forced.promoted and "forced by root" in forced.reason
    assert version_get(task_name="sentiment").version == 2

    assert version_rollback(task_name="sentiment", actor="alice").version == 3
    assert version_rollback(task_name="sentiment", actor="alice").version == 1
    with pytest.raises(SuiteError, match="no earlier champion"):
        version_rollback(task_name="sentiment", actor="alice")

    log = list(AliasEvent.objects.filter(alias="champion").order_by("id").values_list("action", "from_version", "to_version", "actor", "forced"))
    assert log == [
        ("register", None, 1, "tester", False),
        ("reject", 1, 2, "alice", False),
        ("promote", 1, 3, "alice", False),
        ("promote", 3, 2, "root", True),
        ("rollback", 2, 3, "alice", False),
        ("rollback", 3, 1, "alice", False),
    ]
    promote_event = AliasEvent.objects.get(action="promote", to_version=3)
    assert promote_event.metrics["candidate"]["macro_f1"] == 0.80
    assert promote_event.metrics["previous"]["macro_f1"] == 0.70


def test_promoting_an_unknown_version_names_it(base: BaseModel, tmp_path: Path) -> None:
    register(base, tmp_path, {"macro_f1": 0.7})
    with pytest.raises(SuiteError, match="has no version 9"):
        version_promote(task_name="sentiment", version=9, actor="a")
