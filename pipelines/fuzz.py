"""Fuzz campaigns longer than the test suite's bounded ones: the APIs, the data files, the WebSocket feeds.

    python -m pipelines.fuzz http|files|ws|all [--cases N] [--seed S]

Each run makes a throwaway SQLite database in a temporary folder (migrate, one person per role, the shop's API
token, printed by `api_token_create`), then fuzzs in process against it, with the Redis and Kafka of the
settings (cache, throttles, channel layer) and the registry's default encoder. No Celery task is sent: a retrain or
index rebuild the API queues is recorded instead (pipelines/fuzz_http.py). The same seed replays the same cases.

The last line printed is one JSON object: {"which", "seed", "cases", "http_5xx", "crashes", "failures": [...],
"http"|"files"|"ws": each campaign's own report}; the exit status is 1 when anything failed.
`fuzz_http(cases=, seed=)` runs the HTTP campaign in a child process and returns its report (the chaos benchmark
calls it from a process whose Django is already set up on another database).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from services.output import json_line

ROOT = Path(__file__).resolve().parent.parent
ROLES = {"agent": "support_agent", "analyst": "risk_analyst", "admin": "admin"}


def sandbox_setup() -> Path:
    """Point Django at a new temporary folder and SQLite file, set it up and migrate; the folder.

    1. SUITE_VAR_DIR and DATABASE_URL are replaced (not defaulted): the fuzz never writes to another database.
    2. DEBUG is off, as deployed (errors answer as production answers them).
    """
    folder = Path(tempfile.mkdtemp(prefix="suite-fuzz-"))
    os.environ["SUITE_VAR_DIR"] = str(folder)
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'fuzz.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = False
    settings.SUPPORT_CUSTOMER_RATE = settings.SUPPORT_CONVERSATION_RATE = "1000000/minute"  # one client, many cases
    call_command("migrate", verbosity=0, interactive=False)
    return folder


def people_create() -> dict[str, Any]:
    """One person per role (random passwords, never printed) and the shop's token; {name: user, "token": str}."""
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    people: dict[str, Any] = {}
    for name, role in ROLES.items():
        call_command("user_create", username=f"fuzz-{name}", role=role, password=secrets.token_urlsafe(16),
                     skip_validation=True, stdout=StringIO())
        people[name] = get_user_model().objects.get(username=f"fuzz-{name}")
    out = StringIO()
    call_command("api_token_create", client="fuzz-shop", stdout=out)
    people["token"] = json.loads(out.getvalue().strip().splitlines()[-1])["token"]  # as printed, not the stored row
    return people


def http_run(*, cases: int, seed: int, people: dict[str, Any]) -> dict[str, Any]:
    """The HTTP campaign (pipelines/fuzz_http.py) as each role, the shop's token and an anonymous customer."""
    from django.test import Client

    from pipelines.fuzz_http import Identity, http_campaign, schema_load, world_create

    identities = {}
    for name in ROLES:
        client = Client()
        client.force_login(people[name])
        identities[name] = Identity(name=name, client=client)
    identities["shop"] = Identity(name="shop", client=Client(), headers={"Authorization": f"Token {people['token']}"})
    identities["anonymous"] = Identity(name="anonymous", client=Client())
    known = world_create(identities=identities)
    return http_campaign(identities=identities, schema=schema_load(client=identities["admin"].client), cases=cases,
                         seed=seed, known=known)


def ws_run(*, cases: int, seed: int, people: dict[str, Any]) -> dict[str, Any]:
    """The WebSocket campaign (pipelines/fuzz_ws.py) over every live feed."""
    from apps.support.models import Conversation
    from pipelines.fuzz_ws import feeds_for, ws_campaign
    from services.support.knowledge import kb_ensure

    chat = Conversation.objects.create(kb=kb_ensure(name="default"))
    feeds = feeds_for(agent=people["agent"], analyst=people["analyst"], admin=people["admin"], chat_token=chat.token)
    return ws_campaign(feeds=feeds, cases=cases, seed=seed)


def files_run(*, cases: int, seed: int) -> dict[str, Any]:
    """The file campaign (pipelines/fuzz_files.py): the readers, then the imports that store rows."""
    from pipelines.fuzz_files import DB_KINDS, KINDS, files_campaign

    return files_campaign(cases=cases, seed=seed, kinds=[*KINDS, *DB_KINDS])


def campaigns_run(*, which: str, cases: int, seed: int) -> dict[str, Any]:
    """Set up the sandbox, run the chosen campaigns, sum them up (the command's JSON line)."""
    folder = sandbox_setup()
    people = people_create()
    chosen = ["http", "files", "ws"] if which == "all" else [which]
    reports: dict[str, Any] = {}
    for name in chosen:
        if name == "http":
            reports[name] = http_run(cases=cases, seed=seed, people=people)
        elif name == "files":
            reports[name] = files_run(cases=cases, seed=seed)
        else:
            reports[name] = ws_run(cases=cases, seed=seed, people=people)
    failures = [f"{name}: {json.dumps(failure, ensure_ascii=False) if isinstance(failure, dict) else failure}"
                for name, report in reports.items() for failure in report["failures"]]
    return {"which": which, "seed": seed, "cases": sum(r["cases"] for r in reports.values()),
            "http_5xx": reports.get("http", {}).get("http_5xx", 0),
            "crashes": sum(r.get("crashes", 0) for r in reports.values()), "failures": failures, **reports,
            "database": str(folder)}


def fuzz_http(*, cases: int, seed: int) -> dict[str, Any]:
    """The HTTP campaign in a child process on its own throwaway database; its report ("cases", "http_5xx", ...).

    A child, because the caller's Django may already be set up on another database (the chaos benchmark's).
    """
    done = subprocess.run([sys.executable, "-m", "pipelines.fuzz", "http", "--cases", str(cases), "--seed", str(seed)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"pipelines.fuzz http exited {done.returncode} without its JSON line: "
                           f"{(done.stderr or done.stdout)[-2000:]}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["http", "files", "ws", "all"])
    parser.add_argument("--cases", type=int, default=1000, help="cases per campaign (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed replays the same cases")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    result = campaigns_run(which=args.which, cases=args.cases, seed=args.seed)
    print(json_line(result))
    return 1 if result["failures"] or result["http_5xx"] else 0


if __name__ == "__main__":
    sys.exit(main())
