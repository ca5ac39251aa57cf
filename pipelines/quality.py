"""Quality benchmark: every classification task of the devdata, frozen encoder + logistic regression against the training recipe.

Run from the repository root (the full splits take hours on two CPU cores; --limit makes a quick run):

    HF_HUB_OFFLINE=1 python -m pipelines.quality [--tasks sentiment,topics,intents] [--json] [--limit N] [--epochs N]
        [--recipes current,new] [--peft lora[,adalora,ia3]] [--try JSON] [--base NAME_OR_PATH] [--devdata DIR]

It supersedes `pipelines.quality_sentiment` (one task, no calibration, no held-back validation split), which is kept
working unchanged because docs/PERFORMANCE.md quotes it and `pipelines.bench_inference` uses its `--keep` artifact.

1. Read each task's public files from ../shared/devdata (or --devdata) with the shared readers (services.ml.data);
   skip, with a message and the JSON {"skipped": ...}, when the folder is absent: the data is never in the repository.
2. Fix the split, seeded (SPLIT_SEED) and stratified by label, the same in every run:
   - sentiment: test = sent_valid.csv (the publisher's validation file); validation = 10 % of sent_train.csv; train = the rest.
   - topics: one file (topic_train.csv): test = 15 %, validation = 10 %, train = the rest.
   - intents: CLINC150's own train / val / test, each with its out-of-scope rows (label "oos", a 151st class).
   `--limit N` keeps N seeded-random rows per split; then labels with fewer than two training rows are dropped and
   validation / test rows of labels the training split lacks (counted in the JSON).
   Neither method sees validation or test rows while training: the validation split is held back for calibration
   (temperature scaling, issue 14 item 4) and reported beside test.
3. Frozen encoder + logistic regression: the base's pooled, L2-normalised embeddings (texts prepared and truncated as
   the recipe does) and scikit-learn's LogisticRegressionCV, C chosen by stratified k-fold cross-validation on train.
4. The recipes (--recipes): `current`, the recipe before issue 14 (CURRENT_RECIPE, pinned field by field, LoRA,
   uncalibrated), and `new`, today's default ClassifierConfig, once per --peft method (methods `recipe_<peft>`);
   `--try JSON` adds today's defaults with some fields changed (`try_<peft>`), for choosing the next defaults.
   Each is services.ml.training.classifier_train on the train split (it holds out its own val_fraction of it for
   early stopping and the temperature), saved as an artifact and scored through the inference runtime (the
   production path): calibrated probabilities, and ECE of the same logits without the temperature beside them.
   Intents: the support desk's out-of-scope rule (predicted `oos` or top probability under a threshold) at
   OOS_THRESHOLDS, in-scope accuracy and out-of-scope recall, to re-check SUPPORT_INTENT_MIN_PROB on this scale.
5. Per task and method: accuracy, macro-F1, expected calibration error (services.ml.calibration: top label,
   15 equal-width bins) and mean top-label confidence on test and validation; training seconds; training examples per second (examples through
   the encoder per training second: train rows x epochs run for the recipe, train rows for the one frozen pass).
   A table, then one JSON line (the last line printed).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.errors import SuiteError
from services.output import json_line

ROOT = Path(__file__).resolve().parents[1]
DEVDATA = ROOT.parent / "shared" / "devdata"
SPLIT_SEED = 14  # fixes every split and --limit sample (the number; never tuned)
VALIDATION_FRACTION = 0.1  # sentiment and topics: share of the rows held back for validation (calibration)
TOPICS_TEST_FRACTION = 0.15  # topics has one public file: the share held back as test
LR_CS = (0.1, 1.0, 10.0, 100.0)  # LogisticRegressionCV's candidate C (inverse L2 strength); L2-normalised inputs want C >= 1
LR_FOLDS = 5  # cross-validation folds for C (fewer when a label has fewer training rows)
OOS_LABEL = "oos"  # CLINC150's out-of-scope intent, kept as one more class
OOS_THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # intents: the support desk's SUPPORT_INTENT_MIN_PROB candidates
# The recipe before issue 14 (ClassifierConfig's defaults at commit 94d3384), pinned field by field so that "current"
# stays what it was when the defaults move on. Fields added since then take the values that reproduce it.
CURRENT_RECIPE: dict[str, Any] = {
    "seed": 13, "peft": "lora", "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.1,
    "target_modules": ["query", "key", "value", "dense"], "lr": 1e-3, "head_lr": 1e-3, "epochs": 4, "batch_size": 32,
    "max_length": 128, "val_fraction": 0.1, "patience": 2, "weight_decay": 0.01, "warmup_ratio": 0.06,
    "max_grad_norm": 1.0, "strip_urls": True, "head_dropout": 0.1, "label_smoothing": 0.0, "head_init": "probe",
    "probe_c": 1.0, "probe_cv": False, "calibrate": False, "adapt_top": 1.0, "evals_per_epoch": 1, "eval_start": False,
    "average_top": 1, "head_normalize": False, "class_weights": False,
}
RECIPES = ("current", "new")  # --recipes: the recipe before issue 14 (LoRA only, as it was) and today's defaults


class QualityDataError(SuiteError):
    """A devdata file that is not laid out as its README says."""


class TooFewRows(QualityDataError):
    """Too little of a task is left to benchmark (a small --limit over many labels): the task is skipped."""


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class TaskData:
    name: str
    source: str  # the files, relative to the devdata folder
    split_rule: str  # how train / validation / test were made (printed in the JSON)
    train: Split
    validation: Split
    test: Split
    dropped: dict[str, int]  # rows removed by --limit's label rules, per split


# --- data: the shared readers, a fixed split -------------------------------------------------------------------------

def _stratified(split: Split, *, held: int, seed: int) -> tuple[Split, Split]:
    """(rest, held back): `held` rows held back, stratified by label where every label has two rows."""
    from sklearn.model_selection import train_test_split

    counts = Counter(split.labels)
    strata = split.labels if min(counts.values()) >= 2 else None
    rest, back = train_test_split(list(range(len(split.texts))), test_size=held, random_state=seed, stratify=strata)
    pick = lambda idx: Split([split.texts[i] for i in sorted(idx)], [split.labels[i] for i in sorted(idx)])  # noqa: E731
    return pick(rest), pick(back)


def _read_csv(path: Path) -> Split:
    from services.ml.data import dataset_read  # services.tabular's rules: errors name the file and line

    data = dataset_read(path=path)
    return Split(data.texts, data.labels)


def _sentiment(folder: Path) -> tuple[str, str, Split, Split, Split]:
    base = folder / "twitter_financial_news_sentiment"
    train = _read_csv(base / "sent_train.csv")
    rest, validation = _stratified(train, held=round(len(train.texts) * VALIDATION_FRACTION), seed=SPLIT_SEED)
    return ("twitter_financial_news_sentiment/sent_train.csv, sent_valid.csv",
            f"test = sent_valid.csv; validation = {VALIDATION_FRACTION:.0%} of sent_train.csv (stratified, seed {SPLIT_SEED}); train = the rest",
            rest, validation, _read_csv(base / "sent_valid.csv"))


def _topics(folder: Path) -> tuple[str, str, Split, Split, Split]:
    everything = _read_csv(folder / "twitter_financial_news_topic" / "topic_train.csv")
    n = len(everything.texts)
    rest, test = _stratified(everything, held=round(n * TOPICS_TEST_FRACTION), seed=SPLIT_SEED)
    train, validation = _stratified(rest, held=round(n * VALIDATION_FRACTION), seed=SPLIT_SEED)
    return ("twitter_financial_news_topic/topic_train.csv",
            f"topic_train.csv: test = {TOPICS_TEST_FRACTION:.0%}, validation = {VALIDATION_FRACTION:.0%} "
            f"(stratified, seed {SPLIT_SEED}); train = the rest", train, validation, test)


def clinc_read(path: Path) -> dict[str, Split]:
    """CLINC150's data_full.json as train / validation / test, each with its out-of-scope rows (label "oos").

    The file is one JSON object (not a table the shared reader knows): keys train, val, test, oos_train, oos_val,
    oos_test, each a list of [text, intent] rows. A missing key or a bad row is refused, naming the key and row.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QualityDataError(f"{path.name}: not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise QualityDataError(f"{path.name}: expected one JSON object with train, val and test, found {type(data).__name__}.")
    out = {}
    for name, keys in (("train", ("train", "oos_train")), ("validation", ("val", "oos_val")), ("test", ("test", "oos_test"))):
        texts, labels = [], []
        for key in keys:
            rows = data.get(key)
            if not isinstance(rows, list):
                raise QualityDataError(f"{path.name}: key {key!r} is missing or not a list of [text, intent] rows.")
            for i, row in enumerate(rows):
                if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) and v.strip() for v in row)):
                    raise QualityDataError(f"{path.name}: {key}[{i}] is {row!r}, not a [text, intent] pair of non-empty strings.")
                texts.append(row[0].strip())
                labels.append(row[1].strip())
        out[name] = Split(texts, labels)
    return out


