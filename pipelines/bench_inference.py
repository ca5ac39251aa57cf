"""Inference benchmark: the raw PEFT model against the suite's in-process and Celery paths.

    python -m pipelines.bench inference [--json]

Each path classifies the same texts with the same adapter, in batches of 1, 8 and 64. "Raw" is
tokenize → `model(**batch)` under `torch.inference_mode` → mean pool → head, written directly on
transformers + PEFT, the least work that gives the same scores.

In the same run, two CPU runtimes serve that adapter in float32 and int8 (SUITE_QUANTIZE=int8): texts/s per batch
size, their accuracy on held-out labelled headlines, and how often their labels agree (also on the sentiment check's
real validation headlines, where ../shared/devdata has them).
"""
from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

BATCH_SIZES = (1, 8, 64)
TASK = "bench-sentiment"
QUEUE = "bench-inference"  # its own queue: a demo worker on the same Redis never takes these tasks
ROOT = Path(__file__).resolve().parent.parent

SUBJECTS = ["Acme Corp", "Globex", "Initech", "Umbrella", "Stark Industries", "Wayne Enterprises", "Hooli", "Soylent"]
EVENTS = {
    "bullish": ["beats earnings estimates and raises full-year guidance", "shares surge after record quarterly revenue",
                "wins a multi-billion contract with the government", "is upgraded to buy by analysts"],
    "bearish": ["misses revenue forecasts as demand slows", "shares plunge after the CEO resigns",
                "cuts its dividend and warns on profits", "faces a regulatory probe over accounting"],
    "neutral": ["schedules its annual shareholder meeting for May", "names a new chief financial officer",
                "files its quarterly report with the SEC", "announces a conference call next week"],
}


def headlines(n: int, *, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = list(EVENTS)[i % 3]
        texts.append(f"{rng.choice(SUBJECTS)} {rng.choice(EVENTS[label])}, {rng.choice(['Reuters', 'Bloomberg', 'WSJ'])} reports")
        labels.append(label)
    return texts, labels


def adapter_ensure(quiet: bool) -> object:
    """The benchmark's adapter on the default base: trained once (a short run) and reused."""
    import csv
    import tempfile

    from apps.registry.models import Alias
    from pipelines.training import TrainRequest, adapter_train
    from services.registry.versions import version_get

    if not Alias.objects.filter(task__name=TASK, name="champion").exists():
        texts, labels = headlines(240, seed=1)
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as f:
            csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
        adapter_train(TrainRequest(task=TASK, data=f.name, epochs=1, created_by="pipeline:bench"), progress=not quiet)
        os.unlink(f.name)
    return version_get(task_name=TASK)


def raw_classifier(version: object) -> Callable[[list[str]], np.ndarray]:
    """transformers + PEFT directly: what the suite's paths are compared against."""
    import torch
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    from services.ml.artifacts import head_load
    from services.ml.device import autocast_for, device_pick

    device, dtype = device_pick()
    tokenizer = AutoTokenizer.from_pretrained(version.base.path)
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(version.base.path), version.path).to(device).eval()
    head = head_load(version.path).to(device)
    max_length = int(version.train_config.get("max_length", 128))
    normalize = bool(version.train_config.get("head_normalize", False))  # as trained (older artifacts: the raw mean)

    def run(texts: list[str]) -> np.ndarray:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        with torch.inference_mode(), autocast_for(device, dtype):
            hidden = model(**batch).last_hidden_state  # (batch, seq, hidden)
            mask = batch["attention_mask"].unsqueeze(-1).float()  # (batch, seq, 1)
            pooled = (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, hidden)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            return torch.softmax(head(pooled).float(), dim=-1).cpu().numpy()  # (batch, n_labels)

    return run


def real_headlines(limit: int) -> list[str]:
    """Up to `limit` real finance headlines (the sentiment check's validation texts), or [] where the data is absent."""
    import csv

    path = ROOT.parent / "shared" / "devdata" / "twitter_financial_news_sentiment" / "sent_valid.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [row["text"] for _, row in zip(range(limit), csv.DictReader(f))]


