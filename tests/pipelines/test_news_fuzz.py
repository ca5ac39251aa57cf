"""Hypothesis: whatever bytes arrive on `news.raw`, decoding refuses with a reason or accepts, and a batch ends
with every record stored or dead-lettered: never another error, never a good message lost.

Bounded and seeded (derandomize) so `make test` runs the same few hundred cases every time; run more with
HYPOTHESIS_PROFILE=long (see the profile below).
"""
from __future__ import annotations

import itertools
import json
import os
import string
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from apps.sentiment.models import ScoredNews
from pipelines.news_consumer import ConsumeStats, batch_process
from services.sentiment.bus import Topics
from services.sentiment.messages import MalformedMessage, NewsItem, news_decode
from tests.pipelines.conftest import ProducerCapture, record_make, words_classify

settings.register_profile("bounded", max_examples=200, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.register_profile("long", parent=settings.get_profile("bounded"), max_examples=5000)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "bounded"))

_ids = itertools.count()

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10 ** 300, max_value=10 ** 1000),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=50), st.text(min_size=150, max_size=400))
any_json = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                        max_leaves=12)
times = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=40),
                  st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: d.isoformat()),
                  st.sampled_from(["9999-12-31T23:59:59", "0001-01-01T00:00:00", "1e20", "-1e20", "NaN"]))
message_like = st.fixed_dictionaries({"id": st.one_of(st.text(max_size=250), st.integers(), any_json),
                                      "source": st.one_of(st.text(max_size=120), any_json),
                                      "published_at": times, "headline": st.one_of(st.text(max_size=2100), any_json)},
                                     optional={"tickers": st.one_of(st.lists(st.text(max_size=25), max_size=60), any_json),
                                               "url": st.one_of(st.text(max_size=1100), any_json),
                                               "body": st.one_of(st.text(max_size=200), any_json)})


def _dumped(value: object) -> bytes:
    try:
        return json.dumps(value).encode("utf-8", errors="surrogatepass")
    except ValueError:  # an int Python will not print (over 4,300 digits)
        return b'{"id": 1}'


raw_values = st.one_of(
    st.none(),
    st.binary(max_size=300),
    any_json.map(_dumped),
    message_like.map(_dumped),
    st.integers(min_value=1, max_value=50_000).map(lambda depth: b'{"id": ' + b"[" * depth + b"]" * depth + b"}"),
    st.integers(min_value=4300, max_value=6000).map(lambda n: b'{"id": ' + b"9" * n + b"}"),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", errors="surrogatepass")),
)

words = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120).filter(str.strip)
good_messages = st.builds(
    lambda headline, at, tickers: {"id": f"good-{next(_ids)}", "source": "fuzz", "published_at": at.isoformat(),
                                   "headline": headline, "tickers": tickers},
    words, st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
    st.lists(st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=20), max_size=5))


@PROFILE
@given(raw=raw_values)
def test_decoding_any_value_gives_an_item_or_a_reason(raw: bytes | None) -> None:
    try:
        item = news_decode(raw, received_at=datetime.now(timezone.utc))
    except MalformedMessage as exc:
        assert exc.message
    else:
        assert isinstance(item, NewsItem) and item.id and item.headline


@pytest.mark.django_db
@settings(PROFILE, max_examples=min(PROFILE.max_examples, 100))
@given(hostile=st.lists(raw_values, max_size=6), good=st.lists(good_messages, min_size=1, max_size=4), data=st.data())
def test_a_batch_of_anything_stores_every_good_message_once_and_dead_letters_the_rest(hostile, good, data) -> None:  # noqa: ANN001
    values = [json.dumps(g).encode() for g in good] + hostile
    order = data.draw(st.permutations(range(len(values))))
    # The producer sets the key and the record's CreateTime too: any bytes, any 64-bit time.
    keys = data.draw(st.lists(st.one_of(st.none(), st.binary(max_size=2000)), min_size=len(values), max_size=len(values)))
    stamps = data.draw(st.lists(st.one_of(st.none(), st.integers(-2 ** 63, 2 ** 63 - 1)), min_size=len(values),
                                max_size=len(values)))
    records = [record_make(values[i], offset=n, key=keys[n], timestamp=stamps[n]) for n, i in enumerate(order)]
    producer, stats = ProducerCapture(), ConsumeStats()
    batch_process(records=records, producer=producer, topics=Topics.named("fuzz"), classify=words_classify, stats=stats)

    dead = producer.sent.get("fuzz.dlq", [])
    assert all(d["reason"] for d in dead)
    assert sorted(d["offset"] for d in dead) == sorted({d["offset"] for d in dead})  # each at most once
    good_ids = [g["id"] for g in good]
    assert ScoredNews.objects.filter(message_id__in=good_ids).count() == len(good_ids)  # no good message lost
    scored_ids = {v["id"] for v in producer.sent.get("fuzz.scored", [])}
    assert set(good_ids) <= scored_ids
    dead_offsets = {d["offset"] for d in dead}
    for record in records:  # every record accounted for: dead-lettered, or decodable and published as scored
        if record.offset not in dead_offsets:
            assert str(news_decode(record.value).id) in scored_ids
