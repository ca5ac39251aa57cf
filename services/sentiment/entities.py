"""Tickers and topics of a headline: cashtags ($AAPL), the message's own list and the watchlist's names and aliases."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z]{1,6}(?:\.[A-Za-z]{1,2})?)\b")

# Small keyword lists: enough to filter and group headlines; a model can replace them later.
TOPICS = {
    "earnings": ["earnings", "revenue", "profit", "quarterly", "guidance", "eps", "forecast"],
    "deals": ["merger", "acquisition", "acquire", "acquires", "takeover", "buyout", "deal"],
    "legal": ["lawsuit", "probe", "investigation", "regulator", "fine", "sec", "antitrust"],
    "ratings": ["upgrade", "downgrade", "upgraded", "downgraded", "rating", "target"],
    "management": ["ceo", "cfo", "resigns", "appoints", "names", "chief"],
    "dividends": ["dividend", "buyback", "repurchase"],
}


@dataclass(frozen=True)
class WatchEntry:
    symbol: str
    names: tuple[str, ...]  # the company's name and aliases


def cashtags_find(text: str) -> list[str]:
    """Symbols written as cashtags in `text`, upper-cased, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in CASHTAG.finditer(text):
        seen.setdefault(match.group(1).upper(), None)
    return list(seen)


def watchlist_match(*, text: str, watchlist: Iterable[WatchEntry]) -> list[str]:
    """Symbols of watchlist entries whose name or alias appears in `text` as whole words (case-insensitive)."""
    found = []
    for entry in watchlist:
        for name in entry.names:
            if name and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags=re.IGNORECASE):
                found.append(entry.symbol)
                break
    return found


def tickers_find(*, text: str, given: Iterable[str], watchlist: Iterable[WatchEntry]) -> list[str]:
    """Every symbol a headline is about: the message's list, its cashtags and watchlist matches, sorted."""
    return sorted({*given, *cashtags_find(text), *watchlist_match(text=text, watchlist=watchlist)})


def topics_find(text: str) -> list[str]:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return sorted(topic for topic, keys in TOPICS.items() if words.intersection(keys))
