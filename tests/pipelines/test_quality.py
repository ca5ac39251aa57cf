"""python -m pipelines.quality end to end: a tiny BERT on a tiny devdata folder laid out like ../shared/devdata."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from pipelines.quality import QualityDataError, clinc_read, main
from tests.services.conftest import CLASS_WORDS, FILLER, ITEM_WORDS, sentiment_rows, tiny_base_write

SENTIMENT_CODES = {"bearish": "0", "bullish": "1", "neutral": "2"}  # as the public file: 0 bearish, 1 bullish, 2 neutral
INTENTS = {"bearish": "sell_stock", "bullish": "buy_stock", "neutral": "check_news"}
METHOD_FIELDS = {"accuracy", "macro_f1", "ece", "confidence", "validation", "train_seconds", "train_examples_per_s"}


def _csv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def _rows(n: int, seed: int, codes: dict[str, str]) -> list[list[str]]:
    texts, labels = sentiment_rows(n, seed=seed)
    return [[text, codes[label]] for text, label in zip(texts, labels)]


def _oos(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[" ".join(rng.sample(ITEM_WORDS, 2) + rng.sample(FILLER, 1)), "oos"] for _ in range(n)]


def devdata_write(root: Path) -> Path:
    """The three tasks' files, named and shaped as in ../shared/devdata (README there), with tiny synthetic rows."""
    _csv(root / "twitter_financial_news_sentiment" / "sent_train.csv", _rows(90, 0, SENTIMENT_CODES))
    _csv(root / "twitter_financial_news_sentiment" / "sent_valid.csv", _rows(30, 1, SENTIMENT_CODES))
    _csv(root / "twitter_financial_news_topic" / "topic_train.csv", _rows(120, 2, {k: str(i + 3) for i, k in enumerate(CLASS_WORDS)}))
    (root / "clinc150").mkdir(parents=True)
    (root / "clinc150" / "data_full.json").write_text(json.dumps({
        "train": _rows(60, 3, INTENTS), "val": _rows(15, 4, INTENTS), "test": _rows(30, 5, INTENTS),
        "oos_train": _oos(10, 6), "oos_val": _oos(5, 7), "oos_test": _oos(10, 8)}), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_base_write(tmp_path_factory.mktemp("tiny-base")), devdata_write(tmp_path_factory.mktemp("devdata"))


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_it_scores_the_frozen_baseline_and_the_recipe_on_every_task(tiny_folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, devdata = tiny_folders
    assert main(["--base", str(base), "--devdata", str(devdata), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    result = _last_json(out)
    assert "frozen_logreg" in out and "recipe_lora" in out  # the human-readable table comes before the JSON
    assert set(result["tasks"]) == {"sentiment", "topics", "intents"}
    assert result["epochs"] == 1 and result["recipe_config"]["recipe_lora"]["peft"] == "lora" and result["ece_bins"] == 15
    # "current" is the recipe before issue 14, pinned: uncalibrated, every layer adapted, whatever the defaults are now
    current = result["recipe_config"]["current_lora"]
    assert (current["calibrate"], current["adapt_top"], current["evals_per_epoch"], current["epochs"]) == (False, 1.0, 1, 1)
    for name, task in result["tasks"].items():
        assert set(task["methods"]) == {"frozen_logreg", "current_lora", "recipe_lora"}, name
        assert task["methods"]["current_lora"]["temperature"] == 1.0  # uncalibrated: the two ECEs are the same figures
        assert task["methods"]["current_lora"]["ece"] == task["methods"]["current_lora"]["ece_uncalibrated"]
        for method, figures in task["methods"].items():
            assert METHOD_FIELDS <= set(figures), (name, method)
            assert {"accuracy", "macro_f1", "ece", "confidence"} <= set(figures["validation"])
            for value in (figures["accuracy"], figures["macro_f1"], figures["ece"], figures["validation"]["accuracy"],
                          figures["validation"]["ece"]):
                assert 0.0 <= value <= 1.0, (name, method, figures)
            assert figures["train_seconds"] > 0 and figures["train_examples_per_s"] > 0
        assert 0 < task["methods"]["frozen_logreg"]["C"]
        assert task["methods"]["recipe_lora"]["epochs_run"] == 1 and task["methods"]["current_lora"]["epochs_run"] == 1
    rule = result["tasks"]["intents"]["methods"]["recipe_lora"]["oos_rule"]  # the support desk's out-of-scope rule
    assert [r["threshold"] for r in rule] == [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert all(0.0 <= r["in_scope_accuracy"] <= 1.0 and 0.0 <= r["oos_recall"] <= 1.0 for r in rule)
    recalls = [r["oos_recall"] for r in rule]
    assert recalls == sorted(recalls)  # a higher threshold declares more out of scope, never fewer
    assert "oos_rule" not in result["tasks"]["sentiment"]["methods"]["recipe_lora"]
    # the fixed splits: sent_valid is the test; 10 % of sent_train the validation; CLINC's own parts with their oos rows
    assert result["tasks"]["sentiment"]["split"] | {"dropped": None} == {
        "n_train": 81, "n_validation": 9, "n_test": 30, "n_labels": 3, "seed": 14, "dropped": None}
    topics = result["tasks"]["topics"]["split"]
    assert (topics["n_train"], topics["n_validation"], topics["n_test"]) == (90, 12, 18)
    intents = result["tasks"]["intents"]["split"]
    assert (intents["n_train"], intents["n_validation"], intents["n_test"], intents["n_labels"]) == (70, 20, 40, 4)


def test_limit_caps_every_split_and_peft_picks_the_recipes(tiny_folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, devdata = tiny_folders
    # two epochs: AdaLoRA over a single optimizer step in all fails inside PEFT (its budget never ran before the final mask)
    assert main(["--base", str(base), "--devdata", str(devdata), "--tasks", "sentiment", "--limit", "20", "--epochs", "2",
                 "--peft", "ia3,adalora", "--recipes", "new", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1  # --json: the JSON line only
    task = json.loads(lines[0])["tasks"]["sentiment"]
    assert set(task["methods"]) == {"frozen_logreg", "recipe_ia3", "recipe_adalora"}
    assert task["methods"]["recipe_ia3"]["peft"] == "ia3"
    assert task["split"]["n_test"] <= 20 and task["split"]["n_train"] <= 20 and task["split"]["n_validation"] <= 9


def test_it_skips_with_a_message_when_the_devdata_is_absent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--devdata", str(tmp_path / "nowhere")]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out.splitlines()[0] and "nowhere" in out
    assert _last_json(out) == {"skipped": f"the development data is not at {tmp_path / 'nowhere'} "
                                          "(it lives beside the repository, never in it)"}


def test_a_missing_task_folder_is_skipped_and_a_bad_task_name_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "devdata").mkdir()
    assert main(["--devdata", str(tmp_path / "devdata"), "--tasks", "intents", "--json"]) == 0
    assert _last_json(capsys.readouterr().out)["tasks"]["intents"] == {"skipped": f"{tmp_path / 'devdata' / 'clinc150'} is absent"}
    with pytest.raises(SystemExit) as exit_info:
        main(["--devdata", str(tmp_path), "--tasks", "sentiment,weather"])
    assert exit_info.value.code == 2
    assert "unknown weather" in capsys.readouterr().err


def test_the_clinc_reader_names_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "data_full.json"
    good = [["buy shares", "buy_stock"]]
    path.write_text(json.dumps({"train": good, "val": good, "test": [["sell", ""]], "oos_train": [], "oos_val": [], "oos_test": []}))
    with pytest.raises(QualityDataError, match=r"data_full.json: test\[0\] is \['sell', ''\]"):
        clinc_read(path)
    path.write_text(json.dumps({"train": good, "val": good, "test": good}))
    with pytest.raises(QualityDataError, match="key 'oos_train' is missing"):
        clinc_read(path)


def test_try_adds_a_recipe_from_todays_defaults_and_bad_json_is_refused(tiny_folders: tuple[Path, Path],
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    base, devdata = tiny_folders
    assert main(["--base", str(base), "--devdata", str(devdata), "--tasks", "sentiment", "--epochs", "1", "--recipes", "new",
                 "--try", '{"label_smoothing": 0.1}', "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["tasks"]["sentiment"]["methods"]) == {"frozen_logreg", "recipe_lora", "try_lora"}
    assert result["recipe_config"]["try_lora"]["label_smoothing"] == 0.1
    for bad, named in (('{"label_smoothing": 2}', "label_smoothing=2.0 is invalid"), ('{"colour": 1}', "colour"),
                       ("[1]", "JSON object"), ("{", "not valid JSON")):
        with pytest.raises(SystemExit):
            main(["--devdata", str(devdata), "--try", bad])
        assert named in capsys.readouterr().err, bad
    with pytest.raises(SystemExit):
        main(["--devdata", str(devdata), "--recipes", "old"])
    assert "--recipes 'old'" in capsys.readouterr().err
