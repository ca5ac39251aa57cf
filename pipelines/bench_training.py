"""Training-speed benchmark: the recipe before issue 14 against today's, on the same rows, in one run.

    python -m pipelines.bench training [--json] [--rows 2000] [--pairs 4000] [--epochs 2] [--base NAME_OR_PATH]
                                       [--devdata DIR]

1. Data (../shared/devdata, or --devdata; without it: the reason and the JSON line {"skipped": ...}):
   - classification: `--rows` seeded-random rows of the finance sentiment headlines (sent_train.csv);
   - pairs: the recommender's training pairs (services.recommender.evaluation.pairs_make: each purchase's product
     title -> the next distinct product's title) from the Online Retail invoices, `--pairs` of them, seeded.
2. Each kind trains twice on those rows with the same epoch bound (`--epochs`): `current`, the recipe before
   issue 14 pinned field by field (pipelines.quality.CURRENT_RECIPE, CURRENT_PAIR_RECIPE: every layer adapted, one
   evaluation per epoch, every pair each epoch), and `new`, today's ClassifierConfig / PairConfig defaults.
3. Figures per run: training examples per second (optimizer steps x batch size / seconds in the training loop,
   the trainer's `examples_per_second`), steps, epochs run, wall seconds of the whole train call (tokenising, the
   probe or the cached lower layers, validation, calibration) and the validation score that early stopping used
   (classification macro-F1; pairs MRR beside the untuned base's), so a faster recipe that learns less shows.
   `speedup`: new over current examples per second; `wall_ratio`: current over new wall seconds.
"""
from __future__ import annotations

import csv
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.bench import ROOT

DEVDATA = ROOT.parent / "shared" / "devdata"
SEED = 14  # the row samples (the number, never tuned)
SENTIMENT_FILE = Path("twitter_financial_news_sentiment") / "sent_train.csv"
RETAIL_FILE = Path("online_retail") / "online_retail.csv"
# PairConfig's defaults before issue 14 (commit 94d3384), pinned field by field; later fields at their neutral values.
CURRENT_PAIR_RECIPE: dict[str, Any] = {
    "seed": 13, "peft": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.1,
    "target_modules": ["query", "key", "value", "dense"], "lr": 2e-4, "epochs": 3, "batch_size": 32, "max_length": 128,
    "val_fraction": 0.1, "patience": 2, "weight_decay": 0.01, "warmup_ratio": 0.06, "max_grad_norm": 1.0,
    "strip_urls": True, "scale": 20.0, "symmetric": True, "adapt_top": 1.0, "evals_per_epoch": 1, "pair_budget": 0,
    "eval_start": False, "average_top": 1,
}


def sentiment_sample(devdata: Path, n: int) -> tuple[list[str], list[str]]:
    """`n` seeded-random (text, label) rows of the sentiment training file."""
    from services.ml.data import dataset_read

    data = dataset_read(path=devdata / SENTIMENT_FILE)
    texts, labels = data.texts, data.labels
    chosen = sorted(random.Random(SEED).sample(range(len(texts)), min(n, len(texts))))
    return [texts[i] for i in chosen], [labels[i] for i in chosen]


def retail_pairs(devdata: Path, n: int) -> tuple[list[str], list[str]]:
    """`n` seeded-random recommender training pairs (query title, next item title) from the Online Retail invoices."""
    from pipelines.recommender_retail import retail_convert
    from services.recommender.evaluation import catalogue_read, interactions_read, pairs_make, split_leave_last_out

    with tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        out = Path(scratch)
        retail_convert(source=devdata / RETAIL_FILE, out=out)
        ids, texts = catalogue_read(path=out / "items.csv")
        history = interactions_read(path=out / "interactions.csv", rows_of={external: row for row, external in enumerate(ids)})
    queries, items = pairs_make(split=split_leave_last_out(history=history), texts=texts)
    chosen = sorted(random.Random(SEED).sample(range(len(queries)), min(n, len(queries))))
    return [queries[i] for i in chosen], [items[i] for i in chosen]


