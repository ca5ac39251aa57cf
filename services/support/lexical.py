"""BM25 lexical retrieval (bm25s), so product codes, names and numbers are found even when embeddings blur them."""
from __future__ import annotations

import re

import bm25s
import numpy as np

# Words and numbers; a code like "XR-200" also yields the joined token "xr200", so "XR200" and "xr-200" both match.
TOKEN = re.compile(r"\w+")
CODE = re.compile(r"\b([A-Za-z]+)[-_ ]?(\d+)\b")
STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from how i if in into is it its me my no not of on or our please "
    "so that the their then there these they this to was we what when where which who why will with you your".split()
)


def text_tokens(*, text: str) -> list[str]:
    words = [w for w in TOKEN.findall(text.lower()) if w not in STOPWORDS]
    codes = [f"{a}{b}".lower() for a, b in CODE.findall(text)]
    return words + [c for c in codes if c not in words]


class LexicalIndex:
    """BM25 over a fixed list of (id, text); rebuilt whenever the knowledge base changes (cheap: ~1 s per 100k)."""

    def __init__(self, *, ids: list[int], texts: list[str]) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.tokens = [set(text_tokens(text=t)) for t in texts]
        self._bm25 = None
        if ids:
            self._bm25 = bm25s.BM25()
            self._bm25.index([sorted(t) or ["\x00"] for t in self.tokens], show_progress=False)

    def search(self, *, text: str, k: int) -> list[tuple[int, float]]:
        """[(id, bm25 score)] best first, only documents sharing at least one token with the query."""
        query = [t for t in text_tokens(text=text) if t in self._bm25.vocab_dict] if self._bm25 else []
        if not query:
            return []
        k = min(k, len(self.ids))
        positions, scores = self._bm25.retrieve([query], k=k, show_progress=False, n_threads=1)
        return [(int(self.ids[p]), float(s)) for p, s in zip(positions[0], scores[0]) if s > 0]

    def coverage(self, *, text: str, doc_id: int) -> float:
        """Share of the query's tokens found in one document (0..1): the lexical half of the confidence."""
        query = set(text_tokens(text=text))
        if not query:
            return 0.0
        where = np.flatnonzero(self.ids == doc_id)
        return len(query & self.tokens[where[0]]) / len(query) if len(where) else 0.0


def ranks_fuse(*, rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank); k=60 as in Cormack et al. (2009)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
