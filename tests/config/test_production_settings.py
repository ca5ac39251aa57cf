"""Production settings (issue 13): Celery's visibility timeout, Kafka and Redis security by environment variables."""
from __future__ import annotations

import pytest

from tests.config.test_settings import run_manage

VISIBILITY = ("from django.conf import settings; from config.celery import app; "
              "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'], app.conf.broker_transport_options['visibility_timeout'])")
LIMITS_UNSET = dict.fromkeys(("SUITE_TASK_LIMIT_INFERENCE_S", "SUITE_TASK_LIMIT_DEFAULT_S", "SUITE_TASK_LIMIT_TRAINING_S",
                              "SUITE_TASK_LIMIT_INDEX_REBUILD_S", "SUITE_TASK_LIMIT_GRACE_S", "CELERY_VISIBILITY_TIMEOUT_S"), "")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 6 * 3600 + 30 + 600),  # the training queue's hard limit plus the margin
        ({"SUITE_TASK_LIMIT_TRAINING_S": "100"}, 3600 + 30 + 600),  # then the index rebuild is the longest
        ({"SUITE_TASK_LIMIT_GRACE_S": "60", "SUITE_TASK_LIMIT_TRAINING_S": "40000"}, 40000 + 60 + 600),
        ({"CELERY_VISIBILITY_TIMEOUT_S": "30000"}, 30000),
    ],
)
def test_the_visibility_timeout_outlasts_the_longest_task(env: dict[str, str], expected: int) -> None:
    result = run_manage("shell", "--no-imports", "-c", VISIBILITY, **{**LIMITS_UNSET, **env})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(expected), str(expected)]  # the setting reaches the Celery app


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CELERY_VISIBILITY_TIMEOUT_S": "3600"}, "CELERY_VISIBILITY_TIMEOUT_S"),  # shorter than a training run
        ({"CELERY_VISIBILITY_TIMEOUT_S": str(6 * 3600 + 30)}, "21630 s"),  # equal to the longest hard limit
        ({"CELERY_VISIBILITY_TIMEOUT_S": "soon"}, "CELERY_VISIBILITY_TIMEOUT_S"),
    ],
)
def test_a_bad_production_setting_fails_loudly_naming_the_variable(env: dict[str, str], names: str) -> None:
    result = run_manage("check", **{**LIMITS_UNSET, **env})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert names in result.stderr
