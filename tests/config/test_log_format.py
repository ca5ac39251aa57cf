"""SUITE_LOG_FORMAT: text (the default) or JSON lines; anything else stops the process naming the variable."""
from __future__ import annotations

import json

from tests.config.test_settings import run_manage

_LOG = "import logging; logging.getLogger('suite.probe').warning('disk %s full', 'd1')"


def test_a_bad_log_format_fails_loudly_naming_the_variable() -> None:
    result = run_manage("check", SUITE_LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SUITE_LOG_FORMAT" in result.stderr


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
