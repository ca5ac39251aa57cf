"""Answer one customer question: intent (registry champion, when there is one), hybrid retrieval, confidence, handoff.

The API, the console's suggestions and `support_eval` all call `question_answer`, so evaluation measures
exactly what customers get.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from apps.support.models import KnowledgeBase
from services.errors import NotFound, SuiteError
from services.support.retrieval import Hit, kb_search

INTENT_TASK = "intent"
OUT_OF_SCOPE_LABELS = {"oos", "out_of_scope", "out-of-scope", "other"}
NOT_SURE = ("I'm not sure I can answer that correctly, so I've passed your question to a member of our team. "
            "Someone will reply here shortly.")
EMPTY_KB = "Our help articles are not available yet, so I've passed your question to a member of our team."
CITATIONS = 3


@dataclass(frozen=True)
class IntentGuess:
    label: str
    prob: float
    out_of_scope: bool


@dataclass
class Answer:
    reply: str
    confidence: float
    handoff: bool
    reason: str  # answered | low_confidence | out_of_scope | empty_kb
    intent: str = ""
    intent_prob: float | None = None
    citations: list[dict] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)  # ranked, best first (eval reads them)

    def as_dict(self) -> dict:
        return {"reply": self.reply, "citations": self.citations, "confidence": self.confidence, "intent": self.intent or None,
                "handoff": self.handoff}


def intent_detect(*, text: str) -> IntentGuess | None:
    """The `intent` champion's guess, or None when the registry has no intent model (retrieval alone then)."""
    from services.registry.serving import texts_classify

    try:
        out = texts_classify(task=INTENT_TASK, texts=[text])
    except NotFound:
        return None
    label = out.labels[0]
    prob = float(out.probs[0].max())
    oos = label.lower() in OUT_OF_SCOPE_LABELS or prob < settings.SUPPORT_INTENT_MIN_PROB
    return IntentGuess(label=label, prob=round(prob, 4), out_of_scope=oos)


def text_check(*, text: object) -> str:
    """The message stripped, or SuiteError for empty, overlong or binary input."""
    if not isinstance(text, str):
        raise SuiteError("`text` must be a string.", field="text")
    text = text.strip()
    if not text:
        raise SuiteError("The message is empty.", field="text")
    if len(text) > settings.SUPPORT_MESSAGE_MAX_CHARS:
        raise SuiteError(f"The message is {len(text)} characters long; the limit is {settings.SUPPORT_MESSAGE_MAX_CHARS}.",
                         field="text")
    controls = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\t\n\r") or ch == "\ufffd")
    if controls:
        raise SuiteError("The message holds binary data, not text.", field="text")
    return text


def hits_rerank(*, hits: list[Hit], intent: IntentGuess | None) -> list[Hit]:
    """Move the best FAQ whose intent the model predicted to the front, when it is among the candidates."""
    if intent is None or intent.out_of_scope:
        return hits
    for position, hit in enumerate(hits):
        if hit.item.intent and hit.item.intent == intent.label:
            return [hit, *hits[:position], *hits[position + 1:]]
    return hits


def citation_of(hit: Hit) -> dict:
    item = hit.item
    return {"title": item.title, "url": item.url, "location": item.location, "kind": item.kind, "id": item.pk,
            "confidence": hit.confidence}


def question_answer(*, kb: KnowledgeBase, text: str, k: int = 5) -> Answer:
    """The bot's answer to `text`, or a handoff when the KB is empty, the question is out of scope or confidence is low.

    1. Intent and out-of-scope from the registry's `intent` champion (skipped when none is registered).
    2. Hybrid retrieval (dense + BM25, fused); an FAQ of the predicted intent goes first.
    3. Confidence of the best hit against SUPPORT_CONFIDENCE_THRESHOLD.
    """
    intent = intent_detect(text=text)
    hits = hits_rerank(hits=kb_search(kb=kb).search(text=text, k=k), intent=intent)
    label = intent.label if intent else (hits[0].item.intent if hits else "")
    prob = intent.prob if intent else None
    if not hits:
        return Answer(reply=EMPTY_KB, confidence=0.0, handoff=True, reason="empty_kb", intent=label, intent_prob=prob)
    best = hits[0]
    citations = [citation_of(hit) for hit in hits[:CITATIONS]]
    if intent is not None and intent.out_of_scope:
        return Answer(reply=NOT_SURE, confidence=best.confidence, handoff=True, reason="out_of_scope", intent=label,
                      intent_prob=prob, citations=citations, hits=hits)
    if best.confidence < settings.SUPPORT_CONFIDENCE_THRESHOLD:
        return Answer(reply=NOT_SURE, confidence=best.confidence, handoff=True, reason="low_confidence", intent=label,
                      intent_prob=prob, citations=citations, hits=hits)
    return Answer(reply=best.item.text, confidence=best.confidence, handoff=False, reason="answered", intent=label,
                  intent_prob=prob, citations=citations, hits=hits)
