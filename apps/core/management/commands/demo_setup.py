"""Create the demo's people, roles and API token (idempotent).

    python manage.py demo_setup

Prints the logins and a fresh API token (tokens are stored hashed: each run rotates the demo client's token);
the last line is JSON with the same facts. Refused under the production profile: it sets known passwords.
"""
from __future__ import annotations

import json

from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.core.commands import demo_refuse_in_production

from services.output import json_line

DEMO_USERS = [
    ("agent", "support_agent", "agent-demo-pass"),
    ("analyst", "risk_analyst", "analyst-demo-pass"),
    ("admin", "admin", "admin-demo-pass"),
]


class Command(BaseCommand):
    help = "Create demo users (agent, analyst, admin) and an API token for the demo shop backend."

    def handle(self, *args, **opts) -> None:  # noqa: ANN002, ANN003
        demo_refuse_in_production(command="demo_setup")
        for username, role, password in DEMO_USERS:
            call_command("user_create", username=username, role=role, password=password, skip_validation=True, stdout=_Null())
        token_out = _Capture()
        call_command("api_token_create", client="demo-shop-backend", rotate=True, stdout=token_out)
        token = json.loads(token_out.text.strip().splitlines()[-1])["token"]
        for username, role, password in DEMO_USERS:
            self.stdout.write(f"  {role:14} {username} / {password}")
        self.stdout.write(f"  API token (demo-shop-backend): {token}")
        self.stdout.write(json_line({"users": [{"username": u, "role": r, "password": p} for u, r, p in DEMO_USERS], "api_token": token}))


class _Null:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class _Capture(_Null):
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text
