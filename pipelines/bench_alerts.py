"""Alert-quality benchmark: a real headline stream with injected negative surges, judged by the production rules.

    python -m pipelines.bench alerts [--json] [--semantics new|cooldown] [--days 14] [--surges 20] [--tickers 10] [--seed 5]
                                     [--step-minutes 2] [--for-evaluations N] [--clear-threshold X] [--headlines N]
                                     [--scores labels|model] [--no-kafka]

1. Stream: the Twitter Financial News Sentiment headlines (../shared/devdata, both splits), each given an event
   time (uniform over `--days`) and one watchlist ticker (Zipf-like shares, so busy and quiet tickers both occur).
   Without devdata it prints why and a JSON line {"skipped": ...}.
2. Surges: after the warm-up (the rules' 7-day baseline), `--surges` bursts of 6–12 bearish headlines within
   30 minutes on a chosen ticker at a known start.
3. Replay in event time, `--step-minutes` of event time per batch (the rules' evaluation interval), through the
   production path. By default through Kafka and the consumer: the stream is written as JSON Lines (id, source,
   published_at = the event time, headline, tickers) and sent by news_replay to a topic of this run only
   (`bench-alerts-<run>.news.raw`, one partition so the replay keeps event order); a consumer of the group
   `bench-alerts-<run>` polls it and hands each step's records to the consumer's batch_process (decode, sentiment
   and topic scoring, news_store: rows, ticker links, minute/hour/day buckets; news.scored), commits the step's
   offsets, then evaluates the alert rules of the stored rows' tickers, as the consumer's after_store does. The
   broker is the one at KAFKA_BOOTSTRAP_SERVERS (`deploy/kafka.sh start`); without one the benchmark stops and
   says so. `--no-kafka` is the fast path: news_store is called directly per step (no broker, no decode, no
   offsets). Every ticker has the rule a new watchlist entry gets (ticker_save: z-score |z| ≥ 2, `for` 3, clear
   1.5). `--scores labels` (default): scores come from the data's human labels (bearish −0.75, bullish +0.75,
   neutral ±0.1, with a small jitter): the label a perfect `sentiment` model would give (through Kafka, that
   "model" is the consumer's classify, looked up by headline text). `--scores model`: the registered `sentiment`
   champion scores every headline, as the production consumer does (through Kafka: classify_champion, one call
   per consumer batch, i.e. per event-time step; direct: the same calls made for the whole stream first, 256
   headlines each, then replayed); the benchmark stops and says how to register one when its database has none
   (model-scored runs share var/bench-alerts-models; the devdata split a champion was trained on is part of the
   stream, which flatters it).
   Topics are the consumer's either way: the `topic` champion, or the keyword lists where the benchmark's database
   has none (the direct path with `--scores labels`: the keyword lists).
   `--semantics new`: alerts_check (pending/firing/resolved, hysteresis, grouped and repeated notices).
   `--semantics cooldown`: today's rule before this change, reproduced: an alert (and a notice) whenever a single
   evaluation fires and the rule raised none within its cooldown. `--for-evaluations` / `--clear-threshold`
   change the watchlist's rules from the defaults (to try other settings on the same stream; `--for-evaluations 1
   --clear-threshold 2` is the rule before the defaults changed: at once, no hysteresis). Either way a rule is
   judged at its newest headline's event time, never the wall clock. `--headlines N` keeps a random N of the
   devdata headlines (a shorter run on the same days).
4. A surge is detected when its ticker fires an alert within 2 hours of its start; other alerts after the
   warm-up are false alerts. Last line: {"surges", "detected", "recall", "false_alerts_per_day",
   "median_delay_minutes", "notifications_sent", "through": "kafka"|"direct", "scores": "labels"|"model",
   "models": {"sentiment": "human labels"|"sentiment vN", "topic": "topics: model vN"|"topics: keyword lists ..."},
   ...}; through Kafka also "kafka": {topic, group, produced, consumed, committed_offset, dead_lettered,
   consumer_msgs_per_s, ...}; direct with model scores also "model_failed" (headlines the model failed on).
"""
from __future__ import annotations

