"""Who takes a handed-off conversation: the least busy available agent, of the team that covers its intent first.

Teams are Django groups named in SUPPORT_TEAMS ("billing:refund|payment,tech:router_reset"); availability is each
agent's AgentPresence (the console's switch). Busy = conversations queued for or held by the agent.
"""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q

from apps.support.models import AgentPresence, Conversation
from services.errors import SuiteError


def teams_parse(*, value: str) -> dict[str, str]:
    """{intent: team} from "team:intent|intent,team:intent" (SuiteError naming SUPPORT_TEAMS when malformed)."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in value.split(",") if p.strip()):
        team, _, intents = part.partition(":")
        if not team.strip() or not intents.strip():
            raise SuiteError(f"SUPPORT_TEAMS: {part!r} must read team:intent|intent.", field="SUPPORT_TEAMS")
        for intent in intents.split("|"):
            if intent.strip():
                out[intent.strip()] = team.strip()
    return out


def agent_available_set(*, agent, available: bool) -> AgentPresence:  # noqa: ANN001
    presence, _ = AgentPresence.objects.update_or_create(user=agent, defaults={"available": bool(available)})
    return presence


def conversation_assign(*, conversation: Conversation):  # noqa: ANN201
    """Assign a queued conversation nobody holds to the least busy available agent (team first); the agent or None.

    The conditional update (still queued, still unassigned) keeps a concurrent take-over or assignment intact.
    """
    if conversation.state != Conversation.QUEUED or conversation.agent_id:
        return None
    users = get_user_model().objects.filter(is_active=True, support_presence__available=True)
    users = users.filter(Q(groups__permissions__codename="access_support") | Q(user_permissions__codename="access_support")
                         | Q(is_superuser=True)).distinct()
    team = teams_parse(value=settings.SUPPORT_TEAMS).get(conversation.last_intent or "")
    pool = users.filter(groups__name=team) if team else users.none()
    if not pool.exists():
        pool = users
    busy = Count("conversation", filter=Q(conversation__state__in=(Conversation.QUEUED, Conversation.AGENT)))
    agent = pool.annotate(busy=busy).order_by("busy", "pk").first()
    if agent is None:
        return None
    claimed = Conversation.objects.filter(pk=conversation.pk, state=Conversation.QUEUED, agent__isnull=True).update(agent=agent)
    conversation.refresh_from_db()
    return agent if claimed == 1 else None
