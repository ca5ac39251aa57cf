"""Quality check: the default LoRA classifier against frozen MiniLM + logistic regression on finance headlines.

Run from the repository root (CPU is fine; about ten minutes on two cores):

    HF_HUB_OFFLINE=1 python -m pipelines.quality_sentiment [--config '{"epochs": 3}'] [--keep DIR]

1. Read ../shared/devdata/twitter_financial_news_sentiment/sent_train.csv and sent_valid.csv (skip, with a
   message, when the folder is absent: the data is never part of the repository).
2. Baseline: L2-normalised mean-pooled embeddings of the frozen base encoder + LogisticRegression (C by 5-fold CV).
3. Adapter: classifier_train with the default ClassifierConfig on sent_train, saved as an artifact, then scored
   on sent_valid through the inference runtime (the production path).
4. Print one final JSON line: baseline_accuracy, adapter_accuracy, the macro-F1s, seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from services.output import json_line

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "devdata" / "twitter_financial_news_sentiment"


def baseline_score(*, base_path: Path, train: tuple[list[str], list[str]], valid: tuple[list[str], list[str]]) -> dict[str, float]:
    """Frozen encoder + logistic regression: accuracy and macro-F1 on the validation texts."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import accuracy_score, f1_score

    from services.ml.runtime import InferenceRuntime

    def no_adapters(task: str) -> None:
        raise AssertionError("the baseline uses the base encoder only")

    started = time.monotonic()
    runtime = InferenceRuntime(base_path=base_path, resolver=no_adapters, max_length=128)
    x_train = runtime.embed(task=None, texts=train[0])  # (n_train, hidden)
    x_valid = runtime.embed(task=None, texts=valid[0])  # (n_valid, hidden)
    # A fair baseline: the regularisation strength is chosen by 5-fold cross-validation on the training rows.
    model = LogisticRegressionCV(Cs=[0.1, 1.0, 10.0, 100.0], cv=5, max_iter=5000, n_jobs=1).fit(x_train, train[1])
    predicted = model.predict(x_valid)
    return {"accuracy": round(float(accuracy_score(valid[1], predicted)), 4),
            "macro_f1": round(float(f1_score(valid[1], predicted, average="macro")), 4), "C": float(model.C_[0]),
            "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="{}", help="JSON overrides of ClassifierConfig fields")
    parser.add_argument("--keep", default="", help="save the adapter artifact here instead of a temporary folder")
    args = parser.parse_args(argv)
    if not (DATA_DIR / "sent_train.csv").is_file() or not (DATA_DIR / "sent_valid.csv").is_file():
        print(f"skipped: the development data is not at {DATA_DIR} (it lives beside the repository, never in it).")
        return 0

    from services.ml.artifacts import artifact_evaluate, artifact_save
    from services.ml.data import dataset_read
    from services.ml.device import device_pick, threads_apply
    from services.ml.encoder import default_base_path
    from services.ml.training import ClassifierConfig, classifier_train

    base_path = default_base_path()
    train = dataset_read(path=DATA_DIR / "sent_train.csv")
    valid = dataset_read(path=DATA_DIR / "sent_valid.csv")
    config = ClassifierConfig.from_dict(json.loads(args.config))
    threads = os.environ.get("SUITE_TORCH_THREADS", "").strip()  # this script runs without Django settings: pass it in
    threads_apply(threads=int(threads) if threads else None)
    device, _ = device_pick()
    import torch

    print(f"base {base_path}; device {device}, {torch.get_num_threads()} CPU threads; "
          f"{len(train.texts)} training rows, {len(valid.texts)} validation rows", flush=True)

    baseline = baseline_score(base_path=base_path, train=(train.texts, train.labels), valid=(valid.texts, valid.labels))
    print(f"baseline (frozen encoder + logistic regression): {baseline}", flush=True)

    result = classifier_train(base_path=base_path, texts=train.texts, labels=train.labels, config=config, progress=sys.stderr.isatty())
    print(f"adapter trained in {result.seconds:.0f} s; its validation split: {result.metrics}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep) if args.keep else Path(scratch) / "artifact"
        sha = artifact_save(result=result, folder=folder, source="sent_train.csv")
        started = time.monotonic()
        adapter = artifact_evaluate(folder=folder, texts=valid.texts, labels=valid.labels)
        scoring_seconds = round(time.monotonic() - started, 1)
    print(json_line({
        "baseline_accuracy": baseline["accuracy"], "baseline_macro_f1": baseline["macro_f1"],
        "baseline_C": baseline["C"], "adapter_accuracy": adapter["accuracy"], "adapter_macro_f1": adapter["macro_f1"],
        "train_seconds": result.seconds, "baseline_seconds": baseline["seconds"], "scoring_seconds": scoring_seconds,
        "best_epoch": result.metrics["best_epoch"], "epochs_run": result.metrics["epochs_run"],
        "n_valid": adapter["n"], "artifact_sha256": sha, "config": config.as_dict(),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