import csv
import json
import logging
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pipelines.bench import ROOT
from services.errors import ServiceUnavailable

DEVDATA = ROOT.parent / "shared" / "devdata" / "twitter_financial_news_sentiment"
START = datetime(2026, 1, 5, tzinfo=timezone.utc)
DETECT_WITHIN = timedelta(hours=2)
SURGE_SPAN = timedelta(minutes=30)
LABEL_SCORE = {"0": -0.75, "1": 0.75, "2": 0.0}  # bearish, bullish, neutral (the dataset's label ids)


@dataclass(frozen=True)
class Event:
    at: datetime
    text: str
    label: str  # "0" bearish, "1" bullish, "2" neutral
    ticker: str
    surge: int | None = None  # index of the injected surge it belongs to


@dataclass(frozen=True)
class Surge:
    ticker: str
    start: datetime
    size: int


def devdata_rows() -> list[tuple[str, str]] | None:
    """(text, label) of both splits, or None when the devdata folder is absent."""
    files = [DEVDATA / "sent_train.csv", DEVDATA / "sent_valid.csv"]
    if not all(f.exists() for f in files):
        return None
    rows = []
    for f in files:
        with f.open(newline="", encoding="utf-8") as handle:
            rows += [(r["text"], r["label"]) for r in csv.DictReader(handle)]
    return rows


def stream_make(*, rows: Sequence[tuple[str, str]], days: int, warmup_days: int, surges: int, tickers: int,
                seed: int) -> tuple[list[Event], list[Surge], list[str]]:
    """The replayed stream (sorted by event time), the injected surges and the watchlist."""
    rng = random.Random(seed)
    symbols = [f"T{i:02d}" for i in range(tickers)]
    weights = [1 / (i + 1) for i in range(tickers)]
    span = days * 86400
    events = [Event(START + timedelta(seconds=rng.uniform(0, span)), text, label, rng.choices(symbols, weights)[0])
              for text, label in rows]
    bearish = [text for text, label in rows if label == "0"] or ["shares slump on weak outlook"]
    injected = []
    measured = (days - warmup_days) * 86400 - DETECT_WITHIN.total_seconds()
    for i in range(surges):
        # Spread over the measured days, at least 2 h apart (a surge is scored on the 2 h after its start).
        slot = measured / max(surges, 1)
        start = START + timedelta(days=warmup_days, seconds=slot * i + rng.uniform(0, max(slot - 7200, 1)))
        surge = Surge(ticker=rng.choice(symbols), start=start, size=rng.choice([6, 8, 10, 12]))
        injected.append(surge)
        events += [Event(start + timedelta(seconds=rng.uniform(0, SURGE_SPAN.total_seconds())), rng.choice(bearish),
                         "0", surge.ticker, surge=i) for _ in range(surge.size)]
    return sorted(events, key=lambda e: e.at), injected, symbols


def _scored(label: str, rng: random.Random) -> Any:
    from services.sentiment.scoring import Scored

    score = max(-1.0, min(1.0, LABEL_SCORE.get(label, 0.0) + rng.uniform(-0.1, 0.1)))
    pos, neg = max(score, 0.0), max(-score, 0.0)
    name = {"0": "negative", "1": "positive"}.get(label, "neutral")
    return Scored(label=name, p_positive=pos, p_neutral=1 - pos - neg, p_negative=neg, score=score)


def _reset() -> None:
    """Empty the sentiment tables of the benchmark's private database (a rerun starts afresh)."""
    from apps.sentiment.models import Alert, Bucket, Notification, ScoredNews, Silence, Ticker

    for model in (Notification, Alert, Silence, Bucket, ScoredNews, Ticker):
        model.objects.all().delete()


