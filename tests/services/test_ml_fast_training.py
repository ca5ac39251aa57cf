"""Faster CPU training and calibrated confidences: cached frozen layers, evaluations per epoch fraction, a pair budget,
temperature scaling stored with the artifact and applied when served."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from services.ml.artifacts import ArtifactError, artifact_evaluate, artifact_info, artifact_runtime, artifact_save
from services.ml.calibration import calibration_error, probs_temperature, temperature_fit
from services.ml.encoder import base_load, texts_prepare, texts_tokenize
from services.ml.loop import ids_embed
from services.ml.prefix import PrefixCache
from services.ml.training import ClassifierConfig, PairConfig, _peft_wrap, classifier_train, pairs_train
from tests.services.conftest import pair_rows, sentiment_rows

CPU = torch.device("cpu")
HALF = dict(adapt_top=0.5, batch_size=16, max_length=16, val_fraction=0.2, lora_r=4, lora_alpha=8)


def _ids(base: Path, texts: list[str]) -> tuple[list[list[int]], int]:
    tokenizer = base_load(base)[0]
    return texts_tokenize(tokenizer, texts_prepare(texts, strip_urls=True), max_length=16), tokenizer.pad_token_id or 0


def _head_logits(result: object, base: Path, texts: list[str]) -> tuple[torch.Tensor, np.ndarray]:
    """The trained model in memory, as training computes it: pooled vectors (n, hidden), normalised when the config
    says so, and the head's logits (n, n_labels)."""
    ids, pad = _ids(base, texts)
    pooled = ids_embed(result.model, ids, pad_id=pad, device=CPU, dtype=torch.float32, normalize=result.config.head_normalize)
    with torch.no_grad():
        return pooled, result.head(pooled).numpy()


def test_the_cached_lower_layers_give_what_a_full_pass_gives(tiny_base: Path) -> None:
    """With the adapter on the top layer of two, the cache + top layer equals the whole model (float16 cache: 1e-2)."""
    config = ClassifierConfig(**HALF)
    _, model, _, start = _peft_wrap(tiny_base, config, total_steps=10)
    assert start == 1
    with torch.no_grad():  # move the adapter away from its zero start, so that the top layer's LoRA takes part
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    texts = sentiment_rows(40, seed=3)[0]
    ids, pad = _ids(tiny_base, texts)
    full = ids_embed(model, ids, pad_id=pad, device=CPU, dtype=torch.float32, normalize=False)  # (n, hidden)
    cache = PrefixCache(model=model, ids=ids, start=start, pad_id=pad, device=CPU, dtype=torch.float32)
    cached = cache.embed(list(range(len(ids))), normalize=False)
    np.testing.assert_allclose(cached.numpy(), full.numpy(), atol=1e-2)
    assert torch.abs(full).max() > 0.1  # not trivially zero
    # the cached rows are the lower layer's output, not the embeddings: a different start gives different rows
    assert cache.rows[0].shape == (len(ids[0]), 32) and cache.rows[0].dtype == torch.float16
    assert len(model.get_base_model().encoder.layer) == 2  # the layer list is restored after every call


def test_training_on_the_top_half_learns_and_serves_as_trained(tiny_base: Path, tmp_path: Path) -> None:
    texts, labels = sentiment_rows(180)
    config = ClassifierConfig(epochs=12, lr=1e-2, head_lr=2e-2, patience=4, **HALF)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
    assert result.metrics["cached_lower_layers"] is True and result.metrics["adapted_from_layer"] == 1
    assert result.metrics["accuracy"] >= 0.85
    names = [n for n, p in result.model.named_parameters() if "lora_" in n]
    assert names and all(".layer.1." in n for n in names)  # no adapter below the cached layer
    folder = tmp_path / "a"
    artifact_save(result=result, folder=folder, source="x.csv")
    held, truth = sentiment_rows(60, seed=7)
    scored = artifact_evaluate(folder=folder, texts=held, labels=truth, base_path=tiny_base)
    assert scored["accuracy"] >= 0.8  # the full forward the runtime runs agrees with the cached forward training ran


def test_evaluations_per_epoch_stop_within_a_fraction_of_an_epoch(tiny_base: Path) -> None:
    texts, labels = sentiment_rows(120)
    plain = dict(eval_start=False, average_top=1)
    config = ClassifierConfig(epochs=3, lr=1e-2, head_lr=2e-2, evals_per_epoch=4, patience=50, **HALF, **plain)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
    assert [row["epoch"] for row in result.history] == [0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3]
    assert result.metrics["evaluations"] == 12 and result.metrics["steps"] == 3 * 6  # 96 training rows, batches of 16
    stopping = ClassifierConfig(epochs=3, lr=1e-9, head_lr=1e-9, evals_per_epoch=4, patience=2, **HALF, **plain)  # no gain
    stopped = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=stopping, progress=False)
    assert stopped.metrics["evaluations"] == 3 and stopped.metrics["epochs_run"] == 0.75


