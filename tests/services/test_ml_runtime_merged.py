"""Classifier tasks served from their own merged copy of the base (InferenceRuntime `merged_tasks`, SUITE_MERGED_TASKS), and
the CPU engine (SUITE_CPU_ENGINE) that runs those copies and the base alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.ml.encoder import Int8Linear
from services.ml.runtime import AdapterRef, InferenceRuntime
from tests.services.test_ml_runtime import TEXTS, Artifacts, Registry, atol, single_adapter_probs


@pytest.mark.parametrize("engine", ["onnxruntime", "torch"])
def test_a_merged_task_scores_as_its_adapter_on_the_shared_base_and_leaves_the_shared_base_alone(
        tiny_base: Path, classifier_artifacts: Artifacts, engine: str) -> None:
    shared = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), device="cpu")
    merged = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), merged_tasks=["news"], device="cpu",
                              cpu_engine=engine)
    plain = merged.embed(task=None, texts=TEXTS)
    out = merged.classify(task="news", texts=TEXTS)
    np.testing.assert_allclose(out.probs, shared.classify(task="news", texts=TEXTS).probs, atol=1e-5)
    np.testing.assert_allclose(out.probs, single_adapter_probs(tiny_base, classifier_artifacts["news"][0], TEXTS), atol=atol())
    assert out.labels == [out.label_names[i] for i in out.probs.argmax(axis=1)] and out.version == 1
    # Its own copy: the shared base is not wrapped by PEFT for it, so base embeddings pay no disable_adapter.
    assert merged._peft is None and merged._models == {}
    served = merged._adapters[merged.loaded()[0]]
    if engine == "torch":
        assert served.onnx is None and not any("lora" in name for name, _ in served.model.named_modules())
    else:  # exported with the LoRA merged in; the torch copy is dropped
        assert served.onnx is not None and served.model is None
    np.testing.assert_allclose(merged.embed(task=None, texts=TEXTS), plain, atol=1e-6)
    # A task not in the list still goes through the shared PeftModel, and neither disturbs the other.
    np.testing.assert_allclose(merged.classify(task="alerts", texts=TEXTS).probs,
                               shared.classify(task="alerts", texts=TEXTS).probs, atol=1e-5)
    assert merged._peft is not None and len(merged._peft.peft_config) == 1
    np.testing.assert_allclose(merged.classify(task="news", texts=TEXTS).probs, out.probs, atol=1e-6)
    np.testing.assert_allclose(merged.embed(task=None, texts=TEXTS), plain, atol=1e-6)


def test_the_onnx_engine_matches_torch_on_batches_and_lengths_other_than_the_exported_sample(
        tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    words = "refund shipping warranty order parcel broken late invoice account password".split()
    texts = [" ".join(words[(i + j) % len(words)] for j in range(1 + 7 * i)) for i in range(24)]  # 1 to 162 words
    runs = {engine: InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), merged_tasks=["news"],
                                     device="cpu", cpu_engine=engine, max_batch=16) for engine in ("onnxruntime", "torch")}
    fast, eager = (runs[engine].classify(task="news", texts=texts) for engine in ("onnxruntime", "torch"))
    np.testing.assert_allclose(fast.probs, eager.probs, atol=1e-5)
    assert fast.labels == eager.labels and runs["onnxruntime"].forward_passes == 2  # 24 texts in batches of at most 16
    assert runs["onnxruntime"]._base_onnx is None  # a process that only classifies never exports the base alone
    np.testing.assert_allclose(runs["onnxruntime"].classify(task="news", texts=texts[:1]).probs, eager.probs[:1], atol=1e-5)


def test_the_base_alone_runs_in_onnx_runtime_and_embeds_as_torch_does_beside_an_adapter_on_the_shared_base(
        tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runs = {engine: InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), device="cpu",
                                     cpu_engine=engine) for engine in ("onnxruntime", "torch")}
    fast, eager = runs["onnxruntime"], runs["torch"]
    np.testing.assert_allclose(fast.embed(task=None, texts=TEXTS), eager.embed(task=None, texts=TEXTS), atol=1e-5)
    assert fast._base_onnx is not None and eager._base_onnx is None
    # An adapter on the shared base (not merged) stays in torch, and the base's embeddings do not change after it.
    np.testing.assert_allclose(fast.classify(task="news", texts=TEXTS).probs, eager.classify(task="news", texts=TEXTS).probs,
                               atol=1e-5)
    assert fast._peft is not None
    np.testing.assert_allclose(fast.embed(task=None, texts=TEXTS), eager.embed(task=None, texts=TEXTS), atol=1e-5)


def test_an_unknown_cpu_engine_is_refused_by_name(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    from services.errors import SuiteError

    with pytest.raises(SuiteError, match="SUITE_CPU_ENGINE='tensorrt'"):
        InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), cpu_engine="tensorrt")


def test_a_merged_task_picks_up_a_new_champion_and_drops_the_replaced_copy(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    registry = Registry(classifier_artifacts)
    runtime = InferenceRuntime(base_path=tiny_base, resolver=registry, resolve_ttl_s=60.0, merged_tasks=["news"], device="cpu")
    first = runtime.classify(task="news", texts=TEXTS)
    folder, sha = classifier_artifacts["alerts"]
    registry.champions["news"] = AdapterRef("news", 2, str(folder), sha)
    runtime.refresh("news")
    second = runtime.classify(task="news", texts=TEXTS)
    assert second.version == 2 and not np.allclose(first.probs, second.probs)
    np.testing.assert_allclose(second.probs, single_adapter_probs(tiny_base, folder, TEXTS), atol=atol())
    assert [(ref.task, ref.version) for ref in runtime.loaded()] == [("news", 2)]


def test_an_int8_runtime_quantises_the_merged_copy_after_merging(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    fp32 = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), merged_tasks=["news"], device="cpu")
    int8 = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), merged_tasks=["news"],
                            quantize="int8", device="cpu")
    exact, approx = fp32.classify(task="news", texts=TEXTS), int8.classify(task="news", texts=TEXTS)
    model = int8._adapters[int8.loaded()[0]].model
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) > 0  # the merged weights run in int8
    assert not np.array_equal(exact.probs, approx.probs)
    assert np.mean(np.array(exact.labels) == np.array(approx.labels)) >= 0.9
    assert np.abs(exact.probs - approx.probs).max() < 0.1


def test_serving_builds_its_runtimes_with_the_merged_settings(settings, tiny_base: Path) -> None:  # noqa: ANN001
    from services.registry.serving import _batcher_for, serving_reset

    settings.SUITE_MERGED_TASKS = ["rerank", "intent"]
    settings.SUITE_CPU_ENGINE = "torch"
    serving_reset()
    try:
        runtime = _batcher_for(str(tiny_base)).runtime
        assert runtime.merged_tasks == {"rerank", "intent"} and runtime.cpu_engine == "torch"
    finally:
        serving_reset()
