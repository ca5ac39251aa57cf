"""Operators' settings: SUITE_LOG_FORMAT (text or JSON lines), SUITE_METRICS_TOKEN, SUITE_READY_TIMEOUT_S."""
from __future__ import annotations

import json

import pytest

from tests.config.test_settings import run_manage

_LOG = "import logging; logging.getLogger('suite.probe').warning('disk %s full', 'd1')"


@pytest.mark.parametrize(("name", "value"), [("SUITE_LOG_FORMAT", "xml"), ("SUITE_METRICS_TOKEN", "short"),
                                           ("SUITE_READY_TIMEOUT_S", "0"), ("SUITE_READY_TIMEOUT_S", "soon")])
def test_a_bad_operator_setting_fails_loudly_naming_the_variable(name: str, value: str) -> None:
    result = run_manage("check", **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_json_format_writes_one_json_object_per_line() -> None:
    result = run_manage("shell", "--no-imports", "-c", _LOG, SUITE_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    probe = [r for r in records if r.get("logger") == "suite.probe"]
    assert probe and probe[0]["message"] == "disk d1 full"
    assert probe[0]["level"] == "WARNING" and probe[0]["time"]


def test_text_format_is_the_default() -> None:
    result = run_manage("shell", "--no-imports", "-c", _LOG)
    assert result.returncode == 0, result.stderr
    assert "WARNING suite.probe: disk d1 full" in result.stderr
