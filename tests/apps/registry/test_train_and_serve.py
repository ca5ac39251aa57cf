"""The registry end to end on a tiny model: commands, gate, rollback, tamper check, API, and serving paths."""
from __future__ import annotations

import json
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.registry.models import AdapterVersion
from services.ml.device import device_pick, tolerance_for
from tests.helpers import csv_write, run_json
from tests.services.conftest import sentiment_rows, tiny_base_write


def write_csv(path: Path, texts: list[str], labels: list[str]) -> Path:
    return csv_write(path, texts, labels, columns=("headline", "sentiment"))


@pytest.fixture
def tiny_registry(tmp_path: Path, registry_folder: Path) -> dict[str, Path]:
    """A tiny base registered as default (copied into the registry folder), and a train/validation CSV."""
    base = tiny_base_write(tmp_path / "tiny-base")
    run_json("registry_add_base", name="tiny-bert", path=str(base), default=True)
    train = write_csv(tmp_path / "train.csv", *sentiment_rows(150, seed=1))
    valid = write_csv(tmp_path / "valid.csv", *sentiment_rows(60, seed=2))
    return {"base": base, "train": train, "valid": valid}


def train(data: Path, task: str = "sentiment", epochs: int = 4) -> dict:
    return run_json("train_adapter", task=task, data=str(data), text_col="headline", label_col="sentiment", epochs=epochs)


@pytest.mark.django_db(transaction=True)
def test_train_evaluate_promote_and_rollback_through_the_commands(tiny_registry: dict[str, Path]) -> None:
    first = train(tiny_registry["train"])
    assert {"task", "version", "accuracy", "macro_f1", "n_train", "n_val", "seconds"} <= set(first)
    assert first["task"] == "sentiment" and first["version"] == 1 and first["champion"] is True
    assert first["n_train"] + first["n_val"] == 150

    version = AdapterVersion.objects.get(task__name="sentiment", version=1)
    folder = Path(version.path)
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "head.safetensors").is_file()
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt")) and not list(folder.glob("*.pkl"))
    saved_config = (folder / "train_config.json").read_text()
    assert json.loads(saved_config) == version.train_config
    assert list(json.loads(saved_config)) == sorted(json.loads(saved_config))  # sorted JSON
    assert version.base.name == "tiny-bert" and version.label_map == ["bearish", "bullish", "neutral"]

    written = tiny_registry["valid"].parent / "predictions.jsonl"
    evaluated = run_json("evaluate_adapter", task="sentiment", data=str(tiny_registry["valid"]), text_col="headline",
                         label_col="sentiment", alias="champion", predictions=str(written))
    assert set(evaluated) == {"task", "version", "accuracy", "macro_f1", "ece", "ece_uncalibrated", "temperature", "n"}
    assert evaluated["version"] == 1 and evaluated["n"] == 60
    assert evaluated["temperature"] == json.loads((folder / "artifact.json").read_text())["temperature"]
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(rows) == 60 and set(rows[0]) == {"text", "gold", "predicted", "probability"}
    assert sum(row["gold"] == row["predicted"] for row in rows) / 60 == pytest.approx(evaluated["accuracy"], abs=1e-4)

    second = train(tiny_registry["train"], epochs=1)
    assert second["version"] == 2 and second["champion"] is False
    listing = run_json("registry_list", task="sentiment")
    assert listing[0]["champion"] == 1 and listing[0]["challenger"] == 2

    forced = run_json("registry_promote", task="sentiment", version=2, force=True, reason="test", actor="tester")
    assert forced["promoted"] is True
    assert run_json("registry_list", task="sentiment")[0]["champion"] == 2
    rolled = run_json("registry_rollback", task="sentiment", actor="tester")
    assert rolled["version"] == 1


