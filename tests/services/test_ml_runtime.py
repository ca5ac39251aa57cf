from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel

from services.errors import NotFound, SuiteError
from services.ml.artifacts import ArtifactTampered, artifact_info, head_load
from services.ml.device import autocast_for, device_pick, tolerance_for
from services.ml.encoder import base_load, ids_pad, mean_pool, peft_quiet
from services.ml.runtime import AdapterRef, InferenceRuntime, MicroBatcher
from tests.services.conftest import sentiment_rows, tiny_base_write

Artifacts = dict[str, tuple[Path, str]]
TEXTS = sentiment_rows(40, seed=5)[0] + ["", "soars"]


class Registry:
    """A stand-in for the database: task -> champion ref, counting how often it is asked."""

    def __init__(self, artifacts: Artifacts) -> None:
        self.champions = {name: AdapterRef(name, 1, str(folder), sha) for name, (folder, sha) in artifacts.items()}
        self.calls = 0

    def __call__(self, task: str) -> AdapterRef:
        self.calls += 1
        if task not in self.champions:
            raise NotFound(f"No task named {task!r}.")
        return self.champions[task]


def atol(float32: float = 1e-5) -> float:
    """The tolerance for the dtype this machine computes in: `float32` on the CPU, tolerance_for's on CUDA half precision."""
    dtype = device_pick()[1]
    return float32 if dtype == torch.float32 else tolerance_for(dtype)


def single_adapter_probs(base: Path, folder: Path, texts: list[str]) -> np.ndarray:
    """Probabilities from a plain one-adapter PeftModel, outside the runtime, one text at a time.

    The artifact's fitted temperature is applied as serving applies it (softmax(logits / T)). It runs on the runtime's device and dtype (device_pick), so that the comparison holds on a CUDA machine too.
    """
    device, dtype = device_pick()
    tokenizer, model = base_load(base, fresh=True)
    with peft_quiet():
        model = PeftModel.from_pretrained(model, str(folder)).to(device).eval()
    head = head_load(folder).to(device)
    info = artifact_info(folder)
    temperature, normalize = info.temperature, bool(info.train_config.get("head_normalize", False))
    rows = []
    with torch.inference_mode(), autocast_for(device, dtype):
        for text in texts:
            batch = ids_pad([tokenizer(text, truncation=True, max_length=16)["input_ids"]], pad_id=0, device=device)
            pooled = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])  # (1, hidden)
            if normalize:  # the head reads the L2-normalised vector when so trained
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            rows.append(torch.softmax(head(pooled.float()).float() / temperature, dim=-1)[0].cpu().numpy())
    return np.stack(rows)


def test_nothing_loads_until_the_first_call(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    registry = Registry(classifier_artifacts)
    runtime = InferenceRuntime(base_path=tiny_base, resolver=registry)
    assert runtime._base is None and registry.calls == 0 and runtime.loaded() == []


def test_multi_adapter_scores_equal_single_adapter_scores(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runtime = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), max_batch=8)
    for _ in range(2):  # switching back and forth between adapters changes nothing
        for task in ("news", "alerts", "binary"):
            out = runtime.classify(task=task, texts=TEXTS)
            expected = single_adapter_probs(tiny_base, classifier_artifacts[task][0], TEXTS)
            np.testing.assert_allclose(out.probs, expected, atol=atol())
            assert out.labels == [out.label_names[i] for i in expected.argmax(axis=1)] and out.version == 1
    assert runtime.classify(task="binary", texts=TEXTS).probs.shape == (len(TEXTS), 2)


def test_batched_and_unbatched_scores_are_equal(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    batched = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), max_batch=64)
    one_by_one = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), max_batch=1)
    np.testing.assert_allclose(batched.classify(task="news", texts=TEXTS).probs, one_by_one.classify(task="news", texts=TEXTS).probs, atol=atol())
    np.testing.assert_allclose(batched.embed(task="news", texts=TEXTS), one_by_one.embed(task="news", texts=TEXTS), atol=atol())
    assert batched.forward_passes == 2 and one_by_one.forward_passes == 2 * len(TEXTS)


