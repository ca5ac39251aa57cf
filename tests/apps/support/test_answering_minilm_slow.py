"""The packaged all-MiniLM-L6-v2 with the default threshold: paraphrases are answered, unrelated questions handed off."""
from __future__ import annotations

import pytest

from services.support.answering import question_answer
from services.support.knowledge import kb_ensure
from tests.helpers import run_json

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def minilm_kb(settings, kb_files, tmp_path):  # noqa: ANN001, ANN201
    from services.registry.serving import serving_reset
    from services.registry.versions import base_default_ensure
    from services.support.retrieval import searches_reset

    settings.VAR_DIR = tmp_path / "var"
    settings.SUPPORT_EMBED_TASK = ""
    assert base_default_ensure().name == "all-minilm-l6-v2"
    serving_reset()
    searches_reset()
    run_json("support_import", faq=str(kb_files["faq"]), docs=str(kb_files["docs"]), no_progress=True)
    yield kb_ensure(name="default")
    serving_reset()
    searches_reset()


def test_paraphrases_are_answered_and_unrelated_questions_handed_off(minilm_kb, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45  # the shipped default
    forgot = question_answer(kb=minilm_kb, text="I forgot my login password, how can I change it?")
    assert not forgot.handoff and forgot.citations[0]["title"] == "Reset your password"
    money = question_answer(kb=minilm_kb, text="When do I get my money back after sending an item back?")
    assert not money.handoff and money.citations[0]["title"] == "Refunds"
    router = question_answer(kb=minilm_kb, text="how to factory reset the QZ-77")
    assert not router.handoff and router.citations[0]["location"] == "section Factory reset"
    for unrelated in ("What's the weather like in Paris tomorrow?", "Tell me a joke about cats"):
        answer = question_answer(kb=minilm_kb, text=unrelated)
        assert answer.handoff and answer.reason == "low_confidence", (unrelated, answer.confidence)