def _sqlite_fast() -> None:
    """The benchmark's private SQLite file without fsync per transaction (its data is thrown away after)."""
    from django.db import connection

    if connection.vendor == "sqlite" and not connection.in_atomic_block:  # a test's transaction keeps its own
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA journal_mode=MEMORY")


def _cooldown_checker() -> Callable[[Sequence[str], datetime], list[tuple[str, datetime]]]:
    """Today's rule before pending/resolve existed: alert when one evaluation fires, once per cooldown per rule."""
    from apps.sentiment.models import AlertRule
    from services.sentiment.alerts import rule_evaluate, rule_now

    last: dict[int, datetime] = {}

    def check(symbols: Sequence[str], _now: datetime) -> list[tuple[str, datetime]]:
        raised = []
        for rule in AlertRule.objects.filter(ticker__symbol__in=list(symbols), enabled=True).select_related("ticker"):
            at = rule_now(rule)
            cooldown = timedelta(minutes=max(rule.cooldown_minutes, 1))
            if at is None or (rule.id in last and abs(at - last[rule.id]) < cooldown):
                continue
            if rule_evaluate(rule=rule, now=at).fired:
                last[rule.id] = at
                raised.append((rule.ticker.symbol, at))
        return raised

    return check


def _oracle(events: Sequence[Event], rng: random.Random, missed: list[int]) -> Callable[[list[str]], Any]:
    """The consumer's `classify` for the benchmark: each headline's human label as a perfect model's probabilities.

    Looked up by text (the consumer passes texts only); a text not in the stream (changed by decoding) is neutral and
    counted in `missed`. A text that occurs with several labels (rare in the data) gets that of its last occurrence.
    """
    import numpy as np

    from services.ml.runtime import ClassifyOutput

    label_of = {e.text.strip(): e.label for e in events}
    names = ["positive", "neutral", "negative"]

    def classify(texts: list[str]) -> Any:
        probs = []
        for text in texts:
            label = label_of.get(text.strip())
            if label is None:
                missed[0] += 1
            scored = _scored(label or "2", rng)
            probs.append([scored.p_positive, scored.p_neutral, scored.p_negative])
        array = np.array(probs, dtype=np.float32).reshape(len(texts), 3)
        return ClassifyOutput([names[i] for i in array.argmax(axis=1)], array, names, 1)

    return classify


SCORES = ("labels", "model")


def models_used(scores: str) -> dict[str, str]:
    """What scores and tags the run's headlines: {"sentiment": "human labels" | "sentiment vN", "topic": ...}.

    With `scores` "model" and no `sentiment` champion in this database, NotFound says where it looked and how to
    register one (nothing is written before).
    """
    from django.conf import settings

    from services.errors import NotFound
    from services.registry.versions import version_get
    from services.sentiment.topics import topic_source

    topic = topic_source()["text"]
    if scores == "labels":
        return {"sentiment": "human labels", "topic": topic}
    try:
        version = version_get(task_name="sentiment")
    except NotFound:
        raise NotFound(
            f"--scores model: no `sentiment` champion is registered in this benchmark's database (SUITE_VAR_DIR "
            f"{settings.VAR_DIR}). Register one there first, e.g. `SUITE_VAR_DIR={settings.VAR_DIR} python manage.py "
            f"train_adapter --task sentiment --data ../shared/devdata/twitter_financial_news_sentiment/sent_train.csv` "
            "(about 4 min on 2 cores; a `topic` champion is used too when one is registered), or run with "
            "`--scores labels`.", field="scores") from None
    return {"sentiment": f"sentiment v{version.version}", "topic": topic}


@dataclass(frozen=True)
class ModelScore:
    scored: Any  # services.sentiment.scoring.Scored
    version: int
    topics: list[str] | None  # the topic champion's; None: the keyword lists (news_store's)
    topic_version: int | None


MODEL_BATCH = 256  # headlines per model call on the direct path