@pytest.mark.django_db(transaction=True)
def test_it_refuses_an_artifact_whose_hash_differs(tiny_registry: dict[str, Path]) -> None:
    train(tiny_registry["train"], epochs=1)
    folder = Path(AdapterVersion.objects.get(task__name="sentiment", version=1).path)
    with (folder / "head.safetensors").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(CommandError, match="sha256"):
        call_command("evaluate_adapter", task="sentiment", data=str(tiny_registry["valid"]), text_col="headline",
                     label_col="sentiment", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"headline,other\nshares soar,x\nshares slump,y\n", "sentiment"),
        (b"headline,sentiment\nshares soar,bullish\nshares \xff\xfe slump,bearish\n", "bad.csv:3: bytes that are not UTF-8"),
        (b"headline,sentiment\na,bullish\nb,bullish\nc,bearish\n", "bearish"),
    ],
    ids=["empty-file", "missing-column", "non-utf8", "label-seen-once"],
)
def test_bad_training_data_names_the_problem_and_registers_nothing(tiny_registry: dict[str, Path], tmp_path: Path,
                                                                  content: bytes, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(CommandError) as caught:
        train(bad)
    assert "bad.csv" in str(caught.value)
    assert message in str(caught.value)
    assert AdapterVersion.objects.count() == 0
    assert not any((tmp_path / "registry").glob("sentiment/v*"))


@pytest.mark.django_db(transaction=True)
def test_the_registry_api_and_page_show_versions_and_move_aliases(tiny_registry: dict[str, Path], client, role_users) -> None:  # noqa: ANN001
    train(tiny_registry["train"], epochs=1)
    train(tiny_registry["train"], epochs=1)
    client.force_login(role_users["support_agent"])
    assert client.get("/api/registry/tasks").status_code == 403
    client.force_login(role_users["admin"])
    tasks = client.get("/api/registry/tasks").json()
    assert tasks[0]["name"] == "sentiment" and tasks[0]["champion"] == 1 and tasks[0]["challenger"] == 2
    versions = client.get("/api/registry/tasks/sentiment/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    response = client.post("/api/registry/tasks/sentiment/promote", {"version": 2, "force": True, "reason": "api test"},
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["promoted"] is True
    refused = client.post("/api/registry/tasks/sentiment/promote", {"version": "two"}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid" and refused.json()["field"] == "version"
    assert client.post("/api/registry/tasks/nosuch/rollback", {}, content_type="application/json").status_code == 404
    assert client.post("/api/registry/tasks/sentiment/rollback", {}, content_type="application/json").json()["version"] == 1
    events = client.get("/api/registry/tasks/sentiment/events").json()
    assert [e["action"] for e in events][:2] == ["rollback", "promote"]
    page = client.get("/registry/").content.decode()
    assert "sentiment" in page and "v2" in page and "Roll back champion" in page
    response = client.post("/registry/sentiment/promote", {"version": "2"})
    assert response.status_code == 302


def worker_version_wait(texts: list[str], *, version: int, seconds: float = 30) -> int:
    """Ask the worker until its answers come from `version` (or time runs out); the version it last answered with."""
    from apps.registry.tasks import classify

    deadline = time.monotonic() + seconds
    while True:
        answered = classify.delay("sentiment", texts).get(timeout=120)["version"]
        if answered == version or time.monotonic() > deadline:
            return answered
        time.sleep(0.5)


@pytest.mark.django_db(transaction=True)
def test_the_celery_path_scores_like_the_in_process_path_and_follows_promotion_and_rollback(
        tiny_registry: dict[str, Path], celery_worker_process) -> None:  # noqa: ANN001
    from apps.registry.tasks import classify
    from services.registry.serving import serving_reset, texts_classify

    train(tiny_registry["train"], epochs=3)
    texts, _ = sentiment_rows(20, seed=5)
    local = texts_classify(task="sentiment", texts=texts)
    remote = classify.delay("sentiment", texts).get(timeout=120)
    assert remote["version"] == local.version == 1
    assert remote["labels"] == local.labels
    np.testing.assert_allclose(np.array(remote["probs"]), local.probs, atol=tolerance_for(device_pick()[1]))  # per dtype: CUDA runs in bf16/fp16

    train(tiny_registry["train"], epochs=1)
    run_json("registry_promote", task="sentiment", version=2, force=True, actor="tester")
    assert worker_version_wait(texts, version=2) == 2, "the running worker never picked up the new champion"
    serving_reset()
    assert texts_classify(task="sentiment", texts=texts).version == 2

    run_json("registry_rollback", task="sentiment", actor="tester")  # a rollback reaches the running worker too
    assert worker_version_wait(texts, version=1) == 1, "the running worker never picked up the rollback"
    serving_reset()


@pytest.mark.django_db(transaction=True)
def test_a_pairs_task_trains_an_embedding_adapter_that_serves_embeddings(tiny_registry: dict[str, Path], tmp_path: Path) -> None:
    from tests.services.conftest import pair_rows

    from services.registry.serving import serving_reset, texts_embed

    queries, items = pair_rows(96)
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"query": q, "item": i}) for q, i in zip(queries, items)) + "\n", encoding="utf-8")
    summary = run_json("train_adapter", task="recommender", data=str(data), text_col="query", label_col="item", kind="pairs", epochs=2)
    assert summary["version"] == 1 and summary["kind"] == "pairs"
    assert summary["accuracy"] is None and "mrr" in summary
    vectors = texts_embed(task="recommender", texts=["ask1 company", "item1 company plan"])
    assert vectors.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # A second run of the same task keeps its kind without --kind.
    assert run_json("train_adapter", task="recommender", data=str(data), text_col="query", label_col="item", epochs=1)["kind"] == "pairs"
    serving_reset()
