"""The `rerank` task: a cross-encoder the suite trains itself, from each knowledge base's material and its feedback.

The task is a two-label text classifier ("irrelevant", "relevant") of one text holding both sides,
`question [SEP] candidate` (`pair_text`): the base encoder reads question and candidate in one pass (a cross-encoder;
the packaged MiniLM's tokenizer reads the literal "[SEP]" as its separator token), its LoRA adapter and scoring head
say how well the candidate answers. Training and serving build the text with the same `pair_text`, so they cannot
diverge. Served, the champion's calibrated P(relevant) is the learned signal of the ranking stage
(services/support/ranking.py); it is the default scorer whenever the task has a champion.

Training pairs (`kb_pairs`, `feedback_examples`):
1. Each FAQ's question → its own entry relevant; the entries hybrid retrieval ranks highest for that question (hard
   negatives) and one drawn at random → irrelevant.
2. Each passage title (document title and section heading) as a query → its passages relevant; the other top
   retrieved items and one random item → irrelevant.
3. A customer's pick among offered choices → the picked item relevant, the other offered items irrelevant.
4. A bot answer an agent marked wrong → the item it answered with irrelevant for that question; one an agent
   marked right → relevant (customers' thumbs are not used: anyone holding a conversation's token can give them).
5. A knowledge gap answered with a new FAQ → that entry relevant for the customer's question.
"""
from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from apps.support.models import Feedback, KnowledgeBase, KnowledgeGap, Message, TrainingExample
from services.errors import NotFound, SuiteError
from services.registry.retraining import Example
from services.support.retrieval import Item, kb_search

RERANK_TASK = "rerank"
RELEVANT, IRRELEVANT = "relevant", "irrelevant"
SEP = "[SEP]"  # BERT-family separator; a base whose sentence-transformers config lower-cases its input would not see it
QUESTION_WORDS = 40  # a customer's question past this is cut (pairs must leave room for the candidate)
CANDIDATE_WORDS = 80  # words of the candidate's text after its title: ~110 tokens, within the trainer's 128
HARD_NEGATIVES = 3  # retrieved items per material query labelled irrelevant (plus one random item)
HELD_BACK_EVERY = 5  # one material query in five (ordered by a hash of its text) is held back for evaluation
SEED = 13


def candidate_text(item: Item) -> str:
    """The candidate side: its title and the first CANDIDATE_WORDS words of its answer or passage."""
    body = " ".join(item.text.replace(SEP, " ").split()[:CANDIDATE_WORDS])
    title = " ".join(item.title.replace(SEP, " ").split())
    return f"{title}. {body}" if title else body


def pair_text(*, question: str, item: Item) -> str:
    """The one text the cross-encoder reads: `question [SEP] title. text` (training and serving both use this)."""
    asked = " ".join(question.replace(SEP, " ").split()[:QUESTION_WORDS])
    return f"{asked} {SEP} {candidate_text(item)}"


@dataclass(frozen=True)
class RerankPair:
    query: str
    item_id: int
    label: str  # RELEVANT | IRRELEVANT
    source: str  # kb_faq | kb_passage | customer_pick | agent_marked_wrong | agent_confirmed | gap_added
    text: str  # pair_text(query, item)
    kb: int = 0  # the knowledge base's pk (material pairs)


def _pair(*, query: str, item: Item, label: str, source: str, kb: int = 0) -> RerankPair:
    return RerankPair(query=query, item_id=item.id, label=label, source=source, text=pair_text(question=query, item=item),
                      kb=kb)


def material_queries(items: Iterable[Item]) -> dict[str, tuple[str, list[Item]]]:
    """query -> (source, its positives), in item order: every FAQ question ("kb_faq": its entry) and every distinct
    passage title ("kb_passage": its passages). The `rerank` and `retrieval` tasks both learn from these."""
    queries: dict[str, tuple[str, list[Item]]] = {}
    for item in items:
        if item.kind == "faq" and item.question.strip():
            queries.setdefault(" ".join(item.question.split()), ("kb_faq", []))[1].append(item)
        elif item.kind == "passage" and item.title.strip():
            queries.setdefault(" ".join(item.title.split()), ("kb_passage", []))[1].append(item)
    return queries


