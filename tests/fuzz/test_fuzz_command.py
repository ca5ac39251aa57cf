"""The long-campaign command: `python -m pipelines.fuzz`, and fuzz_http() the chaos benchmark calls."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.django_db
def test_fuzz_http_runs_a_seeded_campaign_in_a_child_on_its_own_throwaway_database() -> None:
    from django.db import connection

    from pipelines.fuzz import fuzz_http

    report = fuzz_http(cases=60, seed=0)
    assert report["which"] == "http" and report["seed"] == 0
    assert report["cases"] >= 60 and report["http_5xx"] == 0 and report["failures"] == [], report["failures"]
    assert report["http"]["by_status"]["2xx"] > 0  # signed in for real: some cases got through
    assert Path(report["database"]).name.startswith("suite-fuzz-")
    assert str(Path(report["database"])) not in str(connection.settings_dict["NAME"])  # not this test's database
