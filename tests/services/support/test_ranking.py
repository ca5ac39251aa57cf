"""The ranking stage: specific terms weigh heavily, the predicted intent is one small signal, a learned scorer plugs in."""
from __future__ import annotations

import logging

import pytest

from services.errors import SuiteError
from services.support.answering import IntentGuess
from services.support.ranking import RankWeights, hits_rank, scorer_install, specific_terms
from services.support.retrieval import Hit, Item

BACKPACK = Item(id=2, kind="faq", pk=1, title="Backpack warranty", url="", location="FAQ",
                text="Our backpacks carry a lifetime warranty against seam failure.",
                question="What is the warranty on the backpack?", intent="warranty")
XR200 = Item(id=3, kind="passage", pk=1, title="XR-200 guide — Warranty", url="", location="section Warranty",
             text="The XR-200 is covered for two years against defects in materials and workmanship.")


def _no_signal(question, items):  # noqa: ANN001, ANN202, ARG001
    return [0.0] * len(items)


@pytest.fixture(autouse=True)
def _no_learned_scorer():  # noqa: ANN202
    scorer_install(_no_signal)  # not the default (the `rerank` champion, looked up in the registry): no learned signal
    yield
    scorer_install(None)


def test_specific_terms_are_codes_numbers_and_model_names() -> None:
    assert specific_terms(text="What is the warranty on the XR-200?") == {"xr200", "200"}
    assert "trailblazer" in specific_terms(text="Does the Trailblazer fit a laptop?")
    assert specific_terms(text="How do I reset my password?") == set()


def test_a_code_in_the_question_beats_an_faq_of_the_predicted_intent() -> None:
    # The FAQ is the closer sentence (it shares "warranty" and the question's shape) and has the predicted intent.
    hits = [Hit(item=BACKPACK, fused=0.033, dense=0.70, lexical=0.5), Hit(item=XR200, fused=0.032, dense=0.40, lexical=0.67)]
    intent = IntentGuess(label="warranty", prob=0.97, out_of_scope=False)
    ranked = hits_rank(question="What is the warranty on the XR-200?", hits=hits, intent=intent)
    assert ranked[0].item is XR200 and ranked[0].score > ranked[1].score


def test_the_predicted_intent_breaks_a_near_tie_but_never_overrides() -> None:
    other = Item(id=4, kind="faq", pk=2, title="Returns", url="", location="FAQ", text="Return within 30 days.",
                 question="How do I return a backpack?", intent="returns")
    close = [Hit(item=other, fused=0.03, dense=0.62, lexical=0.5), Hit(item=BACKPACK, fused=0.03, dense=0.60, lexical=0.5)]
    intent = IntentGuess(label="warranty", prob=0.9, out_of_scope=False)
    assert hits_rank(question="backpack warranty", hits=close, intent=intent)[0].item is BACKPACK
    far = [Hit(item=other, fused=0.03, dense=0.90, lexical=0.5), Hit(item=BACKPACK, fused=0.03, dense=0.40, lexical=0.5)]
    assert hits_rank(question="backpack warranty", hits=far, intent=intent)[0].item is other
    out_of_scope = IntentGuess(label="warranty", prob=0.9, out_of_scope=True)
    assert hits_rank(question="backpack warranty", hits=close, intent=out_of_scope)[0].item is other


def test_a_learned_scorer_plugs_in_as_question_and_candidates_to_scores(caplog: pytest.LogCaptureFixture) -> None:
    hits = [Hit(item=BACKPACK, fused=0.03, dense=0.6, lexical=0.5), Hit(item=XR200, fused=0.03, dense=0.6, lexical=0.5)]
    seen = []

    def prefers_passages(question, items):  # noqa: ANN001, ANN202
        seen.append((question, [item.id for item in items]))
        return [1.0 if item.kind == "passage" else 0.0 for item in items]

    assert hits_rank(question="warranty", hits=hits, scorer=prefers_passages)[0].item is XR200
    assert seen == [("warranty", [2, 3])]
    scorer_install(lambda question, items: [0.0] * len(items))  # noqa: ARG005
    assert hits_rank(question="warranty", hits=hits)[0].item is BACKPACK  # a tie keeps the fused order
    scorer_install(lambda question, items: [1.0])  # noqa: ARG005
    with caplog.at_level(logging.WARNING, logger="services.support.ranking"):  # a broken scorer: ranked without it
        assert [hit.item for hit in hits_rank(question="warranty", hits=hits)] == [BACKPACK, XR200]
    assert "returned 1 scores for 2 candidates" in caplog.text


def test_bad_weights_are_refused_naming_the_field() -> None:
    with pytest.raises(SuiteError) as caught:
        RankWeights(specific=-1)
    assert caught.value.field == "specific"
