"""Adapter artifacts on disk: save (safetensors and JSON only, never pickle), hash, verify, read, evaluate."""
from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from services.errors import SuiteError

if TYPE_CHECKING:
    from services.ml.training import TrainResult

FORMAT_VERSION = 1
HEAD_FILE = "head.safetensors"
INFO_FILE = "artifact.json"
PACKAGE_PREFIX = "package:"  # a base model shipped in a Python package (services/registry/paths.py)


class ArtifactError(SuiteError):
    """An artifact folder that is missing or incomplete."""


class ArtifactTampered(SuiteError):
    """An artifact whose files no longer match the sha256 recorded when it was registered."""


@dataclass(frozen=True)
class ArtifactInfo:
    folder: str
    kind: str  # "classifier" or "pairs"
    label_names: list[str]  # class index -> label; empty for pairs
    base_sha256: str  # weights_sha256 of the base encoder it was trained on
    train_config: dict[str, Any]
    metrics: dict[str, Any]
    fingerprint: dict[str, Any]  # {"fingerprint", "n_rows", "source"}
    peft_type: str = "LORA"  # adapter_config.json's peft_type: LORA, ADALORA or IA3
    encoder: dict[str, Any] | None = None  # the EncoderSpec it was trained with; None: saved before it was recorded (mean pooling)
    temperature: float = 1.0  # classifiers: served probabilities are softmax(logits / temperature); 1.0: uncalibrated (older)


def _json_write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def artifact_save(*, result: TrainResult, folder: str | Path, source: str = "", base_name: str = "",
                  base_location: str = "") -> str:
    """Write a trained adapter to an empty (or new) folder and return the artifact's sha256.

    1. Adapter weights through PEFT (LoRA, AdaLoRA or IA3): adapter_model.safetensors + adapter_config.json (its peft_type).
    2. Classifiers: head.safetensors (Linear weight and bias).
    3. JSON: labels.json, train_config.json, metrics.json, data_fingerprint.json (`source`: the data file's name)
       and artifact.json (kind, format, the base encoder's weights hash, registry name and host-free location:
       `package:<name>` or a folder relative to the registry; a packaged base is recognised when none is given), and
       `encoder`: how the base pooled, truncated and prompted while training (EncoderSpec), which serving repeats;
       `temperature`: the calibration of a classifier's probabilities (fitted on validation), which serving applies.
       No host path is written: the folder moves between hosts and registry mounts unchanged.
    """
    from services.ml.encoder import packaged_base_name

    target = Path(folder)
    if target.exists() and any(target.iterdir()):
        raise ArtifactError(f"Artifact folder {target} is not empty; save each version to a new folder.")
    target.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        if result.model.peft_type == "ADALORA":  # a target AdaLoRA pruned to rank 0 saves (0, n) tensors, by design
            warnings.filterwarnings("ignore", message=r"Adapter .*LoRA tensor\(s\) have invalid shape")
        result.model.save_pretrained(str(target), safe_serialization=True)
    (target / "README.md").unlink(missing_ok=True)  # PEFT's generated model card: nothing the runtime needs
    if result.head is not None:
        head = {name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in result.head.state_dict().items()}
        save_file(head, str(target / HEAD_FILE), metadata={"labels": json.dumps(result.label_names)})
    _json_write(target / "labels.json", result.label_names)
    _json_write(target / "train_config.json", result.config.as_dict())
    _json_write(target / "metrics.json", result.metrics)
    _json_write(target / "data_fingerprint.json",
                {"fingerprint": result.fingerprint, "n_rows": result.n_rows, "source": Path(source).name if source else ""})
    if not base_location:
        packaged = packaged_base_name(result.base_path)
        base_location = f"{PACKAGE_PREFIX}{packaged}" if packaged else ""
    _json_write(target / INFO_FILE, {"format": FORMAT_VERSION, "kind": result.kind, "base_sha256": result.base_sha256,
                                     "base_name": base_name, "base_location": base_location,
                                     "encoder": result.encoder.as_dict(), "temperature": float(result.temperature)})
    return artifact_sha256(target)


