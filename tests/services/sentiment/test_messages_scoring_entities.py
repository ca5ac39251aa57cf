"""Parsing `news.raw` messages, mapping model labels to a score, and finding tickers and topics."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from services.errors import SuiteError
from services.sentiment.entities import WatchEntry, cashtags_find, tickers_find, topics_find, watchlist_match
from services.sentiment.messages import MalformedMessage, news_decode
from services.sentiment.scoring import label_canonical, probs_score


def raw(**fields: object) -> bytes:
    base = {"id": "m1", "source": "wire", "published_at": "2026-01-05T10:00:00Z", "headline": "$AAPL beats estimates"}
    return json.dumps({**base, **fields}).encode()


def test_a_well_formed_message_becomes_a_news_item_with_an_aware_time() -> None:
    item = news_decode(raw(tickers=["$msft", "AAPL"], url="https://example.com/a"))
    assert item.id == "m1" and item.source == "wire" and item.headline == "$AAPL beats estimates"
    assert item.published_at == datetime(2026, 1, 5, 10, tzinfo=timezone.utc)
    assert item.tickers == ["AAPL", "MSFT"]


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "not a JSON object"),
    (raw(headline=""), "`headline` is missing"),
    (raw(id=None), "`id` is missing"),
    (raw(published_at="yesterday"), "`published_at`"),
    (raw(tickers=5), "`tickers`"),
    (None, "no value"),
])
def test_a_malformed_message_is_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason.replace("`", ".").replace("(", r"\(")):
        news_decode(value)


def test_the_score_is_p_positive_minus_p_negative_whatever_the_label_names() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])  # columns: bearish, bullish, neutral
    first, second = probs_score(probs=probs, label_names=["bearish", "bullish", "neutral"])
    assert first.label == "negative" and first.score == pytest.approx(0.2 - 0.7)
    assert second.label == "neutral" and second.score == pytest.approx(0.0)
    numeric = probs_score(probs=np.array([[0.1, 0.6, 0.3]]), label_names=["0", "1", "2"])[0]
    assert numeric.label == "positive" and numeric.p_negative == pytest.approx(0.1) and numeric.score == pytest.approx(0.5)


def test_an_unknown_label_name_is_refused_with_advice() -> None:
    assert label_canonical("Bullish") == "positive"
    with pytest.raises(SuiteError, match="retrain"):
        label_canonical("spam")


def test_cashtags_watchlist_aliases_and_the_message_list_make_the_tickers() -> None:
    watchlist = [WatchEntry("AAPL", ("AAPL", "Apple Inc", "Apple")), WatchEntry("TSLA", ("TSLA", "Tesla"))]
    text = "Apple and $msft rally; pineapple prices flat; cost $5"
    assert cashtags_find(text) == ["MSFT"]
    assert watchlist_match(text=text, watchlist=watchlist) == ["AAPL"]  # "pineapple" is not Apple
    assert tickers_find(text=text, given=["NVDA"], watchlist=watchlist) == ["AAPL", "MSFT", "NVDA"]
    assert topics_find("Acme cuts dividend after CEO resigns") == ["dividends", "management"]
