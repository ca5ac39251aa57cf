"""Arbitrary WebSocket frames to every Channels consumer: an error frame or nothing, never a crash or a close."""
from __future__ import annotations

import pytest

from pipelines.fuzz_ws import feeds_for, frames_draw, ws_campaign


@pytest.mark.django_db(transaction=True)
def test_no_frame_crashes_or_closes_a_live_feed_and_pushes_still_arrive(role_users: dict) -> None:
    from apps.support.models import Conversation, KnowledgeBase

    chat = Conversation.objects.create(kb=KnowledgeBase.objects.create(name="fuzz-kb"))
    feeds = feeds_for(agent=role_users["support_agent"], analyst=role_users["risk_analyst"], admin=role_users["admin"],
                      chat_token=chat.token)
    report = ws_campaign(feeds=feeds, cases=150, seed=0)
    assert report["failures"] == [], "\n".join(report["failures"])
    assert report["cases"] >= 140 and set(report["feeds"]) == {feed.path for feed in feeds}
    # every feed answered the frames it cannot use (an error frame each), so the client can tell
    assert all(feed["answered"] == feed["frames"] for feed in report["feeds"].values()), report["feeds"]


def test_the_frames_are_seeded_and_mix_text_bytes_and_json() -> None:
    frames = frames_draw(cases=60, seed=3)
    assert frames == frames_draw(cases=60, seed=3) and len(frames) == 60
    assert any("bytes" in f for f in frames) and any("text" in f for f in frames)
