"""WebSocket fuzzing: arbitrary frames (text, bytes, JSON of any shape) sent to every Channels consumer.

Used by `python -m pipelines.fuzz ws` (pipelines/fuzz.py) and tests/fuzz/test_fuzz_ws.py. Each live feed is opened
through the real ASGI application (config.asgi: origin check, auth, routing) as a user it lets in; Hypothesis draws
the frames (seeded). After every frame the consumer must answer an error frame or nothing: never crash, never close.
After the last frame a push through the channel layer must still arrive (the feed still works).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

HEADERS = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
FRAMES_PER_CONNECTION = 30
WAIT_S = 0.05  # how long a frame's answer is waited for; a consumer that ignores frames answers nothing


@dataclass(frozen=True)
class Feed:
    """One WebSocket endpoint, the user it is opened as, and the group a push reaches it through."""

    path: str
    user: Any
    group: str


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=4), max_leaves=12)


def frames_draw(*, cases: int, seed: int) -> list[dict[str, Any]]:
    """`cases` frames to send: the `text` or `bytes` of an ASGI websocket.receive message (empty ones too)."""
    frame = st.one_of(
        st.text(max_size=200).map(lambda text: {"text": text}),
        st.binary(max_size=200).map(lambda data: {"bytes": data}),
        _json_values().map(lambda value: {"text": json.dumps(value)}),
        st.sampled_from(["{", "[1,", "null", "NaN", "{\"type\": \"push\"}", "{\"event\": \"x\", \"data\": {}}",
                         "\x00", "9" * 5000, "[" * 2000 + "]" * 2000]).map(lambda text: {"text": text}),
    )
    frames: list[dict[str, Any]] = []

    @hypothesis_settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(frame)
    def collect(value: dict[str, Any]) -> None:
        frames.append(value)

    collect()
    return frames[:cases]


async def _feed_fuzz(*, feed: Feed, frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Open `feed`, send every frame, read what follows each; then check a push still arrives."""
    from channels.layers import get_channel_layer
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth.models import AnonymousUser

    from config.asgi import application

    communicator = WebsocketCommunicator(application, feed.path, headers=HEADERS)
    communicator.scope["user"] = feed.user if feed.user is not None else AnonymousUser()
    connected, code = await communicator.connect(timeout=10)
    if not connected:
        return {"feed": feed.path, "failures": [f"refused the connection ({code})"], "frames": 0}
    failures: list[str] = []
    answered = 0
    while not await communicator.receive_nothing(timeout=WAIT_S):  # the greeting (hello, snapshot)
        await communicator.receive_output(timeout=1)
    for sent, frame in enumerate(frames):
        try:
            await communicator.send_input({"type": "websocket.receive", **frame})
            while not await communicator.receive_nothing(timeout=WAIT_S):
                output = await communicator.receive_output(timeout=1)
                if output["type"] == "websocket.close":
                    raise RuntimeError(f"closed with code {output.get('code')}")
                answered += json.loads(output.get("text") or "{}").get("event") == "error"  # not a late greeting
        except Exception as exc:  # noqa: BLE001 - the consumer crashed on this frame: that is the finding
            failures.append(f"frame {sent} {str(frame)[:120]}: {type(exc).__name__}: {exc}"[:400])
            return {"feed": feed.path, "failures": failures, "frames": sent + 1, "answered": answered}
    await get_channel_layer().group_send(feed.group, {"type": "push", "event": "fuzz", "data": {"after": len(frames)}})
    try:
        pushed = await communicator.receive_json_from(timeout=5)
        if pushed != {"event": "fuzz", "data": {"after": len(frames)}}:
            failures.append(f"after the frames a push arrived as {pushed}")
    except Exception as exc:  # noqa: BLE001
        failures.append(f"after the frames a push did not arrive: {type(exc).__name__}: {exc}")
    await communicator.disconnect()
    return {"feed": feed.path, "failures": failures, "frames": len(frames), "answered": answered}


def ws_campaign(*, feeds: list[Feed], cases: int, seed: int) -> dict[str, Any]:
    """Fuzz every feed with about cases/len(feeds) frames each; {"cases", "crashes", "failures", "feeds"}."""
    from asgiref.sync import async_to_sync

    per_feed = max(1, cases // max(1, len(feeds)))
    results = []
    for index, feed in enumerate(feeds):
        frames = frames_draw(cases=per_feed, seed=seed * 101 + index)
        # A few seconds per connection: an in-process communicator held longer meets a channels_redis read
        # timeout that has nothing to do with the frames (seen at ~5 s), so long campaigns reconnect.
        for start in range(0, len(frames), FRAMES_PER_CONNECTION):
            results.append(async_to_sync(_feed_fuzz)(feed=feed, frames=frames[start:start + FRAMES_PER_CONNECTION]))
    failures = [f"{r['feed']}: {failure}" for r in results for failure in r["failures"]]
    feeds_seen: dict[str, dict[str, int]] = {}
    for r in results:
        seen = feeds_seen.setdefault(r["feed"], {"frames": 0, "answered": 0})
        seen["frames"] += r["frames"]
        seen["answered"] += r.get("answered", 0)
    return {"cases": sum(r["frames"] for r in results), "crashes": len(failures), "failures": failures,
            "feeds": feeds_seen}


def feeds_for(*, agent: Any, analyst: Any, admin: Any, chat_token: str) -> list[Feed]:
    """Every live feed of the suite, each opened as a user it lets in (the chat by its conversation token)."""
    from apps.core.live import SYSTEM_STATUS_GROUP
    from apps.support.live import CONSOLE_GROUP, chat_group
    from services.registry.live import OPS_GROUP
    from services.sentiment.live import SENTIMENT_GROUP

    return [Feed("/ws/status/", analyst, SYSTEM_STATUS_GROUP), Feed("/ws/sentiment/", analyst, SENTIMENT_GROUP),
            Feed("/ws/registry/ops/", admin, OPS_GROUP), Feed("/ws/support/console/", agent, CONSOLE_GROUP),
            Feed(f"/ws/support/chat/{chat_token}/", None, chat_group(chat_token))]
