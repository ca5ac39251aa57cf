from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from apps.core.live import SYSTEM_STATUS_GROUP, group_push, heartbeat_publish
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def _communicator(user) -> WebsocketCommunicator:  # noqa: ANN001
    communicator = WebsocketCommunicator(application, "/ws/status/", headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
    communicator.scope["user"] = user
    return communicator


def test_a_signed_in_user_gets_a_snapshot_then_pushes_through_the_redis_channel_layer(role_users) -> None:  # noqa: ANN001
    async def scenario() -> None:
        communicator = _communicator(role_users["risk_analyst"])
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        snapshot = await communicator.receive_json_from(timeout=15)
        assert snapshot["event"] == "snapshot"
        assert {s["name"] for s in snapshot["data"]["services"]} == {"Redis", "Kafka"}
        assert all(s["ok"] for s in snapshot["data"]["services"]), snapshot

        await sync_to_async(group_push)(group=SYSTEM_STATUS_GROUP, event="hello", payload={"n": 1})
        assert await communicator.receive_json_from(timeout=10) == {"event": "hello", "data": {"n": 1}}

        sent = await sync_to_async(heartbeat_publish)(sender="test")
        message = await communicator.receive_json_from(timeout=15)
        assert message["event"] == "heartbeat"
        assert message["data"]["sender"] == "test"
        assert message["data"]["checked_at"] == sent["checked_at"]
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_the_heartbeat_task_run_by_a_real_worker_reaches_the_page(role_users, celery_worker_process) -> None:  # noqa: ANN001
    from apps.core.tasks import heartbeat_publish_task

    async def scenario() -> None:
        communicator = _communicator(role_users["support_agent"])
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        await communicator.receive_json_from(timeout=15)  # the snapshot
        await sync_to_async(heartbeat_publish_task.delay)()
        message = await communicator.receive_json_from(timeout=60)
        assert message["event"] == "heartbeat"
        assert message["data"]["sender"].startswith("celery worker pid ")
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_an_anonymous_websocket_is_refused() -> None:
    from django.contrib.auth.models import AnonymousUser

    async def scenario() -> tuple[bool, int]:
        return await _communicator(AnonymousUser()).connect(timeout=10)

    connected, code = async_to_sync(scenario)()
    assert not connected
    assert code == 4401