def _intents(folder: Path) -> tuple[str, str, Split, Split, Split]:
    parts = clinc_read(folder / "clinc150" / "data_full.json")
    return ("clinc150/data_full.json",
            f"CLINC150's train / val / test, each with its out-of-scope rows as label {OOS_LABEL!r}",
            parts["train"], parts["validation"], parts["test"])


READERS: dict[str, tuple[str, Callable[[Path], tuple[str, str, Split, Split, Split]]]] = {
    "sentiment": ("twitter_financial_news_sentiment", _sentiment),
    "topics": ("twitter_financial_news_topic", _topics),
    "intents": ("clinc150", _intents),
}


def _limited(split: Split, limit: int | None) -> Split:
    if limit is None or len(split.texts) <= limit:
        return split
    chosen = sorted(random.Random(SPLIT_SEED).sample(range(len(split.texts)), limit))
    return Split([split.texts[i] for i in chosen], [split.labels[i] for i in chosen])


def task_read(*, name: str, devdata: Path, limit: int | None = None) -> TaskData:
    """One task's fixed split (module docstring, step 2), capped at `limit` rows per split."""
    source, rule, train, validation, test = READERS[name][1](devdata)
    train, validation, test = (_limited(s, limit) for s in (train, validation, test))
    counts = Counter(train.labels)
    kept = {label for label, count in counts.items() if count >= 2}
    dropped = {}
    parts = {}
    for part, split in (("train", train), ("validation", validation), ("test", test)):
        keep = [i for i, label in enumerate(split.labels) if label in kept]
        dropped[part] = len(split.labels) - len(keep)
        parts[part] = Split([split.texts[i] for i in keep], [split.labels[i] for i in keep])
    if len(kept) < 2 or not parts["test"].texts:
        raise TooFewRows(f"{name}: too few rows left to benchmark ({len(parts['train'].texts)} training rows over "
                         f"{len(kept)} labels, {len(parts['test'].texts)} test rows); raise --limit.")
    if limit is not None:
        rule += f"; then at most {limit} seeded-random rows per split"
    return TaskData(name=name, source=source, split_rule=rule, dropped=dropped, **parts)


