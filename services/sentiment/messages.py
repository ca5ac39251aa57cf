"""The `news.raw` message: parsing and validation, with a reason for every refusal (it goes to `news.dlq`).

Every limit a database would enforce is checked here first, so a message that cannot be stored is refused
with its reason on SQLite and PostgreSQL alike (and never fails the batch it came in): the length of each
text against its model field's `max_length`, text PostgreSQL cannot hold (NUL, lone surrogates), numbers
that are not finite, and times outside [1970, now + NEWS_FUTURE_TOLERANCE_S].

Future-dated headlines are CLAMPED, not refused: a `published_at` more than NEWS_FUTURE_TOLERANCE_S ahead of
the time the consumer received the message is replaced by that time (the headline is still scored and
counted, in the minute it arrived; the original is kept on the NewsItem as `published_at_given` and in the
`news.scored` message, and logged). A far-future row would otherwise become its ticker's newest headline and
move every alert window of that ticker past all real news.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from services.errors import SuiteError
from services.timeparse import time_parse

log = logging.getLogger("services.sentiment.messages")

MAX_HEADLINE = 2000  # the headline is a TextField: a limit of ours (a headline is a line, not an article)
MAX_BODY = 10000
MAX_TICKERS = 50  # symbols given in one message; more is not a headline about them
MAX_MESSAGE_BYTES = 1_000_000  # Kafka's default largest message; a bigger value is refused before parsing
OLDEST = datetime(1970, 1, 1, tzinfo=timezone.utc)  # before this a time is a mistake (and window maths overflow)
DEFAULT_FUTURE_TOLERANCE_S = 300.0


class MalformedMessage(SuiteError):
    """A message that cannot be scored; its message says why."""


@dataclass(frozen=True)
class NewsItem:
    id: str
    source: str
    published_at: datetime  # timezone-aware (UTC when the message gave none)
    headline: str
    body: str = ""
    url: str = ""
    tickers: list[str] = field(default_factory=list)  # symbols as given, upper-cased, without '$'
    published_at_given: datetime | None = None  # the message's own time when it was clamped (future-dated)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["published_at"] = self.published_at.isoformat()
        out["published_at_given"] = self.published_at_given.isoformat() if self.published_at_given else None
        return out


@lru_cache(maxsize=1)
def field_limits() -> dict[str, int]:
    """max_length of every column a message's text lands in, read from the models so the two never drift.

    `ticker` is the smallest column a symbol is written to (NewsTicker.symbol, Bucket.scope, Alert.symbol).
    """
    from apps.sentiment.models import Alert, Bucket, NewsTicker, ScoredNews

    def length(model: Any, name: str) -> int:
        return int(model._meta.get_field(name).max_length)

    return {"id": length(ScoredNews, "message_id"), "source": length(ScoredNews, "source"),
            "url": length(ScoredNews, "url"),
            "ticker": min(length(NewsTicker, "symbol"), length(Bucket, "scope"), length(Alert, "symbol"))}


def future_tolerance() -> timedelta:
    """NEWS_FUTURE_TOLERANCE_S (seconds a headline may be dated ahead of its arrival before it is clamped)."""
    from django.conf import settings

    return timedelta(seconds=getattr(settings, "NEWS_FUTURE_TOLERANCE_S", DEFAULT_FUTURE_TOLERANCE_S))


def text_storable(value: str, *, name: str) -> str:
    """`value` unless a database cannot store it: NUL characters (PostgreSQL) and lone surrogates (no UTF-8)."""
    if "\x00" in value:
        raise MalformedMessage(f"`{name}` contains a NUL character.", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedMessage(f"`{name}` contains an unpaired surrogate (\\ud800-\\udfff), which is not text.",
                               field=name) from None
    return value


def published_parse(value: Any) -> datetime:
    """An ISO 8601 string or Unix seconds (a number or its text) → an aware datetime (naive ones are taken as UTC)."""
    try:
        parsed = time_parse(value)
    except (ValueError, OverflowError):
        if isinstance(value, str) and value.strip():
            shown = value if len(value) <= 60 else value[:60] + "…"
            raise MalformedMessage(f"`published_at` {shown!r} is not an ISO 8601 time or Unix seconds.",
                                   field="published_at") from None
        raise MalformedMessage("`published_at` must be an ISO 8601 time or Unix seconds.",
                               field="published_at") from None
    if parsed < OLDEST:
        raise MalformedMessage(f"`published_at` {parsed.isoformat()} is before 1970.", field="published_at")
    return parsed


def _text(data: dict[str, Any], key: str, *, required: bool, limit: int) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise MalformedMessage(f"`{key}` is missing or empty.", field=key)
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MalformedMessage(f"`{key}` must be a string.", field=key)
    if isinstance(value, int) and abs(value) >= 10 ** limit:  # str() of a 5,000-digit int raises, and is too long
        raise MalformedMessage(f"`{key}` is longer than {limit} characters.", field=key)
    value = str(value).strip()
    if required and not value:
        raise MalformedMessage(f"`{key}` is missing or empty.", field=key)
    if len(value) > limit:
        raise MalformedMessage(f"`{key}` is longer than {limit} characters.", field=key)
    return text_storable(value, name=key)


def _tickers(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):  # "AAPL, MSFT" or "AAPL MSFT" in CSV files
        value = value.replace(",", " ").split()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise MalformedMessage("`tickers` must be a list of symbols.", field="tickers")
    if len(value) > MAX_TICKERS:
        raise MalformedMessage(f"`tickers` lists {len(value)} symbols; at most {MAX_TICKERS}.", field="tickers")
    limit = field_limits()["ticker"]
    symbols = {text_storable(t, name="tickers").strip().lstrip("$").upper() for t in value}
    for symbol in symbols:
        if len(symbol) > limit:
            raise MalformedMessage(f"`tickers`: {symbol[:40]!r} is longer than {limit} characters.", field="tickers")
    return sorted(s for s in symbols if s)


def news_parse(data: dict[str, Any], *, received_at: datetime | None = None) -> NewsItem:
    """A validated NewsItem from a decoded message; MalformedMessage names the bad field.

    1. Check each field's type and its column's limits (derived from the models).
    2. With `received_at`, a `published_at` more than NEWS_FUTURE_TOLERANCE_S after it is clamped to it.
    """
    if not isinstance(data, dict):
        raise MalformedMessage("The message is not a JSON object.")
    limits = field_limits()
    published = published_parse(data.get("published_at"))
    given = None
    if received_at is not None and published > received_at + future_tolerance():
        given, published = published, received_at
    item = NewsItem(
        id=_text(data, "id", required=True, limit=limits["id"]),
        source=_text(data, "source", required=True, limit=limits["source"]),
        published_at=published,
        headline=_text(data, "headline", required=True, limit=MAX_HEADLINE),
        body=_text(data, "body", required=False, limit=MAX_BODY),
        url=_text(data, "url", required=False, limit=limits["url"]),
        tickers=_tickers(data.get("tickers")),
        published_at_given=given,
    )
    if given is not None:
        log.warning("message %s is dated %s, beyond the future tolerance; clamped to %s",
                    item.id, given.isoformat(), published.isoformat())
    return item


def _constant_refuse(name: str) -> float:
    raise MalformedMessage(f"The message holds {name}, which is not JSON.")


def _float_finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise MalformedMessage(f"The number {text[:40]} is out of range.")
    return value


def news_decode(raw: bytes | None, *, received_at: datetime | None = None) -> NewsItem:
    """Bytes from `news.raw` → NewsItem, or MalformedMessage saying why not (never any other error).

    1. Refuse no value, more than MAX_MESSAGE_BYTES, and bytes that are not UTF-8.
    2. Parse strict JSON: NaN/Infinity, out-of-range numbers, integers too long to convert and nesting
       deeper than the parser can follow are refused.
    3. Validate the object (news_parse); with `received_at`, clamp a future-dated headline.
    """
    if raw is None:
        raise MalformedMessage("The message has no value.")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"The message is {len(raw)} bytes; at most {MAX_MESSAGE_BYTES}.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("The message is not UTF-8.") from None
    try:
        data = json.loads(text, parse_constant=_constant_refuse, parse_float=_float_finite)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"The message is not JSON ({exc.msg} at character {exc.pos}).") from None
    except RecursionError:
        raise MalformedMessage("The message's JSON is nested too deeply.") from None
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's int-to-str limit)
        raise MalformedMessage(f"The message holds a number that is too long ({str(exc)[:80]}).") from None
    try:
        return news_parse(data, received_at=received_at)
    except RecursionError:  # a deeply nested value in a field we look into
        raise MalformedMessage("The message's JSON is nested too deeply.") from None
