"""REST API of the support desk.

Customers (anonymous, the deliberate exception to "anonymous refused"): /api/support/messages, /feedback and
/conversations/<token>/messages. A conversation is reached only through the unguessable token the server issued
with its first reply, and every customer call is throttled per client address (SUPPORT_CUSTOMER_RATE, the address
read by apps.core.clients) and per conversation (SUPPORT_CONVERSATION_RATE).
Agents (support role, session or token): /api/support/console/...
"""
from __future__ import annotations

import hashlib

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers as rf
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.access import HasAccess
from apps.core.clients import SuiteRateThrottle
from apps.core.schema import OBJECT_LIST, ErrorSerializer
from apps.support.live import conversation_push, handoff_notify
from apps.support.models import (
    AgentPresence,
    CannedResponse,
    Conversation,
    Feedback,
    KnowledgeBase,
    KnowledgeGap,
    Message,
)
from apps.support.serializers import conversation_detail, conversation_summary, gap_dict, message_dict
from services.errors import SuiteError
from services.support import conversations as conv
from services.support.assignment import agent_available_set
from services.support.knowledge import kb_ensure, kb_get, kb_index_state, kb_rebuilding

SUPPORT = [HasAccess("support")]

# Schema only (the views validate through the services, which name the bad field).
MESSAGE_IN = inline_serializer("SupportMessageIn", {"conversation": rf.CharField(required=False, allow_null=True),
                                                    "text": rf.CharField(), "kb": rf.CharField(required=False)})
MESSAGE_OUT = inline_serializer("SupportMessageOut", {
    "conversation": rf.CharField(), "reply": rf.CharField(allow_null=True), "citations": rf.ListField(child=rf.DictField()),
    "confidence": rf.FloatField(), "intent": rf.CharField(allow_null=True), "handoff": rf.BooleanField(),
    "state": rf.CharField(), "message": rf.IntegerField(allow_null=True),
    "choices": rf.ListField(child=rf.DictField(), help_text="options offered: {kind: item|handoff|cancel, id, label}")})
CHOICE_IN = inline_serializer("SupportChoiceIn", {"conversation": rf.CharField(), "message": rf.IntegerField(),
                                                  "choice": rf.CharField()})
FEEDBACK_IN = inline_serializer("SupportFeedbackIn", {"conversation": rf.CharField(), "message": rf.IntegerField(),
                                                      "rating": rf.ChoiceField(choices=["up", "down"])})
TEXT_IN = inline_serializer("SupportActionIn", {"text": rf.CharField(required=False), "canned": rf.IntegerField(required=False),
                                                 "labels": rf.ListField(child=rf.CharField(), required=False)})
GAP_IN = inline_serializer("SupportGapAddIn", {"answer": rf.CharField(), "question": rf.CharField(), "title": rf.CharField(),
                                              "confirmed": rf.BooleanField(), "intent": rf.CharField(required=False),
                                              "url": rf.CharField(required=False)})


class CustomerThrottle(SuiteRateThrottle):
    """Per client address (the trusted-proxy rule of apps.core.clients): SUPPORT_CUSTOMER_RATE."""

    scope = "support_customer"
    rate_setting = "SUPPORT_CUSTOMER_RATE"


class ConversationThrottle(SuiteRateThrottle):
    """Per conversation, whatever the address (one chat from many addresses): SUPPORT_CONVERSATION_RATE.

    The conversation is the token in the URL or the JSON body; a request without one (a new chat) is left to the
    per-address throttle. The cache key holds a hash of the token, not the token itself.
    """

    scope = "support_conversation"
    rate_setting = "SUPPORT_CONVERSATION_RATE"

    def get_cache_key(self, request, view) -> str | None:  # noqa: ANN001
        token = view.kwargs.get("token")
        if token is None and isinstance(request.data, dict):
            token = request.data.get("conversation")
        if not token or not isinstance(token, str):
            return None
        return self.cache_format % {"scope": self.scope, "ident": hashlib.sha256(token.encode()).hexdigest()[:32]}


class CustomerView(APIView):
    authentication_classes: list = []  # no session: no CSRF to satisfy, nobody's identity involved
    permission_classes = [AllowAny]
    throttle_classes = [CustomerThrottle, ConversationThrottle]


def _field(request: Request, name: str, *, required: bool = True) -> object:
    if not isinstance(request.data, dict):
        raise SuiteError("Send a JSON object.")
    value = request.data.get(name)
    if required and value in (None, ""):
        raise SuiteError(f"`{name}` is required.", field=name)
    return value


class CustomerMessage(CustomerView):
    """POST {conversation?, text, kb?} → {conversation, reply, citations, confidence, intent, handoff, state}."""

    @extend_schema(request=MESSAGE_IN, responses={201: MESSAGE_OUT, 404: ErrorSerializer})
    def post(self, request: Request) -> Response:
        token = _field(request, "conversation", required=False)
        name = str(_field(request, "kb", required=False) or "default")
        kb = kb_ensure(name=name) if name == "default" else kb_get(name=name)  # an empty default KB hands over
        exchange = conv.message_receive(kb=kb, token=str(token) if token else None, text=_field(request, "text"))
        return _exchange_response(exchange)


