"""The training loop shared by classifiers and pair tuning: batching, schedule, steps, per-epoch evaluation."""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from peft import PeftModel
from tqdm.auto import tqdm

from services.ml.device import autocast_for
from services.ml.encoder import encoder_pool, encoder_spec_of, ids_pad

if TYPE_CHECKING:
    from services.ml.training import LoraSettings


def seed_set(seed: int) -> None:
    """Seed Python, NumPy and torch (the split, the initialisation, dropout and the batch order)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches_by_length(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices of similar length (less padding): sort within shuffled pools of 50 batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lengths.__getitem__)
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def schedule_linear(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    """The learning-rate factor per step: linear warm-up over `warmup_ratio` of the steps, then linear decay to 0."""
    warmup = max(1, int(total_steps * warmup_ratio))
    return lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))


def batch_encode(model: PeftModel, ids: Sequence[Sequence[int]], *, pad_id: int, device: torch.device,
                 dtype: torch.dtype, normalize: bool) -> torch.Tensor:
    """Pooled vectors (batch, hidden) of one batch of token ids, padded to its longest, pooled as the model's folder says."""
    batch = ids_pad(ids, pad_id=pad_id, device=device)
    with autocast_for(device, dtype):
        hidden = model(**batch).last_hidden_state  # (batch, seq, hidden)
    return encoder_pool(hidden, batch["attention_mask"], spec=encoder_spec_of(model), normalize=normalize)  # (batch, hidden)


def ids_embed(model: PeftModel, ids: Sequence[Sequence[int]], *, pad_id: int, device: torch.device,
              dtype: torch.dtype, normalize: bool, batch_size: int = 128) -> torch.Tensor:
    """Pooled vectors for many texts (eval mode, length-sorted batches), in the input order: (n, hidden)."""
    model.eval()
    return batched_inference([len(row) for row in ids], size=model.config.hidden_size, batch_size=batch_size,
                             encode=lambda chosen: batch_encode(model, [ids[i] for i in chosen], pad_id=pad_id, device=device,
                                                                dtype=dtype, normalize=normalize))