def kb_pairs(*, kb: KnowledgeBase, hard_negatives: int = HARD_NEGATIVES, seed: int = SEED,
             max_queries: int | None = None) -> list[RerankPair]:
    """Training pairs from one knowledge base's own material (steps 1 and 2 of the module's list), seeded.

    1. Queries: every FAQ question (its entry is the positive) and every distinct passage title (its passages); at
       most `max_queries` of them (a seeded sample), so a large KB costs no more retrieval than the cap needs.
    2. Negatives: the production candidates (hybrid, fused order) for the query that are not a positive and do not
       hold the same answer text, the first `hard_negatives` of them, and one further item drawn at random.
    """
    search = kb_search(kb=kb)
    items = list(search.items.values())
    answers = {item.id: " ".join(item.text.split()).lower() for item in items}
    queries = material_queries(items)
    rng = random.Random(f"{seed}:{kb.pk}")
    chosen_queries = list(queries)
    if max_queries is not None and len(chosen_queries) > max_queries:
        chosen_queries = sorted(rng.sample(sorted(chosen_queries), max_queries), key=list(queries).index)
    pairs: list[RerankPair] = []
    for query in chosen_queries:
        source, positives = queries[query]
        excluded = {item.id for item in positives}
        same = {answers[item.id] for item in positives}

        def negative(item: Item) -> bool:
            return item.id not in excluded and answers[item.id] not in same

        retrieved = search.candidates(text=query, n=hard_negatives + len(positives) + 5)
        negatives = [hit.item for hit in retrieved if negative(hit.item)][:hard_negatives]
        excluded |= {item.id for item in negatives}
        for _ in range(10):  # one random item besides (a few draws: a KB may have no other item)
            drawn = rng.choice(items)
            if negative(drawn):
                negatives.append(drawn)
                break
        pairs += [_pair(query=query, item=item, label=RELEVANT, source=source, kb=kb.pk) for item in positives]
        pairs += [_pair(query=query, item=item, label=IRRELEVANT, source=source, kb=kb.pk) for item in negatives]
    return pairs


def items_located() -> dict[int, tuple[Item, int]]:
    """Every item of every knowledge base by its id, with its KB's pk (ids are unique across KBs: derived from the
    row's pk)."""
    found: dict[int, tuple[Item, int]] = {}
    for kb in KnowledgeBase.objects.order_by("pk"):
        found.update((key, (item, kb.pk)) for key, item in kb_search(kb=kb).items.items())
    return found


def feedback_held_back(question: str) -> bool:
    """Whether a feedback question is held back (judged on, never trained on) by `rerank` and `retrieval` alike: the
    material split's rate, by a hash of the question's text (stable per text, so never trained on in a later run)."""
    return zlib.crc32(" ".join(question.split()).encode("utf-8")) % HELD_BACK_EVERY == HELD_BACK_EVERY - 1


def _cited_item_id(citation: dict) -> int | None:
    """The item id of a citation ({"kind", "id": the row's pk}); None when it names no FAQ entry or passage."""
    kind, pk = citation.get("kind"), citation.get("id")
    if not isinstance(pk, int) or kind not in ("faq", "passage"):
        return None
    return pk * 2 if kind == "faq" else pk * 2 + 1


@dataclass(frozen=True)
class FeedbackPair:
    question: str  # what the customer asked
    item: Item  # the item judged for it
    label: str  # RELEVANT | IRRELEVANT
    source: str  # customer_pick | agent_marked_wrong | agent_confirmed | gap_added
    created_at: datetime
    kb: int = 0  # the item's knowledge base's pk


@dataclass(frozen=True)
class PairExample(Example):
    """A feedback pair as a `rerank` example (`pair_text`, label) that keeps its question, item and KB, so that the
    run can hold some questions back and judge them like material queries (`RerankData`)."""
    query: str = ""
    item_id: int = 0
    kb: int = 0

    def as_pair(self) -> RerankPair:
        return RerankPair(query=self.query, item_id=self.item_id, label=self.label, source=self.source, text=self.text,
                          kb=self.kb)