def test_a_run_that_never_gains_returns_the_untrained_adapter(tiny_base: Path) -> None:
    """eval_start: the state before the first step (frozen encoder + probe head) is scored as "epoch 0" and kept when
    no later evaluation beats it: the LoRA B matrices are back at their zero start."""
    texts, labels = sentiment_rows(120)
    config = ClassifierConfig(epochs=2, lr=1e-9, head_lr=1e-9, patience=2, eval_start=True, average_top=1, **HALF)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
    assert result.history[0]["epoch"] == 0 and "train_loss" not in result.history[0]
    assert result.metrics["best_epoch"] == 0 and result.metrics["evaluations"] == 3 and "train_loss" not in result.metrics
    lora_b = [p for n, p in result.model.named_parameters() if "lora_B" in n]
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)


def test_averaging_the_best_checkpoints_is_kept_only_when_it_scores_no_lower(tiny_base: Path) -> None:
    texts, labels = sentiment_rows(150)
    config = ClassifierConfig(epochs=4, lr=1e-2, head_lr=2e-2, patience=10, evals_per_epoch=2, average_top=3, **HALF)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
    single = [row for row in result.history if "averaged" not in row]
    best = max(row["macro_f1"] for row in single)
    assert result.metrics["macro_f1"] >= best - 1e-9
    if result.metrics["averaged"] > 1:  # the average's own evaluation closes the history
        assert result.history[-1]["averaged"] == 3 == result.metrics["averaged"]
    else:
        assert result.metrics["macro_f1"] == best
    adalora = ClassifierConfig(**{**config.as_dict(), "peft": "adalora"})
    assert classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=adalora, progress=False).metrics["averaged"] == 1


def test_the_probe_can_choose_its_c_by_cross_validation(tiny_base: Path) -> None:
    from services.ml.training import PROBE_CS

    texts, labels = sentiment_rows(90)
    config = ClassifierConfig(epochs=1, probe_cv=True, **HALF)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
    assert result.metrics["probe_c"] in PROBE_CS
    fixed = ClassifierConfig(epochs=1, probe_cv=False, probe_c=0.37, **HALF)
    assert classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=fixed, progress=False).metrics["probe_c"] == 0.37


def test_a_pair_budget_caps_the_pairs_of_each_epoch(tiny_base: Path) -> None:
    queries, items = pair_rows(240)
    config = PairConfig(epochs=2, lr=1e-2, patience=5, pair_budget=64, **HALF)
    result = pairs_train(base_path=tiny_base, queries=queries, items=items, config=config, progress=False)
    assert result.metrics["pairs_per_epoch"] == 64 and result.metrics["steps"] == 2 * 4
    assert result.metrics["cached_lower_layers"] is True
    assert result.metrics["mrr"] >= result.metrics["base_mrr"]


def test_a_budget_below_two_batches_is_refused() -> None:
    from services.ml.training import TrainingError

    with pytest.raises(TrainingError, match=r"PairConfig.pair_budget=10 is invalid: it must be 0 \(every pair\) or at least two"):
        PairConfig(pair_budget=10, batch_size=16)
    with pytest.raises(TrainingError, match=r"adapt_top=0.0 is invalid"):
        ClassifierConfig(adapt_top=0.0)


def test_temperature_scaling_recovers_a_known_over_confidence() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, size=(4000, 5))
    truth = np.array([rng.choice(5, p=p) for p in probs_temperature(logits=true_logits, temperature=1.0)])
    over = true_logits * 3.0  # a model three times too sure
    t = temperature_fit(logits=over, truth=truth)
    assert 2.6 < t < 3.4
    before = calibration_error(probs=probs_temperature(logits=over, temperature=1.0), truth=truth)
    after = calibration_error(probs=probs_temperature(logits=over, temperature=t), truth=truth)
    assert before > 0.15 and after < 0.03
    assert (probs_temperature(logits=over, temperature=t).argmax(1) == over.argmax(1)).all()  # accuracy unchanged


def test_a_validation_split_without_errors_keeps_the_temperature_at_one() -> None:
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [4.0, 1.0]])
    assert temperature_fit(logits=logits, truth=[0, 1, 0]) == 1.0  # sharper is always likelier: no minimum to find