# --- scoring ---------------------------------------------------------------------------------------------------------

def scores(*, probs: Any, columns: list[str], truth: list[str]) -> dict[str, float]:
    """Accuracy, macro-F1 (over the labels in the truth or the predictions), ECE and mean top-label confidence of
    probabilities (n, len(columns)): confidence above accuracy is over-confidence, below it under-confidence."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    from services.ml.calibration import calibration_error

    index = {label: i for i, label in enumerate(columns)}
    y = np.array([index[label] for label in truth])  # (n,)
    predicted = probs.argmax(axis=1)  # (n,)
    return {"accuracy": round(float(accuracy_score(y, predicted)), 4),
            "macro_f1": round(float(f1_score(y, predicted, average="macro", zero_division=0)), 4),
            "ece": round(calibration_error(probs=probs, truth=y), 4),
            "confidence": round(float(probs.max(axis=1).mean()), 4)}


def frozen_logreg(*, base_path: Path, data: TaskData, config: Any) -> dict[str, Any]:
    """Frozen encoder + LogisticRegressionCV: the figures (module docstring, steps 3 and 5)."""
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV

    from services.ml.encoder import texts_prepare
    from services.ml.runtime import InferenceRuntime

    def no_adapters(task: str) -> None:
        raise AssertionError("the frozen baseline uses the base encoder only")

    runtime = InferenceRuntime(base_path=base_path, resolver=no_adapters, max_length=config.max_length)
    embed = lambda split: runtime.embed(task=None, texts=texts_prepare(split.texts, strip_urls=config.strip_urls))  # noqa: E731
    runtime.embed(task=None, texts=["warm up"])  # loading the base is not training
    started = time.monotonic()
    x_train = embed(data.train)  # (n_train, hidden)
    folds = max(2, min(LR_FOLDS, min(Counter(data.train.labels).values())))
    with warnings.catch_warnings():  # a fold short of a rare label's rows warns; the score is still right
        warnings.simplefilter("ignore", UserWarning)
        # C by accuracy, plain L2 (l1_ratios 0), as scikit-learn 1.9's defaults; spelled out as its FutureWarnings ask
        model = LogisticRegressionCV(Cs=list(LR_CS), cv=folds, max_iter=5000, n_jobs=1, scoring="accuracy", l1_ratios=(0.0,),
                                     use_legacy_attributes=False).fit(x_train, data.train.labels)
    seconds = time.monotonic() - started
    columns = [str(c) for c in model.classes_]
    out: dict[str, Any] = {}
    for part in ("test", "validation"):
        split = getattr(data, part)
        if split.texts:
            figures = scores(probs=model.predict_proba(embed(split)), columns=columns, truth=split.labels)
            out.update(figures if part == "test" else {part: figures})
    return {**out, "train_seconds": round(seconds, 2), "train_examples_per_s": round(len(data.train.texts) / seconds, 1),
            "C": float(np.ravel(model.C_)[0]), "cv_folds": folds}


def oos_rule(*, probs: Any, columns: list[str], truth: list[str]) -> list[dict[str, float]]:
    """The support desk's out-of-scope rule (predicted `oos`, or top probability below a threshold) per OOS_THRESHOLDS:
    in-scope accuracy (right intent and not declared out of scope) and out-of-scope recall, CLINC150's measures."""
    import numpy as np

    top, predicted = probs.max(axis=1), np.array([columns[i] for i in probs.argmax(axis=1)])  # (n,), (n,)
    gold = np.array(truth)
    inside = gold != OOS_LABEL
    out = []
    for threshold in OOS_THRESHOLDS:
        declared = (predicted == OOS_LABEL) | (top < threshold)
        out.append({"threshold": threshold,
                    "in_scope_accuracy": round(float(((predicted == gold) & ~declared)[inside].mean()), 4) if inside.any() else None,
                    "oos_recall": round(float(declared[~inside].mean()), 4) if (~inside).any() else None})
    return out