def _figures(result: Any, key: str) -> dict[str, Any]:
    m = result.metrics
    out = {"examples_per_second": m["examples_per_second"], "steps": m["steps"], "epochs_run": m["epochs_run"],
           "best_epoch": m["best_epoch"], "wall_seconds": result.seconds, key: m[key],
           "adapted_from_layer": m.get("adapted_from_layer", 0), "cached_lower_layers": m.get("cached_lower_layers", False)}
    if "base_mrr" in m:
        out["base_mrr"] = m["base_mrr"]
    if "pairs_per_epoch" in m:
        out["pairs_per_epoch"] = m["pairs_per_epoch"]
    return out


def _compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    current, new = runs["current"], runs["new"]
    return {**runs, "speedup": round(new["examples_per_second"] / max(current["examples_per_second"], 1e-9), 2),
            "wall_ratio": round(current["wall_seconds"] / max(new["wall_seconds"], 1e-9), 2)}


def _recipes_run(*, kind: str, key: str, configs: dict[str, Any], train: Callable[[Any], Any],
                 say: Callable[..., None]) -> dict[str, Any]:
    """Train once per recipe (`current`, then `new`), each run's figures said as it ends; the two compared."""
    runs: dict[str, dict[str, Any]] = {}
    for name, config in configs.items():
        runs[name] = _figures(train(config), key)
        say(f"{kind} {name}: {runs[name]}", flush=True)
    return _compare(runs)


def training_bench(*, rows: int, pairs: int, epochs: int, base: str | None, devdata: Path, quiet: bool) -> dict[str, Any]:
    from pipelines.quality import CURRENT_RECIPE, base_resolve
    from services.ml.training import ClassifierConfig, PairConfig, classifier_train, pairs_train

    say = (lambda *a, **k: None) if quiet else print  # noqa: E731
    missing = [str(devdata / f) for f in (SENTIMENT_FILE, RETAIL_FILE) if not (devdata / f).is_file()]
    if missing:
        reason = f"the development data is not there: {', '.join(missing)} (it lives beside the repository, never in it)"
        say(f"skipped: {reason}")
        return {"skipped": reason}
    import torch

    base_path = base_resolve(base)
    started = time.monotonic()
    texts, labels = sentiment_sample(devdata, rows)
    queries, items = retail_pairs(devdata, pairs)
    say(f"base {base_path}; {torch.get_num_threads()} CPU threads; {len(texts)} headlines, {len(queries)} pairs, "
        f"at most {epochs} epochs each", flush=True)
    interactive = sys.stderr.isatty() and not quiet
    classification = _recipes_run(
        kind="classification", key="macro_f1", say=say,
        configs={"current": ClassifierConfig.from_dict({**CURRENT_RECIPE, "epochs": epochs}),
                 "new": ClassifierConfig(epochs=epochs)},
        train=lambda config: classifier_train(base_path=base_path, texts=texts, labels=labels, config=config,
                                              progress=interactive))
    pair_runs = _recipes_run(
        kind="pairs", key="mrr", say=say,
        configs={"current": PairConfig.from_dict({**CURRENT_PAIR_RECIPE, "epochs": epochs}),
                 "new": PairConfig(epochs=epochs)},
        train=lambda config: pairs_train(base_path=base_path, queries=queries, items=items, config=config,
                                         progress=interactive))
    out = {"classification": classification, "pairs": pair_runs, "rows": len(texts), "pairs_n": len(queries),
           "epochs": epochs, "threads": torch.get_num_threads(), "base": str(base_path),
           "seconds": round(time.monotonic() - started, 1)}
    if not quiet:
        print(f"{'kind':<15} {'recipe':<8} {'ex/s':>7} {'steps':>6} {'epochs':>6} {'wall s':>7} {'val score':>9}")
        for kind, key in (("classification", "macro_f1"), ("pairs", "mrr")):
            for name in ("current", "new"):
                r = out[kind][name]
                print(f"{kind:<15} {name:<8} {r['examples_per_second']:>7.1f} {r['steps']:>6} {r['epochs_run']:>6} "
                      f"{r['wall_seconds']:>7.1f} {r[key]:>9.4f}")
            print(f"{kind:<15} speedup {out[kind]['speedup']:.2f}x examples/s, wall {out[kind]['wall_ratio']:.2f}x")
    return out


def csv_rows_write(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    """A small CSV (tests build a tiny devdata folder with it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
