"""Conversations between customers, the bot and agents: receive, answer, hand off, take over, reply, resolve.

Texts are masked (e-mails, card numbers, phone numbers) before they are stored; the bot answers the
unmasked text in memory. Pushing to live pages is the web layer's job (apps.support.live).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Case, CharField, F, Q, Value, When
from django.utils import timezone

from apps.support.models import (
    CannedResponse,
    Conversation,
    Feedback,
    KnowledgeBase,
    KnowledgeGap,
    Message,
    TrainingExample,
)
from services.errors import Conflict, NotFound, SuiteError
from services.metrics import support_reply_count
from services.support.answering import HANDING_OFF, Answer, item_answer, question_answer, text_check
from services.support.assignment import conversation_assign
from services.support.knowledge import faq_add
from services.support.masking import text_mask


@dataclass
class Exchange:
    conversation: Conversation
    question: Message
    reply: Message | None  # the bot's reply the customer sees; None while an agent holds the conversation
    answer: Answer


def conversation_get(*, token: str) -> Conversation:
    found = Conversation.objects.filter(token=str(token or "")).select_related("kb").first()
    if found is None:
        raise NotFound("No such conversation.", field="conversation")
    return found


def _suggestion_store(*, conversation: Conversation, question: Message, answer: Answer) -> Message | None:
    """What the bot would say, with its sources, for the agents (when it handed off or an agent holds the chat)."""
    if not answer.hits:
        return None
    best = answer.hits[0]
    return Message.objects.create(conversation=conversation, sender=Message.SUGGESTION, text=best.item.text,
                                  reply_to=question, intent=answer.intent, confidence=answer.confidence,
                                  citations=answer.citations)


CONTEXT_TURNS = 3  # earlier customer messages a follow-up is read with
GAP_REASONS = {"low_confidence", "out_of_scope", "empty_kb"}  # a handoff the knowledge base could have prevented


def conversation_context(*, conversation: Conversation | None) -> list[str]:
    """The customer's last CONTEXT_TURNS messages, oldest first (masked as stored): what a follow-up refers to."""
    if conversation is None:
        return []
    texts = conversation.messages.filter(sender=Message.CUSTOMER).order_by("-id").values_list("text", flat=True)
    return list(texts[:CONTEXT_TURNS])[::-1]


def message_receive(*, kb: KnowledgeBase, token: str | None, text: object) -> Exchange:
    """A customer's message: store it (masked), answer it or hand it off, and record a knowledge gap on handoff.

    1. Check the text (empty, overlong, binary → SuiteError naming `text`).
    2. Find the conversation by its token (its recent turns give a follow-up its subject).
    3. Answer with the production path; below threshold / out of scope / empty KB / a request for a person → the
       queue. No transaction is held meanwhile: answering takes a while, and an agent may take the conversation
       over during it.
    4. Claim the bot's turn with one conditional update (a resolved conversation reopens); when an agent holds the
       conversation, or took it over since step 2, the claim fails and the bot only suggests.
    """
    text = text_check(text=text)
    conversation = None
    if token:
        conversation = conversation_get(token=token)
        if conversation.kb_id != kb.pk:
            raise SuiteError("This conversation belongs to another knowledge base.", field="kb")
    context = conversation_context(conversation=conversation)
    answer = question_answer(kb=kb, text=text, context=context)
    with transaction.atomic():
        if conversation is None:
            conversation = Conversation.objects.create(kb=kb)
        bot_turn = _bot_turn_claim(conversation=conversation, answer=answer)
        conversation.refresh_from_db()
        question = Message.objects.create(conversation=conversation, sender=Message.CUSTOMER, text=text_mask(text=text),
                                          intent=answer.intent, confidence=answer.confidence)
        reply = None
        if bot_turn:
            reply = Message.objects.create(conversation=conversation, sender=Message.BOT, text=answer.reply, reply_to=question,
                                           intent=answer.intent, confidence=answer.confidence, handoff=answer.handoff,
                                           citations=[] if answer.handoff else answer.citations,
                                           choices=answer.choices)
        if not bot_turn or answer.handoff:
            _suggestion_store(conversation=conversation, question=question, answer=answer)
        if answer.handoff and answer.reason in GAP_REASONS:
            KnowledgeGap.objects.create(kb=kb, question=question.text, reason=answer.reason, confidence=answer.confidence,
                                        message=question)
    if answer.handoff and bot_turn:
        conversation_assign(conversation=conversation)
    support_reply_count(handoff=answer.handoff, reason=answer.reason)
    return Exchange(conversation=conversation, question=question, reply=reply, answer=answer)


PICK_CANCELLED = "All right. What else can I help you with?"