def test_embeddings_are_normalised_and_the_base_encoder_serves_task_none(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runtime = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts))
    plain = runtime.embed(task=None, texts=TEXTS)
    runtime.classify(task="news", texts=TEXTS[:2])  # now a PEFT model wraps the base; task None must bypass the adapters
    np.testing.assert_allclose(runtime.embed(task=None, texts=TEXTS), plain, atol=atol())
    tuned = runtime.embed(task="news", texts=TEXTS)
    np.testing.assert_allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=atol())
    assert tuned.shape == (len(TEXTS), 32) and not np.allclose(tuned, plain, atol=1e-3)
    assert runtime.embed(task=None, texts=[]).shape == (0, 32)


def test_the_least_recently_used_adapter_is_evicted(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runtime = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), max_adapters=2)
    runtime.classify(task="news", texts=TEXTS[:1])
    runtime.classify(task="alerts", texts=TEXTS[:1])
    runtime.classify(task="news", texts=TEXTS[:1])
    runtime.classify(task="binary", texts=TEXTS[:1])
    assert [ref.task for ref in runtime.loaded()] == ["news", "binary"]
    assert len(runtime._peft.peft_config) == 2
    expected = single_adapter_probs(tiny_base, classifier_artifacts["alerts"][0], TEXTS[:3])
    np.testing.assert_allclose(runtime.classify(task="alerts", texts=TEXTS[:3]).probs, expected, atol=atol())


def test_a_champion_change_is_picked_up_without_a_restart(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    registry = Registry(classifier_artifacts)
    runtime = InferenceRuntime(base_path=tiny_base, resolver=registry, resolve_ttl_s=60.0)
    first = runtime.classify(task="news", texts=TEXTS)
    folder, sha = classifier_artifacts["alerts"]
    registry.champions["news"] = AdapterRef("news", 2, str(folder), sha)  # promote another artifact as v2
    assert runtime.classify(task="news", texts=TEXTS).version == 1  # the resolver's answer is cached for the TTL
    runtime.refresh("news")
    second = runtime.classify(task="news", texts=TEXTS)
    assert second.version == 2 and not np.allclose(first.probs, second.probs)
    np.testing.assert_allclose(second.probs, single_adapter_probs(tiny_base, folder, TEXTS), atol=atol())
    assert [(ref.task, ref.version) for ref in runtime.loaded()] == [("news", 2)]  # the replaced version is dropped


def test_resolver_answers_are_cached_for_the_ttl_only(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    registry = Registry(classifier_artifacts)
    cached = InferenceRuntime(base_path=tiny_base, resolver=registry, resolve_ttl_s=60.0)
    for _ in range(3):
        cached.classify(task="news", texts=TEXTS[:1])
    assert registry.calls == 1
    uncached = InferenceRuntime(base_path=tiny_base, resolver=registry, resolve_ttl_s=0.0)
    for _ in range(3):
        uncached.classify(task="news", texts=TEXTS[:1])
    assert registry.calls == 4


def test_it_refuses_to_load_an_artifact_whose_hash_differs(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    registry = Registry(classifier_artifacts)
    registry.champions["news"] = AdapterRef("news", 1, str(classifier_artifacts["news"][0]), "0" * 64)
    runtime = InferenceRuntime(base_path=tiny_base, resolver=registry)
    with pytest.raises(ArtifactTampered, match="has changed since it was registered"):
        runtime.classify(task="news", texts=TEXTS[:1])
    with pytest.raises(NotFound):
        runtime.classify(task="unknown", texts=TEXTS[:1])


def test_it_refuses_an_adapter_trained_on_another_base(tmp_path: Path, classifier_artifacts: Artifacts) -> None:
    other_base = tiny_base_write(tmp_path / "other", seed=1)
    runtime = InferenceRuntime(base_path=other_base, resolver=Registry(classifier_artifacts))
    with pytest.raises(SuiteError, match="was trained on another base encoder"):
        runtime.classify(task="news", texts=TEXTS[:1])


def test_the_micro_batcher_groups_concurrent_requests(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runtime = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts))
    direct = runtime.classify(task="news", texts=TEXTS)
    direct_embed = runtime.embed(task="alerts", texts=TEXTS)
    passes_before = runtime.forward_passes
    start = threading.Barrier(len(TEXTS))
    futures: dict[int, object] = {}

    def caller(i: int) -> None:
        start.wait()
        kind = "classify" if i % 2 == 0 else "embed"
        futures[i] = batcher.submit(task="news" if kind == "classify" else "alerts", texts=[TEXTS[i]], kind=kind)

    with MicroBatcher(runtime=runtime, max_wait_ms=100, max_batch=64) as batcher:
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(TEXTS))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results = {i: future.result(timeout=30) for i, future in futures.items()}
    assert runtime.forward_passes - passes_before < len(TEXTS) // 4
    for i, result in results.items():
        if i % 2 == 0:
            assert result.labels == [direct.labels[i]]
            np.testing.assert_allclose(result.probs, direct.probs[i:i + 1], atol=atol())
        else:
            np.testing.assert_allclose(result, direct_embed[i:i + 1], atol=atol())


def test_the_micro_batcher_reports_errors_per_request_and_closes_cleanly(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runtime = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts))
    exited: list[threading.Thread] = []  # where on_exit ran (the registry closes the thread's DB connection there)
    batcher = MicroBatcher(runtime=runtime, max_wait_ms=1, on_exit=lambda: exited.append(threading.current_thread()))
    bad = batcher.submit(task="unknown", texts=["a"])
    good = batcher.submit(task="news", texts=["soars", "plunges"])
    with pytest.raises(NotFound):
        bad.result(timeout=30)
    assert len(good.result(timeout=30).labels) == 2
    pending = [batcher.submit(task="news", texts=[text]) for text in TEXTS[:5]]
    batcher.close()
    assert all(future.done() for future in pending) and not batcher._thread.is_alive()
    assert exited == [batcher._thread]  # once, on the batcher's own thread, after its last group
    with pytest.raises(SuiteError, match="closed"):
        batcher.submit(task="news", texts=["a"])