def batched_inference(lengths: Sequence[int], *, encode: Callable[[list[int]], torch.Tensor], size: int,
                      batch_size: int = 128) -> torch.Tensor:
    """`encode(indices)` over length-sorted batches (less padding) in inference mode, gathered in input order: (n, size)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    out = torch.empty((len(lengths), size), dtype=torch.float32)  # (n, size)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            out[chosen] = encode(chosen).float().cpu()
    return out


class Trainer:
    """The loop shared by both kinds: steps with warm-up/decay and clipping, an evaluation per epoch, early stopping."""

    def __init__(self, *, model: PeftModel, extra: list[torch.nn.Parameter], config: LoraSettings, head_lr: float | None,
                 steps_per_epoch: int, device: torch.device, dtype: torch.dtype, desc: str, progress: bool,
                 on_step: Callable[[int, int], None] | None = None) -> None:
        self.model, self.config, self.device, self.dtype = model, config, device, dtype
        lora_params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": lora_params, "lr": config.lr}]
        if extra:
            groups.append({"params": extra, "lr": head_lr or config.lr})
        self.params = lora_params + extra
        self.optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        total = steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule_linear(total, config.warmup_ratio))
        self.scaler = torch.amp.GradScaler(enabled=device.type == "cuda" and dtype == torch.float16)
        self.progress = progress
        self.bar = tqdm(total=total, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
        self.total, self.steps, self.on_step = total, 0, on_step  # on_step(step, total): progress for a caller's UI

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.bar.update(1)
        self.steps += 1
        if self.on_step is not None:
            self.on_step(self.steps, self.total)
        self.bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)

    def run(self, *, batches_fn: Callable[[int], list[Any]], step_fn: Callable[[Any], float], eval_fn: Callable[[], dict[str, float]],
            key: str, named: dict[str, torch.nn.Parameter], train_modules: Sequence[torch.nn.Module] = ()
            ) -> tuple[dict[str, float], list[dict[str, float]]]:
        """Train in steps, evaluating `evals_per_epoch` times per epoch; keep the best weights on `key`; stop early.

        `batches_fn(epoch)` gives the epoch's batches, `step_fn(batch)` takes one optimizer step and returns its loss.
        Each epoch's batches are cut into `evals_per_epoch` even parts, each followed by an evaluation. Training stops
        after `patience` evaluations in a row without gain: with several evaluations per epoch a run that has peaked
        stops within a fraction of an epoch instead of whole epochs later (fewer wasted steps). With `eval_start` the
        weights before the first step are evaluated too ("epoch 0"): a run that only hurts returns them. With
        `average_top` > 1 the best that many checkpoints are averaged and the average kept when it scores no lower.
        """
        best: dict[str, float] | None = None
        best_state: dict[str, torch.Tensor] = {}
        history: list[dict[str, float]] = []
        kept: list[tuple[float, dict[str, torch.Tensor]]] = []  # the best `average_top` snapshots, (score, weights)
        started = time.monotonic()
        stale, parts = 0, self.config.evals_per_epoch

        def consider(scores: dict[str, float]) -> None:
            nonlocal best, best_state, stale
            history.append(scores)
            if self.progress:
                self.bar.write(f"epoch {scores['epoch']:g}: " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items() if k != "epoch"))
            snapshot = None
            if best is None or scores[key] > best[key] + 1e-6:
                best, stale = scores, 0
                best_state = snapshot = {name: p.detach().clone() for name, p in named.items()}
            else:
                stale += 1
            if self.config.average_top > 1:
                kept.append((scores[key], snapshot or {name: p.detach().clone() for name, p in named.items()}))
                kept.sort(key=lambda pair: -pair[0])
                del kept[self.config.average_top:]

        try:
            if self.config.eval_start:  # the untrained adapter (the frozen encoder + the probe head) is a candidate too
                consider({"epoch": 0, **eval_fn()})
            for epoch in range(1, self.config.epochs + 1):
                batches = batches_fn(epoch)
                bounds = np.linspace(0, len(batches), parts + 1).round().astype(int)
                for part in range(parts):
                    chunk = batches[bounds[part]:bounds[part + 1]]
                    if not chunk:
                        continue
                    self.model.train()
                    for module in train_modules:
                        module.train()
                    loss = float(np.mean([step_fn(batch) for batch in chunk]))
                    at: float = round(epoch - 1 + (part + 1) / parts, 3)
                    at = int(at) if at.is_integer() else at  # whole epochs print as before
                    consider({"epoch": at, "train_loss": round(loss, 5), **eval_fn()})
                    if stale >= self.config.patience:
                        break
                if stale >= self.config.patience:
                    break
        finally:
            self.bar.close()
        if self.on_step is not None and self.steps < self.total:  # stopped early: the plan shrinks to the steps taken
            self.on_step(self.steps, self.steps)
        assert best is not None
        # training throughput: examples through the optimizer per second of the loop (its evaluations included)
        speed = round(self.steps * self.config.batch_size / max(time.monotonic() - started, 1e-9), 2)
        out = {**{k: v for k, v in best.items() if k not in ("epoch", "train_loss")}, "best_epoch": best["epoch"],
               "epochs_run": history[-1]["epoch"], "evaluations": len(history), "steps": self.steps, "averaged": 1,
               "examples_per_second": speed}
        if len(kept) > 1 and self.model.peft_type != "ADALORA":  # AdaLoRA's masks differ between snapshots
            # Uniform average of the best checkpoints' weights ("model soups", Wortsman et al. 2022): kept only when
            # validation says it is at least as good as the single best checkpoint.
            with torch.no_grad():
                for name, p in named.items():
                    p.copy_(torch.stack([state[name].float() for _, state in kept]).mean(dim=0).to(p.dtype))
            averaged = eval_fn()
            if averaged[key] >= best[key] - 1e-9:
                out.update({**averaged, "averaged": len(kept)})
                history.append({"epoch": history[-1]["epoch"], "averaged": len(kept), **averaged})
                return out, history
        with torch.no_grad():
            for name, p in named.items():
                p.copy_(best_state[name])
        return out, history


def params_trainable(model: PeftModel, head: torch.nn.Module | None) -> dict[str, torch.nn.Parameter]:
    """The parameters that training changes (LoRA weights, head), by name: what early stopping snapshots."""
    named = {f"model.{n}": p for n, p in model.named_parameters() if p.requires_grad}
    if head is not None:
        named.update({f"head.{n}": p for n, p in head.named_parameters()})
    return named