def choice_pick(*, conversation: Conversation, message_id: object, choice: object) -> Exchange:
    """The customer picked one of the options a bot message offered: answer with it, hand off, or carry on.

    1. The message must be a bot message of this conversation that offered `choice`; one pick per message
       (a second is a Conflict, enforced by the database too).
    2. The pick is stored as the customer's message (its label), as feedback (PICKED) and, for a KB item, as a
       `rerank` training example (the question and the item the customer meant): what the ranking stage learns from.
    3. An item → its answer (the passage's sentences that answer the original question); "handoff" → the queue;
       "cancel" → the bot carries on. While an agent holds the conversation the pick is refused.
    """
    try:
        message = conversation.messages.get(pk=int(message_id), sender=Message.BOT)
    except (TypeError, ValueError, Message.DoesNotExist):
        raise SuiteError("No such bot message in this conversation.", field="message") from None
    picked = next((c for c in message.choices if str(c.get("id")) == str(choice)), None)
    if picked is None:
        raise SuiteError("That choice was not offered by this message.", field="choice")
    question = _question_of(message)
    question_text = question.text if question is not None else ""
    if picked["kind"] == "csat":
        return _csat_record(conversation=conversation, message=message, picked=picked)
    if picked["kind"] == "item":
        answer = item_answer(kb=conversation.kb, item_id=int(picked["id"]), question=question_text)
    elif picked["kind"] == "handoff":
        answer = Answer(reply=HANDING_OFF, confidence=1.0, handoff=True, reason="handoff_requested",
                        intent=message.intent)
    else:
        answer = Answer(reply=PICK_CANCELLED, confidence=1.0, handoff=False, reason="cancelled", intent=message.intent)
    try:
        with transaction.atomic():
            if Feedback.objects.filter(message=message, kind=Feedback.PICKED).exists():
                raise Conflict("A choice was already made for this message.", field="message")
            Feedback.objects.create(message=message, kind=Feedback.PICKED, choice=str(picked["id"]))
            if not _bot_turn_claim(conversation=conversation, answer=answer):
                raise Conflict("An agent is handling this conversation now.", field="conversation")
            conversation.refresh_from_db()
            said = Message.objects.create(conversation=conversation, sender=Message.CUSTOMER, reply_to=message,
                                          text=text_mask(text=str(picked["label"])))
            reply = Message.objects.create(conversation=conversation, sender=Message.BOT, text=answer.reply, reply_to=said,
                                           intent=answer.intent, confidence=answer.confidence, handoff=answer.handoff,
                                           citations=answer.citations)
            if picked["kind"] == "item" and question is not None:
                TrainingExample.objects.create(task="rerank", text=question_text, label=str(picked["id"]),
                                               source="customer_pick", message=message)
    except IntegrityError:  # a concurrent pick of the same message won the race
        raise Conflict("A choice was already made for this message.", field="message") from None
    if answer.handoff:
        conversation_assign(conversation=conversation)
    support_reply_count(handoff=answer.handoff, reason=answer.reason)
    return Exchange(conversation=conversation, question=said, reply=reply, answer=answer)


def _csat_record(*, conversation: Conversation, message: Message, picked: dict) -> Exchange:
    """The customer's satisfaction rating: stored on the conversation, thanked, the conversation left as it is."""
    score = int(str(picked["id"]).removeprefix("csat-"))
    try:
        with transaction.atomic():
            if Feedback.objects.filter(message=message, kind=Feedback.PICKED).exists():
                raise Conflict("This conversation was already rated.", field="message")
            Feedback.objects.create(message=message, kind=Feedback.PICKED, choice=str(picked["id"]))
            Conversation.objects.filter(pk=conversation.pk).update(csat=score)
            said = Message.objects.create(conversation=conversation, sender=Message.CUSTOMER, reply_to=message,
                                          text=str(picked["label"]))
            reply = Message.objects.create(conversation=conversation, sender=Message.BOT, text=CSAT_THANKS, reply_to=said)
    except IntegrityError:
        raise Conflict("This conversation was already rated.", field="message") from None
    conversation.refresh_from_db()
    return Exchange(conversation=conversation, question=said, reply=reply,
                    answer=Answer(reply=CSAT_THANKS, confidence=1.0, handoff=False, reason="csat"))


def _bot_turn_claim(*, conversation: Conversation, answer: Answer) -> bool:
    """Whether the bot may reply; the claim and the state it leaves (queued on handoff) are one conditional update."""
    now = timezone.now()
    if answer.handoff:
        state = Value(Conversation.QUEUED)
    else:
        state = Case(When(state=Conversation.RESOLVED, then=Value(Conversation.BOT)), default=F("state"),
                     output_field=CharField())
    seen = {"last_intent": answer.intent, "last_confidence": answer.confidence, "updated_at": now}
    rows = Conversation.objects.filter(pk=conversation.pk)
    if rows.exclude(state=Conversation.AGENT).update(state=state, **seen) == 1:
        return True
    rows.update(**seen)
    return False


