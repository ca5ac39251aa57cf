"""Plain dicts for the support API and the live pushes (one shape for both, so the pages render either)."""
from __future__ import annotations

from apps.support.models import Conversation, KnowledgeGap, Message
from services.support.masking import text_mask


def message_dict(message: Message) -> dict:
    return {"id": message.id, "sender": message.sender, "text": message.text, "intent": message.intent or None,
            "confidence": message.confidence, "citations": message.citations, "handoff": message.handoff,
            "choices": message.choices,
            "author": message.author.get_username() if message.author_id else None,
            "created_at": message.created_at.isoformat()}


def conversation_summary(conversation: Conversation) -> dict:
    last = conversation.messages.filter(sender=Message.CUSTOMER).order_by("-id").first()
    return {"id": conversation.id, "state": conversation.state, "kb": conversation.kb.name,
            "agent": conversation.agent.get_username() if conversation.agent_id else None,
            "intent": conversation.last_intent or None, "confidence": conversation.last_confidence,
            "last_customer_text": last.text if last else "", "updated_at": conversation.updated_at.isoformat(),
            "labels": conversation.label_list, "csat": conversation.csat}


def conversation_detail(conversation: Conversation) -> dict:
    messages = list(conversation.messages.select_related("author"))
    suggestion = next((m for m in reversed(messages) if m.sender == Message.SUGGESTION), None)
    from services.support.conversations import conversation_asked

    return {**conversation_summary(conversation), "messages": [message_dict(m) for m in messages],
            "suggestion": message_dict(suggestion) if suggestion else None,
            "summary": conversation_asked(conversation=conversation)}


def gap_dict(gap: KnowledgeGap) -> dict:
    """A gap, with the question and title the console offers the agent to edit (masked again: the masking may have
    learnt since the gap was stored) before "Add to knowledge base"."""
    suggestion = text_mask(text=gap.question).strip()
    title = suggestion if len(suggestion) <= 80 else suggestion[:79].rsplit(" ", 1)[0] + "…"
    return {"id": gap.id, "kb": gap.kb.name, "question": gap.question, "reason": gap.reason, "confidence": gap.confidence,
            "status": gap.status, "created_at": gap.created_at.isoformat(), "suggested_question": suggestion,
            "suggested_title": title}