def model_scores(*, texts: Sequence[str]) -> list[ModelScore | None]:
    """The direct path with model scores: the champions score and tag every headline, MODEL_BATCH per call.

    The calls batch_process makes (texts_score: a failing text is retried alone, then None, as the consumer
    dead-letters it; texts_topics: the keyword lists without a topic champion), made for the whole stream before
    the replay: the same scores in far fewer calls than one per event-time step (one headline each, mostly).
    """
    from django.conf import settings

    from pipelines.news_consumer import classify_champion
    from services.sentiment.scoring import texts_score
    from services.sentiment.topics import classify_topic_champion, texts_topics

    out: list[ModelScore | None] = []
    for i in range(0, len(texts), MODEL_BATCH):
        chunk = list(texts[i:i + MODEL_BATCH])
        batch = texts_score(texts=chunk, classify=classify_champion, retries=settings.NEWS_MODEL_RETRIES,
                            backoff_s=settings.NEWS_MODEL_RETRY_BACKOFF_S)
        kept = [j for j, version in enumerate(batch.versions) if version is not None]
        tags = texts_topics(texts=[chunk[j] for j in kept], classify=classify_topic_champion)
        scored: list[ModelScore | None] = [None] * len(chunk)
        for k, j in enumerate(kept):
            scored[j] = ModelScore(batch.scores[j], batch.versions[j], tags.topics[k], tags.versions[k])
        out += scored
    return out


def kafka_ready() -> None:
    """Raise ServiceUnavailable naming the broker's address, how to start one and the --no-kafka fast path."""
    from services.sentiment.bus import kafka_require

    try:
        kafka_require()
    except ServiceUnavailable as exc:
        raise ServiceUnavailable(f"{exc.message} The alerts benchmark replays through Kafka and the consumer; "
                                 "`--no-kafka` runs the fast path without them.") from None


