"""WebSockets of the support desk: the agents' console (support role) and the customer's chat (by token)."""
from __future__ import annotations

from channels.db import database_sync_to_async

from apps.core.consumers import GroupConsumer
from apps.support.live import CONSOLE_GROUP, chat_group

CLOSE_UNKNOWN_CONVERSATION = 4404


class ConsoleConsumer(GroupConsumer):
    group = CONSOLE_GROUP
    area = "support"

    async def on_joined(self) -> None:
        await self.send_json({"event": "hello", "data": {}})


class ChatConsumer(GroupConsumer):
    """Customers are anonymous: the unguessable conversation token in the URL is their credential."""

    async def connect(self) -> None:
        from apps.support.models import Conversation

        self.token = self.scope["url_route"]["kwargs"]["token"]
        exists = await database_sync_to_async(Conversation.objects.filter(token=self.token).exists)()
        if not exists:
            await self.close(code=CLOSE_UNKNOWN_CONVERSATION)
            return
        await self.channel_layer.group_add(self.group_name(), self.channel_name)
        await self.accept()
        await self.send_json({"event": "hello", "data": {}})

    def group_name(self) -> str:
        return chat_group(self.token)
