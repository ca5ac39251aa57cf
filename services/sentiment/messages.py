"""The `news.raw` message: parsing and validation, with a reason for every refusal (it goes to `news.dlq`)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from services.errors import SuiteError
from services.timeparse import time_parse

MAX_ID = 200
MAX_HEADLINE = 2000


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

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["published_at"] = self.published_at.isoformat()
        return out


def published_parse(value: Any) -> datetime:
    """An ISO 8601 string or Unix seconds (a number or its text) → an aware datetime (naive ones are taken as UTC)."""
    try:
        return time_parse(value)
    except ValueError:
        if isinstance(value, str) and value.strip():
            raise MalformedMessage(f"`published_at` {value!r} is not an ISO 8601 time or Unix seconds.",
                                   field="published_at") from None
        raise MalformedMessage("`published_at` must be an ISO 8601 time or Unix seconds.",
                               field="published_at") from None


def _text(data: dict[str, Any], key: str, *, required: bool, limit: int = 10000) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise MalformedMessage(f"`{key}` is missing or empty.", field=key)
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MalformedMessage(f"`{key}` must be a string.", field=key)
    value = str(value).strip()
    if required and not value:
        raise MalformedMessage(f"`{key}` is missing or empty.", field=key)
    if len(value) > limit:
        raise MalformedMessage(f"`{key}` is longer than {limit} characters.", field=key)
    return value


def _tickers(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):  # "AAPL, MSFT" or "AAPL MSFT" in CSV files
        value = value.replace(",", " ").split()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise MalformedMessage("`tickers` must be a list of symbols.", field="tickers")
    return sorted({t.strip().lstrip("$").upper() for t in value if t.strip().lstrip("$")})


def news_parse(data: dict[str, Any]) -> NewsItem:
    """A validated NewsItem from a decoded message; MalformedMessage names the bad field."""
    if not isinstance(data, dict):
        raise MalformedMessage("The message is not a JSON object.")
    return NewsItem(
        id=_text(data, "id", required=True, limit=MAX_ID),
        source=_text(data, "source", required=True, limit=100),
        published_at=published_parse(data.get("published_at")),
        headline=_text(data, "headline", required=True, limit=MAX_HEADLINE),
        body=_text(data, "body", required=False),
        url=_text(data, "url", required=False, limit=1000),
        tickers=_tickers(data.get("tickers")),
    )


def news_decode(raw: bytes | None) -> NewsItem:
    """Bytes from `news.raw` → NewsItem, or MalformedMessage saying why not."""
    if raw is None:
        raise MalformedMessage("The message has no value.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedMessage("The message is not UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"The message is not JSON ({exc.msg} at character {exc.pos}).") from None
    return news_parse(data)
