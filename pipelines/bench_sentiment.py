"""Sentiment ingestion benchmark: headlines through the real broker and consumer against the raw models.

    python -m pipelines.bench sentiment [--json] [--n 1000] [--batch-size 64]

Two models score each headline, as in production: a sentiment adapter and a topic adapter on the same base
(each trained once by a short run on synthetic headlines, then reused).
1. Raw: both adapters run directly on transformers + PEFT over the N texts in batches (sentiment then topic on
   each batch; texts/s), before and again after step 2; the faster run is reported, so a busy machine does not
   flatter the ratio.
2. End to end: a `news_consume` consumer (the same code the command runs, in a thread, scoring with both
   adapters) is started and warmed up with one message; then N headlines are produced to a private
   `<prefix>.raw` topic. Throughput is N / (last row stored − first message produced); latency per message is
   stored_at − the Kafka record's CreateTime. All N are produced at once, so latency includes the time spent
   queued behind earlier messages (a backlog drain, the hard case).
3. Where the consumer's time went: seconds per phase (pipelines.news_consumer.PHASES) over the run.
The last line printed is one JSON object: {"n", "e2e_per_s", "raw_per_s", "ratio", "p95_latency_ms", "models",
"raw_sentiment_per_s", "raw_topic_per_s", "consumer_seconds", ...}.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import numpy as np

TOPIC_TASK = "bench-topic"
# The benchmark headlines' events (pipelines.bench_inference.EVENTS) by topic, for the topic adapter's training rows.
EVENT_TOPICS = {
    "beats earnings estimates and raises full-year guidance": "Earnings",
    "shares surge after record quarterly revenue": "Stock Movement",
    "wins a multi-billion contract with the government": "Company | Product News",
    "is upgraded to buy by analysts": "Analyst Update",
    "misses revenue forecasts as demand slows": "Earnings",
    "shares plunge after the CEO resigns": "Personnel Change",
    "cuts its dividend and warns on profits": "Dividend",
    "faces a regulatory probe over accounting": "Legal | Regulation",
    "schedules its annual shareholder meeting for May": "Company | Product News",
    "names a new chief financial officer": "Personnel Change",
    "files its quarterly report with the SEC": "Legal | Regulation",
    "announces a conference call next week": "Company | Product News",
}


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat: user nice system idle iowait irq softirq steal), None off Linux."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def cpu_load(before: list[int] | None, after: list[int] | None) -> dict[str, float] | None:
    """Busy and stolen shares (%) of the machine's CPU time between two cpu_times(): how loaded the run was."""
    if not before or not after:
        return None
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta) or 1
    return {"busy_pct": round(100 * (total - delta[3] - delta[4]) / total, 1), "steal_pct": round(100 * delta[7] / total, 1)}


def topic_adapter_ensure(quiet: bool) -> object:
    """The benchmark's topic adapter on the default base: trained once (a short run on synthetic headlines) and reused."""
    import csv
    import tempfile

    from apps.registry.models import Alias
    from pipelines.bench_inference import headlines
    from pipelines.training import TrainRequest, adapter_train
    from services.registry.versions import version_get

    if not Alias.objects.filter(task__name=TOPIC_TASK, name="champion").exists():
        texts, _ = headlines(240, seed=2)
        labels = [next(topic for event, topic in EVENT_TOPICS.items() if event in text) for text in texts]
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, newline="") as f:
            csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
        adapter_train(TrainRequest(task=TOPIC_TASK, data=f.name, epochs=1, created_by="pipeline:bench"), progress=not quiet)
        os.unlink(f.name)
    return version_get(task_name=TOPIC_TASK)


