"""Sentiment ingestion benchmark: headlines through the real broker and consumer against the raw model.

    python -m pipelines.bench sentiment [--json] [--n 1000] [--batch-size 64]

1. Raw: the benchmark adapter run directly on transformers + PEFT over the N texts in batches (texts/s),
   before and again after step 2; the faster run is reported, so a busy machine does not flatter the ratio.
2. End to end: a `news_consume` consumer (the same code the command runs, in a thread) is started and
   warmed up with one message; then N headlines are produced to a private `<prefix>.raw` topic. Throughput
   is N / (last row stored − first message produced); latency per message is stored_at − the Kafka
   record's CreateTime. All N are produced at once, so latency includes the time spent queued behind
   earlier messages (a backlog drain, the hard case).
The last line printed is one JSON object: {"n", "e2e_per_s", "raw_per_s", "ratio", "p95_latency_ms", ...}.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import numpy as np


def sentiment_bench(*, n: int = 1000, batch_size: int = 64, quiet: bool = False) -> dict[str, Any]:
    from django.conf import settings

    from apps.sentiment.models import ScoredNews
    from pipelines.bench_inference import TASK, adapter_ensure, headlines, raw_classifier
    from pipelines.news_consumer import after_store_default, news_consume
    from services.health import redis_check
    from services.registry.serving import texts_classify
    from services.sentiment.bus import Topics, kafka_require, producer_make, topics_ensure

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    kafka_require()
    version = adapter_ensure(quiet)
    texts, _ = headlines(n, seed=11)
    tickers = ["ACME", "GLBX", "INTC", "UMBR"]

    # 1. Raw model throughput on the same texts, same batch size (after a warm-up batch); measured again after
    # the end-to-end run and the faster of the two kept, so a busy machine does not flatter the ratio.
    raw = raw_classifier(version)
    raw(texts[:batch_size])

    def raw_rate() -> float:
        started = time.perf_counter()
        for i in range(0, n, batch_size):
            raw(texts[i:i + batch_size])
        return n / (time.perf_counter() - started)

    raw_rates = [raw_rate()]
    say(f"raw model: {raw_rates[0]:.1f} texts/s (batch {batch_size}, adapter {TASK} v{version.version})")

    # 2. End to end through the broker and the consumer.
    run_id = uuid.uuid4().hex[:8]
    topics = Topics.named(f"bench-{run_id}.news")
    topics_ensure(topics=topics)
    live = redis_check(url=settings.REDIS_URL).ok  # live pushes and alert checks need Redis; skipped without it
    stop = threading.Event()
    stats: dict[str, Any] = {}

    def consume() -> None:
        from django.db import connection

        try:
            stats["result"] = news_consume(group=f"bench-{run_id}", topics=topics, batch_size=batch_size,
                                           max_messages=n + 1, idle_exit_seconds=120, stop=stop,
                                           classify=lambda batch: texts_classify(task=TASK, texts=batch),
                                           after_store=after_store_default if live else None)
        finally:
            connection.close()

    before = ScoredNews.objects.count()
    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
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
    say(f"consumer warm; producing {n} headlines to {topics.raw}")
    for i, text in enumerate(texts):
        producer.send(topics.raw, key="bench", value=message(i, text))
    producer.flush()
    producer.close()
    worker.join(timeout=max(600.0, n / 2))
    stop.set()
    rows = list(ScoredNews.objects.filter(message_id__startswith=f"bench-{run_id}-").exclude(message_id=f"bench-{run_id}--1")
                .values_list("produced_at", "stored_at"))
    if len(rows) != n:
        raise RuntimeError(f"{len(rows)} of {n} headlines were stored; see the consumer's log")
    raw_rates.append(raw_rate())
    raw_per_s = max(raw_rates)
    say(f"raw model again: {raw_rates[1]:.1f} texts/s; using {raw_per_s:.1f}")
    first = min(p for p, _ in rows)
    last = max(s for _, s in rows)
    e2e_per_s = n / max((last - first).total_seconds(), 1e-6)
    latencies = np.array([(s - p).total_seconds() * 1000 for p, s in rows])
    result = {"n": n, "e2e_per_s": round(e2e_per_s, 1), "raw_per_s": round(raw_per_s, 1),
              "raw_runs_per_s": [round(r, 1) for r in raw_rates],
              "ratio": round(e2e_per_s / raw_per_s, 3), "p95_latency_ms": round(float(np.percentile(latencies, 95)), 1),
              "p50_latency_ms": round(float(np.percentile(latencies, 50)), 1), "batch_size": batch_size,
              "live_push": live, "consumer": stats["result"].as_dict() if "result" in stats else None,
              "threads": __import__("torch").get_num_threads()}
    say(f"end to end: {result['e2e_per_s']} msgs/s, ratio {result['ratio']} of raw, "
        f"latency p50 {result['p50_latency_ms']} ms p95 {result['p95_latency_ms']} ms")
    return result
