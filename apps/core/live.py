"""Push messages to live pages through the channel layer (Redis)."""
from __future__ import annotations

import os
import socket
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from services.health import kafka_check, redis_check

SYSTEM_STATUS_GROUP = "system-status"


def group_push(*, group: str, event: str, payload: dict[str, Any]) -> None:
    """Send `payload` to every WebSocket in `group`; consumers forward it as {"event", "data"}."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(group, {"type": "push", "event": event, "data": payload})


def status_snapshot() -> dict[str, Any]:
    """Reachability of the backing services, as the home page shows it."""
    services = [
        redis_check(url=settings.REDIS_URL).as_dict(),
        kafka_check(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS).as_dict(),
    ]
    return {"services": services, "checked_at": timezone.now().isoformat()}


def heartbeat_publish(*, sender: str | None = None) -> dict[str, Any]:
    """Publish one heartbeat (who sent it, when, service status) to the home page's live element."""
    payload = {**status_snapshot(), "sender": sender or f"{socket.gethostname()}:{os.getpid()}"}
    group_push(group=SYSTEM_STATUS_GROUP, event="heartbeat", payload=payload)
    return payload
