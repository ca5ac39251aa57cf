"""Events' and items' times: ISO 8601 or Unix seconds, as a number or as text (as public data sets write them)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.errors import SuiteError
from services.recommender.catalog import event_clean, item_clean

MOMENT = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


@pytest.mark.parametrize("timestamp", ["1700000000", 1700000000, 1700000000.0, "2023-11-14T22:13:20Z", "2023-11-14 22:13:20"])
def test_an_event_time_is_iso_8601_or_unix_seconds_as_text_or_number(timestamp: object) -> None:
    assert event_clean({"user_id": "u1", "item_id": "a1", "timestamp": timestamp})["timestamp"] == MOMENT


def test_an_item_update_time_follows_the_same_rule_and_a_bad_time_names_the_field() -> None:
    assert item_clean({"id": "a1", "updated_at": "1700000000"})["updated_at"] == MOMENT
    with pytest.raises(SuiteError, match="ISO 8601 date-time or epoch seconds") as caught:
        event_clean({"user_id": "u1", "item_id": "a1", "timestamp": "last tuesday"})
    assert caught.value.field == "timestamp"
