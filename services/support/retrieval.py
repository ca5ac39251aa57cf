"""Hybrid retrieval over one knowledge base: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank.

Each process keeps one `KbSearch` per knowledge base, reloaded when the KB's revision changes (an import, an
edit, a rebuild in another process), so the web process and the workers follow changes without a restart.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from apps.support.models import FaqEntry, KnowledgeBase, Passage
from services.support import knowledge
from services.support.knowledge import faq_lexical_text, index_build, index_folder, item_id, passage_text
from services.support.lexical import LexicalIndex, ranks_fuse
from services.vectors import DenseIndex

CANDIDATES = 20  # per ranking before fusion
RERANK = 10  # fused candidates re-ordered by confidence
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

    @property
    def confidence(self) -> float:
        """The cosine, raised towards 1 by word overlap: a paraphrase with no shared word keeps its cosine, and a
        question naming the entry's codes and terms gains; unrelated text stays low on both."""
        dense = min(1.0, max(0.0, self.dense))
        return round(dense + LEXICAL_BONUS * self.lexical * (1.0 - dense), 4)


class KbSearch:
    def __init__(self, *, kb: KnowledgeBase) -> None:
        self.revision = kb.revision
        self.created_at = kb.created_at  # with the pk: the same KB, not a recreated one (tests reuse pks)
        self.tag = knowledge.encoder_tag()
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
        self.dense = DenseIndex.load(folder=index_folder(kb), expected=self.tag) if items else None
        if items and (self.dense is None or len(self.dense) != len(items)):
            self.dense = index_build(kb=kb)  # missing, from another encoder, or out of step: rebuild (small KBs)
            self.revision = KnowledgeBase.objects.get(pk=kb.pk).revision

    def search(self, *, text: str, k: int = 5) -> list[Hit]:
        """The best `k` items for a query, best first (empty for an empty KB)."""
        if not self.items:
            return []
        vector = knowledge.texts_vectors(texts=[text])[0]  # (dim,)
        dense_ids, dense_scores = self.dense.search(vectors=vector[None, :], k=CANDIDATES)
        dense = {int(i): float(s) for i, s in zip(dense_ids[0], dense_scores[0]) if i >= 0 and int(i) in self.items}
        lexical = [doc for doc, _ in self.lexical.search(text=text, k=CANDIDATES) if doc in self.items]
        fused = ranks_fuse(rankings=[list(dense), lexical])[:max(k, RERANK)]
        missing = [doc for doc, _ in fused if doc not in dense]
        dense.update(self.dense.scores_for(vector=vector, ids=missing))
        hits = [Hit(item=self.items[doc], fused=score, dense=dense.get(doc, 0.0),
                    lexical=self.lexical.coverage(text=text, doc_id=doc)) for doc, score in fused]
        # Fusion picks the candidates; their confidence (which looks at the query and each candidate) orders them.
        return sorted(hits, key=lambda hit: (-hit.confidence, -hit.fused))[:k]


_lock = threading.Lock()
_searches: dict[int, KbSearch] = {}


def kb_search(*, kb: KnowledgeBase) -> KbSearch:
    """This process's search structures for a KB, reloaded when its revision or the encoder moved on."""
    revision = KnowledgeBase.objects.filter(pk=kb.pk).values_list("revision", flat=True).first()
    tag = knowledge.encoder_tag()  # a new default base (or SUPPORT_EMBED_TASK champion) means new vectors
    with _lock:
        found = _searches.get(kb.pk)
        if found is None or found.revision != revision or found.tag != tag or found.created_at != kb.created_at:
            found = _searches[kb.pk] = KbSearch(kb=kb)
        return found


def searches_reset() -> None:
    with _lock:
        _searches.clear()
