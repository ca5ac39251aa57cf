"""PEFT fine-tuning of the base encoder (LoRA, AdaLoRA or IA3): text classifiers (adapter + a small head) and embeddings from pairs."""
from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from peft import AdaLoraConfig, IA3Config, LoraConfig, PeftModel, get_peft_model
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from services.errors import SuiteError
from services.ml.data import data_fingerprint
from services.ml.device import device_pick
from services.ml.encoder import EncoderSpec, base_load, encoder_spec, hidden_size, peft_quiet, texts_prepare, texts_tokenize, weights_sha256
from services.ml.loop import Trainer, batch_encode, batches_by_length, ids_embed, params_trainable, seed_set
from services.ml.prefix import PrefixCache, layers_count, prefix_cache_possible

KIND_CLASSIFIER = "classifier"
KIND_PAIRS = "pairs"
PEFT_METHODS = ("lora", "adalora", "ia3")  # the PEFT methods PEFT supports on a BERT-style encoder that the runtime serves


class TrainingError(SuiteError):
    """Training cannot start with these inputs or this configuration."""


@dataclass
class LoraSettings:
    seed: int = 13  # seeds the split, the LoRA/head initialisation and the batch order
    peft: str = "lora"  # the PEFT method, one of PEFT_METHODS; adalora: rank lora_r pruned towards lora_r // 2 while training
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scaling numerator (effective scale alpha / r)
    lora_dropout: float = 0.1  # dropout on the LoRA branch
    target_modules: tuple[str, ...] = ("query", "key", "value", "dense")  # module names that get LoRA/AdaLoRA (BERT-style);
    # ia3 uses PEFT's per-architecture targets (BERT: key, value, output.dense; output.dense as feed-forward)
    lr: float = 5e-4  # peak learning rate of the LoRA weights
    epochs: int = 4  # upper bound; early stopping may end sooner
    batch_size: int = 32  # examples (or pairs) per step
    max_length: int = 128  # tokens per text; longer texts are truncated, batches padded to their longest
    val_fraction: float = 0.1  # share held out (stratified) for validation, early stopping and the metrics
    patience: int = 2  # validation checks in a row without gain before stopping (evals_per_epoch of them per epoch)
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_ratio: float = 0.06  # share of the steps with a linear warm-up, then linear decay to 0
    max_grad_norm: float = 1.0  # gradient clipping
    strip_urls: bool = True  # links become "http" before tokenizing (training and serving): noise, and many tokens
    adapt_top: float = 1.0  # share of the encoder's layers, counted from the top, that get the adapter (lora, adalora; ia3:
    # every layer, PEFT's IA3 has no layer choice). Below 1 the frozen layers under them run once per text and are cached
    # (services/ml/prefix.py): each step runs and back-propagates through the top layers only
    evals_per_epoch: int = 1  # validation checks per epoch: early stopping and the best checkpoint at that granularity
    eval_start: bool = False  # also evaluate before the first step: the untrained state can be the best checkpoint
    average_top: int = 1  # average the weights of the best N checkpoints when that scores no lower on validation (1: off)

    def _rules(self) -> list[tuple[str, bool, str]]:
        return [
            ("peft", self.peft in PEFT_METHODS, f"one of {', '.join(PEFT_METHODS)}"),
            ("lora_r", self.lora_r >= 1, "a whole number >= 1, e.g. 16"),
            ("lora_alpha", self.lora_alpha > 0, "> 0, usually 2 * lora_r"),
            ("lora_dropout", 0.0 <= self.lora_dropout < 1.0, "in [0, 1)"),
            ("target_modules", len(self.target_modules) > 0, "at least one module name, e.g. ('query', 'value')"),
            ("lr", 0.0 < self.lr < 1.0, "in (0, 1), e.g. 5e-4"),
            ("epochs", self.epochs >= 1, "a whole number >= 1"),
            ("batch_size", self.batch_size >= 2, "a whole number >= 2"),
            ("max_length", 8 <= self.max_length <= 512, "in [8, 512]"),
            ("val_fraction", 0.0 < self.val_fraction < 0.5, "in (0, 0.5), e.g. 0.1"),
            ("patience", self.patience >= 1, "a whole number >= 1"),
            ("weight_decay", self.weight_decay >= 0.0, ">= 0"),
            ("warmup_ratio", 0.0 <= self.warmup_ratio < 1.0, "in [0, 1)"),
            ("max_grad_norm", self.max_grad_norm > 0.0, "> 0"),
            ("adapt_top", 0.0 < self.adapt_top <= 1.0, "in (0, 1], e.g. 0.5 for the top half of the layers"),
            ("evals_per_epoch", 1 <= self.evals_per_epoch <= 20, "a whole number in [1, 20]"),
            ("average_top", 1 <= self.average_top <= 10, "a whole number in [1, 10] (1: no averaging)"),
        ]

    def __post_init__(self) -> None:
        for spec in fields(self):  # types first: configs often come from JSON
            value, default = getattr(self, spec.name), spec.default
            if isinstance(default, bool):
                ok, kind = isinstance(value, bool), "true or false"
            elif isinstance(default, int):
                ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
            elif isinstance(default, float):
                ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
                value = float(value) if ok else value
            elif isinstance(default, str):
                ok, kind = isinstance(value, str), "a string"
            else:
                ok, kind = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value), "a list of module names"
                value = tuple(value) if ok else value
            if not ok:
                raise TrainingError(f"{type(self).__name__}.{spec.name}={value!r} is invalid: it must be {kind}.", field=spec.name)
            setattr(self, spec.name, value)
        for name, ok, rule in self._rules():
            if not ok:
                raise TrainingError(f"{type(self).__name__}.{name}={getattr(self, name)!r} is invalid: it must be {rule}.", field=name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from JSON-like data (e.g. a saved train_config.json); unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(f"Unknown {cls.__name__} field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))}).")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_modules": list(self.target_modules)}


@dataclass
class ClassifierConfig(LoraSettings):
    lr: float = 1e-3  # peak LoRA learning rate (MiniLM on finance headlines: 1e-3 and 5e-4 within 0.1 point; docs/PERFORMANCE.md)
    head_lr: float = 1e-3  # learning rate of the Linear(hidden, n_labels) head; it starts from the probe, so no faster
    head_dropout: float = 0.1  # dropout before the head while training
    head_normalize: bool = True  # the head reads the L2-normalised pooled vector (the direction a sentence encoder is
    # trained to make meaningful, not its length): CLINC150 with its out-of-scope questions, frozen MiniLM + logistic
    # regression, test accuracy 0.855 normalised against 0.832 raw at the same C (docs/PERFORMANCE.md); the probe
    # (LP-FT) then starts from that better classifier. Served as trained (train_config.json; older artifacts: raw)
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    class_weights: bool = False  # weigh each label's loss (and the probe's) by n / (n_labels * its count), scikit-learn's
    # "balanced": rare labels count as much as common ones (macro-F1 over accuracy; see docs/PERFORMANCE.md)
    head_init: str = "probe"  # "probe": fit the head on the frozen encoder first (LP-FT); "random": nn.Linear's init
    probe_c: float = 1.0  # inverse L2 strength of that probe (scikit-learn LogisticRegression's C)
    # probe_cv (below): choose the probe's C among PROBE_CS by cross-validation on the training rows (else probe_c)
    calibrate: bool = True  # fit a temperature on the validation split after training; served probabilities use it
    # The issue-14 recipe, chosen by pipelines.quality (docs/PERFORMANCE.md): the top half of the layers adapted (the
    # lower half cached: 2-3x the examples per second), two evaluations per epoch with a patience of four, the untrained
    # state a candidate, the probe's C by cross-validation
    adapt_top: float = 0.5
    evals_per_epoch: int = 2
    patience: int = 4
    eval_start: bool = True
    probe_cv: bool = True
    lora_dropout: float = 0.0  # PEFT draws a dropout mask per LoRA module (~45 % of a CPU step); finance sentiment:
    # 0.8070 accuracy without it against 0.8035 with 0.1, at 1.66x the examples per second (docs/PERFORMANCE.md)

    def _rules(self) -> list[tuple[str, bool, str]]:
        return super()._rules() + [
            ("head_lr", 0.0 < self.head_lr < 1.0, "in (0, 1), e.g. 2e-3"),
            ("head_dropout", 0.0 <= self.head_dropout < 1.0, "in [0, 1)"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "in [0, 1)"),
            ("head_init", self.head_init in ("probe", "random"), "'probe' or 'random'"),
            ("probe_c", self.probe_c > 0.0, "> 0, e.g. 1.0"),
        ]


@dataclass
class PairConfig(LoraSettings):
    lr: float = 2e-4  # peak learning rate of the LoRA weights (embeddings move less than a new head)
    epochs: int = 3  # upper bound; early stopping (on validation MRR) may end sooner
    scale: float = 20.0  # similarity scale of the ranking loss (1 / temperature)
    symmetric: bool = True  # also rank queries for each item (item -> query loss)
    pair_budget: int = 0  # at most this many training pairs per epoch, a fresh seeded sample each epoch (0: all of them)
    adapt_top: float = 0.5  # the top half of the layers (bench training: pairs examples per second before and after)
    eval_start: bool = True  # the untuned base is a candidate: a tuning that only hurts returns it

    def _rules(self) -> list[tuple[str, bool, str]]:
        return super()._rules() + [("scale", 1.0 <= self.scale <= 100.0, "in [1, 100], e.g. 20"),
                                   ("pair_budget", self.pair_budget == 0 or self.pair_budget >= 2 * self.batch_size,
                                    "0 (every pair) or at least two batches (2 * batch_size)")]


@dataclass
class TrainResult:
    kind: str  # KIND_CLASSIFIER or KIND_PAIRS
    model: PeftModel  # the encoder with its trained adapter (best epoch), on the CPU
    head: torch.nn.Linear | None  # classifiers only, on the CPU
    label_names: list[str]  # class index -> label (empty for pairs)
    metrics: dict[str, float]  # validation metrics of the best epoch, sizes, timings
    seconds: float
    config: LoraSettings
    base_path: str
    base_sha256: str
    fingerprint: str  # data_fingerprint of all the rows given
    n_rows: int
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    encoder: EncoderSpec = field(default_factory=EncoderSpec)  # how the base pooled and truncated while training
    temperature: float = 1.0  # classifiers: logits are divided by it before the softmax (fitted on validation; 1: none)


def labels_order(labels: Sequence[str]) -> list[str]:
    """Distinct labels, numerically ordered when all are integers ('2' < '10'), else alphabetically."""
    distinct = {str(label) for label in labels}
    if all(label.lstrip("-").isdigit() for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def adapted_from(config: LoraSettings, n_layers: int) -> int:
    """The index of the lowest layer that gets the adapter (0: all of them); ia3 and unknown layouts (n_layers 0): 0."""
    if config.peft == "ia3" or n_layers <= 0:
        return 0
    return n_layers - max(1, min(n_layers, round(n_layers * config.adapt_top)))


def _peft_config(config: LoraSettings, *, total_steps: int, start: int = 0, n_layers: int = 0) -> Any:
    """The PEFT config of `config.peft` (AdaLoRA's budget schedule is laid out over `total_steps`), on layers start.. only."""
    layers = {"layers_to_transform": list(range(start, n_layers))} if start > 0 else {}
    if config.peft == "ia3":
        return IA3Config(target_modules=None, feedforward_modules=None)  # None: PEFT's targets for the architecture
    if config.peft == "adalora":
        # AdaLoRA (Zhang et al. 2023) starts every target at rank lora_r and prunes the least important singular values
        # towards an average of lora_r // 2: warm-up over the first 10 % of the steps, budgeting, the last 20 % fixed.
        tinit, tfinal = total_steps // 10, total_steps // 5
        return AdaLoraConfig(init_r=config.lora_r, target_r=max(1, config.lora_r // 2), tinit=tinit, tfinal=tfinal,
                             deltaT=max(1, total_steps // 50), total_step=max(total_steps, tinit + tfinal + 1),
                             lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                             target_modules=list(config.target_modules), **layers)
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), bias="none", **layers)


def _peft_wrap(base_path: str | Path, config: LoraSettings, *, total_steps: int) -> tuple[Any, PeftModel, int, int]:
    """(tokenizer, the PEFT-wrapped private copy of the base, hidden size, the lowest adapted layer)."""
    tokenizer, model = base_load(base_path, fresh=True)
    n_layers = layers_count(model)
    start = adapted_from(config, n_layers)
    try:
        with peft_quiet():
            peft_model = get_peft_model(model, _peft_config(config, total_steps=total_steps, start=start, n_layers=n_layers))
    except ValueError as exc:
        targets = "PEFT's IA3 targets" if config.peft == "ia3" else f"target_modules {list(config.target_modules)}"
        raise TrainingError(f"{config.peft} with {targets} does not fit this base model: {exc}", field="target_modules") from None
    return tokenizer, peft_model, hidden_size(model), start


class _Encoding:
    """Pooled vectors of the texts at given indices: from the cached lower layers when the adapter allows it, else a full pass."""

    def __init__(self, *, model: PeftModel, ids: list[list[int]], start: int, pad_id: int, device: torch.device,
                 dtype: torch.dtype, normalize: bool) -> None:
        self.model, self.ids, self.pad_id, self.device, self.dtype, self.normalize = model, ids, pad_id, device, dtype, normalize
        size = hidden_size(model.get_base_model())
        ok, self.why_not = prefix_cache_possible(model=model, start=start, n_tokens=sum(map(len, ids)), hidden=size)
        self.cache = PrefixCache(model=model, ids=ids, start=start, pad_id=pad_id, device=device, dtype=dtype) if ok else None

    def batch(self, indices: Sequence[int]) -> torch.Tensor:  # (batch, hidden), with gradients
        if self.cache is not None:
            return self.cache.encode(indices, normalize=self.normalize)
        return batch_encode(self.model, [self.ids[i] for i in indices], pad_id=self.pad_id, device=self.device, dtype=self.dtype,
                            normalize=self.normalize)

    def many(self, indices: Sequence[int]) -> torch.Tensor:  # (n, hidden) float32 on the CPU, eval mode
        if self.cache is not None:
            return self.cache.embed(list(indices), normalize=self.normalize)
        return ids_embed(self.model, [self.ids[i] for i in indices], pad_id=self.pad_id, device=self.device, dtype=self.dtype,
                         normalize=self.normalize)


def _peft_on_step(model: PeftModel, on_step: Callable[[int, int], None] | None) -> Callable[[int, int], None] | None:
    """The Trainer's per-step callback: AdaLoRA's rank budgeting, then the caller's.

    The Trainer calls it after the optimizer step, before the next zero_grad: where PEFT wants update_and_allocate.
    """
    if model.peft_type != "ADALORA":
        return on_step

    def step(done: int, total: int) -> None:
        # PEFT counts steps from 0 (its schedule compares them with total_step): the first step is 0. Passed as `done`
        # (from 1), a run of a single step skipped the importance update and then masked on scores it never measured.
        model.base_model.update_and_allocate(done - 1)
        if on_step is not None:
            on_step(done, total)
    return step


def _peft_penalty(model: PeftModel) -> torch.Tensor | float:
    """AdaLoRA's orthogonality regulariser on P and Q (PEFT adds it only to a model's own .loss, which ours lacks)."""
    if model.peft_type != "ADALORA":
        return 0.0
    config = model.peft_config[model.active_adapter]
    terms = []
    for name, p in model.named_parameters():
        if p.requires_grad and ("lora_A" in name or "lora_B" in name):
            cov = p @ p.T if "lora_A" in name else p.T @ p  # (r, r)
            terms.append(torch.norm(cov - torch.eye(cov.shape[0], device=cov.device, dtype=cov.dtype), p="fro"))
    return config.orth_reg_weight * torch.stack(terms).mean() if terms else 0.0


def _peft_finish(model: PeftModel) -> None:
    """After early stopping restored the best epoch: zero AdaLoRA's pruned ranks, as its saved (resized) weights drop them."""
    if model.peft_type == "ADALORA":
        rank_pattern = model.peft_config[model.active_adapter].rank_pattern
        if rank_pattern:
            model.base_model.rankallocator.mask_using_rank_pattern(model.base_model.model, rank_pattern)


def _split(n: int, *, strata: Sequence[Any] | None, fraction: float, seed: int, minimum: int) -> tuple[list[int], list[int]]:
    n_val = max(minimum, round(n * fraction))
    if n - n_val < minimum:
        raise TrainingError(f"Too little data: {n} rows cannot be split into training and validation sets (need at least {2 * minimum}).")
    train, val = train_test_split(list(range(n)), test_size=n_val, stratify=strata, random_state=seed, shuffle=True)
    return sorted(train), sorted(val)


PROBE_CS = (0.1, 1.0, 10.0, 100.0)  # probe_cv's candidate C (the quality benchmark's logistic-regression baseline uses the same)
PROBE_FOLDS = 3  # probe_cv's stratified folds (fewer when a label has fewer training rows)


def _head_probe(head: torch.nn.Linear, features: np.ndarray, y: np.ndarray, *, n_labels: int, c: float, cv: bool,
                balanced: bool = False) -> float:
    """Set `head` to a multinomial logistic regression fitted on `features` (n, hidden) -> y (n,); returns its C.

    With `cv`, C is chosen among PROBE_CS by stratified cross-validation (log-loss) when every label has two training
    rows or more; otherwise, and without `cv`, C is `c`. `balanced`: scikit-learn's class_weight="balanced".
    """
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    folds = min(PROBE_FOLDS, int(np.bincount(y).min()))
    weight = "balanced" if balanced else None
    if cv and folds >= 2:
        probe = LogisticRegressionCV(Cs=list(PROBE_CS), cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                                     scoring="neg_log_loss", max_iter=2000, l1_ratios=(0.0,), use_legacy_attributes=False,
                                     class_weight=weight).fit(features, y)  # plain L2, spelled out as scikit-learn 1.9 asks
        c = float(np.ravel(probe.C_)[0])
    else:
        probe = LogisticRegression(C=c, max_iter=2000, class_weight=weight).fit(features, y)
    coef, intercept = probe.coef_, probe.intercept_  # (n_labels, hidden), (n_labels,); one row when binary
    if n_labels == 2:  # sigmoid(w.x + b) == softmax([-w/2, w/2].x + [-b/2, b/2])
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(coef, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(intercept, dtype=head.bias.dtype))
    return c


def classifier_train(*, base_path: str | Path, texts: Sequence[str], labels: Sequence[str], config: ClassifierConfig,
                     progress: bool = True, on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Fine-tune a PEFT adapter (config.peft, LoRA by default) and a Linear head for text classification.

    1. Check the data; order the labels; split off a stratified validation set.
    2. Wrap a private copy of the base encoder with the adapter; add Linear(hidden, n_labels) on the pooled output
       (pooled as the base folder says: encoder_spec; L2-normalised with head_normalize).
    3. With head_init="probe", fit the head as a logistic regression on the frozen encoder's pooled output first
       (linear probing, then fine-tuning: LP-FT, Kumar et al. 2022); training then starts from a working classifier
       instead of letting a random head pull the encoder around in the first steps.
    4. Train with AdamW (head at its own learning rate), length-bucketed batches, warm-up then linear decay.
    5. After each epoch score validation macro-F1; keep the best epoch; stop after `patience` epochs without gain.
    """
    started = time.monotonic()
    texts, labels = [str(t) for t in texts], [str(label) for label in labels]
    if len(texts) != len(labels):
        raise TrainingError(f"{len(texts)} texts but {len(labels)} labels; they must pair up one to one.")
    label_names = labels_order(labels)
    rare = [name for name, count in Counter(labels).items() if count < 2]
    if len(label_names) < 2:
        raise TrainingError(f"A classifier needs at least two labels; the data has only {label_names}.")
    if rare:
        raise TrainingError(f"Each label needs at least two examples; these have one: {', '.join(map(repr, rare[:10]))}.")
    seed_set(config.seed)
    device, dtype = device_pick()
    index = {name: i for i, name in enumerate(label_names)}
    y = torch.tensor([index[label] for label in labels], dtype=torch.long)  # (n,)
    train_idx, val_idx = _split(len(texts), strata=labels, fraction=config.val_fraction, seed=config.seed, minimum=len(label_names))

    batches_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    tokenizer, model, size, start = _peft_wrap(base_path, config, total_steps=batches_per_epoch * config.epochs)
    head = torch.nn.Linear(size, len(label_names))
    model.to(device)
    head.to(device)
    ids = texts_tokenize(tokenizer, texts_prepare(texts, strip_urls=config.strip_urls), max_length=config.max_length)
    encoding = _Encoding(model=model, ids=ids, start=start, pad_id=tokenizer.pad_token_id or 0, device=device, dtype=dtype,
                         normalize=config.head_normalize)
    probe_c = None
    if config.head_init == "probe":  # the LoRA B matrices start at zero: this is the frozen encoder's output
        frozen = encoding.many(train_idx)
        probe_c = _head_probe(head, frozen.numpy(), y[train_idx].numpy(), n_labels=len(label_names), c=config.probe_c,
                              cv=config.probe_cv, balanced=config.class_weights)
    loss_weight = None
    if config.class_weights:  # n / (n_labels * count) over the training rows, as scikit-learn's "balanced"
        counts = torch.bincount(y[train_idx], minlength=len(label_names)).float()  # (n_labels,)
        loss_weight = (len(train_idx) / (len(label_names) * counts.clamp(min=1.0))).to(device)
    rng = random.Random(config.seed)
    trainer = Trainer(model=model, extra=list(head.parameters()), config=config, head_lr=config.head_lr,
                      steps_per_epoch=batches_per_epoch, device=device, dtype=dtype, desc="train classifier", progress=progress,
                      on_step=_peft_on_step(model, on_step))

    def batches_fn(epoch: int) -> list[list[int]]:
        return [[train_idx[i] for i in batch] for batch in batches_by_length([len(ids[i]) for i in train_idx], config.batch_size, rng)]

    def step_fn(chosen: list[int]) -> float:
        pooled = encoding.batch(chosen)  # (batch, hidden)
        logits = head(torch.nn.functional.dropout(pooled, p=config.head_dropout, training=True))  # (batch, n_labels)
        loss = torch.nn.functional.cross_entropy(logits, y[chosen].to(device), weight=loss_weight,
                                                 label_smoothing=config.label_smoothing)
        trainer.step(loss + _peft_penalty(model))
        return loss.item()

    def val_logits() -> torch.Tensor:  # (n_val, n_labels) float32 on the CPU
        head.eval()
        pooled = encoding.many(val_idx)
        with torch.inference_mode():
            return head(pooled.to(device)).float().cpu()

    def eval_fn() -> dict[str, float]:
        predicted = val_logits().argmax(dim=-1).numpy()  # (n_val,)
        truth = y[val_idx].numpy()
        return {"accuracy": round(float(accuracy_score(truth, predicted)), 5),
                "macro_f1": round(float(f1_score(truth, predicted, average="macro", labels=list(range(len(label_names))), zero_division=0)), 5)}

    metrics, history = trainer.run(batches_fn=batches_fn, step_fn=step_fn, eval_fn=eval_fn, key="macro_f1",
                                   named=params_trainable(model, head), train_modules=[head])
    _peft_finish(model)
    temperature, calibration = _calibrate(val_logits(), y[val_idx], enabled=config.calibrate)
    model.eval().to("cpu")
    head.eval().to("cpu")
    seconds = round(time.monotonic() - started, 2)
    metrics.update(calibration)
    metrics.update({"n_train": len(train_idx), "n_val": len(val_idx), "n_labels": len(label_names), "seconds": seconds,
                    "adapted_from_layer": start, "cached_lower_layers": encoding.cache is not None,
                    **({"probe_c": probe_c} if probe_c is not None else {})})
    return TrainResult(kind=KIND_CLASSIFIER, model=model, head=head, label_names=label_names, metrics=metrics, seconds=seconds,
                       config=config, base_path=str(Path(base_path).resolve()), base_sha256=weights_sha256(base_path),
                       fingerprint=data_fingerprint(texts=texts, labels=labels), n_rows=len(texts), history=history,
                       encoder=encoder_spec(base_path), temperature=temperature)


def _calibrate(logits: torch.Tensor, truth: torch.Tensor, *, enabled: bool) -> tuple[float, dict[str, float]]:
    """Temperature scaling fitted on the validation logits (Guo et al. 2017); (temperature, ECE before and after)."""
    from services.ml.calibration import calibration_error, temperature_fit

    raw = torch.softmax(logits, dim=-1).numpy()
    temperature = round(temperature_fit(logits=logits.numpy(), truth=truth.numpy()), 5) if enabled else 1.0
    scaled = torch.softmax(logits / temperature, dim=-1).numpy()
    return temperature, {"temperature": temperature,
                         "val_ece_raw": round(calibration_error(probs=raw, truth=truth.numpy()), 5),
                         "val_ece": round(calibration_error(probs=scaled, truth=truth.numpy()), 5)}


def ranking_scores(query_vecs: torch.Tensor, item_vecs: torch.Tensor, relevant: list[set[int]]) -> dict[str, float]:
    """recall@1, recall@5 and MRR of normalised query vectors (q, hidden) against item vectors (m, hidden).

    A query's rank is 1 + the number of items scoring above its best relevant item (chunked: no (q, m) sort).
    """
    ranks = []
    for start in range(0, len(relevant), 1024):
        sims = query_vecs[start:start + 1024] @ item_vecs.T  # (chunk, m)
        for row, rel in zip(sims, relevant[start:start + 1024]):
            best = row[sorted(rel)].max()
            ranks.append(1 + int((row > best).sum()))
    ranks = np.array(ranks)
    return {"recall_at_1": round(float(np.mean(ranks == 1)), 5), "recall_at_5": round(float(np.mean(ranks <= 5)), 5),
            "mrr": round(float(np.mean(1.0 / ranks)), 5)}


def pairs_train(*, base_path: str | Path, queries: Sequence[str], items: Sequence[str], config: PairConfig,
                progress: bool = True, on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Tune the encoder's embeddings (the PEFT adapter only) so that each query lands nearest its item.

    1. Split off held-out queries (all pairs of a query stay on one side).
    2. Train with the multiple-negatives ranking loss: the other items of the batch are the negatives
       (identical items are masked, not counted as negatives); with `symmetric` also item -> query.
    3. After each epoch rank the held-out items for each held-out query; keep the epoch with the best MRR.
    """
    started = time.monotonic()
    queries, items = [str(q) for q in queries], [str(i) for i in items]
    if len(queries) != len(items):
        raise TrainingError(f"{len(queries)} queries but {len(items)} items; they must pair up one to one.")
    distinct_queries = sorted(set(queries))
    seed_set(config.seed)
    device, dtype = device_pick()
    train_q, val_q = _split(len(distinct_queries), strata=None, fraction=config.val_fraction, seed=config.seed, minimum=2)
    val_set = {distinct_queries[i] for i in val_q}
    train_idx = [i for i, q in enumerate(queries) if q not in val_set]
    val_idx = [i for i, q in enumerate(queries) if q in val_set]
    item_names = sorted(set(items))
    item_id = {name: i for i, name in enumerate(item_names)}
    query_id = {name: i for i, name in enumerate(distinct_queries)}
    per_epoch = min(len(train_idx), config.pair_budget) if config.pair_budget else len(train_idx)

    batches_per_epoch = math.ceil(per_epoch / config.batch_size)
    tokenizer, model, _, start = _peft_wrap(base_path, config, total_steps=batches_per_epoch * config.epochs)
    model.to(device)
    # Every distinct text once (queries, then items): a pair's sides are indices into it, so a cached item serves all its pairs.
    distinct = texts_prepare(distinct_queries + item_names, strip_urls=config.strip_urls)
    encoding = _Encoding(model=model, ids=texts_tokenize(tokenizer, distinct, max_length=config.max_length), start=start,
                         pad_id=tokenizer.pad_token_id or 0, device=device, dtype=dtype, normalize=True)
    q_at = [query_id[q] for q in queries]  # pair -> its query's text index
    i_at = [len(distinct_queries) + item_id[name] for name in items]  # pair -> its item's text index
    rng = random.Random(config.seed)
    trainer = Trainer(model=model, extra=[], config=config, head_lr=None, steps_per_epoch=batches_per_epoch,
                      device=device, dtype=dtype, desc="train pairs", progress=progress, on_step=_peft_on_step(model, on_step))

    val_queries = sorted({queries[i] for i in val_idx})
    val_items = sorted({items[i] for i in val_idx})
    val_item_pos = {name: i for i, name in enumerate(val_items)}
    relevant = [{val_item_pos[items[i]] for i in val_idx if queries[i] == q} for q in val_queries]
    vq_at = [query_id[q] for q in val_queries]
    vi_at = [len(distinct_queries) + item_id[name] for name in val_items]

    def eval_fn() -> dict[str, float]:
        return ranking_scores(encoding.many(vq_at), encoding.many(vi_at), relevant)  # (q, hidden), (m, hidden)

    def batches_fn(epoch: int) -> list[list[int]]:
        order = rng.sample(train_idx, per_epoch)  # the pair budget: a fresh sample of pairs each epoch
        return [chunk for begin in range(0, len(order), config.batch_size) if len(chunk := order[begin:begin + config.batch_size]) >= 2]

    def step_fn(chosen: list[int]) -> float:
        q = encoding.batch([q_at[i] for i in chosen])  # (b, hidden)
        d = encoding.batch([i_at[i] for i in chosen])  # (b, hidden)
        sims = q @ d.T * config.scale  # (b, b)
        same_item = torch.tensor([[i_at[i] == i_at[j] for j in chosen] for i in chosen], device=device)
        same_query = torch.tensor([[q_at[i] == q_at[j] for j in chosen] for i in chosen], device=device)
        eye = torch.eye(len(chosen), dtype=torch.bool, device=device)  # (b, b)
        target = torch.arange(len(chosen), device=device)  # (b,)
        loss = torch.nn.functional.cross_entropy(sims.masked_fill(same_item & ~eye, float("-inf")), target)
        if config.symmetric:
            loss = (loss + torch.nn.functional.cross_entropy(sims.T.masked_fill(same_query & ~eye, float("-inf")), target)) / 2
        trainer.step(loss + _peft_penalty(model))
        return loss.item()

    before = {} if config.eval_start else eval_fn()  # with eval_start the trainer's "epoch 0" is the untuned base
    metrics, history = trainer.run(batches_fn=batches_fn, step_fn=step_fn, eval_fn=eval_fn, key="mrr",
                                   named=params_trainable(model, None))
    before = before or {k: v for k, v in history[0].items() if k != "epoch"}
    _peft_finish(model)
    model.eval().to("cpu")
    seconds = round(time.monotonic() - started, 2)
    metrics.update({f"base_{k}": v for k, v in before.items()})
    metrics.update({"n_train": len(train_idx), "n_val": len(val_idx), "n_val_items": len(val_items), "seconds": seconds,
                    "pairs_per_epoch": per_epoch, "adapted_from_layer": start, "cached_lower_layers": encoding.cache is not None})
    return TrainResult(kind=KIND_PAIRS, model=model, head=None, label_names=[], metrics=metrics, seconds=seconds, config=config,
                       base_path=str(Path(base_path).resolve()), base_sha256=weights_sha256(base_path),
                       fingerprint=data_fingerprint(texts=queries, labels=items), n_rows=len(queries), history=history,
                       encoder=encoder_spec(base_path))
