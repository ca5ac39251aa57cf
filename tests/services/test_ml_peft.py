"""The PEFT method is a choice (lora, adalora, ia3): trained, saved, reloaded and served by the same runtime."""
from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from services.ml.artifacts import artifact_info, artifact_save, artifact_sha256
from services.ml.encoder import base_load, texts_prepare, texts_tokenize
from services.ml.loop import ids_embed
from services.ml.runtime import AdapterRef, InferenceRuntime
from services.ml.training import PEFT_METHODS, ClassifierConfig, PairConfig, TrainingError, classifier_train, pairs_train
from tests.helpers import csv_write, run_json
from tests.services.conftest import pair_rows, sentiment_rows, tiny_base_write

TEXTS = sentiment_rows(30, seed=9)[0] + ["soars", "ask3 the plan"]
CPU = torch.device("cpu")
ATOL = 2e-6  # float32 on the CPU, batches padded differently; each trained adapter moves the outputs by over 1e-4


def in_memory_pooled(result: object, base: Path, *, normalize: bool) -> torch.Tensor:
    """Pooled vectors (n, hidden) of TEXTS by the trained model in memory, as training computes them."""
    tokenizer = base_load(base)[0]
    ids = texts_tokenize(tokenizer, texts_prepare(TEXTS, strip_urls=result.config.strip_urls), max_length=result.config.max_length)
    return ids_embed(result.model, ids, pad_id=tokenizer.pad_token_id or 0, device=CPU, dtype=torch.float32, normalize=normalize)


