"""The `retrieval` task: a pairs (bi-encoder) LoRA adapter tuned on the knowledge bases' own material, which a
knowledge base may choose to be embedded by (its `embed_task`, services/support/knowledge.py).

Training pairs are (query, item's dense text) positives only; the trainer (services/ml/training.py `pairs_train`)
takes the other items of a batch as negatives. They come from the same material as the `rerank` task
(services/support/rerank.py `material_queries`, `feedback_pairs`):
1. Each passage title → its passages ("title. text", the text the KB's vectors are made of).
2. Each FAQ question → its entry only when the entry's dense text differs from the query. An FAQ is embedded by its
   question (knowledge.py `faq_dense_text`), so the pair is usually the same text twice: any encoder ranks it first
   and it teaches nothing; it is left out of training and of the held-back set.
3. Relevant feedback pairs: a customer's pick, an answer an agent confirmed, a knowledge gap answered with an FAQ
   (real customer phrasings: what a tuned encoder can learn that the base does not know).
One query in HELD_BACK_EVERY (rerank's `material_split` for the material, the same hash rule for feedback
questions) is held back. A version is judged by dense search over its knowledge base's items for each held-back
query (`mrr_at_10`, `recall_at_10`), and served only when it beats the untuned base encoder on the same queries
(`base_mrr_at_10`): re-embedding a knowledge base for no gain is refused.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from apps.support.models import KnowledgeBase
from services.registry.retraining import Example
from services.support.knowledge import passage_text_of
from services.support.rerank import (RELEVANT, SEED, RerankPair, feedback_held_back, feedback_pairs, items_located,
                                     material_queries, material_split)
from services.support.retrieval import Item, kb_search

RETRIEVAL_TASK = "retrieval"
EVAL_K = 10  # cut-off of the held-back ranking metrics (what the ranking stage sees of dense search: its top 20)
EVAL_ITEMS = 2000  # most items of one KB a held-back query is searched among: its positives, then a seeded sample


def item_dense_text(item: Item) -> str:
    """The text a KB's vector of `item` is made of (knowledge.py `_source_texts`): an FAQ's question, a passage's
    "title. text"."""
    return item.question if item.kind == "faq" else passage_text_of(title=item.title, text=item.text)


def _informative(query: str, item: Item) -> bool:
    return " ".join(query.split()).lower() != " ".join(item_dense_text(item).split()).lower()


def kb_positive_pairs(*, kb: KnowledgeBase) -> list[RerankPair]:
    """The KB's material as positive pairs (`text` = the item's dense text), less the FAQ pairs of one text twice."""
    queries = material_queries(kb_search(kb=kb).items.values())
    return [RerankPair(query=query, item_id=item.id, label=RELEVANT, source=source, text=item_dense_text(item), kb=kb.pk)
            for query, (source, positives) in queries.items() for item in positives if _informative(query, item)]


def relevant_examples() -> list[Example]:
    """Every relevant feedback pair (`feedback_pairs`) as an example, oldest first: the customer's question, the item
    id as its "label" (what the `retrieval` plug-in's run counts, trains on and measures label drift by)."""
    return [Example(p.question, str(p.item.id), p.source, p.created_at) for p in feedback_pairs() if p.label == RELEVANT]


def retrieval_split(*, feedback: Sequence[Example], max_pairs: int) -> tuple[list[RerankPair], list[RerankPair]]:
    """(training, held-back) positive pairs of every KB's material and the relevant feedback (`relevant_examples`).

    A feedback example whose question is a held-back material query, or is held back itself, is judged on, never
    trained on; one whose item is in no KB any more is dropped.
    """
    material = [pair for kb in KnowledgeBase.objects.order_by("pk") for pair in kb_positive_pairs(kb=kb)]
    item_of = items_located()  # item id -> (the item, its KB's pk)
    train, held = material_split(material, max_pairs=max_pairs)
    held_queries = {p.query for p in held}
    for example in feedback:
        item, kb_pk = item_of.get(int(example.label), (None, 0))
        if item is None or not _informative(example.text, item):
            continue
        row = RerankPair(query=" ".join(example.text.split()), item_id=item.id, label=RELEVANT,
                         source=example.source, text=item_dense_text(item), kb=kb_pk)
        (held if row.query in held_queries or feedback_held_back(row.query) else train).append(row)
    return train[-max_pairs:], held


def held_back_candidates(held: Sequence[RerankPair], *, limit: int = EVAL_ITEMS, seed: int = SEED) -> dict[int, list[tuple[int, str]]]:
    """KB pk -> the (item id, dense text) a held-back query of that KB is searched among: every item of the KB, or
    past `limit` its held-back positives and a seeded sample of the rest (the same for every version judged)."""
    out: dict[int, list[tuple[int, str]]] = {}
    for kb in KnowledgeBase.objects.filter(pk__in={p.kb for p in held}).order_by("pk"):
        items = kb_search(kb=kb).items
        wanted = sorted({p.item_id for p in held if p.kb == kb.pk} & set(items))
        others = sorted(set(items) - set(wanted))
        if len(wanted) + len(others) > limit:
            others = sorted(random.Random(f"{seed}:{kb.pk}").sample(others, max(0, limit - len(wanted))))
        out[kb.pk] = [(key, item_dense_text(items[key])) for key in wanted + others]
    return out


def dense_metrics(*, embed: Callable[[list[str]], np.ndarray], held: Sequence[RerankPair],
                  candidates: dict[int, list[tuple[int, str]]], k: int = EVAL_K) -> dict[str, Any]:
    """`mrr_at_10` (reciprocal rank of a query's best-ranked relevant item, 0 past k) and `recall_at_10` (share of
    its relevant items in the top k) of dense search by `embed` over its KB's candidates, averaged over queries;
    a tie with an irrelevant item counts against."""
    reciprocal, recall = [], []
    for kb_pk, rows in candidates.items():
        relevant: dict[str, set[int]] = {}
        for pair in held:
            if pair.kb == kb_pk:
                relevant.setdefault(pair.query, set()).add(pair.item_id)
        if not relevant or not rows:
            continue
        position = {key: i for i, (key, _) in enumerate(rows)}
        queries = sorted(relevant)
        item_vecs = embed([text for _, text in rows])  # (m, dim), L2-normalised
        query_vecs = embed(queries)  # (q, dim)
        sims = query_vecs @ item_vecs.T  # (q, m)
        for row, query in zip(sims, queries):
            good = [position[key] for key in relevant[query] if key in position]
            if not good:
                continue
            bad = np.ones(len(rows), dtype=bool)
            bad[good] = False
            best = row[good].max()
            rank = 1 + int((row[bad] >= best).sum())
            reciprocal.append(1.0 / rank if rank <= k else 0.0)
            top = set(np.argsort(-row, kind="stable")[:k].tolist())
            recall.append(len(top & set(good)) / len(good))
    if not reciprocal:
        return {f"mrr_at_{k}": 0.0, f"recall_at_{k}": 0.0, "n_queries": 0}
    return {f"mrr_at_{k}": round(float(np.mean(reciprocal)), 5), f"recall_at_{k}": round(float(np.mean(recall)), 5),
            "n_queries": len(reciprocal)}
