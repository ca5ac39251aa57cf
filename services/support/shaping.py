"""Answers shaped for the question: from a passage the sentences that answer it, from an FAQ entry its answer.

The passage stays the citation (the customer can read all of it); the reply is what answers. Django-free.
"""
from __future__ import annotations

import math
import re

from services.support.lexical import CODE, text_tokens

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
SHORT_PASSAGE_WORDS = 45  # a passage this short is its own answer
MAX_SENTENCES = 2  # the best sentence and at most one neighbour that also answers
SPECIFIC_WEIGHT = 1.5  # the question's code, model or number counts more than a shared common word


def sentences_split(*, text: str) -> list[str]:
    """Sentences of a passage (a sentence ends at . ! ? before a capital or digit, or at a line break)."""
    return [s.strip() for s in SENTENCE_END.split(text) if s and s.strip()]


def _stem(token: str) -> str:
    """A crude suffix strip so "lasts" meets "last" and "charges" meets "charge" (no dictionary, no model)."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(token) > 4 and token.endswith(suffix):
            return token[: -len(suffix)]
    return token


def _terms(text: str) -> set[str]:
    """Stemmed tokens; a code counts once ("XR-200" → "xr200", not also "xr" and "200")."""
    tokens = text_tokens(text=text)
    codes = {f"{a}{b}".lower(): (a.lower(), b.lower()) for a, b in CODE.findall(text)}
    parts = {part for pair in codes.values() for part in pair}
    return {_stem(t) for t in tokens if t in codes or t not in parts}


def sentence_scores(*, sentences: list[str], question: str, specific: set[str], context: str) -> list[float]:
    """Each sentence's share of the question: its terms weighted by how rare they are among the passage's sentences
    (a code every sentence repeats tells nothing), specific terms by SPECIFIC_WEIGHT, earlier turns' words by half."""
    words = _terms(question)
    extra = _terms(context) - words if context else set()
    per_sentence = [_terms(s) for s in sentences]
    n = len(sentences)
    scores = []
    for terms in per_sentence:
        score = 0.0
        for term in terms & (words | extra):
            df = sum(term in other for other in per_sentence)
            weight = math.log(1 + n / df) * (SPECIFIC_WEIGHT if term in specific else 1.0)
            score += weight * (0.5 if term in extra else 1.0)
        scores.append(score)
    return scores


def passage_excerpt(*, question: str, text: str, specific: set[str] | None = None,
                    context: str = "") -> tuple[str, bool]:
    """(the sentences of `text` that answer `question`, whether that is less than the whole passage).

    1. A short passage (≤ SHORT_PASSAGE_WORDS words or one sentence) is returned whole.
    2. Each sentence is scored by the question's words, its specific terms and the earlier turns' words.
    3. The best sentence and, when it also answers, its better neighbour, in the passage's order. No sentence
       sharing a word → the passage's opening sentences (the passage was found by meaning).
    """
    sentences = sentences_split(text=text)
    if len(text.split()) <= SHORT_PASSAGE_WORDS or len(sentences) <= 1:
        return text, False
    scores = sentence_scores(sentences=sentences, question=question, specific=specific or set(), context=context)
    best = max(range(len(sentences)), key=lambda i: (scores[i], -i))
    if scores[best] <= 0:
        chosen = [0, 1]
    else:
        neighbours = [i for i in (best - 1, best + 1) if 0 <= i < len(sentences) and scores[i] > 0]
        chosen = [best] + sorted(neighbours, key=lambda i: (-scores[i], i))[:MAX_SENTENCES - 1]
    chosen = sorted(set(chosen))
    excerpt = " ".join(sentences[i] for i in chosen)
    return excerpt, len(chosen) < len(sentences)