def test_classify_refuses_an_embedding_adapter_and_a_bare_string(tiny_base: Path, classifier_artifacts: Artifacts, tmp_path: Path) -> None:
    from services.ml.artifacts import artifact_save
    from services.ml.training import PairConfig, pairs_train
    from tests.services.conftest import pair_rows

    queries, items = pair_rows(48)
    result = pairs_train(base_path=tiny_base, queries=queries, items=items, progress=False,
                         config=PairConfig(epochs=1, batch_size=8, max_length=16, val_fraction=0.25, lora_r=2, lora_alpha=4))
    sha = artifact_save(result=result, folder=tmp_path / "emb")
    registry = Registry(classifier_artifacts)
    registry.champions["search"] = AdapterRef("search", 1, str(tmp_path / "emb"), sha)
    runtime = InferenceRuntime(base_path=tiny_base, resolver=registry)
    assert runtime.embed(task="search", texts=["ask1 company"]).shape == (1, 32)
    with pytest.raises(SuiteError, match="is an embedding adapter, not a classifier"):
        runtime.classify(task="search", texts=["a"])
    with pytest.raises(SuiteError, match="must be a list of strings"):
        runtime.classify(task="news", texts="soars")


def test_links_are_stripped_when_serving_as_they_were_when_training(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runtime = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts))
    with_link = runtime.classify(task="news", texts=["soars https://t.co/bd0xbFGjkT", "cuts www.example.com/x?y=1"])
    np.testing.assert_allclose(with_link.probs, runtime.classify(task="news", texts=["soars http", "cuts http"]).probs, atol=atol(1e-6))
    assert not np.allclose(runtime.embed(task=None, texts=["soars https://t.co/bd0xbFGjkT"]), runtime.embed(task=None, texts=["soars http"]))


