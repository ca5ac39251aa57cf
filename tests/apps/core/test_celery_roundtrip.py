from __future__ import annotations

import os
import uuid

from apps.core.tasks import ping


def test_a_task_goes_through_real_redis_to_a_worker_process_and_back(celery_worker_process) -> None:  # noqa: ANN001
    payload = {"nonce": uuid.uuid4().hex}
    result = ping.apply_async(args=[payload]).get(timeout=60)
    assert result["echo"] == payload
    assert result["pid"] != os.getpid()  # served by the worker, not eagerly in this process
    assert result["pid"] == celery_worker_process.pid  # the fixture's worker runs tasks on threads of its own process


def test_tasks_are_routed_to_their_queues() -> None:
    from django.conf import settings

    from config.celery import app

    assert app.amqp.router.route({}, "inference.classify")["queue"].name == "inference"
    assert app.amqp.router.route({}, "training.retrain")["queue"].name == "training"
    assert app.amqp.router.route({}, "core.ping")["queue"].name == settings.CELERY_TASK_DEFAULT_QUEUE
