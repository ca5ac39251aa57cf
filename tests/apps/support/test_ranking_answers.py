"""The ranking stage and shaped answers on a real knowledge base (hybrid retrieval, bag-of-words vectors)."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.support.answering import IntentGuess, question_answer
from services.support.knowledge import kb_ensure
from services.support.ranking import hits_rank
from services.support.retrieval import kb_search
from tests.helpers import run_json

pytestmark = pytest.mark.django_db

WARRANTY_FAQ = """question,answer,intent,title
What is the warranty on the backpack?,Our backpacks carry a lifetime warranty against seam failure.,warranty,Backpack warranty
How do I return an item?,Send it back within 30 days with the return label from your account.,returns,Returns
"""

XR200_GUIDE = """# XR-200 guide

## Warranty

The XR-200 is covered for two years against defects in materials and workmanship. Keep your receipt: the
warranty needs the date of purchase. Batteries are covered for one year, since they wear with use. Damage from
drops or water is not covered. To claim, open a ticket with the serial number printed under the speaker. We ship a
replacement once the faulty unit arrives at our workshop, usually within five working days.
"""


@pytest.fixture
def warranty_kb(bow_encoder, tmp_path: Path, settings):  # noqa: ANN001, ANN201
    settings.SUPPORT_CONFIDENCE_THRESHOLD = 0.45
    settings.SUPPORT_AMBIGUITY_MARGIN = 0.05
    faq = tmp_path / "faq.csv"
    faq.write_text(WARRANTY_FAQ, encoding="utf-8")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "xr200.md").write_text(XR200_GUIDE, encoding="utf-8")
    run_json("support_import", faq=str(faq), docs=str(docs), kb="shop", no_progress=True)
    return kb_ensure(name="shop")


def test_the_xr200_passage_beats_the_backpack_warranty_faq_of_the_predicted_intent(warranty_kb) -> None:  # noqa: ANN001
    question = "What is the warranty on the XR-200?"
    candidates = kb_search(kb=warranty_kb).candidates(text=question, n=10)
    assert {hit.item.title for hit in candidates} >= {"Backpack warranty", "XR-200 guide — Warranty"}  # hybrid found both
    intent = IntentGuess(label="warranty", prob=0.97, out_of_scope=False)
    ranked = hits_rank(question=question, hits=candidates, intent=intent)
    assert ranked[0].item.kind == "passage" and ranked[0].item.title == "XR-200 guide — Warranty"
    answer = question_answer(kb=warranty_kb, text=question)
    assert answer.reason == "answered" and answer.citations[0]["title"] == "XR-200 guide — Warranty"
    # The reply is the sentences that answer; the citation carries the whole passage ("read more").
    assert "two years" in answer.reply and "serial number" not in answer.reply
    assert answer.citations[0]["excerpt"] is True and "serial number" in answer.citations[0]["text"]


def test_an_faq_answer_is_its_answer_whole(warranty_kb) -> None:  # noqa: ANN001
    answer = question_answer(kb=warranty_kb, text="What is the warranty on the backpack?")
    assert answer.reply == "Our backpacks carry a lifetime warranty against seam failure."
    assert "excerpt" not in answer.citations[0]


def test_without_the_ranking_stage_the_fused_order_is_kept(warranty_kb) -> None:  # noqa: ANN001
    question = "What is the warranty on the XR-200?"
    raw = question_answer(kb=warranty_kb, text=question, rerank=False)
    fused = kb_search(kb=warranty_kb).candidates(text=question, n=10)
    assert [hit.item.id for hit in raw.hits] == [hit.item.id for hit in fused[:5]]
