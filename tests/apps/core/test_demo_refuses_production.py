"""The demo commands set known passwords and load sample data: under the production profile they refuse."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("command", ["demo_setup", "demo_load"])
def test_demo_commands_refuse_the_production_profile(settings, db, command: str) -> None:  # noqa: ANN001
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match=f"{command} is for demos and refuses the production profile"):
        call_command(command)
    assert not get_user_model().objects.filter(username="admin").exists()


def test_demo_setup_prints_a_working_token_on_every_run(client, db) -> None:  # noqa: ANN001
    from tests.helpers import run_json

    first = run_json("demo_setup")["api_token"]
    second = run_json("demo_setup")["api_token"]  # idempotent: a rerun rotates the demo client's token
    assert client.get("/api/recommender/health", HTTP_AUTHORIZATION=f"Token {second}").status_code == 200
    assert client.get("/api/recommender/health", HTTP_AUTHORIZATION=f"Token {first}").status_code == 401
