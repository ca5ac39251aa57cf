from __future__ import annotations

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.core.live import SYSTEM_STATUS_GROUP, status_snapshot

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class GroupConsumer(AsyncJsonWebsocketConsumer):
    """Base for live pages: checks access, joins `group`, forwards pushes as {"event", "data"}."""

    group: str = ""
    area: str | None = None  # access area needed; None = any signed-in user

    async def connect(self) -> None:
        from apps.accounts.access import user_has_access

        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if self.area and not await sync_to_async(user_has_access)(user, self.area):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(self.group_name(), self.channel_name)
        await self.accept()
        await self.on_joined()

    def group_name(self) -> str:
        return self.group

    async def on_joined(self) -> None:
        """Hook: send an initial snapshot."""

    async def disconnect(self, code: int) -> None:
        if self.channel_layer is not None:
            await self.channel_layer.group_discard(self.group_name(), self.channel_name)

    async def push(self, message: dict) -> None:
        await self.send_json({"event": message["event"], "data": message["data"]})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: object) -> None:
        """Live feeds only send: any frame from the page (text, bytes, JSON or not) gets one error frame back.

        The JSON consumer's own `receive` would parse the frame first and crash on anything that is not JSON text,
        closing the socket; here nothing a client sends is parsed, and the connection stays open.
        """
        await self.send_json({"event": "error", "data": {"error": "invalid",
                                                         "detail": "This live feed only sends; frames are ignored."}})


class SystemStatusConsumer(GroupConsumer):
    group = SYSTEM_STATUS_GROUP

    async def on_joined(self) -> None:
        await self.send_json({"event": "snapshot", "data": await sync_to_async(status_snapshot)()})
