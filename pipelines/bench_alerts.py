"""Alert-quality benchmark: a real headline stream with injected negative surges, judged by the production rules.

    python -m pipelines.bench alerts [--json] [--semantics new|cooldown] [--days 14] [--surges 20] [--tickers 10] [--seed 5]
                                     [--step-minutes 2] [--for-evaluations N] [--clear-threshold X]

1. Stream: the Twitter Financial News Sentiment headlines (../shared/devdata, both splits), each given an event
   time (uniform over `--days`) and one watchlist ticker (Zipf-like shares, so busy and quiet tickers both occur).
   Without devdata it prints why and a JSON line {"skipped": ...}.
2. Surges: after the warm-up (the rules' 7-day baseline), `--surges` bursts of 6–12 bearish headlines within
   30 minutes on a chosen ticker at a known start.
3. Replay in event time, `--step-minutes` of event time per batch (the rules' evaluation interval), through the production path minus Kafka: news_store (rows,
   ticker links, minute/hour/day buckets) then the alert rules of the batch's tickers. Every ticker has the rule
   a new watchlist entry gets (ticker_save). Scores come from the data's human labels (bearish −0.75, bullish
   +0.75, neutral ±0.1, with a small jitter): the label a perfect `sentiment` model would give.
   `--semantics new`: alerts_check (pending/firing/resolved, hysteresis, grouped and repeated notices).
   `--semantics cooldown`: today's rule before this change, reproduced: an alert (and a notice) whenever a single
   evaluation fires and the rule raised none within its cooldown. `--for-evaluations` / `--clear-threshold`
   change the watchlist's rules from the defaults (to try other settings on the same stream).
4. A surge is detected when its ticker fires an alert within 2 hours of its start; other alerts after the
   warm-up are false alerts. Last line: {"surges", "detected", "recall", "false_alerts_per_day",
   "median_delay_minutes", "notifications_sent", ...}.

Kafka and the consumer are left out so that two weeks of event time replay in minutes on a CPU; the consumer runs
the same news_store and alerts_check per batch.
"""
from __future__ import annotations

import csv
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


def alerts_bench(*, rows: Sequence[tuple[str, str]] | None = None, semantics: str = "new", days: int = 14,
                 warmup_days: int = 7, surges: int = 20, tickers: int = 10, seed: int = 5, step_minutes: int = 2,
                 for_evaluations: int | None = None, clear_threshold: float | None = None,
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
    if not 0 < warmup_days < days:
        raise ValueError(f"warmup_days must be between 1 and days - 1 (got {warmup_days} of {days})")
    rows = rows if rows is not None else devdata_rows()
    if rows is None:
        reason = f"no devdata at {DEVDATA} (see ../shared/devdata/README.md)"
        say(f"skipped: {reason}")
        return {"skipped": reason}
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
    say(f"{len(events)} headlines over {days} days ({len(injected)} surges injected), {len(symbols)} tickers, "
        f"semantics {semantics}")

    logging.getLogger("services.sentiment.alerts").setLevel(logging.WARNING)  # one line per alert otherwise
    _sqlite_fast()
    rng = random.Random(seed + 1)
    check_cooldown = _cooldown_checker() if semantics == "cooldown" else None
    fired: list[tuple[str, datetime]] = []  # (ticker, event time) of every alert that fired
    started = time.perf_counter()
    by_minute: dict[datetime, list[Event]] = defaultdict(list)
    step = step_minutes * 60
    for event in events:
        by_minute[START + timedelta(seconds=(event.at - START).total_seconds() // step * step)].append(event)
    for n, (minute, batch) in enumerate(sorted(by_minute.items())):
        items = [NewsItem(id=f"bench-{minute:%Y%m%d%H%M}-{i}", source="bench", published_at=e.at, headline=e.text,
                          tickers=[e.ticker]) for i, e in enumerate(batch)]
        news_store(items=items, scores=[_scored(e.label, rng) for e in batch], model_version=1)
        batch_symbols = sorted({e.ticker for e in batch})
        if check_cooldown is not None:
            fired += check_cooldown(batch_symbols, minute)
        else:
            alerts_check(symbols=batch_symbols, deliver=lambda alert: None)  # notices stored; nothing sent out
        if not quiet and n % 2000 == 0:
            say(f"  {minute:%Y-%m-%d %H:%M}: {n} batches, {time.perf_counter() - started:.0f} s")
    if check_cooldown is None:
        fired = [(a.symbol, a.fired_at) for a in Alert.objects.filter(fired_at__isnull=False)]
        notifications = Notification.objects.count()
    else:
        notifications = len(fired)
    return {**_score(fired=fired, injected=injected, warmup_end=START + timedelta(days=warmup_days), step_minutes=step_minutes,
                  measured_days=days - warmup_days, notifications=notifications, semantics=semantics,
                  headlines=len(events), seconds=time.perf_counter() - started, say=say), "rule": settings_used}


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
