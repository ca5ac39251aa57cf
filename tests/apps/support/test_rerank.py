"""The `rerank` task: pairs built from the knowledge base and feedback, trained and gated by the retraining loop, and
served as the ranking stage's learned scorer whenever it has a champion."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from apps.registry.models import Alias, RetrainRun
from apps.support.models import Feedback, KnowledgeGap
from services.errors import NotFound
from services.ml.runtime import ClassifyOutput
from services.support import conversations
from services.support.answering import question_answer
from services.support.knowledge import kb_ensure
from services.support.ranking import WEIGHTS, hits_rank, scorer_install, specific_share, specific_terms
from services.support.rerank import (
    HARD_NEGATIVES,
    IRRELEVANT,
    RELEVANT,
    champion_scores,
    feedback_examples,
    kb_pairs,
    material_pairs,
    material_split,
    pair_text,
    ranking_metrics,
)
from services.support.retraining import RerankData
from services.support.retrieval import kb_search
from tests.helpers import csv_write, run_json

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _default_scorer():  # noqa: ANN202
    scorer_install(None)  # the default: the `rerank` champion, when there is one
    yield
    scorer_install(None)


def _item(kb, *, question: str = "", title: str = ""):  # noqa: ANN001, ANN202
    items = kb_search(kb=kb).items.values()
    return next(i for i in items if (question and i.question == question) or (title and i.title == title))


def test_pair_text_is_the_question_and_the_candidate_in_one_text_cut_to_length(fixture_kb) -> None:  # noqa: ANN001
    kb = kb_ensure(name="default")
    xr = _item(kb, question="How long does the XR-200 battery last?")
    assert pair_text(question="battery life?", item=xr) == \
        "battery life? [SEP] XR-200 battery. The XR-200 battery lasts about 10 hours per charge."
    long = type(xr)(**{**xr.__dict__, "text": " ".join(f"w{i}" for i in range(500))})
    text = pair_text(question="q [SEP] injected " + "word " * 100, item=long)
    assert text.count("[SEP]") == 1  # a typed separator cannot split the pair elsewhere
    asked, _, candidate = text.partition(" [SEP] ")
    assert len(asked.split()) == 40 and candidate.split()[-1] == "w79"  # 40 question words, 80 candidate words


def test_the_packaged_tokenizer_reads_the_separator_as_its_special_token() -> None:
    from transformers import AutoTokenizer

    from services.ml.encoder import default_base_path, texts_tokenize

    tokenizer = AutoTokenizer.from_pretrained(default_base_path())
    ids = texts_tokenize(tokenizer, ["Is it waterproof? [SEP] Care. Rinse with water."], max_length=64)[0]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens.count("[SEP]") == 2 and tokens[0] == "[CLS]" and tokens[tokens.index("[SEP]") - 1] == "?"


def test_each_faq_question_and_passage_title_is_paired_with_its_item_and_retrieved_negatives(fixture_kb) -> None:  # noqa: ANN001
    kb = kb_ensure(name="default")
    pairs = kb_pairs(kb=kb)
    items = kb_search(kb=kb).items
    by_query: dict[str, list] = {}
    for pair in pairs:
        by_query.setdefault(pair.query, []).append(pair)
    faqs = [i for i in items.values() if i.kind == "faq"]
    passages = [i for i in items.values() if i.kind == "passage"]
    assert set(by_query) == {i.question for i in faqs} | {i.title for i in passages}
    for faq in faqs:
        rows = by_query[faq.question]
        assert [(p.item_id, p.source) for p in rows if p.label == RELEVANT] == [(faq.id, "kb_faq")]
        negatives = [p.item_id for p in rows if p.label == IRRELEVANT]
        assert faq.id not in negatives and 1 <= len(negatives) <= HARD_NEGATIVES + 1 and len(set(negatives)) == len(negatives)
        assert all(p.text == pair_text(question=faq.question, item=items[p.item_id]) for p in rows)
    # Hard negatives are what retrieval confuses with the answer: the router's reset passage for the password question.
    reset = _item(kb, title="Router manual — Factory reset")
    password = by_query["How do I reset my password?"]
    assert (reset.id, IRRELEVANT) in {(p.item_id, p.label) for p in password}
    assert [(p.item_id, p.source) for p in by_query[reset.title] if p.label == RELEVANT] == [(reset.id, "kb_passage")]
    assert kb_pairs(kb=kb) == pairs  # seeded: the same KB gives the same pairs


def test_held_back_queries_never_train_and_the_cap_keeps_whole_queries(fixture_kb) -> None:  # noqa: ANN001
    pairs = material_pairs()
    train, held = material_split(pairs, max_pairs=10_000)
    assert held and train and len(train) + len(held) == len(pairs)
    assert not {p.query for p in train} & {p.query for p in held}
    assert {p.label for p in held} == {RELEVANT, IRRELEVANT}
    assert material_split(pairs, max_pairs=10_000) == (train, held)
    small_train, small_held = material_split(pairs, max_pairs=12)
    kept = small_train + small_held
    assert 0 < len(kept) <= 12
    for query in {p.query for p in kept}:  # a query is kept with all of its pairs or not at all
        assert sorted(p.text for p in kept if p.query == query) == sorted(p.text for p in pairs if p.query == query)
    # A large KB samples its queries before retrieving negatives: no more retrieval than the cap needs.
    sampled = material_pairs(max_pairs=15)  # 15 // (HARD_NEGATIVES + 2) = 3 queries
    queries = {p.query for p in sampled}
    assert len(queries) == 3 and queries <= {p.query for p in pairs}
    assert {p for p in sampled if p.label == RELEVANT} == {p for p in pairs if p.label == RELEVANT and p.query in queries}


def test_a_pick_answers_judged_by_an_agent_and_an_answered_gap_become_pairs(fixture_kb, settings) -> None:  # noqa: ANN001
    settings.SUPPORT_AMBIGUITY_MARGIN = 0.0
    kb = kb_ensure(name="default")
    password = _item(kb, question="How do I reset my password?")
    reset = _item(kb, title="Router manual — Factory reset")
    # A pick among offered choices: the picked item relevant, the other offered item irrelevant.
    asked = conversations.message_receive(kb=kb, token=None, text="How do I reset it?")
    offer = asked.reply
    offer.choices = [{"kind": "item", "id": password.id, "label": "password"},
                     {"kind": "item", "id": reset.id, "label": "router"}, {"kind": "handoff", "id": "handoff", "label": "p"}]
    offer.save(update_fields=["choices"])
    conversations.choice_pick(conversation=asked.conversation, message_id=offer.pk, choice=reset.id)
    # An answer an agent marked wrong: the item it answered with is irrelevant for that question.
    shipped = conversations.message_receive(kb=kb, token=None, text="Do you ship abroad to Norway?")
    assert shipped.answer.reason == "answered"
    shipping = kb_search(kb=kb).items[shipped.answer.hits[0].item.id]
    conversations.feedback_record(message=shipped.reply, kind=Feedback.WRONG)
    # A knowledge gap answered with a new FAQ entry: that entry relevant for the customer's question.
    gap = KnowledgeGap.objects.get(message=shipped.question)
    conversations.gap_add_to_kb(gap=gap, answer="We ship to Norway in 3 days.", question="Do you ship to Norway?",
                                title="Norway")
    norway = _item(kb, question="Do you ship to Norway?")
    # An answer an agent marked right: the item it answered with relevant for that question.
    refund = conversations.message_receive(kb=kb, token=None, text="What is your refund policy?")
    assert refund.answer.reason == "answered"
    refunds = kb_search(kb=kb).items[refund.answer.hits[0].item.id]
    conversations.feedback_record(message=refund.reply, kind=Feedback.RIGHT)

    examples = feedback_examples()
    got = [(e.text, e.label, e.source) for e in examples]
    assert got == [
        (pair_text(question="How do I reset it?", item=reset), RELEVANT, "customer_pick"),
        (pair_text(question="How do I reset it?", item=password), IRRELEVANT, "customer_pick"),
        (pair_text(question="Do you ship abroad to Norway?", item=shipping), IRRELEVANT, "agent_marked_wrong"),
        (pair_text(question="Do you ship abroad to Norway?", item=norway), RELEVANT, "gap_added"),
        (pair_text(question="What is your refund policy?", item=refunds), RELEVANT, "agent_confirmed"),
    ]  # oldest first
    # The run trains on them next to the material pairs; the held-back part is material only.
    data = RerankData(feedback=examples)
    assert data.held_texts and not set(data.held_texts) & {e.text for e in data.feedback}
    # "What is your refund policy?" is an FAQ's own question: when that query is held back, its pair stays out.
    held = set(data.held_texts)
    assert pair_text(question="What is your refund policy?", item=refunds) in held  # (so the filter is exercised)
    assert [e.text for e in data.feedback] == [e.text for e in examples if e.text not in held]


def test_a_feedback_question_the_hash_rule_holds_back_is_judged_on_never_trained_on(fixture_kb, settings) -> None:  # noqa: ANN001
    from services.support.rerank import feedback_held_back, retrieval_relevance

    settings.SUPPORT_AMBIGUITY_MARGIN = 0.0
    kb = kb_ensure(name="default")
    password = _item(kb, question="How do I reset my password?")
    reset = _item(kb, title="Router manual — Factory reset")
    held_question, trained_question = "How do I restore it?", "How do I reset it?"
    assert feedback_held_back(held_question) and not feedback_held_back(trained_question)  # (so both sides are exercised)
    for text in (held_question, trained_question):  # a customer picks the router's reset among two offered answers
        asked = conversations.message_receive(kb=kb, token=None, text=text)
        asked.reply.choices = [{"kind": "item", "id": password.id, "label": "password"},
                               {"kind": "item", "id": reset.id, "label": "router"}]
        asked.reply.save(update_fields=["choices"])
        conversations.choice_pick(conversation=asked.conversation, message_id=asked.reply.pk, choice=reset.id)

    data = RerankData(feedback=feedback_examples())
    judged = {pair_text(question=held_question, item=item) for item in (reset, password)}
    trained = {pair_text(question=trained_question, item=item) for item in (reset, password)}
    assert judged <= set(data.held_texts) and not judged & {e.text for e in data.feedback}
    assert trained <= {e.text for e in data.feedback} and not trained & set(data.held_texts)
    assert data.n_held_feedback == 2
    # Judged like a material query: a relevant and an irrelevant candidate (so the ranking figures count it), and
    # retrieval's own order of them is found through the pair's knowledge base (the baseline gate's figure).
    rows = [(p, label) for p, label in zip(data._held, data.held_labels) if p.query == held_question]
    assert sorted(label for _, label in rows) == [IRRELEVANT, RELEVANT] and {p.kb for p, _ in rows} == {kb.pk}
    perfect = [1.0 if label == RELEVANT else 0.0 for label in data.held_labels]
    with_it = ranking_metrics(queries=data.held_queries, labels=data.held_labels, relevance=perfect)["n_queries"]
    material = [(q, label) for q, label in zip(data.held_queries, data.held_labels) if q != held_question]
    without = ranking_metrics(queries=[q for q, _ in material], labels=[lb for _, lb in material],
                              relevance=[1.0 if lb == RELEVANT else 0.0 for _, lb in material])["n_queries"]
    assert with_it == without + 1
    assert len(retrieval_relevance([p for p, _ in rows])) == 2


WORDS = ["battery", "charger", "screen", "strap", "lens", "case", "cable", "speaker", "button", "light", "fan", "pump"]


@pytest.fixture
def shop_kb(bow_encoder, tmp_path: Path):  # noqa: ANN001, ANN201
    """A knowledge base with enough entries for a held-back part (24 FAQ entries on 12 parts, two questions each)."""
    rows = ["question,answer,intent,title"]
    for n, word in enumerate(WORDS):
        rows.append(f"How do I replace the {word}?,Order part {n} and swap the {word} with a coin.,repair,{word} repair")
        rows.append(f"Is the {word} under warranty?,The {word} is covered for {n + 1} years.,warranty,{word} warranty")
    faq = tmp_path / "shop.csv"
    faq.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run_json("support_import", faq=str(faq), no_progress=True)
    return kb_ensure(name="default")


@pytest.mark.django_db(transaction=True)
def test_a_rerank_run_trains_on_the_kbs_judges_held_back_queries_gates_and_promotes(shop_kb, settings,  # noqa: ANN001
                                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.retrain import retrain_run

    settings.RETRAIN_EPOCHS = 2
    settings.RETRAIN_MIN_EXAMPLES = 5
    idle = run_json("retrain", task="rerank")  # no base data or held-back files needed: the KBs are the data
    assert idle["ran"] is False and "too few new examples: 0 < 5" in idle["reason"]

    # Baseline gate: retrieval alone orders every material query's candidates perfectly (its own entry first), so no
    # version can beat it there; the first version is registered, judged, and not served.
    refused = retrain_run(task="rerank", force=True)
    assert refused.version.version == 1 and refused.metrics["retrieval_mrr"] == 1.0
    assert refused.status == RetrainRun.REJECTED and not refused.promoted, refused.reason
    assert "baseline gate" in refused.reason and "does not beat retrieval alone" in refused.reason
    assert not Alias.objects.filter(task__name="rerank", name="champion").exists()
    assert Alias.objects.get(task__name="rerank", name="challenger").version.version == 1
    with pytest.raises(NotFound):  # answering goes on without the cross-encoder
        champion_scores("how long is the warranty?", list(kb_search(kb=shop_kb).items.values())[:2])

    # A baseline it beats (as on queries that retrieval gets wrong): the next first version is promoted.
    monkeypatch.setattr(RerankData, "_retrieval_baseline", lambda self: {"retrieval_mrr": 0.0, "retrieval_top1": 0.0})
    first = retrain_run(task="rerank", force=True)
    assert first.status == RetrainRun.PROMOTED and first.version.version == 2, first.reason
    assert Alias.objects.get(task__name="rerank", name="champion").version.version == 2
    pairs = material_pairs()
    _, held = material_split(pairs, max_pairs=settings.SUPPORT_RERANK_MAX_PAIRS)
    assert first.n_examples == len(pairs) - len(held)  # held-back queries never train
    assert first.metrics["n"] == len(held) and first.metrics["n_queries"] == len({p.query for p in held})

    second = retrain_run(task="rerank", force=True)  # gated against v1 on the same held-back queries, on MRR
    assert second.version.version == 3 and second.metrics["n"] == second.champion_metrics["n"] == len(held)
    assert "mrr" in second.reason
    gained = second.metrics["mrr"] >= second.champion_metrics["mrr"]
    assert second.promoted is gained and second.status == (RetrainRun.PROMOTED if gained else RetrainRun.REJECTED)
    champion = Alias.objects.get(task__name="rerank", name="champion").version.version
    assert champion == (3 if gained else 2)


def test_the_gate_metric_is_how_well_p_relevant_orders_each_querys_candidates() -> None:
    queries = ["a", "a", "a", "b", "b", "c"]
    labels = [RELEVANT, IRRELEVANT, IRRELEVANT, IRRELEVANT, RELEVANT, RELEVANT]
    found = ranking_metrics(queries=queries, labels=labels, relevance=[0.9, 0.1, 0.2, 0.6, 0.6, 0.5])
    # a: relevant first (1); b: a tie counts against (1/2); c: no irrelevant candidate, not counted
    assert found == {"mrr": 0.75, "top1": 0.5, "n_queries": 2}


def _spy_classify(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], ClassifyOutput]]:
    from services.registry import serving

    real, calls = serving.texts_classify, []

    def spy(*, task: str, texts):  # noqa: ANN001, ANN202
        out = real(task=task, texts=texts)
        calls.append((task, list(texts), out))
        return out

    monkeypatch.setattr(serving, "texts_classify", spy)
    return calls


@pytest.mark.django_db(transaction=True)  # the runtime resolves the champion on its batcher's thread
def test_with_a_rerank_champion_answering_scores_the_top_fused_candidates_with_it(shop_kb, settings, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    settings.SUPPORT_RERANK_TOP = 3
    settings.SUPPORT_AMBIGUITY_MARGIN = 0.0
    question = "Is the screen under warranty?"
    calls = _spy_classify(monkeypatch)
    before = question_answer(kb=shop_kb, text=question)
    assert [c[0] for c in calls] == []  # no champion: no call, the ranking as before (the default KB ranks alone)
    pairs = material_pairs()
    run_json("train_adapter", task="rerank", data=str(csv_write(tmp_path / "pairs.csv", [p.text for p in pairs],
                                                                 [p.label for p in pairs])), epochs=1)

    answer = question_answer(kb=shop_kb, text=question)
    fused = kb_search(kb=shop_kb).candidates(text=question, n=20)
    assert len(calls) == 1  # one batched call per question
    task, texts, out = calls[0]
    assert task == "rerank" and texts == [pair_text(question=question, item=hit.item) for hit in fused[:3]]
    relevant = dict(zip([hit.item.id for hit in fused[:3]], out.probs[:, out.label_names.index(RELEVANT)]))
    terms = specific_terms(text=question)
    for hit in answer.hits:  # each rank score holds the champion's P(relevant) (0 past the top 3)
        expected = hit.confidence + WEIGHTS.specific * specific_share(terms=terms, item=hit.item) + \
            WEIGHTS.learned * float(relevant.get(hit.item.id, 0.0))
        assert hit.score == pytest.approx(expected, abs=2e-4)
    assert {h.item.id for h in answer.hits} == {h.item.id for h in before.hits}


def _fake_classify(monkeypatch: pytest.MonkeyPatch, *, favourite: str | None = None, error: Exception | None = None) -> list:
    from services.registry import serving

    calls = []

    def fake(*, task: str, texts):  # noqa: ANN001, ANN202
        if task != "rerank":
            raise NotFound(f"No task named {task!r} in the registry.")  # no intent model: retrieval alone
        calls.append(list(texts))
        if error is not None:
            raise error
        probs = np.array([[0.02, 0.98] if favourite in text.split(" [SEP] ")[1] else [0.98, 0.02] for text in texts],
                         dtype=np.float32)
        return ClassifyOutput(labels=[], probs=probs, label_names=[IRRELEVANT, RELEVANT], version=1)

    monkeypatch.setattr(serving, "texts_classify", fake)
    return calls


def test_a_strong_learned_signal_reorders_the_candidates(shop_kb, settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    settings.SUPPORT_AMBIGUITY_MARGIN = 0.0
    question = "How do I replace the screen?"
    plain = question_answer(kb=shop_kb, text=question)
    assert plain.hits[0].item.title == "screen repair"
    second = plain.hits[1].item
    calls = _fake_classify(monkeypatch, favourite=second.text)
    learned = question_answer(kb=shop_kb, text=question)
    assert len(calls) == 1 and learned.hits[0].item.id == second.id  # the cross-encoder's strong preference wins
    assert learned.hits[0].score > plain.hits[0].score


def test_a_failing_scorer_is_logged_and_answering_goes_on_without_it(shop_kb, settings, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    settings.SUPPORT_AMBIGUITY_MARGIN = 0.0
    question = "How do I replace the screen?"
    plain = question_answer(kb=shop_kb, text=question)
    calls = _fake_classify(monkeypatch, error=RuntimeError("runtime crashed"))
    with caplog.at_level(logging.WARNING, logger="services.support.ranking"):
        answer = question_answer(kb=shop_kb, text=question)
    assert len(calls) == 1 and "runtime crashed" in caplog.text
    assert answer.reason == "answered" and [(h.item.id, h.score) for h in answer.hits] == \
        [(h.item.id, h.score) for h in plain.hits]
    # An explicit scorer (SUPPORT_RERANK_SCORER or scorer_install) still overrides the champion.
    scorer_install(lambda q, items: [0.0] * len(items))  # noqa: ARG005
    assert hits_rank(question=question, hits=kb_search(kb=shop_kb).candidates(text=question, n=5)) and len(calls) == 1
    scorer_install(None)
    settings.SUPPORT_RERANK_TOP = 0  # switched off: the champion is not asked
    question_answer(kb=shop_kb, text=question)
    assert len(calls) == 1
