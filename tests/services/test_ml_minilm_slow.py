"""The packaged all-MiniLM-L6-v2 end to end: train a small adapter on it, save, serve (CPU, under a minute)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

GOOD = ["profits jump", "shares rally after strong earnings", "record revenue lifts the stock", "analysts upgrade the company",
        "dividend raised again", "sales beat expectations", "stock hits an all-time high", "guidance raised for the year"]
BAD = ["profits collapse", "shares tumble after weak earnings", "revenue miss sinks the stock", "analysts downgrade the company",
       "dividend cut", "sales fall short of expectations", "stock hits a multi-year low", "guidance lowered for the year"]


def _rows(seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    prefixes = ["", "breaking: ", "update - ", "$ACME ", "report: "]
    texts, labels = [], []
    for phrase_list, label in ((GOOD, "positive"), (BAD, "negative")):
        for phrase in phrase_list:
            for _ in range(4):
                texts.append(rng.choice(prefixes) + phrase)
                labels.append(label)
    return texts, labels


def test_the_packaged_minilm_trains_saves_and_serves_an_adapter(tmp_path: Path) -> None:
    from services.ml.artifacts import artifact_save
    from services.ml.encoder import default_base_path, weights_sha256
    from services.ml.runtime import AdapterRef, InferenceRuntime
    from services.ml.training import ClassifierConfig, classifier_train

    base = default_base_path()
    assert (base / "config.json").is_file() and len(weights_sha256(base)) == 64
    texts, labels = _rows(0)
    config = ClassifierConfig(epochs=8, batch_size=8, lr=1e-3, val_fraction=0.25, max_length=32, patience=3)
    result = classifier_train(base_path=base, texts=texts, labels=labels, config=config, progress=False)
    assert result.metrics["accuracy"] >= 0.85
    sha = artifact_save(result=result, folder=tmp_path / "v1", source="phrases.csv")
    runtime = InferenceRuntime(base_path=base, resolver=lambda task: AdapterRef(task, 1, str(tmp_path / "v1"), sha))
    out = runtime.classify(task="tone", texts=["quarterly profits soar", "the company slashes its dividend"])
    assert out.labels == ["positive", "negative"] and out.probs.shape == (2, 2)
    plain = runtime.embed(task=None, texts=["shares rally", "stocks surge", "the cat sleeps on the sofa"])  # (3, 384)
    assert plain.shape == (3, 384) and np.allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-5)
    assert plain[0] @ plain[1] > plain[0] @ plain[2]
