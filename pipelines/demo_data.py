"""Demo data for `make demo`: labelled finance headlines to train the demo's sentiment adapter, and a
day of timestamped news (with a sentiment turn on one ticker) to replay through Kafka.

    python -m pipelines.demo_data train OUT.csv     # text,label
    python -m pipelines.demo_data news OUT.jsonl    # the news.raw message format

Made from templates with a fixed seed: small, deterministic and free of any outside data.
"""
from __future__ import annotations

import csv
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from services.output import json_line

COMPANIES = {  # symbol -> (name, aliases the watchlist matches)
    "AAPL": ("Apple Inc.", ["Apple"]),
    "MSFT": ("Microsoft Corporation", ["Microsoft"]),
    "TSLA": ("Tesla, Inc.", ["Tesla"]),
    "NVDA": ("NVIDIA Corporation", ["Nvidia", "NVIDIA"]),
    "AMZN": ("Amazon.com, Inc.", ["Amazon"]),
}
SOURCES = ["Reuters", "Bloomberg", "MarketWatch", "WSJ", "CNBC"]
EVENTS = {
    "positive": [
        "beats earnings estimates and raises full-year guidance", "shares surge after record quarterly revenue",
        "wins a multi-billion dollar government contract", "is upgraded to buy at Morgan Stanley",
        "announces a $20 billion share buyback", "posts stronger-than-expected margins",
        "raises its dividend by 10%", "sees demand jump for its new products", "stock hits an all-time high",
    ],
    "negative": [
        "misses revenue forecasts as demand slows", "shares plunge after the CEO resigns unexpectedly",
        "cuts its outlook and warns on profits", "faces a regulatory probe over accounting practices",
        "recalls vehicles over a safety defect", "is downgraded to sell on weak guidance",
        "lays off 10% of its workforce", "stock slides as margins shrink", "hit with a record antitrust fine",
    ],
    "neutral": [
        "schedules its annual shareholder meeting for May", "names a new chief financial officer",
        "files its quarterly report with the SEC", "to present at an investor conference next week",
        "completes a previously announced acquisition", "opens a new office in Dublin",
        "confirms the date of its next earnings call", "updates its board committee charters",
    ],
}
LABELS = list(EVENTS)


def _headline(rng: random.Random, symbol: str, label: str) -> str:
    name = rng.choice(COMPANIES[symbol][1])
    style = rng.random()
    event = rng.choice(EVENTS[label])
    if style < 0.3:
        return f"${symbol} {name} {event}"
    if style < 0.5:
        return f"{name} {event} - {rng.choice(SOURCES)}"
    return f"{name} {event}"


def train_rows(n: int = 300, *, seed: int = 1) -> list[tuple[str, str]]:
    """(text, label) pairs, labels balanced."""
    rng = random.Random(seed)
    return [(_headline(rng, rng.choice(list(COMPANIES)), LABELS[i % 3]), LABELS[i % 3]) for i in range(n)]


def news_messages(n: int = 400, *, seed: int = 2, now: datetime | None = None, turn_symbol: str = "TSLA") -> list[dict]:
    """A day of news.raw messages, oldest first; in the last hour `turn_symbol` turns sharply negative."""
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    day = now.replace(microsecond=0)
    messages = []
    for i in range(n):
        published = day - timedelta(seconds=rng.randint(0, 24 * 3600))
        symbol = rng.choice(list(COMPANIES))
        label = rng.choices(LABELS, weights=[3, 2, 5])[0]
        if symbol == turn_symbol and published > day - timedelta(hours=1):
            label = "negative"
        messages.append({"id": f"demo-{seed}-{i:05d}", "source": rng.choice(SOURCES), "published_at": published.isoformat(),
                         "headline": _headline(rng, symbol, label), "url": f"https://news.example.com/{seed}/{i}",
                         "tickers": [symbol]})
    for j in range(12):  # the turn: a burst of bad news on one name in the last hour
        published = day - timedelta(minutes=rng.randint(1, 55))
        messages.append({"id": f"demo-{seed}-turn-{j:03d}", "source": rng.choice(SOURCES), "published_at": published.isoformat(),
                         "headline": _headline(rng, turn_symbol, "negative"), "url": f"https://news.example.com/{seed}/turn/{j}",
                         "tickers": [turn_symbol]})
    messages.sort(key=lambda m: m["published_at"])
    return messages


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("train", "news"):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    if argv[0] == "train":
        with out.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *train_rows()])
    else:
        out.write_text("".join(json.dumps(m) + "\n" for m in news_messages()), encoding="utf-8")
    print(json_line({"file": str(out), "kind": argv[0]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
