"""The ranking stage: orders the fused candidates of hybrid retrieval by several signals, none of them an override.

    score = retrieval confidence (cosine raised by word overlap)
          + SPECIFIC * share of the question's specific terms (product codes, model names, numbers) in the candidate
          + INTENT * intent probability, when the candidate is an FAQ of the predicted intent
          + LEARNED * a learned scorer's score, when one is installed

A question that names "XR-200" is about the XR-200: a candidate holding that code gains far more than an FAQ that
merely shares the predicted intent, so the predicted intent breaks near-ties and never moves an entry over a
candidate that names what the customer asked about.

A learned scorer plugs in as a function `(question, candidates) -> scores` in 0..1: `scorer_install`, else the dotted
path in SUPPORT_RERANK_SCORER, else the registry's `rerank` cross-encoder whenever that task has a champion
(services/support/rerank.py). A scorer that fails is logged and the candidates are ranked without it.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

from services.errors import NotFound, SuiteError
from services.support.lexical import CODE, STOPWORDS, TOKEN
from services.support.retrieval import Hit, Item

# (question, candidates) -> one score per candidate, 0..1, higher is better.
Scorer = Callable[[str, Sequence[Item]], Sequence[float]]

logger = logging.getLogger(__name__)
WORD = re.compile(r"[A-Za-z][\w-]*")


@dataclass(frozen=True)
class RankWeights:
    specific: float = 0.6  # per share of the question's codes / model names / numbers found in the candidate
    intent: float = 0.08  # times the intent probability, for an FAQ of the predicted intent: a tie-breaker
    learned: float = 0.5  # times the learned scorer's score (0..1), when one is installed

    def __post_init__(self) -> None:
        for name in ("specific", "intent", "learned"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 5:
                raise SuiteError(f"Rank weight `{name}` must be a number from 0 to 5, not {value!r}.", field=name)


WEIGHTS = RankWeights()


def specific_terms(*, text: str) -> set[str]:
    """What names a thing precisely: codes ("XR-200" → "xr200"), tokens holding digits ("200", "v2"), and model
    names (a capitalised word that does not start the sentence: "Pixel", "Trailblazer")."""
    terms = {f"{a}{b}".lower() for a, b in CODE.findall(text)}
    terms |= {t for t in TOKEN.findall(text.lower()) if any(ch.isdigit() for ch in t)}
    for sentence in re.split(r"[.!?]\s+", text):
        for word in WORD.findall(sentence)[1:]:
            if word[0].isupper() and word.lower() not in STOPWORDS and len(word) > 2:
                terms.add(word.lower().replace("-", ""))
    return terms


def item_terms(item: Item) -> set[str]:
    """Every token of a candidate (with joined codes and hyphen-free words) that a specific term may match."""
    return _terms_of(f"{item.title} {item.question} {item.text}")


@lru_cache(maxsize=20000)
def _terms_of(text: str) -> frozenset[str]:
    lower = text.lower()
    tokens = set(TOKEN.findall(lower))
    tokens |= {f"{a}{b}".lower() for a, b in CODE.findall(text)}
    tokens |= {w.replace("-", "") for w in WORD.findall(lower)}
    return frozenset(tokens)


def specific_share(*, terms: set[str], item: Item) -> float:
    """Share (0..1) of the question's specific terms that the candidate holds; 0 when the question names none."""
    if not terms:
        return 0.0
    return len(terms & item_terms(item)) / len(terms)


_installed: Scorer | None = None


def scorer_install(scorer: Scorer | None) -> None:
    """Use `scorer` as the learned signal in this process (None: the setting's, if any)."""
    global _installed
    _installed = scorer


def scorer_get() -> Scorer:
    """The installed scorer, else the one SUPPORT_RERANK_SCORER names (a dotted path), else the `rerank` champion's
    (which raises NotFound while the task has none: no learned signal then)."""
    if _installed is not None:
        return _installed
    path = getattr(settings, "SUPPORT_RERANK_SCORER", "")
    if not path:
        from services.support.rerank import champion_scores

        return champion_scores
    try:
        return import_string(path)
    except ImportError as exc:
        raise SuiteError(f"SUPPORT_RERANK_SCORER={path!r} cannot be imported: {exc}.", field="SUPPORT_RERANK_SCORER") from None


def hits_rank(*, question: str, hits: list[Hit], intent: object | None = None, scorer: Scorer | None = None,
              weights: RankWeights = WEIGHTS) -> list[Hit]:
    """The candidates ordered by their rank score (`Hit.score`), best first.

    1. Start from each candidate's retrieval confidence.
    2. Add the share of the question's specific terms the candidate holds (heavily weighted).
    3. Add a small bonus to FAQ entries of the predicted intent (an IntentGuess that is not out of scope).
    4. Add the learned scorer's score (one given, installed, or the `rerank` champion); none when it fails.
    Ties keep the fused order.
    """
    if not hits:
        return []
    scorer = scorer if scorer is not None else scorer_get()
    terms = specific_terms(text=question)
    label = getattr(intent, "label", "") if intent is not None and not getattr(intent, "out_of_scope", False) else ""
    prob = float(getattr(intent, "prob", 0.0) or 0.0)
    learned = _learned_scores(scorer=scorer, question=question, hits=hits)
    scored = []
    for position, hit in enumerate(hits):
        score = hit.confidence + weights.specific * specific_share(terms=terms, item=hit.item)
        if label and hit.item.intent == label:
            score += weights.intent * prob
        if learned:
            score += weights.learned * min(1.0, max(0.0, float(learned[position])))
        scored.append((round(score, 4), -position, replace(hit, score=round(score, 4))))
    scored.sort(key=lambda row: (row[0], row[1]), reverse=True)
    return [hit for _, _, hit in scored]


def _learned_scores(*, scorer: Scorer, question: str, hits: list[Hit]) -> list[float]:
    """The scorer's score per hit; [] (no learned signal) when there is no rerank champion or the scorer fails: a
    broken ranker must never stop the bot from answering."""
    try:
        learned = [float(score) for score in scorer(question, [hit.item for hit in hits])]
    except NotFound:  # the default scorer while the `rerank` task has no champion
        return []
    except Exception as exc:  # noqa: BLE001 - any failure of the learned signal: rank by the other signals
        logger.warning("rerank scorer failed, ranking without the learned signal: %s", exc)
        return []
    if len(learned) != len(hits):
        logger.warning("rerank scorer returned %d scores for %d candidates; ranking without it", len(learned), len(hits))
        return []
    return learned
