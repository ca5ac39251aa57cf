"""Answer one customer question: intent (registry champion, when there is one), hybrid retrieval, confidence, handoff.

The API, the console's suggestions and `support_eval` all call `question_answer`, so evaluation measures
exactly what customers get.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from apps.support.models import KnowledgeBase
from services.errors import NotFound, SuiteError
from services.support.lexical import text_tokens
from services.support.ranking import hits_rank, specific_terms
from services.support.retrieval import Hit, kb_search
from services.support.shaping import passage_excerpt

INTENT_TASK = "intent"
OUT_OF_SCOPE_LABELS = {"oos", "out_of_scope", "out-of-scope", "other"}
NOT_SURE = ("I'm not sure I can answer that correctly, so I've passed your question to a member of our team. "
            "Someone will reply here shortly.")
EMPTY_KB = "Our help articles are not available yet, so I've passed your question to a member of our team."
CITATIONS = 3
RANK_DEPTH = 20  # fused candidates the ranking stage orders (the rest keep their fused order)


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
    reason: str  # answered | ambiguous | picked | low_confidence | out_of_scope | empty_kb | handoff_requested | handoff_offered
    intent: str = ""
    intent_prob: float | None = None
    citations: list[dict] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)  # ranked, best first (eval reads them)
    choices: list[dict] = field(default_factory=list)  # offered options: {"kind": item|handoff|cancel, "id", "label"}
    query: str = ""  # what was retrieved with: the text, or a follow-up joined to the previous question

    def as_dict(self) -> dict:
        return {"reply": self.reply, "citations": self.citations, "confidence": self.confidence, "intent": self.intent or None,
                "handoff": self.handoff, "choices": self.choices}


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


HANDOFF_PHRASES = re.compile(
    r"\b(talk|speak|chat|connect|transfer)\w*\b.{0,25}\b(person|human|agent|someone|somebody|representative|operator|"
    r"staff|people|real)\b|\b(real|live|actual)\s+(person|human|agent)\b|\bhuman\s+(please|agent|support)\b|"
    r"^\s*(agent|human|operator|representative)\s*[.!?]*\s*$", re.IGNORECASE)
HANDING_OFF = "I'm connecting you with a member of our team. Someone will reply here shortly."
HANDOFF_ASK = "Would you like me to connect you with a member of our team?"
AMBIGUOUS = "I found more than one possible answer. Which one do you mean?"
FOLLOW_UP_START = re.compile(r"^\s*(and|but|also|so|what about|how about|then|or)\b", re.IGNORECASE)
FOLLOW_UP_REF = re.compile(r"\b(it|that|this|those|these|they|them)\b", re.IGNORECASE)
FOLLOW_UP_WORDS = 8  # a question longer than this (content words) stands on its own
HANDOFF_CHOICES = [{"kind": "handoff", "id": "handoff", "label": "Yes, connect me with a person"},
                   {"kind": "cancel", "id": "cancel", "label": "No, thanks"}]


def handoff_requested(*, text: str, intent: IntentGuess | None) -> bool:
    """The customer asks for a person: a phrasing we know ("talk to a person", "real human") or an intent that the
    settings map there (SUPPORT_HANDOFF_INTENTS), whatever its probability."""
    if HANDOFF_PHRASES.search(text):
        return True
    return intent is not None and intent.label in settings.SUPPORT_HANDOFF_INTENTS


def follow_up_query(*, text: str, context: Sequence[str]) -> str:
    """The text to retrieve with: a short follow-up ("and how long does that take?") joined to the previous
    question; a question that stands alone (it names a product, or is long) as it is."""
    if not context:
        return text
    words = text_tokens(text=text)
    starts = bool(FOLLOW_UP_START.search(text))
    refers = bool(FOLLOW_UP_REF.search(text))
    if len(words) > FOLLOW_UP_WORDS or specific_terms(text=text) or not (starts or refers):
        return text
    return f"{context[-1]} {text}"


def hits_ambiguous(*, hits: list[Hit], margin: float) -> bool:
    """The best two candidates are both answerable, different, and closer than `margin` in rank score."""
    if margin <= 0 or len(hits) < 2:
        return False
    first, second = hits[0], hits[1]
    threshold = settings.SUPPORT_CONFIDENCE_THRESHOLD
    if first.confidence < threshold or second.confidence < threshold:
        return False
    if " ".join(first.item.text.split()) == " ".join(second.item.text.split()):
        return False
    return first.score - second.score < margin


def choice_of(hit: Hit) -> dict:
    """One "did you mean" option: the FAQ's question, or the passage's title and where it is."""
    item = hit.item
    label = item.question if item.kind == "faq" else (f"{item.title} ({item.location})" if item.location else item.title)
    return {"kind": "item", "id": item.id, "label": label[:200]}


def citation_of(hit: Hit) -> dict:
    item = hit.item
    return {"title": item.title, "url": item.url, "location": item.location, "kind": item.kind, "id": item.pk,
            "confidence": hit.confidence}


def hits_retrieve(*, kb: KnowledgeBase, query: str, k: int, intent: IntentGuess | None = None, rerank: bool = True,
                  retriever: str = "hybrid") -> list[Hit]:
    """The production retrieval path: hybrid candidates (dense + BM25 fused), the first RANK_DEPTH of them ordered
    by the ranking stage (`rerank`), the rest in fused order; the best `k`. `retrieval_eval` calls it too."""
    candidates = kb_search(kb=kb).candidates(text=query, n=max(k, RANK_DEPTH), retriever=retriever)
    if rerank:
        candidates = hits_rank(question=query, hits=candidates[:RANK_DEPTH], intent=intent) + candidates[RANK_DEPTH:]
    return candidates[:k]


def hit_reply(*, hit: Hit, question: str, context: str = "") -> tuple[str, dict]:
    """(reply, its citation) for one candidate: an FAQ's answer, or the sentences of a passage that answer the
    question (the citation then carries the whole passage: "read more")."""
    citation = citation_of(hit)
    if hit.item.kind != "passage":
        return hit.item.text, citation
    reply, cut = passage_excerpt(question=question, text=hit.item.text, specific=specific_terms(text=question),
                                 context=context)
    if cut:
        citation = {**citation, "excerpt": True, "text": hit.item.text}
    return reply, citation


def question_answer(*, kb: KnowledgeBase, text: str, k: int = 5, context: Sequence[str] = (),
                    rerank: bool = True) -> Answer:
    """The bot's answer to `text`, or a handoff when the KB is empty, the question is out of scope or confidence is low.

    1. A short follow-up is read with the previous question (`context`: earlier customer messages, oldest first).
    2. Intent and out-of-scope from the registry's `intent` champion (skipped when none is registered); a request
       for a person hands off at once (or asks first, SUPPORT_HANDOFF_CONFIRM).
    3. Hybrid retrieval (dense + BM25, fused), then the ranking stage (services.support.ranking: specific terms,
       retrieval confidence, the predicted intent as one small signal, a learned scorer when installed).
    4. Confidence of the best hit against SUPPORT_CONFIDENCE_THRESHOLD; the best two within
       SUPPORT_AMBIGUITY_MARGIN → offered as choices.
    5. The reply: an FAQ's answer, or the sentences of the passage that answer.
    """
    query = follow_up_query(text=text, context=context)
    intent = intent_detect(text=query)
    label = intent.label if intent else ""
    prob = intent.prob if intent else None
    if handoff_requested(text=text, intent=intent):
        if settings.SUPPORT_HANDOFF_CONFIRM:
            return Answer(reply=HANDOFF_ASK, confidence=1.0, handoff=False, reason="handoff_offered", intent=label,
                          intent_prob=prob, choices=[dict(c) for c in HANDOFF_CHOICES], query=query)
        return Answer(reply=HANDING_OFF, confidence=1.0, handoff=True, reason="handoff_requested", intent=label,
                      intent_prob=prob, query=query)
    hits = hits_retrieve(kb=kb, query=query, k=k, intent=intent, rerank=rerank)
    if not label and hits:
        label = hits[0].item.intent
    if not hits:
        return Answer(reply=EMPTY_KB, confidence=0.0, handoff=True, reason="empty_kb", intent=label, intent_prob=prob,
                      query=query)
    best = hits[0]
    citations = [citation_of(hit) for hit in hits[:CITATIONS]]
    common = {"intent": label, "intent_prob": prob, "hits": hits, "query": query}
    if intent is not None and intent.out_of_scope:
        return Answer(reply=NOT_SURE, confidence=best.confidence, handoff=True, reason="out_of_scope",
                      citations=citations, **common)
    if best.confidence < settings.SUPPORT_CONFIDENCE_THRESHOLD:
        return Answer(reply=NOT_SURE, confidence=best.confidence, handoff=True, reason="low_confidence",
                      citations=citations, **common)
    if hits_ambiguous(hits=hits, margin=settings.SUPPORT_AMBIGUITY_MARGIN):
        return Answer(reply=AMBIGUOUS, confidence=best.confidence, handoff=False, reason="ambiguous",
                      citations=citations[:2], choices=[choice_of(hit) for hit in hits[:2]], **common)
    reply, first = hit_reply(hit=best, question=text, context=query if query != text else "")
    return Answer(reply=reply, confidence=best.confidence, handoff=False, reason="answered",
                  citations=[first, *citations[1:]], **common)


def item_answer(*, kb: KnowledgeBase, item_id: int, question: str) -> Answer:
    """The answer from one item the customer picked among the bot's choices (NotFound when it is gone)."""
    item = kb_search(kb=kb).items.get(int(item_id))
    if item is None:
        raise NotFound("That answer is no longer in the knowledge base.", field="choice")
    hit = Hit(item=item, fused=0.0, dense=1.0, lexical=1.0)
    reply, citation = hit_reply(hit=hit, question=question)
    return Answer(reply=reply, confidence=1.0, handoff=False, reason="picked", intent=item.intent,
                  citations=[citation], hits=[hit], query=question)