def _exchange_response(exchange: conv.Exchange) -> Response:
    """Push the exchange to the live pages and answer the customer (one shape for messages and choices)."""
    conversation_push(conversation=exchange.conversation, messages=[exchange.question, exchange.reply])
    answer = exchange.answer
    if answer.handoff and exchange.reply is not None:
        handoff_notify(conversation=exchange.conversation)
    body = {"conversation": exchange.conversation.token, "state": exchange.conversation.state,
            "message": exchange.reply.id if exchange.reply else None}
    if exchange.reply is None:  # an agent holds the conversation: they will answer
        body.update(reply=None, citations=[], confidence=answer.confidence, intent=answer.intent or None, handoff=True,
                    choices=[])
    else:
        body.update(reply=exchange.reply.text, citations=exchange.reply.citations, confidence=answer.confidence,
                    intent=answer.intent or None, handoff=answer.handoff, choices=exchange.reply.choices)
    return Response(body, status=201)


class CustomerChoice(CustomerView):
    """POST {conversation, message, choice}: the customer picks an option a bot message offered (once per message)."""

    @extend_schema(request=CHOICE_IN, responses={201: MESSAGE_OUT, 400: ErrorSerializer, 404: ErrorSerializer,
                                                 409: ErrorSerializer})
    def post(self, request: Request) -> Response:
        conversation = conv.conversation_get(token=str(_field(request, "conversation")))
        exchange = conv.choice_pick(conversation=conversation, message_id=_int(_field(request, "message"), "message"),
                                    choice=_field(request, "choice"))
        return _exchange_response(exchange)


class CustomerHistory(CustomerView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, token: str) -> Response:
        conversation = conv.conversation_get(token=token)
        messages = conversation.messages.filter(sender__in=Message.CUSTOMER_VISIBLE).select_related("author")
        return Response({"conversation": token, "state": conversation.state, "messages": [message_dict(m) for m in messages]})


class CustomerFeedback(CustomerView):
    """POST {conversation, message, rating: up|down}: once per answer (a second rating is 409)."""

    @extend_schema(request=FEEDBACK_IN, responses={201: OpenApiTypes.OBJECT, 404: ErrorSerializer, 409: ErrorSerializer})
    def post(self, request: Request) -> Response:
        conversation = conv.conversation_get(token=str(_field(request, "conversation")))
        message = conversation.messages.filter(pk=_int(_field(request, "message"), "message"), sender=Message.BOT).first()
        if message is None:
            raise SuiteError("No such bot answer in this conversation.", field="message")
        rating = _field(request, "rating")
        if rating not in (Feedback.UP, Feedback.DOWN):
            raise SuiteError("`rating` must be up or down.", field="rating")
        conv.feedback_record(message=message, kind=rating)
        return Response({"ok": True}, status=201)


def _int(value: object, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SuiteError(f"`{name}` must be a number.", field=name) from None


# --- agents -------------------------------------------------------------------------------------------------

class ConsoleConversations(APIView):
    permission_classes = SUPPORT

    @extend_schema(responses=OBJECT_LIST, operation_id="support_console_conversations_list")
    def get(self, request: Request) -> Response:
        """?state=bot,queued,agent (default; "all" for every state), ?q= words in any message, ?label= one label."""
        state = request.query_params.get("state", "bot,queued,agent")
        rows = conv.conversations_search(states=None if state == "all" else state.split(","),
                                         text=request.query_params.get("q", ""), label=request.query_params.get("label", ""))
        return Response([conversation_summary(c) for c in rows])


class ConsoleConversation(APIView):
    permission_classes = SUPPORT

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="support_console_conversation_detail")
    def get(self, request: Request, pk: int) -> Response:
        return Response(conversation_detail(get_object_or_404(Conversation.objects.select_related("kb", "agent"), pk=pk)))


class ConsoleAction(APIView):
    """POST /console/conversations/<id>/<take-over|hand-back|resolve|reply|note|canned|labels>.

    resolve also asks the customer the satisfaction question (answered through /api/support/choices); labels takes
    {"labels": [names]} and replaces the conversation's labels.
    """

    permission_classes = SUPPORT

    @extend_schema(request=TEXT_IN, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, pk: int, action: str) -> Response:
        conversation = get_object_or_404(Conversation.objects.select_related("kb", "agent"), pk=pk)
        agent = request.user
        message = None
        if action == "take-over":
            conv.conversation_take_over(conversation=conversation, agent=agent)
        elif action == "hand-back":
            conv.conversation_hand_back(conversation=conversation)
        elif action == "resolve":
            conv.conversation_resolve(conversation=conversation)
            message = conv.csat_ask(conversation=conversation)
        elif action == "labels":
            conv.conversation_labels_set(conversation=conversation, labels=_field(request, "labels", required=False) or [])
        elif action == "reply":
            message = conv.agent_reply(conversation=conversation, agent=agent, text=_field(request, "text"))
        elif action == "note":
            message = conv.note_add(conversation=conversation, agent=agent, text=_field(request, "text"))
        elif action == "canned":
            canned = get_object_or_404(CannedResponse, pk=_int(_field(request, "canned"), "canned"))
            return Response({"text": conv.canned_render(canned=canned, conversation=conversation, agent=agent)})
        else:
            raise SuiteError(f"Unknown action {action!r}.", field="action")
        conversation_push(conversation=conversation, messages=[message])
        return Response(conversation_detail(conversation))


