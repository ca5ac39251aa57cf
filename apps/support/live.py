"""Live pushes of the support desk: the agents' console group and one group per customer conversation."""
from __future__ import annotations

from apps.core.live import group_push
from apps.support.models import Conversation, Message
from apps.support.serializers import conversation_summary, message_dict

CONSOLE_GROUP = "support-console"


def chat_group(token: str) -> str:
    return f"support-chat-{token}"  # tokens are URL-safe base64: valid group-name characters


def conversation_push(*, conversation: Conversation, messages: list[Message] = ()) -> None:
    """Tell the console the conversation changed, and send the customer what they may see of `messages`."""
    group_push(group=CONSOLE_GROUP, event="conversation", payload=conversation_summary(conversation))
    for message in messages:
        if message is not None and message.sender in Message.CUSTOMER_VISIBLE:
            group_push(group=chat_group(conversation.token), event="message", payload=message_dict(message))
    if conversation.state == Conversation.RESOLVED:
        group_push(group=chat_group(conversation.token), event="resolved", payload={"state": conversation.state})


def handoff_notify(*, conversation: Conversation) -> None:
    """Tell every console a conversation was handed off (and to whom it was assigned): agents see a notice."""
    group_push(group=CONSOLE_GROUP, event="handoff", payload=conversation_summary(conversation))
