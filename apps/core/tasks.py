from __future__ import annotations

import os

from celery import shared_task

from apps.core.live import heartbeat_publish


@shared_task(name="core.heartbeat_publish", ignore_result=True)
def heartbeat_publish_task() -> None:
    """Run by Celery beat every SUITE_HEARTBEAT_SECONDS: proves beat → worker → Redis → page."""
    heartbeat_publish(sender=f"celery worker pid {os.getpid()}")


@shared_task(name="core.ping", bind=True)
def ping(self, payload: dict) -> dict:  # noqa: ANN001
    """Echo `payload` with the worker's identity (a round-trip check through the broker)."""
    return {"echo": payload, "worker": self.request.hostname, "pid": os.getpid()}