def artifact_sha256(folder: str | Path) -> str:
    """The sha256 over every file of the folder, in order of relative path, covering each path and its content."""
    root = Path(folder)
    if not root.is_dir():
        raise ArtifactError(f"Artifact folder {root} does not exist.")
    digest = hashlib.sha256()
    for file in sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()):
        relative = file.relative_to(root).as_posix().encode("utf-8")
        digest.update(len(relative).to_bytes(8, "big") + relative + file.stat().st_size.to_bytes(8, "big"))
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def artifact_verify(*, folder: str | Path, expected_sha256: str) -> None:
    """Raise ArtifactTampered when the folder's files do not hash to `expected_sha256`."""
    actual = artifact_sha256(folder)
    if actual != expected_sha256:
        raise ArtifactTampered(
            f"Artifact {folder} has changed since it was registered (sha256 {actual[:12]}… instead of {expected_sha256[:12]}…); "
            "it will not be loaded. Restore the original files or train and register a new version."
        )


def artifact_info(folder: str | Path) -> ArtifactInfo:
    """Read an artifact's JSON files (no weights)."""
    root = Path(folder)
    data: dict[str, Any] = {}
    for name in (INFO_FILE, "labels.json", "train_config.json", "metrics.json", "data_fingerprint.json", "adapter_config.json"):
        try:
            data[name] = json.loads((root / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"Artifact {root} is incomplete: {name} is missing.") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"Artifact {root}: {name} is not valid JSON ({exc}).") from None
    info = data[INFO_FILE]
    if info.get("format") != FORMAT_VERSION:
        raise ArtifactError(f"Artifact {root} has format {info.get('format')!r}; this code reads format {FORMAT_VERSION}.")
    return ArtifactInfo(folder=str(root), kind=info["kind"], label_names=[str(x) for x in data["labels.json"]],
                        base_sha256=info["base_sha256"], train_config=data["train_config.json"], metrics=data["metrics.json"],
                        fingerprint=data["data_fingerprint.json"],
                        peft_type=str(data["adapter_config.json"].get("peft_type", "LORA")), encoder=info.get("encoder"),
                        temperature=_temperature_read(root, info.get("temperature", 1.0)))


def _temperature_read(root: Path, value: Any) -> float:
    from services.ml.calibration import TEMPERATURE_BOUNDS

    low, high = TEMPERATURE_BOUNDS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ArtifactError(f"Artifact {root}: {INFO_FILE} temperature={value!r} is invalid: it must be a number in [{low}, {high}].")
    return float(value)


def head_load(folder: str | Path) -> torch.nn.Linear:
    """The classifier head saved beside the adapter, as an eval-mode Linear(hidden, n_labels) on the CPU."""
    path = Path(folder) / HEAD_FILE
    if not path.is_file():
        raise ArtifactError(f"Artifact {folder} has no {HEAD_FILE}: it is not a classifier.")
    state = load_file(str(path))
    n_labels, size = state["weight"].shape
    head = torch.nn.Linear(size, n_labels)
    head.load_state_dict(state)
    return head.eval()