def recipe(*, base_path: Path, data: TaskData, config: Any, progress: bool) -> dict[str, Any]:
    """classifier_train with `config`, saved and served by the runtime: the figures (module docstring, steps 4 and 5)."""
    import numpy as np

    from services.ml.artifacts import artifact_runtime, artifact_save
    from services.ml.calibration import calibration_error, probs_temperature
    from services.ml.training import classifier_train

    result = classifier_train(base_path=base_path, texts=data.train.texts, labels=data.train.labels, config=config,
                              progress=progress)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="quality-") as scratch:
        folder = Path(scratch) / "artifact"
        artifact_save(result=result, folder=folder, source=f"{data.name}-train")
        runtime = artifact_runtime(folder=folder, base_path=base_path)
        for part in ("test", "validation"):
            split = getattr(data, part)
            if split.texts:
                served = runtime.classify(task="evaluate", texts=split.texts)
                figures = scores(probs=served.probs, columns=served.label_names, truth=split.labels)
                # the same logits without the temperature: softmax(T * log p) undoes softmax(z / T)
                raw = probs_temperature(logits=np.log(np.clip(served.probs.astype(np.float64), 1e-30, None)),
                                        temperature=1.0 / result.temperature)
                index = {label: i for i, label in enumerate(served.label_names)}
                figures["ece_uncalibrated"] = round(calibration_error(probs=raw, truth=np.array([index[x] for x in split.labels])), 4)
                if OOS_LABEL in served.label_names:
                    figures["oos_rule"] = oos_rule(probs=served.probs, columns=served.label_names, truth=split.labels)
                out.update(figures if part == "test" else {part: figures})
    seen = result.metrics["n_train"] * result.metrics["epochs_run"]  # examples through the encoder while training
    return {**out, "train_seconds": round(result.seconds, 2), "train_examples_per_s": round(seen / result.seconds, 1),
            "epochs_run": result.metrics["epochs_run"], "best_epoch": result.metrics["best_epoch"],
            "n_train_inner": result.metrics["n_train"], "n_val_inner": result.metrics["n_val"], "peft": config.peft,
            "temperature": result.temperature, "averaged": result.metrics.get("averaged", 1),
            "probe_c": result.metrics.get("probe_c"), "adapted_from_layer": result.metrics.get("adapted_from_layer", 0)}