def feedback_pairs(*, items: dict[int, tuple[Item, int]] | None = None) -> list[FeedbackPair]:
    """Every feedback pair (steps 3 to 5 of the module's list), oldest first: what `rerank` (as `pair_text`) and
    `retrieval` (its relevant pairs) learn from customers and agents. `items`: `items_located()` (read when None).

    A pair whose item is no longer in any knowledge base is left out (its text cannot be built).
    """
    items = items_located() if items is None else items
    out: list[tuple[datetime, int, FeedbackPair]] = []

    def add(question: str, item_id: int | None, label: str, source: str, when: datetime) -> None:
        item, kb = items.get(item_id, (None, 0)) if item_id is not None else (None, 0)
        if item is not None and question.strip():
            out.append((when, len(out), FeedbackPair(question, item, label, source, when, kb)))

    picks = TrainingExample.objects.filter(task=RERANK_TASK).select_related("message").order_by("created_at", "id")
    for row in picks:
        picked = int(row.label) if row.label.isdigit() else None
        add(row.text, picked, RELEVANT, row.source, row.created_at)
        offered = row.message.choices if row.message is not None else []
        for choice in offered:
            if choice.get("kind") == "item" and str(choice.get("id")) != row.label and str(choice.get("id")).isdigit():
                add(row.text, int(choice["id"]), IRRELEVANT, row.source, row.created_at)
    judged = Feedback.objects.filter(kind__in=(Feedback.WRONG, Feedback.RIGHT), message__reply_to__isnull=False,
                                     message__sender__in=(Message.BOT, Message.SUGGESTION)).select_related("message__reply_to")
    for feedback in judged.order_by("created_at", "id"):
        message = feedback.message
        answered = _cited_item_id(message.citations[0]) if message.citations else None  # the answer it gave first
        if feedback.kind == Feedback.WRONG:
            add(message.reply_to.text, answered, IRRELEVANT, "agent_marked_wrong", feedback.created_at)
        else:
            add(message.reply_to.text, answered, RELEVANT, "agent_confirmed", feedback.created_at)
    gaps = KnowledgeGap.objects.filter(status=KnowledgeGap.ADDED, faq__isnull=False).select_related("faq")
    for gap in gaps.order_by("created_at", "id"):
        add(gap.question, gap.faq.pk * 2, RELEVANT, "gap_added", max(gap.created_at, gap.faq.updated_at))
    out.sort(key=lambda row: (row[0], row[1]))
    return [pair for _, _, pair in out]


def feedback_examples(*, items: dict[int, tuple[Item, int]] | None = None) -> list[PairExample]:
    """Every feedback pair as a `rerank` example (`pair_text`, label), oldest first."""
    return [PairExample(pair_text(question=p.question, item=p.item), p.label, p.source, p.created_at,
                        query=" ".join(p.question.split()), item_id=p.item.id, kb=p.kb)
            for p in feedback_pairs(items=items)]


def material_split(pairs: Sequence[RerankPair], *, max_pairs: int, seed: int = SEED) -> tuple[list[RerankPair], list[RerankPair]]:
    """(training, held-back) material pairs: at most `max_pairs` in all (a seeded sample of whole queries), every
    HELD_BACK_EVERY-th query (ordered by a hash of its text, so an unchanged KB gives the same split) held back."""
    by_query: dict[str, list[RerankPair]] = {}
    for pair in pairs:
        by_query.setdefault(pair.query, []).append(pair)
    queries = sorted(by_query, key=lambda q: (zlib.crc32(q.encode("utf-8")), q))
    if sum(len(rows) for rows in by_query.values()) > max_pairs:
        rng = random.Random(seed)
        rng.shuffle(queries)
        kept, total = [], 0
        for query in queries:
            if total + len(by_query[query]) > max_pairs:
                continue
            kept.append(query)
            total += len(by_query[query])
        queries = sorted(kept, key=lambda q: (zlib.crc32(q.encode("utf-8")), q))
    train, held = [], []
    for position, query in enumerate(queries):
        (held if position % HELD_BACK_EVERY == HELD_BACK_EVERY - 1 else train).extend(by_query[query])
    return train, held


