"""Hybrid retrieval over one knowledge base: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank.

Dense: the KB's shared vector space (services.vectors `space_view`: this process's in-memory index, synced from
the database by revision, never built or embedded here) and the query embedded by exactly the encoder of those
vectors (`query_vectors`). Lexical: each process keeps one BM25 index per knowledge base, rebuilt when the KB's
revision changes (an import, an edit, a delete in any process), so every web process and worker follows changes
without a restart. An item whose vector a worker has not written yet is found by its words only.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from apps.support.models import FaqEntry, KnowledgeBase, Passage
from services.errors import SuiteError
from services.support.knowledge import faq_lexical_text, item_id, kb_space, passage_text
from services.support.lexical import LexicalIndex, ranks_fuse
from services.vectors import query_vectors, space_view

CANDIDATES = 20  # per ranking before fusion
RERANK = 10  # fused candidates re-ordered by confidence
RETRIEVERS = ("hybrid", "dense", "lexical")  # production is hybrid; the others are evaluation baselines
LEXICAL_BONUS = 0.5  # confidence = cosine + LEXICAL_BONUS * (share of query words found) * (1 - cosine)


@dataclass(frozen=True)
class Item:
    id: int
    kind: str  # "faq" | "passage"
    pk: int
    title: str
    url: str
    location: str
    text: str  # the answer (FAQ) or the passage
    question: str = ""
    intent: str = ""


@dataclass(frozen=True)
class Hit:
    item: Item
    fused: float  # reciprocal rank fusion score
    dense: float  # cosine similarity with the query (0 when unknown)
    lexical: float  # share of the query's words found in the item (0..1)
    score: float = 0.0  # the ranking stage's score (services.support.ranking), 0 before ranking

    @property
    def confidence(self) -> float:
        """The cosine, raised towards 1 by word overlap: a paraphrase with no shared word keeps its cosine, and a
        question naming the entry's codes and terms gains; unrelated text stays low on both."""
        dense = min(1.0, max(0.0, self.dense))
        return round(dense + LEXICAL_BONUS * self.lexical * (1.0 - dense), 4)


class KbSearch:
    """One KB's items and BM25 index as of one revision; dense search goes to the shared space on each query."""

    def __init__(self, *, kb: KnowledgeBase, revision: int | None = None) -> None:
        self.revision = kb.revision if revision is None else revision  # read before the rows: a later edit reloads
        self.created_at = kb.created_at  # with the pk: the same KB, not a recreated one (tests reuse pks)
        self.space = kb_space(kb)
        items: list[Item] = []
        lexical_texts: list[str] = []
        for faq in FaqEntry.objects.filter(kb=kb).order_by("pk"):
            items.append(Item(id=item_id(faq), kind="faq", pk=faq.pk, title=faq.title, url=faq.url, location="FAQ",
                              text=faq.answer, question=faq.question, intent=faq.intent))
            lexical_texts.append(faq_lexical_text(faq))
        for passage in Passage.objects.filter(kb=kb).select_related("document").order_by("pk"):
            items.append(Item(id=item_id(passage), kind="passage", pk=passage.pk, title=passage.title,
                              url=passage.document.url, location=passage.location, text=passage.text))
            lexical_texts.append(passage_text(passage))
        self.items = {item.id: item for item in items}
        self.lexical = LexicalIndex(ids=[item.id for item in items], texts=lexical_texts)

    def candidates(self, *, text: str, n: int, retriever: str = "hybrid") -> list[Hit]:
        """The best `n` items for a query in fused order (what the ranking stage orders), empty for an empty KB.

        1. Dense candidates from the space's current view (none while it has no vectors), the query embedded by
           the view's own encoder; lexical candidates from BM25 (max(CANDIDATES, n) of each).
        2. Fuse the rankings by reciprocal rank ("dense" or "lexical" keep one ranking: the evaluation's baselines);
           fused candidates that dense search missed get their cosine when they have a vector, else 0.
        """
        if retriever not in RETRIEVERS:
            raise SuiteError(f"`retriever` must be one of {', '.join(RETRIEVERS)}, not {retriever!r}.", field="retriever")
        if not self.items:
            return []
        depth = max(CANDIDATES, n)
        dense: dict[int, float] = {}
        vector = view = None
        if retriever != "lexical":
            view = space_view(space=self.space)
            if view is not None and len(view.index):
                vector = query_vectors(view=view, texts=[text])[0]  # (dim,)
                dense_ids, dense_scores = view.index.search(vectors=vector[None, :], k=depth)
                dense = {int(i): float(s) for i, s in zip(dense_ids[0], dense_scores[0]) if i >= 0 and int(i) in self.items}
        lexical = [] if retriever == "dense" else [
            doc for doc, _ in self.lexical.search(text=text, k=depth) if doc in self.items]
        rankings = {"hybrid": [list(dense), lexical], "dense": [list(dense)], "lexical": [lexical]}[retriever]
        fused = ranks_fuse(rankings=rankings)[:n]
        if vector is not None:
            dense.update(view.index.scores_for(vector=vector, ids=[doc for doc, _ in fused if doc not in dense]))
        return [Hit(item=self.items[doc], fused=score, dense=dense.get(doc, 0.0),
                    lexical=self.lexical.coverage(text=text, doc_id=doc)) for doc, score in fused]

    def search(self, *, text: str, k: int = 5) -> list[Hit]:
        """The best `k` items by confidence alone (fusion picks RERANK candidates; no ranking stage)."""
        hits = self.candidates(text=text, n=max(k, RERANK))
        return sorted(hits, key=lambda hit: (-hit.confidence, -hit.fused))[:k]


_lock = threading.Lock()
_searches: dict[int, KbSearch] = {}


def kb_search(*, kb: KnowledgeBase) -> KbSearch:
    """This process's lexical structures for a KB, rebuilt when its revision moved (one small query per call)."""
    revision = KnowledgeBase.objects.filter(pk=kb.pk).values_list("revision", flat=True).first()
    with _lock:
        found = _searches.get(kb.pk)
        if found is None or found.revision != revision or found.created_at != kb.created_at:
            found = _searches[kb.pk] = KbSearch(kb=kb, revision=revision)  # not kb.revision: the caller's copy may be old
        return found


def searches_reset() -> None:
    with _lock:
        _searches.clear()