def test_the_temperature_is_stored_and_served(tiny_base: Path, tmp_path: Path) -> None:
    texts, labels = sentiment_rows(150)
    names = sorted(set(labels))
    labels = [names[(names.index(label) + 1) % 3] if i % 6 == 0 else label for i, label in enumerate(labels)]  # 1 in 6 wrong
    config = ClassifierConfig(epochs=6, lr=1e-2, head_lr=5e-2, patience=6, label_smoothing=0.0, **HALF)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
    assert result.temperature == result.metrics["temperature"] != 1.0
    assert {"val_ece_raw", "val_ece"} <= set(result.metrics) and result.metrics["val_ece"] <= result.metrics["val_ece_raw"] + 0.02
    folder = tmp_path / "a"
    artifact_save(result=result, folder=folder, source="x.csv")
    assert artifact_info(folder).temperature == pytest.approx(result.temperature)
    logits = _head_logits(result, tiny_base, texts[:20])[1]
    served = artifact_runtime(folder=folder, base_path=tiny_base).classify(task="evaluate", texts=texts[:20]).probs
    np.testing.assert_allclose(served, probs_temperature(logits=logits, temperature=result.temperature), atol=1e-5)
    assert not np.allclose(served, probs_temperature(logits=logits, temperature=1.0), atol=1e-3)
    held, truth = sentiment_rows(60, seed=5)
    rows: list[dict] = []
    scored = artifact_evaluate(folder=folder, texts=held, labels=truth, base_path=tiny_base, predictions=rows)
    assert scored["temperature"] == pytest.approx(result.temperature) and {"ece", "ece_uncalibrated"} <= set(scored)
    assert len(rows) == 60 and set(rows[0]) == {"text", "gold", "predicted", "probability"} and rows[0]["text"] == held[0]


def test_a_bad_stored_temperature_is_refused_by_name(tiny_base: Path, tmp_path: Path) -> None:
    texts, labels = sentiment_rows(60)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, progress=False,
                              config=ClassifierConfig(epochs=1, **HALF))
    folder = tmp_path / "a"
    artifact_save(result=result, folder=folder, source="x.csv")
    info = json.loads((folder / "artifact.json").read_text())
    (folder / "artifact.json").write_text(json.dumps({**info, "temperature": -1}))
    with pytest.raises(ArtifactError, match=r"artifact.json temperature=-1 is invalid: it must be a number in \[0.05, 20.0\]"):
        artifact_info(folder)


def test_the_head_reads_the_normalised_vector_as_trained_and_older_artifacts_the_raw_one(tiny_base: Path, tmp_path: Path) -> None:
    """head_normalize (today's default) is saved in train_config.json and honoured when served; an artifact from before
    the field (no key) is served from the raw pooled vector, as it was trained."""
    from services.ml.artifacts import artifact_sha256
    from services.ml.runtime import AdapterRef, InferenceRuntime

    texts, labels = sentiment_rows(120)
    served = {}
    for normalize in (True, False):
        config = ClassifierConfig(epochs=2, lr=1e-2, head_lr=2e-2, head_normalize=normalize, eval_start=False, **HALF)
        result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
        folder = tmp_path / f"n{normalize}"
        artifact_save(result=result, folder=folder, source="x.csv")
        saved = json.loads((folder / "train_config.json").read_text())
        assert saved["head_normalize"] is normalize
        if not normalize:  # written as before the field existed
            del saved["head_normalize"]
            (folder / "train_config.json").write_text(json.dumps(saved, sort_keys=True))
        pooled, logits = _head_logits(result, tiny_base, texts[:20])
        expected = probs_temperature(logits=logits, temperature=result.temperature)
        ref = AdapterRef(task="t", version=1, path=str(folder), sha256=artifact_sha256(folder))
        served[normalize] = InferenceRuntime(base_path=tiny_base, resolver=lambda task, ref=ref: ref,
                                             device="cpu").classify(task="t", texts=texts[:20]).probs
        np.testing.assert_allclose(served[normalize], expected, atol=1e-5)
        assert abs(float(torch.linalg.vector_norm(pooled, dim=-1).mean()) - 1.0) < 1e-4 or not normalize


def test_class_weights_make_a_rare_label_count(tiny_base: Path) -> None:
    """class_weights: with one label ten times rarer, the weighted loss (and probe) predict it for more of its held
    rows than the plain recipe, which learns that guessing it rarely pays; the flag is saved with the config."""
    texts, labels = sentiment_rows(360)
    keep = [i for i, label in enumerate(labels) if label != "bearish" or i % 30 < 3]  # 120 / 120 / 12 rows
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    held, truth = sentiment_rows(90, seed=11)
    found = {}
    for weighted in (False, True):
        config = ClassifierConfig(epochs=1, lr=1e-3, head_lr=1e-3, class_weights=weighted, probe_cv=False, probe_c=1.0,
                                  eval_start=False, **HALF)
        result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, config=config, progress=False)
        assert result.config.as_dict()["class_weights"] is weighted
        predicted = [result.label_names[i] for i in _head_logits(result, tiny_base, held)[1].argmax(-1).tolist()]
        found[weighted] = sum(p == t == "bearish" for p, t in zip(predicted, truth))
    assert found[True] > found[False], found