def retrieval_relevance(pairs: Sequence[RerankPair]) -> list[float]:
    """Each material pair's retrieval confidence (0 when hybrid retrieval does not find the item for the query): the
    baseline a held-back ranking is read against (`retrieval_mrr`)."""
    found: dict[tuple[int, str], dict[int, float]] = {}
    kbs = {kb.pk: kb for kb in KnowledgeBase.objects.filter(pk__in={p.kb for p in pairs})}
    out = []
    for pair in pairs:
        key = (pair.kb, pair.query)
        if key not in found:
            kb = kbs.get(pair.kb)
            hits = kb_search(kb=kb).candidates(text=pair.query, n=50) if kb is not None else []
            found[key] = {hit.item.id: hit.confidence for hit in hits}
        out.append(found[key].get(pair.item_id, 0.0))
    return out


def material_pairs(*, kbs: Iterable[KnowledgeBase] | None = None, max_pairs: int | None = None) -> list[RerankPair]:
    """The material pairs of every knowledge base (or of `kbs`); with `max_pairs`, each KB samples no more queries
    than that many pairs need (about HARD_NEGATIVES + 2 pairs a query; `material_split` then caps the total)."""
    kbs = KnowledgeBase.objects.order_by("pk") if kbs is None else kbs
    max_queries = None if max_pairs is None else max(1, max_pairs // (HARD_NEGATIVES + 2))
    return [pair for kb in kbs for pair in kb_pairs(kb=kb, max_queries=max_queries)]


def ranking_metrics(*, queries: Sequence[str], labels: Sequence[str], relevance: Sequence[float]) -> dict[str, float]:
    """How well P(relevant) orders each held-back query's candidates, which is how the ranking stage uses it:
    `mrr` (mean reciprocal rank of the first relevant candidate) and `top1` (share of queries whose best-scored
    candidate is relevant), over the queries with a relevant and an irrelevant candidate; ties count against."""
    by_query: dict[str, list[tuple[float, bool]]] = {}
    for query, label, score in zip(queries, labels, relevance):
        by_query.setdefault(query, []).append((float(score), label == RELEVANT))
    ranks = []
    for rows in by_query.values():
        if not any(good for _, good in rows) or all(good for _, good in rows):
            continue
        best = max(score for score, good in rows if good)
        ranks.append(1 + sum(1 for score, good in rows if not good and score >= best))
    if not ranks:
        return {"mrr": 0.0, "top1": 0.0, "n_queries": 0}
    return {"mrr": round(sum(1.0 / r for r in ranks) / len(ranks), 5),
            "top1": round(sum(1 for r in ranks if r == 1) / len(ranks), 5), "n_queries": len(ranks)}


# --- serving: the champion as the ranking stage's learned scorer --------------------------------------------

def champion_scores(question: str, candidates: Sequence[Item], *,
                    classify: Callable[[list[str]], Any] | None = None) -> list[float]:
    """P(relevant) of the `rerank` champion for the first SUPPORT_RERANK_TOP candidates (one batched call), 0 for
    the rest; NotFound when the task has no champion or SUPPORT_RERANK_TOP is 0 (the ranking stage then ranks without
    a learned signal). `classify(texts)` -> ClassifyOutput: the served champion (registry serving) unless given (a
    benchmark timing another way of serving it)."""
    from services.registry.serving import texts_classify

    if classify is None:
        def classify(texts: list[str]) -> Any:
            return texts_classify(task=RERANK_TASK, texts=texts)
    if settings.SUPPORT_RERANK_TOP == 0:  # switched off: no learned signal, as without a champion
        raise NotFound("The rerank cross-encoder is switched off (SUPPORT_RERANK_TOP=0).", field="task")
    scored = list(candidates[:settings.SUPPORT_RERANK_TOP])
    if not scored:
        return [0.0] * len(candidates)
    out = classify([pair_text(question=question, item=item) for item in scored])
    if RELEVANT not in out.label_names:
        raise SuiteError(f"The {RERANK_TASK} champion has no {RELEVANT!r} label ({', '.join(out.label_names)}).",
                         field="task")
    column = out.label_names.index(RELEVANT)
    return [float(p) for p in out.probs[:, column]] + [0.0] * (len(candidates) - len(scored))
