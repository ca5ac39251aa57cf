"""The anonymous customer API under abuse: spoofed addresses, proxies, per-conversation limits, repeated ratings."""
from __future__ import annotations

import secrets

import pytest

from apps.support.models import Feedback, KnowledgeGap, TrainingExample

pytestmark = pytest.mark.django_db


def _address() -> str:
    """A fresh public-looking address, so the throttle counts of earlier runs (kept in Redis) never interfere."""
    return f"198.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"


def _ask(client, text: str = "hi", conversation: str | None = None, **meta: str) -> int:  # noqa: ANN001
    body = {"text": text, **({"conversation": conversation} if conversation else {})}
    return client.post("/api/support/messages", body, content_type="application/json", **meta).status_code


@pytest.fixture
def desk(settings):  # noqa: ANN001, ANN201
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    settings.SUPPORT_CUSTOMER_RATE = "2/minute"
    settings.SUPPORT_CONVERSATION_RATE = "1000/minute"
    settings.SUITE_TRUSTED_PROXIES = []
    return settings


def test_a_random_x_forwarded_for_per_request_does_not_escape_the_address_throttle(tiny_encoder, desk, client) -> None:  # noqa: ANN001
    peer = _address()
    codes = [_ask(client, REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=_address()) for _ in range(3)]
    assert codes == [201, 201, 429]


def test_behind_a_trusted_proxy_each_customer_has_their_own_bucket(tiny_encoder, desk, client) -> None:  # noqa: ANN001
    desk.SUITE_TRUSTED_PROXIES = ["10.77.0.0/16", "10.78.0.5"]
    proxy = {"REMOTE_ADDR": "10.77.0.1"}
    alice, bob = _address(), _address()
    # The second proxy hop (10.78.0.5) is trusted too: the client is the right-most untrusted address.
    assert [_ask(client, HTTP_X_FORWARDED_FOR=f"{alice}, 10.78.0.5", **proxy) for _ in range(2)] == [201, 201]
    assert _ask(client, HTTP_X_FORWARDED_FOR=bob, **proxy) == 201
    # Alice writing her own X-Forwarded-For only adds addresses to the left of the one the proxy saw.
    assert _ask(client, HTTP_X_FORWARDED_FOR=f"{_address()}, {alice}", **proxy) == 429
    # A peer that is not a trusted proxy is the client, whatever it forwards.
    stranger = _address()
    assert [_ask(client, REMOTE_ADDR=stranger, HTTP_X_FORWARDED_FOR=_address()) for _ in range(3)] == [201, 201, 429]


def test_one_conversation_is_limited_whatever_address_it_comes_from(tiny_encoder, desk, client) -> None:  # noqa: ANN001
    desk.SUPPORT_CUSTOMER_RATE = "1000/minute"
    desk.SUPPORT_CONVERSATION_RATE = "2/minute"
    first = client.post("/api/support/messages", {"text": "hi"}, content_type="application/json", REMOTE_ADDR=_address())
    token = first.json()["conversation"]
    codes = [_ask(client, conversation=token, REMOTE_ADDR=_address()) for _ in range(3)]
    assert codes == [201, 201, 429]  # the first message had no token yet: the count starts with the second
    throttled = client.get(f"/api/support/conversations/{token}/messages", REMOTE_ADDR=_address())
    assert throttled.status_code == 429 and throttled.json()["error"] == "throttled"
    assert _ask(client, REMOTE_ADDR=_address()) == 201  # another conversation is not affected


@pytest.fixture
def answered(fixture_kb, desk, client) -> dict:  # noqa: ANN001
    desk.SUPPORT_CUSTOMER_RATE = "1000/minute"
    body = client.post("/api/support/messages", {"text": "What is your refund policy?"}, content_type="application/json").json()
    assert body["intent"] == "refund" and not body["handoff"]
    return body


def _rate(client, answered: dict, rating: str):  # noqa: ANN001, ANN202
    return client.post("/api/support/feedback", {"conversation": answered["conversation"], "message": answered["message"],
                                                  "rating": rating}, content_type="application/json")


def test_an_answer_is_rated_once_and_a_customer_rating_is_not_training_data(answered, client) -> None:  # noqa: ANN001
    assert _rate(client, answered, "up").status_code == 201
    again = _rate(client, answered, "up")
    assert again.status_code == 409 and again.json()["field"] == "message"
    assert _rate(client, answered, "down").status_code == 409  # changing one's mind is not a second vote either
    assert Feedback.objects.filter(message_id=answered["message"]).count() == 1
    assert not TrainingExample.objects.exists()  # an anonymous thumbs-up labels nothing


def test_a_thumbs_down_opens_a_gap_but_labels_nothing(answered, client) -> None:  # noqa: ANN001
    assert _rate(client, answered, "down").status_code == 201
    assert KnowledgeGap.objects.filter(reason="thumbs_down").count() == 1
    assert not TrainingExample.objects.exists()


def test_an_agent_confirming_the_answer_makes_the_question_an_intent_example(answered, client, role_users) -> None:  # noqa: ANN001
    _rate(client, answered, "up")
    client.force_login(role_users["support_agent"])
    assert client.post(f"/api/support/console/messages/{answered['message']}/right").status_code == 201
    example = TrainingExample.objects.get()
    assert (example.text, example.label, example.source) == ("What is your refund policy?", "refund", "agent_confirmed")
    assert client.post(f"/api/support/console/messages/{answered['message']}/wrong").status_code == 201  # agents may still correct
    assert TrainingExample.objects.filter(source="agent_marked_wrong", rejected="refund").count() == 1
    client.logout()
    assert client.post(f"/api/support/console/messages/{answered['message']}/right").status_code in (401, 403)