@pytest.fixture(scope="module")
def trained(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """For each PEFT method: a classifier and a pairs adapter (a few steps), saved; with the in-memory outputs."""
    texts, labels = sentiment_rows(120)
    queries, items = pair_rows(96)
    common = dict(batch_size=16, max_length=16, val_fraction=0.2, lora_r=4, lora_alpha=8, patience=3,
                  eval_start=False)  # these tests need moved weights: never the untrained state back
    out = {}
    for method in PEFT_METHODS:
        lr = 5e-2 if method == "adalora" else 1e-2  # AdaLoRA's singular values start at zero: a faster start, same few steps
        classifier = classifier_train(base_path=tiny_base, texts=texts, labels=labels, progress=False,
                                      config=ClassifierConfig(peft=method, epochs=3, lr=lr, head_lr=2e-2, **common))
        pairs = pairs_train(base_path=tiny_base, queries=queries, items=items, progress=False,
                            config=PairConfig(peft=method, epochs=2, lr=lr, **common))
        logits = classifier.head(in_memory_pooled(classifier, tiny_base, normalize=classifier.config.head_normalize)) / classifier.temperature  # as served
        entry = {"probs": torch.softmax(logits, dim=-1)
                 .detach().numpy(), "vectors": in_memory_pooled(pairs, tiny_base, normalize=True).numpy()}
        for kind, result in (("classifier", classifier), ("pairs", pairs)):
            folder = tmp_path_factory.mktemp(f"{method}-{kind}")
            entry[kind] = AdapterRef(task=f"{method}-{kind}", version=1, path=str(folder),
                                     sha256=artifact_save(result=result, folder=folder, source="synthetic.csv"))
        out[method] = entry
    return out


def test_each_method_is_saved_with_its_type_and_config(trained: dict[str, dict]) -> None:
    for method, entry in trained.items():
        for kind in ("classifier", "pairs"):
            info = artifact_info(entry[kind].path)
            assert info.train_config["peft"] == method
            assert info.peft_type == {"lora": "LORA", "adalora": "ADALORA", "ia3": "IA3"}[method]
            assert json.loads((Path(entry[kind].path) / "adapter_config.json").read_text())["peft_type"] == info.peft_type


def test_one_runtime_serves_every_method_as_the_in_memory_models_compute(tiny_base: Path, trained: dict[str, dict]) -> None:
    refs = {ref.task: ref for entry in trained.values() for ref in (entry["classifier"], entry["pairs"])}
    runtime = InferenceRuntime(base_path=tiny_base, resolver=refs.__getitem__, device="cpu", max_batch=8)
    base_before = runtime.embed(task=None, texts=TEXTS)
    for _ in range(2):  # switching between methods and back changes nothing
        for method, entry in trained.items():
            out = runtime.classify(task=f"{method}-classifier", texts=TEXTS)
            np.testing.assert_allclose(out.probs, entry["probs"], atol=ATOL)
            np.testing.assert_allclose(runtime.embed(task=f"{method}-pairs", texts=TEXTS), entry["vectors"], atol=ATOL)
    np.testing.assert_allclose(runtime.embed(task=None, texts=TEXTS), base_before, atol=1e-6)  # the base alone is untouched
    for method, entry in trained.items():  # training moved every method's embeddings: the equalities above can fail
        assert np.abs(entry["vectors"] - base_before).max() > 1e-4, method


def test_every_method_serves_from_a_merged_copy_in_onnx_runtime_as_the_in_memory_model_computes(
        tiny_base: Path, trained: dict[str, dict]) -> None:
    """SUITE_MERGED_TASKS holds intent, sentiment and topic by default, and each can be trained with any method."""
    refs = {entry["classifier"].task: entry["classifier"] for entry in trained.values()}
    runtime = InferenceRuntime(base_path=tiny_base, resolver=refs.__getitem__, device="cpu", merged_tasks=list(refs),
                               cpu_engine="onnxruntime")
    for method, entry in trained.items():
        np.testing.assert_allclose(runtime.classify(task=f"{method}-classifier", texts=TEXTS).probs, entry["probs"], atol=ATOL)
    assert all(adapter.onnx is not None for adapter in runtime._adapters.values()) and runtime._peft is None


def test_a_method_reloads_alone_after_eviction(tiny_base: Path, trained: dict[str, dict]) -> None:
    refs = {ref.task: ref for entry in trained.values() for ref in (entry["classifier"], entry["pairs"])}
    runtime = InferenceRuntime(base_path=tiny_base, resolver=refs.__getitem__, device="cpu", max_adapters=1)
    for method, entry in trained.items():
        np.testing.assert_allclose(runtime.classify(task=f"{method}-classifier", texts=TEXTS).probs, entry["probs"], atol=ATOL)
        assert len(runtime.loaded()) == 1
    np.testing.assert_allclose(runtime.classify(task="lora-classifier", texts=TEXTS).probs, trained["lora"]["probs"], atol=ATOL)
    base_alone = InferenceRuntime(base_path=tiny_base, resolver=refs.__getitem__, device="cpu").embed(task=None, texts=TEXTS)
    np.testing.assert_allclose(runtime.embed(task=None, texts=TEXTS), base_alone, atol=ATOL)  # evictions left the base as it was


def test_a_bad_method_names_the_allowed_ones() -> None:
    with pytest.raises(TrainingError, match="peft='prefix'.*lora, adalora, ia3"):
        ClassifierConfig(peft="prefix")
    with pytest.raises(CommandError, match=r"--peft.*'prefix'.*lora, adalora, ia3"):
        call_command("train_adapter", task="x", data="nothing.csv", peft="prefix", stdout=StringIO())
    with pytest.raises(CommandError, match=r"--peft.*'prefix'.*lora.*adalora.*ia3"):  # argparse's own message
        call_command("train_adapter", "--task", "x", "--data", "nothing.csv", "--peft", "prefix", stdout=StringIO())


def test_the_default_stays_lora() -> None:
    assert ClassifierConfig().peft == "lora" and PairConfig().peft == "lora"
    assert replace(ClassifierConfig(), peft="ia3").peft == "ia3"


@pytest.mark.django_db(transaction=True)
def test_train_adapter_with_peft_registers_and_serves_it(settings, tmp_path: Path) -> None:  # noqa: ANN001
    """--peft ia3 through the command: the version's config says ia3 and a runtime on the registry's resolver serves it.

    The runtime asks the registry (champion_ref) in this thread, not through the micro-batcher's thread, whose database
    connection a test could not close.
    """
    from apps.registry.models import AdapterVersion
    from services.ml.artifacts import artifact_runtime
    from services.registry.serving import champion_ref

    settings.REGISTRY_DIR = tmp_path / "registry"
    base = tiny_base_write(tmp_path / "tiny-base")
    run_json("registry_add_base", name="tiny-bert", path=str(base), default=True)
    data = csv_write(tmp_path / "train.csv", *sentiment_rows(90, seed=1), columns=("text", "label"))
    summary = run_json("train_adapter", task="sentiment", data=str(data), epochs=2, peft="ia3")
    assert summary["version"] == 1 and {"task", "accuracy", "macro_f1", "n_train", "n_val", "seconds"} <= set(summary)
    version = AdapterVersion.objects.get(task__name="sentiment", version=1)
    assert version.train_config["peft"] == "ia3" and artifact_info(version.path).peft_type == "IA3"
    assert version.sha256 == artifact_sha256(version.path)
    served = InferenceRuntime(base_path=version.base.path, resolver=champion_ref).classify(task="sentiment", texts=TEXTS)
    alone = artifact_runtime(folder=version.path, base_path=version.base.path).classify(task="evaluate", texts=TEXTS)
    np.testing.assert_allclose(served.probs, alone.probs, atol=ATOL)
    assert served.version == 1
    # A later run without --peft (the retrain loop's) keeps the champion's method instead of falling back to LoRA.
    again = run_json("train_adapter", task="sentiment", data=str(data), epochs=1)
    second = AdapterVersion.objects.get(task__name="sentiment", version=again["version"])
    assert second.train_config["peft"] == "ia3" and artifact_info(second.path).peft_type == "IA3"


def test_int8_serving_holds_every_method(tiny_base: Path, trained: dict[str, dict]) -> None:
    """Each PEFT type's model gets its own int8 copy of the base; the adapters' own weights stay float32."""
    from services.ml.encoder import Int8Linear

    refs = {ref.task: ref for entry in trained.values() for ref in (entry["classifier"], entry["pairs"])}
    int8 = InferenceRuntime(base_path=tiny_base, resolver=refs.__getitem__, quantize="int8", device="cpu")
    for method, entry in trained.items():
        approx = int8.classify(task=f"{method}-classifier", texts=TEXTS)
        assert np.abs(approx.probs - entry["probs"]).max() < 0.1, method  # int8 rounding, not a different model
        assert np.abs(int8.embed(task=f"{method}-pairs", texts=TEXTS) - entry["vectors"]).max() < 0.1, method
    assert len(int8._models) == 3
    for model in int8._models.values():
        assert any(isinstance(m, Int8Linear) for m in model.modules())


def test_adalora_trains_a_run_of_a_single_optimizer_step(tiny_base: Path) -> None:
    """One batch, one epoch: PEFT's schedule counts steps from 0, so the only step measures importance before any mask
    (passed from 1, it masked on scores it never measured: a KeyError inside PEFT)."""
    texts, labels = sentiment_rows(40)
    result = classifier_train(base_path=tiny_base, texts=texts, labels=labels, progress=False,
                              config=ClassifierConfig(peft="adalora", epochs=1, batch_size=64, max_length=16,
                                                      val_fraction=0.2, lora_r=4, lora_alpha=8))
    assert result.config.peft == "adalora" and set(result.label_names) == set(labels)