def artifact_base_path(folder: str | Path) -> Path:
    """The base encoder folder an artifact names, on this host, without the registry: a packaged base only.

    An artifact of a base the registry holds (a custom one) names it by registry name and location, which only the
    registry resolves: its callers pass `version.base.path`. Artifacts written before no host path was stored carry
    `base_path`, used when nothing else names the base.
    """
    from services.ml.encoder import packaged_base_path

    try:
        info = json.loads((Path(folder) / INFO_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"Artifact {folder} is incomplete: {INFO_FILE} is missing.") from None
    location = str(info.get("base_location") or "")
    if location.startswith(PACKAGE_PREFIX):
        return packaged_base_path(location[len(PACKAGE_PREFIX):])
    if info.get("base_path"):
        return Path(info["base_path"])
    raise ArtifactError(f"Artifact {folder} was trained on base {info.get('base_name') or '?'!s} "
                        f"(weights {str(info.get('base_sha256', ''))[:12]}…), not a packaged model: give its base folder "
                        "(the registry's base_path) to load it.")


def artifact_runtime(*, folder: str | Path, base_path: str | Path | None = None, max_batch: int = 64) -> Any:
    """An InferenceRuntime that serves this one artifact as task "evaluate" (the production code path, no registry)."""
    from services.ml.runtime import AdapterRef, InferenceRuntime

    ref = AdapterRef(task="evaluate", version=0, path=str(folder), sha256=artifact_sha256(folder))
    if base_path is None:
        base_path = artifact_base_path(folder)
    return InferenceRuntime(base_path=base_path, resolver=lambda task: ref, max_batch=max_batch)


def artifact_embed(*, folder: str | Path, texts: Sequence[str], base_path: str | Path | None = None) -> np.ndarray:
    """L2-normalised embeddings (n, hidden) of `texts` by a saved adapter (either kind), served by the runtime."""
    return artifact_runtime(folder=folder, base_path=base_path).embed(task="evaluate", texts=list(texts))


def artifact_evaluate(*, folder: str | Path, texts: Sequence[str], labels: Sequence[str], base_path: str | Path | None = None,
                      max_batch: int = 64, predictions: list[dict[str, Any]] | None = None) -> dict[str, float]:
    """Accuracy, macro-F1 and calibration of a saved classifier on labelled texts.

    1. Refuse labels the classifier does not know (naming them and the known ones).
    2. Serve the artifact through the inference runtime (the same code as production) and score its predictions.
    3. Calibration: expected calibration error of the served (temperature-scaled) probabilities, `ece`, and of the
       same logits without the temperature, `ece_uncalibrated` (softmax(T * log p) undoes softmax(z / T) exactly).
    4. With `predictions` (a list), append one row per example: text, gold, predicted, probability (of the predicted label).
    """
    from sklearn.metrics import accuracy_score, f1_score

    from services.ml.calibration import calibration_error, probs_temperature

    info = artifact_info(folder)
    if info.kind != "classifier":
        raise ArtifactError(f"Artifact {folder} is a {info.kind!r} adapter, not a classifier; it has no labels to score.")
    labels = [str(label) for label in labels]
    if len(texts) != len(labels) or not texts:
        raise SuiteError(f"Evaluation needs as many labels as texts, at least one ({len(texts)} texts, {len(labels)} labels).")
    unknown = sorted(set(labels) - set(info.label_names))
    if unknown:
        raise SuiteError(f"Label(s) {', '.join(map(repr, unknown))} are not among this classifier's labels "
                         f"({', '.join(map(repr, info.label_names))}); relabel the data or train a new version.", field="labels")
    runtime = artifact_runtime(folder=folder, base_path=base_path, max_batch=max_batch)
    out = runtime.classify(task="evaluate", texts=list(texts))
    predicted = out.labels
    column = {name: i for i, name in enumerate(out.label_names)}
    truth = np.array([column[label] for label in labels])
    raw = probs_temperature(logits=np.log(np.clip(out.probs.astype(np.float64), 1e-30, None)), temperature=1.0 / info.temperature)
    if predictions is not None:
        top = out.probs.max(axis=1)
        predictions.extend({"text": text, "gold": gold, "predicted": guess, "probability": round(float(prob), 6)}
                           for text, gold, guess, prob in zip(texts, labels, predicted, top))
    return {"accuracy": round(float(accuracy_score(labels, predicted)), 5),
            "macro_f1": round(float(f1_score(labels, predicted, average="macro", labels=info.label_names, zero_division=0)), 5),
            "ece": round(calibration_error(probs=out.probs, truth=truth), 5),
            "ece_uncalibrated": round(calibration_error(probs=raw, truth=truth), 5),
            "temperature": info.temperature, "n": len(labels)}