def quantize_compare(*, version: object, rounds: int, n_texts: int) -> dict[str, object]:
    """float32 against int8 (SUITE_QUANTIZE=int8) CPU serving of the same adapter, alternating, in one process.

    1. Two InferenceRuntimes on the CPU, one per precision; texts/s per batch size (median of `rounds`).
    2. Accuracy of each on held-out labelled headlines, label agreement between them there and on real headlines
       (sent_valid, where present), and the largest probability difference.
    """
    from services.ml.runtime import AdapterRef, InferenceRuntime

    ref = AdapterRef(task=TASK, version=version.version, path=version.path, sha256=version.sha256)
    runtimes = {precision: InferenceRuntime(base_path=version.base.path, resolver=lambda task: ref, quantize=quantize, device="cpu")
                for precision, quantize in (("fp32", "none"), ("int8", "int8"))}  # the CPU whatever SUITE_DEVICE says
    texts, labels = headlines(n_texts, seed=11)
    rates: dict[str, dict[int, list[float]]] = {p: {b: [] for b in BATCH_SIZES} for p in runtimes}
    for runtime in runtimes.values():
        runtime.classify(task=TASK, texts=texts[:64])  # warm-up: loading and the first allocations
    for _ in range(rounds):
        for size in BATCH_SIZES:
            batches = [texts[i:i + size] for i in range(0, len(texts) if size > 1 else 64, size)]
            for precision, runtime in runtimes.items():
                rates[precision][size].append(measure(lambda batch, r=runtime: r.classify(task=TASK, texts=batch), batches)[0])
    out = {p: runtimes[p].classify(task=TASK, texts=texts) for p in runtimes}
    real = real_headlines(1000)
    real_out = {p: runtimes[p].classify(task=TASK, texts=real) for p in runtimes} if real else {}
    result: dict[str, object] = {}
    for precision in runtimes:
        result[f"cpu_{precision}_per_s"] = {str(b): round(statistics.median(rates[precision][b]), 1) for b in BATCH_SIZES}
        result[f"cpu_{precision}_accuracy"] = round(float(np.mean([a == b for a, b in zip(out[precision].labels, labels)])), 4)
    result["int8_speedup_at_64"] = round(result["cpu_int8_per_s"]["64"] / result["cpu_fp32_per_s"]["64"], 2)
    result["int8_label_agreement"] = round(float(np.mean([a == b for a, b in zip(out["fp32"].labels, out["int8"].labels)])), 4)
    result["int8_max_prob_diff"] = round(float(np.abs(out["fp32"].probs - out["int8"].probs).max()), 4)
    if real_out:
        result["int8_real_agreement"] = round(float(np.mean([a == b for a, b in zip(real_out["fp32"].labels, real_out["int8"].labels)])), 4)
        result["real_texts"] = len(real)
    return result