def sentiment_bench(*, n: int = 1000, batch_size: int = 64, quiet: bool = False) -> dict[str, Any]:
    from django.conf import settings

    from apps.sentiment.models import ScoredNews
    from pipelines.bench_inference import TASK, adapter_ensure, headlines, raw_classifier
    from pipelines.news_consumer import PHASES, ConsumeStats, after_store_default, news_consume
    from services.health import redis_check
    from services.registry.serving import texts_classify
    from services.sentiment.bus import Topics, kafka_require, producer_make, topics_ensure

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    kafka_require()
    version = adapter_ensure(quiet)
    topic_version = topic_adapter_ensure(quiet)
    models = [f"{TASK} v{version.version}", f"{TOPIC_TASK} v{topic_version.version}"]
    texts, _ = headlines(n, seed=11)
    tickers = ["ACME", "GLBX", "INTC", "UMBR"]

    # 1. Raw throughput of both models on the same texts, same batch size (after a warm-up batch); measured again
    # after the end-to-end run and the faster of the two kept, so a busy machine does not flatter the ratio.
    raws = [raw_classifier(version), raw_classifier(topic_version)]
    for raw in raws:
        raw(texts[:batch_size])

    def raw_rate() -> tuple[float, list[float]]:
        """(texts/s of both models, [seconds in the sentiment model, seconds in the topic model])."""
        spent = [0.0, 0.0]
        started = time.perf_counter()
        for i in range(0, n, batch_size):
            for m, raw in enumerate(raws):
                t0 = time.perf_counter()
                raw(texts[i:i + batch_size])
                spent[m] += time.perf_counter() - t0
        return n / (time.perf_counter() - started), spent

    cpu = [cpu_times()]
    raw_runs = [raw_rate()]
    cpu.append(cpu_times())
    say(f"raw models: {raw_runs[0][0]:.1f} texts/s (batch {batch_size}, {' + '.join(models)})")

    # 2. End to end through the broker and the consumer.
    run_id = uuid.uuid4().hex[:8]
    topics = Topics.named(f"bench-{run_id}.news")
    topics_ensure(topics=topics)
    live = redis_check(url=settings.REDIS_URL).ok  # live pushes and alert checks need Redis; skipped without it
    stop = threading.Event()
    stats: dict[str, Any] = {}
    counters = ConsumeStats()  # read live: the phases' seconds are taken after the warm-up batch

    def consume() -> None:
        from django.db import connection

        try:
            stats["result"] = news_consume(group=f"bench-{run_id}", topics=topics, batch_size=batch_size,
                                           max_messages=n + 1, idle_exit_seconds=120, stop=stop,
                                           classify=lambda batch: texts_classify(task=TASK, texts=batch),
                                           classify_topic=lambda batch: texts_classify(task=TOPIC_TASK, texts=batch),
                                           after_store=after_store_default if live else None, stats=counters)
        finally:
            connection.close()

    before = ScoredNews.objects.count()
    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    cpu.append(cpu_times())
    producer = producer_make()
    now = datetime.now(timezone.utc).isoformat()

    def message(i: int, text: str) -> dict[str, Any]:
        return {"id": f"bench-{run_id}-{i}", "source": "bench", "published_at": now, "headline": text,
                "tickers": [tickers[i % len(tickers)]]}

    producer.send(topics.raw, key="bench", value=message(-1, "warm-up headline"))
    producer.flush()
    deadline = time.monotonic() + 180
    while ScoredNews.objects.count() <= before and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.1)
    if ScoredNews.objects.count() <= before:
        stop.set()
        raise RuntimeError("the consumer stored nothing within 180 s (warm-up); is the broker healthy?")
    last_phase = "after_store" if live else "commit"  # the warm-up batch is done when its last phase is timed
    while last_phase not in counters.seconds and time.monotonic() < deadline and worker.is_alive():
        time.sleep(0.01)
    warm_seconds = dict(counters.seconds)
    say(f"consumer warm; producing {n} headlines to {topics.raw}")
    for i, text in enumerate(texts):
        producer.send(topics.raw, key="bench", value=message(i, text))
    producer.flush()
    producer.close()
    worker.join(timeout=max(600.0, n / 2))
    stop.set()
    rows = list(ScoredNews.objects.filter(message_id__startswith=f"bench-{run_id}-").exclude(message_id=f"bench-{run_id}--1")
                .values_list("produced_at", "stored_at", "topic_version"))
    if len(rows) != n:
        raise RuntimeError(f"{len(rows)} of {n} headlines were stored; see the consumer's log")
    cpu.append(cpu_times())
    raw_runs.append(raw_rate())
    cpu.append(cpu_times())
    best = max(raw_runs, key=lambda run: run[0])
    raw_per_s = best[0]
    say(f"raw models again: {raw_runs[1][0]:.1f} texts/s; using {raw_per_s:.1f}")
    first = min(p for p, _, _ in rows)
    last = max(s for _, s, _ in rows)
    wall_s = max((last - first).total_seconds(), 1e-6)
    e2e_per_s = n / wall_s
    latencies = np.array([(s - p).total_seconds() * 1000 for p, s, _ in rows])
    consumer = stats["result"].as_dict() if "result" in stats else None
    seconds = {phase: round(counters.seconds[phase] - warm_seconds.get(phase, 0.0), 3) for phase in counters.seconds}
    result = {"n": n, "e2e_per_s": round(e2e_per_s, 1), "raw_per_s": round(raw_per_s, 1),
              "raw_runs_per_s": [round(r, 1) for r, _ in raw_runs],
              "raw_sentiment_per_s": round(n / best[1][0], 1), "raw_topic_per_s": round(n / best[1][1], 1),
              "ratio": round(e2e_per_s / raw_per_s, 3), "p95_latency_ms": round(float(np.percentile(latencies, 95)), 1),
              "p50_latency_ms": round(float(np.percentile(latencies, 50)), 1), "batch_size": batch_size,
              "models": models, "topic_model_rows": sum(1 for _, _, v in rows if v == topic_version.version),
              "live_push": live, "consumer": consumer, "e2e_wall_s": round(wall_s, 3),
              # seconds per phase summed over the consumer's batches of the N headlines (the warm-up batch left out)
              "consumer_seconds": {phase: seconds[phase] for phase in PHASES if phase in seconds},
              # the consumer's time in the two model calls, of the end-to-end wall time (the rest is overhead)
              "consumer_model_share": round((seconds.get("sentiment", 0) + seconds.get("topic", 0)) / wall_s, 3),
              "cpu": {"raw_before": cpu_load(cpu[0], cpu[1]), "end_to_end": cpu_load(cpu[2], cpu[3]),
                      "raw_after": cpu_load(cpu[3], cpu[4]), "cores": os.cpu_count(),
                      "loadavg_1m_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None},
              "threads": __import__("torch").get_num_threads()}
    say(f"end to end: {result['e2e_per_s']} msgs/s, ratio {result['ratio']} of raw (both models), "
        f"latency p50 {result['p50_latency_ms']} ms p95 {result['p95_latency_ms']} ms")
    say("consumer time by phase: " + ", ".join(f"{phase} {s:.2f} s ({100 * s / wall_s:.0f}%)"
                                              for phase, s in result["consumer_seconds"].items())
        + f" of {wall_s:.2f} s; raw models: sentiment {best[1][0]:.2f} s, topic {best[1][1]:.2f} s")
    say(f"machine load (busy/steal % of {os.cpu_count()} cores): " + ", ".join(
        f"{k} {v['busy_pct']}/{v['steal_pct']}" for k, v in result["cpu"].items() if isinstance(v, dict)))
    return result
