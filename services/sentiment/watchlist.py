"""The analysts' watchlist and its alert rules, and relabels kept as training data."""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any

from django.db import transaction

from apps.sentiment.models import LABELS, RULE_LIMITS, AlertRule, Relabel, ScoredNews, Ticker
from services.errors import NotFound, SuiteError
from services.outbound import outbound_check
from services.sentiment.alerts import DEFAULT_THRESHOLDS
from services.sentiment.channels import CHANNELS

SYMBOL = re.compile(r"^[A-Z][A-Z0-9.\-]{0,19}$")


def ticker_save(*, symbol: str, name: str = "", aliases: list[str] | None = None) -> Ticker:
    """Create or update a watchlist entry; a new entry gets a z-score rule with the defaults (1 h vs 7 d, |z| ≥ 2,
    `for` 3 evaluations, clearing below |z| 1.5)."""
    symbol = symbol.strip().lstrip("$").upper()
    if not SYMBOL.match(symbol):
        raise SuiteError(f"{symbol!r} is not a ticker symbol (letters, digits, '.' or '-', up to 20).", field="symbol")
    aliases = sorted({a.strip() for a in aliases or [] if a and a.strip()})
    with transaction.atomic():
        ticker, created = Ticker.objects.update_or_create(symbol=symbol, defaults={"name": name.strip(), "aliases": aliases})
        if created:
            threshold = DEFAULT_THRESHOLDS[AlertRule.ZSCORE]
            AlertRule.objects.create(ticker=ticker, kind=AlertRule.ZSCORE, threshold=threshold,
                                     clear_threshold=AlertRule.clear_default(threshold), channels=["inapp"])
    return ticker


def rule_clear_check(*, threshold: float, clear_threshold: float | None) -> None:
    """SuiteError (field `clear_threshold`) when the clear threshold exceeds the threshold (None: no hysteresis, fine);
    the API (rule_save) and the admin's form both ask here."""
    if clear_threshold is not None and clear_threshold > threshold:
        raise SuiteError(f"clear_threshold ({clear_threshold:g}) must not exceed threshold ({threshold:g}): an alert "
                         "resolves below the level that fires it.", field="clear_threshold")


def rule_save(*, symbol: str | None, kind: str, rule_id: int | None = None, **fields: Any) -> AlertRule:
    """Create (or, with rule_id, update) a rule on a ticker, a topic (`topic`, symbol None) or a ticker within a topic.

    Unknown channels and impossible numbers are refused by name; `clear_threshold` must not exceed `threshold`.
    A new rule without `clear_threshold` gets AlertRule.clear_default of its threshold (None, given explicitly:
    no hysteresis); an update without it keeps the stored one, re-derived when it was the old threshold's default.
    """
    ticker = None
    if symbol:
        try:
            ticker = Ticker.objects.get(symbol=symbol.upper())
        except Ticker.DoesNotExist:
            raise NotFound(f"{symbol} is not on the watchlist.", field="symbol") from None
    if kind not in DEFAULT_THRESHOLDS:
        raise SuiteError(f"kind must be one of {sorted(DEFAULT_THRESHOLDS)}.", field="kind")
    if "topic" in fields:
        if not isinstance(fields["topic"], str) or len(fields["topic"].strip()) > 100:
            raise SuiteError("topic must be a topic name of at most 100 characters.", field="topic")
        fields["topic"] = fields["topic"].strip()
    if ticker is None and not fields.get("topic"):
        raise SuiteError("a rule needs a ticker, a topic or both.", field="topic")
    channels = fields.get("channels")
    if channels is not None and (not isinstance(channels, list) or set(channels) - set(CHANNELS)):
        raise SuiteError(f"channels must be a list of {sorted(CHANNELS)}.", field="channels")
    for name in ("window_minutes", "baseline_days", "cooldown_minutes", "min_count", "for_evaluations", "group_minutes"):
        top, bottom = RULE_LIMITS[name], 0 if name == "group_minutes" else 1
        if name in fields and (not isinstance(fields[name], int) or isinstance(fields[name], bool)
                               or not bottom <= fields[name] <= top):
            raise SuiteError(f"{name} must be a whole number from {bottom} to {top}.", field=name)
    for name in ("threshold", "clear_threshold"):
        value = fields.get(name)
        if name == "clear_threshold" and value is None:
            continue
        if name in fields and (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
                               or not 0 < value <= RULE_LIMITS["threshold"]):
            raise SuiteError(f"{name} must be a positive number up to {RULE_LIMITS['threshold']:g}.", field=name)
    if fields.get("webhook_url"):  # refused now rather than at the first alert (and checked again then)
        outbound_check(url=fields["webhook_url"], field_name="webhook_url")
    fields.setdefault("threshold", DEFAULT_THRESHOLDS[kind])
    if rule_id is None:
        fields.setdefault("clear_threshold", AlertRule.clear_default(fields["threshold"]))
    elif "clear_threshold" not in fields:
        threshold, clear = AlertRule.objects.filter(id=rule_id).values_list("threshold", "clear_threshold").first() or (0, None)
        derived = clear is not None and math.isclose(clear, AlertRule.clear_default(threshold))
        fields["clear_threshold"] = AlertRule.clear_default(fields["threshold"]) if derived else clear
    rule_clear_check(threshold=fields["threshold"], clear_threshold=fields.get("clear_threshold"))
    if rule_id is None:
        return AlertRule.objects.create(ticker=ticker, kind=kind, **fields)
    changed = AlertRule.objects.filter(id=rule_id, ticker=ticker).update(kind=kind, **fields)
    if changed != 1:
        raise NotFound(f"{symbol or fields.get('topic')} has no rule {rule_id}.", field="rule")
    return AlertRule.objects.get(id=rule_id)


