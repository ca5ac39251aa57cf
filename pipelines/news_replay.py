"""Replay a tabular file of headlines (CSV, TSV or JSON Lines: services.tabular) into `news.raw` (demos and load tests).

    python manage.py news_replay --file headlines.csv [--rate 50] [--send-invalid]

Columns/keys: `headline` (or `text`), optional `id`, `source`, `published_at`, `body`, `url`, `tickers`.
A missing id is a hash of the row (so a second replay of the same file is deduplicated downstream), a
missing source is the file's name, a missing time is the moment of sending. The whole file is checked
before anything is sent; errors name the line.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from services.errors import SuiteError
from services.sentiment.bus import Topics, producer_make, topics_default
from services.sentiment.messages import MalformedMessage, news_parse
from services.tabular import KEEP, table_open

MAX_REPORTED = 5  # line errors listed in one message


@dataclass(frozen=True)
class ReplayLine:
    line: int
    value: dict[str, Any] | None  # the message to send
    raw: str  # the line as read (sent as-is when invalid and --send-invalid)
    error: str = ""  # "file:line: what is wrong"


def _row_complete(row: dict[str, Any], *, source: str) -> dict[str, Any]:
    row = dict(row)  # names are already stripped and lowercased by the reader
    if not row.get("headline") and row.get("text"):
        row["headline"] = row.pop("text")
    row.setdefault("source", source)
    if not row.get("source"):
        row["source"] = source
    if not row.get("id") and row.get("headline"):
        digest = hashlib.sha1(f"{row['source']}|{row.get('published_at', '')}|{row['headline']}".encode()).hexdigest()
        row["id"] = f"{row['source']}:{digest[:16]}"
    if not row.get("published_at"):
        row["published_at"] = None  # filled at send time
    kept = {k: row[k] for k in ("id", "source", "headline", "body", "url", "tickers") if row.get(k) not in (None, "")}
    kept["published_at"] = row.get("published_at") or None
    return kept


def _check(row: dict[str, Any]) -> str:
    try:
        news_parse({**row, "published_at": row["published_at"] or datetime.now(timezone.utc).isoformat()})
    except MalformedMessage as exc:
        return exc.message
    return ""


def replay_lines(path: Path) -> list[ReplayLine]:
    """Each record of a tabular file (services.tabular, KEEP policy) with its line number, completed and checked."""
    table = table_open(path=path, policy=KEEP, required=(("headline", "text"),), field="file")
    lines = []
    for row in table:
        completed = _row_complete(row.values, source=path.stem)
        error = _check(completed)
        if error:
            table.refuse(row.line, error, text=json.dumps(row.values))
        else:
            lines.append(ReplayLine(row.line, completed, json.dumps(row.values)))
    lines += [ReplayLine(bad.line, None, bad.text, str(bad)) for bad in table.refused]
    return sorted(lines, key=lambda line: line.line)


def news_replay(*, path: str | Path, rate: float | None = None, topics: Topics | None = None,
                send_invalid: bool = False) -> dict[str, Any]:
    """Send every record of `path` to `topics.raw`, keyed by source, at most `rate` per second.

    1. Read and check the whole file; unless `send_invalid`, refuse it naming the bad lines.
    2. Produce (invalid lines as their raw text, for DLQ demos), flush, report counts.
    """
    path = Path(path)
    topics = topics or topics_default()
    lines = replay_lines(path)
    bad = [line for line in lines if line.error]
    if bad and not send_invalid:
        listed = "; ".join(line.error for line in bad[:MAX_REPORTED])
        more = f" (and {len(bad) - MAX_REPORTED} more)" if len(bad) > MAX_REPORTED else ""
        raise SuiteError(f"{path}: {len(bad)} invalid record(s), nothing sent. {listed}{more}", field="file")
    producer = producer_make()
    started = time.monotonic()
    try:
        for i, line in enumerate(lines):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if line.error or line.value is None:
                producer.send(topics.raw, key=path.stem, value=line.raw.encode("utf-8"))
                continue
            value = dict(line.value)
            value["published_at"] = value["published_at"] or datetime.now(timezone.utc).isoformat()
            producer.send(topics.raw, key=str(value["source"]), value=value)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return {"file": str(path), "sent": len(lines), "invalid": len(bad), "topic": topics.raw,
            "seconds": round(time.monotonic() - started, 3)}
