"""The inference runtime: one base encoder, many PEFT adapters (LoRA, AdaLoRA, IA3) on it, and in-process micro-batching."""
from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue

import numpy as np
import torch
from peft import PeftModel

from services.errors import SuiteError
from services.heap import heap_settle
from services.metrics import inference_observe
from services.ml.artifacts import artifact_info, artifact_verify, head_load
from services.ml.device import (CPU_ENGINES, autocast_for, cpu_engine_configured, device_configured, device_pick, device_resolve,
                                quantize_configured)
from services.ml.encoder import (LEGACY_SPEC, EncoderSpec, base_load, base_quantize, encoder_pool, encoder_spec, ids_pad, peft_quiet,
                                 texts_prepare, texts_tokenize, tokenizer_load, weights_sha256)
from services.ml.onnx_engine import OnnxEncoder

logger = logging.getLogger(__name__)

KIND_CLASSIFY = "classify"
KIND_EMBED = "embed"


@dataclass(frozen=True)
class AdapterRef:
    task: str
    version: int
    path: str
    sha256: str  # the artifact's sha256 as registered; checked on load


@dataclass(frozen=True)
class ClassifyOutput:
    labels: list[str]  # the predicted label per text
    probs: np.ndarray  # (n, n_labels) float32, columns in `label_names` order
    label_names: list[str]
    version: int  # the adapter version that produced them

    def part(self, start: int, stop: int) -> ClassifyOutput:
        return ClassifyOutput(self.labels[start:stop], self.probs[start:stop], self.label_names, self.version)


@dataclass
class _Adapter:
    ref: AdapterRef
    name: str  # the PEFT adapter name
    model: PeftModel | torch.nn.Module | None  # the PeftModel of its PEFT type that holds it (merged: its copy; ONNX: None)
    head: torch.nn.Linear | None
    label_names: list[str]
    max_length: int  # as trained
    strip_urls: bool  # as trained
    spec: EncoderSpec  # pooling, prompt and length cap as trained (artifact.json); older artifacts: mean pooling
    temperature: float = 1.0  # classifiers: logits / temperature before the softmax (calibrated probabilities)
    merged: bool = False  # `model` is a private copy of the base with the adapter merged in (`merged_tasks`), no PeftModel
    onnx: OnnxEncoder | None = None  # a merged copy exported to ONNX Runtime (CPU, SUITE_CPU_ENGINE); `model` is then None
    head_normalize: bool = False  # classifiers: the head reads the L2-normalised pooled vector (as trained; older: raw)