# --- agents -------------------------------------------------------------------------------------------------

def _state_move(*, conversation: Conversation, to: str, agent=None) -> Conversation:  # noqa: ANN001
    conversation.state = to
    conversation.agent = agent
    conversation.save(update_fields=["state", "agent", "updated_at"])
    return conversation


def conversation_take_over(*, conversation: Conversation, agent) -> Conversation:  # noqa: ANN001
    """The agent holds the conversation: the bot stops replying (it still suggests).

    1. Claim it with one conditional update: it must be free or already held by this agent, so of two agents
       taking over at once exactly one wins, and a bot answer being written meanwhile sees the take-over.
    2. Read it back; when another agent holds it → Conflict (409) naming them.
    """
    free = ~Q(state=Conversation.AGENT) | Q(agent__isnull=True) | Q(agent=agent)
    claimed = Conversation.objects.filter(free, pk=conversation.pk).update(state=Conversation.AGENT, agent=agent,
                                                                            updated_at=timezone.now())
    conversation.refresh_from_db()
    if claimed != 1:
        holder = conversation.agent.get_username() if conversation.agent else "Another agent"
        raise Conflict(f"{holder} already holds this conversation.", field="conversation")
    return conversation


def conversation_hand_back(*, conversation: Conversation) -> Conversation:
    return _state_move(conversation=conversation, to=Conversation.BOT)


def conversation_resolve(*, conversation: Conversation) -> Conversation:
    return _state_move(conversation=conversation, to=Conversation.RESOLVED)


CSAT_ASK = "Your question was resolved. How satisfied are you with the help you got?"
CSAT_THANKS = "Thank you for your rating."
CSAT_CHOICES = [{"kind": "csat", "id": f"csat-{n}", "label": label} for n, label in
                ((5, "5 Very satisfied"), (4, "4 Satisfied"), (3, "3 Neutral"), (2, "2 Unsatisfied"),
                 (1, "1 Very unsatisfied"))]


def csat_ask(*, conversation: Conversation) -> Message:
    """The satisfaction question the customer sees when an agent resolves the conversation (answered once)."""
    return Message.objects.create(conversation=conversation, sender=Message.BOT, text=CSAT_ASK,
                                  choices=[dict(c) for c in CSAT_CHOICES])


LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
MAX_LABELS = 10


def conversation_labels_set(*, conversation: Conversation, labels: object) -> Conversation:
    """Replace the conversation's labels: a list of at most MAX_LABELS short names (letters, digits, - and _)."""
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise SuiteError("`labels` must be a list of names.", field="labels")
    clean = sorted({label.strip().lower() for label in labels if label.strip()})
    bad = [label for label in clean if not LABEL.fullmatch(label)]
    if bad:
        raise SuiteError(f"Label {bad[0]!r} must be 1-40 letters, digits, - or _.", field="labels")
    if len(clean) > MAX_LABELS:
        raise SuiteError(f"At most {MAX_LABELS} labels a conversation ({len(clean)} given).", field="labels")
    conversation.labels = "," + ",".join(clean) + "," if clean else ""
    conversation.save(update_fields=["labels", "updated_at"])
    return conversation


def conversations_search(*, states: list[str] | None = None, text: str = "", label: str = "",
                         limit: int = 200) -> list[Conversation]:
    """Conversations, newest activity first: in `states`, holding `text` in any message (masked text), with `label`."""
    rows = Conversation.objects.select_related("kb", "agent")
    if states:
        rows = rows.filter(state__in=states)
    if text.strip():
        ids = Message.objects.filter(text__icontains=text.strip()).values("conversation_id")
        rows = rows.filter(pk__in=ids)
    if label.strip():
        rows = rows.filter(labels__contains="," + label.strip().lower() + ",")
    return list(rows.order_by("-updated_at")[:limit])


def conversation_asked(*, conversation: Conversation) -> dict:
    """What the customer asked before a person got involved: their messages up to the first handoff (or all, when
    none), and why the bot handed off: the agent reads it instead of the whole transcript."""
    messages = list(conversation.messages.filter(sender__in=(Message.CUSTOMER, Message.BOT)).order_by("id"))
    asked, reason = [], ""
    for message in messages:
        if message.sender == Message.CUSTOMER:
            asked.append(message.text)
        elif message.handoff:
            reason = KnowledgeGap.objects.filter(message_id=message.reply_to_id).values_list("reason", flat=True).first() \
                or "requested"
            break
    return {"asked": asked, "handoff_reason": reason or None}