def _step_of(record: Any, step: int) -> datetime | None:
    """The start of the event-time step of a raw record (its `published_at`), None when it cannot be read."""
    try:
        at = datetime.fromisoformat(json.loads(record.value)["published_at"])
    except Exception:  # noqa: BLE001 - batch_process dead-letters it with the reason
        return None
    return START + timedelta(seconds=(at - START).total_seconds() // step * step)


def _through_kafka(*, events: Sequence[Event], step: int, evaluate: Callable[[Sequence[str], datetime], None],
                   classify: Callable[[list[str]], Any], keep_topics: bool, quiet: bool,
                   say: Callable[..., None]) -> dict[str, Any]:
    """Produce the stream to a topic of this run with news_replay, consume it step by step with batch_process.

    1. Write the events as JSON Lines (id, source, published_at = event time, headline, tickers); news_replay sends
       them to `bench-alerts-<run>.news.raw` (one partition: the consumer reads them in event order).
    2. A consumer of group `bench-alerts-<run>` (the production consumer's options) polls; records are gathered
       per event-time step; each step goes through batch_process (decode, sentiment and topic, store, news.scored),
       then its offsets are committed, then `evaluate` judges the rules of the stored rows' tickers at that step.
    3. The group's committed offset is read back from the broker; the topics are deleted unless `keep_topics`.
    """
    import tempfile
    import uuid
    from pathlib import Path

    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from pipelines.news_consumer import ConsumeStats, batch_process
    from pipelines.news_replay import news_replay
    from services.kafka_config import kafka_client_options
    from services.sentiment.bus import Topics, producer_make, topics_ensure

    run_id = uuid.uuid4().hex[:8]
    topics = Topics.named(f"bench-alerts-{run_id}.news")
    group = f"bench-alerts-{run_id}"
    topics_ensure(topics=topics, partitions=1)
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as folder:
        path = Path(folder) / "stream.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for i, e in enumerate(events):
                out.write(json.dumps({"id": f"bench-{run_id}-{i}", "source": "bench", "published_at": e.at.isoformat(),
                                      "headline": e.text, "tickers": [e.ticker]}) + "\n")
        sent = news_replay(path=path, topics=topics)
    produced = sent["sent"]
    say(f"produced {produced} headlines to {topics.raw} in {sent['seconds']:.1f} s; consuming as group {group}")

    stats = ConsumeStats()
    consumer = KafkaConsumer(topics.raw, **kafka_client_options(), group_id=group, client_id=f"{group}-consumer",
                             enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500,
                             session_timeout_ms=10000, heartbeat_interval_ms=3000)
    producer = producer_make()
    pending: list[Any] = []
    pending_at: list[datetime | None] = [None]
    steps = 0
    started = time.perf_counter()

    def flush() -> None:
        result = batch_process(records=pending, producer=producer, topics=topics, classify=classify, stats=stats)
        last = pending[-1]
        with stats.timing("commit"):  # as the consumer: only after the rows are stored and news.scored flushed
            consumer.commit({TopicPartition(last.topic, last.partition): OffsetAndMetadata(last.offset + 1, "", -1)})
        symbols = sorted({s for row in result.stored for s in row.tickers}) if result is not None else []
        if symbols and pending_at[0] is not None:
            with stats.timing("after_store"):
                evaluate(symbols, pending_at[0])
        pending.clear()

    try:
        idle_since = time.monotonic()
        received = 0
        while received < produced:
            with stats.timing("poll"):
                polled = consumer.poll(timeout_ms=500, max_records=500)
            records = [r for part in polled.values() for r in part]
            if not records:
                if time.monotonic() - idle_since > 120:
                    raise RuntimeError(f"the consumer received {received} of {produced} records from {topics.raw} and "
                                       "then nothing for 120 s; is the broker healthy?")
                continue
            idle_since = time.monotonic()
            received += len(records)
            for record in records:
                at = _step_of(record, step) or pending_at[0]
                if pending and at != pending_at[0]:
                    flush()
                    steps += 1
                    if not quiet and steps % 2000 == 0:
                        say(f"  {pending_at[0]:%Y-%m-%d %H:%M}: {steps} steps, {received} records, "
                            f"{time.perf_counter() - started:.0f} s")
                pending.append(record)
                pending_at[0] = at
        if pending:
            flush()
            steps += 1
        seconds = time.perf_counter() - started
        tp = TopicPartition(topics.raw, 0)
        committed = consumer.committed(tp)
        end = consumer.end_offsets([tp])[tp]
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=10)
    if not keep_topics:
        _topics_delete(topics.all())
    info = {"topic": topics.raw, "group": group, "produced": produced, "end_offset": end, "consumed": stats.consumed,
            "committed_offset": committed, "stored": stats.stored, "duplicates": stats.duplicates,
            "dead_lettered": stats.malformed, "steps": steps, "seconds": round(seconds, 1),
            "consumer_msgs_per_s": round(stats.consumed / max(seconds, 1e-9), 1),
            "phase_seconds": {k: round(v, 1) for k, v in stats.seconds.items()}, "topics_kept": keep_topics}
    say(f"consumed {stats.consumed} records in {steps} steps ({info['consumer_msgs_per_s']} msgs/s with the rules' "
        f"evaluation), committed offset {committed} of {end}, {stats.malformed} dead-lettered")
    return info


def _topics_delete(names: list[str]) -> None:
    """Delete the run's topics (best effort: a broker that refuses keeps them, which harms nothing)."""
    from kafka.admin import KafkaAdminClient

    from services.kafka_config import kafka_client_options

    try:
        admin = KafkaAdminClient(**kafka_client_options(), client_id="bench-alerts")
        try:
            admin.delete_topics(names)
        finally:
            admin.close()
    except Exception:  # noqa: BLE001
        logging.getLogger("pipelines.bench_alerts").warning("could not delete the benchmark's topics %s", names)