def test_int8_serving_agrees_with_float32_on_labels(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    from services.ml.encoder import Int8Linear

    # Both pinned to the CPU (int8 is CPU-only), so this runs on a CUDA machine too.
    fp32 = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), device="cpu")
    int8 = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts), quantize="int8", device="cpu")
    for task in ("news", "alerts"):  # two adapters on one int8 base
        exact, approx = fp32.classify(task=task, texts=TEXTS), int8.classify(task=task, texts=TEXTS)
        agreement = np.mean([a == b for a, b in zip(exact.labels, approx.labels)])
        assert agreement >= 0.9, f"{task}: int8 labels agree with float32 on {agreement:.0%} of texts"
        assert np.abs(exact.probs - approx.probs).max() < 0.1  # int8 rounding moves probabilities, not wholesale
    modules = dict(int8._peft.named_modules())
    plain_base = base_load(tiny_base, fresh=True)[1]
    assert sum(isinstance(m, Int8Linear) for m in modules.values()) == sum(type(m) is torch.nn.Linear for m in plain_base.modules())
    assert all(type(m) is torch.nn.Linear for name, m in modules.items() if ".lora_" in name and isinstance(m, torch.nn.Linear))
    assert any(".lora_A." in name for name in modules)  # the adapters' own layers stay float32
    np.testing.assert_allclose(np.linalg.norm(int8.embed(task=None, texts=TEXTS), axis=1), 1.0, atol=1e-5)


def test_int8_serving_refuses_a_bad_setting() -> None:
    with pytest.raises(SuiteError, match=r"SUITE_QUANTIZE='int4'"):
        InferenceRuntime(base_path="unused", resolver=lambda task: None, quantize="int4")


def test_the_int8_check_of_an_artifact_reports_both_precisions(classifier_artifacts: Artifacts, tiny_base: Path) -> None:
    from pipelines.bench_inference import artifact_quantize_check

    texts, labels = sentiment_rows(30, seed=9)
    # The tiny base is no packaged model: the artifact names it by hash only (no host path), so its folder is given.
    result = artifact_quantize_check(folder=classifier_artifacts["news"][0], texts=texts, labels=labels, rounds=1,
                                     base_path=tiny_base)
    assert result["n"] == 30 and 0.9 <= result["label_agreement"] <= 1.0
    assert result["fp32_accuracy"] >= 0.8 and abs(result["accuracy_points_lost"]) <= 10.0
    assert result["int8_per_s_at_64"] > 0 and result["fp32_per_s_at_64"] > 0


def test_the_micro_batcher_runs_after_group_on_its_thread_after_every_group_even_a_failed_one(
        tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    runtime = InferenceRuntime(base_path=tiny_base, resolver=Registry(classifier_artifacts))
    ran: list[threading.Thread] = []  # the registry closes the thread's DB connection there
    batcher = MicroBatcher(runtime=runtime, max_wait_ms=1, after_group=lambda: ran.append(threading.current_thread()))
    with pytest.raises(NotFound):
        batcher.submit(task="unknown", texts=["a"]).result(timeout=30)
    assert len(batcher.submit(task="news", texts=["soars"]).result(timeout=30).labels) == 1
    batcher.close()
    assert len(ran) == batcher.groups_run == 2 and set(ran) == {batcher._thread}


def test_the_registry_batcher_leaves_no_database_connection_open_between_groups(db) -> None:  # noqa: ANN001
    from django.db import connection

    from services.registry.serving import _thread_connection_close

    seen: list[object] = []

    def resolve_then_close() -> None:  # what the batcher thread does: a resolver query, then after_group
        connection.ensure_connection()
        _thread_connection_close()
        seen.append(connection.connection)

    thread = threading.Thread(target=resolve_then_close)
    thread.start()
    thread.join(30)
    assert seen == [None]


def test_a_process_without_django_settings_serves_an_artifact(tiny_base: Path, classifier_artifacts: Artifacts) -> None:
    """services/ml runs outside Django (pipelines.quality, a shell): loading and serving must not ask for settings."""
    import os
    import subprocess
    import sys

    folder = classifier_artifacts[next(iter(classifier_artifacts))][0]
    script = ("import sys; from services.ml.artifacts import artifact_runtime;"
              "rt = artifact_runtime(folder=sys.argv[1], base_path=sys.argv[2]);"
              "print(rt.classify(task='evaluate', texts=['shares soar', 'profit falls']).probs.shape)")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", script, str(folder), str(tiny_base)], capture_output=True, text=True,
                          env=env, cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("(2, ")