def artifact_quantize_check(*, folder: str | Path, texts: list[str], labels: list[str], rounds: int = 3,
                            base_path: str | Path | None = None) -> dict[str, object]:
    """A saved classifier artifact served in float32 and int8 on the CPU: accuracy of each, label agreement, texts/s at 64.

    1. Two runtimes on the artifact (as artifact_runtime builds them, one with SUITE_QUANTIZE=int8), pinned to the CPU.
    2. Each classifies `texts` `rounds` times in batches of 64, alternating; the median rate and the labels are kept.
    """
    from services.ml.artifacts import artifact_base_path, artifact_sha256
    from services.ml.runtime import AdapterRef, InferenceRuntime

    ref = AdapterRef(task="evaluate", version=0, path=str(folder), sha256=artifact_sha256(folder))
    base_path = base_path or artifact_base_path(folder)  # the artifact's packaged base unless a folder is given
    runtimes = {precision: InferenceRuntime(base_path=base_path, resolver=lambda task: ref, quantize=quantize, device="cpu")
                for precision, quantize in (("fp32", "none"), ("int8", "int8"))}
    batches = [texts[i:i + 64] for i in range(0, len(texts), 64)]
    rates: dict[str, list[float]] = {p: [] for p in runtimes}
    predicted: dict[str, list[str]] = {}
    for _ in range(rounds):
        for precision, runtime in runtimes.items():
            rates[precision].append(measure(lambda batch, r=runtime: r.classify(task="evaluate", texts=batch), batches)[0])
    for precision, runtime in runtimes.items():
        predicted[precision] = runtime.classify(task="evaluate", texts=texts).labels
    result: dict[str, object] = {"n": len(texts)}
    for precision in runtimes:
        result[f"{precision}_accuracy"] = round(float(np.mean([a == b for a, b in zip(predicted[precision], labels)])), 5)
        result[f"{precision}_per_s_at_64"] = round(statistics.median(rates[precision]), 1)
    result["accuracy_points_lost"] = round(100 * (result["fp32_accuracy"] - result["int8_accuracy"]), 2)
    result["label_agreement"] = round(float(np.mean([a == b for a, b in zip(predicted["fp32"], predicted["int8"])])), 5)
    result["int8_speedup_at_64"] = round(result["int8_per_s_at_64"] / result["fp32_per_s_at_64"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    """float32 against int8 on the sentiment check: `python -m pipelines.bench_inference --artifact DIR` (no Django needed).

    1. DIR is a classifier artifact trained on sent_train, e.g. `python -m pipelines.quality_sentiment --keep DIR`.
    2. Score it on sent_valid in both precisions and print one JSON line (artifact_quantize_check).
    """
    import argparse
    import csv

    from services.output import json_line

    parser = argparse.ArgumentParser(prog="python -m pipelines.bench_inference", description=main.__doc__.splitlines()[0])
    parser.add_argument("--artifact", required=True, help="a classifier artifact folder (quality_sentiment --keep DIR)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    path = ROOT.parent / "shared" / "devdata" / "twitter_financial_news_sentiment" / "sent_valid.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    print(json_line(artifact_quantize_check(folder=args.artifact, texts=[r["text"] for r in rows],
                                            labels=[r["label"] for r in rows], rounds=args.rounds)))
    return 0


def worker_start() -> subprocess.Popen:
    from config.celery import app

    log = open(Path(os.environ["SUITE_VAR_DIR"]) / "bench-worker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", QUEUE, "--pool=threads",
                             "--concurrency=4", "-n", f"bench-{os.getpid()}@%h", "-l", "WARNING"],
                            cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the benchmark's Celery worker exited ({proc.returncode}); see {log.name}")
        replies = app.control.ping(timeout=1.0)
        if any(f"bench-{os.getpid()}@" in name for reply in replies for name in reply):
            return proc
    proc.kill()
    raise RuntimeError(f"the benchmark's Celery worker did not answer within 90 s; see {log.name}")


def measure(run: Callable[[list[str]], object], batches: list[list[str]]) -> tuple[float, list[float]]:
    """(texts per second, per-batch latencies in ms) for running every batch one after the other."""
    latencies = []
    started = time.perf_counter()
    for batch in batches:
        t0 = time.perf_counter()
        run(batch)
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    return sum(len(b) for b in batches) / elapsed, latencies


def inference_bench(*, rounds: int, n_texts: int, quiet: bool) -> dict[str, object]:
    """Run the three paths over the same batches, alternating, `rounds` times; report medians."""
    from django.conf import settings

    from apps.registry.tasks import classify
    from services.health import redis_check, service_require
    from services.ml.device import device_pick
    from services.registry.serving import texts_classify

    service_require(redis_check(url=settings.REDIS_URL))
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    version = adapter_ensure(quiet)
    texts, _ = headlines(n_texts, seed=7)
    raw = raw_classifier(version)

    def inprocess(batch: list[str]) -> object:
        return texts_classify(task=TASK, texts=batch)

    def celery(batch: list[str]) -> object:
        return classify.apply_async(args=[TASK, batch], queue=QUEUE).get(timeout=300)

    # The same scores whichever path served them.
    probe = texts[:16]
    np.testing.assert_allclose(raw(probe), inprocess(probe).probs, atol=1e-4)

    worker = worker_start()
    try:
        np.testing.assert_allclose(raw(probe), np.array(celery(probe)["probs"]), atol=1e-4)
        paths = {"raw": raw, "inprocess": inprocess, "celery": celery}
        per_s: dict[str, dict[int, list[float]]] = {p: {b: [] for b in BATCH_SIZES} for p in paths}
        lat: dict[str, dict[int, list[float]]] = {p: {b: [] for b in BATCH_SIZES} for p in paths}
        for path, run in paths.items():  # warm-up: first calls load models and fill caches
            run(texts[:64])
        for round_no in range(rounds):
            for size in BATCH_SIZES:
                batches = [texts[i:i + size] for i in range(0, len(texts) if size > 1 else 64, size)]
                for path, run in paths.items():
                    rate, latencies = measure(run, batches)
                    per_s[path][size].append(rate)
                    lat[path][size].extend(latencies)
            say(f"round {round_no + 1}/{rounds} done")
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2)

    device, dtype = device_pick()
    result: dict[str, object] = {"device": f"{device.type}" + (f" ({dtype})".replace("torch.", "") if device.type == "cuda" else ""),
                                 "threads": __import__("torch").get_num_threads(), "rounds": rounds, "texts": n_texts}
    for path in ("raw", "inprocess", "celery"):
        result[f"{path}_per_s"] = {str(b): med(per_s[path][b]) for b in BATCH_SIZES}
        result[f"{path}_p50_ms"] = {str(b): pct(lat[path][b], 50) for b in BATCH_SIZES}
        result[f"{path}_p95_ms"] = {str(b): pct(lat[path][b], 95) for b in BATCH_SIZES}
    result["inprocess_ratio_at_64"] = round(result["inprocess_per_s"]["64"] / result["raw_per_s"]["64"], 3)
    result["celery_ratio_at_64"] = round(result["celery_per_s"]["64"] / result["raw_per_s"]["64"], 3)
    say("float32 against int8 CPU serving ...")
    result.update(quantize_compare(version=version, rounds=rounds, n_texts=n_texts))
    if not quiet:
        say(f"device {result['device']}, {result['threads']} threads, adapter {TASK} v{version.version}")
        say(f"{'path':10} {'batch':>5} {'texts/s':>9} {'p50 ms':>8} {'p95 ms':>8}")
        for path in ("raw", "inprocess", "celery"):
            for b in BATCH_SIZES:
                say(f"{path:10} {b:>5} {result[f'{path}_per_s'][str(b)]:>9} {result[f'{path}_p50_ms'][str(b)]:>8} {result[f'{path}_p95_ms'][str(b)]:>8}")
        say(f"ratio suite/raw at 64: in-process {result['inprocess_ratio_at_64']}, celery {result['celery_ratio_at_64']}")
        for precision in ("fp32", "int8"):
            rates = " ".join(f"{b}: {result[f'cpu_{precision}_per_s'][str(b)]}" for b in BATCH_SIZES)
            say(f"cpu {precision}: texts/s by batch {rates}; accuracy {result[f'cpu_{precision}_accuracy']}")
        say(f"int8/fp32 at 64: {result['int8_speedup_at_64']}x; labels agree {result['int8_label_agreement']}"
            + (f", on {result['real_texts']} real headlines {result['int8_real_agreement']}" if "real_texts" in result else "")
            + f"; largest probability difference {result['int8_max_prob_diff']}")
    return result


if __name__ == "__main__":
    raise SystemExit(main())