def relabel_create(*, news_id: int, label: str, source: str) -> Relabel:
    """Store an analyst's label for a headline as a `sentiment` training example (who and when are kept)."""
    if label not in dict(LABELS):
        raise SuiteError(f"label must be one of {[k for k, _ in LABELS]}.", field="label")
    try:
        news = ScoredNews.objects.get(id=news_id)
    except ScoredNews.DoesNotExist:
        raise NotFound(f"Headline {news_id} does not exist.", field="news") from None
    return Relabel.objects.create(news=news, text=news.headline, label=label, previous_label=news.label, source=source)


def topic_relabel_create(*, news_id: int, topic: str, source: str) -> Relabel:
    """Store an analyst's topic for a headline as a `topic` training example (who and when are kept).

    The topic must be one the topic task knows (its champion's labels, else the default set), spelt as a name
    ("Earnings"; an id such as "5" or another case is turned into the name), so the training file has one label set.
    """
    from services.sentiment.topics import TOPIC_TASK, topic_name, topic_names_known

    known = topic_names_known()
    name = topic_name(topic) if isinstance(topic, str) else ""
    if name not in known:
        raise SuiteError(f"topic must be one of: {', '.join(known)} (got {str(topic)[:120]!r}).", field="topic")
    try:
        news = ScoredNews.objects.get(id=news_id)
    except ScoredNews.DoesNotExist:
        raise NotFound(f"Headline {news_id} does not exist.", field="news") from None
    previous = news.topics[0] if news.topics else ""
    return Relabel.objects.create(news=news, text=news.headline, label=name, previous_label=previous[:100],
                                  task=TOPIC_TASK, source=source)


def relabels_export(*, path: str | Path) -> int:
    """Write the relabels as a CSV (`text,label,source,created_at`) that `train_adapter --task sentiment` reads.

    The newest label wins when a headline was relabelled more than once.
    """
    latest: dict[str, Relabel] = {}
    for relabel in Relabel.objects.filter(task="sentiment").order_by("created_at", "id"):
        latest[relabel.text] = relabel
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "source", "created_at"])
        for r in latest.values():
            writer.writerow([r.text, r.label, r.source, r.created_at.isoformat()])
    return len(latest)