def agent_reply(*, conversation: Conversation, agent, text: object) -> Message:  # noqa: ANN001
    """An agent's reply (the customer sees it); replying takes the conversation over."""
    text = text_check(text=text)
    with transaction.atomic():
        if conversation.state != Conversation.AGENT:
            conversation_take_over(conversation=conversation, agent=agent)
        return Message.objects.create(conversation=conversation, sender=Message.AGENT, text=text_mask(text=text), author=agent)


def note_add(*, conversation: Conversation, agent, text: object) -> Message:  # noqa: ANN001
    """An internal note: agents see it, the customer never does."""
    return Message.objects.create(conversation=conversation, sender=Message.NOTE, text=text_mask(text=text_check(text=text)),
                                  author=agent)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"  # an unknown placeholder stays visible rather than failing


def canned_render(*, canned: CannedResponse, conversation: Conversation, agent) -> str:  # noqa: ANN001
    """The canned text with {agent}, {conversation}, {kb} and {topic} filled in."""
    values = _Blank(agent=agent.get_full_name() or agent.get_username(), conversation=str(conversation.pk),
                    kb=conversation.kb.name, topic=conversation.last_intent.replace("_", " ") or "your question")
    return string.Formatter().vformat(canned.text, (), values)


# --- feedback, gaps, training data ------------------------------------------------------------------------

def _question_of(message: Message) -> Message | None:
    return message.reply_to if message.reply_to_id else None


def feedback_record(*, message: Message, kind: str, author=None) -> Feedback:  # noqa: ANN001
    """A customer's thumbs up/down, an agent's "bot answer wrong" or "bot answer right", on a bot answer.

    1. A customer rates an answer once (the second rating is a Conflict, enforced by the database too).
    2. Only an agent's word becomes `intent` training data: right → (question, intent) labelled, wrong → the
       intent recorded as rejected. A customer's thumbs (anonymous, repeatable by anyone holding the token) are
       kept as feedback only; an agent confirms them with "right".
    3. Down and wrong add the question to the knowledge gaps, for an agent to answer.
    """
    if message.sender not in (Message.BOT, Message.SUGGESTION):
        raise SuiteError("Only the bot's answers can be rated.", field="message")
    if kind not in (Feedback.UP, Feedback.DOWN, Feedback.WRONG, Feedback.RIGHT):
        raise SuiteError("`rating` must be up or down.", field="rating")
    if kind == Feedback.RIGHT and not message.intent:
        raise SuiteError("This answer has no intent to confirm.", field="intent")
    question = _question_of(message)
    customer = kind in Feedback.CUSTOMER_RATINGS
    try:
        with transaction.atomic():
            if customer and Feedback.objects.filter(message=message, kind__in=Feedback.CUSTOMER_RATINGS).exists():
                raise Conflict("This answer was already rated.", field="message")
            feedback = Feedback.objects.create(message=message, kind=kind, author=author)
            if question is not None and kind == Feedback.RIGHT:
                TrainingExample.objects.create(text=question.text, label=message.intent, source="agent_confirmed", message=message)
            elif question is not None and kind == Feedback.WRONG:
                TrainingExample.objects.create(text=question.text, rejected=message.intent, source="agent_marked_wrong",
                                               message=message)
            if question is not None and kind in (Feedback.DOWN, Feedback.WRONG):
                KnowledgeGap.objects.get_or_create(
                    kb=message.conversation.kb, message=question, status=KnowledgeGap.OPEN,
                    defaults={"question": question.text, "reason": "marked_wrong" if kind == Feedback.WRONG else "thumbs_down",
                              "confidence": message.confidence})
    except IntegrityError:  # a concurrent rating of the same answer won the race
        raise Conflict("This answer was already rated.", field="message") from None
    return feedback


def gap_add_to_kb(*, gap: KnowledgeGap, answer: str, question: str, title: str, intent: str = "",
                  url: str = "") -> KnowledgeGap:
    """Answer a knowledge gap with a new FAQ entry (indexed at once); with an intent it is also a training example.

    The question and title are the agent's (written or confirmed, masked by faq_add), never the gap's own text:
    customers see the title as a source.
    """
    claimed = KnowledgeGap.objects.filter(pk=gap.pk, status=KnowledgeGap.OPEN).update(status=KnowledgeGap.ADDED)
    if claimed != 1:
        raise SuiteError("This knowledge gap was already handled.", field="gap")
    try:
        entry = faq_add(kb=gap.kb, question=question, answer=answer, intent=intent, url=url, title=title)
    except BaseException:
        KnowledgeGap.objects.filter(pk=gap.pk).update(status=KnowledgeGap.OPEN)
        raise
    KnowledgeGap.objects.filter(pk=gap.pk).update(faq=entry)
    if intent:
        TrainingExample.objects.create(text=gap.question, label=intent, source="gap_added", message=gap.message)
    gap.refresh_from_db()
    return gap