def _texts_check(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise SuiteError("`texts` must be a list of strings.", field="texts")
    return list(texts)


class InferenceRuntime:
    """One base encoder with up to `max_adapters` PEFT adapters; create one per process and share it.

    PEFT holds adapters of one type per wrapped model, so each PEFT type (LORA, ADALORA, IA3) gets its own PeftModel:
    the first wraps the base, each other type a private copy of it (loaded when an adapter of that type first comes).
    Pooling, prompt and length limit come from the base folder's sentence-transformers files (encoder_spec).

    Nothing loads until the first call. `resolver(task)` says which adapter serves a task (its champion);
    its answers are cached for `resolve_ttl_s` seconds, so a promotion is picked up within that time.

    A classifier of a task in `merged_tasks` is served from its own copy of the base with the adapter merged into the
    weights (PEFT's merge_and_unload; int8 after merging when `quantize` is): its calls then pay no adapter switch
    (set_adapter walks every module) and no LoRA branches, and other tasks' calls pay no `disable_adapter` for it; the
    price is one more base's memory per such task (~90 MB for MiniLM). For a latency-bound task called on every request
    (support's `rerank` cross-encoder, SUITE_MERGED_TASKS). On the CPU in float32, `cpu_engine` "onnxruntime" (the
    default, SUITE_CPU_ENGINE) runs that merged copy, and the base alone (embed with task None), in ONNX Runtime, about
    twice as fast (services/ml/onnx_engine.py); adapters on the shared base stay in torch.
    """

    def __init__(self, *, base_path: str | Path, resolver: Callable[[str], AdapterRef], max_adapters: int = 8,
                 resolve_ttl_s: float = 2.0, max_batch: int = 64, max_length: int | None = None, quantize: str | None = None,
                 device: str | None = None, merged_tasks: Sequence[str] = (), cpu_engine: str | None = None) -> None:
        if max_adapters < 1 or max_batch < 1:
            raise SuiteError(f"max_adapters ({max_adapters}) and max_batch ({max_batch}) must be at least 1.")
        self.device_setting = device  # None: SUITE_DEVICE (device_pick); "cpu" pins this runtime to the CPU, e.g. to compare precisions
        self.quantize = quantize if quantize is not None else quantize_configured()  # "none" or "int8" (SUITE_QUANTIZE)
        if self.quantize not in ("none", "int8"):
            raise SuiteError(f"SUITE_QUANTIZE={self.quantize!r} is not one of none, int8.", field="SUITE_QUANTIZE")
        self.merged_tasks = frozenset(merged_tasks)  # classifier tasks served from a merged copy of the base
        self.cpu_engine = cpu_engine if cpu_engine is not None else cpu_engine_configured()  # merged copies on the CPU
        if self.cpu_engine not in CPU_ENGINES:
            raise SuiteError(f"SUITE_CPU_ENGINE={self.cpu_engine!r} is not one of {', '.join(CPU_ENGINES)}.", field="SUITE_CPU_ENGINE")
        self.base_path = str(base_path)
        self.resolver = resolver
        self.max_adapters = max_adapters
        self.resolve_ttl_s = resolve_ttl_s
        self.max_batch = max_batch
        self.max_length = max_length  # the base encoder alone; None: the folder's max_seq_length. Adapters: as trained
        self.forward_passes = 0  # batches run through the encoder (for tests and monitoring)
        self._lock = threading.RLock()  # loading, set_adapter and forward are not reentrant
        self._cache_lock = threading.Lock()
        self._resolved: dict[str, tuple[AdapterRef, float]] = {}
        self._adapters: OrderedDict[AdapterRef, _Adapter] = OrderedDict()
        self._counter = 0
        self._tokenizer = None
        self._base: torch.nn.Module | None = None
        self._base_onnx: OnnxEncoder | None = None  # the base alone in ONNX Runtime (CPU, float32, SUITE_CPU_ENGINE)
        self._peft: PeftModel | None = None  # the PeftModel around self._base (the first PEFT type loaded)
        self._models: dict[str, PeftModel] = {}  # peft_type -> the PeftModel holding that type's adapters
        self._base_sha256 = ""
        self._spec = EncoderSpec()
        self._active: dict[int, str] = {}  # id(PeftModel) -> its adapter set active last: set_adapter walks every module (~6 ms)

    # --- resolving and loading ---------------------------------------------------------------------------

    def resolve(self, task: str) -> AdapterRef:
        """The adapter serving `task`, from the resolver or its cache (younger than `resolve_ttl_s`)."""
        now = time.monotonic()
        with self._cache_lock:
            cached = self._resolved.get(task)
            if cached is not None and now - cached[1] < self.resolve_ttl_s:
                return cached[0]
        ref = self.resolver(task)
        if not isinstance(ref, AdapterRef):
            raise SuiteError(f"The resolver returned {type(ref).__name__} for task {task!r}, not an AdapterRef.")
        with self._cache_lock:
            self._resolved[task] = (ref, now)
        return ref

    def refresh(self, task: str | None = None) -> None:
        """Forget the cached resolver answer for `task` (None: for every task); the next call asks again."""
        with self._cache_lock:
            if task is None:
                self._resolved.clear()
            else:
                self._resolved.pop(task, None)

    def loaded(self) -> list[AdapterRef]:
        """The adapters in memory, least recently used first."""
        with self._lock:
            return list(self._adapters)

    def _ensure_base(self) -> None:
        if self._base is None:
            if self.device_setting is None:
                self.device, self.dtype = device_pick()
            else:
                cuda = torch.cuda.is_available()
                self.device, self.dtype = device_resolve(device=self.device_setting, dtype=device_configured()[1], cuda_available=cuda,
                                                         bf16_supported=cuda and torch.cuda.is_bf16_supported())
            if self.quantize == "int8" and self.device.type != "cpu":
                raise SuiteError(f"SUITE_QUANTIZE=int8 serves on the CPU only, but this process runs on {self.device.type}; "
                                 "set SUITE_DEVICE=cpu for an int8 worker or SUITE_QUANTIZE=none.", field="SUITE_QUANTIZE")
            self._spec = encoder_spec(self.base_path)  # read once; a folder it cannot honour is refused here
            self._tokenizer = tokenizer_load(self.base_path)
            self._base_sha256 = weights_sha256(self.base_path)
            self._base = self._base_copy()
            heap_settle(reason=f"base encoder {self.base_path}")

    def _onnx_serves(self) -> bool:
        """Whether encoders without adapter layers (the base alone, merged copies) run in ONNX Runtime here."""
        return self.cpu_engine == "onnxruntime" and self.device.type == "cpu" and self.quantize == "none"

    def _base_engine(self) -> OnnxEncoder | None:
        """The base alone in ONNX Runtime (task None: retrieval's query and passage embeddings), or None where torch runs
        it. Exported at its first use, not at start-up (a process that only classifies never pays for it), from a fresh
        copy: PEFT may have injected adapter layers into the shared base by then. Call with the lock held."""
        if self._base_onnx is None and self._onnx_serves():
            self._base_onnx = OnnxEncoder(self._base_copy())  # the session holds the weights: the copy is dropped
            heap_settle(reason=f"base encoder {self.base_path} in ONNX Runtime")
        return self._base_onnx

    def _base_copy(self, *, merge: str | None = None) -> torch.nn.Module:
        """A private copy of the base (PEFT injects layers into it), int8 when configured, on the device, eval mode.

        `merge`: the adapter folder whose LoRA is merged into the copy's weights (`merged_tasks`), before quantising:
        the LoRA deltas are added to the float weights, then the sums are quantised (the shared int8 base keeps its
        LoRA branches in float32 instead).
        """
        base = base_load(self.base_path, fresh=True)[1]
        if merge is not None:
            with peft_quiet():
                base = PeftModel.from_pretrained(base, merge, is_trainable=False).merge_and_unload()
        if self.quantize == "int8":  # CPU only: _ensure_base refused int8 on another device
            base = base_quantize(base)  # its Linear layers only: adapter layers added later and heads stay float32
        return base.to(self.device).eval()

    def _adapter(self, ref: AdapterRef, *, pinned: bool = False) -> _Adapter:
        """The loaded adapter for `ref`, loading it (and evicting the least recently used) when needed.

        `pinned` (embed_ref): other versions of the task stay loaded, since a switch of encoders embeds with the old
        and the new version in turns; a champion load still drops the task's replaced versions.
        """
        found = self._adapters.get(ref)
        if found is not None:
            self._adapters.move_to_end(ref)
            return found
        artifact_verify(folder=ref.path, expected_sha256=ref.sha256)
        info = artifact_info(ref.path)
        if info.base_sha256 != self._base_sha256:
            raise SuiteError(f"Adapter {ref.task} v{ref.version} was trained on another base encoder "
                             f"(weights {info.base_sha256[:12]}…, this runtime serves {self._base_sha256[:12]}…).")
        self._counter += 1
        name = f"{re.sub(r'[^0-9A-Za-z_]', '_', ref.task)}_v{ref.version}_{self._counter}"
        merged = ref.task in self.merged_tasks and info.kind == "classifier"
        onnx = None
        if merged:
            model = self._base_copy(merge=ref.path)
            if self._onnx_serves():
                onnx, model = OnnxEncoder(model), None  # the session holds the weights: the torch copy is dropped
        else:
            with peft_quiet():
                model = self._models.get(info.peft_type)
                if model is None:
                    base = self._base if self._peft is None else self._base_copy()
                    model = PeftModel.from_pretrained(base, ref.path, adapter_name=name, is_trainable=False)
                    self._models[info.peft_type] = model
                    self._peft = self._peft or model
                else:
                    model.load_adapter(ref.path, adapter_name=name, is_trainable=False)
            model.to(self.device).eval()
        head = head_load(ref.path).to(self.device) if info.kind == "classifier" else None
        spec = EncoderSpec.from_dict(info.encoder) if info.encoder is not None else LEGACY_SPEC
        adapter = _Adapter(ref=ref, name=name, model=model, head=head, label_names=info.label_names,
                           max_length=int(info.train_config.get("max_length", 256)),
                           strip_urls=bool(info.train_config.get("strip_urls", False)), spec=spec,
                           temperature=info.temperature, merged=merged, onnx=onnx,
                           head_normalize=bool(info.train_config.get("head_normalize", False)))
        self._adapters[ref] = adapter
        stale = [] if pinned else [old for old in self._adapters if old.task == ref.task and old != ref]  # a task's replaced versions
        while len(self._adapters) - len(stale) > self.max_adapters:
            stale.append(next(old for old in self._adapters if old not in stale))
        self._adapter_activate(adapter)
        for old in stale:
            gone = self._adapters.pop(old)
            if gone.merged:  # its own copy of the base: dropping the reference frees it
                continue
            gone.model.delete_adapter(gone.name)
            if self._active.get(id(gone.model)) == gone.name:
                del self._active[id(gone.model)]
        heap_settle(reason=f"adapter {ref.task} v{ref.version}")  # after the replaced ones are dropped, not frozen with them
        return adapter

    def _adapter_activate(self, adapter: _Adapter) -> None:
        """Make the adapter the active one of its PeftModel (a no-op when it already is). Call with the lock held."""
        if adapter.merged:
            return
        if self._active.get(id(adapter.model)) != adapter.name:
            adapter.model.set_adapter(adapter.name, inference_mode=True)
            self._active[id(adapter.model)] = adapter.name

    # --- forward passes ----------------------------------------------------------------------------------

    def _pooled(self, texts: list[str], adapter: _Adapter | None, *, normalize: bool) -> torch.Tensor:
        """Pooled vectors (n, hidden) in input order: length-sorted chunks of `max_batch`, dynamic padding.

        1. The adapter's spec as trained (the base alone: the folder's): prompt, lower case, length cap, pooling mode.
        2. Call with the lock held.
        """
        spec = adapter.spec if adapter else self._spec
        max_length = adapter.max_length if adapter else (self.max_length or spec.max_seq_length)
        texts = texts_prepare(texts, strip_urls=adapter is not None and adapter.strip_urls)
        ids = texts_tokenize(self._tokenizer, texts, max_length=max_length, spec=spec)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        size = self._base.config.hidden_size
        out = torch.empty((len(ids), size), dtype=torch.float32)  # (n, hidden)
        model: torch.nn.Module = adapter.model if adapter else self._peft if self._peft is not None else self._base
        if adapter is not None:
            self._adapter_activate(adapter)
        pad_id = self._tokenizer.pad_token_id or 0
        base_onnx = self._base_engine() if adapter is None else None
        with torch.inference_mode(), autocast_for(self.device, self.dtype):
            for start in range(0, len(order), self.max_batch):
                chosen = order[start:start + self.max_batch]
                batch = ids_pad([ids[i] for i in chosen], pad_id=pad_id, device=self.device)
                if adapter is not None and adapter.onnx is not None:
                    hidden = adapter.onnx.hidden(batch)  # (batch, seq, hidden), float32 on the CPU
                elif base_onnx is not None:
                    hidden = base_onnx.hidden(batch)  # (batch, seq, hidden): no disable_adapter walk either
                elif adapter is None and self._peft is not None:
                    with self._peft.disable_adapter():
                        hidden = model(**batch).last_hidden_state  # (batch, seq, hidden)
                else:
                    hidden = model(**batch).last_hidden_state  # (batch, seq, hidden)
                out[chosen] = encoder_pool(hidden, batch["attention_mask"], spec=spec, normalize=normalize).cpu()
                self.forward_passes += 1
        return out

    def classify(self, *, task: str, texts: Sequence[str]) -> ClassifyOutput:
        """Labels and class probabilities from the task's current adapter and head."""
        texts = _texts_check(texts)
        ref = self.resolve(task)
        with self._lock:
            self._ensure_base()
            adapter = self._adapter(ref)
            if adapter.head is None:
                raise SuiteError(f"Task {task!r} (v{ref.version}) is an embedding adapter, not a classifier; use embed().", field="task")
            if not texts:
                return ClassifyOutput([], np.zeros((0, len(adapter.label_names)), dtype=np.float32), adapter.label_names, ref.version)
            pooled = self._pooled(texts, adapter, normalize=adapter.head_normalize)  # (n, hidden)
            with torch.inference_mode():
                logits = adapter.head(pooled.to(self.device)).float()  # (n, n_labels)
            probs = torch.softmax(logits / adapter.temperature, dim=-1).cpu().numpy()  # (n, n_labels), calibrated
        labels = [adapter.label_names[i] for i in probs.argmax(axis=1)]
        return ClassifyOutput(labels=labels, probs=probs, label_names=adapter.label_names, version=ref.version)

    def embed(self, *, task: str | None, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings (n, hidden) from the task's adapter, or from the base encoder when task is None."""
        texts = _texts_check(texts)
        ref = self.resolve(task) if task is not None else None
        with self._lock:
            self._ensure_base()
            adapter = self._adapter(ref) if ref is not None else None
            if not texts:
                return np.zeros((0, self._base.config.hidden_size), dtype=np.float32)
            return self._pooled(texts, adapter, normalize=True).numpy()


    def embed_ref(self, *, ref: AdapterRef, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised embeddings (n, hidden) from exactly the adapter `ref` (a pinned version, not the champion)."""
        texts = _texts_check(texts)
        with self._lock:
            self._ensure_base()
            adapter = self._adapter(ref, pinned=True)
            if not texts:
                return np.zeros((0, self._base.config.hidden_size), dtype=np.float32)
            return self._pooled(texts, adapter, normalize=True).numpy()


@dataclass
class _Request:
    kind: str  # KIND_CLASSIFY or KIND_EMBED
    task: str | None
    texts: list[str]
    future: Future
    submitted: float  # time.monotonic() at submit

    @property
    def key(self) -> tuple[str, str | None]:
        return self.kind, self.task


class MicroBatcher:
    """Groups concurrent requests for the same task and kind into one runtime call, on a background thread.

    A group closes when it holds `max_batch` texts or its first request has waited `max_wait_ms`. `after_group` runs
    on the batcher's thread after every group and `on_exit` when it stops (the registry passes Django's connection
    close to both: the runtime's resolver queries the database from this thread, and a connection kept between groups
    would live as long as the process, idle, and stay broken after a database restart; a group that resolves opens
    a fresh one, as a request does).
    """

    def __init__(self, *, runtime: InferenceRuntime, max_wait_ms: float = 5.0, max_batch: int = 64,
                 on_exit: Callable[[], None] | None = None, after_group: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self._on_exit = on_exit
        self._after_group = after_group
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_batch = max_batch
        self.groups_run = 0  # runtime calls made (for tests and monitoring)
        self._queue: SimpleQueue[_Request | None] = SimpleQueue()
        self._closed = False
        self._submit_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, *, task: str | None, texts: Sequence[str], kind: str = KIND_CLASSIFY) -> Future:
        """Queue a request; the future gives a ClassifyOutput (classify) or an (n, hidden) array (embed)."""
        if kind not in (KIND_CLASSIFY, KIND_EMBED):
            raise SuiteError(f"Unknown kind {kind!r}; use {KIND_CLASSIFY!r} or {KIND_EMBED!r}.", field="kind")
        if kind == KIND_CLASSIFY and task is None:
            raise SuiteError("classify needs a task.", field="task")
        request = _Request(kind, task, _texts_check(texts), Future(), time.monotonic())
        with self._submit_lock:
            if self._closed:
                raise SuiteError("The micro-batcher is closed.")
            self._queue.put(request)
        return request.future

    def close(self, *, timeout: float = 10.0) -> None:
        """Stop accepting requests, finish the queued ones, and stop the thread."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> MicroBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _serve(self) -> None:
        """Take a first request, gather same-key requests until full or its wait is over, run the group; repeat."""
        waiting: deque[_Request] = deque()  # taken from the queue but belonging to a later group
        stopping = False
        while waiting or not stopping:
            first = waiting.popleft() if waiting else self._queue.get()
            if first is None:
                stopping = True
                continue
            group, size = [first], len(first.texts)
            for request in list(waiting):
                if request.key == first.key and size + len(request.texts) <= self.max_batch:
                    waiting.remove(request)
                    group.append(request)
                    size += len(request.texts)
            deadline = first.submitted + self.max_wait_s
            while size < self.max_batch and not stopping:
                try:
                    request = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except Empty:
                    break
                if request is None:
                    stopping = True
                elif request.key == first.key and size + len(request.texts) <= self.max_batch:
                    group.append(request)
                    size += len(request.texts)
                else:
                    waiting.append(request)
            try:
                self._run(group)
            finally:
                if self._after_group is not None:
                    try:
                        self._after_group()
                    except Exception:  # noqa: BLE001 - the hook must not stop the batcher serving
                        logger.exception("micro-batcher: after_group failed")

    def _run(self, group: list[_Request]) -> None:
        group = [request for request in group if request.future.set_running_or_notify_cancel()]
        if not group:
            return
        texts = [text for request in group for text in request.texts]
        kind, task = group[0].key
        started = time.monotonic()
        try:
            if kind == KIND_CLASSIFY:
                result: ClassifyOutput | np.ndarray = self.runtime.classify(task=task, texts=texts)
            else:
                result = self.runtime.embed(task=task, texts=texts)
        except Exception as exc:  # noqa: BLE001 - every waiting caller gets the error
            for request in group:
                request.future.set_exception(exc)
            return
        finally:
            self.groups_run += 1
            inference_observe(task=task, kind=kind, size=len(texts), seconds=time.monotonic() - started)
        start = 0
        for request in group:
            stop = start + len(request.texts)
            request.future.set_result(result.part(start, stop) if isinstance(result, ClassifyOutput) else result[start:stop])
            start = stop