class ConsolePresence(APIView):
    """GET → {available}; POST {available: bool}: whether this agent takes newly handed-off conversations."""

    permission_classes = SUPPORT

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="support_console_presence_get")
    def get(self, request: Request) -> Response:
        presence = AgentPresence.objects.filter(user=request.user).first()
        return Response({"available": bool(presence and presence.available)})

    @extend_schema(request=inline_serializer("SupportPresenceIn", {"available": rf.BooleanField()}),
                   responses=OpenApiTypes.OBJECT, operation_id="support_console_presence_set")
    def post(self, request: Request) -> Response:
        available = _field(request, "available")
        if not isinstance(available, bool):
            raise SuiteError("`available` must be true or false.", field="available")
        return Response({"available": agent_available_set(agent=request.user, available=available).available})


class ConsoleMarkWrong(APIView):
    permission_classes = SUPPORT

    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        message = get_object_or_404(Message.objects.select_related("conversation__kb"), pk=pk)
        conv.feedback_record(message=message, kind=Feedback.WRONG, author=request.user)
        conversation_push(conversation=message.conversation)
        return Response({"ok": True}, status=201)


class ConsoleMarkRight(APIView):
    """POST: the agent confirms the bot answer's intent; the customer's question becomes an `intent` training example."""

    permission_classes = SUPPORT

    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        message = get_object_or_404(Message.objects.select_related("conversation__kb"), pk=pk)
        conv.feedback_record(message=message, kind=Feedback.RIGHT, author=request.user)
        return Response({"ok": True}, status=201)


class ConsoleCanned(APIView):
    permission_classes = SUPPORT

    @extend_schema(responses=OBJECT_LIST)
    def get(self, request: Request) -> Response:
        return Response([{"id": c.id, "name": c.name, "text": c.text} for c in CannedResponse.objects.order_by("name")])


class ConsoleGaps(APIView):
    permission_classes = SUPPORT

    @extend_schema(responses=OBJECT_LIST)
    def get(self, request: Request) -> Response:
        gaps = KnowledgeGap.objects.filter(status=request.query_params.get("status", KnowledgeGap.OPEN)).select_related("kb")[:200]
        return Response([gap_dict(g) for g in gaps])


class ConsoleGapAdd(APIView):
    """POST {answer, question, title, confirmed: true, intent?, url?}: a new FAQ entry answering the gap.

    The agent writes or confirms the question and the title (customers see the title as a source): a missing one,
    or `confirmed` not true, is a 400 naming the field; nothing is stored until both are given and confirmed.
    """

    permission_classes = SUPPORT

    @extend_schema(request=GAP_IN, responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, pk: int) -> Response:
        gap = get_object_or_404(KnowledgeGap.objects.select_related("kb"), pk=pk)
        required = {name: str(_field(request, name)) for name in ("question", "title", "answer")}
        if _field(request, "confirmed", required=False) is not True:
            raise SuiteError("`confirmed` must be true: check that the question and title hold nothing personal, "
                             "since every customer may see them.", field="confirmed")
        values = {name: str(_field(request, name, required=False) or "") for name in ("intent", "url")}
        gap = conv.gap_add_to_kb(gap=gap, **required, **values)
        return Response(gap_dict(gap), status=201)


class ConsoleKnowledgeBases(APIView):
    permission_classes = SUPPORT

    @extend_schema(responses=OBJECT_LIST)
    def get(self, request: Request) -> Response:
        rows = []
        for kb in KnowledgeBase.objects.order_by("name"):
            state, message = kb_index_state(kb)
            rows.append({"name": kb.name, "state": state, "progress": kb.index_progress, "message": message,
                         "faqs": kb.faqs.count(), "passages": kb.passages.count()})
        return Response(rows)


class ConsoleKnowledgeBaseRebuild(APIView):
    """POST: queue a full index rebuild on a Celery worker (support.index_rebuild); follow it on GET .../kbs."""

    permission_classes = SUPPORT

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request, name: str) -> Response:
        from apps.support.tasks import index_rebuild

        kb = kb_get(name=name)
        if kb_rebuilding(kb):  # a lapsed lease (a killed rebuild) is not "building"
            raise SuiteError(f"The index of {name!r} is already being rebuilt.", field="kb")
        return Response({"kb": name, "task_id": index_rebuild.delay(name).id}, status=202)
