"""Support desk rows: knowledge bases (FAQ entries, documents and their passages), conversations, feedback, gaps."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def conversation_token_new() -> str:
    """The customer's only credential for a conversation: unguessable, issued by the server."""
    return secrets.token_urlsafe(24)


class KnowledgeBase(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    revision = models.PositiveIntegerField(default=0)  # bumped on every content change; caches key on it
    index_state = models.CharField(max_length=16, default="empty")  # empty | building | ready | failed
    index_progress = models.FloatField(default=0.0)  # 0..1 while a full rebuild runs
    index_message = models.CharField(max_length=300, blank=True)
    # A rebuild's lease (pipelines/support_index.py): its holder renews the expiry while embedding; "building" with
    # an expired lease is a rebuild that died, shown as failed, and the next rebuild takes over.
    index_lease_owner = models.CharField(max_length=32, blank=True)
    index_lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The registry task (a pairs task, e.g. `retrieval`) whose champion embeds this KB's items and questions; blank:
    # SUPPORT_EMBED_TASK, else the default base. Set with `support_kb_encoder` (services/support/knowledge.py
    # kb_embed_task_set), which re-embeds the KB beside its old vectors.
    embed_task = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class FaqEntry(models.Model):
    kb = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="faqs")
    key = models.CharField(max_length=64)  # sha256 of the normalised question: the identity across re-imports
    question = models.TextField()
    answer = models.TextField()
    intent = models.CharField(max_length=100, blank=True)
    url = models.CharField(max_length=500, blank=True)
    title = models.CharField(max_length=300, blank=True)
    content_hash = models.CharField(max_length=64)  # of everything but the key: unchanged → re-import is a no-op
    source = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kb", "key"], name="support_faq_unique_key")]

    def __str__(self) -> str:
        return self.question[:60]


class Document(models.Model):
    kb = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    source = models.CharField(max_length=500)  # path relative to the imported folder: the identity across re-imports
    title = models.CharField(max_length=300)
    url = models.CharField(max_length=500, blank=True)
    content_hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kb", "source"], name="support_document_unique_source")]

    def __str__(self) -> str:
        return self.title


class Passage(models.Model):
    kb = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="passages")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="passages")
    ordinal = models.PositiveIntegerField()  # position in the document
    title = models.CharField(max_length=300)  # document title, plus the section heading when there is one
    location = models.CharField(max_length=200)  # for citations: "section Returns", "page 3", "lines 10-24"
    text = models.TextField()
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="support_passage_unique_ordinal")]


class Conversation(models.Model):
    BOT = "bot"  # the bot answers
    QUEUED = "queued"  # handed off, waiting for an agent (the bot still suggests)
    AGENT = "agent"  # an agent took over
    RESOLVED = "resolved"
    STATES = [(s, s) for s in (BOT, QUEUED, AGENT, RESOLVED)]

    kb = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="conversations")
    token = models.CharField(max_length=64, unique=True, default=conversation_token_new)
    state = models.CharField(max_length=12, choices=STATES, default=BOT)
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_intent = models.CharField(max_length=100, blank=True)
    last_confidence = models.FloatField(null=True)
    labels = models.CharField(max_length=500, blank=True)  # ",billing,vip,": a label filter is one portable LIKE
    csat = models.PositiveSmallIntegerField(null=True, blank=True)  # 1..5, the customer's rating asked at resolve
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def label_list(self) -> list[str]:
        return [label for label in self.labels.split(",") if label]


class AgentPresence(models.Model):
    """Whether an agent takes new conversations now (the console's "Available" switch); teams are Django groups."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="support_presence")
    available = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)


class Message(models.Model):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    NOTE = "note"  # internal note: agents only
    SUGGESTION = "suggestion"  # the bot's suggested reply while an agent holds the conversation: agents only
    SENDERS = [(s, s) for s in (CUSTOMER, BOT, AGENT, NOTE, SUGGESTION)]
    CUSTOMER_VISIBLE = (CUSTOMER, BOT, AGENT)

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    sender = models.CharField(max_length=12, choices=SENDERS)
    text = models.TextField()  # personal data masked before it is stored
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)  # bot answer → question
    intent = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True)
    citations = models.JSONField(default=list)
    handoff = models.BooleanField(default=False)
    # Options the bot offered ("did you mean A or B?", "connect you with a person?"): [{"kind", "id", "label"}]
    choices = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Feedback(models.Model):
    UP = "up"
    DOWN = "down"
    WRONG = "wrong"  # an agent marked the bot answer wrong
    RIGHT = "right"  # an agent confirmed the bot answer's intent: only this makes a customer's question training data
    PICKED = "picked"  # the customer picked one of the bot's choices (`choice`): ranking feedback
    KINDS = [(k, k) for k in (UP, DOWN, WRONG, RIGHT, PICKED)]
    CUSTOMER_RATINGS = (UP, DOWN)

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    kind = models.CharField(max_length=8, choices=KINDS)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    choice = models.CharField(max_length=40, blank=True)  # PICKED: the option's id (a KB item id, handoff, cancel)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # One customer rating per bot answer: anyone holding the conversation's token could otherwise repeat it.
        constraints = [models.UniqueConstraint(fields=["message"], condition=models.Q(kind__in=("up", "down")),
                                               name="support_feedback_one_rating_per_message"),
                       models.UniqueConstraint(fields=["message"], condition=models.Q(kind="picked"),
                                               name="support_feedback_one_pick_per_message")]


class KnowledgeGap(models.Model):
    OPEN = "open"
    ADDED = "added"
    DISMISSED = "dismissed"

    kb = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="gaps")
    question = models.TextField()  # masked
    reason = models.CharField(max_length=20)  # low_confidence | out_of_scope | empty_kb | marked_wrong | thumbs_down
    confidence = models.FloatField(null=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=12, default=OPEN)
    faq = models.ForeignKey(FaqEntry, null=True, blank=True, on_delete=models.SET_NULL)  # the entry added for it
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class TrainingExample(models.Model):
    """Feedback turned into training data for a registry task (`intent`); export with support_training_export."""

    task = models.CharField(max_length=100, default="intent")  # intent | rerank (label = the picked item id)
    text = models.TextField()  # masked
    label = models.CharField(max_length=100, blank=True)  # the intent; blank = "not this intent" (see `rejected`)
    rejected = models.CharField(max_length=100, blank=True)  # an intent the text is known NOT to have
    source = models.CharField(max_length=40)  # agent_confirmed | agent_marked_wrong | gap_added | customer_pick (customer_thumbs_*: older rows)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)


class CannedResponse(models.Model):
    """An agent's stock reply; placeholders {agent}, {conversation}, {kb} are filled when used."""

    name = models.CharField(max_length=100, unique=True)
    text = models.TextField()

    def __str__(self) -> str:
        return self.name
