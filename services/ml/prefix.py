"""Cached activations of an encoder's frozen lower layers: train only the top layers, compute the rest once.

When the adapter sits on the top layers only (`LoraSettings.adapt_top`), the layers below it never change while
training: their output for a text is the same in every epoch. `PrefixCache` runs them once per text (inference mode,
float16 on the CPU, unpadded), and `PrefixCache.encode` feeds a batch's cached rows straight into the first adapted
layer: each step runs, and back-propagates through, the top layers only.

How, without depending on a transformers version's private mask code:
- capturing: a forward pre-hook on the first adapted layer records its input (the lower layers' output) and stops the
  forward there (raises `_Captured`);
- training: the model is called as usual (embeddings and the attention mask are built by the model itself), with its
  layer list cut to the adapted layers for that call and a pre-hook that swaps the embeddings' output for the cached rows.
The embeddings still run (a table lookup and a LayerNorm: little next to a transformer layer).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from services.ml.device import autocast_for
from services.ml.encoder import encoder_pool, encoder_spec_of, ids_pad
from services.ml.loop import batched_inference

CACHE_BUDGET_MB = 3072.0  # above this many MB of cached activations the lower layers run every step instead


class _Captured(Exception):
    """Raised by the capture hook: the lower layers' output is recorded, the rest of the forward is not needed."""


def layer_container(model: Any) -> tuple[Any, str] | None:
    """(module, attribute) holding the transformer's nn.ModuleList of layers (BERT, RoBERTa, XLM-R, MPNet: encoder.layer;
    DistilBERT: transformer.layer); None for an architecture this does not know (the cache is then not used)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for owner_name in ("encoder", "transformer"):
        owner = getattr(base, owner_name, None)
        layers = getattr(owner, "layer", None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
            return owner, "layer"
    return None


def layers_count(model: Any) -> int:
    found = layer_container(model)
    return len(getattr(*found)) if found else 0


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


class PrefixCache:
    """The input of layer `start` (the output of layers 0..start-1) for each text, computed once: (len_i, hidden) float16."""

    def __init__(self, *, model: Any, ids: Sequence[Sequence[int]], start: int, pad_id: int, device: torch.device,
                 dtype: torch.dtype, batch_size: int = 128) -> None:
        owner, attr = layer_container(model)  # callers check prefix_cache_possible first
        layers = getattr(owner, attr)
        self.model, self.start, self.pad_id, self.device, self.dtype = model, start, pad_id, device, dtype
        self.ids = [list(row) for row in ids]
        self.rows: list[torch.Tensor | None] = [None] * len(ids)
        captured: dict[str, torch.Tensor] = {}

        def capture(module: Any, args: tuple, kwargs: dict) -> None:
            captured["hidden"] = _hidden_arg(args, kwargs)
            raise _Captured

        handle = layers[start].register_forward_pre_hook(capture, with_kwargs=True)
        was_training = model.training
        model.eval()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        try:
            with torch.inference_mode():
                for begin in range(0, len(order), batch_size):
                    chosen = order[begin:begin + batch_size]
                    batch = ids_pad([self.ids[i] for i in chosen], pad_id=pad_id, device=device)
                    try:
                        with autocast_for(device, dtype):
                            model(**batch)
                    except _Captured:
                        pass
                    hidden = captured.pop("hidden")  # (batch, seq, hidden)
                    for row, i in enumerate(chosen):
                        self.rows[i] = hidden[row, :len(self.ids[i])].to("cpu", torch.float16).clone()
        finally:
            handle.remove()
            model.train(was_training)

    def encode(self, indices: Sequence[int], *, normalize: bool) -> torch.Tensor:
        """Pooled vectors (batch, hidden) of the texts at `indices`, run from layer `start` on their cached input."""
        ids = [self.ids[i] for i in indices]
        batch = ids_pad(ids, pad_id=self.pad_id, device=self.device)
        longest = batch["input_ids"].shape[1]
        size = self.rows[indices[0]].shape[-1]
        hidden = torch.zeros((len(indices), longest, size), dtype=torch.float32)  # (batch, seq, hidden)
        for row, i in enumerate(indices):
            cached = self.rows[i]
            hidden[row, :cached.shape[0]] = cached.float()
        hidden = hidden.to(self.device)
        with _layers_from(self.model, self.start, hidden), autocast_for(self.device, self.dtype):
            out = self.model(**batch).last_hidden_state  # (batch, seq, hidden)
        return encoder_pool(out, batch["attention_mask"], spec=encoder_spec_of(self.model), normalize=normalize)

    def embed(self, indices: Sequence[int], *, normalize: bool, batch_size: int = 128) -> torch.Tensor:
        """Pooled vectors for many texts (eval mode, length-sorted batches), in the order given: (n, hidden) float32."""
        was_training = self.model.training
        self.model.eval()
        try:
            return batched_inference([len(self.ids[i]) for i in indices], size=self.rows[indices[0]].shape[-1], batch_size=batch_size,
                                     encode=lambda chosen: self.encode([indices[k] for k in chosen], normalize=normalize))
        finally:
            self.model.train(was_training)


@contextmanager
def _layers_from(model: Any, start: int, hidden: torch.Tensor) -> Iterator[None]:
    """For one call: the model's layer list is layers[start:], and the first of them receives `hidden` as its input."""
    owner, attr = layer_container(model)
    original = getattr(owner, attr)
    first = original[start]

    def swap(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (hidden,) + tuple(args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    handle = first.register_forward_pre_hook(swap, with_kwargs=True)
    setattr(owner, attr, torch.nn.ModuleList(list(original)[start:]))
    try:
        yield
    finally:
        setattr(owner, attr, original)
        handle.remove()


def prefix_cache_possible(*, model: Any, start: int, n_tokens: int, hidden: int) -> tuple[bool, str]:
    """Whether the lower `start` layers can be cached: a known layer layout, something to skip, and within the memory budget."""
    if start <= 0:
        return False, "the adapter covers every layer"
    if layer_container(model) is None:
        return False, f"{type(model).__name__}'s layer list is not one this code knows"
    megabytes = n_tokens * hidden * 2 / 2**20
    if megabytes > CACHE_BUDGET_MB:
        return False, f"{megabytes:.0f} MB of cached activations is above the {CACHE_BUDGET_MB:.0f} MB budget"
    return True, ""