# --- the command -----------------------------------------------------------------------------------------------------

def base_resolve(value: str | None) -> Path:
    """A packaged base's name (e.g. all-minilm-l6-v2) or a model folder; None: the default packaged base."""
    from services.ml.encoder import PACKAGED_BASES, default_base_path, packaged_base_path

    if not value:
        return default_base_path()
    if value in PACKAGED_BASES:
        return packaged_base_path(value)
    folder = Path(value).expanduser()
    if not (folder / "config.json").is_file():
        raise SuiteError(f"--base {value!r} is neither a packaged base ({', '.join(sorted(PACKAGED_BASES))}) "
                         "nor a model folder with a config.json.", field="base")
    return folder.resolve()


def table_print(results: dict[str, Any]) -> None:
    head = (f"{'task':<10} {'method':<14} {'accuracy':>8} {'macro-F1':>8} {'ECE':>6} {'ECE raw':>7} {'val acc':>7} "
            f"{'val ECE':>7} {'train s':>8} {'ex/s':>7}")
    print(head)
    print("-" * len(head))
    for task, entry in results.items():
        if "skipped" in entry:
            print(f"{task:<10} skipped: {entry['skipped']}")
            continue
        for method, m in entry["methods"].items():
            val = m.get("validation", {})
            print(f"{task:<10} {method:<14} {m['accuracy']:>8.4f} {m['macro_f1']:>8.4f} {m['ece']:>6.3f} "
                  f"{m.get('ece_uncalibrated', m['ece']):>7.3f} "
                  f"{val.get('accuracy', float('nan')):>7.4f} {val.get('ece', float('nan')):>7.3f} "
                  f"{m['train_seconds']:>8.1f} {m['train_examples_per_s']:>7.1f}")
        split = entry["split"]
        print(f"{'':<10} ({split['n_train']} train / {split['n_validation']} validation / {split['n_test']} test rows, "
              f"{split['n_labels']} labels)")
        for method, m in entry["methods"].items():
            if m.get("oos_rule"):
                rule = "  ".join(f"{r['threshold']:.1f}: {r['in_scope_accuracy']:.3f}/{r['oos_recall']:.3f}" for r in m["oos_rule"])
                print(f"{'':<10} {method} out-of-scope rule, threshold: in-scope accuracy/oos recall (test)  {rule}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.quality", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(READERS), help=f"comma-separated, of {', '.join(READERS)}")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--limit", type=int, default=None, help="at most N rows per split (quick runs); default: full splits")
    parser.add_argument("--epochs", type=int, default=None, help="the recipe's epoch bound (default: ClassifierConfig's)")
    parser.add_argument("--peft", default="lora", help="the new recipe's PEFT method(s), comma-separated: lora, adalora, ia3")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help="which recipes to train, comma-separated: current (before issue 14, LoRA), new (today's defaults)")
    parser.add_argument("--try", dest="try_config", default=None, metavar="JSON",
                        help='one more recipe, "try_<peft>": today\'s defaults with these ClassifierConfig fields, e.g. \'{"lr": 2e-3}\'')
    parser.add_argument("--base", default=None, help="a packaged base name or a model folder (default: all-minilm-l6-v2)")
    parser.add_argument("--devdata", type=Path, default=DEVDATA, help=f"the development data folder (default {DEVDATA})")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in READERS]
    if not tasks or unknown:
        parser.error(f"--tasks {args.tasks!r}: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(READERS)}.")
    if args.limit is not None and args.limit < 4:
        parser.error(f"--limit {args.limit}: it must be at least 4 rows per split.")
    say = (lambda *a, **k: None) if args.json else print  # noqa: E731

    devdata = args.devdata.expanduser()
    if not devdata.is_dir():
        reason = f"the development data is not at {devdata} (it lives beside the repository, never in it)"
        say(f"skipped: {reason}")
        print(json_line({"skipped": reason}))
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from services.ml.calibration import ECE_BINS
    from services.ml.device import device_pick, threads_apply
    from services.ml.training import PEFT_METHODS, ClassifierConfig

    pefts = [p.strip() for p in args.peft.split(",") if p.strip()]
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if not set(recipes) <= set(RECIPES) or (not recipes and not args.try_config):
        parser.error(f"--recipes {args.recipes!r}: choose from {', '.join(RECIPES)}.")
    if not pefts:
        parser.error(f"--peft {args.peft!r}: give one or more of {', '.join(PEFT_METHODS)}.")
    epochs = {"epochs": args.epochs} if args.epochs is not None else {}
    try:
        tried = json.loads(args.try_config) if args.try_config else None
    except json.JSONDecodeError as exc:
        parser.error(f"--try is not valid JSON ({exc}).")
    if tried is not None and not isinstance(tried, dict):
        parser.error("--try must be a JSON object of ClassifierConfig fields.")
    configs: dict[str, Any] = {}  # method name -> ClassifierConfig, in training order
    try:
        if "current" in recipes:
            configs["current_lora"] = ClassifierConfig.from_dict({**CURRENT_RECIPE, **epochs})
        for p in pefts:
            if "new" in recipes:
                configs[f"recipe_{p}"] = ClassifierConfig(peft=p, **epochs)
            if tried is not None:
                configs[f"try_{p}"] = ClassifierConfig.from_dict({**tried, "peft": p, **epochs})
        base_path = base_resolve(args.base)
    except SuiteError as exc:
        parser.error(exc.message)
    first = next(iter(configs.values()))
    threads = os.environ.get("SUITE_TORCH_THREADS", "").strip()  # no Django settings here: pass the variable in
    threads_apply(threads=int(threads) if threads else None)
    import torch
    from tqdm import tqdm

    device, _ = device_pick()
    say(f"base {base_path}; device {device}, {torch.get_num_threads()} CPU threads; tasks {', '.join(tasks)}; "
        f"recipes {', '.join(configs)}; limit {args.limit or 'none (full splits)'}", flush=True)
    started = time.monotonic()
    results: dict[str, Any] = {}
    interactive = sys.stderr.isatty() and not args.json
    bar = tqdm(total=len(tasks) * (1 + len(configs)), desc="quality", unit="run", disable=None, file=sys.stderr)
    for name in tasks:
        folder = devdata / READERS[name][0]
        if not folder.is_dir():
            results[name] = {"skipped": f"{folder} is absent"}
            bar.update(1 + len(configs))
            continue
        try:
            data = task_read(name=name, devdata=devdata, limit=args.limit)
        except TooFewRows as exc:
            results[name] = {"skipped": exc.message}
            bar.update(1 + len(configs))
            continue
        except SuiteError as exc:  # a file not laid out as the devdata README says: name it and stop
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            return 2
        methods: dict[str, Any] = {}
        bar.set_postfix_str(f"{name}: frozen + logistic regression")
        methods["frozen_logreg"] = frozen_logreg(base_path=base_path, data=data, config=first)
        bar.update(1)
        for method, config in configs.items():
            bar.set_postfix_str(f"{name}: {method}")
            methods[method] = recipe(base_path=base_path, data=data, config=config, progress=interactive)
            bar.update(1)
        results[name] = {
            "source": data.source, "split_rule": data.split_rule,
            "split": {"n_train": len(data.train.texts), "n_validation": len(data.validation.texts),
                      "n_test": len(data.test.texts), "n_labels": len(set(data.train.labels)), "seed": SPLIT_SEED,
                      "dropped": data.dropped},
            "methods": methods,
        }
    bar.close()
    if not args.json:
        table_print(results)
    print(json_line({"tasks": results, "base": str(base_path), "device": str(device), "threads": torch.get_num_threads(),
                     "limit": args.limit, "epochs": first.epochs,
                     "recipe_config": {m: c.as_dict() for m, c in configs.items()},
                     "ece_bins": ECE_BINS, "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