def alerts_bench(*, rows: Sequence[tuple[str, str]] | None = None, semantics: str = "new", days: int = 14,
                 warmup_days: int = 7, surges: int = 20, tickers: int = 10, seed: int = 5, step_minutes: int = 2,
                 for_evaluations: int | None = None, clear_threshold: float | None = None,
                 headlines: int | None = None, kafka: bool = True, keep_topics: bool = False, scores: str = "labels",
                 quiet: bool = False) -> dict[str, Any]:
    """Replay the stream with injected surges and score the alerts (see the module's steps)."""
    from apps.sentiment.models import Alert, Notification
    from services.sentiment.alerts import alerts_check
    from services.sentiment.messages import NewsItem
    from services.sentiment.store import news_store
    from services.sentiment.watchlist import ticker_save

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if semantics not in ("new", "cooldown"):
        raise ValueError(f"semantics must be new or cooldown (got {semantics!r})")
    if scores not in SCORES:
        raise ValueError(f"scores must be labels or model (got {scores!r})")
    if not 0 < warmup_days < days:
        raise ValueError(f"warmup_days must be between 1 and days - 1 (got {warmup_days} of {days})")
    rows = rows if rows is not None else devdata_rows()
    if rows is None:
        reason = f"no devdata at {DEVDATA} (see ../shared/devdata/README.md)"
        say(f"skipped: {reason}")
        return {"skipped": reason}
    if headlines is not None and headlines < len(rows):
        rows = random.Random(seed + 2).sample(list(rows), headlines)
    models = models_used(scores)  # before anything is written: without a champion, say so and stop
    if kafka:
        kafka_ready()
    events, injected, symbols = stream_make(rows=rows, days=days, warmup_days=warmup_days, surges=surges,
                                            tickers=tickers, seed=seed)
    _reset()
    from apps.sentiment.models import AlertRule

    for symbol in symbols:
        ticker_save(symbol=symbol)  # with the rule a new watchlist entry gets
    if for_evaluations is not None:
        AlertRule.objects.update(for_evaluations=for_evaluations)
    if clear_threshold is not None:
        AlertRule.objects.update(clear_threshold=clear_threshold)
    rule = AlertRule.objects.first()
    settings_used = {"kind": rule.kind, "threshold": rule.threshold, "clear_threshold": rule.clear_threshold,
                     "for_evaluations": rule.for_evaluations, "window_minutes": rule.window_minutes,
                     "cooldown_minutes": rule.cooldown_minutes, "group_minutes": rule.group_minutes}
    through = "kafka" if kafka else "direct"
    say(f"{len(events)} headlines over {days} days ({len(injected)} surges injected), {len(symbols)} tickers, "
        f"semantics {semantics}, through {through}, scores: {models['sentiment']}, {models['topic']}")

    logging.getLogger("services.sentiment.alerts").setLevel(logging.WARNING)  # one line per alert otherwise
    _sqlite_fast()
    rng = random.Random(seed + 1)
    check_cooldown = _cooldown_checker() if semantics == "cooldown" else None
    fired: list[tuple[str, datetime]] = []  # (ticker, event time) of every alert that fired

    def evaluate(batch_symbols: Sequence[str], step_start: datetime) -> None:
        """The rules of the batch's tickers, each judged at its newest headline (event time, not the wall clock)."""
        if check_cooldown is not None:
            fired.extend(check_cooldown(batch_symbols, step_start))
        else:
            alerts_check(symbols=batch_symbols, deliver=lambda alert: None)  # notices stored; nothing sent out

    started = time.perf_counter()
    step = step_minutes * 60
    extra: dict[str, Any] = {}
    if kafka:
        from pipelines.news_consumer import classify_champion

        missed = [0]
        classify = _oracle(events, rng, missed) if scores == "labels" else classify_champion
        extra["kafka"] = _through_kafka(events=events, step=step, evaluate=evaluate, classify=classify,
                                        keep_topics=keep_topics, quiet=quiet, say=say)
        if scores == "labels":
            extra["kafka"]["unlabelled"] = missed[0]
    else:
        by_model: dict[int, ModelScore | None] = {}
        if scores == "model":
            scored = model_scores(texts=[e.text for e in events])
            by_model = {id(e): m for e, m in zip(events, scored)}
            extra["model_failed"] = sum(m is None for m in scored)  # left out, as the consumer dead-letters them
            say(f"scored by {models['sentiment']} in {time.perf_counter() - started:.0f} s; replaying")
        by_minute: dict[datetime, list[Event]] = defaultdict(list)
        for event in events:
            by_minute[START + timedelta(seconds=(event.at - START).total_seconds() // step * step)].append(event)
        for n, (minute, batch) in enumerate(sorted(by_minute.items())):
            if scores == "model":
                batch = [e for e in batch if by_model[id(e)] is not None]
            items = [NewsItem(id=f"bench-{minute:%Y%m%d%H%M}-{i}", source="bench", published_at=e.at, headline=e.text,
                              tickers=[e.ticker]) for i, e in enumerate(batch)]
            if not items:
                continue
            if scores == "model":
                found = [by_model[id(e)] for e in batch]
                news_store(items=items, scores=[m.scored for m in found], model_version=found[0].version,
                           topics=[m.topics for m in found], topic_versions=[m.topic_version for m in found])
            else:
                news_store(items=items, scores=[_scored(e.label, rng) for e in batch], model_version=1)
            evaluate(sorted({e.ticker for e in batch}), minute)
            if not quiet and n % 2000 == 0:
                say(f"  {minute:%Y-%m-%d %H:%M}: {n} batches, {time.perf_counter() - started:.0f} s")
    if check_cooldown is None:
        fired = [(a.symbol, a.fired_at) for a in Alert.objects.filter(fired_at__isnull=False)]
        notifications = Notification.objects.count()
    else:
        notifications = len(fired)
    return {**_score(fired=fired, injected=injected, warmup_end=START + timedelta(days=warmup_days), step_minutes=step_minutes,
                  measured_days=days - warmup_days, notifications=notifications, semantics=semantics,
                  headlines=len(events), seconds=time.perf_counter() - started, say=say),
            "through": through, "scores": scores, "models": models, "rule": settings_used, **extra}


def _score(*, fired: list[tuple[str, datetime]], injected: list[Surge], warmup_end: datetime, step_minutes: int,
           measured_days: int,
           notifications: int, semantics: str, headlines: int, seconds: float,
           say: Callable[..., None]) -> dict[str, Any]:
    delays = []
    matched: set[int] = set()
    for i, surge in enumerate(injected):
        hits = sorted(at for symbol, at in fired if symbol == surge.ticker and surge.start <= at <= surge.start + DETECT_WITHIN)
        if hits:
            delays.append((hits[0] - surge.start).total_seconds() / 60)
        matched |= {j for j, (symbol, at) in enumerate(fired)
                    if symbol == surge.ticker and surge.start <= at <= surge.start + DETECT_WITHIN}
    false = [f for j, f in enumerate(fired) if j not in matched and f[1] >= warmup_end]
    result = {"surges": len(injected), "detected": len(delays),
              "recall": round(len(delays) / len(injected), 4) if injected else None,
              "false_alerts_per_day": round(len(false) / measured_days, 3),
              "median_delay_minutes": round(statistics.median(delays), 1) if delays else None,
              "notifications_sent": notifications, "alerts_fired": len(fired), "semantics": semantics,
              "step_minutes": step_minutes, "headlines": headlines, "measured_days": measured_days, "seconds": round(seconds, 1)}
    say(f"{semantics}: detected {len(delays)} of {len(injected)} surges, {len(false)} false alerts in {measured_days} "
        f"days, median delay {result['median_delay_minutes']} min, {notifications} notices")
    return result
